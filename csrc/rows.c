/*
 * rows.c -- rows_check of rows_int.h: the one validation of a caller's vdb_rows.
 */
#include "rows_int.h"

int rows_check(const vdb_rows *rows, size_t max_rows, unsigned max_shift) {
    if (rows == NULL || rows->dim == 0) return VDB_ERR_INVALID;
    if (rows->n_rows == 0) return VDB_OK;
    if (rows->segments == NULL || rows->segment_shift >= max_shift || rows->n_rows > max_rows)
        return VDB_ERR_INVALID;
    size_t needed = ((rows->n_rows - 1) >> rows->segment_shift) + 1;
    if (rows->n_segments < needed) return VDB_ERR_INVALID;
    for (size_t s = 0; s < needed; s++)
        if (rows->segments[s] == NULL) return VDB_ERR_INVALID;
    return VDB_OK;
}
