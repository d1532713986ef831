// Shared 16-lane vector helpers for kernels.c (GCC/Clang vector extensions). The helpers carry no
// target attribute: they are always inlined into each instruction-set variant and compiled for it.
#ifndef CHEADKERNELS_COMMON_H
#define CHEADKERNELS_COMMON_H

typedef float chk_v16 __attribute__((vector_size(64)));
typedef float chk_v8 __attribute__((vector_size(32)));
typedef float chk_v4 __attribute__((vector_size(16)));
typedef float chk_v2 __attribute__((vector_size(8)));

#define CHK_INLINE static inline __attribute__((always_inline))

// Macros, not functions: a 64-byte vector passed to or returned from a function compiled for the
// baseline would change the calling convention between variants.
#define chk_load(p) ({ chk_v16 chk_l_; __builtin_memcpy(&chk_l_, (p), sizeof chk_l_); chk_l_; })
#define chk_store(p, v) do { chk_v16 chk_s_ = (v); __builtin_memcpy((p), &chk_s_, sizeof chk_s_); } while (0)
#define chk_splat(x) ({ float chk_x_ = (x); (chk_v16){chk_x_, chk_x_, chk_x_, chk_x_, chk_x_, chk_x_, chk_x_, chk_x_, \
                        chk_x_, chk_x_, chk_x_, chk_x_, chk_x_, chk_x_, chk_x_, chk_x_}; })
#define chk_sqrt(v) __builtin_elementwise_sqrt(v)

/// Fixed-order tree sum of 16 lanes (identical for every variant): halves are added pairwise
/// (lane i + lane i+8, then i + i+4, i + i+2, i + i+1).
#define chk_hsum(a) ({ chk_v16 chk_a_ = (a); \
    chk_v8 chk_b_ = __builtin_shufflevector(chk_a_, chk_a_, 0, 1, 2, 3, 4, 5, 6, 7) + __builtin_shufflevector(chk_a_, chk_a_, 8, 9, 10, 11, 12, 13, 14, 15); \
    chk_v4 chk_c_ = __builtin_shufflevector(chk_b_, chk_b_, 0, 1, 2, 3) + __builtin_shufflevector(chk_b_, chk_b_, 4, 5, 6, 7); \
    chk_v2 chk_d_ = __builtin_shufflevector(chk_c_, chk_c_, 0, 1) + __builtin_shufflevector(chk_c_, chk_c_, 2, 3); \
    chk_d_[0] + chk_d_[1]; })

/// One scalar Adam element (same expressions as the vector loops). Returns the new weight.
CHK_INLINE float chk_adam1(float w, float g, float *m, float *v, float c1, float c2, float alpha, float eps) {
    float m2 = *m + (g - *m) * c1;
    float v2 = *v + (g * g - *v) * c2;
    *m = m2; *v = v2;
    return w - m2 * alpha / (__builtin_sqrtf(v2) + eps);
}

#endif
