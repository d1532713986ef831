/* Times a 1x1 convolution followed by a 3x3 depthwise convolution, padding 1, at batch 16, two ways:
 * as two oneDNN primitives, and as one 1x1 primitive with oneDNN's depthwise post-op
 * (dnnl_post_ops_append_dw_k3s1p1 / _k3s2p1), which never writes the wide 1x1 output to memory.
 *
 * fp32 (default): nChw16c, swish after each convolution: the two ways the engine can run
 * EfficientNet's expand + depthwise pairs (it fuses them, `Builder.fusableDepthwise`; README,
 * "Fused expansion + depthwise").
 * int8 (fifth argument `int8`): nhwc u8 activations, s8 weights with per-channel scales, ReLU6, as
 * in the engine's int8 networks, which keep the pairs apart: on the 2-core AMD EPYC Zen 5 the fused
 * int8 kernel (`jit_int8_1x1`) took 1.08x the separate brgemm primitives' time on EfficientNet-
 * Lite0's 56x56 pair (24 144 56 1) and 0.92x on its two 14x14 ones (80 480 14 1): no gain in all
 * (README, eighth session). The values and scales are arbitrary: only the times mean something.
 *
 * Build and run (oneDNN from Debian's libdnnl-dev; OMP_NUM_THREADS as the engine's threads):
 *   gcc -O2 tools/bench/dw_fusion_probe.c -o /tmp/dw_fusion_probe -ldnnl
 *   /tmp/dw_fusion_probe IN_CHANNELS OUT_CHANNELS SIZE STRIDE [int8]   e.g. 16 96 112 2 (B0's second block)
 */
#include <dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#define C(x) do{dnnl_status_t s=(x); if(s){printf("err %d at %s line %d\n",s,#x,__LINE__); exit(1);}}while(0)
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
dnnl_engine_t eng; dnnl_stream_t st;
int int8;
/* A buffer for `md`, filled with values in [-0.5, 0.5) (fp32) or bytes 0-49 (int8). */
dnnl_memory_t mk(const dnnl_memory_desc_t*md){
  dnnl_memory_t m; C(dnnl_memory_create(&m,md,eng,DNNL_MEMORY_ALLOCATE)); void*p; dnnl_memory_get_data_handle(m,&p);
  size_t bytes=dnnl_memory_desc_get_size(md);
  if(int8){unsigned char*x=p; for(size_t i=0;i<bytes;i++)x[i]=rand()%50;}
  else{float*x=p; for(size_t i=0;i<bytes/4;i++)x[i]=(rand()%1000)/1000.0f-0.5f;}
  return m;}
/* Best of 5 timings of 20 runs each, ms per run. */
double timeit(dnnl_primitive_t p,int n,dnnl_exec_arg_t*a){for(int i=0;i<3;i++)C(dnnl_primitive_execute(p,st,n,a)); dnnl_stream_wait(st); double best=1e9; for(int r=0;r<5;r++){double t0=now(); for(int i=0;i<20;i++)dnnl_primitive_execute(p,st,n,a); dnnl_stream_wait(st); double t=(now()-t0)/20*1e3; if(t<best)best=t;} return best;}
/* The activation after each convolution, and the output scales (int8). */
void attrs(dnnl_post_ops_t po){ if(int8) dnnl_post_ops_append_eltwise(po,20,dnnl_eltwise_clip_v2,0,6); else dnnl_post_ops_append_eltwise(po,1,dnnl_eltwise_swish,1,0); }
int main(int argc,char**argv){
  if(argc!=5&&!(argc==6&&!strcmp(argv[5],"int8"))){fprintf(stderr,"usage: %s IN_CHANNELS OUT_CHANNELS SIZE STRIDE (1 or 2) [int8]\n",argv[0]);return 2;}
  int8=argc==6;
  int mb=16,ic=atoi(argv[1]),oc=atoi(argv[2]),hw=atoi(argv[3]),s=atoi(argv[4]);
  dnnl_engine_create(&eng,dnnl_cpu,0); dnnl_stream_create(&st,eng,dnnl_stream_default_flags);
  dnnl_data_type_t act=int8?dnnl_u8:dnnl_f32, wt=int8?dnnl_s8:dnnl_f32; dnnl_format_tag_t tag=int8?dnnl_acdb:dnnl_aBcd16b;
  float*sc=malloc(oc*sizeof(float)); for(int i=0;i<oc;i++)sc[i]=0.01f;
  int ohw=(hw+2-3)/s+1;
  dnnl_memory_desc_t src,w1,b1,mid,wd,dst;
  dnnl_dims_t sd={mb,ic,hw,hw}, w1d={oc,ic,1,1}, bdd={oc}, md={mb,oc,hw,hw}, wdd={oc,1,1,3,3}, dd={mb,oc,ohw,ohw};
  C(dnnl_memory_desc_init_by_tag(&src,4,sd,act,tag));
  C(dnnl_memory_desc_init_by_tag(&w1,4,w1d,wt,dnnl_format_tag_any));
  C(dnnl_memory_desc_init_by_tag(&b1,1,bdd,dnnl_f32,dnnl_a));
  C(dnnl_memory_desc_init_by_tag(&mid,4,md,act,tag));
  C(dnnl_memory_desc_init_by_tag(&wd,5,wdd,wt,dnnl_format_tag_any));
  C(dnnl_memory_desc_init_by_tag(&dst,4,dd,act,tag));
  dnnl_dims_t one={1,1},zero={0,0},str={s,s},pad={1,1};
  // separate
  dnnl_convolution_desc_t c1,c2; C(dnnl_convolution_forward_desc_init(&c1,dnnl_forward_inference,dnnl_convolution_direct,&src,&w1,&b1,&mid,one,zero,zero));
  C(dnnl_convolution_forward_desc_init(&c2,dnnl_forward_inference,dnnl_convolution_direct,&mid,&wd,&b1,&dst,str,pad,pad));
  dnnl_primitive_attr_t a1; dnnl_primitive_attr_create(&a1); dnnl_primitive_attr_set_scratchpad_mode(a1,dnnl_scratchpad_mode_user);
  if(int8) dnnl_primitive_attr_set_output_scales(a1,oc,2,sc);
  dnnl_post_ops_t po; dnnl_post_ops_create(&po); attrs(po); dnnl_primitive_attr_set_post_ops(a1,po);
  dnnl_primitive_desc_t p1,p2; C(dnnl_primitive_desc_create(&p1,&c1,a1,eng,NULL)); C(dnnl_primitive_desc_create(&p2,&c2,a1,eng,NULL));
  const char*n1,*n2; dnnl_primitive_desc_query(p1,dnnl_query_impl_info_str,0,&n1); dnnl_primitive_desc_query(p2,dnnl_query_impl_info_str,0,&n2);
  dnnl_primitive_t q1,q2; C(dnnl_primitive_create(&q1,p1)); C(dnnl_primitive_create(&q2,p2));
  dnnl_memory_t ms=mk(&src), mw1=mk(dnnl_primitive_desc_query_md(p1,dnnl_query_weights_md,0)), mb1=mk(&b1), mm=mk(&mid), mwd=mk(dnnl_primitive_desc_query_md(p2,dnnl_query_weights_md,0)), mdst=mk(&dst);
  dnnl_memory_t ms1=mk(dnnl_primitive_desc_query_md(p1,dnnl_query_scratchpad_md,0)), ms2=mk(dnnl_primitive_desc_query_md(p2,dnnl_query_scratchpad_md,0));
  dnnl_exec_arg_t A1[]={{DNNL_ARG_SRC,ms},{DNNL_ARG_WEIGHTS,mw1},{DNNL_ARG_BIAS,mb1},{DNNL_ARG_DST,mm},{DNNL_ARG_SCRATCHPAD,ms1}};
  dnnl_exec_arg_t A2[]={{DNNL_ARG_SRC,mm},{DNNL_ARG_WEIGHTS,mwd},{DNNL_ARG_BIAS,mb1},{DNNL_ARG_DST,mdst},{DNNL_ARG_SCRATCHPAD,ms2}};
  double t1=timeit(q1,5,A1), t2=timeit(q2,5,A2);
  printf("separate: %s %.3f ms + %s %.3f ms = %.3f\n",n1,t1,n2,t2,t1+t2);
  // fused
  dnnl_primitive_attr_t af; dnnl_primitive_attr_create(&af); dnnl_primitive_attr_set_scratchpad_mode(af,dnnl_scratchpad_mode_user);
  if(int8) dnnl_primitive_attr_set_output_scales(af,oc,2,sc);
  dnnl_post_ops_t pf; dnnl_post_ops_create(&pf); attrs(pf);
  {float one_=1.f; int count=int8?oc:1, mask=int8?2:0; const float*scales=int8?sc:&one_;
   if(s==1) C(dnnl_post_ops_append_dw_k3s1p1(pf,wt,dnnl_f32,act,count,mask,scales)); else C(dnnl_post_ops_append_dw_k3s2p1(pf,wt,dnnl_f32,act,count,mask,scales));}
  attrs(pf);
  dnnl_primitive_attr_set_post_ops(af,pf);
  dnnl_primitive_desc_t pfd; dnnl_status_t r=dnnl_primitive_desc_create(&pfd,&c1,af,eng,NULL);
  if(r){printf("fused: not supported (%d)\n",r);return 0;}
  const char*nf; dnnl_primitive_desc_query(pfd,dnnl_query_impl_info_str,0,&nf);
  const dnnl_memory_desc_t*fdst=dnnl_primitive_desc_query_md(pfd,dnnl_query_dst_md,0);
  const dnnl_memory_desc_t*fwd=dnnl_primitive_desc_query_md(pfd,dnnl_query_exec_arg_md,DNNL_ARG_ATTR_POST_OP_DW|DNNL_ARG_WEIGHTS);
  const dnnl_memory_desc_t*fsp=dnnl_primitive_desc_query_md(pfd,dnnl_query_scratchpad_md,0);
  printf("fused dst dims %ld %ld %ld %ld\n",fdst->dims[0],fdst->dims[1],fdst->dims[2],fdst->dims[3]);
  dnnl_primitive_t qf; C(dnnl_primitive_create(&qf,pfd));
  dnnl_memory_t mfd=mk(fdst), mfw=mk(fwd), msp=mk(fsp);
  dnnl_exec_arg_t AF[]={{DNNL_ARG_SRC,ms},{DNNL_ARG_WEIGHTS,mw1},{DNNL_ARG_BIAS,mb1},{DNNL_ARG_DST,mfd},{DNNL_ARG_ATTR_POST_OP_DW|DNNL_ARG_WEIGHTS,mfw},{DNNL_ARG_ATTR_POST_OP_DW|DNNL_ARG_BIAS,mb1},{DNNL_ARG_SCRATCHPAD,msp}};
  double tf=timeit(qf,7,AF);
  printf("fused: %s %.3f ms\n",nf,tf);
}
