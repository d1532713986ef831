/* Times one fp32 3x3 stride-1 convolution (padding 1, ReLU) at batch N, direct against Winograd
 * (oneDNN's dnnl_convolution_direct and dnnl_convolution_winograd), as the engine creates it: source
 * and destination nChw16c, except a source of fewer than 8 channels (the image), whose layout the
 * kernel picks. Single primitives, best of 20 runs after 3 warm-up runs, on OMP_NUM_THREADS threads.
 * Why the engine keeps the image's own convolution direct (ConvolutionAlgorithm.swift; README).
 * oneDNN 2.6 has Winograd kernels for AVX-512 only; elsewhere the second line says "no kernel".
 *
 * Build and run (oneDNN from Debian's libdnnl-dev):
 *   gcc -O2 tools/bench/winograd_probe.c -o /tmp/winograd_probe -ldnnl
 *   /tmp/winograd_probe IN_CHANNELS OUT_CHANNELS SIZE [BATCH=16]     e.g. 3 64 224 (VGG16's block1.conv1)
 */
#include <dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define C(x) do { dnnl_status_t s_ = (x); if (s_) { fprintf(stderr, "oneDNN error %d: %s\n", s_, #x); exit(1); } } while (0)

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }

static dnnl_memory_t filled(const dnnl_memory_desc_t *md, dnnl_engine_t eng) {
    dnnl_memory_t m;
    C(dnnl_memory_create(&m, md, eng, DNNL_MEMORY_ALLOCATE));
    float *x;
    C(dnnl_memory_get_data_handle(m, (void **)&x));
    size_t n = dnnl_memory_desc_get_size(md) / sizeof(float);
    for (size_t i = 0; i < n; i++) x[i] = (float)((i * 7919) % 1000) / 1000.0f - 0.5f;
    return m;
}

static void run(dnnl_engine_t eng, dnnl_stream_t st, int n, int ic, int oc, int hw, dnnl_alg_kind_t alg, const char *what) {
    dnnl_memory_desc_t src, w, b, dst;
    dnnl_dims_t sd = {n, ic, hw, hw}, wd = {oc, ic, 3, 3}, bd = {oc}, dd = {n, oc, hw, hw};
    C(dnnl_memory_desc_init_by_tag(&src, 4, sd, dnnl_f32, ic < 8 ? dnnl_format_tag_any : dnnl_aBcd16b));
    C(dnnl_memory_desc_init_by_tag(&w, 4, wd, dnnl_f32, dnnl_format_tag_any));
    C(dnnl_memory_desc_init_by_tag(&b, 1, bd, dnnl_f32, dnnl_a));
    C(dnnl_memory_desc_init_by_tag(&dst, 4, dd, dnnl_f32, dnnl_aBcd16b));
    dnnl_convolution_desc_t cd;
    dnnl_dims_t one = {1, 1}, pad = {1, 1};
    C(dnnl_convolution_forward_desc_init(&cd, dnnl_forward_inference, alg, &src, &w, &b, &dst, one, pad, pad));
    dnnl_primitive_attr_t attr;
    dnnl_post_ops_t po;
    C(dnnl_primitive_attr_create(&attr));
    C(dnnl_post_ops_create(&po));
    C(dnnl_post_ops_append_eltwise(po, 1, dnnl_eltwise_relu, 0, 0));
    C(dnnl_primitive_attr_set_post_ops(attr, po));
    dnnl_primitive_desc_t pd;
    if (dnnl_primitive_desc_create(&pd, &cd, attr, eng, NULL) != dnnl_success) { printf("%-9s no kernel on this CPU\n", what); return; }
    const char *impl;
    C(dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl));
    dnnl_primitive_t p;
    C(dnnl_primitive_create(&p, pd));
    dnnl_memory_t ms = filled(dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0), eng);
    dnnl_memory_t mw = filled(dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0), eng);
    dnnl_memory_t mb = filled(&b, eng);
    dnnl_memory_t md = filled(dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0), eng);
    dnnl_memory_t msp = filled(dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0), eng);
    dnnl_exec_arg_t args[] = {{DNNL_ARG_SRC, ms}, {DNNL_ARG_WEIGHTS, mw}, {DNNL_ARG_BIAS, mb}, {DNNL_ARG_DST, md}, {DNNL_ARG_SCRATCHPAD, msp}};
    double best = 1e30;
    for (int i = 0; i < 23; i++) {
        double t0 = now();
        C(dnnl_primitive_execute(p, st, 5, args));
        C(dnnl_stream_wait(st));
        if (i >= 3 && now() - t0 < best) best = now() - t0;
    }
    double flop = 2.0 * n * oc * hw * hw * ic * 9;
    printf("%-9s %-26s %8.2f ms  %6.0f GFLOP/s counted as direct\n", what, impl, best * 1e3, flop / best / 1e9);
}

int main(int argc, char **argv) {
    if (argc < 4 || argc > 5) {
        fprintf(stderr, "usage: %s IN_CHANNELS OUT_CHANNELS SIZE [BATCH=16]\n", argv[0]);
        return 2;
    }
    int ic = atoi(argv[1]), oc = atoi(argv[2]), hw = atoi(argv[3]), n = argc == 5 ? atoi(argv[4]) : 16;
    dnnl_engine_t eng;
    dnnl_stream_t st;
    C(dnnl_engine_create(&eng, dnnl_cpu, 0));
    C(dnnl_stream_create(&st, eng, dnnl_stream_default_flags));
    printf("batch %d, %d -> %d channels, %dx%d, 3x3 stride 1\n", n, ic, oc, hw, hw);
    run(eng, st, n, ic, oc, hw, dnnl_convolution_direct, "direct");
    run(eng, st, n, ic, oc, hw, dnnl_convolution_winograd, "winograd");
    return 0;
}
