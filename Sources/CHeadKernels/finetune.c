// Run-time dispatch between the instruction-set variants of the fine-tuner's loops in
// finetune_body.h (the variant is the head kernels' one: chk_isa_active).
//
// Contraction into FMA is off so that every variant rounds exactly like the portable one.
#pragma STDC FP_CONTRACT OFF

#include "CHeadKernels.h"
#include "kernels_common.h"
#include <stddef.h>
#include <stdlib.h>

// Helpers of every variant (inlined into each).

/// Activation mask as 1/0 floats, from the activation's input or output (the same for ReLU and ReLU6:
/// y > 0 iff x > 0, y < 6 iff x < 6 when y = min(max(x, 0), 6)).
#define CHK_FT_MASK(v, act) ((act) == CHK_FT_RELU6 \
    ? __builtin_convertvector(-((v) > chk_splat(0) & (v) < chk_splat(6)), chk_v16) \
    : __builtin_convertvector(-((v) > chk_splat(0)), chk_v16))
#define CHK_FT_MASK1(v, act) ((act) == CHK_FT_RELU6 ? (float)((v) > 0 && (v) < 6) : (float)((v) > 0))

/// ReLU / ReLU6 that keep a NaN (as PyTorch's), so that a diverging run shows in its loss.
CHK_INLINE float chk_ft_act1(float v, int act) {
    if (act != CHK_FT_NONE) v = v < 0 ? 0 : v;
    if (act == CHK_FT_RELU6) v = v > 6 ? 6 : v;
    return v;
}
typedef int chk_vi16 __attribute__((vector_size(64)));
/// Lanes of v where the mask (a comparison's result) is set, else those of w: bitwise, so every
/// variant gives the same bits (max/min builtins leave the sign of zero and NaNs unspecified).
#define CHK_FT_SELECT(mask, v, w) ((chk_v16)(((chk_vi16)(v) & (mask)) | ((chk_vi16)(w) & ~(mask))))
/// The activation of v, as chk_ft_act1 per lane.
#define CHK_FT_ACT(v, act) ({ chk_v16 a_ = (v); \
    if ((act) != CHK_FT_NONE) a_ = CHK_FT_SELECT(a_ < chk_splat(0), chk_splat(0), a_); \
    if ((act) == CHK_FT_RELU6) a_ = CHK_FT_SELECT(a_ > chk_splat(6), chk_splat(6), a_); \
    a_; })


/// Lists of row pairs for the depthwise loops: list i has n[i] pairs (a[i * stride + j], b[i * stride + j]),
/// offsets in floats of rows of two operands.
typedef struct { long *a, *b, *n; } chk_ft_pairs;

static chk_ft_pairs chk_ft_pairs_new(long lists, long stride) {
    chk_ft_pairs l;
    l.a = malloc(sizeof(long) * (size_t)(2 * lists * stride + lists));
    l.b = l.a + lists * stride;
    l.n = l.b + lists * stride;
    for (long i = 0; i < lists; i++) l.n[i] = 0;
    return l;
}

static void chk_ft_pairs_free(chk_ft_pairs l) { free(l.a); }

/// Calls BODY(p, q, t) with the output pixel p, input pixel q and tap t of every tap inside the image,
/// output pixels in raster order, taps in raster order.
#define CHK_FT_EACH_TAP(g, BODY) \
    for (long oy = 0; oy < (g)->out_h; oy++) for (long ox = 0; ox < (g)->out_w; ox++) \
    for (long ky = 0; ky < (g)->kernel; ky++) { \
        long iy = oy * (g)->stride - (g)->pad_top + ky; \
        if (iy < 0 || iy >= (g)->in_h) continue; \
        for (long kx = 0; kx < (g)->kernel; kx++) { \
            long ix = ox * (g)->stride - (g)->pad_left + kx; \
            if (ix < 0 || ix >= (g)->in_w) continue; \
            long p = oy * (g)->out_w + ox, q = iy * (g)->in_w + ix, t = ky * (g)->kernel + kx; \
            BODY; \
        } \
    }

/// Per output pixel: (input row, weight row) of its taps in tap order.
static chk_ft_pairs chk_ft_taps_by_output(const chk_ft_window *g) {
    const long kk = g->kernel * g->kernel, c = g->channels;
    chk_ft_pairs l = chk_ft_pairs_new(g->out_h * g->out_w, kk);
    CHK_FT_EACH_TAP(g, { long i = l.n[p]++; l.a[p * kk + i] = q * c; l.b[p * kk + i] = t * c; })
    return l;
}

/// Per tap: (output row, input row) of the output pixels it reaches, in raster order.
static chk_ft_pairs chk_ft_taps_by_tap(const chk_ft_window *g) {
    const long outs = g->out_h * g->out_w, c = g->channels;
    chk_ft_pairs l = chk_ft_pairs_new(g->kernel * g->kernel, outs);
    CHK_FT_EACH_TAP(g, { long i = l.n[t]++; l.a[t * outs + i] = p * c; l.b[t * outs + i] = q * c; })
    return l;
}

/// Per input pixel: (output row, weight row) of the taps that read it, in increasing output pixel order
/// (the order a scatter from the outputs would add them in).
static chk_ft_pairs chk_ft_taps_by_input(const chk_ft_window *g) {
    const long kk = g->kernel * g->kernel, c = g->channels;
    chk_ft_pairs l = chk_ft_pairs_new(g->in_h * g->in_w, kk);
    CHK_FT_EACH_TAP(g, { long i = l.n[q]++; l.a[q * kk + i] = p * c; l.b[q * kk + i] = t * c; })
    return l;
}

#define CHK_VARIANT_BODY "finetune_body.h"
#include "variants.h"

#ifdef CHK_X86
#define CHK_FT_PICK(name, ...) do { switch (chk_isa_active()) { \
    case CHK_ISA_AVX512: chk_##name##_avx512(__VA_ARGS__); return; \
    case CHK_ISA_AVX2: chk_##name##_avx2(__VA_ARGS__); return; \
    default: chk_##name##_generic(__VA_ARGS__); return; } } while (0)
#else
#define CHK_FT_PICK(name, ...) chk_##name##_generic(__VA_ARGS__)
#endif

void chk_ft_affine(long rows, long c, const float *x, const float *scale, const float *shift, int act,
                   float *ybn, float *y) {
    CHK_FT_PICK(ft_affine, rows, c, x, scale, shift, act, ybn, y);
}

void chk_ft_act(long n, int act, const float *x, float *y) { CHK_FT_PICK(ft_act, n, act, x, y); }

void chk_ft_act_backward(long n, int act, const float *x, const float *dy, float *dx) {
    CHK_FT_PICK(ft_act_backward, n, act, x, dy, dx);
}

void chk_ft_bn_backward(long rows, long c, long spread, long row0, const float *dy, int act, const float *x,
                        const float *scale, const float *shift, float *sum_dy, float *sum_dy_x, float *g_out, float *dx) {
    CHK_FT_PICK(ft_bn_backward, rows, c, spread, row0, dy, act, x, scale, shift, sum_dy, sum_dy_x, g_out, dx);
}

void chk_ft_affine_pool(long samples, long pixels, long c, const float *x, const float *scale, const float *shift,
                        int act, float *pooled) {
    CHK_FT_PICK(ft_affine_pool, samples, pixels, c, x, scale, shift, act, pooled);
}

void chk_ft_bn_train_dx(long rows, long c, const float *dy, const float *x, const float *a, const float *b,
                        const float *cc, float *dx) {
    CHK_FT_PICK(ft_bn_train_dx, rows, c, dy, x, a, b, cc, dx);
}

void chk_ft_depthwise(const chk_ft_window *g, const float *x, const float *w, float *y, long batch) {
    CHK_FT_PICK(ft_depthwise, g, x, w, y, batch);
}

void chk_ft_depthwise_backward(const chk_ft_window *g, const float *x, const float *w, const float *dy,
                               float *dw, float *dx, long batch) {
    CHK_FT_PICK(ft_depthwise_backward, g, x, w, dy, dw, dx, batch);
}

void chk_ft_adam(float *p, const float *g, float *m, float *v, long n, float beta1, float beta2,
                 float step_size, float c2root, float eps) {
    CHK_FT_PICK(ft_adam, p, g, m, v, n, beta1, beta2, step_size, c2root, eps);
}
