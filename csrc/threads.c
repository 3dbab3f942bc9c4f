/*
 * threads.c -- the parallel-for of threads_int.h over POSIX threads.
 *
 * Invariants:
 *  1. At most min(n_threads, n_tasks) threads run tasks; with one, everything runs inline on
 *     the calling thread and no thread is created.
 *  2. Every task index is claimed exactly once (atomic fetch-add) unless a start failure set
 *     `stop`, after which no new task is claimed.
 *  3. Every thread created is joined before vdb_parallel_for returns.
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <unistd.h>

#include "threads_int.h"
#include "vecdb.h"

typedef struct pfor_shared {
    vdb_task_fn fn;
    void *ctx;
    size_t n_tasks;
    atomic_size_t next;
    atomic_int stop;
} pfor_shared;

unsigned vdb_threads_resolve(int n_threads) {
    long n = n_threads;
    if (n <= 0) n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1) n = 1;
    if (n > VDB_MAX_THREADS) n = VDB_MAX_THREADS;
    return (unsigned)n;
}

static void run_tasks(pfor_shared *s) {
    while (!atomic_load_explicit(&s->stop, memory_order_relaxed)) {
        size_t t = atomic_fetch_add_explicit(&s->next, 1, memory_order_relaxed);
        if (t >= s->n_tasks) break;
        s->fn(s->ctx, t);
    }
}

static void *worker_main(void *arg) {
    run_tasks((pfor_shared *)arg);
    return NULL;
}

int vdb_parallel_for(unsigned n_threads, size_t n_tasks, vdb_task_fn fn, void *ctx) {
    if (n_tasks == 0) return VDB_OK;
    size_t n = n_threads < 1 ? 1 : n_threads;
    if (n > VDB_MAX_THREADS) n = VDB_MAX_THREADS;
    if (n > n_tasks) n = n_tasks;
    if (n == 1) {
        for (size_t t = 0; t < n_tasks; t++) fn(ctx, t);
        return VDB_OK;
    }

    pfor_shared s;
    s.fn = fn;
    s.ctx = ctx;
    s.n_tasks = n_tasks;
    atomic_init(&s.next, 0);
    atomic_init(&s.stop, 0);

    pthread_t tids[VDB_MAX_THREADS - 1];
    size_t started = 0;
    int rc = VDB_OK;
    for (; started < n - 1; started++) {
        if (pthread_create(&tids[started], NULL, worker_main, &s) != 0) {
            atomic_store(&s.stop, 1);
            rc = VDB_ERR_THREAD;
            break;
        }
    }
    if (rc == VDB_OK) run_tasks(&s);
    for (size_t i = 0; i < started; i++) pthread_join(tids[i], NULL);
    return rc;
}
