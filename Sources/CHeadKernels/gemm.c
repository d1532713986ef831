// oneDNN's sgemm for the trainer (see GEMM.swift for when it is used) and the CPU's vector level.

#include "CHeadKernels.h"

#include <dnnl.h>

// libgomp, oneDNN's threading runtime in Debian's build (libdnnl2 depends on libgomp1).
int omp_get_max_threads(void);
void omp_set_num_threads(int n);

int chk_cpu_vector_isa(void) {
#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
    __builtin_cpu_init();
    // What OpenBLAS's SkylakeX kernels and oneDNN's avx512_core both require.
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")) return CHK_VEC_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return CHK_VEC_AVX2;
    if (__builtin_cpu_supports("avx")) return CHK_VEC_AVX;
#endif
    return CHK_VEC_SSE;
}

int chk_onednn_sgemm(int trans_a, int trans_b, long m, long n, long k, float alpha,
                     const float *a, long lda, const float *b, long ldb, float beta, float *c, long ldc) {
    // The trainer parallelises by itself (one GEMM per chunk and thread): oneDNN would otherwise
    // start an OpenMP team of all cores inside every call. The setting is per calling thread in
    // libgomp, so it is lowered for this call only and put back.
    int previous = omp_get_max_threads();
    if (previous != 1) omp_set_num_threads(1);
    dnnl_status_t status = dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', m, n, k, alpha, a, lda, b, ldb,
                                      beta, c, ldc);
    if (previous != 1) omp_set_num_threads(previous);
    return (int)status;
}
