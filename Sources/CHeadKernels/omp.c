// Parallel loops on OpenMP's own threads (libgomp, which oneDNN's GEMMs already run on), for the
// fine-tuner's loops around its GEMMs: one pool of threads for the whole step instead of libdispatch
// workers competing with OpenMP threads that spin-wait between GEMMs (3-4 busy threads on 2 cores).
// libgomp's ABI entry points are declared here so no -fopenmp flag is needed.
#include "CHeadKernels.h"

extern void GOMP_parallel(void (*fn)(void *), void *data, unsigned num_threads, unsigned flags);
extern int omp_get_thread_num(void);
extern int omp_get_num_threads(void);

struct chk_omp_job { long count; chk_task_fn fn; void *ctx; };

static void chk_omp_body(void *p) {
    const struct chk_omp_job *job = p;
    // Parts are spread over however many threads the team got (all of them run when it got fewer).
    for (long i = omp_get_thread_num(); i < job->count; i += omp_get_num_threads()) job->fn(job->ctx, i);
}

void chk_omp_run(long count, chk_task_fn fn, void *ctx) {
    struct chk_omp_job job = { count, fn, ctx };
    GOMP_parallel(chk_omp_body, &job, (unsigned)count, 0);
}
