/*
 * hnsw.c -- the HNSW graph object: creation, release, node storage (chunks and the chunk
 * table), the scratch-context pool, and the shared argument checks. The structure and its
 * invariants are described in hnsw_int.h; insertion is in hnsw_insert.c, search in
 * hnsw_search.c, the checkpoint image in hnsw_image.c.
 *
 * Invariants (in addition to hnsw_int.h's):
 *  1. Storage only grows and is only freed by vdb_hnsw_free: chunk blocks and replaced
 *     tables are kept on g->blocks / g->retired.
 *  2. A newly allocated chunk is zeroed (calloc): a node that has storage but is not yet
 *     inserted has empty link records, which a concurrent search reads as a dead end.
 *  3. The pool holds at most HNSW_POOL_MAX contexts; its mutex is the only lock a search
 *     takes, and it is held only to pop or push one context.
 *  4. A context owns everything it points to (tags, heaps, the code search's query scratch);
 *     free_ctx releases all of it.
 */
#define _POSIX_C_SOURCE 200809L

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "hnsw_int.h"
#include "rows_int.h"

void hnsw_add_mem(const vdb_hnsw *g, size_t bytes) {
    __atomic_fetch_add(&((vdb_hnsw *)g)->mem_bytes, bytes, __ATOMIC_RELAXED);
}

static uint64_t splitmix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

unsigned hnsw_random_level(const vdb_hnsw *g, size_t id) {
    uint64_t r = splitmix64(g->seed ^ splitmix64((uint64_t)id));
    double u = (double)((r >> 11) + 1) * (1.0 / 9007199254740992.0); /* (0, 1] */
    double l = floor(-log(u) * g->level_mult);
    return l >= HNSW_MAX_LEVEL ? HNSW_MAX_LEVEL : (unsigned)l;
}

int hnsw_alloc(size_t dim, int metric, int simd, uint32_t m, uint32_t ef_construction,
               uint64_t seed, vdb_hnsw **out) {
    if (out == NULL || dim == 0 || m < 2 || m > 256 || ef_construction < 1) return VDB_ERR_INVALID;
    if (metric != VDB_METRIC_L2 && metric != VDB_METRIC_IP && metric != VDB_METRIC_COSINE)
        return VDB_ERR_INVALID;
    if (simd < VDB_SIMD_SCALAR || simd > VDB_SIMD_AVX512) return VDB_ERR_INVALID;
    const vdb_kernels *kern = vdb_kernels_for(simd);
    if (kern == NULL) return VDB_ERR_UNSUPPORTED;
    vdb_hnsw *g = calloc(1, sizeof *g);
    if (g == NULL) return VDB_ERR_NOMEM;
    g->dim = dim;
    g->metric = metric;
    g->kern = kern;
    g->m = m;
    g->m0 = 2 * m;
    g->ef_construction = ef_construction;
    g->seed = seed;
    g->level_mult = 1.0 / log((double)m);
    g->entry = HNSW_NO_ENTRY;
    g->mem_bytes = sizeof *g;
    if (pthread_mutex_init(&g->ep_lock, NULL) != 0) {
        free(g);
        return VDB_ERR_NOMEM;
    }
    if (pthread_mutex_init(&g->pool_lock, NULL) != 0) {
        pthread_mutex_destroy(&g->ep_lock);
        free(g);
        return VDB_ERR_NOMEM;
    }
    *out = g;
    return VDB_OK;
}

int vdb_hnsw_new(const vdb_hnsw_params *params, size_t dim, int metric, int simd,
                 vdb_hnsw **out) {
    if (params == NULL) return VDB_ERR_INVALID;
    return hnsw_alloc(dim, metric, simd, params->m, params->ef_construction, params->seed, out);
}

static void free_table(hnsw_table *t) {
    if (t == NULL) return;
    free(t->links);
    free(t->levels);
    free(t->upper);
    free(t);
}

static void free_ctx(hnsw_ctx *c) {
    free(c->tags);
    free(c->cand);
    free(c->res);
    free(c->aux);
    free(c->sel);
    free(c->qscratch);
    free(c);
}

int vdb_hnsw_free(vdb_hnsw *g) {
    if (g == NULL) return VDB_OK;
    hnsw_table *t = g->table;
    if (t != NULL) { /* upper records of nodes the graph inserted (not the image's) */
        for (size_t s = 0; s < t->n_slots; s++) {
            if (t->upper[s] == NULL) continue;
            for (size_t i = 0; i < HNSW_CHUNK; i++) free(t->upper[s][i]);
        }
    }
    free_table(t);
    for (hnsw_table *r = g->retired, *nx; r != NULL; r = nx) {
        nx = r->retired_next;
        free_table(r);
    }
    for (hnsw_block *b = g->blocks, *nx; b != NULL; b = nx) {
        nx = b->next;
        free(b->mem);
        free(b);
    }
    for (hnsw_ctx *c = g->pool, *nx; c != NULL; c = nx) {
        nx = c->next;
        free_ctx(c);
    }
    pthread_mutex_destroy(&g->ep_lock);
    pthread_mutex_destroy(&g->pool_lock);
    free(g);
    return VDB_OK;
}

int vdb_hnsw_info(const vdb_hnsw *g, size_t *n_nodes, size_t *memory_bytes) {
    if (g == NULL) return VDB_ERR_INVALID;
    if (n_nodes != NULL) *n_nodes = LOAD_ACQ(&g->n_nodes);
    if (memory_bytes != NULL) *memory_bytes = LOAD_RLX(&g->mem_bytes) + g->img_size;
    return VDB_OK;
}

static int own_block(vdb_hnsw *g, void *mem) {
    hnsw_block *b = malloc(sizeof *b);
    if (b == NULL) return VDB_ERR_NOMEM;
    b->mem = mem;
    b->next = g->blocks;
    g->blocks = b;
    return VDB_OK;
}

/* A table of n_slots slots holding the old table's entries; NULL when out of memory. */
static hnsw_table *grow_table(const hnsw_table *old, size_t n_slots) {
    hnsw_table *t = calloc(1, sizeof *t);
    if (t == NULL) return NULL;
    t->n_slots = n_slots;
    t->links = calloc(n_slots, sizeof *t->links);
    t->levels = calloc(n_slots, sizeof *t->levels);
    t->upper = calloc(n_slots, sizeof *t->upper);
    if (t->links == NULL || t->levels == NULL || t->upper == NULL) {
        free_table(t);
        return NULL;
    }
    if (old != NULL) {
        memcpy(t->links, old->links, old->n_slots * sizeof *t->links);
        memcpy(t->levels, old->levels, old->n_slots * sizeof *t->levels);
        memcpy(t->upper, old->upper, old->n_slots * sizeof *t->upper);
    }
    return t;
}

/* Fills slot s of t with a fresh zeroed chunk, copying the first n_keep nodes of the chunk
 * it replaces (a partial image chunk) when n_keep > 0. */
static int fill_slot(vdb_hnsw *g, hnsw_table *t, size_t s, size_t n_keep) {
    size_t l0_bytes = HNSW_CHUNK * HNSW_L0_WORDS(g->m) * sizeof(uint32_t);
    size_t up_bytes = HNSW_CHUNK * sizeof(uint32_t *);
    size_t total = l0_bytes + up_bytes + HNSW_CHUNK;
    unsigned char *mem = calloc(1, total);
    if (mem == NULL) return VDB_ERR_NOMEM;
    if (own_block(g, mem) != VDB_OK) {
        free(mem);
        return VDB_ERR_NOMEM;
    }
    uint32_t *links = (uint32_t *)mem;
    uint32_t **upper = (uint32_t **)(mem + l0_bytes);
    uint8_t *levels = mem + l0_bytes + up_bytes;
    if (n_keep > 0) {
        memcpy(links, t->links[s], n_keep * HNSW_L0_WORDS(g->m) * sizeof(uint32_t));
        memcpy(levels, t->levels[s], n_keep);
    }
    STORE_REL(&t->upper[s], upper);
    STORE_REL(&t->levels[s], levels);
    STORE_REL(&t->links[s], links);
    hnsw_add_mem(g, total);
    return VDB_OK;
}

int hnsw_reserve(vdb_hnsw *g, size_t n) {
    size_t valid = g->valid;
    if (n <= valid) return VDB_OK;
    size_t need = (n + HNSW_CHUNK - 1) >> HNSW_CHUNK_SHIFT;
    hnsw_table *t = g->table;
    if (t == NULL || t->n_slots < need) {
        size_t slots = t == NULL ? 4 : t->n_slots;
        while (slots < need) slots *= 2;
        hnsw_table *nt = grow_table(t, slots);
        if (nt == NULL) return VDB_ERR_NOMEM;
        hnsw_add_mem(g, sizeof *nt + slots * 3 * sizeof(void *));
        STORE_REL(&g->table, nt);
        if (t != NULL) {
            t->retired_next = g->retired;
            g->retired = t;
        }
        t = nt;
    }
    size_t have = (valid + HNSW_CHUNK - 1) >> HNSW_CHUNK_SHIFT; /* slots filled */
    if ((valid & HNSW_CHUNK_MASK) != 0 && t->upper[have - 1] == NULL) {
        /* the last image chunk is partial: new nodes need a private, full-size copy */
        int rc = fill_slot(g, t, have - 1, valid & HNSW_CHUNK_MASK);
        if (rc != VDB_OK) return rc;
    }
    for (size_t s = have; s < need; s++) {
        int rc = fill_slot(g, t, s, 0);
        if (rc != VDB_OK) return rc; /* slots filled so far stay; valid is unchanged */
    }
    STORE_REL(&g->valid, need << HNSW_CHUNK_SHIFT);
    return VDB_OK;
}

/* --- scratch pool --- */

static int grow_pairs(hnsw_pair **p, size_t *cap, size_t n) {
    if (n <= *cap) return VDB_OK;
    size_t c = *cap < 64 ? 64 : *cap;
    while (c < n) c *= 2;
    hnsw_pair *a = realloc(*p, c * sizeof *a);
    if (a == NULL) return VDB_ERR_NOMEM;
    *p = a;
    *cap = c;
    return VDB_OK;
}

int hnsw_ctx_reserve(hnsw_ctx *c, size_t n) {
    if (grow_pairs(&c->cand, &c->cand_cap, n) != VDB_OK ||
        grow_pairs(&c->res, &c->res_cap, n) != VDB_OK ||
        grow_pairs(&c->aux, &c->aux_cap, n) != VDB_OK)
        return VDB_ERR_NOMEM;
    return VDB_OK;
}

int hnsw_ctx_scratch(hnsw_ctx *c, size_t n) {
    if (n <= c->qscratch_cap) return VDB_OK;
    if (n > SIZE_MAX - 63) return VDB_ERR_NOMEM;
    size_t cap = (n + 63) & ~(size_t)63; /* aligned_alloc: a multiple of the alignment */
    void *p = aligned_alloc(64, cap);
    if (p == NULL) return VDB_ERR_NOMEM;
    free(c->qscratch);
    c->qscratch = p;
    c->qscratch_cap = cap;
    return VDB_OK;
}

void hnsw_ctx_new_pass(hnsw_ctx *c) {
    if (++c->epoch == 0) { /* wrapped: clear the tags so old passes cannot match */
        memset(c->tags, 0, c->tags_cap * sizeof *c->tags);
        c->epoch = 1;
    }
}

hnsw_ctx *hnsw_ctx_get(const vdb_hnsw *cg, size_t limit) {
    vdb_hnsw *g = (vdb_hnsw *)cg;
    hnsw_ctx *c = NULL;
    pthread_mutex_lock(&g->pool_lock);
    if (g->pool != NULL) {
        c = g->pool;
        g->pool = c->next;
        g->pool_n--;
    }
    pthread_mutex_unlock(&g->pool_lock);
    if (c == NULL) {
        c = calloc(1, sizeof *c);
        if (c == NULL) return NULL;
        if (hnsw_ctx_reserve(c, 256) != VDB_OK) {
            free_ctx(c);
            return NULL;
        }
    }
    if (c->tags_cap < limit) {
        size_t cap = limit + limit / 4 + 1024;
        uint16_t *t = calloc(cap, sizeof *t);
        if (t == NULL) {
            hnsw_ctx_put(g, c);
            return NULL;
        }
        free(c->tags);
        c->tags = t;
        c->tags_cap = cap;
        c->epoch = 0;
    }
    return c;
}

void hnsw_ctx_put(const vdb_hnsw *cg, hnsw_ctx *c) {
    vdb_hnsw *g = (vdb_hnsw *)cg;
    pthread_mutex_lock(&g->pool_lock);
    if (g->pool_n < HNSW_POOL_MAX) {
        c->next = g->pool;
        g->pool = c;
        g->pool_n++;
        c = NULL;
    }
    pthread_mutex_unlock(&g->pool_lock);
    if (c != NULL) free_ctx(c);
}

/* --- shared checks --- */

int hnsw_check_rows(const vdb_hnsw *g, const vdb_rows *rows) {
    if (g == NULL || rows == NULL || rows->dim != g->dim) return VDB_ERR_INVALID;
    return rows_check(rows, HNSW_MAX_NODES, 32);
}

void hnsw_view_init(hnsw_view *v, const vdb_hnsw *g, const vdb_rows *rows) {
    size_t valid = LOAD_ACQ(&g->valid); /* before the table: see hnsw_int.h, invariant 1 */
    v->g = g;
    v->table = LOAD_ACQ(&g->table);
    v->limit = rows->n_rows < valid ? rows->n_rows : valid;
    v->segments = rows->segments;
    v->shift = rows->segment_shift;
    v->seg_mask = ((size_t)1 << rows->segment_shift) - 1;
    v->dim = g->dim;
    v->metric = g->metric;
    v->k1x4 = g->metric == VDB_METRIC_L2 ? g->kern->l2_1x4 : g->kern->dot_1x4;
    v->code_segments = NULL;
    v->code_size = 0;
    v->qq = NULL;
}

int hnsw_check_codes(const vdb_hnsw *g, const vdb_code_rows *codes, size_t code_size) {
    if (g == NULL || codes == NULL || code_size == 0 || codes->code_size != code_size)
        return VDB_ERR_INVALID;
    if (codes->n_rows == 0) return VDB_OK;
    if (codes->segments == NULL || codes->segment_shift >= 32 ||
        codes->n_rows > HNSW_MAX_NODES)
        return VDB_ERR_INVALID;
    /* the byte offset of a row in its segment must fit a size_t */
    if (code_size > (SIZE_MAX >> codes->segment_shift)) return VDB_ERR_INVALID;
    size_t needed = ((codes->n_rows - 1) >> codes->segment_shift) + 1;
    if (codes->n_segments < needed) return VDB_ERR_INVALID;
    for (size_t s = 0; s < needed; s++)
        if (codes->segments[s] == NULL) return VDB_ERR_INVALID;
    return VDB_OK;
}

void hnsw_view_init_codes(hnsw_view *v, const vdb_hnsw *g, const vdb_code_rows *codes) {
    size_t valid = LOAD_ACQ(&g->valid); /* before the table: see hnsw_int.h, invariant 1 */
    v->g = g;
    v->table = LOAD_ACQ(&g->table);
    v->limit = codes->n_rows < valid ? codes->n_rows : valid;
    v->segments = NULL;
    v->shift = codes->segment_shift;
    v->seg_mask = ((size_t)1 << codes->segment_shift) - 1;
    v->dim = g->dim;
    v->metric = g->metric;
    v->k1x4 = NULL;
    v->code_segments = codes->segments;
    v->code_size = codes->code_size;
    v->qq = NULL;
}
