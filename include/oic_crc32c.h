/* oic_crc32c.h: CRC-32C (Castagnoli), as FORMAT.md defines it.
 *
 * oic_crc32c(crc, s, n) continues a CRC: start with 0, feed bytes in order.
 * On x86-64 with SSE4.2 it uses the crc32 instruction (about 10 GB/s); else
 * slicing-by-8 tables (about 1.5 GB/s). oic_crc32c_init() must run once first. */
#ifndef OIC_CRC32C_H
#define OIC_CRC32C_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define OIC_CRC32C_POLY UINT32_C(0x82F63B78) /* 0x1EDC6F41 reflected */

static uint32_t oic_crc32c_table[8][256];
static int oic_crc32c_hw;

static inline void oic_crc32c_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ OIC_CRC32C_POLY : c >> 1;
        oic_crc32c_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            oic_crc32c_table[t][i] =
                (oic_crc32c_table[t - 1][i] >> 8) ^ oic_crc32c_table[0][oic_crc32c_table[t - 1][i] & 0xFF];
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    oic_crc32c_hw = __builtin_cpu_supports("sse4.2");
#endif
}

static inline uint32_t oic_crc32c_sw(uint32_t crc, const uint8_t *s, size_t n)
{
    crc = ~crc;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        w ^= crc;
        crc = oic_crc32c_table[7][w & 0xFF] ^ oic_crc32c_table[6][(w >> 8) & 0xFF] ^
              oic_crc32c_table[5][(w >> 16) & 0xFF] ^ oic_crc32c_table[4][(w >> 24) & 0xFF] ^
              oic_crc32c_table[3][(w >> 32) & 0xFF] ^ oic_crc32c_table[2][(w >> 40) & 0xFF] ^
              oic_crc32c_table[1][(w >> 48) & 0xFF] ^ oic_crc32c_table[0][w >> 56];
        s += 8;
        n -= 8;
    }
    while (n--)
        crc = (crc >> 8) ^ oic_crc32c_table[0][(crc ^ *s++) & 0xFF];
    return ~crc;
}

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("sse4.2"))) static inline uint32_t oic_crc32c_hw64(uint32_t crc, const uint8_t *s, size_t n)
{
    uint64_t c = ~crc;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        c = __builtin_ia32_crc32di(c, w);
        s += 8;
        n -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (n--)
        c32 = __builtin_ia32_crc32qi(c32, *s++);
    return ~c32;
}
#endif

static inline uint32_t oic_crc32c(uint32_t crc, const uint8_t *s, size_t n)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (oic_crc32c_hw)
        return oic_crc32c_hw64(crc, s, n);
#endif
    return oic_crc32c_sw(crc, s, n);
}

#endif
