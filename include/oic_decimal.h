/* Decimals as integers (FORMAT.md, "decimal" columns): a float64 column is stored as k at scale e
 * when every value v is k / 10^e for an integer |k| < 2^53. In double arithmetic k / 10^e is then the
 * correctly rounded quotient of two exact operands, the same double that parsing the decimal text
 * makes, so the integers give the values back bit for bit.
 *
 * One pass per test and one per conversion, with no temporaries: numpy's form of the same test makes
 * five arrays of the column's size, and page faults on fresh arrays cost more than the arithmetic. */
#ifndef OIC_DECIMAL_H
#define OIC_DECIMAL_H

#include <math.h>
#include <stdint.h>

#define OIC_DECIMAL_MAX_SCALE 22 /* 10^22 is the largest power of ten a double holds exactly */

static const double oic_pow10[OIC_DECIMAL_MAX_SCALE + 1] = {
    1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

/* Is v exactly k / 10^e for k = rint(v * 10^e), |k| < 2^53? -0.0 is not (an integer loses its sign);
 * NaN and infinities are not. */
static inline int oic_decimal_exact(double v, double p, double *k)
{
    const double r = rint(v * p);
    *k = r;
    if (!(fabs(r) < 9007199254740992.0)) /* false for NaN too */
        return 0;
    if (v == 0.0)
        return !signbit(v);
    return r / p == v;
}

/* Tests values [0, n) at scale e (0 <= e <= OIC_DECIMAL_MAX_SCALE); rows whose null byte is set
 * count as 0. Returns -1 when every value is exact, with the least and greatest k in *lo and *hi
 * (both 0 when n is 0), else the first row that is not. */
static inline int64_t oic_decimal_check(const double *v, const uint8_t *nulls, int64_t n, int e, int64_t *lo,
                                        int64_t *hi)
{
    const double p = oic_pow10[e];
    double k, least = 0.0, greatest = 0.0;
    for (int64_t i = 0; i < n; i++) {
        if (nulls && nulls[i])
            continue;
        if (!oic_decimal_exact(v[i], p, &k))
            return i;
        least = k < least ? k : least;
        greatest = k > greatest ? k : greatest;
    }
    *lo = (int64_t)least;
    *hi = (int64_t)greatest;
    return -1;
}

/* k = rint(v * 10^e) for rows [0, n) into out, an array of `width` bytes per value (1, 2, 4 or 8,
 * signed when `is_signed`), nulls as 0. The caller checked the values (oic_decimal_check) and chose a
 * width that holds every k. */
#define OIC_DECIMAL_FILL(T)                                                                                       \
    for (int64_t i = 0; i < n; i++)                                                                               \
        ((T *)out)[i] = (nulls && nulls[i]) ? (T)0 : (T)(int64_t)rint(v[i] * p);

static inline void oic_decimal_fill(const double *v, const uint8_t *nulls, int64_t n, int e, void *out, int width,
                                    int is_signed)
{
    const double p = oic_pow10[e];
    if (is_signed) {
        switch (width) {
        case 1: OIC_DECIMAL_FILL(int8_t) break;
        case 2: OIC_DECIMAL_FILL(int16_t) break;
        case 4: OIC_DECIMAL_FILL(int32_t) break;
        default: OIC_DECIMAL_FILL(int64_t) break;
        }
    } else {
        switch (width) {
        case 1: OIC_DECIMAL_FILL(uint8_t) break;
        case 2: OIC_DECIMAL_FILL(uint16_t) break;
        case 4: OIC_DECIMAL_FILL(uint32_t) break;
        default: OIC_DECIMAL_FILL(uint64_t) break;
        }
    }
}
#undef OIC_DECIMAL_FILL

#endif
