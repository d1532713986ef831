/* Cache-line round trip between CPU 0 and CPU 1: one thread pinned to each passes a counter back
 * and forth through one shared cache line, 2,000,000 times, and prints the mean round trip.
 *
 * On a VM it tells where the host put the two vCPUs: on the project's 2-core AMD EPYC VM it read
 * 75-119 ns at some times and 367-417 ns at others (cores that share a cache, and cores that do
 * not), and `train-head bench-epoch --threads 2` moved with it (tools/bench/core_placement.sh;
 * README: Benchmarks, eighth session; CHeadKernels/pool.c).
 *
 * Build and run:
 *   gcc -O2 tools/bench/core_latency.c -o /tmp/core_latency -lpthread && /tmp/core_latency
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

static _Atomic long flag __attribute__((aligned(64)));
static const long rounds = 2000000;

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }

static int pin(int cpu) {
    cpu_set_t s; CPU_ZERO(&s); CPU_SET(cpu, &s);
    return pthread_setaffinity_np(pthread_self(), sizeof s, &s);
}

static void *pong(void *arg) {
    (void)arg;
    pin(1);
    for (long i = 0; i < rounds; i++) {
        while (atomic_load_explicit(&flag, memory_order_acquire) != 2 * i + 1) {}
        atomic_store_explicit(&flag, 2 * i + 2, memory_order_release);
    }
    return 0;
}

int main(void) {
    if (pin(0) != 0) { fprintf(stderr, "core_latency: cannot pin to CPU 0\n"); return 1; }
    pthread_t t;
    if (pthread_create(&t, 0, pong, 0) != 0) { fprintf(stderr, "core_latency: cannot start a thread\n"); return 1; }
    double t0 = now();
    for (long i = 0; i < rounds; i++) {
        atomic_store_explicit(&flag, 2 * i + 1, memory_order_release);
        while (atomic_load_explicit(&flag, memory_order_acquire) != 2 * i + 2) {}
    }
    double dt = now() - t0;
    pthread_join(t, 0);
    printf("round trip %.1f ns\n", dt / rounds * 1e9);
    return 0;
}
