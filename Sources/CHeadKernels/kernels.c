// Run-time dispatch between the instruction-set variants of the kernels in kernels_body.h.
//
// Contraction into FMA is off so that every variant rounds exactly like the portable one.
#pragma STDC FP_CONTRACT OFF

#include "CHeadKernels.h"
#include "kernels_common.h"

#define CHK_VARIANT_BODY "kernels_body.h"
#include "variants.h"

typedef void (*chk_adam_fn)(float *, const float *, float *, float *, long, float, chk_adam_params);
typedef double (*chk_first_fn)(const chk_first_layer *, long, long);
typedef void (*chk_bn_fn)(long, long, long, long, const float *, const long *, long, float *, float *,
                          const float *, const float *, float *, float *, float *, float *, float, float);

typedef struct { chk_adam_fn adam; chk_first_fn first; chk_bn_fn bn; } chk_table;

static const chk_table chk_tables[3] = {
    {chk_adam_generic, chk_first_layer_generic, chk_batchnorm_generic},
#ifdef CHK_X86
    {chk_adam_avx2, chk_first_layer_avx2, chk_batchnorm_avx2},
    {chk_adam_avx512, chk_first_layer_avx512, chk_batchnorm_avx512},
#else
    {chk_adam_generic, chk_first_layer_generic, chk_batchnorm_generic},
    {chk_adam_generic, chk_first_layer_generic, chk_batchnorm_generic},
#endif
};

/// -1 until first use; then the active variant. Relaxed atomics: every racing initialiser stores
/// the same value.
static int chk_active = -1;

int chk_isa_best(void) {
#ifdef CHK_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")) return CHK_ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return CHK_ISA_AVX2;
#endif
    return CHK_ISA_GENERIC;
}

int chk_isa_set(int isa) {
    int best = chk_isa_best();
    int v = (isa < 0 || isa > best) ? best : isa;
    __atomic_store_n(&chk_active, v, __ATOMIC_RELAXED);
    return v;
}

int chk_isa_active(void) {
    int v = __atomic_load_n(&chk_active, __ATOMIC_RELAXED);
    return v >= 0 ? v : chk_isa_set(-1);
}

static inline const chk_table *chk_table_now(void) { return &chk_tables[chk_isa_active()]; }

void chk_adam(float *w, const float *g, float *m, float *v, long n, float l2x2, chk_adam_params adam) {
    chk_table_now()->adam(w, g, m, v, n, l2x2, adam);
}

double chk_first_layer_update(const chk_first_layer *args, long row_lo, long row_hi) {
    return chk_table_now()->first(args, row_lo, row_hi);
}

void chk_batchnorm_train(long batch, long col_lo, long col_hi, long ld,
                         const float *src, const long *rows, long src_ld,
                         float *xhat, float *out, const float *gamma, const float *beta,
                         float *moving_mean, float *moving_var, float *mean, float *istd,
                         float momentum, float epsilon) {
    chk_table_now()->bn(batch, col_lo, col_hi, ld, src, rows, src_ld, xhat, out, gamma, beta,
                        moving_mean, moving_var, mean, istd, momentum, epsilon);
}
