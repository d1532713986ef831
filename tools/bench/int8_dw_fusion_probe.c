/* Times an int8 1x1 convolution (ReLU6, u8 output) followed by an int8 3x3 depthwise convolution
 * (ReLU6), padding 1, at batch 16, nhwc (the layout of the engine's int8 networks), two ways: as two
 * oneDNN primitives, and as one 1x1 primitive with oneDNN's depthwise post-op
 * (dnnl_post_ops_append_dw_k3s1p1 / _k3s2p1 with s8 weights, per-channel scales and a u8 output).
 * The engine fuses such pairs in fp32 and bf16 only (`Builder.fusableDepthwise`): on the 2-core
 * AMD EPYC Zen 5 the fused int8 kernel (`jit_int8_1x1`) took 1.01-1.29x the separate brgemm
 * primitives' time on EfficientNet-Lite0's stride-1 pairs (README, eighth session).
 * The values are arbitrary bytes and scales: only the times mean something.
 *
 * Build and run (oneDNN from Debian's libdnnl-dev; OMP_NUM_THREADS as the engine's threads):
 *   gcc -O2 tools/bench/int8_dw_fusion_probe.c -o /tmp/int8_dw_fusion_probe -ldnnl
 *   OMP_NUM_THREADS=2 /tmp/int8_dw_fusion_probe IN_CHANNELS OUT_CHANNELS SIZE STRIDE   e.g. 16 96 112 1
 */
#include <dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#define C(x) do{dnnl_status_t s=(x); if(s){printf("err %d at %s line %d\n",s,#x,__LINE__); exit(1);}}while(0)
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
dnnl_engine_t eng; dnnl_stream_t st;
dnnl_memory_t mk(const dnnl_memory_desc_t*md){dnnl_memory_t m; C(dnnl_memory_create(&m,md,eng,DNNL_MEMORY_ALLOCATE)); unsigned char*x; dnnl_memory_get_data_handle(m,(void**)&x); size_t n=dnnl_memory_desc_get_size(md); for(size_t i=0;i<n;i++)x[i]=rand()%50; return m;}
double timeit(dnnl_primitive_t p,int n,dnnl_exec_arg_t*a){for(int i=0;i<3;i++)C(dnnl_primitive_execute(p,st,n,a)); dnnl_stream_wait(st); double best=1e9; for(int r=0;r<5;r++){double t0=now(); for(int i=0;i<20;i++)dnnl_primitive_execute(p,st,n,a); dnnl_stream_wait(st); double t=(now()-t0)/20*1e3; if(t<best)best=t;} return best;}
int main(int argc,char**argv){
  if(argc!=5){fprintf(stderr,"usage: %s IN_CHANNELS OUT_CHANNELS SIZE STRIDE (1 or 2)\n",argv[0]);return 2;}
  int mb=16,ic=atoi(argv[1]),oc=atoi(argv[2]),hw=atoi(argv[3]),s=atoi(argv[4]);
  dnnl_engine_create(&eng,dnnl_cpu,0); dnnl_stream_create(&st,eng,dnnl_stream_default_flags);
  int ohw=(hw+2-3)/s+1;
  dnnl_memory_desc_t src,w1,b1,mid,wd,dst;
  dnnl_dims_t sd={mb,ic,hw,hw}, w1d={oc,ic,1,1}, bdd={oc}, md={mb,oc,hw,hw}, wdd={oc,1,1,3,3}, dd={mb,oc,ohw,ohw};
  C(dnnl_memory_desc_init_by_tag(&src,4,sd,dnnl_u8,dnnl_acdb));
  C(dnnl_memory_desc_init_by_tag(&w1,4,w1d,dnnl_s8,dnnl_format_tag_any));
  C(dnnl_memory_desc_init_by_tag(&b1,1,bdd,dnnl_f32,dnnl_a));
  C(dnnl_memory_desc_init_by_tag(&mid,4,md,dnnl_u8,dnnl_acdb));
  C(dnnl_memory_desc_init_by_tag(&wd,5,wdd,dnnl_s8,dnnl_format_tag_any));
  C(dnnl_memory_desc_init_by_tag(&dst,4,dd,dnnl_u8,dnnl_acdb));
  dnnl_dims_t one={1,1},zero={0,0},str={s,s},pad={1,1};
  float *sc=malloc(oc*4); for(int i=0;i<oc;i++)sc[i]=0.01f;
  dnnl_convolution_desc_t c1,c2; C(dnnl_convolution_forward_desc_init(&c1,dnnl_forward_inference,dnnl_convolution_direct,&src,&w1,&b1,&mid,one,zero,zero));
  C(dnnl_convolution_forward_desc_init(&c2,dnnl_forward_inference,dnnl_convolution_direct,&mid,&wd,&b1,&dst,str,pad,pad));
  dnnl_primitive_attr_t a1; dnnl_primitive_attr_create(&a1); dnnl_primitive_attr_set_output_scales(a1,oc,2,sc);
  dnnl_post_ops_t po; dnnl_post_ops_create(&po); dnnl_post_ops_append_eltwise(po,20,dnnl_eltwise_clip_v2,0,6); dnnl_primitive_attr_set_post_ops(a1,po);
  dnnl_primitive_desc_t p1,p2; C(dnnl_primitive_desc_create(&p1,&c1,a1,eng,NULL)); C(dnnl_primitive_desc_create(&p2,&c2,a1,eng,NULL));
  const char*n1,*n2; dnnl_primitive_desc_query(p1,dnnl_query_impl_info_str,0,&n1); dnnl_primitive_desc_query(p2,dnnl_query_impl_info_str,0,&n2);
  dnnl_primitive_t q1,q2; C(dnnl_primitive_create(&q1,p1)); C(dnnl_primitive_create(&q2,p2));
  const dnnl_memory_desc_t*s1=dnnl_primitive_desc_query_md(p1,dnnl_query_scratchpad_md,0), *s2=dnnl_primitive_desc_query_md(p2,dnnl_query_scratchpad_md,0);
  dnnl_memory_t ms=mk(&src), mw1=mk(dnnl_primitive_desc_query_md(p1,dnnl_query_weights_md,0)), mb1=mk(&b1), mm=mk(&mid), mwd=mk(dnnl_primitive_desc_query_md(p2,dnnl_query_weights_md,0)), mdst=mk(&dst), ms1=mk(s1), ms2=mk(s2);
  dnnl_exec_arg_t A1[]={{DNNL_ARG_SRC,ms},{DNNL_ARG_WEIGHTS,mw1},{DNNL_ARG_BIAS,mb1},{DNNL_ARG_DST,mm},{DNNL_ARG_SCRATCHPAD,ms1}};
  dnnl_exec_arg_t A2[]={{DNNL_ARG_SRC,mm},{DNNL_ARG_WEIGHTS,mwd},{DNNL_ARG_BIAS,mb1},{DNNL_ARG_DST,mdst},{DNNL_ARG_SCRATCHPAD,ms2}};
  double t1=timeit(q1,5,A1), t2=timeit(q2,5,A2);
  printf("separate: %s %.3f ms + %s %.3f ms = %.3f\n",n1,t1,n2,t2,t1+t2);
  dnnl_primitive_attr_t af; dnnl_primitive_attr_create(&af); dnnl_primitive_attr_set_output_scales(af,oc,2,sc); dnnl_post_ops_t pf; dnnl_post_ops_create(&pf);
  dnnl_post_ops_append_eltwise(pf,20,dnnl_eltwise_clip_v2,0,6);
  if(s==1) C(dnnl_post_ops_append_dw_k3s1p1(pf,dnnl_s8,dnnl_f32,dnnl_u8,oc,2,sc)); else C(dnnl_post_ops_append_dw_k3s2p1(pf,dnnl_s8,dnnl_f32,dnnl_u8,oc,2,sc));
  dnnl_post_ops_append_eltwise(pf,20,dnnl_eltwise_clip_v2,0,6);
  dnnl_primitive_attr_set_post_ops(af,pf);
  dnnl_primitive_desc_t pfd; dnnl_status_t r=dnnl_primitive_desc_create(&pfd,&c1,af,eng,NULL);
  if(r){printf("fused: not supported (%d)\n",r);return 0;}
  const char*nf; dnnl_primitive_desc_query(pfd,dnnl_query_impl_info_str,0,&nf);
  const dnnl_memory_desc_t*fdst=dnnl_primitive_desc_query_md(pfd,dnnl_query_dst_md,0);
  const dnnl_memory_desc_t*fwd=dnnl_primitive_desc_query_md(pfd,dnnl_query_exec_arg_md,DNNL_ARG_ATTR_POST_OP_DW|DNNL_ARG_WEIGHTS);
  const dnnl_memory_desc_t*fsp=dnnl_primitive_desc_query_md(pfd,dnnl_query_scratchpad_md,0);
  printf("fused dst dims %ld %ld %ld %ld type %d\n",fdst->dims[0],fdst->dims[1],fdst->dims[2],fdst->dims[3],fdst->data_type);
  dnnl_primitive_t qf; C(dnnl_primitive_create(&qf,pfd));
  dnnl_memory_t mfd=mk(fdst), mfw=mk(fwd), msp=mk(fsp);
  dnnl_exec_arg_t AF[]={{DNNL_ARG_SRC,ms},{DNNL_ARG_WEIGHTS,mw1},{DNNL_ARG_BIAS,mb1},{DNNL_ARG_DST,mfd},{DNNL_ARG_ATTR_POST_OP_DW|DNNL_ARG_WEIGHTS,mfw},{DNNL_ARG_ATTR_POST_OP_DW|DNNL_ARG_BIAS,mb1},{DNNL_ARG_SCRATCHPAD,msp}};
  double tf=timeit(qf,7,AF);
  printf("fused: %s %.3f ms\n",nf,tf);
}
