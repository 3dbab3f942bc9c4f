/*
 * hnsw_image.c -- the checkpoint image of an HNSW graph: vdb_hnsw_serialized_size,
 * vdb_hnsw_serialize, vdb_hnsw_load, vdb_hnsw_verify, vdb_hnsw_image_info.
 *
 * Layout (format version 1; every integer little-endian; n = node count, m = params.m,
 * W0 = 1 + 2m u32 per level-0 record, WU = 1 + m u32 per upper record):
 *
 *   offset size  field
 *   0      8     magic "VDBHNSW\0"
 *   8      4     format version (1)
 *   12     4     byte-order mark 0x01020304 (reads 0x04030201 on a foreign-endian host)
 *   16     4     header size (160)
 *   20     4     metric (VDB_METRIC_*)
 *   24     8     dim
 *   32     4     m
 *   36     4     ef_construction
 *   40     8     seed
 *   48     8     n (node count)
 *   56     4     entry node (0xFFFFFFFF when n = 0)
 *   60     4     max level (level of the entry node; 0 when n = 0)
 *   64     8     image size (bytes, header included)
 *   72     16    level-0 section: offset, size (= n * W0 * 4)
 *   88     16    level section: offset, size (= n)
 *   104    16    upper index section: offset, size (= n * 8)
 *   120    16    upper link section: offset, size (multiple of 4)
 *   136    4     body checksum: CRC-32C of bytes [header size, image size)
 *   140    4     checksum kind (1 = CRC-32C)
 *   144    12    reserved, zero
 *   156    4     header checksum: CRC-32C of bytes [0, 156)
 *
 *   +--------+-------------------+---------+-------------------+---------------------+
 *   | header | level-0 records   | levels  | upper index       | upper records       |
 *   | 160 B  | n x W0 u32        | n x u8  | n x u64           | sum(level_i) x WU   |
 *   +--------+-------------------+---------+-------------------+---------------------+
 *
 * Level-0 record i: [count, ids 0 .. 2m-1] (unused ids zero); level byte i: node i's level;
 * upper index i: offset, in u32 from the start of the upper section, of node i's upper
 * records (level_i records of WU u32, level 1 first; 0 and unused when level_i = 0).
 *
 * Invariants:
 *  1. Every section starts at an 8-byte-aligned offset >= the header size, sections appear
 *     in the order above without overlap, gaps are zero bytes, and each ends within the
 *     image size, which is <= the buffer size. Loading checks all of this (VDB_ERR_CORRUPT).
 *  2. The version is read right after the magic, before anything else, so a newer format is
 *     reported as VDB_ERR_VERSION even if it lays its header out differently.
 *  3. vdb_hnsw_load reads the header only (O(1) plus one chunk-table slot per 4096 nodes):
 *     the level-0 block, levels and upper records are used in place, so they are neither
 *     copied nor paged in at load. Later inserts write links into the buffer (hence a
 *     private copy-on-write mapping is the intended buffer).
 *  4. Nothing in the body is trusted at search time (hnsw_int.h, invariant 2): a node's
 *     upper offset and level are checked against the upper section, ids against the limit.
 *     vdb_hnsw_verify checks the body checksum (O(size)).
 *  5. A node whose level or upper offset is out of range is serialized as a level-0 node.
 */
#include <stdlib.h>
#include <string.h>

#include "crc32c_int.h"
#include "hnsw_int.h"

#define MAGIC "VDBHNSW"
#define FORMAT_VERSION 1u
#define BOM 0x01020304u
#define HEADER_SIZE 160u
#define HEADER_CRC_AT 156u
#define CHECKSUM_CRC32C 1u

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "hnsw_image.c writes native integers: little-endian hosts only"
#endif

typedef struct image_header {
    uint32_t version, metric, m, ef_construction, entry, max_level;
    uint64_t dim, seed, n, image_size;
    uint64_t off[4], len[4]; /* level-0, levels, upper index, upper records */
    uint32_t body_crc;
} image_header;

static uint32_t rd32(const unsigned char *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}
static uint64_t rd64(const unsigned char *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}
static void wr32(unsigned char *p, uint32_t v) { memcpy(p, &v, 4); }
static void wr64(unsigned char *p, uint64_t v) { memcpy(p, &v, 8); }
static uint64_t align8(uint64_t x) { return (x + 7) & ~(uint64_t)7; }

/* Parses and checks the header against the buffer size (invariants 1-2). */
static int read_header(const void *buf, size_t size, image_header *h) {
    const unsigned char *p = buf;
    if (buf == NULL || size < 12 || memcmp(p, MAGIC, 8) != 0) return VDB_ERR_CORRUPT;
    h->version = rd32(p + 8);
    if (h->version > FORMAT_VERSION) return VDB_ERR_VERSION;
    if (h->version == 0 || size < HEADER_SIZE) return VDB_ERR_CORRUPT;
    if (rd32(p + 12) != BOM || rd32(p + 16) != HEADER_SIZE) return VDB_ERR_CORRUPT;
    if (vdb_crc32c(0, p, HEADER_CRC_AT) != rd32(p + HEADER_CRC_AT)) return VDB_ERR_CORRUPT;
    h->metric = rd32(p + 20);
    h->dim = rd64(p + 24);
    h->m = rd32(p + 32);
    h->ef_construction = rd32(p + 36);
    h->seed = rd64(p + 40);
    h->n = rd64(p + 48);
    h->entry = rd32(p + 56);
    h->max_level = rd32(p + 60);
    h->image_size = rd64(p + 64);
    for (int s = 0; s < 4; s++) {
        h->off[s] = rd64(p + 72 + 16 * s);
        h->len[s] = rd64(p + 80 + 16 * s);
    }
    h->body_crc = rd32(p + 136);
    if (rd32(p + 140) != CHECKSUM_CRC32C) return VDB_ERR_CORRUPT;
    if (h->metric > VDB_METRIC_COSINE || h->dim == 0 || h->m < 2 || h->m > 256 ||
        h->ef_construction < 1 || h->n > HNSW_MAX_NODES)
        return VDB_ERR_CORRUPT;
    if (h->n == 0 ? (h->entry != UINT32_MAX || h->max_level != 0)
                  : (h->entry >= h->n || h->max_level > HNSW_MAX_LEVEL))
        return VDB_ERR_CORRUPT;
    if (h->image_size < HEADER_SIZE || h->image_size > size) return VDB_ERR_CORRUPT;
    uint64_t expect[3] = {h->n * HNSW_L0_WORDS(h->m) * 4, h->n, h->n * 8};
    uint64_t at = HEADER_SIZE;
    for (int s = 0; s < 4; s++) {
        if (h->off[s] % 8 != 0 || h->off[s] < at || h->off[s] > h->image_size ||
            h->len[s] > h->image_size - h->off[s])
            return VDB_ERR_CORRUPT;
        if (s < 3 ? h->len[s] != expect[s] : h->len[s] % 4 != 0) return VDB_ERR_CORRUPT;
        at = h->off[s] + h->len[s];
    }
    return VDB_OK;
}

/* A view of the graph's own storage (no rows: serialization reads links only). */
static void storage_view(hnsw_view *v, const vdb_hnsw *g, size_t n) {
    memset(v, 0, sizeof *v);
    v->g = g;
    v->table = LOAD_ACQ(&g->table);
    v->limit = n;
}

/* Node id's level if its upper records are readable, else 0 (invariant 5). */
static unsigned usable_level(const hnsw_view *v, uint32_t id) {
    unsigned level = hnsw_level(v, id);
    return level > 0 && hnsw_upper(v, id, level) != NULL ? level : 0;
}

static void layout(const vdb_hnsw *g, size_t n, uint64_t upper_words, image_header *h) {
    h->len[0] = (uint64_t)n * HNSW_L0_WORDS(g->m) * 4;
    h->len[1] = n;
    h->len[2] = (uint64_t)n * 8;
    h->len[3] = upper_words * 4;
    uint64_t at = HEADER_SIZE;
    for (int s = 0; s < 4; s++) {
        h->off[s] = at;
        at = align8(at + h->len[s]);
    }
    h->image_size = at;
}

static uint64_t count_upper_words(const hnsw_view *v, size_t n) {
    uint64_t words = 0;
    for (size_t i = 0; i < n; i++) words += usable_level(v, (uint32_t)i);
    return words * HNSW_UP_WORDS(v->g->m);
}

int vdb_hnsw_serialized_size(const vdb_hnsw *g, size_t *size) {
    if (g == NULL || size == NULL) return VDB_ERR_INVALID;
    size_t n = LOAD_ACQ(&g->n_nodes);
    hnsw_view v;
    storage_view(&v, g, n);
    image_header h;
    layout(g, n, count_upper_words(&v, n), &h);
    *size = (size_t)h.image_size;
    return VDB_OK;
}

int vdb_hnsw_serialize(const vdb_hnsw *g, void *buf, size_t size) {
    if (g == NULL || buf == NULL || ((uintptr_t)buf & 7) != 0) return VDB_ERR_INVALID;
    size_t n = LOAD_ACQ(&g->n_nodes);
    hnsw_view v;
    storage_view(&v, g, n);
    image_header h;
    layout(g, n, count_upper_words(&v, n), &h);
    if (size < h.image_size) return VDB_ERR_INVALID;
    unsigned char *p = buf;
    memset(p, 0, (size_t)h.image_size);

    size_t w0 = HNSW_L0_WORDS(g->m), wu = HNSW_UP_WORDS(g->m);
    for (size_t base = 0; base < n; base += HNSW_CHUNK) {
        size_t cnt = n - base < HNSW_CHUNK ? n - base : HNSW_CHUNK;
        memcpy(p + h.off[0] + base * w0 * 4, hnsw_l0(&v, (uint32_t)base), cnt * w0 * 4);
    }
    uint64_t at = 0; /* u32 words into the upper section */
    for (size_t i = 0; i < n; i++) {
        unsigned level = usable_level(&v, (uint32_t)i);
        p[h.off[1] + i] = (unsigned char)level;
        if (level == 0) continue;
        wr64(p + h.off[2] + 8 * i, at);
        memcpy(p + h.off[3] + at * 4, hnsw_upper(&v, (uint32_t)i, 1), level * wu * 4);
        at += level * wu;
    }

    uint64_t entry = LOAD_ACQ(&g->entry);
    memcpy(p, MAGIC, 8);
    wr32(p + 8, FORMAT_VERSION);
    wr32(p + 12, BOM);
    wr32(p + 16, HEADER_SIZE);
    wr32(p + 20, (uint32_t)g->metric);
    wr64(p + 24, g->dim);
    wr32(p + 32, g->m);
    wr32(p + 36, g->ef_construction);
    wr64(p + 40, g->seed);
    wr64(p + 48, n);
    wr32(p + 56, n == 0 ? UINT32_MAX : (uint32_t)entry);
    wr32(p + 60, n == 0 ? 0 : (uint32_t)(entry >> 32));
    wr64(p + 64, h.image_size);
    for (int s = 0; s < 4; s++) {
        wr64(p + 72 + 16 * s, h.off[s]);
        wr64(p + 80 + 16 * s, h.len[s]);
    }
    wr32(p + 136, vdb_crc32c(0, p + HEADER_SIZE, (size_t)(h.image_size - HEADER_SIZE)));
    wr32(p + 140, CHECKSUM_CRC32C);
    wr32(p + HEADER_CRC_AT, vdb_crc32c(0, p, HEADER_CRC_AT));
    return VDB_OK;
}

int vdb_hnsw_load(void *buf, size_t size, int simd, vdb_hnsw **out) {
    if (out == NULL || buf == NULL || ((uintptr_t)buf & 7) != 0) return VDB_ERR_INVALID;
    image_header h;
    int rc = read_header(buf, size, &h);
    if (rc != VDB_OK) return rc;
    vdb_hnsw *g;
    rc = hnsw_alloc(h.dim, (int)h.metric, simd, h.m, h.ef_construction, h.seed, &g);
    if (rc != VDB_OK) return rc;
    unsigned char *p = buf;
    if (h.n > 0) {
        size_t slots = ((size_t)h.n + HNSW_CHUNK - 1) >> HNSW_CHUNK_SHIFT;
        hnsw_table *t = calloc(1, sizeof *t);
        if (t != NULL) {
            t->n_slots = slots;
            t->links = calloc(slots, sizeof *t->links);
            t->levels = calloc(slots, sizeof *t->levels);
            t->upper = calloc(slots, sizeof *t->upper);
        }
        if (t == NULL || t->links == NULL || t->levels == NULL || t->upper == NULL) {
            if (t != NULL) free(t->links), free(t->levels), free(t->upper);
            free(t);
            vdb_hnsw_free(g);
            return VDB_ERR_NOMEM;
        }
        size_t w0 = HNSW_L0_WORDS(h.m);
        for (size_t s = 0; s < slots; s++) {
            t->links[s] = (uint32_t *)(p + h.off[0]) + s * HNSW_CHUNK * w0;
            t->levels[s] = p + h.off[1] + s * HNSW_CHUNK;
        }
        g->table = t;
        g->valid = (size_t)h.n;
        g->n_nodes = (size_t)h.n;
        g->n_img = (size_t)h.n;
        g->img_upper_index = (const uint64_t *)(p + h.off[2]);
        g->img_upper = (uint32_t *)(p + h.off[3]);
        g->img_upper_words = (size_t)(h.len[3] / 4);
        g->entry = (uint64_t)h.max_level << 32 | h.entry;
        hnsw_add_mem(g, sizeof *t + slots * 3 * sizeof(void *));
    }
    g->img_buf = buf;
    g->img_size = (size_t)h.image_size;
    *out = g;
    return VDB_OK;
}

int vdb_hnsw_verify(const void *buf, size_t size) {
    image_header h;
    int rc = read_header(buf, size, &h);
    if (rc != VDB_OK) return rc;
    const unsigned char *p = buf;
    uint32_t crc = vdb_crc32c(0, p + HEADER_SIZE, (size_t)(h.image_size - HEADER_SIZE));
    return crc == h.body_crc ? VDB_OK : VDB_ERR_CORRUPT;
}

int vdb_hnsw_image_info(const void *buf, size_t size, size_t *dim, int *metric,
                        vdb_hnsw_params *params, size_t *n_nodes) {
    image_header h;
    int rc = read_header(buf, size, &h);
    if (rc != VDB_OK) return rc;
    if (dim != NULL) *dim = (size_t)h.dim;
    if (metric != NULL) *metric = (int)h.metric;
    if (params != NULL) {
        params->m = h.m;
        params->ef_construction = h.ef_construction;
        params->seed = h.seed;
    }
    if (n_nodes != NULL) *n_nodes = (size_t)h.n;
    return VDB_OK;
}
