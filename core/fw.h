/*
 * fw.h: internals of the verdict pipeline, shared by fw*.c only.
 *
 * struct qw is the whole firewall. qw_create() carves it and every table
 * it points to out of the platform's one block (see fw_layout() in fw.c).
 * Nothing here is part of the platform contract (core/qwall.h is).
 *
 * Files:
 *   fw.c       creation, links, counters, logging, the IPv4 pipeline
 *   fw_arp.c   ARP on client links and on the uplink (gateway resolution)
 *   fw_icmp.c  ICMP the firewall generates (errors, echo replies)
 *   fw_nat.c   address/port rewriting with incremental checksums
 *   fw_qdb.c   QubesDB glue: network settings, rule commits, anti-spoof set
 *   fw_dns.c   glue between core/dns.c and the pipeline
 */
#ifndef QW_FW_H
#define QW_FW_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ct.h"
#include "dns.h"
#include "frag.h"
#include "qdb.h"
#include "qwall.h"
#include "rules.h"
#include "wire.h"

#define NS_PER_SEC 1000000000ull

/* MTU of every link (semantics.md "Link layer"). */
#define FW_MTU 1500u

/* Core-owned transmit buffers for generated frames (ARP, ICMP, fragments,
 * DNS queries), reused at every call into the core. 128 covers a batch of
 * 64 frames that each draw an ICMP error plus a 64 KiB datagram cut into
 * 45 fragments. */
#define FW_TX_BUFS 128u
#define FW_TX_BUF_SIZE 1536u

/* Reject token bucket per link: 10 per second, burst 50. Kept as a credit
 * of nanoseconds: one token = 100 ms. */
#define FW_REJECT_TOKEN_NS (NS_PER_SEC / 10)
#define FW_REJECT_BURST_NS (50 * FW_REJECT_TOKEN_NS)

/* Largest ICMP error: RFC 1812 4.3.2.3 (576 bytes of IP). */
#define FW_ICMP_ERR_MAX 576u

/* Gateway ARP: a request every second, 3 tries, then the fallback MAC and
 * a quiet retry every minute (a late answer is still taken). */
#define FW_ARP_RETRY_NS (1 * NS_PER_SEC)
#define FW_ARP_TRIES 3u
#define FW_ARP_SLOW_NS (60 * NS_PER_SEC)

/* Connection expiry sweep: every second, this many slots. */
#define FW_CT_SWEEP_NS (1 * NS_PER_SEC)
#define FW_CT_SWEEP_BUDGET 1024u

/* Log rate limit per source: burst 20 lines, then 5 per second. */
#define FW_LOG_TOKEN_NS (NS_PER_SEC / 5)
#define FW_LOG_BURST_NS (20 * FW_LOG_TOKEN_NS)

/* Anti-spoof address set: /connected-ips plus attached clients. */
#define FW_ADDRSET_MAX 1024u
#define FW_ADDRSET_SLOTS 2048u /* power of two, >= 2 * FW_ADDRSET_MAX */

/* Log sources with their own rate limit (links come after these). */
enum fw_logsrc {
    FW_LOG_CORE = 0,
    FW_LOG_ARP,
    FW_LOG_RULES,
    FW_LOG_QDB,
    FW_LOG_DNS,
    FW_LOG_PKT,
    FW_LOG__COUNT
};

struct fw_logbucket {
    uint64_t credit; /* ns of credit, capped at FW_LOG_BURST_NS */
    uint64_t last;
    uint32_t lost; /* lines suppressed since the last one printed */
};

enum fw_gw_state {
    FW_GW_NONE = 0, /* no gateway address or uplink down */
    FW_GW_PROBING,  /* ARP requests out, fallback MAC in use meanwhile */
    FW_GW_FALLBACK, /* no answer: fe:ff:ff:ff:ff:ff, slow retries */
    FW_GW_RESOLVED, /* answered */
};

struct fw_link {
    bool used;
    bool rules_seen;    /* a commit (or attach-time tree) was applied */
    uint8_t mac[6];     /* the peer's MAC (client) / ours (uplink) */
    uint8_t ethout[12]; /* destination + source MAC of frames sent here */
    uint8_t mymac[6];   /* our MAC on this link */
    /* The connection of the last fast-path packet received here (client:
     * original key, uplink: reply key). Only a hint: checked against the
     * entry's key, CT_F_USED and expiry before use (ct slots live as long
     * as the table; a freed slot is zeroed). */
    struct ct_entry *last;
    uint32_t ip; /* client address, host order (0 for the uplink) */
    char name[32];
    struct rules_set *rules;
    uint64_t reject_credit, reject_last; /* token bucket, see above */
    struct qw_link_stats st;
    uint64_t *ctr; /* QW_DROP__COUNT counters */
};

struct fw_net {
    uint32_t ip, gw, dns1, dns2; /* host order, 0 = unknown */
};

struct qw {
    struct qw_platform plat;
    struct qw_config cfg; /* defaults filled in */
    unsigned nlinks;      /* 1 + max_clients */
    uint64_t now;         /* time of the current call */
    struct qw_out *out;   /* output of the current call, or NULL */

    /* addressing */
    struct fw_net qdbnet; /* from QubesDB */
    struct fw_net net;    /* effective (config overrides QubesDB) */
    bool configured;      /* net.ip and net.gw known */
    struct rules_dns dns_set;
    bool waiting_logged;
    bool synced_once;

    /* uplink */
    bool uplink_up;
    uint8_t gw_mac[6];
    enum fw_gw_state gw_state;
    unsigned gw_tries;
    uint64_t gw_next; /* next ARP request, 0 = none */

    /* links: [0] uplink, [1..max_clients] clients; counters for link i at
     * ctr + i * QW_DROP__COUNT; one extra row for out-of-range links. */
    struct fw_link *links;
    uint64_t *ctr_bad_link;

    /* anti-spoof / isolation set (open addressing, 0 = empty slot) */
    uint32_t *addrset;
    uint32_t *connected; /* /connected-ips as parsed */
    unsigned nconnected;

    /* modules */
    struct ct *ct;
    struct frag *frag;
    struct qdb *qdb;
    struct dns *dns;
    struct rules_host_ops hosts;
    struct rules_set *spare_rules; /* compile target, swapped in */
    struct rules_entry *entries;   /* rules_compile() input */
    unsigned entries_cap, nentries;
    bool entries_overflow;
    uint64_t ct_next_sweep;
    bool ct_miss; /* the fast path found no connection for this frame */

    /* transmit buffers and the reassembly scratch (eth + 64 KiB) */
    uint8_t *tx;
    unsigned tx_used;
    uint8_t *scratch;

    struct fw_logbucket logb[FW_LOG__COUNT];
    uint16_t ip_id;   /* IP id of generated packets */
    uint64_t tx_full; /* frames dropped for lack of out slots/buffers */
};

/* One IPv4 packet being processed (eth header right before ip). */
struct fw_pkt {
    uint8_t *eth;   /* frame start (14 bytes before ip) */
    uint8_t *ip;    /* IPv4 header */
    uint8_t *l4;    /* ip + hlen */
    uint32_t iplen; /* total length */
    uint32_t l4len; /* iplen - hlen */
    uint16_t hlen;  /* IP header length */
    uint16_t link;  /* link received on */
    uint8_t proto;
    uint8_t tcpflags; /* TCP only */
    uint8_t icmp_type, icmp_code;
    bool scratch; /* lives in fw->scratch (reassembled), not in place */
    uint32_t src, dst;
    uint16_t sport, dport; /* ct key convention (ICMP: id in one of them) */
    uint32_t framelen;     /* frame length as received (for dropped()) */
};

/* fw.c */
void fw_log(struct qw *fw, unsigned src, enum qw_log_level lvl, const char *fmt,
            ...) __attribute__((format(printf, 4, 5)));
void fw_drop(struct qw *fw, unsigned link, const uint8_t *frame, uint32_t len,
             enum qw_drop why);
void fw_count(struct qw *fw, unsigned link, enum qw_drop why, uint64_t n);
uint8_t *fw_tx_alloc(struct qw *fw);
bool fw_emit(struct qw *fw, unsigned link, uint8_t *frame, uint32_t len);
void fw_eth_hdr(struct qw *fw, unsigned link, uint8_t *eth);
void fw_set_gw_mac(struct qw *fw, const uint8_t mac[6]);
bool fw_configured(const struct qw *fw);
bool fw_addrset_has(const struct qw *fw, uint32_t ip);
void fw_addrset_rebuild(struct qw *fw);
bool fw_reject_ok(struct qw *fw, unsigned link);
void fw_recheck_link(struct qw *fw, unsigned link);
void fw_net_changed(struct qw *fw);
int fw_parse_ip4(const char *s, size_t n, uint32_t *ip);
size_t fw_fmt_ip4(char *buf, size_t cap, uint32_t ip);

/* fw_arp.c */
void fw_arp_rx(struct qw *fw, unsigned link, uint8_t *frame, uint32_t len);
void fw_arp_gratuitous(struct qw *fw);
void fw_arp_gw_start(struct qw *fw);
void fw_arp_poll(struct qw *fw);

/* fw_icmp.c */
void fw_icmp_error(struct qw *fw, const struct fw_pkt *p, uint8_t type,
                   uint8_t code, uint16_t mtu);
bool fw_icmp_echo_reply(struct qw *fw, struct fw_pkt *p);
bool fw_icmp_is_error(uint8_t type);
bool fw_icmp_is_query(uint8_t type);
bool fw_icmp_is_query_reply(uint8_t type);

/* fw_nat.c */
void fw_nat_out(struct fw_pkt *p, const struct ct_entry *e);
void fw_nat_in(struct fw_pkt *p, const struct ct_entry *e);
void fw_nat_ttl(struct fw_pkt *p);
uint32_t fw_nat_delta(const struct ct_entry *e);
int fw_nat_icmp_inner_key(const struct fw_pkt *p, struct ct_key *k);
void fw_nat_icmp_error(struct fw_pkt *p, const struct ct_entry *e, int dir);
void fw_csum_complete(struct fw_pkt *p);

/* fw_qdb.c */
void fw_qdb_init(struct qw *fw, unsigned max_entries, size_t max_bytes);
void fw_rules_load(struct qw *fw, unsigned link);

/* fw_dns.c */
void fw_dns_init(struct qw *fw);
void fw_dns_servers(struct qw *fw);
bool fw_dns_rx(struct qw *fw, struct fw_pkt *p, const struct ct_entry *e);

/* Fast IPv4 header checksum over hlen bytes (hlen a multiple of 4). */
static inline uint16_t fw_ip_csum(const uint8_t *ip, unsigned hlen)
{
    uint32_t s = 0;

    for (unsigned i = 0; i < hlen; i += 4)
        s += (uint32_t)(ip[i] << 8 | ip[i + 1]) +
             (uint32_t)(ip[i + 2] << 8 | ip[i + 3]);
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    return (uint16_t)~s;
}

/*
 * True if an IPv4 header's checksum verifies. Sums native 32-bit words:
 * the one's complement sum is byte-order independent (RFC 1071 2.B) and
 * the expected result 0xffff is the same in either order.
 */
static inline bool fw_ip_hdr_ok(const uint8_t *ip, unsigned hlen)
{
    uint64_t s = 0;
    uint32_t w, t;

    if (hlen == IP4_MIN_HLEN) {
        /* the usual header, unrolled: five 32-bit words */
        uint32_t a, b, c, d, e;
        __builtin_memcpy(&a, ip, 4);
        __builtin_memcpy(&b, ip + 4, 4);
        __builtin_memcpy(&c, ip + 8, 4);
        __builtin_memcpy(&d, ip + 12, 4);
        __builtin_memcpy(&e, ip + 16, 4);
        s = (uint64_t)a + b + c + d + e;
    } else {
        for (unsigned i = 0; i < hlen; i += 4) {
            __builtin_memcpy(&w, ip + i, 4);
            s += w;
        }
    }
    s = (s & 0xffffffffu) + (s >> 32);
    t = (uint32_t)s + (uint32_t)(s >> 32);
    t = (t & 0xffff) + (t >> 16);
    t = (t & 0xffff) + (t >> 16);
    return t == 0xffff;
}

/*
 * One's complement sum of n bytes in native load order, folded to 16 bits
 * (not inverted): 8 bytes per step. Byte-order independent (RFC 1071 2.B):
 * store its complement with a native 16-bit store. A trailing odd byte is
 * padded with a zero byte after it, as in network order.
 */
static inline uint16_t fw_csum_native(const uint8_t *p, size_t n)
{
    uint64_t s = 0, w;
    uint32_t h;
    uint16_t q = 0;
    size_t i = 0;

    for (; i + 8 <= n; i += 8) {
        __builtin_memcpy(&w, p + i, 8);
        s += (w & 0xffffffffu) + (w >> 32);
    }
    if (i + 4 <= n) {
        __builtin_memcpy(&h, p + i, 4);
        s += h;
        i += 4;
    }
    if (i + 2 <= n) {
        __builtin_memcpy(&q, p + i, 2);
        s += q;
        i += 2;
    }
    if (i < n) {
        uint8_t last[2] = {p[i], 0};
        __builtin_memcpy(&q, last, 2);
        s += q;
    }
    s = (s & 0xffffffffu) + (s >> 32);
    s = (s & 0xffffffffu) + (s >> 32);
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    return (uint16_t)s;
}

/* RFC 1624 eqn. 3 with a summed delta d (sum of ~old + new words). */
__attribute__((always_inline)) static inline uint16_t fw_csum_adjust(uint16_t c,
                                                                     uint32_t d)
{
    uint32_t s = (uint32_t)(uint16_t)~c + d;

    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    return (uint16_t)~s;
}

/*
 * Translate a plain TCP/UDP packet of a connection with its precomputed
 * delta: dir 0 sets the source (addr, port), dir 1 the destination; TTL - 1
 * (its delta is the constant ~w + (w - 0x100) = 0xfeff).
 */
/* Delta of the TTL decrement on the TTL/protocol word, in the native
 * order of a 16-bit load: ~w + (w - 1 on the TTL byte). */
#if defined(QW_WIRE_SWAP) && QW_WIRE_SWAP
#define FW_TTL_DELTA 0xfffeu
#else
#define FW_TTL_DELTA 0xfeffu
#endif

/*
 * Translate a plain TCP/UDP packet of a connection with its precomputed
 * delta (fw_nat_delta(), in native load order: the one's complement sum
 * is byte-order independent, RFC 1071 2.B): dir 0 sets the source
 * (addr, port), dir 1 the destination; TTL - 1.
 */
__attribute__((always_inline)) static inline void
fw_nat_fast(uint8_t *ip, uint8_t *l4, uint8_t proto, uint32_t delta, int dir,
            uint32_t addr, uint16_t port)
{
    uint32_t dip = delta >> 16, dl4 = delta & 0xffff;
    uint8_t *cp = l4 + (proto == IPPROTO_TCP_ ? 16 : 6);
    uint16_t c;

    if (dir) {
        dip = (uint16_t)~dip;
        dl4 = (uint16_t)~dl4;
    }
    ip[8]--;
    __builtin_memcpy(&c, ip + 10, 2);
    c = fw_csum_adjust(c, dip + FW_TTL_DELTA);
    __builtin_memcpy(ip + 10, &c, 2);
    qw_put32(ip + 12 + 4 * dir, addr);
    qw_put16(l4 + 2 * dir, port);
    __builtin_memcpy(&c, cp, 2);
    if (proto == IPPROTO_TCP_ || c != 0) {
        c = fw_csum_adjust(c, dl4);
        if (c == 0 && proto == IPPROTO_UDP_)
            c = 0xffff; /* 0 means "no checksum" in UDP */
        __builtin_memcpy(cp, &c, 2);
    }
}

#endif /* QW_FW_H */
