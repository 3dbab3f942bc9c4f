/*
 * vecdb.h -- the whole public C API of the vecdb core.
 *
 * The core knows nothing of Python, files or LMDB: it computes distances and searches rows
 * that the caller hands it as memory (typically memory-mapped segment files).
 *
 * Conventions (hold for every function below):
 *  - Every function returns a status code: VDB_OK (0) or a negative VDB_ERR_*; vdb_strerror()
 *    turns one into a static message. Nothing aborts, exits or prints.
 *  - Outputs are written only when VDB_OK is returned.
 *  - The caller owns every buffer passed in; no function keeps a pointer after it returns.
 *  - No global mutable state: the SIMD level is chosen by the caller (see vdb_simd_best) and
 *    passed to each call, so one process may use several levels at once (tests do).
 *  - Thread safety: every function is reentrant; concurrent calls on shared read-only inputs
 *    are safe.
 *
 * Distances (smaller is closer):
 *    VDB_METRIC_L2      squared Euclidean  sum (a_i - b_i)^2
 *    VDB_METRIC_IP      negative dot       -sum a_i b_i
 *    VDB_METRIC_COSINE  1 - cos(a, b); 1.0 when either vector has zero norm
 */
#ifndef VECDB_H
#define VECDB_H

#include <stddef.h>
#include <stdint.h>

/* Status codes. */
#define VDB_OK 0
#define VDB_ERR_INVALID -1     /* an argument is out of range or NULL where it may not be */
#define VDB_ERR_NOMEM -2       /* an allocation failed */
#define VDB_ERR_THREAD -3      /* a worker thread could not be started */
#define VDB_ERR_UNSUPPORTED -4 /* the requested SIMD level is not available on this CPU/build */

/* Metrics. */
#define VDB_METRIC_L2 0
#define VDB_METRIC_IP 1
#define VDB_METRIC_COSINE 2

/* SIMD levels, ordered: a CPU supporting a level supports every lower one. */
#define VDB_SIMD_SCALAR 0
#define VDB_SIMD_AVX2 1   /* AVX2 + FMA */
#define VDB_SIMD_AVX512 2 /* AVX-512F */

/*
 * A set of float32 rows stored in fixed-capacity segments: row r lives in
 * segments[r >> segment_shift] at row index (r & ((1 << segment_shift) - 1)), each row `dim`
 * contiguous floats. Rows [0, n_rows) are visible. Every segment pointer needed for those
 * rows must be valid; rows need no particular alignment.
 */
typedef struct vdb_rows {
    const float *const *segments;
    size_t n_segments;
    unsigned segment_shift;
    size_t n_rows;
    size_t dim;
} vdb_rows;

/* Returns a static, NUL-terminated description of status code rc (never NULL). */
const char *vdb_strerror(int rc);

/* Writes to *level the highest VDB_SIMD_* level this CPU and this build support. */
int vdb_simd_best(int *level);

/*
 * Distances from one query q[dim] to n rows x[n][dim] (row-major, contiguous), into out[n].
 * Errors: VDB_ERR_INVALID (bad metric, dim 0, NULL), VDB_ERR_UNSUPPORTED (simd level).
 */
int vdb_distances(int simd, int metric, const float *q, const float *x, size_t n, size_t dim,
                  float *out);

/*
 * Exact k-nearest search of nq queries (queries[nq][rows->dim], contiguous) over rows.
 * A row takes part iff (allow == NULL or bit r of allow is set) and (deny == NULL or bit r of
 * deny is clear); bitsets hold at least ceil(n_rows / 64) words, bit r = word r/64, bit r%64.
 * Writes, per query i, out_rows[i*k .. i*k+k) (row numbers) and out_dist[...] (distances),
 * best first, ties broken by the smaller row; unused slots get row -1 and distance +INFINITY.
 * Work is spread over n_threads threads (0 = number of online CPUs): over queries when there
 * are many, over row ranges of each query when there are few.
 * Errors: VDB_ERR_INVALID, VDB_ERR_UNSUPPORTED, VDB_ERR_NOMEM, VDB_ERR_THREAD.
 */
int vdb_flat_search(int simd, int metric, const vdb_rows *rows, const float *queries, size_t nq,
                    size_t k, const uint64_t *allow, const uint64_t *deny, int n_threads,
                    int64_t *out_rows, float *out_dist);

/* Writes to *count the number of set bits among the first n_bits bits of bits. */
int vdb_bitset_count(const uint64_t *bits, size_t n_bits, size_t *count);

#endif /* VECDB_H */
