/* oic_pool.h: big result buffers, reused.
 *
 * A batch of a million lookups returns about 100 MB of arrays. Fresh memory costs a page fault and the kernel
 * zeroing each page on first touch, about as much as the lookups themselves; a loop of batches (a data loader)
 * would pay it every time. Buffers of OIC_POOL_MIN bytes or more therefore come back here when their last
 * view dies, and the next request of a similar size takes one: at most OIC_POOL_SLOTS wait, holding at most
 * OIC_POOL_BYTES, the oldest freed first. New buffers are 2 MiB aligned and advised MADV_HUGEPAGE (fewer TLB misses for scattered writes).
 *
 * Not thread-safe: the callers hold the GIL. */
#ifndef OIC_POOL_H
#define OIC_POOL_H

#include <stddef.h>
#include <stdlib.h>
#include <sys/mman.h>

#define OIC_POOL_SLOTS 6
#define OIC_POOL_BYTES ((size_t)256 << 20) /* waiting buffers hold at most this much (one per DataLoader worker) */

static size_t oic_pool_min = (size_t)1 << 20; /* smaller buffers are plain malloc/free (tests lower it) */
static struct {
    void *p;
    size_t cap;
} oic_pool[OIC_POOL_SLOTS];
static int oic_pool_used = 0;

/* A buffer of at least n bytes (its capacity in *cap, to give back to oic_pool_free), or NULL. */
static inline void *oic_pool_alloc(size_t n, size_t *cap)
{
    void *p = NULL;
    if (n < oic_pool_min) {
        *cap = n;
        return malloc(n ? n : 1);
    }
    int best = -1;
    for (int i = 0; i < oic_pool_used; i++) /* the smallest that fits, and at most twice the size asked */
        if (oic_pool[i].cap >= n && oic_pool[i].cap / 2 <= n && (best < 0 || oic_pool[i].cap < oic_pool[best].cap))
            best = i;
    if (best >= 0) {
        p = oic_pool[best].p, *cap = oic_pool[best].cap;
        oic_pool[best] = oic_pool[--oic_pool_used];
        return p;
    }
    size_t align = (size_t)1 << 21;
    if (n > SIZE_MAX - align)
        return NULL;
    n = (n + align - 1) & ~(align - 1);
    if (posix_memalign(&p, align, n) != 0)
        return NULL;
#ifdef MADV_HUGEPAGE
    madvise(p, n, MADV_HUGEPAGE); /* advice only: failure changes nothing */
#endif
    *cap = n;
    return p;
}

static inline void oic_pool_free(void *p, size_t cap)
{
    if (p == NULL)
        return;
    if (cap < oic_pool_min) {
        free(p);
        return;
    }
    if (cap > OIC_POOL_BYTES) {
        free(p);
        return;
    }
    size_t held = cap;
    for (int i = 0; i < oic_pool_used; i++)
        held += oic_pool[i].cap;
    while (oic_pool_used > 0 && (oic_pool_used == OIC_POOL_SLOTS || held > OIC_POOL_BYTES)) { /* the oldest go */
        held -= oic_pool[0].cap;
        free(oic_pool[0].p);
        for (int i = 1; i < oic_pool_used; i++)
            oic_pool[i - 1] = oic_pool[i];
        oic_pool_used--;
    }
    oic_pool[oic_pool_used].p = p, oic_pool[oic_pool_used].cap = cap;
    oic_pool_used++;
}

/* Free every waiting buffer. */
static inline void oic_pool_clear(void)
{
    while (oic_pool_used > 0) {
        oic_pool_used--;
        free(oic_pool[oic_pool_used].p);
    }
}

#endif
