/*
 * ct.h: connection tracking and source NAT to the uplink address.
 *
 * One table of fixed capacity, carved from memory the caller provides
 * (ct_mem_size() + ct_init()); nothing is allocated afterwards. Every entry
 * is reachable in O(1) from both directions through two hash indexes:
 *
 *   original direction  client:sport -> remote:dport         (e->orig)
 *   reply direction     remote:dport -> nat_addr:nat_port    (e->reply)
 *
 * A packet from a client is translated src := reply.dst, sport :=
 * reply.dport; a packet from the uplink that matches e->reply is translated
 * dst := orig.src, dport := orig.sport.
 *
 * Keys (struct ct_key), host byte order:
 *   TCP/UDP: ports as on the wire.
 *   ICMP queries (echo, timestamp, ...): the request's key is
 *     sport = query id, dport = 0; the answer (echo reply, ...) coming
 *     back is keyed sport = 0, dport = id, i.e. ports mirror as for UDP.
 *   Other IP protocols (GRE, ESP, ...): sport = dport = 0, address-only NAT
 *     keyed on (proto, src, dst).
 *   pad is ignored (need not be zeroed).
 *
 * Times are monotonic nanoseconds (any origin, never 0 in practice). An
 * entry whose timeout has passed is never returned by a lookup: lookups
 * remove it on sight, and ct_expire() sweeps the rest in bounded batches.
 *
 * Threading: none; main loop only. Entry pointers stay valid until the
 * entry is removed (ct_remove, expiry, eviction by ct_create or
 * ct_reserve_self, flush); do not keep them across those calls.
 */
#ifndef QW_CT_H
#define QW_CT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qwall.h"

struct ct_key {
    uint32_t src, dst;     /* IPv4 addresses, host order */
    uint16_t sport, dport; /* see the key conventions above */
    uint8_t proto;         /* IP protocol number */
    uint8_t pad[3];        /* ignored */
};

/* TCP states (Linux conntrack names); other protocols use CT_NONE. */
enum ct_state {
    CT_NONE = 0,
    CT_SYN_SENT,
    CT_SYN_RECV,
    CT_ESTABLISHED,
    CT_FIN_WAIT,
    CT_CLOSE_WAIT,
    CT_LAST_ACK,
    CT_TIME_WAIT,
    CT_CLOSE,
    CT_STATE__COUNT
};

/* ct_entry.flags */
#define CT_F_REPLIED 0x01u   /* a packet was seen in the reply direction */
#define CT_F_FIN_ORIG 0x02u  /* the original side sent the first FIN */
#define CT_F_FIN_REPLY 0x04u /* the reply side sent the first FIN */
#define CT_F_USED 0x80u      /* internal: slot in use */

/* TCP header flags as given to ct_update() */
#define CT_TCP_FIN 0x01u
#define CT_TCP_SYN 0x02u
#define CT_TCP_RST 0x04u
#define CT_TCP_ACK 0x10u

/* ct_entry.link: an entry owned by the firewall itself (DNS client). */
#define CT_LINK_SELF 0xffffu

/* Timeouts in seconds (Linux conntrack defaults). */
#define CT_TO_SYN_SENT 120u
#define CT_TO_SYN_RECV 60u
#define CT_TO_ESTABLISHED (5u * 24 * 3600)
#define CT_TO_FIN_WAIT 120u
#define CT_TO_CLOSE_WAIT 60u
#define CT_TO_LAST_ACK 30u
#define CT_TO_TIME_WAIT 120u
#define CT_TO_CLOSE 10u
#define CT_TO_UDP 30u          /* never replied */
#define CT_TO_UDP_REPLIED 120u /* Linux "udp stream" */
#define CT_TO_ICMP 30u
#define CT_TO_OTHER 600u /* Linux generic timeout */

/* Largest capacity ct_init() accepts. */
#define CT_MAX_CAPACITY (1u << 22)
/* Most client links ct_init_links() accepts (link numbers 0..65534;
 * 0xffff is CT_LINK_SELF). */
#define CT_MAX_LINKS 0xffffu
/* Client links ct_mem_size()/ct_init() provide for: links 0..64, the
 * pipeline's default (uplink + 64 clients). */
#define CT_DEFAULT_LINKS 65u
/* Smallest default per-link cap (the default is capacity / 2, at least
 * this). */
#define CT_LINK_CAP_MIN 64u
/* Default NAT port range for a port that cannot be kept. */
#define CT_PORT_MIN 1024u
#define CT_PORT_MAX 65535u

/*
 * One tracked connection: 64 bytes. The caller may read orig, reply, link,
 * state, flags and expires, and use `user` as it likes (zero at creation);
 * everything else belongs to ct.c.
 */
struct ct_entry {
    struct ct_key orig;    /* client -> remote (as the client sent it) */
    struct ct_key reply;   /* remote -> nat_addr:nat_port */
    uint64_t expires;      /* absolute ns; removed at or after this time */
    uint32_t hnext[2];     /* internal: hash chains (orig, reply) */
    uint32_t lprev, lnext; /* internal: LRU list */
    uint16_t link;         /* client link, or CT_LINK_SELF */
    uint8_t state;         /* enum ct_state */
    uint8_t flags;         /* CT_F_* */
    uint32_t user;         /* free for the caller */
};

struct ct_stats {
    uint32_t capacity;
    uint32_t entries;    /* in use now */
    uint32_t high_water; /* most entries ever in use at once */
    uint64_t created;
    uint64_t expired;         /* removed on timeout (sweep or lookup) */
    uint64_t evicted;         /* removed to make room (table full) */
    uint64_t evicted_replied; /* ... of which had seen a reply */
    uint64_t port_fail;       /* no free NAT port after bounded tries */
    uint64_t chain_fail;      /* refused: hash chain at its bound */
    /* evicted by cause (they sum to `evicted`): */
    uint64_t evicted_link_cap;   /* a link at its cap lost its own LRU */
    uint64_t evicted_table_full; /* table full: a client entry went */
    uint64_t evicted_self;       /* table full: one of the firewall's own */
};

struct ct; /* opaque */

/* Bytes ct_init() needs for `capacity` entries (1..CT_MAX_CAPACITY);
 * 0 if capacity is out of range. Same as
 * ct_mem_size_links(capacity, CT_DEFAULT_LINKS). */
size_t ct_mem_size(unsigned capacity);

/* Bytes ct_init_links() needs for `capacity` entries and client links
 * 0..nlinks-1 (1..CT_MAX_LINKS); 0 if either is out of range. */
size_t ct_mem_size_links(unsigned capacity, unsigned nlinks);

/*
 * Build an empty table in mem (ct_mem_size(capacity) bytes, 8-byte
 * aligned). rnd(rnd_ctx) gives uniform 32-bit random numbers: it seeds the
 * hash secret (so remote peers cannot aim at one hash chain) and picks NAT
 * ports; it is kept and called later. Returns NULL if capacity is out of
 * range or mem/rnd is NULL.
 */
struct ct *ct_init(void *mem, unsigned capacity, uint32_t (*rnd)(void *),
                   void *rnd_ctx);

/*
 * As ct_init() (mem of ct_mem_size_links(capacity, nlinks) bytes) for
 * client links 0..nlinks-1 (the pipeline passes max_clients + 1), each
 * holding at most link_cap entries (0: the default, capacity / 2 but at
 * least CT_LINK_CAP_MIN). ct_init() is ct_init_links(mem, capacity,
 * CT_DEFAULT_LINKS, 0, rnd, rnd_ctx). A link number >= nlinks (other than
 * CT_LINK_SELF) is a caller bug: such links share one quota. Returns
 * NULL if capacity or nlinks is out of range or mem/rnd is NULL.
 */
struct ct *ct_init_links(void *mem, unsigned capacity, unsigned nlinks,
                         unsigned link_cap, uint32_t (*rnd)(void *),
                         void *rnd_ctx);

/*
 * Most entries one client link may hold (0: back to the default). A link
 * at its cap that creates a connection loses its own least recently used
 * entry (one that never saw a reply first), never another link's.
 * Lowering the cap removes nothing: a link above it recycles its own
 * entries until timeouts bring it below. CT_LINK_SELF entries are exempt.
 */
void ct_set_link_cap(struct ct *t, unsigned link_cap);

/* The per-link cap in force. */
unsigned ct_link_cap(const struct ct *t);

/* Entries `link` holds now (CT_LINK_SELF: the firewall's own; a link
 * >= nlinks: all such links together). O(1). */
unsigned ct_link_count(const struct ct *t, uint16_t link);

/*
 * NAT ports tried when the client's port cannot be kept: lo..hi inclusive
 * (default CT_PORT_MIN..CT_PORT_MAX). Returns 0, or -QW_EINVAL if lo > hi
 * or lo == 0. Existing entries are untouched.
 */
int ct_set_port_range(struct ct *t, uint16_t lo, uint16_t hi);

/*
 * Find the entry whose original key (*dir = 0) or reply key (*dir = 1)
 * equals k. Returns NULL if none or if it has expired at `now` (the
 * expired entry is then removed). now = 0 never expires anything (a pure
 * lookup, for tests). dir may be NULL. Does not refresh the entry: call
 * ct_update() for a packet that passes.
 */
struct ct_entry *ct_lookup(struct ct *t, const struct ct_key *k, uint64_t now,
                           int *dir);

/* As ct_lookup() but in one index only (dir 0 original, 1 reply). */
struct ct_entry *ct_lookup_dir(struct ct *t, const struct ct_key *k, int dir,
                               uint64_t now);

/*
 * Track a new connection from `link` with original key *orig, NATed to
 * nat_addr (the uplink address). The NAT port is orig->sport (ICMP: the
 * query id) if that reply key is free, else a random free port from the
 * port range (bounded tries); other protocols keep their addresses only.
 * TCP starts in CT_SYN_SENT (call it for the SYN; a following
 * ct_update() of that SYN changes nothing). If `link` holds its cap of
 * entries, its own least recently used entry is evicted (one that never
 * saw a reply first); else if the table is full the least recently used
 * entry of any link is, one that never saw a reply first, the firewall's
 * own entries only when nothing else is left (see docs/conntrack.md).
 * Returns 0 and *e; -QW_EEXIST with *e = the live entry that already has
 * this original key; -QW_ENOSPC (*e = NULL) when every NAT port is taken (the
 * pipeline counts QW_DROP_NAT_NO_PORT) or a hash chain is at its bound;
 * -QW_EINVAL if link is CT_LINK_SELF (use ct_reserve_self()).
 */
int ct_create(struct ct *t, const struct ct_key *orig, uint32_t nat_addr,
              uint16_t link, uint64_t now, struct ct_entry **e);

/*
 * A packet of e passed in direction dir (0 original, 1 reply) with TCP
 * flags tcp_flags (CT_TCP_*, ignored for other protocols): advance the TCP
 * state (by flags only, no sequence-window checks), mark replied, set the
 * timeout from now and make e the most recently used. Cheap: no hashing,
 * and no list writes when e is already the most recent.
 */
void ct_update(struct ct *t, struct ct_entry *e, int dir, uint8_t tcp_flags,
               uint64_t now);

/* Remove e (must be a live entry of t). */
void ct_remove(struct ct *t, struct ct_entry *e);

/*
 * Remove expired entries, looking at no more than `budget` slots from
 * where the previous call stopped (a clock hand over the table). Returns
 * the number removed. Calling it with budget B every P seconds sweeps the
 * table every capacity/B * P seconds.
 */
unsigned ct_expire(struct ct *t, uint64_t now, unsigned budget);

/*
 * Remove every entry of `link` for which keep(ctx, e) returns false (after
 * a client's rules changed). keep must not modify the table. O(entries
 * of the link) (it walks the link's own lists): control path. Returns the
 * number removed.
 */
unsigned ct_recheck_link(struct ct *t, uint16_t link,
                         bool (*keep)(void *ctx, const struct ct_entry *e),
                         void *ctx);

/* Remove every entry of `link` (client detached); O(entries of the
 * link). Returns the number. */
unsigned ct_flush_link(struct ct *t, uint16_t link);

/* Remove every entry (uplink address changed). Keeps counters and secret. */
void ct_flush(struct ct *t);

/*
 * Reserve a random free local port for a connection the firewall itself
 * makes (DNS client): proto (UDP or TCP) from local_addr:port to
 * remote:rport. Creates an entry with link CT_LINK_SELF and no
 * translation (orig = local -> remote, reply = remote -> local). Returns 0
 * and *port; -QW_ENOSPC if no free port was found in bounded tries;
 * -QW_EINVAL for another proto.
 */
int ct_reserve_self(struct ct *t, uint8_t proto, uint32_t local_addr,
                    uint32_t remote, uint16_t rport, uint64_t now,
                    uint16_t *port);

/* Drop a reservation made by ct_reserve_self(); no-op if it is gone. */
void ct_release_self(struct ct *t, uint8_t proto, uint32_t local_addr,
                     uint32_t remote, uint16_t rport, uint16_t port);

/* Entries in use. */
unsigned ct_count(const struct ct *t);

/* Counters (valid until the next call that changes t). */
const struct ct_stats *ct_get_stats(const struct ct *t);

/* Timeout in seconds that e gets on its next ct_update() in its state. */
uint32_t ct_timeout(const struct ct_entry *e);

/*
 * Is e a TCP connection that is over: TIME_WAIT, or CLOSE (after a RST)?
 * Linux conntrack treats a SYN from the original side on such an entry as
 * a new connection (it deletes the entry and looks the packet up again),
 * so the pipeline should ct_remove() it and evaluate the client's rules
 * anew. SYNs in FIN_WAIT, CLOSE_WAIT and LAST_ACK are not new connections
 * in Linux (they are let through without a state change): false there.
 */
bool ct_tcp_closing(const struct ct_entry *e);

/*
 * Does this packet start a new connection on the tuple of e: a bare SYN
 * (no ACK, RST, FIN) in the original direction (dir 0) while
 * ct_tcp_closing(e)? Then the pipeline removes e and handles the packet as
 * a new connection (rules, ct_create()).
 */
bool ct_tcp_reopens(const struct ct_entry *e, int dir, uint8_t tcp_flags);

/*
 * Self-check every invariant (counts, both indexes, LRU lists, per-link
 * lists and counts, free list, chain bounds). O(capacity): tests and fuzzing
 * only. Returns 0, or a negative number naming the first broken invariant.
 */
int ct_check(const struct ct *t);

#endif /* QW_CT_H */
