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
 * its stored width, or bit-packed (FORMAT.md, "Packed integers"). Image IDs are found through the bucket table on their top
 * bits, then a short search: no hashing, nothing built at open. */
#ifndef OIC_LOOKUP_H
#define OIC_LOOKUP_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "oic_crc32c.h"
#include "oic_textcodec.h" /* oic_bits_get: bit-packed integers */

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
    int width;              /* 1, 2, 4 or 8 bytes; 0: bit-packed */
    int kind;               /* OIC_COL_* */
    int bits;               /* bit-packed: 1..56 bits per value, to which `base` is added */
    int stride, shift;      /* bit-packed: row r's value starts at stream bit r * stride + shift (FORMAT.md) */
    int64_t base;
    double divisor;         /* decimals: value = k / divisor (10^scale); 1 otherwise */
    int64_t constant;
    const float *f32_table; /* stored values below 256 (raw u1, or packed in 8 bits or fewer) as float32, or NULL */
} oic_col;

/* The stream bit where a bit-packed row's value starts. */
static inline uint64_t oic_col_bit(const oic_col *c, size_t row)
{
    return (uint64_t)row * (uint64_t)c->stride + (uint64_t)c->shift;
}

/* The stored unsigned value of a bit-packed row (before `base`). */
static inline uint64_t oic_col_packed(const oic_col *c, size_t row)
{
    return oic_bits_at(c->guard->base, (int64_t)c->guard->length, oic_col_bit(c, row), c->bits);
}

static inline int64_t oic_col_int(const oic_col *c, size_t row)
{
    if (c->guard == NULL)
        return c->constant;
    if (c->width == 0)
        return c->base + (int64_t)oic_col_packed(c, row);
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

/* The byte where row `row` starts. */
static inline size_t oic_col_byte(const oic_col *c, size_t row)
{
    return c->width ? row * (size_t)c->width : (size_t)(oic_col_bit(c, row) >> 3);
}

/* Bytes [lo, hi) that reading rows [lo_row, hi_row) touches: a packed row reads up to 8 bytes from its first. */
static inline void oic_col_span(const oic_col *c, size_t lo_row, size_t hi_row, size_t *lo, size_t *hi)
{
    if (hi_row <= lo_row) {
        *lo = *hi = 0;
        return;
    }
    *lo = oic_col_byte(c, lo_row);
    if (c->width) {
        *hi = hi_row * (size_t)c->width;
        return;
    }
    size_t end = oic_col_byte(c, hi_row - 1) + 8;
    *hi = end < c->guard->length ? end : c->guard->length;
}

/* Ask for the cache line of row `row` early: a lookup's loads (offsets, then codes, confidences and sources
 * of several tables) are independent of each other, and overlapping their misses is most of its speed. */
static inline void oic_col_prefetch(const oic_col *c, size_t row)
{
    if (c != NULL && c->guard != NULL && oic_col_byte(c, row) < c->guard->length)
        __builtin_prefetch(c->guard->base + oic_col_byte(c, row));
}

/* FORMAT.md's blocked offsets: entry i is base[i >> shift] + local[i]. */
typedef struct {
    oic_col base, local;
    int shift;
} oic_offsets;

static inline int64_t oic_offset(const oic_offsets *o, size_t i)
{
    return oic_col_int(&o->base, i >> o->shift) + oic_col_int(&o->local, i);
}

/* Prefetch the lines holding offsets i and i + 1 (local and base). */
static inline void oic_offsets_prefetch(const oic_offsets *o, size_t i)
{
    oic_col_prefetch(&o->local, i);
    oic_col_prefetch(&o->local, i + 1);
    oic_col_prefetch(&o->base, i >> o->shift);
}

/* Offsets i and i + 1 (the row range of entry i); the common case, both packed and away from the end of
 * their segments, without the general reader's dispatch. */
static inline void oic_offset_pair(const oic_offsets *o, size_t i, int64_t *lo, int64_t *hi)
{
    const oic_col *b = &o->base, *l = &o->local;
    size_t k0 = i >> o->shift, k1 = (i + 1) >> o->shift;
    if (b->width == 0 && l->width == 0 && b->guard != NULL && l->guard != NULL) {
        /* local values may be fields of records (several tables' offsets side by side): bit = i * stride + shift */
        uint64_t lb = oic_col_bit(l, i), lb1 = oic_col_bit(l, i + 1), ba = oic_col_bit(b, k0), bb = oic_col_bit(b, k1);
        if ((lb1 >> 3) + 8 <= l->guard->length && (bb >> 3) + 8 <= b->guard->length) {
            uint64_t lm = (UINT64_C(1) << l->bits) - 1, bm = (UINT64_C(1) << b->bits) - 1;
            int64_t base0 = b->base + (int64_t)((oic_tc_ld64(b->guard->base + (ba >> 3)) >> (ba & 7)) & bm);
            int64_t base1 = k1 == k0 ? base0 : b->base + (int64_t)((oic_tc_ld64(b->guard->base + (bb >> 3)) >> (bb & 7)) & bm);
            *lo = base0 + l->base + (int64_t)((oic_tc_ld64(l->guard->base + (lb >> 3)) >> (lb & 7)) & lm);
            *hi = base1 + l->base + (int64_t)((oic_tc_ld64(l->guard->base + (lb1 >> 3)) >> (lb1 & 7)) & lm);
            return;
        }
    }
    *lo = oic_offset(o, i);
    *hi = oic_offset(o, i + 1);
}

/* The index of `id` among the n sorted IDs, or -1. buckets has 2^bits + 1 entries. */
/* The bucket of `id`: its IDs are ids[*lo, *hi). -1 when the bucket table is unsound. */
static inline int oic_bucket(const uint32_t *buckets, int bits, size_t n, uint64_t id, size_t *lo, size_t *hi)
{
    uint64_t top = id >> (64 - bits);
    *lo = buckets[top];
    *hi = buckets[top + 1];
    return (*hi > n || *lo > *hi) ? -1 : 0;
}

/* The index of `id` among the sorted ids[lo, hi), or -1. */
static inline int64_t oic_search_ids(const uint64_t *ids, size_t lo, size_t hi, uint64_t id)
{
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

static inline int64_t oic_find_image(const uint64_t *ids, size_t n, const uint32_t *buckets, int bits, uint64_t id)
{
    size_t lo, hi;
    if (oic_bucket(buckets, bits, n, id, &lo, &hi) != 0)
        return -1;
    return oic_search_ids(ids, lo, hi, id);
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

/* ---- runs: rows read one after another ------------------------------------------------------- */

/* A column read row after row with plain 8-byte loads: row r's value = base + the `mask` bits at stream bit
 * r * w + shift of p (w is the stride: the value's width, or a record's when columns share a segment). A
 * constant column (or an absent one) reads w = 0 bits of eight zero bytes. */
typedef struct {
    const uint8_t *p;
    uint64_t mask;
    int64_t base;
    uint64_t w, shift;
} oic_run;

static const uint8_t oic_zero8[8] = {0};

/* 1 when rows [lo, hi) of c (NULL: absent, reads 0) can be read as a run, else 0 (raw widths, or rows within
 * 8 bytes of the segment's end, take the general path). */
static inline int oic_run_init(const oic_col *c, size_t lo, size_t hi, oic_run *r)
{
    r->p = oic_zero8, r->w = 0, r->shift = 0, r->mask = 0, r->base = 0;
    if (c == NULL)
        return 1;
    if (c->guard == NULL) {
        r->base = c->constant;
        return 1;
    }
    if (c->width != 0 || hi <= lo || (oic_col_bit(c, hi - 1) >> 3) + 8 > c->guard->length)
        return 0;
    r->p = c->guard->base, r->w = (uint64_t)c->stride, r->shift = (uint64_t)c->shift;
    r->mask = (UINT64_C(1) << c->bits) - 1, r->base = c->base;
    return 1;
}

static inline uint64_t oic_run_get(const oic_run *r, uint64_t bit)
{
    return (oic_tc_ld64(r->p + (bit >> 3)) >> (bit & 7)) & r->mask;
}

#endif
