/*
 * rows_int.h -- checks of a vdb_rows (vecdb.h) shared by the searches of flat.c and hnsw*.c.
 */
#ifndef VECDB_ROWS_INT_H
#define VECDB_ROWS_INT_H

#include <stddef.h>

#include "vecdb.h"

/*
 * VDB_OK if rows is usable: not NULL, dim > 0, and when it holds rows, at most max_rows of
 * them, a segment shift below max_shift and a non-NULL pointer for every segment they need;
 * VDB_ERR_INVALID otherwise. Reads only the struct and its segment pointer array.
 */
int rows_check(const vdb_rows *rows, size_t max_rows, unsigned max_shift);

#endif /* VECDB_ROWS_INT_H */
