/* oic_warm.h: large blocks kept warm between uses, for numpy's arrays during a convert.
 *
 * A convert makes and drops gigabytes of large arrays (columns narrowed, gathered, rendered, packed), few of
 * them alive at once. Fresh memory costs a page fault and the kernel zeroing each page on first touch; in a
 * VM that costs more than most work done in the array (first touch 0.5-2.5 GB/s on the project's VMs, a
 * write to warm memory 25 GB/s). While a convert runs (oic_warm_enter .. oic_warm_leave), numpy's arrays
 * made on its threads come from here, through a PyDataMem_Handler: a freed block of OIC_WARM_MIN bytes or
 * more waits, up to oic_warm_limit bytes in all (the longest waiting unmapped first), for the next request
 * of about its size. Smaller blocks are plain malloc. Outside a convert, a freed block is unmapped at once.
 *
 * Every block starts with a header, one cache line long (numpy's alignment needs at most 16 bytes): how
 * many bytes are mapped (0: the block is malloc'ed) and how many were asked for. One mutex guards the
 * waiting list; no system call is made while holding it. */
#ifndef OIC_WARM_H
#define OIC_WARM_H

#include <Python.h>
#include <numpy/arrayobject.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define OIC_WARM_HEAD ((size_t)64)
#define OIC_WARM_MIN ((size_t)1 << 20)   /* smaller blocks are malloc'ed */
#define OIC_WARM_GRAIN ((size_t)2 << 20) /* mapped sizes are multiples of this */
#define OIC_WARM_SLOTS 64                /* blocks waiting at most */

typedef struct {
    size_t mapped; /* bytes mapped from the header on; 0: malloc'ed */
    size_t size;   /* bytes asked for */
} oic_warm_head;

typedef struct {
    uint64_t hits, misses;   /* large requests served by a waiting block, or by a new map */
    uint64_t hit_bytes, miss_bytes;
    uint64_t waiting_bytes;  /* now */
    uint64_t waiting_peak;   /* since the first enter */
    int64_t active;          /* converts inside enter .. leave */
} oic_warm_stats;

static pthread_mutex_t oic_warm_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    char *base;
    size_t mapped;
    uint64_t freed_at;
} oic_warm_slot[OIC_WARM_SLOTS];
static int oic_warm_waiting;
static uint64_t oic_warm_clock;
static size_t oic_warm_limit;
static oic_warm_stats oic_warm_st;

/* A forked child has one thread: whoever held the lock is gone. */
static void oic_warm_after_fork(void)
{
    pthread_mutex_init(&oic_warm_lock, NULL);
}

static inline void *oic_warm_map(size_t mapped)
{
    void *p = mmap(NULL, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

/* Takes the longest-waiting blocks off the list, into drop[], until `room` more bytes fit under the limit
 * and a slot is free; the caller unmaps them after unlocking. */
static int oic_warm_take_oldest(size_t room, char **drop, size_t *dropped)
{
    int nd = 0;
    while (oic_warm_waiting > 0 && (oic_warm_st.waiting_bytes + room > oic_warm_limit || oic_warm_waiting == OIC_WARM_SLOTS)) {
        int old = 0;
        for (int i = 1; i < oic_warm_waiting; i++)
            if (oic_warm_slot[i].freed_at < oic_warm_slot[old].freed_at)
                old = i;
        drop[nd] = oic_warm_slot[old].base, dropped[nd++] = oic_warm_slot[old].mapped;
        oic_warm_st.waiting_bytes -= oic_warm_slot[old].mapped;
        oic_warm_slot[old] = oic_warm_slot[--oic_warm_waiting];
    }
    return nd;
}

static void *oic_warm_alloc(size_t n, int zeroed)
{
    if (n > SIZE_MAX / 2)
        return NULL;
    size_t total = n + OIC_WARM_HEAD;
    char *base;
    if (total < OIC_WARM_MIN) {
        base = zeroed ? (char *)calloc(1, total) : (char *)malloc(total);
        if (base == NULL)
            return NULL;
        ((oic_warm_head *)base)->mapped = 0;
        ((oic_warm_head *)base)->size = n;
        return base + OIC_WARM_HEAD;
    }
    size_t mapped = (total + OIC_WARM_GRAIN - 1) & ~(OIC_WARM_GRAIN - 1);
    int best = -1;
    pthread_mutex_lock(&oic_warm_lock);
    /* The smallest waiting block that fits and wastes at most a quarter (plus a grain). */
    for (int i = 0; i < oic_warm_waiting; i++)
        if (oic_warm_slot[i].mapped >= mapped && oic_warm_slot[i].mapped - mapped <= mapped / 4 + OIC_WARM_GRAIN &&
            (best < 0 || oic_warm_slot[i].mapped < oic_warm_slot[best].mapped))
            best = i;
    if (best >= 0) {
        base = oic_warm_slot[best].base, mapped = oic_warm_slot[best].mapped;
        oic_warm_slot[best] = oic_warm_slot[--oic_warm_waiting];
        oic_warm_st.waiting_bytes -= mapped;
        oic_warm_st.hits++, oic_warm_st.hit_bytes += mapped;
    } else {
        base = NULL;
        oic_warm_st.misses++, oic_warm_st.miss_bytes += mapped;
    }
    pthread_mutex_unlock(&oic_warm_lock);
    if (base == NULL) {
        base = (char *)oic_warm_map(mapped); /* fresh pages are zero */
        if (base == NULL)
            return NULL;
    } else if (zeroed) {
        memset(base + OIC_WARM_HEAD, 0, n);
    }
    ((oic_warm_head *)base)->mapped = mapped;
    ((oic_warm_head *)base)->size = n;
    return base + OIC_WARM_HEAD;
}

static void oic_warm_free(void *p)
{
    if (p == NULL)
        return;
    char *base = (char *)p - OIC_WARM_HEAD;
    size_t mapped = ((oic_warm_head *)base)->mapped;
    if (mapped == 0) {
        free(base);
        return;
    }
    char *drop[OIC_WARM_SLOTS + 1];
    size_t dropped[OIC_WARM_SLOTS + 1];
    int nd = 0;
    pthread_mutex_lock(&oic_warm_lock);
    if (oic_warm_st.active <= 0 || mapped > oic_warm_limit) {
        drop[nd] = base, dropped[nd++] = mapped;
    } else {
        nd = oic_warm_take_oldest(mapped, drop, dropped);
        oic_warm_slot[oic_warm_waiting].base = base;
        oic_warm_slot[oic_warm_waiting].mapped = mapped;
        oic_warm_slot[oic_warm_waiting++].freed_at = ++oic_warm_clock;
        oic_warm_st.waiting_bytes += mapped;
        if (oic_warm_st.waiting_bytes > oic_warm_st.waiting_peak)
            oic_warm_st.waiting_peak = oic_warm_st.waiting_bytes;
    }
    pthread_mutex_unlock(&oic_warm_lock);
    for (int i = 0; i < nd; i++)
        munmap(drop[i], dropped[i]);
}

static void *oic_warm_realloc(void *p, size_t n)
{
    if (p == NULL)
        return oic_warm_alloc(n, 0);
    if (n > SIZE_MAX / 2)
        return NULL;
    char *base = (char *)p - OIC_WARM_HEAD;
    oic_warm_head *head = (oic_warm_head *)base;
    if (head->mapped == 0 && n + OIC_WARM_HEAD < OIC_WARM_MIN) {
        char *q = (char *)realloc(base, n + OIC_WARM_HEAD);
        if (q == NULL)
            return NULL;
        ((oic_warm_head *)q)->size = n;
        return q + OIC_WARM_HEAD;
    }
    if (head->mapped != 0 && n + OIC_WARM_HEAD <= head->mapped && n >= head->size / 2) {
        head->size = n; /* fits, and keeps at least half the block in use */
        return p;
    }
    void *q = oic_warm_alloc(n, 0);
    if (q == NULL)
        return NULL;
    memcpy(q, p, head->size < n ? head->size : n);
    oic_warm_free(p);
    return q;
}

/* A convert starts: freed blocks wait for reuse, up to `limit` bytes (the largest limit of those running). */
static void oic_warm_enter(size_t limit)
{
    pthread_mutex_lock(&oic_warm_lock);
    if (oic_warm_st.active++ == 0 || limit > oic_warm_limit)
        oic_warm_limit = limit;
    pthread_mutex_unlock(&oic_warm_lock);
}

/* A convert ends: after the last, every waiting block is unmapped. */
static void oic_warm_leave(void)
{
    char *drop[OIC_WARM_SLOTS];
    size_t dropped[OIC_WARM_SLOTS];
    int nd = 0;
    pthread_mutex_lock(&oic_warm_lock);
    if (oic_warm_st.active > 0 && --oic_warm_st.active == 0) {
        for (int i = 0; i < oic_warm_waiting; i++)
            drop[nd] = oic_warm_slot[i].base, dropped[nd++] = oic_warm_slot[i].mapped;
        oic_warm_waiting = 0;
        oic_warm_st.waiting_bytes = 0;
    }
    pthread_mutex_unlock(&oic_warm_lock);
    for (int i = 0; i < nd; i++)
        munmap(drop[i], dropped[i]);
}

static oic_warm_stats oic_warm_get_stats(void)
{
    pthread_mutex_lock(&oic_warm_lock);
    oic_warm_stats s = oic_warm_st;
    pthread_mutex_unlock(&oic_warm_lock);
    return s;
}

/* numpy's handler (NumPy >= 1.22): the context is unused. */
static void *oic_warm_np_malloc(void *ctx, size_t n)
{
    (void)ctx;
    return oic_warm_alloc(n, 0);
}

static void *oic_warm_np_calloc(void *ctx, size_t count, size_t each)
{
    (void)ctx;
    if (each != 0 && count > SIZE_MAX / each)
        return NULL;
    return oic_warm_alloc(count * each, 1);
}

static void *oic_warm_np_realloc(void *ctx, void *p, size_t n)
{
    (void)ctx;
    return oic_warm_realloc(p, n);
}

static void oic_warm_np_free(void *ctx, void *p, size_t size)
{
    (void)ctx, (void)size; /* the header knows the size; numpy's may differ after a resize */
    oic_warm_free(p);
}

static PyDataMem_Handler oic_warm_handler = {
    "oicore_warm",
    1,
    {NULL, oic_warm_np_malloc, oic_warm_np_calloc, oic_warm_np_realloc, oic_warm_np_free},
};

#endif
