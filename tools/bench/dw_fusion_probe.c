/* Times a 1x1 convolution (swish) followed by a 3x3 depthwise convolution (swish), padding 1, at
 * batch 16, fp32, nChw16c, two ways: as two oneDNN primitives, and as one 1x1 primitive with
 * oneDNN's depthwise post-op (dnnl_post_ops_append_dw_k3s1p1 / _k3s2p1), which never writes the
 * wide 1x1 output to memory: the two ways the engine can run EfficientNet's expand + depthwise
 * pairs (it fuses them, `Builder.fusableDepthwise`; README, "Fused expansion + depthwise").
 *
 * Build and run (oneDNN from Debian's libdnnl-dev; OMP_NUM_THREADS as the engine's threads):
 *   gcc -O2 tools/bench/dw_fusion_probe.c -o /tmp/dw_fusion_probe -ldnnl
 *   /tmp/dw_fusion_probe IN_CHANNELS OUT_CHANNELS SIZE STRIDE     e.g. 16 96 112 2 (B0's second block)
 */
#include <dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#define C(x) do{dnnl_status_t s=(x); if(s){printf("err %d at %s line %d\n",s,#x,__LINE__); exit(1);}}while(0)
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
dnnl_engine_t eng; dnnl_stream_t st;
dnnl_memory_t mk(const dnnl_memory_desc_t*md){dnnl_memory_t m; C(dnnl_memory_create(&m,md,eng,DNNL_MEMORY_ALLOCATE)); float*x; dnnl_memory_get_data_handle(m,(void**)&x); size_t n=dnnl_memory_desc_get_size(md)/4; for(size_t i=0;i<n;i++)x[i]=(rand()%1000)/1000.0f-0.5f; return m;}
double timeit(dnnl_primitive_t p,int n,dnnl_exec_arg_t*a){for(int i=0;i<3;i++)C(dnnl_primitive_execute(p,st,n,a)); dnnl_stream_wait(st); double t0=now(); for(int i=0;i<30;i++)dnnl_primitive_execute(p,st,n,a); dnnl_stream_wait(st); return (now()-t0)/30*1e3;}
int main(int argc,char**argv){
  if(argc!=5){fprintf(stderr,"usage: %s IN_CHANNELS OUT_CHANNELS SIZE STRIDE (1 or 2)\n",argv[0]);return 2;}
  int mb=16,ic=atoi(argv[1]),oc=atoi(argv[2]),hw=atoi(argv[3]),s=atoi(argv[4]);
  dnnl_engine_create(&eng,dnnl_cpu,0); dnnl_stream_create(&st,eng,dnnl_stream_default_flags);
  int ohw=(hw+2-3)/s+1;
  dnnl_memory_desc_t src,w1,b1,mid,wd,dst;
  dnnl_dims_t sd={mb,ic,hw,hw}, w1d={oc,ic,1,1}, bdd={oc}, md={mb,oc,hw,hw}, wdd={oc,1,1,3,3}, dd={mb,oc,ohw,ohw};
  C(dnnl_memory_desc_init_by_tag(&src,4,sd,dnnl_f32,dnnl_aBcd16b));
  C(dnnl_memory_desc_init_by_tag(&w1,4,w1d,dnnl_f32,dnnl_format_tag_any));
  C(dnnl_memory_desc_init_by_tag(&b1,1,bdd,dnnl_f32,dnnl_a));
  C(dnnl_memory_desc_init_by_tag(&mid,4,md,dnnl_f32,dnnl_aBcd16b));
  C(dnnl_memory_desc_init_by_tag(&wd,5,wdd,dnnl_f32,dnnl_format_tag_any));
  C(dnnl_memory_desc_init_by_tag(&dst,4,dd,dnnl_f32,dnnl_aBcd16b));
  dnnl_dims_t one={1,1},zero={0,0},str={s,s},pad={1,1};
  // separate
  dnnl_convolution_desc_t c1,c2; C(dnnl_convolution_forward_desc_init(&c1,dnnl_forward_inference,dnnl_convolution_direct,&src,&w1,&b1,&mid,one,zero,zero));
  C(dnnl_convolution_forward_desc_init(&c2,dnnl_forward_inference,dnnl_convolution_direct,&mid,&wd,&b1,&dst,str,pad,pad));
  dnnl_primitive_attr_t a1; dnnl_primitive_attr_create(&a1); dnnl_post_ops_t po; dnnl_post_ops_create(&po); dnnl_post_ops_append_eltwise(po,1,dnnl_eltwise_swish,1,0); dnnl_primitive_attr_set_post_ops(a1,po);
  dnnl_primitive_desc_t p1,p2; C(dnnl_primitive_desc_create(&p1,&c1,a1,eng,NULL)); C(dnnl_primitive_desc_create(&p2,&c2,a1,eng,NULL));
  const char*n1,*n2; dnnl_primitive_desc_query(p1,dnnl_query_impl_info_str,0,&n1); dnnl_primitive_desc_query(p2,dnnl_query_impl_info_str,0,&n2);
  dnnl_primitive_t q1,q2; C(dnnl_primitive_create(&q1,p1)); C(dnnl_primitive_create(&q2,p2));
  dnnl_memory_t ms=mk(&src), mw1=mk(dnnl_primitive_desc_query_md(p1,dnnl_query_weights_md,0)), mb1=mk(&b1), mm=mk(&mid), mwd=mk(dnnl_primitive_desc_query_md(p2,dnnl_query_weights_md,0)), mdst=mk(&dst);
  dnnl_exec_arg_t A1[]={{DNNL_ARG_SRC,ms},{DNNL_ARG_WEIGHTS,mw1},{DNNL_ARG_BIAS,mb1},{DNNL_ARG_DST,mm}};
  dnnl_exec_arg_t A2[]={{DNNL_ARG_SRC,mm},{DNNL_ARG_WEIGHTS,mwd},{DNNL_ARG_BIAS,mb1},{DNNL_ARG_DST,mdst}};
  double t1=timeit(q1,4,A1), t2=timeit(q2,4,A2);
  printf("separate: %s %.2f ms + %s %.2f ms = %.2f\n",n1,t1,n2,t2,t1+t2);
  // fused
  dnnl_primitive_attr_t af; dnnl_primitive_attr_create(&af); dnnl_post_ops_t pf; dnnl_post_ops_create(&pf);
  dnnl_post_ops_append_eltwise(pf,1,dnnl_eltwise_swish,1,0);
  {float one_=1.f; if(s==1) C(dnnl_post_ops_append_dw_k3s1p1(pf,dnnl_f32,dnnl_f32,dnnl_f32,1,0,&one_)); else C(dnnl_post_ops_append_dw_k3s2p1(pf,dnnl_f32,dnnl_f32,dnnl_f32,1,0,&one_));}
  dnnl_post_ops_append_eltwise(pf,1,dnnl_eltwise_swish,1,0);
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
  printf("fused: %s %.2f ms\n",nf,tf);
}
