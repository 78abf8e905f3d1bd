/* oic_format_text.h: text formatting of integers, hex IDs and base64 for CSV writers.
 *
 * Bytes in, status out: every function writes into a caller-owned buffer of `cap` bytes and returns the
 * number of bytes written, or OIC_FMT_ENOSPC (nothing useful written) when `cap` is too small, or
 * OIC_FMT_EINVAL for an argument outside its contract. No allocation, no Python, no locale.
 */
#ifndef OIC_FORMAT_TEXT_H
#define OIC_FORMAT_TEXT_H

#include <stddef.h>
#include <stdint.h>

enum {
    OIC_FMT_ENOSPC = -1, /* the output buffer is too small */
    OIC_FMT_EINVAL = -2, /* width or decimals outside the documented range */
};

/* Longest output of each function, for callers that size a row in advance. */
#define OIC_FMT_I64_MAX 20      /* "-9223372036854775808" */
#define OIC_FMT_FIXED_MAX 40    /* sign + 19 digits + '.' + up to 18 decimals, rounded up */
#define OIC_FMT_B64_16_LEN 24   /* base64 of 16 bytes, with "==" */

static const char oic_fmt_hexdigits[] = "0123456789abcdef";
static const char oic_fmt_b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* The low `width` (1..16) hex digits of v, lowercase and zero-padded; returns width. */
static inline int oic_fmt_hex(uint64_t v, int width, uint8_t *out, size_t cap) {
    if (width < 1 || width > 16) return OIC_FMT_EINVAL;
    if (cap < (size_t)width) return OIC_FMT_ENOSPC;
    int i = width;
    while (i >= 2) {
        unsigned b = (unsigned)(v & 0xffu);
        out[i - 2] = (uint8_t)oic_fmt_hexdigits[b >> 4];
        out[i - 1] = (uint8_t)oic_fmt_hexdigits[b & 15u];
        v >>= 8;
        i -= 2;
    }
    if (i) out[0] = (uint8_t)oic_fmt_hexdigits[v & 15u];
    return width;
}

static const char oic_fmt_pairs[201] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

/* Number of decimal digits of v (1..20). */
static inline int oic_fmt_ndigits(uint64_t v) {
    int n = 1;
    while (v >= 10000u) { v /= 10000u; n += 4; }
    if (v >= 10u) n++;
    if (v >= 100u) n++;
    if (v >= 1000u) n++;
    return n;
}

/* v in decimal, no padding. */
static inline int oic_fmt_u64(uint64_t v, uint8_t *out, size_t cap) {
    int n = oic_fmt_ndigits(v);
    if (cap < (size_t)n) return OIC_FMT_ENOSPC;
    uint8_t *p = out + n;
    while (v >= 100u) {
        unsigned r = (unsigned)(v % 100u);
        v /= 100u;
        p -= 2;
        p[0] = (uint8_t)oic_fmt_pairs[2 * r];
        p[1] = (uint8_t)oic_fmt_pairs[2 * r + 1];
    }
    if (v >= 10u) {
        p -= 2;
        p[0] = (uint8_t)oic_fmt_pairs[2 * v];
        p[1] = (uint8_t)oic_fmt_pairs[2 * v + 1];
    } else {
        *--p = (uint8_t)('0' + v);
    }
    return n;
}

/* v in decimal with a leading '-' when negative. */
static inline int oic_fmt_i64(int64_t v, uint8_t *out, size_t cap) {
    if (v >= 0) return oic_fmt_u64((uint64_t)v, out, cap);
    if (cap < 1) return OIC_FMT_ENOSPC;
    out[0] = '-';
    int n = oic_fmt_u64((uint64_t)0 - (uint64_t)v, out + 1, cap - 1);
    return n < 0 ? n : n + 1;
}

/* v / 10^decimals as a fixed-point decimal: (1234, 3) -> "1.234", (5, 6) -> "0.000005", (-5, 1) -> "-0.5".
 * decimals is 0..18; 0 prints a plain integer. With trim != 0, trailing zeros of the fraction are dropped and
 * so is a '.' left bare: (887500, 6) -> "0.8875", (1000000, 6) -> "1". */
static inline int oic_fmt_fixed(int64_t v, int decimals, int trim, uint8_t *out, size_t cap) {
    if (decimals < 0 || decimals > 18) return OIC_FMT_EINVAL;
    if (decimals == 0) return oic_fmt_i64(v, out, cap);
    uint64_t p = 1;
    for (int i = 0; i < decimals; i++) p *= 10u;
    int neg = v < 0;
    uint64_t a = neg ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    uint64_t ip = a / p, fp = a % p;
    uint8_t frac[18];
    for (int i = decimals - 1; i >= 0; i--) {
        frac[i] = (uint8_t)('0' + (fp % 10u));
        fp /= 10u;
    }
    int nf = decimals;
    if (trim)
        while (nf > 0 && frac[nf - 1] == '0') nf--;
    size_t pos = 0;
    if (neg && (ip != 0 || nf > 0)) {
        if (cap < 1) return OIC_FMT_ENOSPC;
        out[pos++] = '-';
    }
    int n = oic_fmt_u64(ip, out + pos, cap - pos);
    if (n < 0) return n;
    pos += (size_t)n;
    if (nf > 0) {
        if (cap - pos < (size_t)nf + 1) return OIC_FMT_ENOSPC;
        out[pos++] = '.';
        for (int i = 0; i < nf; i++) out[pos++] = frac[i];
    }
    return (int)pos;
}

/* Standard base64 (RFC 4648, with padding) of the 16 bytes at src: always 24 bytes. */
static inline int oic_fmt_b64_16(const uint8_t *src, uint8_t *out, size_t cap) {
    if (cap < OIC_FMT_B64_16_LEN) return OIC_FMT_ENOSPC;
    size_t o = 0;
    for (int i = 0; i < 15; i += 3) {
        uint32_t t = ((uint32_t)src[i] << 16) | ((uint32_t)src[i + 1] << 8) | src[i + 2];
        out[o++] = (uint8_t)oic_fmt_b64chars[(t >> 18) & 63];
        out[o++] = (uint8_t)oic_fmt_b64chars[(t >> 12) & 63];
        out[o++] = (uint8_t)oic_fmt_b64chars[(t >> 6) & 63];
        out[o++] = (uint8_t)oic_fmt_b64chars[t & 63];
    }
    uint32_t t = (uint32_t)src[15] << 16;
    out[o++] = (uint8_t)oic_fmt_b64chars[(t >> 18) & 63];
    out[o++] = (uint8_t)oic_fmt_b64chars[(t >> 12) & 63];
    out[o++] = '=';
    out[o++] = '=';
    return OIC_FMT_B64_16_LEN;
}

#endif /* OIC_FORMAT_TEXT_H */
