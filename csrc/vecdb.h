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
#define VDB_ERR_CORRUPT -5     /* a serialized image fails its magic, checksum or bounds checks */
#define VDB_ERR_VERSION -6     /* a serialized image has a newer format version */

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
 * Work counters of a search, for explain() and benchmarks. A search given a non-NULL stats
 * adds to its fields (it never resets them; the caller zeroes a fresh one) the work done for
 * all its queries:
 *    visited    HNSW: nodes whose neighbour lists were read (every level); flat: rows
 *               examined (eligible rows x queries)
 *    distances  distance computations (flat: equal to visited)
 * Each thread counts in its own variables and adds them atomically once at the end, so
 * concurrent calls may share one stats. Counts are added only when VDB_OK is returned.
 * NULL stats: nothing is reported (the counting itself is a few register increments).
 */
typedef struct vdb_search_stats {
    uint64_t visited;
    uint64_t distances;
} vdb_search_stats;

/*
 * Exact k-nearest search of nq queries (queries[nq][rows->dim], contiguous) over rows.
 * A row takes part iff (allow == NULL or bit r of allow is set) and (deny == NULL or bit r of
 * deny is clear); bitsets hold at least ceil(n_rows / 64) words, bit r = word r/64, bit r%64.
 * Writes, per query i, out_rows[i*k .. i*k+k) (row numbers) and out_dist[...] (distances),
 * best first, ties broken by the smaller row; unused slots get row -1 and distance +INFINITY.
 * Work is spread over n_threads threads (0 = number of online CPUs): over queries when there
 * are many, over row ranges of each query when there are few. stats (nullable): see
 * vdb_search_stats.
 * Errors: VDB_ERR_INVALID, VDB_ERR_UNSUPPORTED, VDB_ERR_NOMEM, VDB_ERR_THREAD.
 */
int vdb_flat_search(int simd, int metric, const vdb_rows *rows, const float *queries, size_t nq,
                    size_t k, const uint64_t *allow, const uint64_t *deny, int n_threads,
                    int64_t *out_rows, float *out_dist, vdb_search_stats *stats);

/* Writes to *count the number of set bits among the first n_bits bits of bits. */
int vdb_bitset_count(const uint64_t *bits, size_t n_bits, size_t *count);

/* ---------------------------------------------------------------------------------------- */
/* HNSW graph index (hnsw.c)                                                                 */
/* ---------------------------------------------------------------------------------------- */

/*
 * A graph over rows: node i is row i of the vdb_rows handed to every call (nodes are never
 * renumbered; deleted rows stay as nodes that route but are excluded by the deny bitset).
 * Level 0 keeps up to 2*m links per node in one contiguous block; upper levels keep up to m,
 * allocated per node. The graph never copies vectors: distances read the rows given.
 *
 * Threading: any number of vdb_hnsw_search calls may run concurrently with each other and
 * with one vdb_hnsw_add (which itself may use n_threads threads); a second concurrent
 * vdb_hnsw_add, or vdb_hnsw_serialize concurrent with vdb_hnsw_add, is not allowed (the
 * caller serializes writers). vdb_hnsw_free must not run concurrently with anything.
 */
typedef struct vdb_hnsw vdb_hnsw;

typedef struct vdb_hnsw_params {
    uint32_t m;               /* links per node on upper levels (level 0: 2*m); 2..256 */
    uint32_t ef_construction; /* candidate list size while inserting; >= 1 */
    uint64_t seed;            /* seed of the level generator */
} vdb_hnsw_params;

/*
 * Creates an empty graph for rows of dimension dim under metric, using SIMD level simd.
 * *out receives a graph owned by the caller, to be released with vdb_hnsw_free.
 * Errors: VDB_ERR_INVALID, VDB_ERR_UNSUPPORTED, VDB_ERR_NOMEM.
 */
int vdb_hnsw_new(const vdb_hnsw_params *params, size_t dim, int metric, int simd,
                 vdb_hnsw **out);

/* Releases a graph (NULL is fine). After it, a buffer given to vdb_hnsw_load may be freed. */
int vdb_hnsw_free(vdb_hnsw *graph);

/*
 * Inserts rows [n_nodes, rows->n_rows) as new nodes, where n_nodes is the current node count
 * (so the graph always covers a prefix of the rows), using up to n_threads threads (0 = one
 * per online CPU). Searches may run meanwhile and see any subset of the new nodes.
 * Errors: VDB_ERR_INVALID (dim mismatch, rows->n_rows below the node count), VDB_ERR_NOMEM;
 * on error the nodes inserted so far stay (the graph remains valid and covers a shorter
 * prefix). A worker thread that cannot start is not an error: the calling thread does its
 * share.
 */
int vdb_hnsw_add(vdb_hnsw *graph, const vdb_rows *rows, int n_threads);

/*
 * k-nearest search of nq queries with candidate list size ef (raised to k when smaller).
 * Nodes beyond rows->n_rows are ignored; allow / deny as in vdb_flat_search: nodes outside
 * allow or inside deny are never returned. Without allow, excluded (deny) nodes route the
 * search like others. With allow, by the share of eligible rows (estimated once per call):
 * from 2% to 50%, the bottom level scores only eligible nodes, found one or two links away
 * from each expanded node, and ef is widened up to 2x below 5%; otherwise every node routes
 * (the search expands about ef / share nodes: below a few percent an exact scan of the
 * allowed rows with vdb_flat_search is usually cheaper, see
 * benchmarks/planner_calibration.py). ef counts eligible results.
 * Output as in vdb_flat_search: best first, unused slots row -1 / distance +INFINITY.
 * Queries are spread over n_threads threads (0 = one per online CPU); results do not depend
 * on n_threads. stats (nullable): see vdb_search_stats.
 * Errors: VDB_ERR_INVALID, VDB_ERR_NOMEM, VDB_ERR_THREAD.
 */
int vdb_hnsw_search(const vdb_hnsw *graph, const vdb_rows *rows, const float *queries,
                    size_t nq, size_t k, size_t ef, const uint64_t *allow,
                    const uint64_t *deny, int n_threads, int64_t *out_rows, float *out_dist,
                    vdb_search_stats *stats);

/* Node count, and bytes of memory the graph holds (links and bookkeeping, not vectors). */
int vdb_hnsw_info(const vdb_hnsw *graph, size_t *n_nodes, size_t *memory_bytes);

/*
 * Checkpoint image. vdb_hnsw_serialized_size gives the exact size of the image of the graph
 * as it is now; vdb_hnsw_serialize writes it into buf (size bytes, 8-byte aligned). The image
 * starts with a header (magic, format version, byte-order mark, dim, metric, params, node
 * count, header checksum, body checksum) documented in hnsw_image.c.
 * Errors: VDB_ERR_INVALID (size too small).
 */
int vdb_hnsw_serialized_size(const vdb_hnsw *graph, size_t *size);
int vdb_hnsw_serialize(const vdb_hnsw *graph, void *buf, size_t size);

/*
 * Opens an image without copying its level-0 block or upper links: the graph points into buf,
 * which must stay valid, 8-byte aligned and writable (e.g. a private copy-on-write mapping)
 * until vdb_hnsw_free; nodes added later live in memory the graph allocates. Checks the
 * header checksum, sizes and every offset against size, but not the body checksum (that is
 * vdb_hnsw_verify, O(size)); link targets are bounds-checked during search, so a damaged
 * body can lower recall but never make a search read outside the graph.
 * *out receives a graph owned by the caller (vdb_hnsw_free). The metric and dim are read
 * from the image; simd chooses the kernels.
 * Errors: VDB_ERR_CORRUPT (bad magic, checksum, size or offsets), VDB_ERR_VERSION (newer
 * format), VDB_ERR_INVALID (NULL, or buf not 8-byte aligned), VDB_ERR_UNSUPPORTED,
 * VDB_ERR_NOMEM.
 */
int vdb_hnsw_load(void *buf, size_t size, int simd, vdb_hnsw **out);

/* Checks the body checksum of an image: VDB_OK or VDB_ERR_CORRUPT. Reads all of buf. */
int vdb_hnsw_verify(const void *buf, size_t size);

/* Reads dim, metric, params and node count from an image header (checked as by load). */
int vdb_hnsw_image_info(const void *buf, size_t size, size_t *dim, int *metric,
                        vdb_hnsw_params *params, size_t *n_nodes);

#endif /* VECDB_H */
