// The kernels, included by kernels.c once per instruction set with CHK_FN (name suffix) and
// CHK_ATTR (target attribute) defined. HOT LOOPS.

CHK_ATTR static void CHK_FN(adam)(float *w, const float *g, float *m, float *v, long n, float l2x2, chk_adam_params p) {
    const chk_v16 vc1 = chk_splat(p.c1), vc2 = chk_splat(p.c2), va = chk_splat(p.alpha), veps = chk_splat(p.eps);
    const chk_v16 vl2 = chk_splat(l2x2);
    long i = 0;
    for (; i + 16 <= n; i += 16) {
        chk_v16 wi = chk_load(w + i);
        chk_v16 gi = chk_load(g + i) + vl2 * wi;
        chk_v16 mi = chk_load(m + i), vi = chk_load(v + i);
        chk_v16 m2 = mi + (gi - mi) * vc1;
        chk_v16 v2 = vi + (gi * gi - vi) * vc2;
        chk_store(m + i, m2); chk_store(v + i, v2);
        chk_store(w + i, wi - m2 * va / (chk_sqrt(v2) + veps));
    }
    for (; i < n; i++) {
        float gi = g[i] + l2x2 * w[i];
        w[i] = chk_adam1(w[i], gi, m + i, v + i, p.c1, p.c2, p.alpha, p.eps);
    }
}

CHK_ATTR static double CHK_FN(first_layer)(const chk_first_layer *a, long row_lo, long row_hi) {
    const long f = a->f, f16 = f & ~15L;
    const chk_adam_params p = a->adam;
    const chk_v16 vc1 = chk_splat(p.c1), vc2 = chk_splat(p.c2), va = chk_splat(p.alpha), veps = chk_splat(p.eps);
    const chk_v16 vl2 = chk_splat(a->l2x2);
    const float l2x2 = a->l2x2;
    const float *cs = a->cs;
    const int bn = a->gamma != 0;
    double sq = 0;
    for (long j = row_lo; j < row_hi; j++) {
        float *wr = a->w + j * f, *mr = a->m + j * f, *vr = a->v + j * f;
        const float *pr = a->p + j * f;
        const float gam = bn ? a->gamma[j] : 1.0f, bet = bn ? a->beta[j] : 0.0f;
        const chk_v16 vgam = chk_splat(gam), vbet = chk_splat(bet);
        chk_v16 dg16 = chk_splat(0), db16 = chk_splat(0), sq16 = chk_splat(0);
        long k = 0;
        if (bn) {
            for (; k < f16; k += 16) {
                chk_v16 wk = chk_load(wr + k), pk = chk_load(pr + k), ck = chk_load(cs + k);
                dg16 += wk * pk; db16 += wk * ck; sq16 += wk * wk;
                chk_v16 g = vgam * pk + vbet * ck + vl2 * wk;
                chk_v16 m = chk_load(mr + k), v = chk_load(vr + k);
                chk_v16 m2 = m + (g - m) * vc1;
                chk_v16 v2 = v + (g * g - v) * vc2;
                chk_store(mr + k, m2); chk_store(vr + k, v2);
                chk_store(wr + k, wk - m2 * va / (chk_sqrt(v2) + veps));
            }
        } else {
            for (; k < f16; k += 16) {
                chk_v16 wk = chk_load(wr + k), pk = chk_load(pr + k);
                sq16 += wk * wk;
                chk_v16 g = pk + vl2 * wk;
                chk_v16 m = chk_load(mr + k), v = chk_load(vr + k);
                chk_v16 m2 = m + (g - m) * vc1;
                chk_v16 v2 = v + (g * g - v) * vc2;
                chk_store(mr + k, m2); chk_store(vr + k, v2);
                chk_store(wr + k, wk - m2 * va / (chk_sqrt(v2) + veps));
            }
        }
        float dg = 0, db = 0, sqs = 0;
        for (; k < f; k++) {   // remainder (all of a linear head's few classes)
            float wk = wr[k], pk = pr[k], ck = cs[k];
            dg += wk * pk; db += wk * ck; sqs += wk * wk;
            float g = (bn ? gam * pk + bet * ck : pk) + l2x2 * wk;
            wr[k] = chk_adam1(wk, g, mr + k, vr + k, p.c1, p.c2, p.alpha, p.eps);
        }
        dg = chk_hsum(dg16) + dg; db = chk_hsum(db16) + db; sqs = chk_hsum(sq16) + sqs;
        sq += (double)sqs;
        if (bn) {
            a->gamma[j] = chk_adam1(a->gamma[j], dg, a->m_gamma + j, a->v_gamma + j, p.c1, p.c2, p.alpha, p.eps);
            a->beta[j] = chk_adam1(a->beta[j], db, a->m_beta + j, a->v_beta + j, p.c1, p.c2, p.alpha, p.eps);
        }
    }
    return sq;
}

CHK_ATTR static void CHK_FN(batchnorm)(long batch, long col_lo, long col_hi, long ld,
                                       const float *src, const long *rows, long src_ld,
                                       float *xhat, float *out, const float *gamma, const float *beta,
                                       float *moving_mean, float *moving_var, float *mean, float *istd,
                                       float momentum, float epsilon) {
    const long lo = col_lo, n = col_hi - col_lo;
    const float inv = 1.0f / (float)batch, keep = 1.0f - momentum;
    float *mr = mean + lo, *sr = istd + lo;
    for (long j = 0; j < n; j++) { mr[j] = 0; sr[j] = 0; }
    // The batch rows are scattered over the data set (usually not in cache): request all of them
    // up front so the misses overlap instead of being paid one row at a time.
    if (rows) {
        for (long i = 0; i < batch; i++) {
            const char *r = (const char *)(src + rows[i] * src_ld + lo);
            for (long b = 0; b < n * 4; b += 64) __builtin_prefetch(r + b);
        }
    }
    // Pass 1: column sums (columns innermost, contiguous).
    for (long i = 0; i < batch; i++) {
        const float *r = src + (rows ? rows[i] : i) * src_ld + lo;
        long j = 0;
        for (; j + 16 <= n; j += 16) chk_store(mr + j, chk_load(mr + j) + chk_load(r + j));
        for (; j < n; j++) mr[j] += r[j];
    }
    for (long j = 0; j < n; j++) mr[j] *= inv;
    // Pass 2: centred second moment (numerically safer than E[x^2] - E[x]^2).
    for (long i = 0; i < batch; i++) {
        const float *r = src + (rows ? rows[i] : i) * src_ld + lo;
        long j = 0;
        for (; j + 16 <= n; j += 16) { chk_v16 d = chk_load(r + j) - chk_load(mr + j); chk_store(sr + j, chk_load(sr + j) + d * d); }
        for (; j < n; j++) { float d = r[j] - mr[j]; sr[j] += d * d; }
    }
    {
        float *mm = moving_mean + lo, *mv = moving_var + lo;
        const chk_v16 vinv = chk_splat(inv), vmom = chk_splat(momentum), vkeep = chk_splat(keep);
        const chk_v16 veps = chk_splat(epsilon), one = chk_splat(1.0f);
        long j = 0;
        for (; j + 16 <= n; j += 16) {
            chk_v16 v = chk_load(sr + j) * vinv;
            chk_store(mm + j, chk_load(mm + j) * vmom + chk_load(mr + j) * vkeep);
            chk_store(mv + j, chk_load(mv + j) * vmom + v * vkeep);
            chk_store(sr + j, one / chk_sqrt(v + veps));
        }
        for (; j < n; j++) {
            float v = sr[j] * inv;
            mm[j] = mm[j] * momentum + mr[j] * keep;
            mv[j] = mv[j] * momentum + v * keep;
            sr[j] = 1.0f / __builtin_sqrtf(v + epsilon);
        }
    }
    // Pass 3: normalise and scale.
    const float *gr = gamma + lo, *br = beta + lo;
    for (long i = 0; i < batch; i++) {
        const float *r = src + (rows ? rows[i] : i) * src_ld + lo;
        float *xr = xhat + i * ld + lo, *orow = out + i * ld + lo;
        long j = 0;
        for (; j + 16 <= n; j += 16) {
            chk_v16 xh = (chk_load(r + j) - chk_load(mr + j)) * chk_load(sr + j);
            chk_store(xr + j, xh);
            chk_store(orow + j, xh * chk_load(gr + j) + chk_load(br + j));
        }
        for (; j < n; j++) { float xh = (r[j] - mr[j]) * sr[j]; xr[j] = xh; orow[j] = xh * gr[j] + br[j]; }
    }
}
