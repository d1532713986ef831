// A small fork-join pool for the trainer's two parallel regions per step.
//
// Workers spin briefly (about the length of the serial part of a training step) before blocking
// on a condition variable, so back-to-back regions do not pay a futex wake-up each, while an
// idle or oversubscribed pool does not burn CPU. Which thread runs a chunk never changes the
// results (chunks write disjoint outputs).
//
// Chunks have homes: with T threads, thread t (the caller is 0) first runs chunks
// [t * count / T, (t + 1) * count / T), then takes any chunk still unclaimed. A training step's
// regions give chunk c the same rows of the first layer's weights and Adam moments every time,
// so each thread keeps its rows in its own caches instead of fetching them from the other core.
// That matters where the two cores share no cache: on the project's 2-core VM the host sometimes
// places its two vCPUs on cores a 367-417 ns cache-line round trip apart (75-119 ns at other
// times; tools/bench/core_latency.c); an epoch of `train-head bench-epoch --threads 2` then took
// a median 0.090 s with chunks claimed first come, first served, 0.081 s with homes, and 0.061
// either way on near cores (tools/bench/core_placement.sh; README: Benchmarks, eighth session).
// Up to 32 chunks (a mask of claims tagged with the job's generation, so a thread late for one
// job cannot take a chunk of the next); more are claimed in order, without homes.
#include "CHeadKernels.h"
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <stdint.h>

#if defined(__x86_64__)
#define CHK_PAUSE() __builtin_ia32_pause()
#else
#define CHK_PAUSE() ((void)0)
#endif

/// Spin iterations (pause ~ 10-40 ns each) before a worker blocks / the caller yields.
#define CHK_SPIN 4000

struct chk_pool {
    int workers;
    pthread_t *tid;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    // Job, written by the caller under `mu`.
    uint32_t job_gen;
    long count;
    chk_task_fn fn;
    void *ctx;
    // Lock-free state.
    uint64_t gen;        // generation of the latest job (atomic)
    uint64_t next;       // (generation << 32) | next chunk index (atomic), jobs of more than 32 chunks
    uint64_t claimed;    // (generation << 32) | bit c: chunk c is taken (atomic), jobs of up to 32 chunks
    struct chk_worker { chk_pool *pool; int self; } *args;
    long done;           // chunks finished in the current job (atomic)
    int sleepers;        // workers blocked on cv (under mu)
    int stop;            // under mu
};

/// Runs chunk c of job `gen` unless another thread claimed it (or the job is over).
static void chk_pool_claim(chk_pool *p, uint32_t gen, long c, chk_task_fn fn, void *ctx) {
    uint64_t bit = (uint64_t)1 << c;
    uint64_t v = __atomic_load_n(&p->claimed, __ATOMIC_ACQUIRE);
    do {
        if ((uint32_t)(v >> 32) != gen || (v & bit)) return;
    } while (!__atomic_compare_exchange_n(&p->claimed, &v, v | bit, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE));
    fn(ctx, c);
    __atomic_fetch_add(&p->done, 1, __ATOMIC_RELEASE);
}

/// Thread `self` of `threads` (the caller is 0) works on job `gen`: its home chunks, then the rest.
static void chk_pool_work(chk_pool *p, uint32_t gen, long count, chk_task_fn fn, void *ctx, int self, int threads) {
    if (count <= 32) {
        long home = self * count / threads, end = (self + 1) * count / threads;
        for (long c = home; c < end; c++) chk_pool_claim(p, gen, c, fn, ctx);
        for (long k = 0; k < count; k++) {
            long c = (end + k) % count;
            if (c < home || c >= end) chk_pool_claim(p, gen, c, fn, ctx);
        }
        return;
    }
    for (;;) {
        uint64_t v = __atomic_load_n(&p->next, __ATOMIC_ACQUIRE);
        if ((uint32_t)(v >> 32) != gen || (long)(v & 0xffffffffu) >= count) return;
        if (!__atomic_compare_exchange_n(&p->next, &v, v + 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) continue;
        fn(ctx, (long)(v & 0xffffffffu));
        __atomic_fetch_add(&p->done, 1, __ATOMIC_RELEASE);
    }
}

static void *chk_pool_main(void *arg) {
    chk_pool *p = ((struct chk_worker *)arg)->pool;
    int self = ((struct chk_worker *)arg)->self;
    uint32_t seen = 0;
    for (;;) {
        int spins = 0;
        while ((uint32_t)__atomic_load_n(&p->gen, __ATOMIC_ACQUIRE) == seen && spins < CHK_SPIN) { CHK_PAUSE(); spins++; }
        pthread_mutex_lock(&p->mu);
        while (p->job_gen == seen && !p->stop) {
            p->sleepers++;
            pthread_cond_wait(&p->cv, &p->mu);
            p->sleepers--;
        }
        if (p->stop) { pthread_mutex_unlock(&p->mu); return 0; }
        uint32_t gen = p->job_gen;
        long count = p->count;
        chk_task_fn fn = p->fn;
        void *ctx = p->ctx;
        pthread_mutex_unlock(&p->mu);
        seen = gen;
        chk_pool_work(p, gen, count, fn, ctx, self, p->workers + 1);
    }
}

chk_pool *chk_pool_create(int threads) {
    if (threads < 2) return 0;
    chk_pool *p = calloc(1, sizeof *p);
    if (!p) return 0;
    p->workers = threads - 1;
    p->tid = calloc((size_t)p->workers, sizeof(pthread_t));
    p->args = calloc((size_t)p->workers, sizeof *p->args);
    if (!p->tid || !p->args) { free(p->tid); free(p->args); free(p); return 0; }
    pthread_mutex_init(&p->mu, 0);
    pthread_cond_init(&p->cv, 0);
    int started = 0;
    for (int i = 0; i < p->workers; i++) {
        p->args[i] = (struct chk_worker){ p, i + 1 };
        if (pthread_create(&p->tid[i], 0, chk_pool_main, &p->args[i]) != 0) break;
        started++;
    }
    p->workers = started;
    if (started == 0) { chk_pool_destroy(p); return 0; }
    return p;
}

void chk_pool_run(chk_pool *p, long count, chk_task_fn fn, void *ctx) {
    if (!p || count <= 1) { for (long i = 0; i < count; i++) fn(ctx, i); return; }
    pthread_mutex_lock(&p->mu);
    uint32_t gen = p->job_gen + 1;
    if (gen == 0) gen = 1;   // 0 means "no job yet"
    p->job_gen = gen; p->count = count; p->fn = fn; p->ctx = ctx;
    __atomic_store_n(&p->done, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&p->next, (uint64_t)gen << 32, __ATOMIC_RELEASE);
    __atomic_store_n(&p->claimed, (uint64_t)gen << 32, __ATOMIC_RELEASE);
    __atomic_store_n(&p->gen, gen, __ATOMIC_RELEASE);
    if (p->sleepers > 0) pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    chk_pool_work(p, gen, count, fn, ctx, 0, p->workers + 1);
    int spins = 0;
    while (__atomic_load_n(&p->done, __ATOMIC_ACQUIRE) < count) {
        if (++spins < CHK_SPIN) CHK_PAUSE(); else sched_yield();
    }
}

void chk_pool_destroy(chk_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->workers; i++) pthread_join(p->tid[i], 0);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p->tid);
    free(p->args);
    free(p);
}
