/*
 * ring.h: index arithmetic of the byte rings shared with Xen peers
 * (console, xenstore) and of the runtime's own byte buffers.
 *
 * Indices are free-running 32-bit counters; byte i lives at i & (size-1)
 * and size is a power of two. The producer and consumer indices of a
 * shared ring are written by different domains, so a peer can publish any
 * value: ring_sane() must hold before the difference is trusted. Pure
 * functions, no Xen headers: also compiled into host unit tests.
 */
#ifndef QW_XEN_RING_H
#define QW_XEN_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bytes between cons and prod (valid only if ring_sane()). */
static inline uint32_t ring_used(uint32_t prod, uint32_t cons)
{
    return prod - cons;
}

/* True if a ring of `size` bytes can really hold prod - cons bytes. */
static inline bool ring_sane(uint32_t prod, uint32_t cons, uint32_t size)
{
    return prod - cons <= size;
}

/* Room left for the producer (0 if the indices are not sane). */
static inline uint32_t ring_space(uint32_t prod, uint32_t cons, uint32_t size)
{
    return ring_sane(prod, cons, size) ? size - (prod - cons) : 0;
}

/*
 * Copy n bytes starting at index `at` out of a ring of `size` bytes into
 * dst, wrapping at the end. The caller has checked that n bytes are there.
 */
static inline void ring_copy_out(void *dst, const volatile void *ring,
                                 uint32_t size, uint32_t at, size_t n)
{
    uint8_t *d = dst;
    const volatile uint8_t *r = ring;
    uint32_t off = at & (size - 1);

    for (size_t i = 0; i < n; i++) {
        d[i] = r[off];
        off = (off + 1) & (size - 1);
    }
}

/* Copy n bytes from src into a ring of `size` bytes at index `at`. */
static inline void ring_copy_in(volatile void *ring, uint32_t size, uint32_t at,
                                const void *src, size_t n)
{
    const uint8_t *s = src;
    volatile uint8_t *r = ring;
    uint32_t off = at & (size - 1);

    for (size_t i = 0; i < n; i++) {
        r[off] = s[i];
        off = (off + 1) & (size - 1);
    }
}

#endif /* QW_XEN_RING_H */
