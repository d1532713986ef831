// Hot loops of the head trainer, in C so that they can be compiled for several instruction sets
// (AVX-512, AVX2, and the x86-64 baseline) and picked at run time, while the rest of the package
// stays built for the generic baseline.
//
// Every variant evaluates the same expressions in the same order on 16-lane vectors (fp32, no FMA
// contraction, exact sqrt and division), so all variants give bit-identical results.
#ifndef CHEADKERNELS_H
#define CHEADKERNELS_H

#ifdef __cplusplus
extern "C" {
#endif

/// Instruction-set variants of the kernels.
enum {
    CHK_ISA_GENERIC = 0,   ///< portable (SSE2 on x86-64)
    CHK_ISA_AVX2 = 1,      ///< AVX2 (+FMA present, but not used for arithmetic)
    CHK_ISA_AVX512 = 2     ///< AVX-512F
};

/// Best variant this CPU supports.
int chk_isa_best(void);
/// Variant currently used.
int chk_isa_active(void);
/// Selects a variant (clamped to what the CPU supports); a negative value selects the best.
/// Returns the variant now active.
int chk_isa_set(int isa);

/// Keras Adam constants for one step.
typedef struct {
    float alpha;   ///< lr * sqrt(1 - beta2^t) / (1 - beta1^t)
    float c1;      ///< 1 - beta1
    float c2;      ///< 1 - beta2
    float eps;     ///< epsilon
} chk_adam_params;

/// Adam on n parameters: g' = g + l2x2 * w; m += (g' - m) c1; v += (g'^2 - v) c2;
/// w -= m alpha / (sqrt(v) + eps).
void chk_adam(float *w, const float *g, float *m, float *v, long n, float l2x2, chk_adam_params adam);

/// The first dense layer's fused gradient + Adam update (see FirstLayerUpdate in Kernels.swift).
typedef struct {
    float *w, *m, *v;          ///< D x F kernel and its Adam moments (row-major)
    const float *p;            ///< D x F: xin^T dz (row j at p + j*f)
    const float *cs;           ///< F: column sums of dz
    long f;
    float *gamma, *beta;       ///< input batch norm (NULL: no input batch norm)
    float *m_gamma, *v_gamma, *m_beta, *v_beta;
    float l2x2;                ///< 2 * l2
    chk_adam_params adam;
} chk_first_layer;

/// Updates rows [row_lo, row_hi); returns sum of W^2 (before the update) over those rows.
double chk_first_layer_update(const chk_first_layer *args, long row_lo, long row_hi);

/// Training-mode batch norm of columns [col_lo, col_hi) over `batch` rows. Row i is read at
/// src + (rows ? rows[i] : i) * src_ld; xhat and out have leading dimension ld. Writes the batch
/// mean and 1/sqrt(var + eps) (biased variance) and updates the moving statistics.
void chk_batchnorm_train(long batch, long col_lo, long col_hi, long ld,
                         const float *src, const long *rows, long src_ld,
                         float *xhat, float *out, const float *gamma, const float *beta,
                         float *moving_mean, float *moving_var, float *mean, float *istd,
                         float momentum, float epsilon);

/// Widest vector instruction set the CPU (and OS) supports, as the GEMM backends use them.
enum {
    CHK_VEC_SSE = 0,      ///< x86-64 baseline (or not x86)
    CHK_VEC_AVX = 1,
    CHK_VEC_AVX2 = 2,     ///< AVX2 + FMA
    CHK_VEC_AVX512 = 3    ///< AVX-512 F, BW, VL, DQ
};
int chk_cpu_vector_isa(void);

/// Row-major C = alpha op(A) op(B) + beta C with oneDNN's dnnl_sgemm, on the calling thread only
/// (gemm.c). Returns the dnnl_status_t (0 = success).
int chk_onednn_sgemm(int trans_a, int trans_b, long m, long n, long k, float alpha,
                     const float *a, long lda, const float *b, long ldb, float beta, float *c, long ldc);

/// A fork-join pool for the trainer's parallel regions (pool.c): workers spin briefly before
/// blocking, so back-to-back regions within a training step skip a futex wake-up each.
typedef struct chk_pool chk_pool;
typedef void (*chk_task_fn)(void *ctx, long index);
/// `threads` including the caller; NULL when threads < 2 or no thread could be started.
chk_pool *chk_pool_create(int threads);
/// Runs fn(ctx, 0..<count) on the pool and the calling thread; returns when all are done.
void chk_pool_run(chk_pool *pool, long count, chk_task_fn fn, void *ctx);
void chk_pool_destroy(chk_pool *pool);

/// Runs fn(ctx, i) for i in 0..<count on a team of `count` OpenMP threads (libgomp) and waits.
void chk_omp_run(long count, chk_task_fn fn, void *ctx);

// The fine-tuner's loops around its GEMMs (finetune.c; FineTuneCore), on NHWC rows of `c` channels,
// in the variant chk_isa_active() names (bit-identical across variants).

/// Activations the fine-tuning kernels take (others stay in Swift).
enum { CHK_FT_NONE = 0, CHK_FT_RELU = 1, CHK_FT_RELU6 = 2 };

/// Batch norm as an affine map, then the activation: ybn = x * scale + shift (skipped when ybn is
/// NULL), y = act(x * scale + shift).
void chk_ft_affine(long rows, long c, const float *x, const float *scale, const float *shift, int act,
                   float *ybn, float *y);
/// y = act(x) on n values (ReLU or ReLU6).
void chk_ft_act(long n, int act, const float *x, float *y);
/// dx = dy * act'(x) on n values (ReLU or ReLU6; dx may be dy).
void chk_ft_act_backward(long n, int act, const float *x, const float *dy, float *dx);
/// Batch norm backward over rows [row0, row0 + rows) (x, g_out and dx point at row0; dy at row 0): g = dy
/// (with spread > 1, dy has one row per `spread` rows, the output gradient of a global average pool
/// over them, and g = dy / spread), times act'(x * scale + shift) when act is not CHK_FT_NONE (the
/// activation that follows the batch norm, its input recomputed as the forward pass computed it);
/// sum_dy += g, sum_dy_x += g x (per channel, rows in order); g_out = g and dx = g * scale where given.
void chk_ft_bn_backward(long rows, long c, long spread, long row0, const float *dy, int act, const float *x,
                        const float *scale, const float *shift, float *sum_dy, float *sum_dy_x, float *g_out, float *dx);
/// Batch norm, activation and global average pool: pooled[b, ch] = the mean over the sample's `pixels`
/// rows of act(x * scale + shift), summed in row order.
void chk_ft_affine_pool(long samples, long pixels, long c, const float *x, const float *scale, const float *shift,
                        int act, float *pooled);
/// Training-mode batch norm's input gradient: dx = a dy - b - x cc (per-channel a, b, cc).
void chk_ft_bn_train_dx(long rows, long c, const float *dy, const float *x, const float *a, const float *b,
                        const float *cc, float *dx);

/// Geometry of a depthwise convolution (FineTuneCore.DepthwiseGeometry).
typedef struct {
    long channels, kernel, stride, in_h, in_w, out_h, out_w, pad_top, pad_left;
} chk_ft_window;
/// y[b, p, c] (overwritten) = sum over taps x[b, q, c] * w[tap, c] (w as [k*k, C]).
void chk_ft_depthwise(const chk_ft_window *g, const float *x, const float *w, float *y, long batch);
/// dw [k*k, C] (overwritten) and, when dx is given, dx (overwritten).
void chk_ft_depthwise_backward(const chk_ft_window *g, const float *x, const float *w, const float *dy,
                               float *dw, float *dx, long batch);
/// PyTorch's Adam on n values: m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g g;
/// p -= step_size m / (sqrt(v) / c2root + eps).
void chk_ft_adam(float *p, const float *g, float *m, float *v, long n, float beta1, float beta2,
                 float step_size, float c2root, float eps);

#ifdef __cplusplus
}
#endif
#endif
