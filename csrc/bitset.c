/*
 * bitset.c -- vdb_bitset_count: population count over the first n_bits bits of a bitset.
 *
 * Invariants: layout as in bitset_int.h; bits at or beyond n_bits are never counted; the
 * input is only read. On x86-64 CPUs with POPCNT a target("popcnt") loop is used (chosen per
 * call with __builtin_cpu_supports, no cached state); elsewhere the compiler's generic
 * __builtin_popcountll.
 */
#include <stddef.h>
#include <stdint.h>

#include "vecdb.h"

static size_t count_words_generic(const uint64_t *w, size_t n) {
    size_t c = 0;
    for (size_t i = 0; i < n; i++) c += (size_t)__builtin_popcountll(w[i]);
    return c;
}

#if defined(__x86_64__)
__attribute__((target("popcnt"))) static size_t count_words_popcnt(const uint64_t *w, size_t n) {
    size_t c0 = 0, c1 = 0;
    size_t i = 0;
    for (; i + 2 <= n; i += 2) {
        c0 += (size_t)__builtin_popcountll(w[i]);
        c1 += (size_t)__builtin_popcountll(w[i + 1]);
    }
    if (i < n) c0 += (size_t)__builtin_popcountll(w[i]);
    return c0 + c1;
}
#endif

static size_t count_words(const uint64_t *w, size_t n) {
#if defined(__x86_64__)
    if (__builtin_cpu_supports("popcnt")) return count_words_popcnt(w, n);
#endif
    return count_words_generic(w, n);
}

int vdb_bitset_count(const uint64_t *bits, size_t n_bits, size_t *count) {
    if (count == NULL || (bits == NULL && n_bits > 0)) return VDB_ERR_INVALID;
    size_t full = n_bits >> 6, rest = n_bits & 63;
    size_t c = count_words(bits, full);
    if (rest != 0) c += (size_t)__builtin_popcountll(bits[full] & ((UINT64_C(1) << rest) - 1));
    *count = c;
    return VDB_OK;
}
