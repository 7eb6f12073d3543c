/*
 * dns.h: qwall's own DNS client for dsthost rules.
 *
 * A dsthost rule names a host; qwall resolves it itself, through the
 * uplink, from the firewall's uplink address to the upstream DNS servers
 * (/qubes-primary-dns, /qubes-secondary-dns or --ipv4-dns*), and keeps the
 * answer current as its TTL runs out (semantics.md "dsthost"). Rules see a
 * name as a host id (rules_host_ops, core/rules.h): ref() when a compiled
 * rule uses the name, match() on the packet path, unref() when the rule
 * goes away. A name used by many rules or clients is one cache entry,
 * resolved once.
 *
 * Two layers:
 *   - wire: dns_build_query() and dns_parse_response(), pure functions
 *     over bytes (fuzzed: tests/fuzz/fuzz_dns.c);
 *   - client and cache: struct dns, driven by the pipeline (core/fw.c)
 *     through dns_rx() (a UDP reply to one of our ports) and dns_poll()
 *     (timers), talking back through struct dns_env.
 *
 * Bounds (docs/dns.md): DNS_MAX_ADDRS addresses per name (the lowest ones
 * when an answer holds more), DNS_MAX_INFLIGHT queries in flight, a name
 * arena of DNS_NAME_AVG bytes per cache entry, TTLs clamped to
 * [DNS_TTL_MIN, DNS_TTL_MAX] seconds, retry backoff 1 s doubling to
 * DNS_BACKOFF_MAX s.
 *
 * Threading: none; main loop only. Times are monotonic nanoseconds. No
 * allocation: the cache lives in dns_mem_size() bytes given at init.
 */
#ifndef QW_DNS_H
#define QW_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "drop.h"
#include "qwall.h"

struct rules_host_ops; /* core/rules.h */

/* Record types and class the client uses. */
#define DNS_TYPE_A 1
#define DNS_TYPE_CNAME 5
#define DNS_TYPE_AAAA 28
#define DNS_TYPE_OPT 41
#define DNS_CLASS_IN 1
#define DNS_PORT 53

/* Largest host name in text form (RFC 1035: 255 bytes in wire form). */
#define DNS_NAME_MAX 253
/* Addresses kept per name; more in an answer keeps the lowest ones. */
#define DNS_MAX_ADDRS 16
/* CNAME hops followed inside one answer. */
#define DNS_MAX_CNAME 8
/* Answer records examined per reply (the rest is ignored). */
#define DNS_MAX_RRS 64
/* EDNS0 UDP payload size advertised in queries (DNS flag day 2020). */
#define DNS_EDNS_UDP 1232
/* Largest query dns_build_query() writes: 12 + 255 + 4 + 11. */
#define DNS_QUERY_MAX 282
/* TTL clamp, seconds. */
#define DNS_TTL_MIN 30u
#define DNS_TTL_MAX 3600u
/* Retry backoff after a failed resolution: 1, 2, 4, ... capped, seconds. */
#define DNS_BACKOFF_MAX 60u
/* After its TTL, a set is kept this long (s) while refreshes get no
 * answer at all (timeouts, SERVFAIL), so a brief upstream outage neither
 * cuts connections nor turns drop rules into drop-all (RFC 8767 spirit).
 * NXDOMAIN or an answer without addresses ends it at once. */
#define DNS_STALE_S 120u
/* Attempts per resolution: primary (1 s), secondary (2 s), primary (4 s). */
#define DNS_ATTEMPTS 3u
/* Queries in flight at once (each holds one NAT port). */
#define DNS_MAX_INFLIGHT 16u
/* Name arena: average bytes of name text per cache entry. */
#define DNS_NAME_AVG 64u
/* Largest cache (host ids are small ints). */
#define DNS_MAX_NAMES 65536u

/* ---- wire format ---------------------------------------------------- */

/* Result of dns_parse_response(). */
enum dns_status {
    DNS_OK = 0,           /* addresses found (a->n >= 1) */
    DNS_E_MALFORMED = -1, /* not a well-formed response */
    DNS_E_ID = -2,        /* another transaction id */
    DNS_E_QUESTION = -3,  /* answers another question */
    DNS_E_NXDOMAIN = -4,  /* RCODE 3: the name does not exist */
    DNS_E_RCODE = -5,     /* SERVFAIL, REFUSED, ... (a->rcode) */
    DNS_E_NODATA = -6,    /* no address of the asked type */
    DNS_E_TRUNCATED = -7, /* TC set and no address in what arrived */
    DNS_E_CHAIN = -8,     /* CNAME chain longer than DNS_MAX_CNAME */
};

/* What a response said about the question. */
struct dns_answer {
    unsigned n;      /* addresses in a4 or a6 (<= DNS_MAX_ADDRS) */
    uint32_t ttl;    /* seconds: minimum over the CNAME chain and the
                        addresses used; unclamped (RFC 2181 s8: a value
                        with the top bit set counts as 0) */
    uint8_t rcode;   /* RCODE of the header (0..15) */
    bool truncated;  /* TC was set (the addresses are what arrived) */
    bool more;       /* more than DNS_MAX_ADDRS distinct addresses */
    unsigned cnames; /* CNAME hops followed */
    uint32_t a4[DNS_MAX_ADDRS];    /* A: host order, ascending, distinct */
    uint8_t a6[DNS_MAX_ADDRS][16]; /* AAAA: ascending (memcmp), distinct */
};

/*
 * Write a recursive query (RD set) for name (text, case kept, optional
 * trailing dot) and qtype (DNS_TYPE_A or DNS_TYPE_AAAA, class IN) with an
 * EDNS0 OPT record advertising DNS_EDNS_UDP bytes. Returns its length,
 * or 0 if the name is not a valid host name (empty label, label over 63
 * bytes, name over DNS_NAME_MAX, byte outside [A-Za-z0-9-_]) or cap is too
 * small. DNS_QUERY_MAX bytes always suffice.
 */
size_t dns_build_query(uint8_t *buf, size_t cap, uint16_t id, const char *name,
                       uint16_t qtype);

/*
 * Parse the n bytes of m as the response to the query (id, name, qtype).
 * Checks: header (QR, opcode 0), id, exactly one question equal to
 * (name, qtype, IN) ignoring ASCII case, RCODE, then follows the CNAME
 * chain from name inside the answer section (at most DNS_MAX_CNAME hops)
 * and collects the addresses of qtype owned by its end. Compression
 * pointers are followed only backwards, a bounded number of times, and
 * every read is bounds-checked: hostile input never reads outside m.
 * With TC set, records cut off by the truncation are ignored and what
 * arrived is used. Fills *a (also on failure: rcode, truncated) and
 * returns DNS_OK (a->n >= 1) or a negative enum dns_status.
 */
int dns_parse_response(const uint8_t *m, size_t n, uint16_t id,
                       const char *name, uint16_t qtype, struct dns_answer *a);

/* ---- client and cache ----------------------------------------------- */

/* What the client needs from the pipeline. Every callback is required. */
struct dns_env {
    void *ctx;
    /* Uniform 32-bit random numbers (query ids, jitter). */
    uint32_t (*random)(void *ctx);
    /*
     * Send one UDP datagram (p, n bytes) from the uplink address to
     * server:53 from a fresh random source port reserved in the NAT table
     * as owned by the firewall (ct_reserve_self), so the reply is handed to
     * dns_rx() and never forwarded to a client. Returns the port, or 0 if
     * nothing was sent (uplink not configured, no free port, tx full): the
     * attempt then times out like a lost query. Called from dns_poll()
     * only.
     */
    uint16_t (*send)(void *ctx, uint32_t server, const uint8_t *p, size_t n,
                     uint64_t now);
    /* The query on sport to server is over: free the reservation. */
    void (*release)(void *ctx, uint32_t server, uint16_t sport);
    /* What match() answers for host_id changed (new set, a previous set's
     * grace ended, resolved <-> unresolved): re-check connections of the
     * clients whose rules use it (rules_uses_host). */
    void (*changed)(void *ctx, int host_id);
    /* One log line, "dns: what (details)", lower case, no newline. */
    void (*log)(void *ctx, enum qw_log_level level, const char *line);
};

/* Counters of the client (monotonic since init). */
struct dns_stats {
    uint64_t queries;    /* datagrams sent */
    uint64_t timeouts;   /* attempts without an accepted reply */
    uint64_t answers;    /* replies accepted with addresses */
    uint64_t failures;   /* resolutions failed (all attempts, NXDOMAIN..) */
    uint64_t bad;        /* replies dropped as QW_DROP_DNS_BAD */
    uint64_t unexpected; /* replies dropped as QW_DROP_DNS_UNEXPECTED */
    uint64_t changes;    /* changed() calls */
    uint64_t evictions;  /* unreferenced names evicted for a new one */
    unsigned names;      /* cache entries in use */
    unsigned referenced; /* of which used by a rule */
    unsigned inflight;   /* queries in flight now */
};

struct dns; /* opaque; lives in dns_mem_size() bytes */

/*
 * Bytes for a cache of `names` host names (clamped to DNS_MAX_NAMES):
 * a fixed header plus dns_bytes_per_name() per name.
 */
size_t dns_mem_size(unsigned names);

/* Bytes one cached name costs (entry plus its share of the name arena). */
size_t dns_bytes_per_name(void);

/*
 * Make an empty client in d (dns_mem_size(names) bytes, aligned to 8).
 * Copies *env. No servers yet: nothing is sent until dns_set_servers().
 */
void dns_init(struct dns *d, unsigned names, const struct dns_env *env);

/*
 * Set the upstream servers (host order; 0 = none; secondary 0 or equal to
 * primary = primary only). A change aborts queries in flight and
 * re-resolves every referenced name (answers are kept meanwhile), as
 * Qubes reloads its firewall when the upstream DNS changes.
 */
void dns_set_servers(struct dns *d, uint32_t primary, uint32_t secondary);

/*
 * Host-set hook for rules_compile()/rules_match()/rules_release(): ctx is
 * d, the functions are dns_ref(), dns_unref(), dns_match().
 */
struct rules_host_ops dns_host_ops(struct dns *d);

/*
 * Start (or keep) tracking name (a host name; ASCII case and a trailing dot
 * are ignored). Returns its host id (>= 0, stable while referenced), or
 * -QW_EINVAL for an invalid name, -QW_ENOSPC when the cache is full of
 * referenced names or the name arena is full. A new name is resolved at
 * the next dns_poll(). Control path.
 */
int dns_ref(struct dns *d, const char *name);

/* Drop one reference taken by dns_ref(). An unreferenced name stays cached
 * until its TTL runs out or its slot is needed. Bad ids are ignored. */
void dns_unref(struct dns *d, int id);

/*
 * 1 if addr (IPv4, host order) is in id's current answer set or in the
 * previous set during its grace (one TTL after a change), 0 if the name is
 * resolved and addr is in neither, -1 if the name is unresolved (never
 * resolved, NXDOMAIN/no address, or the last answer expired while
 * refreshes failed) or id is not a referenced host. Packet path: no
 * string work, at most 2 * DNS_MAX_ADDRS compares.
 */
int dns_match(const struct dns *d, int id, uint32_t addr);

/*
 * A UDP datagram from src:sport to the uplink address:dport, where dport
 * is a port reserved through env->send(); payload is the DNS message.
 * Accepted only from the server asked, from port 53, to the port used,
 * with the query's id and question; returns QW_DROP_NONE when accepted
 * (the datagram is consumed), QW_DROP_DNS_UNEXPECTED when no query in
 * flight matches (port, server, source port, id), QW_DROP_DNS_BAD when it
 * matches but is malformed or answers another question. A rejected reply
 * does not end the query. May call env->release/changed/log, never send:
 * run dns_poll() soon after (dns_deadline() says when).
 */
enum qw_drop dns_rx(struct dns *d, uint32_t src, uint16_t sport, uint16_t dport,
                    const uint8_t *payload, size_t n, uint64_t now);

/*
 * Run timers: retries (1, 2, 4 s per attempt, primary then secondary),
 * refreshes of referenced names before their TTL runs out (jittered),
 * backoff after failures, end of previous-set grace, expiry. Sends at
 * most DNS_MAX_INFLIGHT queries at once. Returns the next time it wants to
 * run (absolute ns), UINT64_MAX when idle. Calling it early is harmless.
 */
uint64_t dns_poll(struct dns *d, uint64_t now);

/* The deadline the last dns_poll() returned, or 0 if dns_ref(),
 * dns_unref(), dns_rx() or dns_set_servers() made work that is due now.
 * Cheap. */
uint64_t dns_deadline(const struct dns *d);

/* The text of id's name (lower case), NULL if id is not in use. */
const char *dns_name(const struct dns *d, int id);

/* Counters and occupancy. */
void dns_get_stats(const struct dns *d, struct dns_stats *st);

#endif /* QW_DNS_H */
