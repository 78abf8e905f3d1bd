/* oic_dict.h: a growing dictionary of byte strings -> dense int32 codes.
 *
 * Codes are given in order of first appearance, so a chunk's codes can be
 * remapped to a release-wide vocabulary with one table lookup per row.
 * Open addressing with linear probing; the table is kept at most half full. */
#ifndef OIC_DICT_H
#define OIC_DICT_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "oic_status.h"

typedef struct {
    int32_t *slots;     /* code, or -1 for an empty slot */
    uint64_t *hashes;   /* per code */
    int64_t *offsets;   /* per code + 1: where each value starts in bytes */
    uint8_t *bytes;
    int64_t bytes_len, bytes_cap;
    int32_t count, codes_cap;
    uint32_t mask;      /* slots capacity - 1 */
} oic_dict;

static inline uint64_t oic_hash_bytes(const uint8_t *s, size_t n)
{
    /* Word-at-a-time multiply-xorshift; values here are short (MIDs, sources). */
    uint64_t h = UINT64_C(0x9E3779B97F4A7C15) ^ (n * UINT64_C(0xFF51AFD7ED558CCD));
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * UINT64_C(0xC4CEB9FE1A85EC53);
        h ^= h >> 29;
        s += 8;
        n -= 8;
    }
    if (n) {
        uint64_t w = 0;
        memcpy(&w, s, n);
        h = (h ^ w) * UINT64_C(0xC4CEB9FE1A85EC53);
    }
    h ^= h >> 32;
    h *= UINT64_C(0xFF51AFD7ED558CCD);
    h ^= h >> 29;
    return h;
}

static inline void oic_dict_free(oic_dict *d)
{
    free(d->slots);
    free(d->hashes);
    free(d->offsets);
    free(d->bytes);
    memset(d, 0, sizeof *d);
}

static inline oic_status oic_dict_init(oic_dict *d)
{
    memset(d, 0, sizeof *d);
    d->mask = 1023;
    d->codes_cap = 256;
    d->bytes_cap = 4096;
    d->slots = (int32_t *)malloc((size_t)(d->mask + 1) * sizeof(int32_t));
    d->hashes = (uint64_t *)malloc((size_t)d->codes_cap * sizeof(uint64_t));
    d->offsets = (int64_t *)malloc((size_t)(d->codes_cap + 1) * sizeof(int64_t));
    d->bytes = (uint8_t *)malloc((size_t)d->bytes_cap);
    if (!d->slots || !d->hashes || !d->offsets || !d->bytes) {
        oic_dict_free(d);
        return OIC_ERR_NO_MEMORY;
    }
    memset(d->slots, 0xFF, (size_t)(d->mask + 1) * sizeof(int32_t));
    d->offsets[0] = 0;
    return OIC_OK;
}

static inline oic_status oic_dict_grow_slots(oic_dict *d)
{
    uint32_t mask = d->mask * 2 + 1;
    int32_t *slots = (int32_t *)malloc((size_t)(mask + 1) * sizeof(int32_t));
    if (!slots)
        return OIC_ERR_NO_MEMORY;
    memset(slots, 0xFF, (size_t)(mask + 1) * sizeof(int32_t));
    for (int32_t code = 0; code < d->count; code++) {
        uint32_t i = (uint32_t)d->hashes[code] & mask;
        while (slots[i] >= 0)
            i = (i + 1) & mask;
        slots[i] = code;
    }
    free(d->slots);
    d->slots = slots;
    d->mask = mask;
    return OIC_OK;
}

/* Finds the code of s[0:n], adding it when new (*added = 1). */
static inline oic_status oic_dict_intern(oic_dict *d, const uint8_t *s, size_t n, int32_t *code, int *added)
{
    uint64_t h = oic_hash_bytes(s, n);
    uint32_t i = (uint32_t)h & d->mask;
    for (;;) {
        int32_t c = d->slots[i];
        if (c < 0)
            break;
        if (d->hashes[c] == h && (size_t)(d->offsets[c + 1] - d->offsets[c]) == n &&
            memcmp(d->bytes + d->offsets[c], s, n) == 0) {
            *code = c;
            *added = 0;
            return OIC_OK;
        }
        i = (i + 1) & d->mask;
    }
    if (d->count == INT32_MAX)
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
    d->slots[i] = c;
    *code = c;
    *added = 1;
    if ((uint32_t)d->count * 2 > d->mask)
        return oic_dict_grow_slots(d);
    return OIC_OK;
}

#endif
