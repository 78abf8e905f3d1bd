/* oic_render.h: encoded columns back to CSV records, and the byte-exact check against the source.
 *
 * `oicore convert` keeps a CSV file as typed columns and must give back the
 * very same bytes. oic_compare renders each record from the columns and
 * compares it with the source; a record that differs (other quoting, another
 * terminator, a number written another way) becomes an exception: its source
 * byte span, kept raw. `oicore export` renders with oic_render_rows and
 * splices the exceptions back in.
 *
 * Fields render as Python's csv module writes them (QUOTE_MINIMAL, except
 * that CR and LF always force quotes, whatever the terminator), floats as
 * Python's repr(). No allocation, no Python: field and record functions
 * return the size they need and write only when it fits; the loops stop at
 * a record that does not fit, for the caller to grow its buffer and resume.
 */
#ifndef OIC_RENDER_H
#define OIC_RENDER_H

#include <locale.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "oic_csv.h"         /* oic_scan_unquoted, oic_count_byte: the bytes that make a field need quotes */
#include "oic_format_text.h" /* oic_fmt_pairs, oic_fmt_hexdigits */

/* Column kinds. */
enum {
    OIC_RENDER_HEX64 = 0,   /* uint64 values: 16 lowercase hex digits */
    OIC_RENDER_STRINGS = 1, /* offsets (rows + 1) into data, one string per row */
    OIC_RENDER_DICT = 2,    /* int32 codes into a table of strings (see oic_render_column.rendered) */
    OIC_RENDER_DECIMAL = 3, /* int64 k: k / 10^scale, in a style */
    OIC_RENDER_INT = 4,     /* int64 values */
    OIC_RENDER_FLOAT = 5    /* double values, as Python's repr() */
};

/* Quoting, as Python's csv.QUOTE_MINIMAL and QUOTE_ALL; NEVER writes text raw (numbers, IDs). */
enum { OIC_QUOTE_MINIMAL = 0, OIC_QUOTE_ALL = 1, OIC_QUOTE_NEVER = 2 };

/* Decimal styles: 0.50 (all `scale` digits), 0.5 (trailing zeros and a bare '.' dropped), 1.0 (zeros
 * dropped but one fraction digit kept). */
enum { OIC_DECIMAL_FIXED = 0, OIC_DECIMAL_TRIM = 1, OIC_DECIMAL_TRIM1 = 2 };

/* What the loops return. A field or record function returns its size, or OIC_RENDER_BAD_VALUE. */
enum {
    OIC_RENDER_OK = 0,
    OIC_RENDER_FULL = 1,         /* the output (render) or scratch (compare) buffer is too small for the next
                                  * record: state.need says how large it must be */
    OIC_RENDER_EXC_FULL = 2,     /* compare: the exceptions buffer is full */
    OIC_RENDER_SOURCE_ENDED = 3, /* compare: the source ended before the record of state.row */
    OIC_RENDER_BAD_VALUE = -1    /* a string offset or dictionary code outside its table (state.row, bad_column) */
};

#if defined(__GNUC__)
#define OIC_RENDER_HOT __attribute__((always_inline))
#define OIC_RENDER_COLD __attribute__((noinline))
#else
#define OIC_RENDER_HOT
#define OIC_RENDER_COLD
#endif

/* Readable bytes a dictionary table keeps after its end, so that short entries copy as one fixed-size move
 * (a branch on the length would be mispredicted on every other row). */
#define OIC_RENDER_PAD 32
/* Room for any number a kind renders, quotes aside: the longest is "-1.2345678901234567e-308" (24 bytes). */
#define OIC_RENDER_NUMBER_MAX 32

typedef struct {
    int32_t kind;          /* OIC_RENDER_* */
    int32_t quote;         /* OIC_QUOTE_* (for dictionaries: the mode the table was rendered with) */
    const void *values;    /* one per row: uint64, int32 codes, int64 or double; NULL for strings */
    const uint8_t *nulls;  /* NULL, or one byte per row, nonzero = null (an empty field, never quoted) */
    const int64_t *offsets; /* strings: rows + 1 offsets into data; dictionaries: count + 1 */
    const uint8_t *data;
    int64_t data_len;
    int64_t count;         /* dictionaries: table entries */
    int32_t rendered;      /* dictionaries: the table was made by oic_render_table with this quote mode and
                            * has OIC_RENDER_PAD bytes after it (each row is one copy); else it is the raw
                            * text, quoted row by row, its offsets checked row by row */
    int32_t scale;         /* decimals: digits after the point, 0..18 */
    int32_t style;         /* decimals: OIC_DECIMAL_* */
    locale_t c_locale;     /* floats: the "C" locale, for strtod_l */
} oic_render_column;

/* ---- text ---------------------------------------------------------------- */

/* Copies n <= 16 bytes with at most four moves, where memcpy would be a call. */
static inline OIC_RENDER_HOT void oic_render_copy16(uint8_t *out, const uint8_t *s, int64_t n)
{
    if (n >= 8) {
        uint64_t a, b;
        memcpy(&a, s, 8);
        memcpy(&b, s + n - 8, 8);
        memcpy(out, &a, 8);
        memcpy(out + n - 8, &b, 8);
    } else if (n >= 4) {
        uint32_t a, b;
        memcpy(&a, s, 4);
        memcpy(&b, s + n - 4, 4);
        memcpy(out, &a, 4);
        memcpy(out + n - 4, &b, 4);
    } else {
        for (int64_t i = 0; i < n; i++)
            out[i] = s[i];
    }
}

/* s[0:n] in double quotes, each '"' doubled: returns the size, writing only when it fits in cap. */
static OIC_RENDER_COLD int64_t oic_render_quoted(const uint8_t *s, int64_t n, uint8_t *out, int64_t cap)
{
    int64_t quotes = n > 0 && memchr(s, '"', (size_t)n) ? oic_count_byte(s, n, '"') : 0;
    int64_t need = n + quotes + 2;
    if (need > cap)
        return need;
    uint8_t *o = out;
    *o++ = '"';
    if (!quotes) {
        if (n > 0)
            memcpy(o, s, (size_t)n);
        o += n;
    } else {
        for (int64_t i = 0; i < n; i++) {
            *o++ = s[i];
            if (s[i] == '"')
                *o++ = '"'; /* doubled */
        }
    }
    *o = '"';
    return need;
}

/* s[0:n] as a field under `quote`: returns its size, writing it to out only when it fits in cap. */
static inline OIC_RENDER_HOT int64_t oic_render_text(const uint8_t *s, int64_t n, int32_t quote, uint8_t *out,
                                                     int64_t cap)
{
    if (quote == OIC_QUOTE_ALL || (quote == OIC_QUOTE_MINIMAL && oic_scan_unquoted(s, 0, n) < n))
        return oic_render_quoted(s, n, out, cap);
    if (n <= 16 && n <= cap)
        oic_render_copy16(out, s, n);
    else if (n <= cap)
        memcpy(out, s, (size_t)n);
    return n;
}

/* Renders a dictionary's table once, so that each row is one copy: entries offsets[0:count+1] into data
 * become out_offsets[0:count+1] into out. Returns the bytes needed (add OIC_RENDER_PAD for the copies'
 * slack); writes only when that fits in cap. The table must be valid (offsets rising, within data). */
static inline int64_t oic_render_table(const int64_t *offsets, const uint8_t *data, int64_t count, int32_t quote,
                                       int64_t *out_offsets, uint8_t *out, int64_t cap)
{
    int64_t pos = 0;
    for (int64_t i = 0; i < count; i++) {
        int64_t room = cap > pos ? cap - pos : 0;
        if (out_offsets)
            out_offsets[i] = pos;
        pos += oic_render_text(data + offsets[i], offsets[i + 1] - offsets[i], quote, out + (cap > pos ? pos : 0),
                               room);
    }
    if (out_offsets)
        out_offsets[count] = pos;
    return pos;
}

/* ---- numbers ------------------------------------------------------------- */

/* The decimal digits of v, written backwards ending just before `end`; returns where they start. */
static inline uint8_t *oic_render_digits(uint64_t v, uint8_t *end)
{
    uint8_t *p = end;
    while (v >= 100) {
        unsigned r = (unsigned)(v % 100);
        v /= 100;
        p -= 2;
        memcpy(p, oic_fmt_pairs + 2 * r, 2);
    }
    if (v >= 10) {
        p -= 2;
        memcpy(p, oic_fmt_pairs + 2 * v, 2);
    } else {
        *--p = (uint8_t)('0' + v);
    }
    return p;
}

/* 16 lowercase hex digits of v at out (16 bytes). */
static inline void oic_render_hex16(uint64_t v, uint8_t *out)
{
#if defined(__SSE2__)
    /* Nibbles to bytes, most significant first, then '0'-'9' or 'a'-'f'. */
    const __m128i low4 = _mm_set1_epi8(0x0F);
    __m128i x = _mm_set_epi64x(0, (long long)__builtin_bswap64(v));
    __m128i nib = _mm_unpacklo_epi8(_mm_and_si128(_mm_srli_epi16(x, 4), low4), _mm_and_si128(x, low4));
    __m128i letter = _mm_and_si128(_mm_cmpgt_epi8(nib, _mm_set1_epi8(9)), _mm_set1_epi8('a' - '0' - 10));
    _mm_storeu_si128((__m128i *)out, _mm_add_epi8(nib, _mm_add_epi8(letter, _mm_set1_epi8('0'))));
#else
    for (int i = 15; i >= 0; i--, v >>= 4)
        out[i] = (uint8_t)oic_fmt_hexdigits[v & 15];
#endif
}

/* Decimal digits of v (1..20), without a branch on v. */
static inline int oic_render_ndigits(uint64_t v)
{
    static const uint64_t pow10[20] = {
        UINT64_C(1), UINT64_C(10), UINT64_C(100), UINT64_C(1000), UINT64_C(10000), UINT64_C(100000),
        UINT64_C(1000000), UINT64_C(10000000), UINT64_C(100000000), UINT64_C(1000000000), UINT64_C(10000000000),
        UINT64_C(100000000000), UINT64_C(1000000000000), UINT64_C(10000000000000), UINT64_C(100000000000000),
        UINT64_C(1000000000000000), UINT64_C(10000000000000000), UINT64_C(100000000000000000),
        UINT64_C(1000000000000000000), UINT64_C(10000000000000000000)};
    v |= 1;
    int t = ((64 - __builtin_clzll(v)) * 1233) >> 12; /* about log10(2^bits) */
    return t - (v < pow10[t]) + 1;
}

/* k / 10^scale in `style` (scale 0..18) at out (OIC_RENDER_NUMBER_MAX bytes); returns the length.
 * Written in place from the right (fraction digits, point, whole digits), its length known first: building
 * it elsewhere and moving it would load bytes still in the store buffer, which stalls. */
static inline OIC_RENDER_HOT int oic_render_decimal(int64_t k, int32_t scale, int32_t style, uint8_t *out)
{
    int neg = k < 0;
    uint64_t a = neg ? (uint64_t)0 - (uint64_t)k : (uint64_t)k;
    int nd = oic_render_ndigits(a);
    int n = neg + (nd > scale ? nd : scale + 1) + (scale > 0);
    uint8_t *p = out + n;
    int i = 0;
    for (; i + 2 <= scale; i += 2) {
        p -= 2;
        memcpy(p, oic_fmt_pairs + 2 * (a % 100), 2);
        a /= 100;
    }
    if (i < scale) {
        *--p = (uint8_t)('0' + a % 10);
        a /= 10;
    }
    if (scale)
        *--p = '.';
    oic_render_digits(a, p); /* "0" when all digits were fraction: then n counted one */
    if (neg)
        out[0] = '-';
    if (scale && style != OIC_DECIMAL_FIXED) {
        while (out[n - 1] == '0')
            n--; /* stops at the point */
        if (out[n - 1] == '.')
            n += style == OIC_DECIMAL_TRIM1 ? 1 : -1; /* TRIM1 keeps the '0' after it */
    } else if (!scale && style == OIC_DECIMAL_TRIM1) {
        out[n++] = '.';
        out[n++] = '0';
    }
    return n;
}

/* k in decimal at out (OIC_RENDER_NUMBER_MAX bytes), in place as oic_render_decimal; returns the length. */
static inline OIC_RENDER_HOT int oic_render_int(int64_t k, uint8_t *out)
{
    int neg = k < 0;
    uint64_t a = neg ? (uint64_t)0 - (uint64_t)k : (uint64_t)k;
    int n = neg + oic_render_ndigits(a);
    oic_render_digits(a, out + n);
    if (neg)
        out[0] = '-';
    return n;
}

/* Digits of a double: d[0:nd] with value 0.d * 10^(x + 1), i.e. d[0].d[1:] * 10^x. */
typedef struct {
    char d[24];
    int nd;
    int x;
} oic_render_sci;

/* Does the decimal in `c` read back (strtod, correctly rounded) as a? Also gives what it reads as. */
static inline int oic_render_reads_as(const oic_render_sci *c, double a, locale_t loc, double *got)
{
    char s[40];
    int n = 0;
    s[n++] = c->d[0];
    s[n++] = '.';
    memcpy(s + n, c->d + 1, (size_t)(c->nd - 1));
    n += c->nd - 1;
    s[n++] = 'e';
    if (c->x < 0)
        s[n++] = '-';
    uint8_t *e = oic_render_digits((uint64_t)(c->x < 0 ? -c->x : c->x), (uint8_t *)s + sizeof s - 1);
    memmove(s + n, e, (size_t)((uint8_t *)s + sizeof s - 1 - e));
    n += (int)((uint8_t *)s + sizeof s - 1 - e);
    s[n] = 0;
    *got = strtod_l(s, NULL, loc);
    return *got == a;
}

/* Adds one unit in the last place of c's digits (9.99 -> 10.0, as 1.00 with x + 1). */
static inline void oic_render_digits_inc(oic_render_sci *c)
{
    int i = c->nd - 1;
    while (i >= 0 && c->d[i] == '9')
        c->d[i--] = '0';
    if (i >= 0) {
        c->d[i]++;
    } else {
        c->d[0] = '1';
        c->x++;
    }
}

/* Parses printf's "%.*e" of a positive finite number; skips whatever radix character the locale uses. */
static inline void oic_render_parse_e(const char *s, oic_render_sci *c)
{
    int nd = 0;
    for (; *s && *s != 'e'; s++)
        if (*s >= '0' && *s <= '9' && nd < (int)sizeof c->d)
            c->d[nd++] = *s;
    c->nd = nd;
    c->x = *s == 'e' ? atoi(s + 1) : 0;
}

/* The correctly rounded p significant digits of a (p < 17) from its 17 in `all`. Rounding the
 * rounded 17 digits again is wrong only when the dropped ones read exactly 5000...: then printf
 * rounds a itself. */
static inline void oic_render_round(double a, const oic_render_sci *all, int p, oic_render_sci *c)
{
    memcpy(c->d, all->d, (size_t)p);
    c->nd = p;
    c->x = all->x;
    int tie = all->d[p] == '5';
    for (int i = p + 1; i < 17 && tie; i++)
        tie = all->d[i] == '0';
    if (tie) {
        char s[40];
        snprintf(s, sizeof s, "%.*e", p - 1, a);
        oic_render_parse_e(s, c);
        c->nd = p;
    } else if (all->d[p] >= '5') {
        oic_render_digits_inc(c);
    }
}

/* The fast path of oic_render_double for a (positive, finite) that is the double nearest some k / 10^e with
 * k < 2^50 and e <= 22, as most numbers written by people are. Then k and 10^e are exact doubles and their
 * quotient is correctly rounded, so a == k / 10^e says that "k e-e" reads back as a. The smallest such e
 * gives the shortest digits, and its k is the only one: the spacing 10^-e exceeds 4 ulps of a, wider than
 * the interval that rounds to a, so no other k reads back and the k found is also the closest. Returns 0
 * (for the exact search) when there is no such k. */
static inline int oic_render_short_decimal(double a, oic_render_sci *c)
{
    static const double pow10[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                     1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    for (int e = 0; e <= 22; e++) {
        double scaled = a * pow10[e];
        if (scaled >= 0x1p50)
            return 0;
        double k = nearbyint(scaled);
        if (k / pow10[e] != a)
            continue;
        uint8_t buf[24];
        uint8_t *p = oic_render_digits((uint64_t)k, buf + sizeof buf);
        int nd = (int)(buf + sizeof buf - p);
        c->x = nd - e - 1;
        while (nd > 1 && p[nd - 1] == '0')
            nd--;
        memcpy(c->d, p, (size_t)nd);
        c->nd = nd;
        return k != 0;
    }
    return 0;
}

/* The shortest digits of a (positive, finite) that read back as a, the closest to a among those: printf's
 * correctly rounded digits, shortened while strtod still gives a back. Such digits at p places imply them
 * at p + 1 (the closest p + 1 digits are no farther), so a binary search over p finds the shortest, except
 * at a power of two, where the gap below is half the gap above: there the closest p digits may fall below
 * and fail while the next p digits up read back, so p is searched one by one with that neighbour tried. */
static OIC_RENDER_COLD void oic_render_shortest(double a, locale_t loc, oic_render_sci *best)
{
    oic_render_sci all, c;
    char s[48];
    snprintf(s, sizeof s, "%.16e", a);
    oic_render_parse_e(s, &all);
    *best = all;
    while (best->nd > 1 && best->d[best->nd - 1] == '0')
        best->nd--; /* 17 digits always read back; fewer when they end in zeros */
    double got;
    uint64_t bits;
    memcpy(&bits, &a, sizeof bits);
    int power_of_two = (bits & ((UINT64_C(1) << 52) - 1)) == 0 && (bits >> 52) > 1;
    if (!power_of_two) {
        int lo = 1, hi = best->nd; /* hi reads back */
        while (lo < hi) {
            int mid = lo + (hi - lo) / 2;
            oic_render_round(a, &all, mid, &c);
            if (oic_render_reads_as(&c, a, loc, &got)) {
                *best = c;
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
    } else {
        for (int p = 1; p < best->nd; p++) {
            oic_render_round(a, &all, p, &c);
            if (oic_render_reads_as(&c, a, loc, &got)) {
                *best = c;
                break;
            }
            if (got < a) {
                oic_render_digits_inc(&c);
                if (oic_render_reads_as(&c, a, loc, &got)) {
                    *best = c;
                    break;
                }
            }
        }
    }
    while (best->nd > 1 && best->d[best->nd - 1] == '0')
        best->nd--; /* a carry (9.96 -> 10.0) leaves zeros */
}

/* Python's repr(v) at out (OIC_RENDER_NUMBER_MAX bytes); returns the length: the shortest digits, laid
 * out as Python does, in exponent form when the exponent x is < -4 or >= 16. */
static OIC_RENDER_COLD int oic_render_double(double v, locale_t loc, uint8_t *out)
{
    int n = 0;
    if (isnan(v)) {
        memcpy(out, "nan", 3);
        return 3;
    }
    if (signbit(v))
        out[n++] = '-';
    double a = fabs(v);
    if (isinf(a)) {
        memcpy(out + n, "inf", 3);
        return n + 3;
    }
    if (a == 0) {
        memcpy(out + n, "0.0", 3);
        return n + 3;
    }
    oic_render_sci best;
    if (!oic_render_short_decimal(a, &best))
        oic_render_shortest(a, loc, &best);
    const char *d = best.d;
    int nd = best.nd, x = best.x, decpt = x + 1;
    if (x < -4 || x >= 16) {
        out[n++] = (uint8_t)d[0];
        if (nd > 1) {
            out[n++] = '.';
            memcpy(out + n, d + 1, (size_t)(nd - 1));
            n += nd - 1;
        }
        out[n++] = 'e';
        out[n++] = x < 0 ? '-' : '+';
        unsigned ax = (unsigned)(x < 0 ? -x : x);
        if (ax >= 100)
            out[n++] = (uint8_t)('0' + ax / 100);
        out[n++] = (uint8_t)('0' + ax / 10 % 10);
        out[n++] = (uint8_t)('0' + ax % 10);
    } else if (decpt <= 0) {
        out[n++] = '0';
        out[n++] = '.';
        for (int i = 0; i < -decpt; i++)
            out[n++] = '0';
        memcpy(out + n, d, (size_t)nd);
        n += nd;
    } else if (decpt >= nd) {
        memcpy(out + n, d, (size_t)nd);
        n += nd;
        for (int i = nd; i < decpt; i++)
            out[n++] = '0';
        out[n++] = '.';
        out[n++] = '0';
    } else {
        memcpy(out + n, d, (size_t)decpt);
        n += decpt;
        out[n++] = '.';
        memcpy(out + n, d + decpt, (size_t)(nd - decpt));
        n += nd - decpt;
    }
    return n;
}

/* ---- fields and records -------------------------------------------------- */

/* Row `row` of column c as a field: returns its size (writing it only when it fits in cap), or
 * OIC_RENDER_BAD_VALUE for a string offset or dictionary code outside its table (or a raw table's offsets
 * outside its data). */
static inline OIC_RENDER_HOT int64_t oic_render_field(const oic_render_column *c, int64_t row, uint8_t *out,
                                                      int64_t cap)
{
    if (c->nulls && c->nulls[row])
        return 0;
    switch (c->kind) {
    case OIC_RENDER_DICT: {
        int32_t code = ((const int32_t *)c->values)[row];
        if (code < 0 || code >= c->count)
            return OIC_RENDER_BAD_VALUE;
        int64_t b = c->offsets[code], len = c->offsets[code + 1] - b;
        if (!c->rendered) {
            if (b < 0 || len < 0 || b + len > c->data_len)
                return OIC_RENDER_BAD_VALUE;
            return oic_render_text(c->data + b, len, c->quote, out, cap);
        }
        if (len <= OIC_RENDER_PAD && cap >= OIC_RENDER_PAD)
            memcpy(out, c->data + b, OIC_RENDER_PAD); /* the table's padding keeps this in bounds */
        else if (len <= cap && len > 0)
            memcpy(out, c->data + b, (size_t)len);
        return len;
    }
    case OIC_RENDER_STRINGS: {
        int64_t b = c->offsets[row], e = c->offsets[row + 1];
        if (b < 0 || e < b || e > c->data_len)
            return OIC_RENDER_BAD_VALUE;
        return oic_render_text(c->data + b, e - b, c->quote, out, cap);
    }
    case OIC_RENDER_HEX64: {
        int q = c->quote == OIC_QUOTE_ALL;
        if (cap < 16 + 2 * q)
            return 16 + 2 * q;
        oic_render_hex16(((const uint64_t *)c->values)[row], out + q);
        if (q)
            out[0] = out[17] = '"';
        return 16 + 2 * q;
    }
    default:
        break;
    }
    /* Numbers: straight into out when it has room for the longest, else through tmp. They hold no byte
     * that needs quotes: only QUOTE_ALL adds them. */
    int q = c->quote == OIC_QUOTE_ALL;
    uint8_t tmp[OIC_RENDER_NUMBER_MAX];
    uint8_t *dst = cap >= OIC_RENDER_NUMBER_MAX + 2 ? out + q : tmp;
    int n;
    if (c->kind == OIC_RENDER_DECIMAL)
        n = oic_render_decimal(((const int64_t *)c->values)[row], c->scale, c->style, dst);
    else if (c->kind == OIC_RENDER_INT)
        n = oic_render_int(((const int64_t *)c->values)[row], dst);
    else
        n = oic_render_double(((const double *)c->values)[row], c->c_locale, dst);
    if (n + 2 * q <= cap) {
        if (dst == tmp)
            memcpy(out + q, tmp, (size_t)n);
        if (q)
            out[0] = out[n + 1] = '"';
    }
    return n + 2 * q;
}

/* Record `row` (fields, ',' between, then the terminator): returns its size, writing it only when it fits in
 * cap, or OIC_RENDER_BAD_VALUE with the column in *bad_column. */
static inline OIC_RENDER_HOT int64_t oic_render_record(const oic_render_column *cols, int32_t ncols,
                                                       const uint8_t *term, int32_t term_len, int64_t row,
                                                       uint8_t *out, int64_t cap, int32_t *bad_column)
{
    int64_t pos = 0;
    for (int32_t i = 0; i < ncols; i++) {
        if (i) {
            if (pos < cap)
                out[pos] = ',';
            pos++;
        }
        int64_t n = oic_render_field(&cols[i], row, out + (pos < cap ? pos : cap), pos < cap ? cap - pos : 0);
        if (n < 0) {
            *bad_column = i;
            return n;
        }
        pos += n;
    }
    /* A record of one empty string is written "" (as Python's csv does), or it would be an empty line. */
    if (ncols == 1 && pos == 0 && cols[0].quote == OIC_QUOTE_MINIMAL &&
        (cols[0].kind == OIC_RENDER_STRINGS || cols[0].kind == OIC_RENDER_DICT) &&
        !(cols[0].nulls && cols[0].nulls[row])) {
        if (cap >= 2)
            out[0] = out[1] = '"';
        pos = 2;
    }
    if (pos + term_len <= cap) {
        out[pos] = term[0];
        if (term_len == 2)
            out[pos + 1] = term[1];
    }
    return pos + term_len;
}

/* Progress of oic_render_rows and oic_compare, which stop to let the caller grow a buffer and go on. */
typedef struct {
    const oic_render_column *cols;
    int32_t ncols;
    const uint8_t *term; /* "\n", "\r\n" or "\r": term_len is 1 or 2 */
    int32_t term_len;
    int64_t row;         /* in/out: the next row */
    int64_t pos;         /* in/out: render: bytes written so far; compare: the source position */
    int64_t need;        /* out, OIC_RENDER_FULL: the size of the record that did not fit */
    int32_t bad_column;  /* out, OIC_RENDER_BAD_VALUE (with row) */
} oic_render_state;

/* Renders records st->row .. stop-1 into out[st->pos:cap]. */
static inline int oic_render_rows(oic_render_state *st, int64_t stop, uint8_t *out, int64_t cap)
{
    int64_t pos = st->pos;
    for (int64_t row = st->row; row < stop; row++) {
        int64_t n = oic_render_record(st->cols, st->ncols, st->term, st->term_len, row, out + pos, cap - pos,
                                      &st->bad_column);
        if (n < 0 || n > cap - pos) {
            st->row = row;
            st->pos = pos;
            st->need = n;
            return n < 0 ? OIC_RENDER_BAD_VALUE : OIC_RENDER_FULL;
        }
        pos += n;
    }
    st->row = stop;
    st->pos = pos;
    return OIC_RENDER_OK;
}

/* The end of the record that starts at s[pos] (pos < len): just past its terminator (LF, CRLF, or a CR
 * not followed by LF) outside quotes, or len. Every '"' toggles quoting, which is exact for valid CSV: an
 * escaped "" toggles twice. */
static inline int64_t oic_record_end(const uint8_t *s, int64_t len, int64_t pos)
{
    while (pos < len) {
        pos = oic_scan_unquoted(s, pos, len);
        if (pos >= len)
            break;
        uint8_t c = s[pos++];
        if (c == '"') {
            const uint8_t *q = (const uint8_t *)memchr(s + pos, '"', (size_t)(len - pos));
            if (!q)
                return len;
            pos = q - s + 1;
        } else if (c == '\n') {
            return pos;
        } else if (c == '\r') {
            return pos < len && s[pos] == '\n' ? pos + 1 : pos;
        }
    }
    return len;
}

/* Records compared per batch: rendered together into scratch, then compared with one memcmp. Comparing
 * each record right after writing it costs more than rendering it: the loads of bytes still in the store
 * buffer, with other sizes than the stores', stall. */
#define OIC_RENDER_BATCH 256

/* Does the rendered record rec[0:n] match the source's record at src[pos:]? The bytes must be equal and
 * the source record must end there: a rendered "\r" must not be the start of a CRLF, and when a text
 * column is written unquoted (`scan`: its bytes may hold a terminator) the end is checked by scanning. */
static inline OIC_RENDER_HOT int oic_render_matches(const uint8_t *src, int64_t len, int64_t pos, const uint8_t *rec,
                                                    int64_t n, int bare_cr, int scan)
{
    return n <= len - pos && memcmp(src + pos, rec, (size_t)n) == 0 &&
           !(bare_cr && pos + n < len && src[pos + n] == '\n') && (!scan || oic_record_end(src, len, pos) == pos + n);
}

/* Compares records st->row .. n_rows-1, rendered into scratch, with src[st->pos:len]. A record that
 * matches is passed over; one that does not is recorded in exc as (row, begin, end) with the source
 * record's span (oic_record_end), and passed over in the source. Returns OIC_RENDER_OK when all rows are
 * done, with st->pos just past the last record. */
static inline int oic_compare(oic_render_state *st, const uint8_t *src, int64_t len, int64_t n_rows,
                              uint8_t *scratch, int64_t scratch_cap, int64_t *exc, int64_t exc_cap, int64_t *n_exc)
{
    const oic_render_column *cols = st->cols;
    const int32_t ncols = st->ncols, term_len = st->term_len;
    const uint8_t *term = st->term;
    const int bare_cr = term_len == 1 && term[0] == '\r';
    int scan = 0;
    for (int32_t i = 0; i < ncols; i++)
        scan |= cols[i].quote == OIC_QUOTE_NEVER &&
                (cols[i].kind == OIC_RENDER_STRINGS || cols[i].kind == OIC_RENDER_DICT);
    int64_t pos = st->pos, row = st->row, k = *n_exc;
    int64_t ends[OIC_RENDER_BATCH];
    int status = OIC_RENDER_OK;
    while (row < n_rows) {
        int nb = 0;
        int64_t used = 0;
        while (nb < OIC_RENDER_BATCH && row + nb < n_rows) {
            int64_t n = oic_render_record(cols, ncols, term, term_len, row + nb, scratch + used, scratch_cap - used,
                                          &st->bad_column);
            if (n < 0 || n > scratch_cap - used) {
                if (nb == 0) { /* else first compare the records before it */
                    st->need = n;
                    status = n < 0 ? OIC_RENDER_BAD_VALUE : OIC_RENDER_FULL;
                    goto out;
                }
                break;
            }
            used += n;
            ends[nb++] = used;
        }
        /* Usually the whole batch matches. */
        int whole = used <= len - pos && memcmp(src + pos, scratch, (size_t)used) == 0;
        for (int i = 0; whole && (bare_cr || scan) && i < nb; i++) {
            int64_t b = i ? ends[i - 1] : 0;
            whole = oic_render_matches(src, len, pos + b, scratch + b, ends[i] - b, bare_cr, scan);
        }
        if (whole) {
            pos += used;
            row += nb;
            continue;
        }
        for (int i = 0; i < nb; i++, row++) {
            if (pos >= len) {
                status = OIC_RENDER_SOURCE_ENDED;
                goto out;
            }
            int64_t b = i ? ends[i - 1] : 0;
            if (oic_render_matches(src, len, pos, scratch + b, ends[i] - b, bare_cr, scan)) {
                pos += ends[i] - b;
                continue;
            }
            if (k >= exc_cap) {
                status = OIC_RENDER_EXC_FULL;
                goto out;
            }
            int64_t end = oic_record_end(src, len, pos);
            exc[3 * k] = row;
            exc[3 * k + 1] = pos;
            exc[3 * k + 2] = end;
            k++;
            pos = end;
        }
    }
out:
    st->row = row;
    st->pos = pos;
    *n_exc = k;
    return status;
}

#endif /* OIC_RENDER_H */
