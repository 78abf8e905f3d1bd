/* oic_dict.h: a growing dictionary of byte strings -> dense int32 codes.
 *
 * Codes are given in order of first appearance, so a chunk's codes can be
 * remapped to a release-wide vocabulary with one table lookup per row.
 * Open addressing with linear probing; the table is kept at most three quarters
 * full, so a 20,000-label vocabulary (768 KB of slots) fits in L2.
 * Each slot holds the value's first 16 bytes, its length and its code, so a
 * lookup of a short value (a MID, a source) touches one cache line. */
#ifndef OIC_DICT_H
#define OIC_DICT_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "oic_status.h"

typedef struct {
    uint64_t w0, w1; /* the value's first 16 bytes, zero-padded */
    int32_t len;     /* the value's length (values are shorter than 2 GiB) */
    int32_t code;    /* -1: an empty slot */
} oic_slot;

typedef struct {
    oic_slot *slots;
    uint64_t *hashes;   /* per code, for growing the table */
    int64_t *offsets;   /* per code + 1: where each value starts in bytes */
    uint8_t *bytes;
    int64_t bytes_len, bytes_cap;
    int32_t count, codes_cap;
    uint32_t mask;      /* slots capacity - 1 */
} oic_dict;

/* Equality of two short byte strings without a libc call. */
static inline int oic_same_bytes(const uint8_t *a, const uint8_t *b, int64_t n)
{
    while (n >= 8) {
        uint64_t x, y;
        memcpy(&x, a, 8);
        memcpy(&y, b, 8);
        if (x != y)
            return 0;
        a += 8;
        b += 8;
        n -= 8;
    }
    while (n-- > 0)
        if (*a++ != *b++)
            return 0;
    return 1;
}

/* The value's first 16 bytes as two little-endian words, zero-padded. */
static inline void oic_key_words(const uint8_t *s, size_t n, uint64_t *w0, uint64_t *w1)
{
    uint8_t tmp[16] = {0};
    memcpy(tmp, s, n < 16 ? n : 16);
    memcpy(w0, tmp, 8);
    memcpy(w1, tmp + 8, 8);
}

static inline uint64_t oic_mix(uint64_t h)
{
    h ^= h >> 32;
    h *= UINT64_C(0xFF51AFD7ED558CCD);
    h ^= h >> 29;
    return h;
}

/* The hash of a value, from its key words (and, past 16 bytes, the rest). */
static inline uint64_t oic_hash_value(const uint8_t *s, size_t n, uint64_t w0, uint64_t w1)
{
    uint64_t h = (w0 ^ UINT64_C(0x9E3779B97F4A7C15)) * UINT64_C(0xC4CEB9FE1A85EC53);
    h ^= (w1 + n) * UINT64_C(0xD6E8FEB86659FD93);
    for (size_t i = 16; i < n; i += 8) {
        uint64_t w = 0;
        memcpy(&w, s + i, n - i < 8 ? n - i : 8);
        h = (h ^ w) * UINT64_C(0xC4CEB9FE1A85EC53);
        h ^= h >> 29;
    }
    return oic_mix(h);
}

static inline void oic_dict_free(oic_dict *d)
{
    free(d->slots);
    free(d->hashes);
    free(d->offsets);
    free(d->bytes);
    memset(d, 0, sizeof *d);
}

static inline oic_slot *oic_alloc_slots(uint32_t mask)
{
    oic_slot *slots = (oic_slot *)malloc((size_t)(mask + 1) * sizeof(oic_slot));
    if (slots)
        for (uint32_t i = 0; i <= mask; i++)
            slots[i].code = -1;
    return slots;
}

/* Allocates d's arrays for the given capacities (contents unset); on failure frees them. */
static inline oic_status oic_dict_alloc(oic_dict *d, uint32_t mask, int32_t codes_cap, int64_t bytes_cap)
{
    memset(d, 0, sizeof *d);
    d->mask = mask;
    d->codes_cap = codes_cap;
    d->bytes_cap = bytes_cap;
    d->slots = (oic_slot *)malloc((size_t)(mask + 1) * sizeof(oic_slot));
    d->hashes = (uint64_t *)malloc((size_t)codes_cap * sizeof(uint64_t));
    d->offsets = (int64_t *)malloc((size_t)(codes_cap + 1) * sizeof(int64_t));
    d->bytes = (uint8_t *)malloc((size_t)bytes_cap);
    if (!d->slots || !d->hashes || !d->offsets || !d->bytes) {
        oic_dict_free(d);
        return OIC_ERR_NO_MEMORY;
    }
    return OIC_OK;
}

static inline oic_status oic_dict_init(oic_dict *d)
{
    if (oic_dict_alloc(d, 1023, 256, 4096) != OIC_OK)
        return OIC_ERR_NO_MEMORY;
    for (uint32_t i = 0; i <= d->mask; i++)
        d->slots[i].code = -1;
    d->offsets[0] = 0;
    return OIC_OK;
}

static inline oic_status oic_dict_grow_slots(oic_dict *d)
{
    uint32_t mask = d->mask * 2 + 1;
    oic_slot *slots = oic_alloc_slots(mask);
    if (!slots)
        return OIC_ERR_NO_MEMORY;
    for (uint32_t j = 0; j <= d->mask; j++) {
        if (d->slots[j].code < 0)
            continue;
        uint32_t i = (uint32_t)d->hashes[d->slots[j].code] & mask;
        while (slots[i].code >= 0)
            i = (i + 1) & mask;
        slots[i] = d->slots[j];
    }
    free(d->slots);
    d->slots = slots;
    d->mask = mask;
    return OIC_OK;
}

/* Makes dst an independent copy of src (dst uninitialized): the reader
 * publishes such copies for chunks to share while the original grows. */
static inline oic_status oic_dict_clone(oic_dict *dst, const oic_dict *src)
{
    if (oic_dict_alloc(dst, src->mask, src->codes_cap, src->bytes_cap) != OIC_OK)
        return OIC_ERR_NO_MEMORY;
    dst->count = src->count;
    dst->bytes_len = src->bytes_len;
    memcpy(dst->slots, src->slots, (size_t)(src->mask + 1) * sizeof(oic_slot));
    memcpy(dst->hashes, src->hashes, (size_t)src->count * sizeof(uint64_t));
    memcpy(dst->offsets, src->offsets, (size_t)(src->count + 1) * sizeof(int64_t));
    if (src->bytes_len)
        memcpy(dst->bytes, src->bytes, (size_t)src->bytes_len);
    return OIC_OK;
}

/* The code of a value of at most 16 bytes given as key words, or -1. */
static inline int32_t oic_dict_find_short(const oic_dict *d, uint64_t w0, uint64_t w1, size_t n, uint64_t h)
{
    uint32_t i = (uint32_t)h & d->mask;
    for (;;) {
        const oic_slot *slot = &d->slots[i];
        if (slot->code < 0)
            return -1;
        if (slot->w0 == w0 && slot->w1 == w1 && slot->len == (int32_t)n)
            return slot->code;
        i = (i + 1) & d->mask;
    }
}

/* The code of s[0:n] (hash h, key words w0 and w1), or -1; never changes d. */
static inline int32_t oic_dict_find(const oic_dict *d, const uint8_t *s, size_t n, uint64_t w0, uint64_t w1, uint64_t h)
{
    uint32_t i = (uint32_t)h & d->mask;
    for (;;) {
        const oic_slot *slot = &d->slots[i];
        if (slot->code < 0)
            return -1;
        if (slot->w0 == w0 && slot->w1 == w1 && slot->len == (int64_t)n &&
            (n <= 16 || oic_same_bytes(d->bytes + d->offsets[slot->code], s, (int64_t)n)))
            return slot->code;
        i = (i + 1) & d->mask;
    }
}

/* Finds the code of s[0:n] (hash h, key words w0 and w1), adding it when new (*added = 1). */
static inline oic_status oic_dict_intern_hashed(oic_dict *d, const uint8_t *s, size_t n, uint64_t w0, uint64_t w1,
                                                uint64_t h, int32_t *code, int *added)
{
    if (n > INT32_MAX)
        return OIC_ERR_CAPACITY;
    uint32_t i = (uint32_t)h & d->mask;
    for (;;) {
        const oic_slot *slot = &d->slots[i];
        if (slot->code < 0)
            break;
        if (slot->w0 == w0 && slot->w1 == w1 && slot->len == (int32_t)n &&
            (n <= 16 || oic_same_bytes(d->bytes + d->offsets[slot->code], s, (int64_t)n))) {
            *code = slot->code;
            *added = 0;
            return OIC_OK;
        }
        i = (i + 1) & d->mask;
    }
    if (d->count == INT32_MAX - 1)
        return OIC_ERR_CAPACITY;
    if (d->count == d->codes_cap) {
        int32_t cap = d->codes_cap > INT32_MAX / 2 ? INT32_MAX - 1 : d->codes_cap * 2;
        uint64_t *hashes = (uint64_t *)realloc(d->hashes, (size_t)cap * sizeof(uint64_t));
        if (!hashes)
            return OIC_ERR_NO_MEMORY;
        d->hashes = hashes;
        int64_t *offsets = (int64_t *)realloc(d->offsets, (size_t)(cap + 1) * sizeof(int64_t));
        if (!offsets)
            return OIC_ERR_NO_MEMORY;
        d->offsets = offsets;
        d->codes_cap = cap;
    }
    if (d->bytes_len + (int64_t)n > d->bytes_cap) {
        int64_t cap = d->bytes_cap * 2;
        while (cap < d->bytes_len + (int64_t)n)
            cap *= 2;
        uint8_t *bytes = (uint8_t *)realloc(d->bytes, (size_t)cap);
        if (!bytes)
            return OIC_ERR_NO_MEMORY;
        d->bytes = bytes;
        d->bytes_cap = cap;
    }
    int32_t c = d->count++;
    if (n)
        memcpy(d->bytes + d->bytes_len, s, n);
    d->bytes_len += (int64_t)n;
    d->offsets[c + 1] = d->bytes_len;
    d->hashes[c] = h;
    oic_slot *slot = &d->slots[i];
    slot->w0 = w0;
    slot->w1 = w1;
    slot->len = (int32_t)n;
    slot->code = c;
    *code = c;
    *added = 1;
    if ((uint64_t)d->count * 4 > (uint64_t)d->mask * 3) /* at most three quarters full */
        return oic_dict_grow_slots(d);
    return OIC_OK;
}

/* Finds the code of s[0:n], adding it when new (*added = 1). */
static inline oic_status oic_dict_intern(oic_dict *d, const uint8_t *s, size_t n, int32_t *code, int *added)
{
    uint64_t w0, w1;
    oic_key_words(s, n, &w0, &w1);
    return oic_dict_intern_hashed(d, s, n, w0, w1, oic_hash_value(s, n, w0, w1), code, added);
}

#endif
