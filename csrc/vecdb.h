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

/* ---------------------------------------------------------------------------------------- */
/* Training and quantization (kmeans.c, sq.c, pq.c, quant.c)                                 */
/* ---------------------------------------------------------------------------------------- */

/*
 * k-means under squared L2 of n points x[n][dim] into k clusters (1 <= k <= n): k-means++
 * initialisation on a sample of min(n, 4k + 1000) points, then up to iters Lloyd iterations
 * (stopping early when no point changes cluster); the assignment step runs on n_threads
 * threads (0 = one per online CPU). A cluster left empty is re-seeded with the point
 * farthest from its centre in the largest cluster (preferring clusters that hold a point
 * away from their centre), so k distinct centroids come out whenever x holds k distinct
 * points.
 * Deterministic: the same (x, k, iters, seed, simd) give the same centroids for every
 * n_threads. For dim <= 48 they are also the same on every SIMD level (that path uses no
 * FMA); above, each level's float kernels round differently, so centroids may differ in the
 * last bits between levels.
 * Writes centroids[k][dim]; *inertia (nullable) receives the mean squared distance of the
 * points to their nearest final centroid. A worker thread that cannot start is not an
 * error: the calling thread does its share.
 * Errors: VDB_ERR_INVALID, VDB_ERR_UNSUPPORTED, VDB_ERR_NOMEM.
 */
int vdb_kmeans(int simd, const float *x, size_t n, size_t dim, size_t k, unsigned iters,
               uint64_t seed, int n_threads, float *centroids, float *inertia);

/*
 * The nearest of k centroids[k][dim] (squared L2, ties to the smaller index) of each of n
 * points x[n][dim]: assign[i] and, when dist is not NULL, dist[i] (the squared distance),
 * computed as vdb_kmeans assigns points (centroids are ranked by |c|^2 - 2 x.c in float, so
 * two centroids within float rounding of each other may rank either way). Points are spread
 * over n_threads threads; the result does not depend on n_threads.
 * Errors: VDB_ERR_INVALID, VDB_ERR_UNSUPPORTED, VDB_ERR_NOMEM.
 */
int vdb_kmeans_assign(int simd, const float *centroids, size_t k, size_t dim, const float *x,
                      size_t n, int n_threads, uint32_t *assign, float *dist);

/* Quantizer kinds. */
#define VDB_QUANT_SQ8 1 /* one byte per dimension: per-dimension min and step */
#define VDB_QUANT_PQ 2  /* m sub-quantizers of dim/m dimensions, 256 centroids (8 bits) each */

/*
 * A trained quantizer (read-only; the caller owns params):
 *  SQ8: params = vmin[dim] then step[dim]; code of x: c_d = clamp(round((x_d - vmin_d) /
 *       step_d), 0, 255) (0 where step_d == 0); decoded x^_d = vmin_d + c_d * step_d.
 *       A code row is dim bytes, followed, under L2 and cosine, by the float32 squared norm
 *       of the decoded row (native byte order, unaligned): code size dim or dim + 4.
 *  PQ:  m divides dim; params = codebooks[m][256][dim/m]; code of x: for each j, the index
 *       of the nearest (squared L2, ties to the smaller) centroid of codebook j to x's j-th
 *       sub-vector. A code row is m bytes. Metrics L2 and IP only (a cosine collection stores
 *       unit vectors and scores their PQ codes with L2, which orders them as IP does).
 * Distances between a float32 query and a code row ("ADC") approximate the metric's distance
 * between the query and the decoded row:
 *  SQ8: the query is scaled per dimension (w_d = q_d * step_d, in double) and rounded to
 *       int16 in [-16383, 16383] (w_d * 16383 / max|w|, half away from zero); the code dot
 *       product sum qi_d * c_d is exact integer arithmetic on every SIMD level, so every
 *       level returns identical distances. dot(q, x^) ~ q.vmin + sum(qi_d c_d) * max|w| /
 *       16383 (in double); L2 = |q|^2 - 2 dot + norm (may come out slightly below zero near
 *       a match); IP = -dot; cosine = 1 - dot / (|q| sqrt(norm)) (1.0 when either norm is
 *       zero). The error of dot is at most max|w| / 16383 / 2 * sum_d c_d.
 *  PQ:  from per-query tables [m][256]: L2 |q_j - c|^2, IP -q_j.c (float, in d order, the
 *       same on every SIMD level); the distance is the sum over j of table[j][code_j] (in j
 *       order, float), so it equals the distance to the decoded row up to float rounding.
 */
typedef struct vdb_quantizer {
    int kind;            /* VDB_QUANT_SQ8 or VDB_QUANT_PQ */
    int metric;          /* VDB_METRIC_* the distances follow */
    size_t dim;
    size_t m;            /* PQ: number of sub-quantizers; SQ8: ignored */
    const float *params; /* see above */
} vdb_quantizer;

/* Writes to *size the bytes of one code row of q (checks q: kind, metric, dim, m). */
int vdb_quantizer_code_size(const vdb_quantizer *q, size_t *size);

/* SQ8 training: per-dimension min and step = (max - min) / 255 of x[n][dim] (n >= 1) into
 * params[2 * dim]. Errors: VDB_ERR_INVALID (also for a NaN or infinite value in x),
 * VDB_ERR_NOMEM. */
int vdb_sq8_train(const float *x, size_t n, size_t dim, float *params);

/* PQ training: k-means (vdb_kmeans, 256 clusters, iters, the same seed for every j) of each
 * sub-vector column of x[n][dim] (n >= 256, m divides dim) into params[m * 256 * (dim / m)].
 * Sub-quantizers are trained in parallel over n_threads threads; the result does not depend
 * on n_threads (a worker that cannot start is not an error).
 * Errors: VDB_ERR_INVALID, VDB_ERR_UNSUPPORTED, VDB_ERR_NOMEM. */
int vdb_pq_train(int simd, const float *x, size_t n, size_t dim, size_t m, unsigned iters,
                 uint64_t seed, int n_threads, float *params);

/* Encodes n rows x[n][dim] into codes[n][code size] on n_threads threads (the codes do not
 * depend on n_threads; a worker that cannot start is not an error); errors (nullable)
 * receives each row's squared L2 distance to its decoded code (the quantization error).
 * PQ encodes sub-vectors as vdb_kmeans_assign assigns points.
 * Errors: VDB_ERR_INVALID, VDB_ERR_UNSUPPORTED, VDB_ERR_NOMEM. */
int vdb_quantizer_encode(int simd, const vdb_quantizer *q, const float *x, size_t n,
                         int n_threads, uint8_t *codes, float *errors);

/* Decodes n code rows codes[n][code size] into out[n][dim]. Errors: VDB_ERR_INVALID. */
int vdb_quantizer_decode(const vdb_quantizer *q, const uint8_t *codes, size_t n, float *out);

/* ADC distances (see vdb_quantizer) from one query[dim] to n contiguous code rows, into
 * out[n]. Errors: VDB_ERR_INVALID, VDB_ERR_UNSUPPORTED, VDB_ERR_NOMEM. */
int vdb_quantizer_distances(int simd, const vdb_quantizer *q, const float *query,
                            const uint8_t *codes, size_t n, float *out);

/*
 * Code rows stored in fixed-capacity segments, as vdb_rows stores float rows: row r lives
 * in segments[r >> segment_shift] at byte (r & ((1 << segment_shift) - 1)) * code_size.
 */
typedef struct vdb_code_rows {
    const uint8_t *const *segments;
    size_t n_segments;
    unsigned segment_shift;
    size_t n_rows;
    size_t code_size;
} vdb_code_rows;

/*
 * vdb_hnsw_search with every distance computed from the codes (ADC, see vdb_quantizer)
 * instead of float rows: the graph was built on the float rows; traversal reads only the
 * codes, held in RAM. Nodes >= codes->n_rows are ignored. q->dim must equal the graph's
 * dim; q->metric may differ from the graph's: over unit vectors L2 orders rows as IP and
 * cosine do, and PQ estimates L2 better than IP (a near row's error term shrinks with its
 * distance), so a cosine collection traverses with L2 PQ codes. codes->code_size must
 * equal q's code size. Distances out are ADC distances: rescore the candidates with
 * vdb_rescore. Same allow / deny / share rules,
 * threads and stats as vdb_hnsw_search (the same traversal: only the distances differ);
 * equal to vdb_quantizer_distances of the query and the returned rows' codes. Each query is
 * prepared once (SQ8 rounding, PQ tables) in per-thread scratch the graph keeps for reuse.
 * Errors: VDB_ERR_INVALID, VDB_ERR_UNSUPPORTED, VDB_ERR_NOMEM, VDB_ERR_THREAD.
 */
int vdb_hnsw_search_codes(const vdb_hnsw *graph, int simd, const vdb_quantizer *q,
                          const vdb_code_rows *codes, const float *queries, size_t nq,
                          size_t k, size_t ef, const uint64_t *allow, const uint64_t *deny,
                          int n_threads, int64_t *out_rows, float *out_dist,
                          vdb_search_stats *stats);

/*
 * Exact rescoring: for each query i, the exact distances (as vdb_flat_search computes them)
 * to its n_cand candidate rows cand[i*n_cand .. +n_cand) (entries < 0 or >= rows->n_rows
 * are skipped; duplicates count once), keeping the k best into out_rows[i*k ..] /
 * out_dist[i*k ..], best first, ties to the smaller row, unused slots -1 / +INFINITY.
 * Distances are bit-equal to vdb_flat_search's for the same (query, row) and simd, so the
 * result is vdb_flat_search's restricted to the candidates. cand may be NULL when n_cand is
 * 0 (every slot unused). Queries are spread over n_threads threads (0 = one per online
 * CPU; small calls run on the calling thread); results do not depend on n_threads.
 * Errors: VDB_ERR_INVALID, VDB_ERR_UNSUPPORTED, VDB_ERR_NOMEM, VDB_ERR_THREAD.
 */
int vdb_rescore(int simd, int metric, const vdb_rows *rows, const float *queries, size_t nq,
                const int64_t *cand, size_t n_cand, size_t k, int n_threads,
                int64_t *out_rows, float *out_dist);

/*
 * Inverted lists of an IVF-PQ index (read-only; the caller owns every array): nlist coarse
 * centroids[nlist][dim]; list i holds sizes[i] rows: row numbers rows[i][0 .. sizes[i])
 * and the PQ codes of their residuals (row - centroids[i]) codes[i][sizes[i]][m].
 * norms (nullable; used under L2 only): norms[i][0 .. sizes[i]) the norm terms
 * |x^|^2 - |c|^2 = 2 c.r^ + |r^|^2 of the decoded rows x^ = c + r^ (c = centroids[i], r^ the
 * decoded residual). With them an L2 search needs one ADC table per query instead of one
 * per probed list (see vdb_ivfpq_search). When norms is
 * given, norms[i] may be NULL only for an empty list (checked under either metric).
 */
typedef struct vdb_ivf_lists {
    size_t nlist;
    const float *centroids;
    const size_t *sizes;
    const uint32_t *const *rows;
    const uint8_t *const *codes;
    const float *const *norms;
} vdb_ivf_lists;

/*
 * IVF-PQ search: for each query, the nprobe lists whose centroids are closest (the
 * quantizer's metric: L2 distance, or IP -q.c), then ADC distances to every code in them
 * (L2 without norms: tables of q - centroid per list; L2 with lists->norms: one table
 * -2 q.r of q per query, plus |q - centroid|^2 per list and the row's norm term; IP: one table
 * of q plus -q.centroid per list), keeping the k best eligible rows (allow / deny as in
 * vdb_flat_search; rows >= n_rows are skipped). q is the PQ quantizer of the residuals (kind
 * VDB_QUANT_PQ). nlist >= 1 and nprobe >= 1 (nprobe above nlist probes every list); a list of
 * size 0 may have NULL rows / codes / norms; a list holds at most UINT32_MAX rows. Lists are
 * expected to be disjoint: a row stored in two probed lists may be returned twice. Under L2
 * without norms a distance is the sum over j of the residual table (exactly what
 * vdb_quantizer_distances of q - centroid gives); with norms it is the same ADC distance
 * |q - x^|^2 up to float rounding, (sum_j -2 q_j.r_j + |q - c|^2) + norm term, not
 * bit-equal to the path without norms (the error scales with (|q| + |c|) |r^|, not with the
 * distance). Under IP the table sum plus -q.centroid (norms ignored). Output, threads and
 * errors as vdb_hnsw_search; stats: visited = non-empty lists scanned, distances = centroids
 * + codes scored (with allow, only the eligible codes are scored).
 */
int vdb_ivfpq_search(int simd, const vdb_quantizer *q, const vdb_ivf_lists *lists,
                     size_t n_rows, const float *queries, size_t nq, size_t k, size_t nprobe,
                     const uint64_t *allow, const uint64_t *deny, int n_threads,
                     int64_t *out_rows, float *out_dist, vdb_search_stats *stats);

#endif /* VECDB_H */
