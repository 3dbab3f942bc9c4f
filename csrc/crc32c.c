/*
 * crc32c.c -- CRC-32C over a byte range: the SSE4.2 crc32 instruction when the CPU has it
 * (chosen per call with __builtin_cpu_supports; compiled with a target attribute, never
 * -march), else a bytewise table computed on the stack (no global state).
 *
 * The hardware path runs three independent CRC streams over three equal blocks (the crc32
 * instruction has a latency of three cycles and a throughput of one) and combines them by
 * linearity (a GF(2) operator for "8 KiB of zero bytes", built once per call), so it
 * reads several GB/s.
 *
 * Invariants:
 *  1. Both paths compute the reflected CRC with polynomial 0x82F63B78, init ~0, final ~0,
 *     and agree on every input (tests compare images checksummed on either path).
 *  2. Inputs need no alignment.
 */
#include <string.h>

#include "crc32c_int.h"

#define POLY 0x82F63B78u

static uint32_t crc_sw(uint32_t crc, const unsigned char *p, size_t n) {
    uint32_t table[256];
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ POLY : c >> 1;
        table[i] = c;
    }
    crc = ~crc;
    while (n--) crc = table[(crc ^ *p++) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

/* The raw (un-inverted) register after feeding `bytes` zero bytes into register crc: a
 * GF(2) matrix power, by squaring (zlib's crc32_combine technique). */
static uint32_t gf2_times(const uint32_t *mat, uint32_t vec) {
    uint32_t sum = 0;
    for (; vec; vec >>= 1, mat++)
        if (vec & 1) sum ^= *mat;
    return sum;
}

static void gf2_square(uint32_t *sq, const uint32_t *mat) {
    for (int n = 0; n < 32; n++) sq[n] = gf2_times(mat, mat[n]);
}

/* mat <- the operator that feeds 2^log2_bytes zero bytes through the raw register. */
static void zeros_operator(uint32_t *mat, unsigned log2_bytes) {
    uint32_t a[32], b[32];
    a[0] = POLY; /* one zero bit */
    for (int n = 1; n < 32; n++) a[n] = 1u << (n - 1);
    gf2_square(b, a); /* 2 bits */
    gf2_square(a, b); /* 4 bits */
    gf2_square(b, a); /* 1 byte */
    for (unsigned i = 0; i < log2_bytes; i++) {
        gf2_square(a, b);
        memcpy(b, a, sizeof a);
    }
    memcpy(mat, b, sizeof b);
}

#if defined(__x86_64__)
#include <nmmintrin.h>

__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t crc, const unsigned char *p,
                                                         size_t n) {
    uint64_t c0 = ~crc;
    while (n > 0 && ((uintptr_t)p & 7) != 0) c0 = _mm_crc32_u8((uint32_t)c0, *p++), n--;
    const size_t block = 8192; /* 2^13 */
    uint32_t op[32], ones = 0;
    if (n >= 3 * block) {
        zeros_operator(op, 13);
        ones = gf2_times(op, 0xFFFFFFFFu);
    }
    while (n >= 3 * block) {
        uint64_t c1 = 0xFFFFFFFFu, c2 = 0xFFFFFFFFu; /* raw registers of streams 2, 3 */
        const unsigned char *p1 = p + block, *p2 = p + 2 * block;
        for (size_t i = 0; i < block; i += 8) {
            uint64_t a, b, d;
            memcpy(&a, p + i, 8);
            memcpy(&b, p1 + i, 8);
            memcpy(&d, p2 + i, 8);
            c0 = _mm_crc32_u64(c0, a);
            c1 = _mm_crc32_u64(c1, b);
            c2 = _mm_crc32_u64(c2, d);
        }
        /* stream k started from ~0 instead of continuing: fix by linearity */
        uint32_t r = gf2_times(op, (uint32_t)c0) ^ (uint32_t)c1 ^ ones;
        r = gf2_times(op, r) ^ (uint32_t)c2 ^ ones;
        c0 = r;
        p += 3 * block;
        n -= 3 * block;
    }
    for (; n >= 8; n -= 8, p += 8) {
        uint64_t a;
        memcpy(&a, p, 8);
        c0 = _mm_crc32_u64(c0, a);
    }
    while (n--) c0 = _mm_crc32_u8((uint32_t)c0, *p++);
    return ~(uint32_t)c0;
}
#endif

uint32_t vdb_crc32c(uint32_t crc, const void *p, size_t n) {
#if defined(__x86_64__)
    if (__builtin_cpu_supports("sse4.2")) return crc_hw(crc, (const unsigned char *)p, n);
#endif
    return crc_sw(crc, (const unsigned char *)p, n);
}
