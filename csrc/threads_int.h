/*
 * threads_int.h -- a small parallel-for over pthreads (private to the core).
 *
 * vdb_parallel_for runs fn(ctx, t) once for every task t in [0, n_tasks) on up to n_threads
 * threads (the calling thread is one of them) and returns when all are done. Tasks are handed
 * out one at a time from a shared atomic counter, in increasing order, so uneven tasks balance.
 * Threads are created per call and joined before return: no pool, no global state.
 */
#ifndef VECDB_THREADS_INT_H
#define VECDB_THREADS_INT_H

#include <stddef.h>

#define VDB_MAX_THREADS 256

typedef void (*vdb_task_fn)(void *ctx, size_t task);

/* n_threads as given by a caller of the public API (0 = online CPUs) -> [1, VDB_MAX_THREADS].
 * Negative values are the caller's error and must be rejected before. */
unsigned vdb_threads_resolve(int n_threads);

/* Returns VDB_OK, or VDB_ERR_THREAD if a worker could not be started: then the workers that
 * did start are joined first, and some tasks may have run while others did not. */
int vdb_parallel_for(unsigned n_threads, size_t n_tasks, vdb_task_fn fn, void *ctx);

#endif /* VECDB_THREADS_INT_H */
