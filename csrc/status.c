/*
 * status.c -- vdb_strerror: the one place status codes become text.
 *
 * Invariant: every VDB_* status code in vecdb.h has a message here; unknown codes get a
 * generic one. Messages are static strings, never NULL.
 */
#include "vecdb.h"

const char *vdb_strerror(int rc) {
    switch (rc) {
    case VDB_OK:
        return "success";
    case VDB_ERR_INVALID:
        return "invalid argument";
    case VDB_ERR_NOMEM:
        return "out of memory";
    case VDB_ERR_THREAD:
        return "could not start a worker thread";
    case VDB_ERR_UNSUPPORTED:
        return "SIMD level not supported by this CPU or build";
    case VDB_ERR_CORRUPT:
        return "corrupt image (bad magic, checksum, size or offsets)";
    case VDB_ERR_VERSION:
        return "image has a newer format version than this build reads";
    default:
        return "unknown vecdb status code";
    }
}
