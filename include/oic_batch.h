/* oic_batch.h: the labels of many images at once (release.labels_many).
 *
 * Two passes over the queries, each cut into ranges that threads run independently:
 *   1. count: each query's row range in each table (uint32 pairs) and its number of rows after filters;
 *   2. fill: after a prefix sum of the counts (the caller's), each query's rows at its place in the output.
 * The loads of one query depend on each other (bucket → IDs → offsets, then its rows), those of different
 * queries do not, so both passes run as software pipelines: each stage prefetches what the next stage of the
 * same query needs, a few queries ahead, and many cache misses overlap. With random IDs that overlap is most of
 * the speed: a query touches about ten cache lines spread over 30 MB.
 *
 * The caller has checked every byte these loops read (the CRCs of whole segments, the bucket table monotone
 * and within the IDs); the row ranges are checked against each table's rows here. */
#ifndef OIC_BATCH_H
#define OIC_BATCH_H

#include "oic_lookup.h"

#define OIC_BATCH_TABLES 4
#ifndef OIC_BATCH_STAGE
#define OIC_BATCH_STAGE 8 /* pass 1: queries between the stages of one query */
#endif
#ifndef OIC_BATCH_AHEAD
#define OIC_BATCH_AHEAD 8 /* pass 2: queries between a range's prefetch and its decoding */
#endif

/* One label table as the batch reads it. A table is "fast" when its code, confidence and source are each
 * bit-packed or constant and the confidence has a float table: rows below `safe` then decode with plain
 * 8-byte loads (oic_run); the rest go through the general column readers. */
typedef struct {
    const oic_offsets *offsets;
    size_t limit; /* rows of the table's lookup part: every range must lie within it */
    const oic_col *code, *conf, *source; /* source NULL: no Source column */
    const uint8_t *source_map;            /* 256 entries: stored Source value → release source code */
    int want;                             /* 0: the table is filtered out (no rows) */
    int fast;
    size_t safe;
    oic_run rc, rf, rs;
    const float *conf_table; /* fast: the float32 of each stored confidence (entry 0 only when constant) */
    float conf_constant;
    /* The offsets as runs (both bit-packed or constant): entries i and i + 1 read as plain loads when
     * i + 1 < off_safe; otherwise oic_offset_pair. */
    oic_run ob, ol;
    int shift;
    size_t off_safe;
} oic_batch_table;

typedef struct {
    const uint64_t *ids;
    size_t n_ids;
    const uint32_t *buckets;
    int bits;
    int n_tables;
    oic_batch_table t[OIC_BATCH_TABLES];
    int want_source; /* -1: any */
    double threshold; /* rows below it are dropped; -1e300 (or below): none */
    int filtered;     /* want_source >= 0 or a threshold */
} oic_batch;

/* The largest row count such that rows [0, n) of c read whole 8-byte words within its segment. */
static inline size_t oic_run_safe_rows(const oic_col *c)
{
    if (c == NULL || c->guard == NULL)
        return SIZE_MAX;
    if (c->width != 0)
        return 0;
    if (c->guard->length < 8)
        return 0;
    /* row r reads bytes [bit/8, bit/8 + 8), bit = r*stride + shift: enough that bit <= (length - 8) * 8 */
    uint64_t room = (uint64_t)(c->guard->length - 8) * 8;
    if (room < (uint64_t)c->shift)
        return 0;
    uint64_t last = (room - (uint64_t)c->shift) / (uint64_t)c->stride; /* the last row that fits */
    return (size_t)last + 1;
}

/* Fill in a table's fast-path fields from its columns (after offsets, limit, code, conf, source are set). */
static inline void oic_batch_table_init(oic_batch_table *t)
{
    const oic_offsets *o = t->offsets;
    t->shift = o->shift;
    t->off_safe = 0;
    if (oic_run_init(&o->base, 0, 1, &t->ob) && oic_run_init(&o->local, 0, 1, &t->ol)) {
        size_t sl = oic_run_safe_rows(&o->local), sb = oic_run_safe_rows(&o->base);
        /* entry i reads local row i and base row i >> shift: both safe when i < sl and i < sb << shift */
        if (o->shift < 48 && sb < ((size_t)1 << (63 - o->shift)))
            sb <<= o->shift;
        else
            sb = SIZE_MAX;
        t->off_safe = sl < sb ? sl : sb;
    }
    size_t s = oic_run_safe_rows(t->code), s2 = oic_run_safe_rows(t->conf), s3 = oic_run_safe_rows(t->source);
    s = s2 < s ? s2 : s;
    s = s3 < s ? s3 : s;
    t->safe = s;
    t->fast = 0;
    if (s == 0)
        return;
    /* oic_run_init with a one-row range at 0 sets the run's pointer, width, mask and base; `safe` bounds it. */
    if (!oic_run_init(t->code, 0, 1, &t->rc) || !oic_run_init(t->conf, 0, 1, &t->rf) || !oic_run_init(t->source, 0, 1, &t->rs))
        return;
    if (t->conf->guard == NULL) {
        t->conf_constant = (float)oic_col_double(t->conf, 0);
        t->conf_table = &t->conf_constant; /* w = 0: every row reads entry 0 */
    } else if (t->conf->f32_table != NULL) {
        t->conf_table = t->conf->f32_table; /* bits <= 8: every stored value has an entry */
    } else {
        return;
    }
    t->fast = 1;
}

/* Whether row r of a table passes the filters (confidence compared in double precision, as labels() does). */
static inline int oic_batch_keep(const oic_batch *c, const oic_batch_table *t, size_t r)
{
    if (oic_col_double(t->conf, r) < c->threshold)
        return 0;
    if (c->want_source >= 0) {
        uint8_t s = t->source != NULL ? t->source_map[oic_col_int(t->source, r) & 255] : t->source_map[0];
        if (s != c->want_source)
            return 0;
    }
    return 1;
}

/* Row range [lo, hi) of image i in a table (i + 1 < entries). */
static inline __attribute__((always_inline)) void oic_batch_range(const oic_batch_table *t, size_t i, int64_t *lo, int64_t *hi)
{
    if (i + 1 < t->off_safe) {
        uint64_t wl = t->ol.w, wb = t->ob.w, k0 = i >> t->shift, k1 = (i + 1) >> t->shift;
        int64_t b0 = t->ob.base + (int64_t)oic_run_get(&t->ob, k0 * wb + t->ob.shift);
        int64_t b1 = k1 == k0 ? b0 : t->ob.base + (int64_t)oic_run_get(&t->ob, k1 * wb + t->ob.shift);
        *lo = b0 + t->ol.base + (int64_t)oic_run_get(&t->ol, i * wl + t->ol.shift);
        *hi = b1 + t->ol.base + (int64_t)oic_run_get(&t->ol, (i + 1) * wl + t->ol.shift);
        return;
    }
    oic_offset_pair(t->offsets, i, lo, hi);
}

/* The lines of rows [lo, hi) of a run: its first, and its last when `both` (a constant run has none). */
static inline void oic_batch_prefetch_rows(const oic_run *r, size_t lo, size_t hi, int both)
{
    if (r->w == 0)
        return;
    const uint8_t *a = r->p + (((uint64_t)lo * r->w + r->shift) >> 3), *b = r->p + (((uint64_t)hi * r->w + r->shift - 1) >> 3);
    __builtin_prefetch(a);
    if (both && ((uintptr_t)a ^ (uintptr_t)b) >= 64)
        __builtin_prefetch(b);
}

/* Pass 1 over queries [j0, j1): count[j], the rows of query j after filters, and range[(j * n_tables + t) * 2]
 * and [... + 1], its rows [lo, hi) in table t (0, 0 when absent or the table is not wanted). Returns -1 when
 * every row range is sound, else the first query whose range is not; *missing gets the first absent query (j1
 * when none). Every table's limit is below 2^32 (the caller checks). */
static inline int64_t oic_batch_count(const oic_batch *c, const uint64_t *query, size_t j0, size_t j1, uint32_t *range,
                                      int64_t *count, size_t *missing)
{
    /* A pipeline of four stages, D queries apart: query j's bucket is asked for at step j - 3D, its IDs at
     * j - 2D, its image is found and its offsets asked for at j - D, its ranges read at j. */
    enum { D = OIC_BATCH_STAGE, RING = 2 * OIC_BATCH_STAGE };
    int64_t index[RING];
    const int nt = c->n_tables, shift = 64 - c->bits;
    *missing = j1;
    for (size_t s = j0; s < j1 + 3 * D; s++) {
        if (s < j1) /* stage 0 */
            __builtin_prefetch(&c->buckets[query[s] >> shift]);
        size_t j = s - D;
        if (s >= j0 + D && j < j1) { /* stage 1 */
            uint64_t top = query[j] >> shift;
            size_t lo = c->buckets[top], hi = c->buckets[top + 1];
            if (lo < hi && hi <= c->n_ids) {
                __builtin_prefetch(&c->ids[lo]);
                __builtin_prefetch(&c->ids[hi - 1]);
            }
        }
        j = s - 2 * D;
        if (s >= j0 + 2 * D && j < j1) { /* stage 2 */
            int64_t i = oic_find_image(c->ids, c->n_ids, c->buckets, c->bits, query[j]);
            index[j % RING] = i;
            if (i < 0) {
                if (*missing == j1)
                    *missing = j;
            } else {
                for (int t = 0; t < nt; t++)
                    if (c->t[t].want && (size_t)i + 1 < c->t[t].off_safe) {
                        const oic_batch_table *tb = &c->t[t];
                        __builtin_prefetch(tb->ol.p + (((uint64_t)i * tb->ol.w + tb->ol.shift) >> 3));
                        __builtin_prefetch(tb->ob.p + ((((uint64_t)i >> tb->shift) * tb->ob.w + tb->ob.shift) >> 3));
                    }
            }
        }
        j = s - 3 * D;
        if (s >= j0 + 3 * D && j < j1) { /* stage 3 */
            int64_t total = 0, i = index[j % RING];
            uint32_t *rg = range + j * (size_t)nt * 2;
            for (int t = 0; t < nt; t++) {
                const oic_batch_table *tb = &c->t[t];
                int64_t lo = 0, hi = 0;
                if (i >= 0 && tb->want) {
                    oic_batch_range(tb, (size_t)i, &lo, &hi);
                    if (lo < 0 || lo > hi || (size_t)hi > tb->limit)
                        return (int64_t)j;
                    if (!c->filtered)
                        total += hi - lo;
                    else
                        for (size_t r = (size_t)lo; r < (size_t)hi; r++)
                            total += oic_batch_keep(c, tb, r);
                }
                rg[2 * t] = (uint32_t)lo, rg[2 * t + 1] = (uint32_t)hi;
            }
            count[j] = total;
        }
    }
    return -1;
}

/* Rows [lo, lo + m) of a fast table, unfiltered: codes and confidences in one loop (a load, a shift and a
 * mask each per row), sources in another (a fill when constant, as machine labels' are). */
static inline __attribute__((always_inline)) void oic_batch_decode_fast(const oic_batch_table *t, size_t lo, size_t m,
                                                                        int32_t *label, float *conf, uint8_t *src)
{
    {
        const uint8_t *pc = t->rc.p, *pf = t->rf.p;
        const float *table = t->conf_table;
        uint64_t wc = t->rc.w, mc = t->rc.mask, bc = (uint64_t)lo * wc + t->rc.shift;
        uint64_t wf = t->rf.w, mf = t->rf.mask, bf = (uint64_t)lo * wf + t->rf.shift;
        uint32_t base = (uint32_t)t->rc.base;
        for (size_t r = 0; r < m; r++, bc += wc, bf += wf) {
            label[r] = (int32_t)(base + (uint32_t)((oic_tc_ld64(pc + (bc >> 3)) >> (bc & 7)) & mc));
            conf[r] = table[(oic_tc_ld64(pf + (bf >> 3)) >> (bf & 7)) & mf];
        }
    }
    {
        const uint8_t *p = t->rs.p, *map = t->source_map;
        uint64_t w = t->rs.w, mask = t->rs.mask, bit = (uint64_t)lo * w + t->rs.shift, base = (uint64_t)t->rs.base;
        if (w == 0) {
            uint8_t v = map[base & 255];
            for (size_t r = 0; r < m; r++)
                src[r] = v;
        } else {
            for (size_t r = 0; r < m; r++, bit += w)
                src[r] = map[(base + ((oic_tc_ld64(p + (bit >> 3)) >> (bit & 7)) & mask)) & 255];
        }
    }
}

/* Rows [lo, hi) of any table, keeping those that pass the filters (every row when unfiltered); returns how
 * many were written. */
static inline size_t oic_batch_decode_general(const oic_batch *c, const oic_batch_table *t, size_t lo, size_t hi,
                                              int32_t *label, float *conf, uint8_t *src)
{
    size_t k = 0;
    for (size_t r = lo; r < hi; r++) {
        if (c->filtered && !oic_batch_keep(c, t, r))
            continue;
        label[k] = (int32_t)oic_col_int(t->code, r);
        conf[k] = (float)oic_col_double(t->conf, r);
        src[k] = t->source != NULL ? t->source_map[oic_col_int(t->source, r) & 255] : t->source_map[0];
        k++;
    }
    return k;
}

/* Pass 2 over queries [j0, j1), after pass 1 and a prefix sum of its counts: the rows of query j go to
 * [start[j], start[j + 1]) of label, conf and src. Pass 1 checked every range, and the rows written here are
 * exactly those it counted. The rows of query j + OIC_BATCH_AHEAD are prefetched while query j decodes. */
static inline void oic_batch_fill(const oic_batch *c, const uint32_t *range, const int64_t *start, size_t j0, size_t j1,
                                  int32_t *label, float *conf, uint8_t *src)
{
    const int nt = c->n_tables;
    for (size_t j = j0; j < j1; j++) {
        size_t a = j + OIC_BATCH_AHEAD;
        if (a < j1) {
            const uint32_t *rg = range + a * (size_t)nt * 2;
            for (int t = 0; t < nt; t++) {
                const oic_batch_table *tb = &c->t[t];
                size_t lo = rg[2 * t], hi = rg[2 * t + 1];
                if (hi > lo && tb->fast && hi <= tb->safe) {
                    oic_batch_prefetch_rows(&tb->rc, lo, hi, 1);
                    if (tb->rf.p != tb->rc.p) /* interleaved columns share the code's lines */
                        oic_batch_prefetch_rows(&tb->rf, lo, hi, 0);
                    if (tb->rs.p != tb->rc.p)
                        oic_batch_prefetch_rows(&tb->rs, lo, hi, 0);
                }
            }
        }
        const uint32_t *rg = range + j * (size_t)nt * 2;
        size_t k = (size_t)start[j];
        for (int t = 0; t < nt; t++) {
            const oic_batch_table *tb = &c->t[t];
            size_t lo = rg[2 * t], hi = rg[2 * t + 1];
            if (hi <= lo)
                continue;
            if (!c->filtered && tb->fast && hi <= tb->safe) {
                oic_batch_decode_fast(tb, lo, hi - lo, label + k, conf + k, src + k);
                k += hi - lo;
            } else {
                k += oic_batch_decode_general(c, tb, lo, hi, label + k, conf + k, src + k);
            }
        }
    }
}

#endif
