/*
 * bitset_int.h -- private inline helpers for the row bitsets of vecdb.h.
 *
 * Layout (fixed by vecdb.h): bit r lives in word r / 64 at bit position r % 64; a set holding
 * n bits has at least ceil(n / 64) words. Bits at or beyond n are ignored, whatever they hold.
 */
#ifndef VECDB_BITSET_INT_H
#define VECDB_BITSET_INT_H

#include <stddef.h>
#include <stdint.h>

static inline int vdb_bit_test(const uint64_t *bits, size_t r) {
    return (int)((bits[r >> 6] >> (r & 63)) & 1u);
}

/* Word w of the eligibility set "in allow (if given) and not in deny (if given)". */
static inline uint64_t vdb_eligible_word(const uint64_t *allow, const uint64_t *deny, size_t w) {
    uint64_t m = allow != NULL ? allow[w] : ~(uint64_t)0;
    if (deny != NULL) m &= ~deny[w];
    return m;
}

#endif /* VECDB_BITSET_INT_H */
