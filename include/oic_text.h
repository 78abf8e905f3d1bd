/* oic_text.h: grammar checks and conversions for single CSV fields.
 *
 * Every function takes a byte span (pointer + length), writes its result
 * through an out-parameter and returns an oic_status. None reads outside the
 * span. */
#ifndef OIC_TEXT_H
#define OIC_TEXT_H

#include <locale.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "oic_status.h"

/* ---- 16 lowercase hex digits -> uint64 ---------------------------------- */

/* Hex value of each byte, or 0xF0 for bytes outside [0-9a-f]. */
static const uint8_t OIC_HEX_VALUE[256] = {
#define X 0xF0
    X,X,X,X,X,X,X,X,X,X,X,X,X,X,X,X, X,X,X,X,X,X,X,X,X,X,X,X,X,X,X,X,
    X,X,X,X,X,X,X,X,X,X,X,X,X,X,X,X, 0,1,2,3,4,5,6,7,8,9,X,X,X,X,X,X,
    X,X,X,X,X,X,X,X,X,X,X,X,X,X,X,X, X,X,X,X,X,X,X,X,X,X,X,X,X,X,X,X,
    X,10,11,12,13,14,15,X,X,X,X,X,X,X,X,X, X,X,X,X,X,X,X,X,X,X,X,X,X,X,X,X,
    X,X,X,X,X,X,X,X,X,X,X,X,X,X,X,X, X,X,X,X,X,X,X,X,X,X,X,X,X,X,X,X,
    X,X,X,X,X,X,X,X,X,X,X,X,X,X,X,X, X,X,X,X,X,X,X,X,X,X,X,X,X,X,X,X,
    X,X,X,X,X,X,X,X,X,X,X,X,X,X,X,X, X,X,X,X,X,X,X,X,X,X,X,X,X,X,X,X,
    X,X,X,X,X,X,X,X,X,X,X,X,X,X,X,X, X,X,X,X,X,X,X,X,X,X,X,X,X,X,X,X,
#undef X
};

/* Parses exactly 16 bytes of [0-9a-f]; branch-free over the digits. */
static inline oic_status oic_parse_image_id(const uint8_t *s, size_t n, uint64_t *out)
{
    if (n != 16)
        return OIC_ERR_IMAGE_ID;
    uint64_t v = 0;
    uint8_t bad = 0;
    for (int i = 0; i < 16; i++) {
        uint8_t d = OIC_HEX_VALUE[s[i]];
        bad |= d;
        v = (v << 4) | (d & 0x0F);
    }
    if (bad & 0xF0)
        return OIC_ERR_IMAGE_ID;
    *out = v;
    return OIC_OK;
}

/* The same from two little-endian words, branch-free (SWAR): about 3 ns.
 * A byte is valid when it is in 0x30-0x39 or 0x61-0x66. */
static inline int oic_hex_word_valid(uint64_t w)
{
    const uint64_t ones = UINT64_C(0x0101010101010101), highs = UINT64_C(0x8080808080808080);
    /* For bytes below 0x80, (x + (0x80 - n)) has its high bit set exactly when x >= n. */
#define OIC_GE(x, n) (((x) + ones * (0x80 - (n))) & highs)
    uint64_t digit = OIC_GE(w, 0x30) & ~OIC_GE(w, 0x3A);
    uint64_t letter = OIC_GE(w, 0x61) & ~OIC_GE(w, 0x67);
#undef OIC_GE
    return !(w & highs) && (digit | letter) == highs;
}

static inline uint32_t oic_hex_word_value(uint64_t w)
{
    /* Digit values: the low nibble, plus 9 for letters (bit 6 set). */
    uint64_t v = (w & UINT64_C(0x0F0F0F0F0F0F0F0F)) + 9 * ((w >> 6) & UINT64_C(0x0101010101010101));
    /* The first character (lowest byte) is the most significant nibble. */
    v = ((v & UINT64_C(0x000F000F000F000F)) << 4) | ((v & UINT64_C(0x0F000F000F000F00)) >> 8);
    v = ((v & UINT64_C(0x000000FF000000FF)) << 8) | ((v & UINT64_C(0x00FF000000FF0000)) >> 16);
    v = ((v & UINT64_C(0x000000000000FFFF)) << 16) | ((v & UINT64_C(0x0000FFFF00000000)) >> 32);
    return (uint32_t)v;
}

/* 16 hex digits at s (16 readable bytes) -> uint64, validated: about a dozen
 * SSE2 instructions; the SWAR words above where SSE2 is missing. */
static inline oic_status oic_parse_image_id_swar(const uint8_t *s, uint64_t *out)
{
#if defined(__SSE2__)
    __m128i x = _mm_loadu_si128((const __m128i *)s);
    /* Bytes >= 0x80 are negative as signed, so they fail both ranges. */
    __m128i digit = _mm_and_si128(_mm_cmpgt_epi8(x, _mm_set1_epi8('0' - 1)), _mm_cmplt_epi8(x, _mm_set1_epi8('9' + 1)));
    __m128i letter = _mm_and_si128(_mm_cmpgt_epi8(x, _mm_set1_epi8('a' - 1)), _mm_cmplt_epi8(x, _mm_set1_epi8('f' + 1)));
    if (_mm_movemask_epi8(_mm_or_si128(digit, letter)) != 0xFFFF)
        return OIC_ERR_IMAGE_ID;
    /* Nibble values: the low four bits, plus 9 for letters. */
    __m128i v = _mm_add_epi8(_mm_and_si128(x, _mm_set1_epi8(0x0F)), _mm_and_si128(letter, _mm_set1_epi8(9)));
    /* Each 16-bit lane holds two digits, the first in its low byte: first * 16 + second. */
    __m128i pairs = _mm_or_si128(_mm_slli_epi16(_mm_and_si128(v, _mm_set1_epi16(0x00FF)), 4), _mm_srli_epi16(v, 8));
    __m128i bytes = _mm_packus_epi16(pairs, pairs);
    uint64_t be = (uint64_t)_mm_cvtsi128_si64(bytes); /* the ID's bytes, most significant first */
    *out = __builtin_bswap64(be);
    return OIC_OK;
#else
    uint64_t w0, w1;
    memcpy(&w0, s, 8);
    memcpy(&w1, s + 8, 8);
    if (!oic_hex_word_valid(w0) || !oic_hex_word_valid(w1))
        return OIC_ERR_IMAGE_ID;
    *out = ((uint64_t)oic_hex_word_value(w0) << 32) | oic_hex_word_value(w1);
    return OIC_OK;
#endif
}

/* ---- decimal numbers -> double, equal to Python's float() --------------- */

static const double OIC_POW10[23] = {
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

/* Checks -?[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)? and converts with correct
 * rounding: Clinger's fast path (mantissa <= 2^53, |exponent| <= 22: one
 * exactly rounded multiply or divide), else strtod_l in the C locale. */
static inline oic_status oic_parse_double(const uint8_t *s, size_t n, locale_t c_locale, double *out)
{
    size_t i = 0;
    int neg = 0;
    if (i < n && s[i] == '-') {
        neg = 1;
        i++;
    }
    if (i >= n || (unsigned)(s[i] - '0') > 9)
        return OIC_ERR_NUMBER;
    uint64_t mant = 0;
    int digits = 0;        /* significant digits taken into mant */
    int exact = 1;         /* no nonzero digit was dropped */
    int64_t exp10 = 0;
    for (; i < n && (unsigned)(s[i] - '0') <= 9; i++) {
        unsigned d = s[i] - '0';
        if (digits < 19) {
            mant = mant * 10 + d;
            if (mant)
                digits++;
        } else {
            exp10++;
            if (d)
                exact = 0;
        }
    }
    if (i < n && s[i] == '.') {
        for (i++; i < n && (unsigned)(s[i] - '0') <= 9; i++) {
            unsigned d = s[i] - '0';
            if (digits < 19) {
                mant = mant * 10 + d;
                exp10--;
                if (mant)
                    digits++;
            } else if (d) {
                exact = 0;
            }
        }
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        int eneg = 0;
        if (i < n && (s[i] == '+' || s[i] == '-')) {
            eneg = s[i] == '-';
            i++;
        }
        if (i >= n || (unsigned)(s[i] - '0') > 9)
            return OIC_ERR_NUMBER;
        int64_t e = 0;
        for (; i < n && (unsigned)(s[i] - '0') <= 9; i++)
            if (e < 100000000)
                e = e * 10 + (s[i] - '0');
        exp10 += eneg ? -e : e;
    }
    if (i != n)
        return OIC_ERR_NUMBER;

    if (exact && mant <= (UINT64_C(1) << 53) && exp10 >= -22 && exp10 <= 22) {
        double v = (double)mant;
        v = exp10 < 0 ? v / OIC_POW10[-exp10] : v * OIC_POW10[exp10];
        *out = neg ? -v : v;
        return OIC_OK;
    }
    /* Slow path: the grammar is checked, so strtod_l reads exactly these bytes. */
    char small[128];
    char *copy = n < sizeof small ? small : (char *)malloc(n + 1);
    if (!copy)
        return OIC_ERR_NO_MEMORY;
    memcpy(copy, s, n);
    copy[n] = '\0';
    *out = strtod_l(copy, NULL, c_locale);
    if (copy != small)
        free(copy);
    return OIC_OK;
}

/* The common case, quickly: -?[0-9]+(\.[0-9]*)? with at most 15 digits,
 * exact by Clinger's fast path. Returns 0 (and writes nothing) for anything
 * else, which oic_parse_double then checks and converts. */
static inline int oic_parse_short_decimal(const uint8_t *s, int64_t n, double *out)
{
    int64_t i = 0, dot = -1;
    int neg = s[0] == '-';
    i = neg;
    if (i >= n || (unsigned)(s[i] - '0') > 9 || n - i > 16)
        return 0;
    uint64_t mant = 0;
    for (; i < n; i++) {
        unsigned d = s[i] - '0';
        if (d <= 9)
            mant = mant * 10 + d;
        else if (s[i] == '.' && dot < 0)
            dot = i;
        else
            return 0;
    }
    if (dot < 0 ? n - neg > 15 : n - neg - 1 > 15)
        return 0;
    double v = (double)mant;
    if (dot >= 0)
        v /= OIC_POW10[n - dot - 1];
    *out = neg ? -v : v;
    return 1;
}

/* Checks -?[0-9]+ and that the value lies in [lo, hi]. */
static inline oic_status oic_parse_int(const uint8_t *s, size_t n, int64_t lo, int64_t hi, int64_t *out)
{
    size_t i = 0;
    int neg = 0;
    if (i < n && s[i] == '-') {
        neg = 1;
        i++;
    }
    if (i >= n)
        return OIC_ERR_INTEGER;
    uint64_t v = 0;
    int overflow = 0;
    for (; i < n; i++) {
        unsigned d = s[i] - '0';
        if (d > 9)
            return OIC_ERR_INTEGER;
        if (v > (UINT64_MAX - d) / 10)
            overflow = 1;
        else
            v = v * 10 + d;
    }
    if (overflow)
        return OIC_ERR_INT_RANGE;
    if (neg) {
        /* -(lo + 1) + 1 is |lo| without overflowing int64 for lo = INT64_MIN. */
        if (v > (uint64_t)(-(lo + 1)) + 1)
            return OIC_ERR_INT_RANGE;
        *out = v == 0 ? 0 : (int64_t)(0 - v);
    } else {
        if (v > (uint64_t)hi)
            return OIC_ERR_INT_RANGE;
        *out = (int64_t)v;
    }
    return OIC_OK;
}

/* ---- UTF-8 --------------------------------------------------------------- */

/* Returns the offset of the first byte that is not valid UTF-8, or n if all
 * is valid (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF). */
static inline size_t oic_utf8_invalid_at(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        /* Skip ASCII eight bytes at a time. */
        while (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (w & UINT64_C(0x8080808080808080))
                break;
            i += 8;
        }
        if (i >= n)
            break;
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        uint8_t lo = 0x80, hi = 0xBF; /* range of the second byte */
        if (c >= 0xC2 && c <= 0xDF)
            len = 2;
        else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            if (c == 0xE0)
                lo = 0xA0;
            else if (c == 0xED)
                hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            if (c == 0xF0)
                lo = 0x90;
            else if (c == 0xF4)
                hi = 0x8F;
        } else
            return i;
        if (i + 1 >= n || s[i + 1] < lo || s[i + 1] > hi)
            return i;
        for (size_t k = 2; k < len; k++)
            if (i + k >= n || (s[i + k] & 0xC0) != 0x80)
                return i;
        i += len;
    }
    return n;
}

#endif
