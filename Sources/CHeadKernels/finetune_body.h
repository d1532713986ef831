// The fine-tuner's loops around its GEMMs (FineTuneCore), included by finetune.c once per
// instruction set with CHK_FN (name suffix) and CHK_ATTR (target attribute) defined. HOT LOOPS.
// Activations are NHWC rows of `c` channels; every loop is elementwise along the channels, so each
// variant computes the same expressions per element in the same order (bit-identical results).

CHK_ATTR static void CHK_FN(ft_affine)(long rows, long c, const float *x, const float *scale, const float *shift,
                                      int act, float *ybn, float *y) {
    for (long r = 0; r < rows; r++) {
        const float *xr = x + r * c;
        float *yr = y + r * c, *br = ybn ? ybn + r * c : 0;
        long ch = 0;
        for (; ch + 16 <= c; ch += 16) {
            chk_v16 b = chk_load(xr + ch) * chk_load(scale + ch) + chk_load(shift + ch);
            if (br) chk_store(br + ch, b);
            chk_store(yr + ch, CHK_FT_ACT(b, act));
        }
        for (; ch < c; ch++) {
            float b = xr[ch] * scale[ch] + shift[ch];
            if (br) br[ch] = b;
            yr[ch] = chk_ft_act1(b, act);
        }
    }
}

CHK_ATTR static void CHK_FN(ft_act)(long n, int act, const float *x, float *y) {
    long i = 0;
    for (; i + 16 <= n; i += 16) chk_store(y + i, CHK_FT_ACT(chk_load(x + i), act));
    for (; i < n; i++) y[i] = chk_ft_act1(x[i], act);
}

CHK_ATTR static void CHK_FN(ft_act_backward)(long n, int act, const float *x, const float *dy, float *dx) {
    long i = 0;
    for (; i + 16 <= n; i += 16) {
        chk_v16 v = chk_load(x + i);
        chk_store(dx + i, chk_load(dy + i) * CHK_FT_MASK(v, act));
    }
    for (; i < n; i++) dx[i] = dy[i] * CHK_FT_MASK1(x[i], act);
}

CHK_ATTR static void CHK_FN(ft_bn_backward)(long rows, long c, long spread, long row0, const float *dy, int act,
                                           const float *x, const float *scale, const float *shift, float *sum_dy,
                                           float *sum_dy_x, float *g_out, float *dx) {
    const float inv = 1.0f / (float)spread;
    for (long r = 0; r < rows; r++) {
        const float *gr = spread > 1 ? dy + ((row0 + r) / spread) * c : dy + (row0 + r) * c, *xr = x + r * c;
        float *go = g_out ? g_out + r * c : 0, *d = dx ? dx + r * c : 0;
        long ch = 0;
        for (; ch + 16 <= c; ch += 16) {
            chk_v16 g = chk_load(gr + ch), xv = chk_load(xr + ch), sc = chk_load(scale + ch);
            if (spread > 1) g = g * chk_splat(inv);
            if (act != CHK_FT_NONE) { chk_v16 b = xv * sc + chk_load(shift + ch); g = g * CHK_FT_MASK(b, act); }
            chk_store(sum_dy + ch, chk_load(sum_dy + ch) + g);
            chk_store(sum_dy_x + ch, chk_load(sum_dy_x + ch) + g * xv);
            if (go) chk_store(go + ch, g);
            if (d) chk_store(d + ch, g * sc);
        }
        for (; ch < c; ch++) {
            float g = gr[ch];
            if (spread > 1) g = g * inv;
            if (act != CHK_FT_NONE) g = g * CHK_FT_MASK1(xr[ch] * scale[ch] + shift[ch], act);
            sum_dy[ch] += g;
            sum_dy_x[ch] += g * xr[ch];
            if (go) go[ch] = g;
            if (d) d[ch] = g * scale[ch];
        }
    }
}

/// Per sample: the column sums of act(x * scale + shift) over its `pixels` rows, in row order, divided
/// by pixels (the global average pool), without writing the activations.
CHK_ATTR static void CHK_FN(ft_affine_pool)(long samples, long pixels, long c, const float *x, const float *scale,
                                           const float *shift, int act, float *pooled) {
    for (long b = 0; b < samples; b++) {
        float *o = pooled + b * c;
        __builtin_memset(o, 0, sizeof(float) * (size_t)c);
        for (long p = 0; p < pixels; p++) {
            const float *xr = x + (b * pixels + p) * c;
            long ch = 0;
            for (; ch + 16 <= c; ch += 16) {
                chk_v16 v = chk_load(xr + ch) * chk_load(scale + ch) + chk_load(shift + ch);
                chk_store(o + ch, chk_load(o + ch) + CHK_FT_ACT(v, act));
            }
            for (; ch < c; ch++) o[ch] += chk_ft_act1(xr[ch] * scale[ch] + shift[ch], act);
        }
        const float n = (float)pixels;
        long ch = 0;
        for (; ch + 16 <= c; ch += 16) chk_store(o + ch, chk_load(o + ch) / chk_splat(n));
        for (; ch < c; ch++) o[ch] /= n;
    }
}

CHK_ATTR static void CHK_FN(ft_bn_train_dx)(long rows, long c, const float *dy, const float *x, const float *a,
                                           const float *b, const float *cc, float *dx) {
    for (long r = 0; r < rows; r++) {
        const float *gr = dy + r * c, *xr = x + r * c;
        float *d = dx + r * c;
        long ch = 0;
        for (; ch + 16 <= c; ch += 16)
            chk_store(d + ch, chk_load(a + ch) * chk_load(gr + ch) - chk_load(b + ch) - chk_load(xr + ch) * chk_load(cc + ch));
        for (; ch < c; ch++) d[ch] = a[ch] * gr[ch] - b[ch] - xr[ch] * cc[ch];
    }
}

/// Forward: each output row is zeroed, then takes its taps in order while it stays in L1 (no pass
/// over the whole output to clear it first).
/// out[0..<c] = (add ? out : 0) + (0 + sum over i in order of a[ia[i] + ch] * b[ib[i] + ch]): the sum of
/// n row products in registers, 64 channels at a time, then one store per element.
CHK_ATTR static void CHK_FN(ft_row_products)(float *out, const float *a, const long *ia, const float *b, const long *ib,
                                            long n, long c, int add) {
    long ch = 0;
    for (; ch + 64 <= c; ch += 64) {
        chk_v16 s0 = chk_splat(0), s1 = s0, s2 = s0, s3 = s0;
        for (long i = 0; i < n; i++) {
            const float *ai = a + ia[i] + ch, *bi = b + ib[i] + ch;
            s0 = s0 + chk_load(ai) * chk_load(bi);
            s1 = s1 + chk_load(ai + 16) * chk_load(bi + 16);
            s2 = s2 + chk_load(ai + 32) * chk_load(bi + 32);
            s3 = s3 + chk_load(ai + 48) * chk_load(bi + 48);
        }
        if (add) { s0 = chk_load(out + ch) + s0; s1 = chk_load(out + ch + 16) + s1; s2 = chk_load(out + ch + 32) + s2; s3 = chk_load(out + ch + 48) + s3; }
        chk_store(out + ch, s0); chk_store(out + ch + 16, s1); chk_store(out + ch + 32, s2); chk_store(out + ch + 48, s3);
    }
    for (; ch + 16 <= c; ch += 16) {
        chk_v16 s0 = chk_splat(0);
        for (long i = 0; i < n; i++) s0 = s0 + chk_load(a + ia[i] + ch) * chk_load(b + ib[i] + ch);
        chk_store(out + ch, add ? chk_load(out + ch) + s0 : s0);
    }
    for (; ch < c; ch++) {
        float s0 = 0;
        for (long i = 0; i < n; i++) s0 = s0 + a[ia[i] + ch] * b[ib[i] + ch];
        out[ch] = add ? out[ch] + s0 : s0;
    }
}

/// Forward: each output row is the sum of its taps (input row x weight row) in tap order. The row
/// pairs of every output pixel are listed once (chk_ft_taps_by_output); samples are the outer loop.
CHK_ATTR static void CHK_FN(ft_depthwise)(const chk_ft_window *g, const float *x, const float *w, float *y, long batch) {
    const long c = g->channels, in_size = g->in_h * g->in_w * c, out_size = g->out_h * g->out_w * c, kk = g->kernel * g->kernel;
    const long outs = g->out_h * g->out_w;
    chk_ft_pairs l = chk_ft_taps_by_output(g);
    for (long b = 0; b < batch; b++)
        for (long p = 0; p < outs; p++)
            CHK_FN(ft_row_products)(y + b * out_size + p * c, x + b * in_size, l.a + p * kk, w, l.b + p * kk, l.n[p], c, 0);
    chk_ft_pairs_free(l);
}

/// Backward. dw: per sample and tap, the sum over output pixels of dy row x input row, added to dw.
/// dx: per input row, the sum of its taps (dy row x weight row) in increasing output pixel order.
CHK_ATTR static void CHK_FN(ft_depthwise_backward)(const chk_ft_window *g, const float *x, const float *w,
                                                  const float *dy, float *dw, float *dx, long batch) {
    const long c = g->channels, in_size = g->in_h * g->in_w * c, out_size = g->out_h * g->out_w * c;
    const long kk = g->kernel * g->kernel, outs = g->out_h * g->out_w, ins = g->in_h * g->in_w;
    __builtin_memset(dw, 0, sizeof(float) * (size_t)(kk * c));
    chk_ft_pairs byTap = chk_ft_taps_by_tap(g), byInput = chk_ft_taps_by_input(g);
    for (long b = 0; b < batch; b++) {
        for (long t = 0; t < kk; t++)
            CHK_FN(ft_row_products)(dw + t * c, dy + b * out_size, byTap.a + t * outs, x + b * in_size, byTap.b + t * outs,
                                    byTap.n[t], c, 1);
        if (!dx) continue;
        for (long q = 0; q < ins; q++)
            CHK_FN(ft_row_products)(dx + b * in_size + q * c, dy + b * out_size, byInput.a + q * kk, w, byInput.b + q * kk,
                                    byInput.n[q], c, 0);
    }
    chk_ft_pairs_free(byTap);
    chk_ft_pairs_free(byInput);
}

CHK_ATTR static void CHK_FN(ft_adam)(float *p, const float *g, float *m, float *v, long n, float b1, float b2,
                                    float step_size, float c2root, float eps) {
    const float nb1 = 1 - b1, nb2 = 1 - b2;
    const chk_v16 vb1 = chk_splat(b1), vb2 = chk_splat(b2), vnb1 = chk_splat(nb1), vnb2 = chk_splat(nb2);
    const chk_v16 vs = chk_splat(step_size), vc2 = chk_splat(c2root), veps = chk_splat(eps);
    long i = 0;
    for (; i + 16 <= n; i += 16) {
        chk_v16 gi = chk_load(g + i);
        chk_v16 mi = vb1 * chk_load(m + i) + vnb1 * gi;
        chk_v16 vi = vb2 * chk_load(v + i) + vnb2 * gi * gi;
        chk_store(m + i, mi); chk_store(v + i, vi);
        chk_store(p + i, chk_load(p + i) - vs * mi / (chk_sqrt(vi) / vc2 + veps));
    }
    for (; i < n; i++) {
        m[i] = b1 * m[i] + nb1 * g[i];
        v[i] = b2 * v[i] + nb2 * g[i] * g[i];
        p[i] -= step_size * m[i] / (__builtin_sqrtf(v[i]) / c2root + eps);
    }
}
