/*
 * frag.h: IPv4 fragment reassembly and refragmentation.
 *
 * Reassembly runs before filtering so that rules and connection tracking
 * always see whole datagrams (a port number hidden in a second fragment
 * cannot slip past a rule). Everything is bounded, per link, so one client
 * cannot starve another:
 *
 *   - a datagram is at most 65535 bytes, header included;
 *   - payload is kept in blocks of FRAG_BLOCK bytes from one pool shared
 *     by all links (its size fixed at init), and each link may hold at
 *     most link_cap bytes of it: memory does not grow with the number of
 *     clients, and no link can take the pool. When a new fragment does not
 *     fit, the oldest incomplete datagram of the same link is evicted if
 *     the link is at its cap, else the oldest in the pool (FRAG_NO_MEM);
 *   - at most FRAG_MAX_DGRAMS datagrams in progress per link (and a pool
 *     of datagram slots, one per 4 KiB of pool), and FRAG_MAX_FRAGS stored
 *     fragments per datagram;
 *   - a datagram not complete FRAG_TIMEOUT_NS after its first fragment is
 *     dropped (FRAG_TIMEOUT).
 *
 * Datagrams are keyed by (src, dst, proto, id) within a link. A fragment
 * that overlaps stored data with a different placement drops the whole
 * datagram (FRAG_OVERLAP, as RFC 5722 does for IPv6): overlaps are how
 * filters and hosts are made to disagree about content. An exact duplicate
 * (same offset and length) is absorbed; the first copy wins.
 *
 * Memory: frag_mem_size() bytes from the caller, nothing else. No call
 * allocates. Not thread safe (one caller, like the rest of the core).
 */
#ifndef QW_FRAG_H
#define QW_FRAG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "drop.h"

#define FRAG_TIMEOUT_NS (30ull * 1000000000ull)
#define FRAG_MAX_DGRAMS 16 /* datagrams in progress per link */
#define FRAG_MAX_FRAGS 64  /* stored fragments per datagram */
#define FRAG_BLOCK 128     /* payload storage granule, bytes */
#define FRAG_MIN_LINK_BYTES (FRAG_BLOCK * 8) /* smaller caps round up */
#define FRAG_MAX_LINK_BYTES (4u << 20)       /* larger caps are cut */
#define FRAG_MAX_POOL_BYTES (8u << 20)       /* larger pools are cut */
#define FRAG_DEFAULT_POOL_BYTES (1u << 20)

/* frag_input() results */
enum frag_result {
    FRAG_PENDING = 0, /* fragment kept (or an exact duplicate absorbed) */
    FRAG_DONE = 1,    /* *out / *outlen hold the whole datagram */
    FRAG_DROP = 2,    /* this fragment dropped, *why says why */
};

struct frag; /* opaque; lives in the caller's memory */

/*
 * Bytes frag_pool_init() needs: a payload pool of pool_bytes shared by
 * nlinks links, each capped at link_cap bytes of it (pool_bytes is raised
 * to link_cap if smaller and cut at FRAG_MAX_POOL_BYTES), plus bookkeeping
 * and the one 64 KiB buffer completed datagrams are assembled into.
 */
size_t frag_pool_mem_size(unsigned nlinks, uint32_t pool_bytes,
                          uint32_t link_cap);

/*
 * Build the tables in f (frag_pool_mem_size() bytes, 16-byte aligned).
 * Links are numbered 0..nlinks-1 (the caller's link numbers: the uplink is
 * 0). Arguments as given to frag_pool_mem_size().
 */
void frag_pool_init(struct frag *f, unsigned nlinks, uint32_t pool_bytes,
                    uint32_t link_cap);

/* The same with a pool of nlinks * bytes_per_link (capped): each link can
 * use its whole budget at once. Mostly for tests. */
size_t frag_mem_size(unsigned nlinks, uint32_t bytes_per_link);
void frag_init(struct frag *f, unsigned nlinks, uint32_t bytes_per_link);

/*
 * Optional: called for every stored fragment that is thrown away later
 * (its datagram overlapped, timed out, was evicted or flushed), with the
 * reason and how many fragments went, so the caller can count them per
 * link. Fragments passed to frag_input() and dropped at once are reported
 * through *why instead, never here. Flushes report nothing.
 */
void frag_set_drop_hook(struct frag *f,
                        void (*dropped)(void *ctx, unsigned link,
                                        enum qw_drop why, unsigned nfrags),
                        void *ctx);

/*
 * Feed one fragment received on `link`. ip/len: an IPv4 packet whose
 * header the caller validated (version, IHL, checksum, total length <=
 * len; bytes beyond the total length are ignored), with MF set or a
 * non-zero offset.
 *
 * Returns FRAG_PENDING (kept), FRAG_DONE (*out and *outlen = the whole
 * datagram: the first fragment's header with MF and offset cleared, total
 * length and header checksum fixed; valid until the next frag_* call), or
 * FRAG_DROP with *why set (FRAG_BAD, FRAG_OVERLAP, FRAG_TOO_BIG,
 * FRAG_NO_MEM). An unfragmented packet is returned as FRAG_DONE with *out
 * = ip. `now` is monotonic ns; it also expires this link's old datagrams.
 */
int frag_input(struct frag *f, unsigned link, const uint8_t *ip, size_t len,
               uint64_t now, const uint8_t **out, size_t *outlen,
               enum qw_drop *why);

/*
 * Drop every datagram older than FRAG_TIMEOUT_NS (counted FRAG_TIMEOUT
 * through the hook). Returns how many datagrams expired. Cheap enough for
 * every qw_poll() (a scan of nlinks * FRAG_MAX_DGRAMS slots).
 */
unsigned frag_expire(struct frag *f, uint64_t now);

/* Earliest time frag_expire() has work, UINT64_MAX when nothing pends. */
uint64_t frag_next_deadline(const struct frag *f);

/* Forget every datagram of a link (client detached). Not counted. */
void frag_flush_link(struct frag *f, unsigned link);

/* Bytes of pool a link holds (blocks * FRAG_BLOCK), and its number of
 * datagrams in progress. For stats and tests. */
uint32_t frag_link_used(const struct frag *f, unsigned link);
unsigned frag_link_pending(const struct frag *f, unsigned link);

/* Bytes of the pool in use, all links. */
uint32_t frag_pool_used(const struct frag *f);

/*
 * Refragmentation: cut one IPv4 packet into fragments of at most `mtu`
 * bytes, one per frag_split_next() call. Each fragment carries the
 * original header; fragments after the first carry only the options with
 * the "copied" flag (RFC 791); payloads are multiples of 8 except the
 * last; MF and offsets are set (an input that is itself a fragment keeps
 * its offset base and last MF); header checksums are computed. A packet
 * that already fits is produced once, unchanged.
 *
 * The iterator keeps a pointer to ip: keep it valid and unchanged until
 * done. Plain data, may live on the stack.
 */
struct frag_split {
    const uint8_t *ip;
    uint32_t len;  /* total length of the input packet */
    uint32_t pos;  /* payload bytes already emitted */
    uint16_t hlen; /* input header length */
    uint16_t mtu;
    uint16_t base_off; /* input's own offset, in 8-byte units */
    bool base_mf;      /* input's own MF flag */
    bool whole;        /* fits: emit unchanged once */
    uint8_t ohlen;     /* header length of non-first fragments */
    uint8_t opts[40];  /* copied options, padded to 4 */
};

/*
 * Prepare to split ip (len bytes; its total length field is used). Returns
 * 0, or -QW_EINVAL when the header is malformed, mtu < 68, or the packet is
 * too big with DF set (the caller sends ICMP fragmentation-needed instead).
 * After an error frag_split_next() returns 0.
 */
int frag_split_init(struct frag_split *it, const uint8_t *ip, size_t len,
                    unsigned mtu);

/*
 * Write the next fragment into dst. Returns its length, or 0 when done
 * (or cap < the fragment: cap >= mtu is always enough).
 */
size_t frag_split_next(struct frag_split *it, uint8_t *dst, size_t cap);

#endif /* QW_FRAG_H */
