/*
 * crc32c_int.h -- CRC-32C (Castagnoli), the checksum of the checkpoint images.
 *
 * vdb_crc32c(crc, p, n) extends crc (start with 0) over n bytes; the result equals the
 * standard CRC-32C (iSCSI) of the concatenated input, whichever implementation runs.
 */
#ifndef VECDB_CRC32C_INT_H
#define VECDB_CRC32C_INT_H

#include <stddef.h>
#include <stdint.h>

uint32_t vdb_crc32c(uint32_t crc, const void *p, size_t n);

#endif /* VECDB_CRC32C_INT_H */
