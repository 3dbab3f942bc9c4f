/*
 * hnsw_int.h -- the private structure of an HNSW graph (vdb_hnsw of vecdb.h), shared by
 * hnsw.c (lifetime, storage, scratch pool), hnsw_search.c (layer search, vdb_hnsw_search and
 * vdb_hnsw_search_codes), hnsw_filter.c (level-0 search of filtered queries), hnsw_insert.c
 * (vdb_hnsw_add) and hnsw_image.c (checkpoint image).
 *
 * Distances. Every search reads vectors only through hnsw_view (hnsw_dists, prefetch_vec of
 * hnsw_heap.h): float rows, or code rows scored by ADC (quant_int.h) for
 * vdb_hnsw_search_codes. The layer searches are the same code for both sources.
 *
 * Storage. Node i is row i of the caller's vdb_rows (or vdb_code_rows). Per node the graph
 * keeps:
 *  - a level-0 record of HNSW_L0_WORDS(m) u32: [count, id_0 .. id_{2m-1}];
 *  - its level (u8, 0..HNSW_MAX_LEVEL);
 *  - if level > 0, level upper records of (1 + m) u32 each: [count, id_0 .. id_{m-1}], the
 *    record of level l (1-based) at (l - 1) * (1 + m).
 * Nodes are grouped in chunks of HNSW_CHUNK nodes. A chunk's level-0 records are one
 * contiguous block (node order, fixed stride) and its levels one byte array; a table of
 * chunk pointers (hnsw_table) maps node >> HNSW_CHUNK_SHIFT to them. Chunks are never moved
 * or resized while the graph lives, so a search never reads freed memory.
 * A loaded image (hnsw_image.c) is used in place: the first n_img nodes' chunk pointers
 * point into the caller's buffer (its level-0 block and level array are laid out the same
 * way), and their upper records are found through the image's per-node offset table.
 * Nodes >= n_img live in chunks the graph allocates, their upper records in one malloc each.
 *
 * Invariants:
 *  1. Publication order: a node's level, upper pointer and level-0 record are written before
 *     its id is stored in any link record or as the entry point, and a chunk (table slot) is
 *     filled before `valid` covers it. Link ids and counts are accessed with __atomic
 *     builtins (release store of a count after its ids, acquire load before reading them);
 *     a reader may still see a record being rewritten (old and new ids mixed), which is
 *     harmless because every id it can see is a node id that was valid when written.
 *  2. Readers trust nothing they read from a record: a count is clamped to the record's
 *     capacity, every id is checked against the search's limit (min(valid, rows->n_rows))
 *     before use, and an image node's level and upper offset are checked against the
 *     image's upper section. A damaged image can thus lower recall, never crash a search.
 *  3. Writers (vdb_hnsw_add's threads) modify a node's records only under the stripe lock of
 *     that node, and hold at most one stripe lock at a time; the entry point is changed only
 *     under ep_lock, which may be held while taking a stripe lock (never the reverse).
 *     Search takes no lock except the scratch-pool mutex, once per call (or per task of a
 *     batch).
 *  4. The table pointer and `valid` only grow: a replaced table or chunk stays allocated on
 *     the retired list until vdb_hnsw_free, so a search holding an old pointer stays safe.
 *  5. `entry` packs (max_level << 32 | entry node); HNSW_NO_ENTRY when the graph is empty.
 */
#ifndef VECDB_HNSW_INT_H
#define VECDB_HNSW_INT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "distance_int.h"
#include "quant_int.h"
#include "vecdb.h"

#define HNSW_CHUNK_SHIFT 12
#define HNSW_CHUNK ((size_t)1 << HNSW_CHUNK_SHIFT)
#define HNSW_CHUNK_MASK (HNSW_CHUNK - 1)
#define HNSW_MAX_LEVEL 31
#define HNSW_MAX_M0 512      /* level-0 links per node: 2 * the largest m (256) */
#define HNSW_FILTER_SEEDS 32 /* eligible rows a filtered search also starts from */
#define HNSW_FILTER_ROUTE 4  /* expansions of a filtered search that look past excluded
                                nodes closer than every eligible result (hnsw_filter.c) */
#define HNSW_FILTER_MIN_SHARE 0.02  /* filtered queries with an eligible share in */
#define HNSW_FILTER_MAX_SHARE 0.5   /* [MIN, MAX) use the two-hop search (hnsw_filter.c) */
#define HNSW_FILTER_WIDE_SHARE 0.05 /* below: the two-hop search widens ef, up to 2x */
#define HNSW_SHARE_WORDS 4096 /* bitset words sampled to estimate the eligible share */
#define HNSW_N_LOCKS 4096 /* stripes; a power of two */
#define HNSW_POOL_MAX 64  /* scratch contexts kept for reuse */
#define HNSW_MAX_NODES ((size_t)UINT32_MAX - 1)
#define HNSW_NO_ENTRY UINT64_MAX
#define HNSW_L0_WORDS(m) (1 + 2 * (size_t)(m))
#define HNSW_UP_WORDS(m) (1 + (size_t)(m))

/* Chunk table: slot c describes nodes [c * HNSW_CHUNK, (c + 1) * HNSW_CHUNK). */
typedef struct hnsw_table {
    size_t n_slots;
    uint32_t **links;   /* [n_slots] level-0 blocks */
    uint8_t **levels;   /* [n_slots] level arrays */
    uint32_t ***upper;  /* [n_slots] upper-record pointer arrays (NULL for image chunks) */
    struct hnsw_table *retired_next;
} hnsw_table;

/* A (distance, node) pair of the search heaps. */
typedef struct hnsw_pair {
    float d;
    uint32_t id;
} hnsw_pair;

/* Work counters of one thread's searches (see vdb_search_stats). */
typedef struct hnsw_count {
    uint64_t visited;   /* nodes whose link record was read */
    uint64_t distances; /* distance computations */
} hnsw_count;

/* Per-thread scratch: a visited set (epoch tags) and heap storage, reused across calls. */
typedef struct hnsw_ctx {
    uint16_t *tags;    /* tags[i] == epoch iff node i was visited in the current pass */
    size_t tags_cap;
    uint16_t epoch;
    hnsw_pair *cand;   /* candidate min-heap */
    size_t cand_cap;
    hnsw_pair *res;    /* result max-heap (bounded by ef) */
    size_t res_cap;
    hnsw_pair *aux;    /* insertion: sorted candidates, neighbour lists */
    size_t aux_cap;
    uint32_t *sel;     /* insertion: the new node's selected neighbours, per level */
    size_t sel_cap;
    void *qscratch;    /* code search: quant_prepare's scratch (16-byte aligned) */
    size_t qscratch_cap;
    struct hnsw_ctx *next;
} hnsw_ctx;

/* Something owned that vdb_hnsw_free releases (chunk blocks, retired tables). */
typedef struct hnsw_block {
    void *mem;
    struct hnsw_block *next;
} hnsw_block;

struct vdb_hnsw {
    size_t dim;
    int metric;
    const vdb_kernels *kern;
    uint32_t m, m0;            /* upper-level and level-0 capacity (m0 = 2m) */
    uint32_t ef_construction;
    uint64_t seed;
    double level_mult;         /* 1 / ln(m) */

    hnsw_table *table;         /* atomic pointer (acquire/release) */
    size_t valid;              /* atomic: nodes [0, valid) have storage */
    size_t n_nodes;            /* atomic: nodes [0, n_nodes) are inserted */
    uint64_t entry;            /* atomic: see invariant 5 */

    /* loaded image (n_img == 0 when none) */
    size_t n_img;
    const uint64_t *img_upper_index; /* [n_img] offsets in u32 into img_upper */
    uint32_t *img_upper;
    size_t img_upper_words;
    void *img_buf;
    size_t img_size;

    size_t mem_bytes;          /* atomic: bytes owned (tables, chunks, upper records) */
    hnsw_block *blocks;        /* writer-only */
    hnsw_table *retired;       /* writer-only */

    pthread_mutex_t ep_lock;
    pthread_mutex_t pool_lock;
    hnsw_ctx *pool;
    size_t pool_n;
    unsigned char locks[HNSW_N_LOCKS];
};

/* --- atomics on plain memory (GCC builtins: images are plain bytes) --- */
#define LOAD_ACQ(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define LOAD_RLX(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define STORE_REL(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define STORE_RLX(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)

/*
 * A consistent read-only snapshot a search works from, and the source of its distances:
 *  - float rows (segments != NULL, qq == NULL): hnsw_dists runs the 1x4 float kernels;
 *  - codes (code_segments != NULL, vdb_hnsw_search_codes): hnsw_dists reads code rows and
 *    scores them by ADC through the prepared query qq (quant_int.h). A view with codes is a
 *    template until qq is set: search_one sets qq in its per-query copy of the job's view,
 *    before computing any distance (the template serves hnsw_filter_share / seeds only).
 * shift / seg_mask address whichever segments are set (row r: segment r >> shift, index
 * r & seg_mask). Insertion and serialization use float (or no) rows only.
 */
typedef struct hnsw_view {
    const vdb_hnsw *g;
    const hnsw_table *table;
    size_t limit;              /* ids >= limit are ignored */
    const float *const *segments;       /* float rows, or NULL under codes */
    unsigned shift;
    size_t seg_mask;
    size_t dim;
    int metric;
    void (*k1x4)(const float *q, const float *const *x, size_t dim, float *out); /* l2 or dot */
    const uint8_t *const *code_segments; /* code rows, or NULL under float rows */
    size_t code_size;                    /* bytes per code row */
    const quant_query *qq;               /* the query prepared for ADC (codes only) */
} hnsw_view;

static inline const float *hnsw_vec(const hnsw_view *v, uint32_t id) {
    return v->segments[id >> v->shift] + (size_t)(id & v->seg_mask) * v->dim;
}

static inline const uint8_t *hnsw_code(const hnsw_view *v, uint32_t id) {
    return v->code_segments[id >> v->shift] + (size_t)(id & v->seg_mask) * v->code_size;
}

/* The level-0 record of node id (< limit). */
static inline uint32_t *hnsw_l0(const hnsw_view *v, uint32_t id) {
    uint32_t *block = LOAD_ACQ(&v->table->links[id >> HNSW_CHUNK_SHIFT]);
    return block + (size_t)(id & HNSW_CHUNK_MASK) * HNSW_L0_WORDS(v->g->m);
}

static inline unsigned hnsw_level(const hnsw_view *v, uint32_t id) {
    const uint8_t *lv = LOAD_ACQ(&v->table->levels[id >> HNSW_CHUNK_SHIFT]);
    return LOAD_ACQ(&lv[id & HNSW_CHUNK_MASK]);
}

/* The record of node id (< limit) at upper level lc >= 1, or NULL if it has none there (or
 * its image entry is damaged). */
static inline uint32_t *hnsw_upper(const hnsw_view *v, uint32_t id, unsigned lc) {
    const vdb_hnsw *g = v->g;
    unsigned level = hnsw_level(v, id);
    if (level < lc || level > HNSW_MAX_LEVEL) return NULL;
    size_t w = HNSW_UP_WORDS(g->m);
    if (id < g->n_img) {
        uint64_t off = g->img_upper_index[id];
        if (off > g->img_upper_words || g->img_upper_words - off < (uint64_t)level * w)
            return NULL;
        return g->img_upper + off + (lc - 1) * w;
    }
    uint32_t **up = LOAD_ACQ(&v->table->upper[id >> HNSW_CHUNK_SHIFT]);
    if (up == NULL) return NULL;
    uint32_t *p = LOAD_ACQ(&up[id & HNSW_CHUNK_MASK]);
    return p == NULL ? NULL : p + (lc - 1) * w;
}

/* hnsw_search.c: distances from q to nodes ids[0 .. n) (all < limit) into out; qinv is
 * vdb_inv_norm of q under cosine (else unused). Float rows: the 1x4 kernel for every pair,
 * so distances equal vdb_flat_search's bit for bit. Codes (v->qq set): ADC distances of
 * v->qq through quant_dists (q and qinv unused), equal to vdb_quantizer_distances'. */
void hnsw_dists(const hnsw_view *v, const float *q, double qinv, const uint32_t *ids, size_t n,
                float *out);
double hnsw_query_inv(const hnsw_view *v, const float *q);
/* Greedy descent from (*cur, *curd) at upper level lc until no neighbour is closer. Adds its
 * work to *count (NULL: not counted). */
void hnsw_greedy(const hnsw_view *v, const float *q, double qinv, unsigned lc, uint32_t *cur,
                 float *curd, hnsw_count *count);
/* Best-first search at level lc from the n_eps pairs eps (ids < limit) with list size ef.
 * Nodes outside allow / inside deny route but are not kept. Leaves c->res[0 .. ret) holding
 * the results as a max-heap; returns their count (<= ef), or SIZE_MAX when out of memory.
 * Adds its work to *count (NULL: not counted). */
size_t hnsw_search_layer(const hnsw_view *v, hnsw_ctx *c, const float *q, double qinv,
                         const hnsw_pair *eps, size_t n_eps, unsigned lc, size_t ef,
                         const uint64_t *allow, const uint64_t *deny, hnsw_count *count);
/* hnsw_filter.c: the share of eligible rows among [0, limit): exact when the bitsets hold at
 * most HNSW_SHARE_WORDS words, else estimated from that many words spread evenly. */
double hnsw_filter_share(const hnsw_view *v, const uint64_t *allow, const uint64_t *deny);
/* Up to n eligible rows (in allow, not in deny, < limit), spread evenly over
 * [0, limit): for each of n equal strata, the first eligible row at or after its middle that
 * is after the previous pick. Writes them ascending into out; returns their count. */
size_t hnsw_filter_seeds(const hnsw_view *v, const uint64_t *allow, const uint64_t *deny,
                         uint32_t *out, size_t n);
/* Level-0 search of a filtered query (allow != NULL) from the n_eps pairs eps: scores only
 * eligible nodes, found one or two hops from each expanded node (see hnsw_filter.c). Results
 * and return value as hnsw_search_layer. */
size_t hnsw_search_layer_filtered(const hnsw_view *v, hnsw_ctx *c, const float *q, double qinv,
                                  const hnsw_pair *eps, size_t n_eps, size_t ef,
                                  const uint64_t *allow, const uint64_t *deny,
                                  hnsw_count *count);
/* Sorts pairs ascending by (d, id). */
void hnsw_sort_pairs(hnsw_pair *p, size_t n);

/* The level of node id drawn from (seed, id): floor(-ln(U) * level_mult), U in (0, 1]. */
unsigned hnsw_random_level(const vdb_hnsw *g, size_t id);

/* hnsw.c: graph shell, storage and scratch pool. */
int hnsw_alloc(size_t dim, int metric, int simd, uint32_t m, uint32_t ef_construction,
               uint64_t seed, vdb_hnsw **out);
/* Makes nodes [0, n) have storage (new chunks, a private copy of a partial image chunk),
 * then publishes valid = max(valid, n). Writer only. */
int hnsw_reserve(vdb_hnsw *g, size_t n);
/* Takes a scratch context whose visited set covers ids < limit (NULL when out of memory). */
hnsw_ctx *hnsw_ctx_get(const vdb_hnsw *g, size_t limit);
void hnsw_ctx_put(const vdb_hnsw *g, hnsw_ctx *c);
/* Makes c's heaps hold at least n pairs each; 0 or VDB_ERR_NOMEM. */
int hnsw_ctx_reserve(hnsw_ctx *c, size_t n);
/* Makes c->qscratch hold at least n bytes, 64-byte aligned; 0 or VDB_ERR_NOMEM. */
int hnsw_ctx_scratch(hnsw_ctx *c, size_t n);
/* Starts a new visited pass. */
void hnsw_ctx_new_pass(hnsw_ctx *c);
void hnsw_add_mem(const vdb_hnsw *g, size_t bytes);

/* Common checks of a vdb_rows against the graph. */
int hnsw_check_rows(const vdb_hnsw *g, const vdb_rows *rows);
void hnsw_view_init(hnsw_view *v, const vdb_hnsw *g, const vdb_rows *rows);
/* Checks of a vdb_code_rows against the graph (code_size given by the checked quantizer),
 * and the template view over it (qq NULL: see hnsw_view). */
int hnsw_check_codes(const vdb_hnsw *g, const vdb_code_rows *codes, size_t code_size);
void hnsw_view_init_codes(hnsw_view *v, const vdb_hnsw *g, const vdb_code_rows *codes);

#endif /* VECDB_HNSW_INT_H */
