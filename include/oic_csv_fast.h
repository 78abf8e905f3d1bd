/* oic_csv_fast.h: the chunk parser's fast path, for records without CRs and
 * with quotes only around plain strings (label, box and images files).
 *
 * One pass, record by record, field by field, specialized to the layouts of
 * label and box files: a field's end is found with one 16-byte compare
 * (SSE2), or by the word-at-a-time parsers of hex IDs, digits and decimals
 * themselves, and the field is converted straight into the output buffers.
 * Dictionary values are looked up in batches, with prefetching. A record the
 * fast path cannot take whole (an empty required field, a bad value, a wrong
 * number of fields, a quoted string with doubled quotes or a line break) is
 * parsed alone by oic_parse_chunk, which reports errors exactly as it always
 * does; then the fast path goes on after it. From the first CR, or a quote
 * anywhere but around a string, on, oic_parse_chunk takes the rest of the
 * chunk.
 *
 * Needs OIC_PAD readable bytes after the chunk's end (word loads run past
 * it; nothing past it is used).
 */
#ifndef OIC_CSV_FAST_H
#define OIC_CSV_FAST_H

#include <stdint.h>
#include <string.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "oic_csv.h"

/* ---- finding field ends ------------------------------------------------- */

/* The bits of s[0:16] holding ',', LF, a quote or a CR (SSE2). */
static inline unsigned oic_stops16(const uint8_t *s)
{
#if defined(__SSE2__)
    __m128i x = _mm_loadu_si128((const __m128i *)s);
    __m128i delim = _mm_or_si128(_mm_cmpeq_epi8(x, _mm_set1_epi8(',')), _mm_cmpeq_epi8(x, _mm_set1_epi8('\n')));
    __m128i special = _mm_or_si128(_mm_cmpeq_epi8(x, _mm_set1_epi8('"')), _mm_cmpeq_epi8(x, _mm_set1_epi8('\r')));
    return (unsigned)_mm_movemask_epi8(_mm_or_si128(delim, special));
#else
    unsigned m = 0;
    for (int i = 0; i < 16; i++)
        m |= (unsigned)OIC_SPECIAL[s[i]] << i;
    return m;
#endif
}

/* The ',' or LF ending the unquoted field at pos, or -1 when a quote or a CR
 * comes first or the chunk ends: the fast path is stuck there. */
static inline int64_t oic_field_end(const uint8_t *buf, int64_t pos, int64_t len)
{
    unsigned m = oic_stops16(buf + pos);
    int64_t at = m ? pos + __builtin_ctz(m) : oic_scan_unquoted(buf, pos + 16, len);
    if (at >= len || buf[at] == '"' || buf[at] == '\r')
        return -1;
    return at;
}

/* The closing quote of the quoted field whose content starts at pos: its
 * position when the content holds no quote, CR or LF (so it is the content
 * as is, on one line); -1 when it does, which the general path takes; -2
 * when the chunk ends first. */
static inline int64_t oic_plain_quoted_end(const uint8_t *buf, int64_t pos, int64_t len)
{
#if defined(__SSE2__)
    const __m128i quote = _mm_set1_epi8('"'), lf = _mm_set1_epi8('\n'), cr = _mm_set1_epi8('\r');
    for (; pos + 16 <= len; pos += 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(buf + pos));
        unsigned m = (unsigned)_mm_movemask_epi8(
            _mm_or_si128(_mm_cmpeq_epi8(x, quote), _mm_or_si128(_mm_cmpeq_epi8(x, lf), _mm_cmpeq_epi8(x, cr))));
        if (m) {
            pos += __builtin_ctz(m);
            return buf[pos] == '"' ? pos : -1;
        }
    }
#endif
    for (; pos < len; pos++) {
        if (buf[pos] == '"')
            return pos;
        if (buf[pos] == '\n' || buf[pos] == '\r')
            return -1;
    }
    return -2;
}

/* Whether s[0:n] is valid UTF-8: all ASCII, checked 16 bytes at a time (the
 * last load runs up to 15 bytes past s + n, into the chunk or its padding),
 * or else valid by the full check. */
static inline int oic_fast_utf8_ok(const uint8_t *s, int64_t n)
{
#if defined(__SSE2__)
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        if (_mm_movemask_epi8(_mm_loadu_si128((const __m128i *)(s + i))))
            goto full;
    if (i < n && ((unsigned)_mm_movemask_epi8(_mm_loadu_si128((const __m128i *)(s + i))) & ((1u << (n - i)) - 1)))
        goto full;
    return 1;
full:
#endif
    return oic_utf8_invalid_at(s, (size_t)n) == (size_t)n;
}

/* A field of decimal digits only, up to `delim`, of at most max_digits (<= 18,
 * so it cannot overflow): its value in *out and its length, or -1 for
 * anything else (a sign, too many digits, an empty field), which the exact
 * general conversion takes. Reads up to s + max_digits. */
static inline int64_t oic_fast_digits_field(const uint8_t *s, uint8_t delim, int64_t max_digits, int64_t *out)
{
    int64_t v = 0, k = 0;
    while (k < max_digits && (unsigned)(s[k] - '0') <= 9) {
        v = v * 10 + (s[k] - '0');
        k++;
    }
    if (k == 0 || s[k] != delim)
        return -1;
    *out = v;
    return k;
}

/* ---- numbers, a word at a time ------------------------------------------- */

/* OIC_LOW_BYTES[k]: the low k bytes of a word set (k = 0..8). */
static const uint64_t OIC_LOW_BYTES[9] = {
    0, 0xFF, 0xFFFF, 0xFFFFFF, 0xFFFFFFFF, 0xFFFFFFFFFFULL, 0xFFFFFFFFFFFFULL, 0xFFFFFFFFFFFFFFULL,
    0xFFFFFFFFFFFFFFFFULL,
};

static const uint64_t OIC_POW10_INT[9] = {1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000};

/* The value of 8 digit values (0-9, the first in the low byte): three multiplies. */
static inline uint64_t oic_swar8(uint64_t w)
{
    w = w * 10 + (w >> 8);
    return (((w & UINT64_C(0x000000FF000000FF)) * UINT64_C(0x000F424000000064)) +
            (((w >> 16) & UINT64_C(0x000000FF000000FF)) * UINT64_C(0x0000271000000001))) >> 32;
}

/* The value of the k (1..8) decimal digits at the start of w (first digit in
 * the low byte); *ok is cleared if one is not a digit. */
static inline uint64_t oic_swar_digits(uint64_t w, int64_t k, int *ok)
{
    const uint64_t zeros = UINT64_C(0x3030303030303030), keep = OIC_LOW_BYTES[k];
    w = (w & keep) | (zeros & ~keep); /* the bytes past the digits read as '0' */
    *ok &= (w & UINT64_C(0xF0F0F0F0F0F0F0F0)) == zeros &&
           ((w + UINT64_C(0x0606060606060606)) & UINT64_C(0xF0F0F0F0F0F0F0F0)) == zeros;
    return oic_swar8((w - zeros) << (8 * (8 - k))); /* leading zero digits instead of trailing ones */
}

/* A number field at s that ends with `delim`, in the shapes label and box
 * files use: one digit, or one digit, a dot and up to 7 more ("0.057617").
 * Writes the correctly rounded value (digits below 2^53 over an exact power
 * of ten: one IEEE division) and returns the field's length, or -1 for
 * anything else. Finds the field's end itself: bytes up to s + 10 are read. */
static inline int64_t oic_fast_float_field(const uint8_t *s, uint8_t delim, double *out)
{
    const unsigned d0 = (unsigned)s[0] - '0';
    if (d0 > 9)
        return -1;
    if (s[1] == delim) {
        *out = (double)(int)d0;
        return 1;
    }
    if (s[1] != '.')
        return -1;
    uint64_t w;
    memcpy(&w, s + 2, 8);
    /* Digit values, and a high bit in each byte that is not a digit (exact up to the first one:
     * borrows and carries only run upward). */
    const uint64_t t = w - UINT64_C(0x3030303030303030);
    const uint64_t other = (t | (t + UINT64_C(0x7676767676767676))) & UINT64_C(0x8080808080808080);
    if (!other)
        return -1; /* 8 or more digits after the dot */
    const int m = __builtin_ctzll(other) >> 3;
    if (s[2 + m] != delim)
        return -1;
    const uint64_t mant = m ? d0 * OIC_POW10_INT[m] + oic_swar8(t << (8 * (8 - m))) : d0;
    *out = (double)(int64_t)mant / OIC_POW10[m];
    return 2 + m;
}

/* -?[0-9]{1,8}(\.[0-9]{0,8})? (at most 15 digits) to the correctly rounded
 * double: the digits as one integer (below 2^53), then one division by an
 * exact power of ten, which IEEE rounds correctly (Clinger's fast path).
 * Returns 0 for anything else, left to oic_parse_double. Reads 16 bytes past s. */
static inline int oic_fast_decimal(const uint8_t *s, int64_t n, double *out)
{
    const int neg = s[0] == '-';
    s += neg;
    n -= neg;
    if (n <= 0 || n > 16)
        return 0;
    uint64_t w;
    memcpy(&w, s, 8);
    int64_t k = n; /* digits before the dot */
    uint64_t dots = oic_bytes_equal_to(w, '.');
    if (dots && (int64_t)(__builtin_ctzll(dots) >> 3) < n)
        k = __builtin_ctzll(dots) >> 3; /* the lowest hit is exact */
    else if (n > 8 && s[8] == '.')
        k = 8;
    const int64_t m = k < n ? n - k - 1 : 0; /* digits after it */
    if (k == 0 || k > 8 || m > 8 || k + m > 15)
        return 0;
    int ok = 1;
    uint64_t mant = oic_swar_digits(w, k, &ok);
    if (m) {
        uint64_t f;
        memcpy(&f, s + k + 1, 8);
        mant = mant * OIC_POW10_INT[m] + oic_swar_digits(f, m, &ok);
    }
    if (!ok)
        return 0;
    double v = (double)(int64_t)mant;
    if (m)
        v /= OIC_POW10[m];
    *out = neg ? -v : v;
    return 1;
}

/* ---- dictionary values, looked up in batches ------------------------------- */

typedef struct {
    oic_column *col;
    const uint8_t *s;    /* the value, in the chunk */
    int64_t n;
    uint64_t w0, w1, h;  /* key words and hash (n <= 16) */
    int64_t row, rec, lines; /* its record: to redo it on the general path */
} oic_pending;

#define OIC_BATCH 48
#ifndef OIC_PREFETCH_AHEAD
#define OIC_PREFETCH_AHEAD 2048
#endif

typedef struct {
    oic_pending e[OIC_BATCH];
    int32_t count;
} oic_batch;

/* The code of a value (n >= 1) from the column's dictionary, which adds it
 * when new (checked first, as the general path would report it); -1 when the
 * general path must take the record. A value over 16 bytes
 * ("crowdsource-verification") is first compared, in place, with the
 * column's previous long one. */
static __attribute__((noinline)) int32_t oic_code_slow(oic_column *col, const uint8_t *s, int64_t n)
{
    uint64_t w0, w1, h;
    int added;
    if (n > 16 && col->last && col->last_len == n && oic_same_bytes(col->last, s, n))
        return col->last_code;
    oic_key_words(s, (size_t)n, &w0, &w1);
    h = oic_hash_value(s, (size_t)n, w0, w1);
    int32_t c = oic_dict_find(col->dict, s, (size_t)n, w0, w1, h);
    if (c < 0 && (oic_utf8_invalid_at(s, (size_t)n) != (size_t)n ||
                  oic_dict_intern_hashed(col->dict, s, (size_t)n, w0, w1, h, &c, &added) != OIC_OK))
        return -1;
    if (n > 16) {
        col->last = s; /* points into the chunk, which outlives the parse */
        col->last_len = n;
        col->last_code = c;
    }
    return c;
}

/* Remembers a value looked up (n <= 16) and the code its row got: once it
 * repeats, and the code is the table's, a field that repeats it again (with
 * the column's delimiter after, n < 16) is recognised by two masked word
 * compares, before any scan, and given the code. */
static inline void oic_remember(oic_column *col, int64_t n, uint64_t w0, uint64_t w1, int32_t code, int final)
{
    const int again = n == col->fast_len && w0 == col->fast_w0 && w1 == col->fast_w1;
    col->fast_len = n;
    col->fast_w0 = w0;
    col->fast_w1 = w1;
    col->fast_code = code;
    if (n >= 16 || !again || !final) {
        col->rep_len = -1; /* set up only once a value repeats: labels mostly change */
        return;
    }
    const uint64_t d = col->delim;
    col->rep_w0 = n < 8 ? w0 | d << (8 * n) : w0;
    col->rep_w1 = n < 8 ? 0 : w1 | d << (8 * (n - 8));
    col->rep_m0 = OIC_LOW_BYTES[n + 1 < 8 ? n + 1 : 8];
    col->rep_m1 = OIC_LOW_BYTES[n + 1 > 8 ? n + 1 - 8 : 0];
    col->rep_len = n;
}

/* Notes that `row` keeps a dictionary code the table's map did not know yet;
 * out of memory, the whole column is mapped instead. */
static __attribute__((noinline)) void oic_fix_later(oic_column *col, int64_t row)
{
    if (col->all_local)
        return;
    if (col->fix_len == col->fix_cap) {
        int64_t cap = col->fix_cap ? col->fix_cap * 2 : 1024;
        int32_t *fix = row <= INT32_MAX ? (int32_t *)realloc(col->fix, (size_t)cap * sizeof(int32_t)) : NULL;
        if (!fix) {
            col->all_local = 1;
            return;
        }
        col->fix = fix;
        col->fix_cap = cap;
    }
    col->fix[col->fix_len++] = (int32_t)row;
}

/* The code a row gets for dictionary code c: the table's when known, else c, noted. */
static inline int32_t oic_out_code(oic_column *col, int32_t c, int64_t row)
{
    if (c < col->gmap_len)
        return col->gmap[c];
    oic_fix_later(col, row);
    return c;
}

/* Looks up the batch's values in order (so each dictionary grows in file
 * order) and writes their codes. Returns -1, or the index of the first value
 * the general path must take: its record and the ones after are redone. */
static inline int32_t oic_batch_resolve(oic_batch *b)
{
    for (int32_t k = 0; k < b->count; k++) {
        const oic_pending *e = &b->e[k];
        oic_column *col = e->col;
        int32_t c;
        if (e->n > 16) {
            c = oic_code_slow(col, e->s, e->n);
        } else {
            c = oic_dict_find_short(col->dict, e->w0, e->w1, (size_t)e->n, e->h);
            if (c < 0)
                c = oic_code_slow(col, e->s, e->n);
        }
        if (c < 0) {
            b->count = 0;
            return k;
        }
        const int final = c < col->gmap_len;
        c = oic_out_code(col, c, e->row);
        ((int32_t *)col->values)[e->row] = c;
        if (e->n <= 16)
            oic_remember(col, e->n, e->w0, e->w1, c, final);
    }
    b->count = 0;
    return -1;
}

/* Queues a dictionary field (n >= 1) of record `row` for oic_batch_resolve,
 * with its hash-table slot prefetched (the caller leaves room for a record's
 * fields). */
static inline __attribute__((always_inline)) void oic_fast_dict(oic_batch *b, oic_column *col, int64_t row,
                                                                const uint8_t *s, int64_t n, int64_t rec,
                                                                int64_t lines)
{
    uint64_t w0 = 0, w1 = 0, h = 0;
    if (n <= 16) {
        /* The key words, zero-padded (the bytes after the field are readable). */
        memcpy(&w0, s, 8);
        memcpy(&w1, s + 8, 8);
        w0 &= OIC_LOW_BYTES[n < 8 ? n : 8];
        w1 &= OIC_LOW_BYTES[n > 8 ? n - 8 : 0];
        h = oic_hash_value(s, (size_t)n, w0, w1);
        const char *slot = (const char *)&col->dict->slots[(uint32_t)h & col->dict->mask];
        __builtin_prefetch(slot);
        __builtin_prefetch(slot + 64); /* linear probing often reads the next slot, maybe in the next line */
    }
    oic_pending *e = &b->e[b->count++];
    e->col = col;
    e->s = s;
    e->n = n;
    e->w0 = w0;
    e->w1 = w1;
    e->h = h;
    e->row = row;
    e->rec = rec;
    e->lines = lines;
}

/* Whether the field at s repeats the column's last value looked up ("machine"
 * again), delimiter included: then its code is known and nothing else is done. */
static inline int oic_fast_repeat(const oic_column *col, const uint8_t *s)
{
    uint64_t a, b;
    memcpy(&a, s, 8);
    memcpy(&b, s + 8, 8);
    return col->rep_len >= 0 && !(((a ^ col->rep_w0) & col->rep_m0) | ((b ^ col->rep_w1) & col->rep_m1));
}

/* A dictionary column's map to the table's codes (NULL: none; all codes stay
 * the dictionary's), and, after the parse, the rows left with dictionary
 * codes: *rows and their count, or -1 when any row may hold one. */
static inline void oic_column_map_codes(oic_column *col, const int32_t *gmap, int64_t n)
{
    col->gmap = gmap;
    col->gmap_len = gmap ? n : 0;
    col->all_local = gmap == NULL;
}

static inline int64_t oic_column_local_rows(const oic_column *col, const int32_t **rows)
{
    *rows = col->fix;
    return col->all_local ? -1 : col->fix_len;
}

static inline void oic_column_release(oic_column *col)
{
    free(col->fix);
    col->fix = NULL;
    col->fix_len = col->fix_cap = 0;
}

/* ---- converting one field ----------------------------------------------- */

/* An empty optional number: a null, i.e. a zero without its validity bit. */
static inline int oic_fast_null(oic_column *col, int type, int64_t row, int32_t ncols)
{
    if (col->required || ncols == 1)
        return 0; /* an error, or an empty line: the general path says which */
    switch (type) {
    case OIC_COL_FLOAT64: ((double *)col->values)[row] = 0; break;
    case OIC_COL_INT8: ((int8_t *)col->values)[row] = 0; break;
    case OIC_COL_INT32: ((int32_t *)col->values)[row] = 0; break;
    default: ((int64_t *)col->values)[row] = 0; break;
    }
    return 1;
}

/* A number the word-at-a-time parsers do not take (an exponent, many digits,
 * a bad value): the exact general conversion, out of line. */
static __attribute__((noinline)) int oic_fast_number_slow(const oic_parser *p, oic_column *col, int type,
                                                          int64_t row, const uint8_t *s, int64_t n)
{
    int64_t iv;
    switch (type) {
    case OIC_COL_FLOAT64:
        return oic_parse_double(s, (size_t)n, p->c_locale, (double *)col->values + row) == OIC_OK;
    case OIC_COL_INT8:
        if (oic_parse_int(s, (size_t)n, INT8_MIN, INT8_MAX, &iv) != OIC_OK)
            return 0;
        ((int8_t *)col->values)[row] = (int8_t)iv;
        return 1;
    case OIC_COL_INT32:
        if (oic_parse_int(s, (size_t)n, INT32_MIN, INT32_MAX, &iv) != OIC_OK)
            return 0;
        ((int32_t *)col->values)[row] = (int32_t)iv;
        return 1;
    default:
        if (oic_parse_int(s, (size_t)n, INT64_MIN, INT64_MAX, &iv) != OIC_OK)
            return 0;
        ((int64_t *)col->values)[row] = iv;
        return 1;
    }
}

/* Converts one unquoted field s[0:n] of record `row` (starting at `rec`, on
 * line `lines`) into a column of the given type; 0 sends the record to the
 * general path. Takes exactly what oic_convert_field takes, with the same
 * results, but for rare cases it leaves to it (empty required fields,
 * invalid values). Dictionary codes may come later (oic_batch_resolve). */
static inline __attribute__((always_inline)) int oic_fast_field(const oic_parser *p, oic_batch *b, oic_column *col,
                                                                int type, int64_t row, const uint8_t *s, int64_t n,
                                                                int32_t ncols, int64_t rec, int64_t lines)
{
    switch (type) {
    case OIC_COL_IMAGE_ID:
        return n == 16 && oic_parse_image_id_swar(s, (uint64_t *)col->values + row) == OIC_OK;
    case OIC_COL_DICTIONARY:
        if (n == 0)
            return 0;
        oic_fast_dict(b, col, row, s, n, rec, lines);
        return 1;
    case OIC_COL_STRING:
        /* An empty field is "" unless it is the whole record: an empty line. */
        if ((n == 0 && ncols == 1) || col->data_len + n > col->data_cap || col->data_len + n > INT32_MAX ||
            !oic_fast_utf8_ok(s, n))
            return 0;
        memcpy(col->data + col->data_len, s, (size_t)n);
        col->data_len += n;
        col->offsets[row + 1] = (int32_t)col->data_len;
        return 1;
    case OIC_COL_FLOAT64:
        if (n == 0)
            return oic_fast_null(col, type, row, ncols);
        if (!oic_fast_decimal(s, n, (double *)col->values + row) && !oic_fast_number_slow(p, col, type, row, s, n))
            return 0;
        break;
    case OIC_COL_INT8:
        /* Flags: "0", "1", "-1". */
        if (n == 0)
            return oic_fast_null(col, type, row, ncols);
        if (n == 1 && (unsigned)(s[0] - '0') <= 9)
            ((int8_t *)col->values)[row] = (int8_t)(s[0] - '0');
        else if (!oic_fast_number_slow(p, col, type, row, s, n))
            return 0;
        break;
    default:
        if (n == 0)
            return oic_fast_null(col, type, row, ncols);
        if (!oic_fast_number_slow(p, col, type, row, s, n))
            return 0;
        break;
    }
    if (col->validity)
        oic_set_valid(col, row);
    return 1;
}

/* ---- the record loop ---------------------------------------------------- */

/* The general path, out of line: the fast loops below are flattened (every
 * call inlined), and it is large and rarely called. */
static __attribute__((noinline)) oic_status oic_general(oic_parser *p, oic_column *cols, int32_t ncols)
{
    const int64_t from = p->rows;
    oic_status st = oic_parse_chunk(p, cols, ncols);
    /* It leaves the dictionary's codes: noted for the rows it took. */
    for (int32_t c = 0; c < ncols; c++)
        if (cols[c].type == OIC_COL_DICTIONARY && !cols[c].all_local)
            for (int64_t r = from; r < p->rows; r++)
                oic_fix_later(&cols[c], r);
    return st;
}

/* What records from `row` on left is dropped (they are redone): string data,
 * and the notes of rows with dictionary codes. */
static inline void oic_drop_partial(oic_column *cols, int32_t ncols, int64_t row)
{
    for (int32_t c = 0; c < ncols; c++) {
        if (cols[c].type == OIC_COL_STRING)
            cols[c].data_len = cols[c].offsets[row];
        while (cols[c].fix_len && cols[c].fix[cols[c].fix_len - 1] >= row)
            cols[c].fix_len--;
    }
}

/* Parses the record at *pos (row `row`, on line `lines`) into the columns,
 * leaving *pos after it: 0. Else 1 when the general path must take it, or 2
 * when the fast path is stuck (a quote, a CR or the chunk's end) and the
 * general path must take the rest of the chunk; *pos is then undefined.
 * `types` (NULL: the columns' own) and `optional` as for oic_fast_records. */
static inline __attribute__((always_inline)) int oic_fast_record(const oic_parser *p, oic_batch *b, oic_column *cols,
                                                                 const int32_t ncols, const int8_t *types,
                                                                 const uint32_t optional, int64_t row, int64_t lines,
                                                                 int64_t *pos_io)
{
    const uint8_t *buf = p->buf;
    const int64_t len = p->len, rec = *pos_io;
    int64_t pos = rec;
#pragma GCC unroll 24
    for (int32_t f = 0; f < ncols; f++) {
        const uint8_t delim = f + 1 == ncols ? '\n' : ',';
        const int type = types ? types[f] : cols[f].type;
        oic_column *col = &cols[f];
        /* A repeated dictionary value, and IDs, digits and flags, are parsed up to their delimiter
         * (so they hold no quote or CR): no scan for the field's end. */
        int64_t n = -1, end;
        if (type == OIC_COL_DICTIONARY && oic_fast_repeat(col, buf + pos)) {
            ((int32_t *)col->values)[row] = col->fast_code;
            n = col->rep_len;
        } else if (type == OIC_COL_IMAGE_ID && buf[pos + 16] == delim) {
            if (oic_parse_image_id_swar(buf + pos, (uint64_t *)col->values + row) != OIC_OK)
                return 1;
            n = 16;
        } else if (type == OIC_COL_FLOAT64) {
            n = oic_fast_float_field(buf + pos, delim, (double *)col->values + row);
        } else if (type == OIC_COL_INT8 && (unsigned)(buf[pos] - '0') <= 9 && buf[pos + 1] == delim) {
            ((int8_t *)col->values)[row] = (int8_t)(buf[pos] - '0');
            n = 1;
        } else if (type == OIC_COL_INT64 || type == OIC_COL_INT32) {
            /* Sizes and counts (images' OriginalSize): digits only, within range by their count. */
            int64_t v;
            n = oic_fast_digits_field(buf + pos, delim, type == OIC_COL_INT64 ? 18 : 9, &v);
            if (n >= 0 && type == OIC_COL_INT64)
                ((int64_t *)col->values)[row] = v;
            else if (n >= 0)
                ((int32_t *)col->values)[row] = (int32_t)v;
        }
        if (type == OIC_COL_STRING && buf[pos] == '"') {
            /* A quoted string (V3 images quote every Author and Title): its content, when plain, as
             * is; doubled quotes, line breaks and anything after the closing quote but the delimiter
             * are the general path's, for this record only. */
            const int64_t close = oic_plain_quoted_end(buf, pos + 1, len);
            if (close == -2 || close + 1 >= len || buf[close + 1] == '\r')
                return 2; /* the chunk's end, or a CR (CRLF files go the general path's way whole) */
            if (close < 0 || buf[close + 1] != delim)
                return 1;
            const int64_t k = close - pos - 1;
            if (col->data_len + k > col->data_cap || col->data_len + k > INT32_MAX ||
                !oic_fast_utf8_ok(buf + pos + 1, k))
                return 1;
            memcpy(col->data + col->data_len, buf + pos + 1, (size_t)k);
            col->data_len += k;
            col->offsets[row + 1] = (int32_t)col->data_len;
            end = close + 1;
        } else if (n >= 0 && pos + n < len) {
            end = pos + n;
            if ((f >= 32 || ((optional >> f) & 1)) && col->validity)
                oic_set_valid(col, row);
        } else {
            const unsigned m = oic_stops16(buf + pos);
            end = pos + (m ? __builtin_ctz(m) : 16);
            if (!m || end >= len || buf[end] != delim) {
                /* A long field, a quote or CR, the chunk's end or another delimiter: look closer. */
                end = oic_field_end(buf, pos, len);
                if (end < 0)
                    return 2;
                if (buf[end] != delim)
                    return 1;
            }
            if (!oic_fast_field(p, b, col, type, row, buf + pos, end - pos, ncols, rec, lines))
                return 1;
        }
        pos = end + 1;
    }
    *pos_io = pos;
    return 0;
}

/* The record loop of oic_parse_fast, for ncols columns of the given types
 * (NULL: the columns' own); bit f of `optional` is clear when column f has no
 * validity bits. Inlined with constant arguments, it becomes a loop
 * specialized to one file layout. */
static inline __attribute__((always_inline)) oic_status oic_fast_records(oic_parser *p, oic_column *cols,
                                                                         const int32_t ncols, const int8_t *types,
                                                                         const uint32_t optional)
{
    const int64_t len = p->len;
    int64_t pos = p->pos, lines = p->lines, row = p->rows;
    const int64_t row_limit = p->max_rows >= 0 && p->max_rows < p->rows_cap ? p->max_rows : p->rows_cap;
    oic_batch batch;
    int32_t ndict = 0; /* the most values a record queues */
    batch.count = 0;
    for (int32_t c = 0; c < ncols; c++)
        ndict += cols[c].type == OIC_COL_DICTIONARY;
    if (ndict > OIC_BATCH)
        return oic_general(p, cols, ncols);
    for (int32_t c = 0; c < ncols; c++) {
        cols[c].fast_len = -1;
        cols[c].rep_len = -1;
        cols[c].last = NULL;
        cols[c].delim = c + 1 == ncols ? '\n' : ',';
    }
    for (;;) {
        int why = 0; /* 1: the general path takes the record at pos; 2: and the rest of the chunk */
        while (pos < len && row < row_limit && batch.count + ndict <= OIC_BATCH) {
            const int64_t rec = pos;
            /* The text ahead, across page boundaries, where the hardware prefetcher stops. */
            if (len - pos > OIC_PREFETCH_AHEAD)
                __builtin_prefetch(p->buf + pos + OIC_PREFETCH_AHEAD);
            why = oic_fast_record(p, &batch, cols, ncols, types, optional, row, lines, &pos);
            if (why) {
                /* Its queued values are dropped. */
                while (batch.count && batch.e[batch.count - 1].row == row)
                    batch.count--;
                pos = rec;
                break;
            }
            row++;
            lines++;
        }
        /* The codes of the queued values. One the general path must take: redo from its record. */
        const int32_t k = oic_batch_resolve(&batch);
        if (k >= 0) {
            const oic_pending *e = &batch.e[k];
            row = e->row;
            pos = e->rec;
            lines = e->lines;
            why = 1;
            for (int32_t c = 0; c < ncols; c++)
                cols[c].fast_len = cols[c].rep_len = -1;
        }
        if (!why) {
            if (pos < len && row < row_limit)
                continue; /* the batch was full */
            break;
        }
        oic_drop_partial(cols, ncols, row);
        p->pos = pos;
        p->lines = lines;
        p->rows = row;
        if (why == 2)
            return oic_general(p, cols, ncols);
        const int64_t saved_max = p->max_rows;
        p->max_rows = row + 1;
        oic_status st = oic_general(p, cols, ncols);
        p->max_rows = saved_max;
        if (st != OIC_OK)
            return st;
        pos = p->pos;
        lines = p->lines;
        row = p->rows;
    }
    p->pos = pos;
    p->lines = lines;
    p->rows = row;
    /* At the row limit the general path stops, or reports the capacity, exactly as it would. */
    return pos < len ? oic_general(p, cols, ncols) : OIC_OK;
}

/* The layouts of label and box files (V3 boxes are the first 8 columns, V4
 * and V5 the first 13, V6 and V7 all 21). */
static const int8_t OIC_LABEL_TYPES[4] = {OIC_COL_IMAGE_ID, OIC_COL_DICTIONARY, OIC_COL_DICTIONARY, OIC_COL_FLOAT64};
static const int8_t OIC_BOX_TYPES[21] = {
    OIC_COL_IMAGE_ID, OIC_COL_DICTIONARY, OIC_COL_DICTIONARY, OIC_COL_FLOAT64, OIC_COL_FLOAT64, OIC_COL_FLOAT64,
    OIC_COL_FLOAT64,  OIC_COL_FLOAT64,    OIC_COL_INT8,       OIC_COL_INT8,    OIC_COL_INT8,    OIC_COL_INT8,
    OIC_COL_INT8,     OIC_COL_FLOAT64,    OIC_COL_FLOAT64,    OIC_COL_FLOAT64, OIC_COL_FLOAT64, OIC_COL_FLOAT64,
    OIC_COL_FLOAT64,  OIC_COL_FLOAT64,    OIC_COL_FLOAT64,
};
#define OIC_BOX_OPTIONAL (UINT32_C(0x1FFF) << 8) /* IsOccluded... and XClick1X... may be empty */

static __attribute__((noinline, flatten)) oic_status oic_fast_labels(oic_parser *p, oic_column *cols)
{
    return oic_fast_records(p, cols, 4, OIC_LABEL_TYPES, 0);
}

static __attribute__((noinline, flatten)) oic_status oic_fast_boxes_v3(oic_parser *p, oic_column *cols)
{
    return oic_fast_records(p, cols, 8, OIC_BOX_TYPES, 0);
}

static __attribute__((noinline, flatten)) oic_status oic_fast_boxes(oic_parser *p, oic_column *cols)
{
    return oic_fast_records(p, cols, 13, OIC_BOX_TYPES, OIC_BOX_OPTIONAL);
}

static __attribute__((noinline, flatten)) oic_status oic_fast_boxes_v6(oic_parser *p, oic_column *cols)
{
    return oic_fast_records(p, cols, 21, OIC_BOX_TYPES, OIC_BOX_OPTIONAL);
}

static __attribute__((noinline, flatten)) oic_status oic_fast_any(oic_parser *p, oic_column *cols, int32_t ncols)
{
    return oic_fast_records(p, cols, ncols, NULL, ~UINT32_C(0));
}

/* Whether the columns have these types, and validity bits only where `optional` says. */
static inline int oic_layout_is(const oic_column *cols, int32_t ncols, const int8_t *types, int32_t n,
                                uint32_t optional)
{
    if (ncols != n)
        return 0;
    for (int32_t c = 0; c < n; c++)
        if (cols[c].type != types[c] || (cols[c].validity && (c >= 32 || !((optional >> c) & 1))))
            return 0;
    return 1;
}

/* Parses records from p->pos as oic_parse_chunk does, with the same results,
 * statuses and error positions; columns as for it. Needs OIC_PAD readable
 * bytes after p->len. */
static inline oic_status oic_parse_fast(oic_parser *p, oic_column *cols, int32_t ncols)
{
    if (ncols <= 0 || p->pos >= p->len)
        return oic_parse_chunk(p, cols, ncols);
    if (oic_layout_is(cols, ncols, OIC_LABEL_TYPES, 4, 0))
        return oic_fast_labels(p, cols);
    if (oic_layout_is(cols, ncols, OIC_BOX_TYPES, 8, 0))
        return oic_fast_boxes_v3(p, cols);
    if (oic_layout_is(cols, ncols, OIC_BOX_TYPES, 13, OIC_BOX_OPTIONAL))
        return oic_fast_boxes(p, cols);
    if (oic_layout_is(cols, ncols, OIC_BOX_TYPES, 21, OIC_BOX_OPTIONAL))
        return oic_fast_boxes_v6(p, cols);
    return oic_fast_any(p, cols, ncols);
}

/* ---- output segments ----------------------------------------------------- */

/* Output columns are written to segments: anonymous maps of 16 MiB (more for
 * a larger chunk) with transparent huge pages, which a reading thread fills
 * chunk after chunk. A fault costs several microseconds in a VM, and touching
 * fresh memory there can cost more than parsing into it: one fault per 2 MiB
 * instead of one per 4 KiB, and freed segments kept (MADV_FREE: the kernel
 * may still take them back) for the next reads, whose pages are then already
 * there. Pages past what is written are never touched. */
#define OIC_SEGMENT_SIZE ((size_t)16 << 20)
#define OIC_HUGE_PAGE ((size_t)2 << 20)
#define OIC_PAGE ((size_t)4 << 10)

static inline size_t oic_round_up(size_t n, size_t to)
{
    return (n + to - 1) / to * to;
}

/* A new segment of `size` bytes, or NULL where maps are not available. */
static inline void *oic_segment_map(size_t size)
{
#if defined(__linux__) && defined(MAP_NORESERVE)
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
#if defined(MADV_HUGEPAGE)
    madvise(p, size, MADV_HUGEPAGE); /* a hint: without it, plain pages */
#endif
    return p;
#else
    (void)size;
    return NULL;
#endif
}

static inline void oic_segment_unmap(void *p, size_t size)
{
#if defined(__linux__) && defined(MAP_NORESERVE)
    if (p && size)
        munmap(p, size);
#else
    (void)p, (void)size;
#endif
}

/* Gives back the pages of [used, warm) (used rounded up to a page, warm to a
 * huge page): the unused end of a huge page partly written, and what a kept
 * segment held past what this read wrote. */
static inline void oic_segment_trim(void *p, size_t used, size_t warm, size_t size)
{
#if defined(__linux__) && defined(MADV_DONTNEED)
    size_t from = oic_round_up(used, OIC_PAGE), to = oic_round_up(warm > used ? warm : used, OIC_HUGE_PAGE);
    if (to > size)
        to = size;
    if (p && from < to)
        madvise((char *)p + from, to - from, MADV_DONTNEED);
#else
    (void)p, (void)used, (void)warm, (void)size;
#endif
}

/* Marks the first `warm` bytes of a segment kept for later as free to take back. */
static inline void oic_segment_keep(void *p, size_t warm)
{
#if defined(__linux__) && defined(MADV_FREE)
    if (p && warm)
        madvise(p, oic_round_up(warm, OIC_PAGE), MADV_FREE);
#else
    (void)p, (void)warm;
#endif
}

/* How many bits of the first `bits` of v are set (a SWAR popcount: no -mpopcnt needed). */
static inline int64_t oic_count_set_bits(const uint8_t *v, int64_t bits)
{
    int64_t count = 0, i = 0, nbytes = bits >> 3;
    for (; i + 8 <= nbytes; i += 8) {
        uint64_t w;
        memcpy(&w, v + i, 8);
        w = w - ((w >> 1) & UINT64_C(0x5555555555555555));
        w = (w & UINT64_C(0x3333333333333333)) + ((w >> 2) & UINT64_C(0x3333333333333333));
        w = (w + (w >> 4)) & UINT64_C(0x0F0F0F0F0F0F0F0F);
        count += (int64_t)((w * UINT64_C(0x0101010101010101)) >> 56);
    }
    for (; i < nbytes; i++)
        for (int b = 0; b < 8; b++)
            count += (v[i] >> b) & 1;
    for (int b = 0; b < (int)(bits & 7); b++)
        count += (v[nbytes] >> b) & 1;
    return count;
}

/* In place: codes from `start` up become mapping[code - start] (a reading
 * thread's codes to the table's). Returns -1, or the index of a code outside
 * the mapping (codes before it are mapped, it and the rest are not). */
static inline int64_t oic_remap_codes(int32_t *codes, int64_t n, const int32_t *mapping, int32_t m, int32_t start)
{
    for (int64_t i = 0; i < n; i++) {
        const int64_t c = (int64_t)codes[i] - start;
        if (c < 0)
            continue;
        if (c >= m)
            return i;
        codes[i] = mapping[c];
    }
    return -1;
}

/* In place: codes[r] becomes mapping[codes[r]] for each of the rows (which
 * increase). Returns -1, or the index in rows of a row or code out of range. */
static inline int64_t oic_remap_rows(int32_t *codes, int64_t n, const int32_t *rows, int64_t nrows,
                                     const int32_t *mapping, int32_t m)
{
    for (int64_t k = 0; k < nrows; k++) {
        const int32_t r = rows[k];
        /* Increasing rows: none is mapped twice. */
        if (r < 0 || r >= n || (k && r <= rows[k - 1]) || codes[r] < 0 || codes[r] >= m)
            return k;
        codes[r] = mapping[codes[r]];
    }
    return -1;
}

/* The offset after the last LF in s[0:n], or 0. */
static inline int64_t oic_after_last_lf(const uint8_t *s, int64_t n)
{
    const uint8_t *lf = n > 0 ? (const uint8_t *)memrchr(s, '\n', (size_t)n) : NULL;
    return lf ? lf - s + 1 : 0;
}

#endif
