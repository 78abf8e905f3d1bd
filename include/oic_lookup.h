/* oic_lookup.h: the lookups' hot paths over memory-mapped .oic segments (FORMAT.md, "Tables").
 *
 * A guard stands for one raw segment: before a lookup reads bytes [lo, hi) of
 * it, oic_guard_check() verifies the CRC-32C of every block those bytes touch
 * that no one has checked yet, so damaged bytes raise instead of answering.
 * The checked flags are shared with the Python container and written with
 * relaxed atomics: two threads checking one block at once both compute the
 * same answer.
 *
 * A column reads one integer or double per row from a raw segment, whatever
 * its stored width. Image IDs are found through the bucket table on their top
 * bits, then a short search: no hashing, nothing built at open. */
#ifndef OIC_LOOKUP_H
#define OIC_LOOKUP_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "oic_crc32c.h"

#define OIC_LOOKUP_BLOCK ((size_t)1 << 20) /* FORMAT.md: raw segments are cut into 1 MiB blocks */

typedef struct {
    const uint8_t *base; /* the segment's first byte in the map */
    size_t length;       /* its bytes */
    const uint32_t *crcs; /* per block */
    uint8_t *checked;     /* per block: 1 once its CRC matched (shared with the Python container) */
} oic_guard;

/* -1 when every block touching [lo, hi) is sound, else the first bad block. */
static inline int64_t oic_guard_check(const oic_guard *g, size_t lo, size_t hi)
{
    if (hi <= lo)
        return -1;
    size_t first = lo / OIC_LOOKUP_BLOCK, last = (hi - 1) / OIC_LOOKUP_BLOCK;
    for (size_t b = first; b <= last; b++) {
        if (__atomic_load_n(&g->checked[b], __ATOMIC_RELAXED))
            continue;
        size_t start = b * OIC_LOOKUP_BLOCK;
        size_t n = g->length - start < OIC_LOOKUP_BLOCK ? g->length - start : OIC_LOOKUP_BLOCK;
        if (oic_crc32c(0, g->base + start, n) != g->crcs[b])
            return (int64_t)b;
        __atomic_store_n(&g->checked[b], 1, __ATOMIC_RELAXED);
    }
    return -1;
}

enum { OIC_COL_UNSIGNED = 0, OIC_COL_SIGNED = 1, OIC_COL_FLOAT = 2 };

typedef struct {
    const oic_guard *guard; /* NULL for a constant column (every row is `constant`) */
    int width;              /* 1, 2, 4 or 8 bytes */
    int kind;               /* OIC_COL_* */
    double divisor;         /* decimals: value = k / divisor (10^scale); 1 otherwise */
    int64_t constant;
} oic_col;

static inline int64_t oic_col_int(const oic_col *c, size_t row)
{
    if (c->guard == NULL)
        return c->constant;
    const uint8_t *p = c->guard->base + row * (size_t)c->width;
    if (c->kind == OIC_COL_SIGNED) {
        switch (c->width) {
        case 1: return *(const int8_t *)p;
        case 2: { int16_t v; memcpy(&v, p, 2); return v; }
        case 4: { int32_t v; memcpy(&v, p, 4); return v; }
        default: { int64_t v; memcpy(&v, p, 8); return v; }
        }
    }
    switch (c->width) {
    case 1: return *p;
    case 2: { uint16_t v; memcpy(&v, p, 2); return v; }
    case 4: { uint32_t v; memcpy(&v, p, 4); return v; }
    default: { uint64_t v; memcpy(&v, p, 8); return (int64_t)v; }
    }
}

static inline double oic_col_double(const oic_col *c, size_t row)
{
    if (c->kind == OIC_COL_FLOAT && c->guard != NULL) {
        double v;
        memcpy(&v, c->guard->base + row * 8, 8);
        return v;
    }
    /* k / 10^e in double precision: exactly the value Python's float() makes of the text. */
    return (double)oic_col_int(c, row) / c->divisor;
}

/* Check the rows [lo, hi) of a column; -1 when sound, else the bad block. */
static inline int64_t oic_col_check(const oic_col *c, size_t lo, size_t hi)
{
    if (c->guard == NULL)
        return -1;
    return oic_guard_check(c->guard, lo * (size_t)c->width, hi * (size_t)c->width);
}

/* The index of `id` among the n sorted IDs, or -1. buckets has 2^bits + 1 entries. */
static inline int64_t oic_find_image(const uint64_t *ids, size_t n, const uint32_t *buckets, int bits, uint64_t id)
{
    uint64_t top = id >> (64 - bits);
    size_t lo = buckets[top], hi = buckets[top + 1];
    if (hi > n || lo > hi)
        return -1;
    while (hi - lo > 8) { /* binary search down to a short run, then scan */
        size_t mid = lo + (hi - lo) / 2;
        if (ids[mid] <= id)
            lo = mid;
        else
            hi = mid;
    }
    for (size_t i = lo; i < hi; i++) {
        if (ids[i] == id)
            return (int64_t)i;
        if (ids[i] > id)
            break;
    }
    return -1;
}

/* 16 hex digits (either case) to a uint64; 0 on success, -1 when malformed. */
static inline int oic_parse_hex_id(const char *s, size_t n, uint64_t *out)
{
    if (n != 16)
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < 16; i++) {
        unsigned c = (unsigned char)s[i], d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
            d = (c | 0x20) - 'a' + 10;
        else
            return -1;
        v = v << 4 | d;
    }
    *out = v;
    return 0;
}

#endif
