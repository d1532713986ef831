/* Times an fp32 3x3 stride-2 convolution of the image (3 -> 32 channels, 224 -> 112, TF SAME padding,
 * ReLU6; EfficientNet-Lite0's stem) at batch 16 for chosen source and destination layouts, and names
 * the oneDNN kernel. Layouts: 0 any (the kernel chooses), 1 nchw (the engine's plain input),
 * 2 nhwc, 3 16-channel blocks. Why the int8 network's stem keeps the fp32 network's layout
 * (`Builder.keepsFloatLayout`): reading the plain input into channel blocks, `jit:avx512_core`, took
 * 0.93-0.99 ms on the 2-core AMD EPYC Zen 5, against nhwc in and out (`brgconv`) 1.19-1.30 ms plus an
 * input reorder (0.56 ms in the network, README eighth session). Some pairs have only `ref:any`.
 *
 * Build and run (oneDNN from Debian's libdnnl-dev):
 *   gcc -O2 tools/bench/stem_layout_probe.c -o /tmp/stem_layout_probe -ldnnl
 *   OMP_NUM_THREADS=2 /tmp/stem_layout_probe SRC_LAYOUT DST_LAYOUT      e.g. 0 3, and 2 2
 */
#include <dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#define C(x) do{dnnl_status_t s=(x); if(s){printf("err %d at %s line %d\n",s,#x,__LINE__); exit(1);}}while(0)
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
dnnl_engine_t eng; dnnl_stream_t st;
dnnl_memory_t mk(const dnnl_memory_desc_t*md){dnnl_memory_t m; C(dnnl_memory_create(&m,md,eng,DNNL_MEMORY_ALLOCATE)); float*x; dnnl_memory_get_data_handle(m,(void**)&x); size_t n=dnnl_memory_desc_get_size(md)/4; for(size_t i=0;i<n;i++)x[i]=(rand()%100)/100.f; return m;}
double timeit(dnnl_primitive_t p,int n,dnnl_exec_arg_t*a){for(int i=0;i<3;i++)C(dnnl_primitive_execute(p,st,n,a)); dnnl_stream_wait(st); double best=1e9; for(int r=0;r<5;r++){double t0=now(); for(int i=0;i<20;i++)dnnl_primitive_execute(p,st,n,a); dnnl_stream_wait(st); double t=(now()-t0)/20*1e3; if(t<best)best=t;} return best;}
int main(int argc,char**argv){
  if(argc!=3){fprintf(stderr,"usage: %s SRC_LAYOUT DST_LAYOUT (0 any, 1 nchw, 2 nhwc, 3 blocked)\n",argv[0]);return 2;}
  int stag=atoi(argv[1]), dtag=atoi(argv[2]);
  dnnl_format_tag_t tags[]={dnnl_format_tag_any,dnnl_abcd,dnnl_acdb,dnnl_aBcd16b};
  dnnl_engine_create(&eng,dnnl_cpu,0); dnnl_stream_create(&st,eng,dnnl_stream_default_flags);
  dnnl_memory_desc_t src,w,b,dst;
  dnnl_dims_t sd={16,3,224,224}, wd={32,3,3,3}, bd={32}, dd={16,32,112,112};
  C(dnnl_memory_desc_init_by_tag(&src,4,sd,dnnl_f32,tags[stag]));
  C(dnnl_memory_desc_init_by_tag(&w,4,wd,dnnl_f32,dnnl_format_tag_any));
  C(dnnl_memory_desc_init_by_tag(&b,1,bd,dnnl_f32,dnnl_a));
  C(dnnl_memory_desc_init_by_tag(&dst,4,dd,dnnl_f32,tags[dtag]));
  dnnl_dims_t str={2,2},pl={0,0},pr={1,1};
  dnnl_convolution_desc_t c; C(dnnl_convolution_forward_desc_init(&c,dnnl_forward_inference,dnnl_convolution_direct,&src,&w,&b,&dst,str,pl,pr));
  dnnl_primitive_attr_t a; dnnl_primitive_attr_create(&a); dnnl_primitive_attr_set_scratchpad_mode(a,dnnl_scratchpad_mode_user);
  dnnl_post_ops_t po; dnnl_post_ops_create(&po); dnnl_post_ops_append_eltwise(po,1,dnnl_eltwise_clip_v2,0,6); dnnl_primitive_attr_set_post_ops(a,po);
  dnnl_primitive_desc_t p; dnnl_status_t r=dnnl_primitive_desc_create(&p,&c,a,eng,NULL); if(r){printf("unsupported %d\n",r);return 0;}
  const char*n; dnnl_primitive_desc_query(p,dnnl_query_impl_info_str,0,&n);
  dnnl_primitive_t q; C(dnnl_primitive_create(&q,p));
  const dnnl_memory_desc_t*sp=dnnl_primitive_desc_query_md(p,dnnl_query_scratchpad_md,0);
  dnnl_memory_t ms=mk(dnnl_primitive_desc_query_md(p,dnnl_query_src_md,0)), mw=mk(dnnl_primitive_desc_query_md(p,dnnl_query_weights_md,0)), mb=mk(&b), md=mk(dnnl_primitive_desc_query_md(p,dnnl_query_dst_md,0)), msp=mk(sp);
  dnnl_exec_arg_t A[]={{DNNL_ARG_SRC,ms},{DNNL_ARG_WEIGHTS,mw},{DNNL_ARG_BIAS,mb},{DNNL_ARG_DST,md},{DNNL_ARG_SCRATCHPAD,msp}};
  printf("src %d dst %d: %s %.3f ms\n",stag,dtag,n,timeit(q,5,A));
}
