/* oic_textcodec.h: the compact text encodings of FORMAT.md ("Text encodings"): bit-packed integers,
 * MD5s as 16 raw bytes, URL templates, sorted dictionaries.
 *
 * Bytes in, status out: every function takes spans (pointer + length) and writes through out-parameters
 * that the caller allocated. The decoders read nothing outside the spans they are given, whatever the
 * bytes hold, so they can be fed the arrays of an untrusted file once their lengths were checked; a value
 * out of range is reported with its row, never rendered. */
#ifndef OIC_TEXTCODEC_H
#define OIC_TEXTCODEC_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "oic_text.h" /* OIC_HEX_VALUE */

/* Results of this module's decoders; the Cython layer turns each into one FormatError message. */
typedef enum {
    OIC_TC_OK = 0,
    OIC_TC_BAD_TEMPLATE = 1,  /* a template code above the exception code */
    OIC_TC_BAD_VALUE = 2,     /* a field value outside its kind's range (choice, dictionary, digits) */
    OIC_TC_BAD_EXCEPTION = 3, /* an exception row that is not the next exception in the list */
    OIC_TC_MISMATCH = 4,      /* compare mode: the rendering differs from the given text */
    OIC_TC_NO_MEMORY = 5
} oic_tc_status;

/* ---- small loads, stores, copies ---------------------------------------------------------------------- */

static inline uint64_t oic_tc_ld64(const uint8_t *p)
{
    uint64_t x;
    memcpy(&x, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    x = __builtin_bswap64(x);
#endif
    return x;
}

static inline void oic_tc_st64(uint8_t *p, uint64_t x)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    x = __builtin_bswap64(x);
#endif
    memcpy(p, &x, 8);
}

/* The little-endian word at p, of which only avail (< 8 possible) bytes may be read; the rest read as 0. */
static inline uint64_t oic_tc_ld64_tail(const uint8_t *p, int64_t avail)
{
    if (avail >= 8)
        return oic_tc_ld64(p);
    uint8_t tmp[8] = {0};
    if (avail > 0)
        memcpy(tmp, p, (size_t)avail);
    return oic_tc_ld64(tmp);
}

/* Copies n bytes; short copies without a libc call, never touching a byte outside either span. */
static inline void oic_tc_copy(uint8_t *d, const uint8_t *s, int64_t n)
{
    if (n > 16 && n <= 32) {
        uint64_t x[4];
        memcpy(x, s, 16);
        memcpy(x + 2, s + n - 16, 16);
        memcpy(d, x, 16);
        memcpy(d + n - 16, x + 2, 16);
    } else if (n >= 8 && n <= 16) {
        uint64_t a, b;
        memcpy(&a, s, 8);
        memcpy(&b, s + n - 8, 8);
        memcpy(d, &a, 8);
        memcpy(d + n - 8, &b, 8);
    } else if (n >= 4 && n < 8) {
        uint32_t a, b;
        memcpy(&a, s, 4);
        memcpy(&b, s + n - 4, 4);
        memcpy(d, &a, 4);
        memcpy(d + n - 4, &b, 4);
    } else if (n < 4) {
        for (int64_t i = 0; i < n; i++)
            d[i] = s[i];
    } else {
        memcpy(d, s, (size_t)n);
    }
}

/* 1 when the n bytes at a and b are equal. */
static inline int oic_tc_eq(const uint8_t *a, const uint8_t *b, int64_t n)
{
    if (n > 16 && n <= 32) {
        uint64_t x[4], y[4];
        memcpy(x, a, 16);
        memcpy(x + 2, a + n - 16, 16);
        memcpy(y, b, 16);
        memcpy(y + 2, b + n - 16, 16);
        return ((x[0] ^ y[0]) | (x[1] ^ y[1]) | (x[2] ^ y[2]) | (x[3] ^ y[3])) == 0;
    }
    if (n >= 8 && n <= 16) {
        uint64_t x0, x1, y0, y1;
        memcpy(&x0, a, 8);
        memcpy(&y0, b, 8);
        memcpy(&x1, a + n - 8, 8);
        memcpy(&y1, b + n - 8, 8);
        return ((x0 ^ y0) | (x1 ^ y1)) == 0;
    }
    if (n >= 4 && n < 8) {
        uint32_t x0, x1, y0, y1;
        memcpy(&x0, a, 4);
        memcpy(&y0, b, 4);
        memcpy(&x1, a + n - 4, 4);
        memcpy(&y1, b + n - 4, 4);
        return ((x0 ^ y0) | (x1 ^ y1)) == 0;
    }
    if (n < 4) {
        for (int64_t i = 0; i < n; i++)
            if (a[i] != b[i])
                return 0;
        return 1;
    }
    return memcmp(a, b, (size_t)n) == 0;
}

/* ---- bit-packed unsigned integers ------------------------------------------------------------------ */

/* The largest width of a packed value: an 8-byte load at any bit offset (0..7) then holds the whole value. */
#define OIC_TC_BITS_MAX 56

/* Bytes that hold n values of w bits. */
static inline int64_t oic_bits_bytes(int64_t n, int w)
{
    return (int64_t)(((uint64_t)n * (uint64_t)w + 7) >> 3);
}

/* The w-bit value (0 <= w <= 56) at stream bit `bit`, least significant bit first: bit j of the stream is
 * bit j % 8 of byte j / 8. Bytes past nbytes read as zero. Value i of a plain stream is at bit i*w
 * (oic_bits_get); of an interleaved one (FORMAT.md, `stride` s and `shift` h) at i*s + h. */
static inline uint64_t oic_bits_at(const uint8_t *p, int64_t nbytes, uint64_t bit, int w)
{
    if (w <= 0)
        return 0;
    int64_t byte = (int64_t)(bit >> 3);
    uint64_t x = byte + 8 <= nbytes ? oic_tc_ld64(p + byte) : oic_tc_ld64_tail(p + byte, nbytes - byte);
    return (x >> (bit & 7)) & ((UINT64_C(1) << w) - 1);
}

static inline uint64_t oic_bits_get(const uint8_t *p, int64_t nbytes, int64_t i, int w)
{
    return oic_bits_at(p, nbytes, (uint64_t)i * (uint64_t)(w > 0 ? w : 0), w);
}

/* Packs v[i] - base (each in [0, 2^w)) into out, which holds oic_bits_bytes(n, w) + 8 bytes. Whole bytes
 * are stored 8 at a time from an accumulator (no load of what was just stored). */
static inline void oic_bits_pack(const int64_t *v, int64_t n, int64_t base, int w, uint8_t *out)
{
    if (w <= 0)
        return;
    uint64_t acc = 0;
    int nacc = 0; /* bits in acc, < 8 between values */
    uint8_t *o = out;
    for (int64_t i = 0; i < n; i++) {
        acc |= (uint64_t)(v[i] - base) << nacc;
        nacc += w;
        oic_tc_st64(o, acc);
        int whole = nacc & ~7;
        o += whole >> 3;
        acc = whole == 64 ? 0 : acc >> whole;
        nacc &= 7;
    }
}

/* out[i] = base + value i, for i < n. */
static inline void oic_bits_unpack(const uint8_t *p, int64_t nbytes, int64_t n, int w, int64_t base, int64_t *out)
{
    if (w <= 0) {
        for (int64_t i = 0; i < n; i++)
            out[i] = base;
        return;
    }
    for (int64_t i = 0; i < n; i++)
        out[i] = base + (int64_t)oic_bits_get(p, nbytes, i, w);
}

/* A packed array as a decoder reads it: value r = base + packed value r + (add ? add[r] : 0), where add
 * holds the values of a referenced array (FORMAT.md, "ref"). */
typedef struct {
    const uint8_t *p;
    int64_t nbytes;
    int64_t base;
    const int64_t *add;
    int32_t bits;
} oic_tc_ints;

static inline int64_t oic_tc_ints_get(const oic_tc_ints *a, int64_t r)
{
    int64_t v = a->base + (int64_t)oic_bits_get(a->p, a->nbytes, r, a->bits);
    return a->add ? v + a->add[r] : v;
}

/* Prefetches for a dictionary lookup `ahead` rows early: the entry's offsets twice as far ahead, then its
 * bytes (whose offset is by then in cache). Codes outside [0, dict_n) are clamped; a prefetch never faults. */
#define OIC_TC_AHEAD 8
static inline void oic_tc_prefetch_entry(const int64_t *dict_off, const uint8_t *dict_data, int64_t dict_n,
                                         int64_t far_code, int64_t near_code)
{
#if defined(__GNUC__)
    if (dict_n <= 0)
        return;
    far_code = far_code < 0 ? 0 : far_code >= dict_n ? dict_n - 1 : far_code;
    near_code = near_code < 0 ? 0 : near_code >= dict_n ? dict_n - 1 : near_code;
    __builtin_prefetch(dict_off + far_code);
    __builtin_prefetch(dict_data + dict_off[near_code]);
#else
    (void)dict_off, (void)dict_data, (void)dict_n, (void)far_code, (void)near_code;
#endif
}

/* ---- exceptions, and where decoded rows go ---------------------------------------------------------- */

/* Rows kept as text: exc_rows strictly increasing, row exc_rows[j] is exc_data[exc_off[j]:exc_off[j+1]]. */
typedef struct {
    const int64_t *rows;
    const int64_t *off;
    const uint8_t *data;
    int64_t n;
} oic_tc_exc;

/* Decoders run in one of three modes over rows [lo, hi):
 *   0  lens[r - lo] = the length of row r;
 *   1  row r is written at out + offsets[r - lo] (offsets from pass 0);
 *   2  row r is compared with cmp[cmp_off[r]:cmp_off[r+1]] (scratch holds the longest row). */
typedef struct {
    int mode;
    int64_t *lens_or_offsets;
    uint8_t *out;
    const uint8_t *cmp;
    const int64_t *cmp_off;
    uint8_t *scratch;
    int64_t scratch_len;
} oic_tc_sink;

/* Delivers row r given as a span (exceptions, dictionary entries, MD5 text); 0 on a compare mismatch. */
static inline int oic_tc_sink_span(const oic_tc_sink *k, int64_t r, int64_t lo, const uint8_t *s, int64_t len)
{
    if (k->mode == 0) {
        k->lens_or_offsets[r - lo] = len;
    } else if (k->mode == 1) {
        oic_tc_copy(k->out + k->lens_or_offsets[r - lo], s, len);
    } else {
        const int64_t a = k->cmp_off[r], b = k->cmp_off[r + 1];
        if (b - a != len || !oic_tc_eq(k->cmp + a, s, len))
            return 0;
    }
    return 1;
}

/* The first exception at or after row lo. */
static inline int64_t oic_tc_exc_start(const oic_tc_exc *e, int64_t lo)
{
    int64_t a = 0, b = e->n;
    while (a < b) {
        int64_t m = (a + b) >> 1;
        if (e->rows[m] < lo)
            a = m + 1;
        else
            b = m;
    }
    return a;
}

/* ---- OriginalMD5: base64 of 16 bytes <-> the 16 bytes -------------------------------------------- */

static const char OIC_TC_B64_ALPHABET[65] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* The value of each base64 character, 0xFF for other bytes. */
static const uint8_t OIC_TC_B64_VALUE[256] = {
    0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,
    0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,
    0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0x3E,0xFF,0xFF,0xFF,0x3F,
    0x34,0x35,0x36,0x37,0x38,0x39,0x3A,0x3B,0x3C,0x3D,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,
    0xFF,0x00,0x01,0x02,0x03,0x04,0x05,0x06,0x07,0x08,0x09,0x0A,0x0B,0x0C,0x0D,0x0E,
    0x0F,0x10,0x11,0x12,0x13,0x14,0x15,0x16,0x17,0x18,0x19,0xFF,0xFF,0xFF,0xFF,0xFF,
    0xFF,0x1A,0x1B,0x1C,0x1D,0x1E,0x1F,0x20,0x21,0x22,0x23,0x24,0x25,0x26,0x27,0x28,
    0x29,0x2A,0x2B,0x2C,0x2D,0x2E,0x2F,0x30,0x31,0x32,0x33,0xFF,0xFF,0xFF,0xFF,0xFF,
    0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,
    0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,
    0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,
    0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,
    0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,
    0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,
    0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,
    0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,0xFF,
};

/* 1 when s[0:n] is the canonical standard base64 of 16 bytes (24 characters ending "==", the last data
 * character's 4 unused bits zero), which it decodes into out; else 0. Canonical text re-encodes to itself. */
static inline int oic_md5_parse(const uint8_t *s, int64_t n, uint8_t *out)
{
    if (n != 24 || s[22] != '=' || s[23] != '=')
        return 0;
    uint8_t v[22];
    uint8_t bad = 0;
    for (int i = 0; i < 22; i++) {
        v[i] = OIC_TC_B64_VALUE[s[i]];
        bad |= v[i];
    }
    if ((bad & 0xC0) || (v[21] & 0x0F))
        return 0;
    for (int g = 0; g < 5; g++) {
        const uint8_t *q = v + 4 * g;
        out[3 * g] = (uint8_t)((q[0] << 2) | (q[1] >> 4));
        out[3 * g + 1] = (uint8_t)((q[1] << 4) | (q[2] >> 2));
        out[3 * g + 2] = (uint8_t)((q[2] << 6) | q[3]);
    }
    out[15] = (uint8_t)((v[20] << 2) | (v[21] >> 4));
    return 1;
}

/* The 24 characters of the standard base64 of 16 bytes. */
static inline void oic_md5_render(const uint8_t *b, uint8_t *out)
{
    for (int g = 0; g < 5; g++) {
        const uint8_t *q = b + 3 * g;
        out[4 * g] = (uint8_t)OIC_TC_B64_ALPHABET[q[0] >> 2];
        out[4 * g + 1] = (uint8_t)OIC_TC_B64_ALPHABET[((q[0] & 3) << 4) | (q[1] >> 4)];
        out[4 * g + 2] = (uint8_t)OIC_TC_B64_ALPHABET[((q[1] & 15) << 2) | (q[2] >> 6)];
        out[4 * g + 3] = (uint8_t)OIC_TC_B64_ALPHABET[q[2] & 63];
    }
    out[20] = (uint8_t)OIC_TC_B64_ALPHABET[b[15] >> 2];
    out[21] = (uint8_t)OIC_TC_B64_ALPHABET[(b[15] & 3) << 4];
    out[22] = '=';
    out[23] = '=';
}

/* Rows [lo, hi): the 16 bytes of each canonical MD5 into out16 (16 per row), else zeros and exc[r] = 1.
 * Returns how many rows are exceptions. */
static inline int64_t oic_md5_encode(const uint8_t *data, const int64_t *offsets, int64_t lo, int64_t hi,
                                     uint8_t *out16, uint8_t *exc)
{
    int64_t n_exc = 0;
    for (int64_t r = lo; r < hi; r++) {
        uint8_t *o = out16 + 16 * r;
        if (oic_md5_parse(data + offsets[r], offsets[r + 1] - offsets[r], o)) {
            exc[r] = 0;
        } else {
            memset(o, 0, 16);
            exc[r] = 1;
            n_exc++;
        }
    }
    return n_exc;
}

/* Rows [lo, hi) of an MD5 column (16 bytes per row; rows listed in e are exceptions). */
static inline oic_tc_status oic_md5_decode(const oic_tc_sink *k, int64_t lo, int64_t hi, const uint8_t *md5,
                                           const oic_tc_exc *e, int64_t *bad_row)
{
    int64_t j = oic_tc_exc_start(e, lo);
    uint8_t text[24];
    for (int64_t r = lo; r < hi; r++) {
        int ok;
        if (j < e->n && e->rows[j] == r) {
            ok = oic_tc_sink_span(k, r, lo, e->data + e->off[j], e->off[j + 1] - e->off[j]);
            j++;
        } else {
            oic_md5_render(md5 + 16 * r, text);
            ok = oic_tc_sink_span(k, r, lo, text, 24);
        }
        if (!ok) {
            *bad_row = r;
            return OIC_TC_MISMATCH;
        }
    }
    return OIC_TC_OK;
}

/* ---- dictionaries ---------------------------------------------------------------------------------- */

/* Rows [lo, hi): row r is entry c = codes[r] of (dict_off, dict_data), or, when c == dict_n, an
 * exception (listed in e). */
static inline oic_tc_status oic_dict_decode(const oic_tc_sink *k, int64_t lo, int64_t hi, const oic_tc_ints *codes,
                                            int64_t dict_n, const int64_t *dict_off, const uint8_t *dict_data,
                                            const oic_tc_exc *e, int64_t *bad_row)
{
    int64_t j = oic_tc_exc_start(e, lo);
    for (int64_t r = lo; r < hi; r++) {
        int64_t c = oic_tc_ints_get(codes, r);
        int ok;
        if (r + 2 * OIC_TC_AHEAD < hi)
            oic_tc_prefetch_entry(dict_off, dict_data, dict_n, oic_tc_ints_get(codes, r + 2 * OIC_TC_AHEAD),
                                  oic_tc_ints_get(codes, r + OIC_TC_AHEAD));
        if (c == dict_n) {
            if (j >= e->n || e->rows[j] != r) {
                *bad_row = r;
                return OIC_TC_BAD_EXCEPTION;
            }
            ok = oic_tc_sink_span(k, r, lo, e->data + e->off[j], e->off[j + 1] - e->off[j]);
            j++;
        } else if (c < 0 || c > dict_n) {
            *bad_row = r;
            return OIC_TC_BAD_VALUE;
        } else {
            ok = oic_tc_sink_span(k, r, lo, dict_data + dict_off[c], dict_off[c + 1] - dict_off[c]);
        }
        if (!ok) {
            *bad_row = r;
            return OIC_TC_MISMATCH;
        }
    }
    if (j < e->n && e->rows[j] < hi) {
        *bad_row = e->rows[j];
        return OIC_TC_BAD_EXCEPTION;
    }
    return OIC_TC_OK;
}

/* Offsets of the n entries of a block of NUL-terminated entries: entry i is p[off[i] : off[i+1] - 1] (the
 * NUL excluded), off[0] = 0. Returns 1 when the block holds exactly n NULs and ends with one. */
static inline int oic_tc_nul_block(const uint8_t *p, int64_t len, int64_t n, int64_t *off)
{
    int64_t pos = 0;
    off[0] = 0;
    for (int64_t i = 0; i < n; i++) {
        const uint8_t *hit = pos < len ? (const uint8_t *)memchr(p + pos, 0, (size_t)(len - pos)) : NULL;
        if (!hit)
            return 0;
        pos = (hit - p) + 1;
        off[i + 1] = pos;
    }
    return pos == len;
}

/* ---- sorting and grouping byte strings ---------------------------------------------------------------- */

/* A string being sorted: its first 16 bytes (big-endian words, zero-padded), its index and its length. */
typedef struct {
    uint64_t k0, k1;
    int32_t idx, len;
} oic_tc_sort_item;

/* Strings given as spans: string i is data[start[i] : start[i] + len], len = lens[i] when lens is not NULL,
 * else start[i + 1] - start[i] (start is then an offsets array). */
typedef struct {
    const uint8_t *data;
    const int64_t *start;
    const int32_t *lens;
} oic_tc_spans;

static inline int64_t oic_tc_span_len(const oic_tc_spans *s, int64_t i)
{
    return s->lens ? (int64_t)s->lens[i] : s->start[i + 1] - s->start[i];
}

/* The 8 bytes p[0:len] (len may be below 8, or negative), big-endian, zero-padded. */
static inline uint64_t oic_tc_be_word(const uint8_t *p, int64_t len)
{
    uint64_t k = 0;
    if (len >= 8) {
        memcpy(&k, p, 8);
#if !(defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__)
        k = __builtin_bswap64(k);
#endif
        return k;
    }
    for (int64_t j = 0; j < 8; j++)
        k = (k << 8) | (j < len ? p[j] : 0);
    return k;
}

/* Bytewise order of two strings whose first 16 bytes are equal and which are both at least 16 long. */
static inline int oic_tc_cmp_tail(const oic_tc_spans *s, const oic_tc_sort_item *x, const oic_tc_sort_item *y)
{
    int64_t m = x->len < y->len ? x->len : y->len;
    int c = memcmp(s->data + s->start[x->idx] + 16, s->data + s->start[y->idx] + 16, (size_t)(m - 16));
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

static inline int oic_tc_item_less(const oic_tc_sort_item *x, const oic_tc_sort_item *y)
{
    return x->k0 != y->k0 ? x->k0 < y->k0 : x->k1 < y->k1;
}

static void oic_tc_merge_tail(oic_tc_sort_item *v, oic_tc_sort_item *tmp, int64_t n, const oic_tc_spans *s)
{
    if (n <= 16) {
        for (int64_t i = 1; i < n; i++) {
            oic_tc_sort_item x = v[i];
            int64_t j = i;
            while (j > 0 && oic_tc_cmp_tail(s, &v[j - 1], &x) > 0) {
                v[j] = v[j - 1];
                j--;
            }
            v[j] = x;
        }
        return;
    }
    int64_t h = n / 2;
    oic_tc_merge_tail(v, tmp, h, s);
    oic_tc_merge_tail(v + h, tmp, n - h, s);
    int64_t i = 0, j = h, o = 0;
    while (i < h && j < n) {
        if (oic_tc_cmp_tail(s, &v[i], &v[j]) <= 0)
            tmp[o++] = v[i++];
        else
            tmp[o++] = v[j++];
    }
    while (i < h)
        tmp[o++] = v[i++];
    while (j < n)
        tmp[o++] = v[j++];
    memcpy(v, tmp, (size_t)n * sizeof *v);
}

/* MSD radix sort of n items on their 16 key bytes, from key byte `byte` on. Recurses into the smaller
 * buckets and loops on the largest, so the stack stays O(log n). */
static void oic_tc_msd(oic_tc_sort_item *a, oic_tc_sort_item *tmp, int64_t n, int byte)
{
    for (;;) {
        if (n <= 32) {
            for (int64_t i = 1; i < n; i++) {
                oic_tc_sort_item x = a[i];
                int64_t j = i;
                while (j > 0 && oic_tc_item_less(&x, &a[j - 1])) {
                    a[j] = a[j - 1];
                    j--;
                }
                a[j] = x;
            }
            return;
        }
        if (byte >= 16)
            return;
        int64_t count[256];
        memset(count, 0, sizeof count);
        if (byte < 8) {
            const int shift = 56 - 8 * byte;
            for (int64_t i = 0; i < n; i++)
                count[(a[i].k0 >> shift) & 0xFF]++;
        } else {
            const int shift = 56 - 8 * (byte - 8);
            for (int64_t i = 0; i < n; i++)
                count[(a[i].k1 >> shift) & 0xFF]++;
        }
        int only = -1;
        for (int v = 0; v < 256; v++)
            if (count[v] == n)
                only = v;
        if (only >= 0) {
            /* One bucket: done if every key is the same (duplicates), else the next byte. */
            int64_t i = 1;
            while (i < n && a[i].k0 == a[0].k0 && a[i].k1 == a[0].k1)
                i++;
            if (i == n || only == 0)
                return;
            byte++;
            continue;
        }
        int64_t pos[256], sum = 0;
        for (int v = 0; v < 256; v++) {
            pos[v] = sum;
            sum += count[v];
        }
        if (byte < 8) {
            const int shift = 56 - 8 * byte;
            for (int64_t i = 0; i < n; i++)
                tmp[pos[(a[i].k0 >> shift) & 0xFF]++] = a[i];
        } else {
            const int shift = 56 - 8 * (byte - 8);
            for (int64_t i = 0; i < n; i++)
                tmp[pos[(a[i].k1 >> shift) & 0xFF]++] = a[i];
        }
        memcpy(a, tmp, (size_t)n * sizeof *a);
        /* Bucket 0: the strings that ended (no NUL inside a string), all equal. */
        int big = 1;
        for (int v = 2; v < 256; v++)
            if (count[v] > count[big])
                big = v;
        int64_t at = count[0], big_at = 0;
        for (int v = 1; v < 256; v++) {
            if (v == big)
                big_at = at;
            else if (count[v] > 1)
                oic_tc_msd(a + at, tmp + at, count[v], byte + 1);
            at += count[v];
        }
        a += big_at;
        tmp += big_at;
        n = count[big];
        byte++;
    }
}

/* Numbers the distinct strings among the n spans in bytewise order. A span is skipped (code -1) when its
 * start is negative, it is longer than max_len (at most INT32_MAX), or it holds a NUL byte. codes[i] = the
 * code of string i; first[c] = a string whose value is entry c; *count = the number of entries. Strings
 * are sorted on their first 16 bytes (MSD radix), then runs equal there and longer by a merge sort. */
static inline oic_tc_status oic_tc_group(const oic_tc_spans *s, int64_t n, int64_t max_len, int32_t *codes,
                                         int64_t *first, int64_t *count)
{
    if (n > INT32_MAX || max_len > INT32_MAX)
        return OIC_TC_NO_MEMORY;
    oic_tc_sort_item *a = (oic_tc_sort_item *)malloc((size_t)(n > 0 ? n : 1) * sizeof(oic_tc_sort_item));
    oic_tc_sort_item *b = (oic_tc_sort_item *)malloc((size_t)(n > 0 ? n : 1) * sizeof(oic_tc_sort_item));
    if (!a || !b) {
        free(a);
        free(b);
        return OIC_TC_NO_MEMORY;
    }
    int64_t m = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t st = s->start[i], len = st < 0 ? 0 : oic_tc_span_len(s, i);
        if (st < 0 || len > max_len || len < 0 || (len && memchr(s->data + st, 0, (size_t)len))) {
            codes[i] = -1;
            continue;
        }
        const uint8_t *p = s->data + st;
        a[m].k0 = oic_tc_be_word(p, len);
        a[m].k1 = oic_tc_be_word(p + 8, len - 8);
        a[m].idx = (int32_t)i;
        a[m].len = (int32_t)len;
        m++;
    }
    oic_tc_msd(a, b, m, 0);
    /* Runs equal in their first 16 bytes: with no NUL inside, either one string shorter than 16 bytes, or
     * strings of 16 bytes or more; sort those by their tails. */
    for (int64_t i = 0; i < m;) {
        int64_t j = i + 1;
        int longer = a[i].len > 16;
        while (j < m && a[j].k0 == a[i].k0 && a[j].k1 == a[i].k1) {
            longer |= a[j].len > 16;
            j++;
        }
        if (j - i > 1 && longer)
            oic_tc_merge_tail(a + i, b, j - i, s);
        i = j;
    }
    int64_t c = -1;
    for (int64_t i = 0; i < m; i++) {
        const oic_tc_sort_item *x = &a[i], *y = &a[i > 0 ? i - 1 : 0];
        if (i == 0 || x->k0 != y->k0 || x->k1 != y->k1 || x->len != y->len ||
            (x->len > 16 && memcmp(s->data + s->start[x->idx] + 16, s->data + s->start[y->idx] + 16, (size_t)(x->len - 16)))) {
            c++;
            first[c] = x->idx;
        }
        codes[x->idx] = (int32_t)c;
    }
    *count = c + 1;
    free(a);
    free(b);
    return OIC_TC_OK;
}

/* Two dictionaries sorted bytewise with unique entries: tr[i] = the index of entry i of B in A, or -1. */
static inline void oic_tc_translate(const int64_t *a_off, const uint8_t *a_data, int64_t na, const int64_t *b_off,
                                 const uint8_t *b_data, int64_t nb, int64_t *tr)
{
    int64_t i = 0;
    for (int64_t j = 0; j < nb; j++) {
        const uint8_t *y = b_data + b_off[j];
        int64_t ly = b_off[j + 1] - b_off[j];
        int c = 1;
        while (i < na) {
            const uint8_t *x = a_data + a_off[i];
            int64_t lx = a_off[i + 1] - a_off[i];
            int64_t m = lx < ly ? lx : ly;
            c = m ? memcmp(x, y, (size_t)m) : 0;
            if (c == 0)
                c = (lx > ly) - (lx < ly);
            if (c >= 0)
                break;
            i++;
        }
        tr[j] = (i < na && c == 0) ? i : -1;
    }
}

/* For each span i (start[i] >= 0) whose bytes equal entry ref[i] of the dictionary (dict_off, dict_data;
 * 0 <= ref[i] < dict_n), codes[i] = ref[i]; the others get -1 (spans with a negative start too). Returns how
 * many spans with a start got -1. */
static inline int64_t oic_tc_same_as(const oic_tc_spans *s, int64_t n, const int64_t *ref, const int64_t *dict_off,
                                     const uint8_t *dict_data, int64_t dict_n, int32_t *codes)
{
    int64_t misses = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t st = s->start[i], c = ref[i];
        if (i + 2 * OIC_TC_AHEAD < n)
            oic_tc_prefetch_entry(dict_off, dict_data, dict_n, ref[i + 2 * OIC_TC_AHEAD], ref[i + OIC_TC_AHEAD]);
        codes[i] = -1;
        if (st < 0)
            continue;
        int64_t len = oic_tc_span_len(s, i);
        if (c >= 0 && c < dict_n && dict_off[c + 1] - dict_off[c] == len &&
            oic_tc_eq(s->data + st, dict_data + dict_off[c], len))
            codes[i] = (int32_t)c;
        else
            misses++;
    }
    return misses;
}

/* Gathers strings: out gets string order[i] of the spans, each followed by a NUL byte when nul is set;
 * starts[i] = where it begins in out (starts[n] = the total). The caller sized out from the lengths. */
static inline void oic_tc_gather(const oic_tc_spans *s, const int64_t *order, int64_t n, int nul, uint8_t *out,
                              int64_t *starts)
{
    int64_t pos = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t k = order[i], len = oic_tc_span_len(s, k);
        starts[i] = pos;
        oic_tc_copy(out + pos, s->data + s->start[k], len);
        pos += len;
        if (nul)
            out[pos++] = 0;
    }
    starts[n] = pos;
}

/* ---- URL templates --------------------------------------------------------------------------------- */

/* A template is a list of ops; each op is a literal or one field of the row:
 *   LIT     pool[a : a + b]
 *   DEC     field value v as decimal digits, no leading zero (0 <= v < 10^15)
 *   HEX     field value v as exactly a lowercase hex digits (1 <= a <= 13, 0 <= v < 16^a)
 *   CHOICE  alternative v of the field: pool[alt_off[a + v] : + alt_len[a + v]], 0 <= v < b
 *   DICT    entry v of dictionary b (0 <= v < dict_n[b]); when matching, the bytes up to the first byte
 *           equal to stop[f] (to the end of the text when it is negative) */
enum { OIC_TPL_LIT = 0, OIC_TPL_DEC = 1, OIC_TPL_HEX = 2, OIC_TPL_CHOICE = 3, OIC_TPL_DICT = 4 };

typedef struct {
    int32_t kind, field, a, b;
} oic_tpl_op;

#define OIC_TPL_DEC_DIGITS 15
#define OIC_TPL_DEC_LIMIT INT64_C(1000000000000000) /* 10^15 */
#define OIC_TPL_HEX_DIGITS 13
#define OIC_TPL_MAX_FIELDS 64

typedef struct {
    int32_t n_templates;
    int32_t n_fields;
    const int32_t *start; /* [n_templates + 1]: template t is ops[start[t] : start[t + 1]] */
    const oic_tpl_op *ops;
    const uint8_t *pool;
    const int32_t *alt_off, *alt_len; /* choice alternatives, in value order */
    const int32_t *alt_try;           /* matching: per alternative slot, the value to try in that place */
    const int32_t *stop;              /* matching: per field, the byte that ends a DICT span, or -1 */
    /* decoding: the dictionaries, by op.b */
    const int64_t *const *dict_off;
    const uint8_t *const *dict_data;
    const int64_t *dict_n;
} oic_tpl;

/* Matches s[0:n] (at absolute offset base) against template k; on success stores each field's value in
 * vals[field] (DICT: the span's absolute start, its length in lens[field]) and returns 1. */
static inline int oic_tpl_try(const oic_tpl *t, int32_t k, const uint8_t *s, int64_t n, int64_t base, int64_t *vals,
                              int32_t *lens)
{
    int64_t p = 0;
    for (int32_t i = t->start[k], end = t->start[k + 1]; i < end; i++) {
        const oic_tpl_op *op = &t->ops[i];
        switch (op->kind) {
        case OIC_TPL_LIT:
            if (n - p < op->b || !oic_tc_eq(s + p, t->pool + op->a, op->b))
                return 0;
            p += op->b;
            break;
        case OIC_TPL_DEC: {
            int64_t q = p, v = 0;
            while (q < n && (uint8_t)(s[q] - '0') < 10 && q - p <= OIC_TPL_DEC_DIGITS) {
                v = v * 10 + (s[q] - '0');
                q++;
            }
            int64_t d = q - p;
            if (d == 0 || d > OIC_TPL_DEC_DIGITS || (d > 1 && s[p] == '0'))
                return 0;
            vals[op->field] = v;
            p = q;
            break;
        }
        case OIC_TPL_HEX: {
            if (n - p < op->a)
                return 0;
            uint64_t v = 0;
            uint8_t bad = 0;
            for (int32_t j = 0; j < op->a; j++) {
                uint8_t d = OIC_HEX_VALUE[s[p + j]];
                bad |= d;
                v = (v << 4) | (d & 0x0F);
            }
            if (bad & 0xF0)
                return 0;
            vals[op->field] = (int64_t)v;
            p += op->a;
            break;
        }
        case OIC_TPL_CHOICE: {
            int32_t j;
            for (j = 0; j < op->b; j++) {
                int32_t v = t->alt_try[op->a + j];
                int32_t len = t->alt_len[op->a + v];
                if (n - p >= len && oic_tc_eq(s + p, t->pool + t->alt_off[op->a + v], len)) {
                    vals[op->field] = v;
                    p += len;
                    break;
                }
            }
            if (j == op->b)
                return 0;
            break;
        }
        case OIC_TPL_DICT: {
            int64_t q = n;
            int32_t stop = t->stop[op->field];
            if (stop >= 0) {
                const uint8_t *hit = (const uint8_t *)memchr(s + p, stop, (size_t)(n - p));
                q = hit ? hit - s : n;
            }
            if (q - p > INT32_MAX)
                return 0;
            vals[op->field] = base + p;
            lens[op->field] = (int32_t)(q - p);
            p = q;
            break;
        }
        default:
            return 0;
        }
    }
    return p == n;
}

/* Matches rows [lo, hi): tpl[r] = the first template that matches (the previous row's is tried first), or
 * -1; for the fields of that template, vals[f * rows + r] and, for DICT fields, lens[slot * rows + r] as
 * oic_tpl_try says; the other fields' vals are -1. stats[3 f .. 3 f + 2] gather the minimum,
 * the maximum and the count of the values of field f (the caller starts them at INT64_MAX, INT64_MIN, 0).
 * Returns how many rows matched no template. */
static inline int64_t oic_tpl_match(const oic_tpl *t, const uint8_t *data, const int64_t *offsets, int64_t lo,
                                    int64_t hi, int64_t rows, int32_t *tpl, int64_t *vals, int32_t *lens,
                                    int64_t *stats)
{
    int64_t tmpv[OIC_TPL_MAX_FIELDS];
    int32_t tmpl[OIC_TPL_MAX_FIELDS];
    int64_t misses = 0;
    int32_t last = 0;
    const int nf = t->n_fields < OIC_TPL_MAX_FIELDS ? t->n_fields : OIC_TPL_MAX_FIELDS;
    for (int64_t r = lo; r < hi; r++) {
        const uint8_t *s = data + offsets[r];
        int64_t n = offsets[r + 1] - offsets[r];
        int32_t hit = -1;
        if (t->n_templates > 0 && oic_tpl_try(t, last, s, n, offsets[r], tmpv, tmpl)) {
            hit = last;
        } else {
            for (int32_t k = 0; k < t->n_templates; k++)
                if (k != last && oic_tpl_try(t, k, s, n, offsets[r], tmpv, tmpl)) {
                    hit = k;
                    break;
                }
        }
        tpl[r] = hit;
        /* Fields the row does not use hold -1 (every value of a field is >= 0). */
        for (int f = 0; f < nf; f++)
            vals[(int64_t)f * rows + r] = -1;
        if (hit < 0) {
            misses++;
            continue;
        }
        last = hit;
        for (int32_t i = t->start[hit], end = t->start[hit + 1]; i < end; i++) {
            const oic_tpl_op *op = &t->ops[i];
            if (op->kind == OIC_TPL_LIT)
                continue;
            int32_t f = op->field;
            int64_t v = tmpv[f];
            vals[(int64_t)f * rows + r] = v;
            if (op->kind == OIC_TPL_DICT) {
                lens[(int64_t)op->b * rows + r] = tmpl[f];
            } else {
                int64_t *st = stats + 3 * f;
                st[0] = v < st[0] ? v : st[0];
                st[1] = v > st[1] ? v : st[1];
            }
            stats[3 * f + 2]++;
        }
    }
    return misses;
}

static const uint64_t OIC_TC_POW10[20] = {
    UINT64_C(1), UINT64_C(10), UINT64_C(100), UINT64_C(1000), UINT64_C(10000), UINT64_C(100000),
    UINT64_C(1000000), UINT64_C(10000000), UINT64_C(100000000), UINT64_C(1000000000), UINT64_C(10000000000),
    UINT64_C(100000000000), UINT64_C(1000000000000), UINT64_C(10000000000000), UINT64_C(100000000000000),
    UINT64_C(1000000000000000), UINT64_C(10000000000000000), UINT64_C(100000000000000000),
    UINT64_C(1000000000000000000), UINT64_C(10000000000000000000)};

static inline int oic_tc_dec_digits(uint64_t v)
{
    /* floor(log10(v)) from floor(log2(v)): 1233/4096 ~ log10(2), then one correction. */
    int l2 = 63 - __builtin_clzll(v | 1);
    int d = (l2 * 1233) >> 12;
    return d + 1 + (d + 1 < 20 && v >= OIC_TC_POW10[d + 1]);
}

static const char OIC_TC_HEX_DIGITS[17] = "0123456789abcdef";

static const char OIC_TC_DIGIT_PAIRS[201] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

/* Writes v's d decimal digits at out. */
static inline void oic_tc_dec_write(uint8_t *out, uint64_t v, int d)
{
    uint8_t *p = out + d;
    while (v >= 100) {
        uint64_t q = v / 100;
        int two = (int)(v - q * 100);
        p -= 2;
        p[0] = (uint8_t)OIC_TC_DIGIT_PAIRS[2 * two];
        p[1] = (uint8_t)OIC_TC_DIGIT_PAIRS[2 * two + 1];
        v = q;
    }
    if (v >= 10) {
        p -= 2;
        p[0] = (uint8_t)OIC_TC_DIGIT_PAIRS[2 * v];
        p[1] = (uint8_t)OIC_TC_DIGIT_PAIRS[2 * v + 1];
    } else {
        *--p = (uint8_t)('0' + v);
    }
}

/* Template k with the fields of row r: its length into *len, and, when out is not NULL, its bytes at out
 * (OIC_TC_MISMATCH, with nothing written past out + cap, when they are more than cap). OIC_TC_BAD_VALUE when
 * a field value is outside its op's range. */
static inline oic_tc_status oic_tpl_row(const oic_tpl *t, int32_t k, const oic_tc_ints *fields, int64_t r, uint8_t *out,
                                        int64_t cap, int64_t *len)
{
    int64_t pos = 0;
    for (int32_t i = t->start[k], end = t->start[k + 1]; i < end; i++) {
        const oic_tpl_op *op = &t->ops[i];
        if (op->kind == OIC_TPL_LIT) {
            if (out) {
                if (pos + op->b > cap)
                    return OIC_TC_MISMATCH;
                oic_tc_copy(out + pos, t->pool + op->a, op->b);
            }
            pos += op->b;
            continue;
        }
        int64_t v = oic_tc_ints_get(&fields[op->field], r);
        switch (op->kind) {
        case OIC_TPL_DEC: {
            if (v < 0 || v >= OIC_TPL_DEC_LIMIT)
                return OIC_TC_BAD_VALUE;
            int d = oic_tc_dec_digits((uint64_t)v);
            if (out) {
                if (pos + d > cap)
                    return OIC_TC_MISMATCH;
                oic_tc_dec_write(out + pos, (uint64_t)v, d);
            }
            pos += d;
            break;
        }
        case OIC_TPL_HEX: {
            if (op->a < 1 || op->a > OIC_TPL_HEX_DIGITS || v < 0 || (v >> (4 * op->a)) != 0)
                return OIC_TC_BAD_VALUE;
            if (out) {
                if (pos + op->a > cap)
                    return OIC_TC_MISMATCH;
                for (int j = op->a - 1; j >= 0; j--) {
                    out[pos + j] = (uint8_t)OIC_TC_HEX_DIGITS[v & 15];
                    v >>= 4;
                }
            }
            pos += op->a;
            break;
        }
        case OIC_TPL_CHOICE:
            if (v < 0 || v >= op->b)
                return OIC_TC_BAD_VALUE;
            if (out) {
                if (pos + t->alt_len[op->a + v] > cap)
                    return OIC_TC_MISMATCH;
                oic_tc_copy(out + pos, t->pool + t->alt_off[op->a + v], t->alt_len[op->a + v]);
            }
            pos += t->alt_len[op->a + v];
            break;
        case OIC_TPL_DICT: {
            if (v < 0 || v >= t->dict_n[op->b])
                return OIC_TC_BAD_VALUE;
            const int64_t *o = t->dict_off[op->b];
            if (out) {
                if (pos + (o[v + 1] - o[v]) > cap)
                    return OIC_TC_MISMATCH;
                oic_tc_copy(out + pos, t->dict_data[op->b] + o[v], o[v + 1] - o[v]);
            }
            pos += o[v + 1] - o[v];
            break;
        }
        default:
            return OIC_TC_BAD_VALUE;
        }
    }
    *len = pos;
    return OIC_TC_OK;
}

/* Rows [lo, hi) of a template column: tpl[r] in [0, n_templates], n_templates marking an exception (the
 * next of e). Modes as oic_tc_sink says; *bad_row is the row of a failure. */
static inline oic_tc_status oic_tpl_decode(const oic_tpl *t, const oic_tc_sink *k, int64_t lo, int64_t hi,
                                           const oic_tc_ints *tpl, const oic_tc_ints *fields, const oic_tc_exc *e,
                                           int64_t *bad_row)
{
    int64_t j = oic_tc_exc_start(e, lo);
    /* The DICT fields, for prefetching their entries. */
    int32_t dfield[OIC_TPL_MAX_FIELDS], dslot[OIC_TPL_MAX_FIELDS], nd = 0;
    for (int32_t i = 0; i < t->start[t->n_templates] && nd < OIC_TPL_MAX_FIELDS; i++)
        if (t->ops[i].kind == OIC_TPL_DICT) {
            int32_t d;
            for (d = 0; d < nd && dfield[d] != t->ops[i].field; d++)
                ;
            if (d == nd) {
                dfield[nd] = t->ops[i].field;
                dslot[nd++] = t->ops[i].b;
            }
        }
    for (int64_t r = lo; r < hi; r++) {
        int64_t c = oic_tc_ints_get(tpl, r);
        oic_tc_status st = OIC_TC_OK;
        if (r + 2 * OIC_TC_AHEAD < hi)
            for (int32_t d = 0; d < nd; d++)
                oic_tc_prefetch_entry(t->dict_off[dslot[d]], t->dict_data[dslot[d]], t->dict_n[dslot[d]],
                                      oic_tc_ints_get(&fields[dfield[d]], r + 2 * OIC_TC_AHEAD),
                                      oic_tc_ints_get(&fields[dfield[d]], r + OIC_TC_AHEAD));
        if (c == t->n_templates) {
            if (j >= e->n || e->rows[j] != r) {
                *bad_row = r;
                return OIC_TC_BAD_EXCEPTION;
            }
            if (!oic_tc_sink_span(k, r, lo, e->data + e->off[j], e->off[j + 1] - e->off[j]))
                st = OIC_TC_MISMATCH;
            j++;
        } else if (c < 0 || c > t->n_templates) {
            st = OIC_TC_BAD_TEMPLATE;
        } else if (k->mode == 0) {
            st = oic_tpl_row(t, (int32_t)c, fields, r, NULL, 0, &k->lens_or_offsets[r - lo]);
        } else if (k->mode == 1) {
            int64_t len, cap = k->lens_or_offsets[r - lo + 1] - k->lens_or_offsets[r - lo];
            st = oic_tpl_row(t, (int32_t)c, fields, r, k->out + k->lens_or_offsets[r - lo], cap, &len);
            if (st == OIC_TC_OK && len != cap)
                st = OIC_TC_MISMATCH;
        } else {
            int64_t len, want = k->cmp_off[r + 1] - k->cmp_off[r];
            st = oic_tpl_row(t, (int32_t)c, fields, r, k->scratch, k->scratch_len, &len);
            if (st == OIC_TC_OK && (len != want || !oic_tc_eq(k->scratch, k->cmp + k->cmp_off[r], len)))
                st = OIC_TC_MISMATCH;
        }
        if (st != OIC_TC_OK) {
            *bad_row = r;
            return st;
        }
    }
    if (j < e->n && e->rows[j] < hi) {
        *bad_row = e->rows[j];
        return OIC_TC_BAD_EXCEPTION;
    }
    return OIC_TC_OK;
}

#endif
