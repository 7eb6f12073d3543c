/*
 * fw.c: the verdict pipeline of the portable core (contract in qwall.h,
 * behaviour in docs semantics.md, internals in fw.h).
 *
 * One received frame goes through:
 *   link checks -> Ethernet II -> ARP (fw_arp.c) | IPv4 validation ->
 *   (fragments: frag.c reassembly) -> L4 header checks -> partial checksum
 *   completion -> per direction:
 *     client: DHCP, anti-spoof, broadcast, to-firewall, isolation, TTL,
 *             ICMP errors quoting a connection, ct hit (SNAT) or new flow
 *             (plain SYN / ICMP query only) judged by the client's rules;
 *     uplink: anti-spoof, ICMP errors quoting a connection, ct hit (DNAT,
 *             or the firewall's own DNS client), ping of our address.
 *   Forwarding decrements TTL, rewrites the Ethernet header and either
 *   hands the received buffer back (in place) or refragments into core
 *   buffers.
 *
 * The established path does no hashing beyond ct's, no string work and
 * touches only the headers: IPv4 checksum verification (20 bytes), the ct
 * lookup, a handful of incremental checksum updates (RFC 1624).
 *
 * Limitations:
 * - IPv6 is dropped and counted (semantics.md: until IPv6 is supported).
 * - At most FW_TX_BUFS generated frames (ICMP, ARP, fragments, DNS) per
 *   call into the core; more are dropped as tx_queue_full.
 * - An ICMP error quoting a non-first fragment cannot be matched to a
 *   connection (no ports) and is dropped as icmp_bad_header.
 * - Time-exceeded and fragmentation-needed share each link's reject token
 *   bucket with rule rejects.
 */
#include "fw.h"

#include "fmt.h"
#include "wire.h"

static const uint8_t mac_fe[6] = QW_MAC_FE;
static const uint8_t mac_bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

/* ---- memory layout -------------------------------------------------- */

struct fw_layout {
    size_t links, ctr, addrset, connected, rules, rules_each, entries, ct, frag,
        qdb, dns, tx, scratch, total;
    size_t qdb_bytes;
};

static size_t align16(size_t n)
{
    return (n + 15) & ~(size_t)15;
}

static int fw_defaults(const struct qw_config *in, struct qw_config *c)
{
    *c = *in;
    if (c->nat_table_size == 0)
        c->nat_table_size = 5000;
    if (c->max_clients == 0)
        c->max_clients = 64;
    if (c->max_rules == 0)
        c->max_rules = 256;
    if (c->frag_link_bytes == 0)
        c->frag_link_bytes = 256 * 1024;
    if (c->dns_cache_names == 0)
        c->dns_cache_names = 256;
    if (c->qdb_max_entries == 0)
        c->qdb_max_entries = 4096;
    if (c->max_clients > 4096 || c->max_rules > RULES_MAX ||
        c->nat_table_size > CT_MAX_CAPACITY ||
        c->dns_cache_names > DNS_MAX_NAMES || c->qdb_max_entries > (1u << 20) ||
        (unsigned)c->log_level > QW_LOG_DEBUG)
        return -QW_EINVAL;
    return 0;
}

/* Offsets of every table from the start of the block. */
static void fw_layout(const struct qw_config *c, struct fw_layout *l)
{
    unsigned nlinks = c->max_clients + 1;
    size_t off = align16(sizeof(struct qw));

    l->links = off;
    off += align16(nlinks * sizeof(struct fw_link));
    l->ctr = off;
    off += align16((size_t)(nlinks + 1) * QW_DROP__COUNT * sizeof(uint64_t));
    l->addrset = off;
    off += align16(FW_ADDRSET_SLOTS * sizeof(uint32_t));
    l->connected = off;
    off += align16(FW_ADDRSET_MAX * sizeof(uint32_t));
    l->rules_each = align16(rules_mem_size(c->max_rules));
    l->rules = off;
    off += l->rules_each * (c->max_clients + 1); /* + one spare */
    l->entries = off;
    off += align16((c->max_rules + 16) * sizeof(struct rules_entry));
    l->ct = off;
    off += align16(ct_mem_size_links(c->nat_table_size, nlinks));
    l->frag = off;
    off += align16(frag_pool_mem_size(nlinks, FRAG_DEFAULT_POOL_BYTES,
                                      c->frag_link_bytes));
    /* Paths and values: rules keys average well under 96 bytes. */
    l->qdb_bytes = (size_t)c->qdb_max_entries * 96;
    l->qdb = off;
    off += align16(qdb_mem_size(c->qdb_max_entries, l->qdb_bytes));
    l->dns = off;
    off += align16(dns_mem_size(c->dns_cache_names));
    l->tx = off;
    off += (size_t)FW_TX_BUFS * FW_TX_BUF_SIZE;
    l->scratch = off;
    off += align16(ETH_HLEN + IP4_MAX_LEN + 2);
    l->total = off;
}

size_t qw_mem_size(const struct qw_config *cfg)
{
    struct qw_config c;
    struct fw_layout l;

    if (cfg == NULL || fw_defaults(cfg, &c) < 0)
        return 0;
    fw_layout(&c, &l);
    return l.total;
}

void qw_mem_info(const struct qw_config *cfg, struct qw_mem_info *mi)
{
    struct qw_config c, c2;
    struct fw_layout l, l2;

    __builtin_memset(mi, 0, sizeof *mi);
    if (cfg == NULL || fw_defaults(cfg, &c) < 0)
        return;
    fw_layout(&c, &l);
    mi->total = l.total;
    mi->ct = l.frag - l.ct;
    mi->rules = l.entries - l.rules;
    mi->frag = l.qdb - l.frag;
    mi->qdb = l.dns - l.qdb;
    mi->dns = l.tx - l.dns;
    mi->tx = l.total - l.tx;
    /* Marginal costs by difference: one more connection / client. */
    c2 = c;
    c2.nat_table_size = c.nat_table_size * 2;
    fw_layout(&c2, &l2);
    mi->per_connection = (l2.total - l.total) / c.nat_table_size;
    c2 = c;
    c2.max_clients = c.max_clients * 2;
    fw_layout(&c2, &l2);
    mi->per_client = (l2.total - l.total) / c.max_clients;
    mi->fixed = l.total - mi->per_connection * c.nat_table_size -
                mi->per_client * c.max_clients;
}

/* ---- logging --------------------------------------------------------- */

void fw_log(struct qw *fw, unsigned src, enum qw_log_level lvl, const char *fmt,
            ...)
{
    struct fw_logbucket *b = &fw->logb[src < FW_LOG__COUNT ? src : 0];
    char line[320];
    size_t n;
    va_list ap;

    if (lvl > fw->cfg.log_level || fw->plat.log == NULL)
        return;
    /* Per-source token bucket: a chatty peer cannot flood the console. */
    b->credit += fw->now - b->last;
    if (fw->now < b->last || b->credit > FW_LOG_BURST_NS)
        b->credit = FW_LOG_BURST_NS;
    b->last = fw->now;
    if (b->credit < FW_LOG_TOKEN_NS) {
        b->lost++;
        return;
    }
    b->credit -= FW_LOG_TOKEN_NS;
    va_start(ap, fmt);
    n = qw_vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (b->lost != 0 && n < sizeof line)
        qw_snprintf(line + n, sizeof line - n, " (%u lines suppressed)",
                    (unsigned)b->lost);
    b->lost = 0;
    fw->plat.log(fw->plat.ctx, lvl, line);
}

size_t fw_fmt_ip4(char *buf, size_t cap, uint32_t ip)
{
    return qw_snprintf(buf, cap, "%u.%u.%u.%u", ip >> 24, (ip >> 16) & 255,
                       (ip >> 8) & 255, ip & 255);
}

/* Dotted quad, exactly n bytes (no NUL needed). 0 or -QW_EINVAL. */
int fw_parse_ip4(const char *s, size_t n, uint32_t *ip)
{
    uint32_t v = 0, part = 0;
    unsigned dots = 0, digits = 0;

    for (size_t i = 0; i < n; i++) {
        if (s[i] >= '0' && s[i] <= '9') {
            if (digits == 3 || (digits >= 1 && part == 0))
                return -QW_EINVAL; /* too long or leading zero */
            part = part * 10 + (uint32_t)(s[i] - '0');
            digits++;
        } else if (s[i] == '.' && digits > 0 && dots < 3) {
            if (part > 255)
                return -QW_EINVAL;
            v = v << 8 | part;
            part = 0;
            digits = 0;
            dots++;
        } else {
            return -QW_EINVAL;
        }
    }
    if (dots != 3 || digits == 0 || part > 255)
        return -QW_EINVAL;
    *ip = v << 8 | part;
    return 0;
}

/* ---- counters, drops, output ---------------------------------------- */

static uint64_t *fw_ctr_row(struct qw *fw, unsigned link)
{
    return link < fw->nlinks ? fw->links[link].ctr : fw->ctr_bad_link;
}

void fw_count(struct qw *fw, unsigned link, enum qw_drop why, uint64_t n)
{
    fw_ctr_row(fw, link)[why] += n;
    if (link < fw->nlinks && why != QW_DROP_REJECT_LIMIT)
        fw->links[link].st.drops += n;
}

void fw_drop(struct qw *fw, unsigned link, const uint8_t *frame, uint32_t len,
             enum qw_drop why)
{
    fw_count(fw, link, why, 1);
    /* per packet: debug only, and rate-limited like every source */
    if (fw->cfg.log_level >= QW_LOG_DEBUG)
        fw_log(fw, FW_LOG_PKT, QW_LOG_DEBUG,
               "fw: drop on link %u: %s (%u bytes)", link, qw_drop_name(why),
               (unsigned)len);
    if (fw->plat.dropped != NULL)
        fw->plat.dropped(fw->plat.ctx, link, frame, len, why);
}

/* A core transmit buffer for this call, or NULL (counted by the caller). */
uint8_t *fw_tx_alloc(struct qw *fw)
{
    if (fw->tx_used >= FW_TX_BUFS)
        return NULL;
    return fw->tx + (size_t)fw->tx_used++ * FW_TX_BUF_SIZE;
}

/* Append a frame to the current output. False (counted) when full. */
bool fw_emit(struct qw *fw, unsigned link, uint8_t *frame, uint32_t len)
{
    struct qw_out *out = fw->out;
    struct qw_frame *f;

    if (out == NULL || out->n >= out->cap) {
        fw->tx_full++;
        fw_drop(fw, link, frame, len, QW_DROP_TX_FULL);
        return false;
    }
    f = &out->frames[out->n++];
    f->data = frame;
    f->len = len;
    f->link = (uint16_t)link;
    f->flags = 0;
    fw->links[link].st.tx_frames++;
    fw->links[link].st.tx_bytes += len;
    return true;
}

/* Ethernet header for a frame leaving on link (type IPv4). */
void fw_eth_hdr(struct qw *fw, unsigned link, uint8_t *eth)
{
    __builtin_memcpy(eth, fw->links[link].ethout, 12);
    eth[12] = 0x08;
    eth[13] = 0x00;
}

/* The next hop on the uplink (learnt by ARP, or the fallback). */
void fw_set_gw_mac(struct qw *fw, const uint8_t mac[6])
{
    __builtin_memmove(fw->gw_mac, mac, 6);
    __builtin_memcpy(fw->links[0].ethout, fw->gw_mac, 6);
    __builtin_memcpy(fw->links[0].ethout + 6, fw->links[0].mac, 6);
}

bool fw_configured(const struct qw *fw)
{
    return fw->configured;
}

bool qw_configured(const struct qw *fw)
{
    return fw_configured(fw);
}

/* Reject budget of a link: 10/s, burst 50 (semantics.md "Verdicts"). */
bool fw_reject_ok(struct qw *fw, unsigned link)
{
    struct fw_link *l = &fw->links[link];

    if (fw->now >= l->reject_last)
        l->reject_credit += fw->now - l->reject_last;
    if (l->reject_credit > FW_REJECT_BURST_NS)
        l->reject_credit = FW_REJECT_BURST_NS;
    l->reject_last = fw->now;
    if (l->reject_credit < FW_REJECT_TOKEN_NS)
        return false;
    l->reject_credit -= FW_REJECT_TOKEN_NS;
    return true;
}

/* ---- anti-spoof / isolation address set ------------------------------ */

static unsigned addr_hash(uint32_t ip)
{
    return (ip * 0x9e3779b1u) >> (32 - 11); /* 2048 slots */
}

bool fw_addrset_has(const struct qw *fw, uint32_t ip)
{
    unsigned i = addr_hash(ip);

    for (;;) {
        uint32_t v = fw->addrset[i];
        if (v == ip)
            return ip != 0;
        if (v == 0)
            return false;
        i = (i + 1) & (FW_ADDRSET_SLOTS - 1);
    }
}

static bool addrset_add(struct qw *fw, uint32_t ip, unsigned *n)
{
    unsigned i = addr_hash(ip);

    if (ip == 0)
        return true;
    while (fw->addrset[i] != 0) {
        if (fw->addrset[i] == ip)
            return true;
        i = (i + 1) & (FW_ADDRSET_SLOTS - 1);
    }
    if (*n >= FW_ADDRSET_MAX)
        return false;
    fw->addrset[i] = ip;
    (*n)++;
    return true;
}

static bool keep_not_internal(void *ctx, const struct ct_entry *e)
{
    return !fw_addrset_has(ctx, e->orig.dst);
}

/* Attached clients first (they must always be in), then /connected-ips.
 * Connections to an address that has become internal are closed, so a
 * reply-direction hit never has an internal source: the fast path relies
 * on it (the anti-spoof check of uplink packets is implied). */
void fw_addrset_rebuild(struct qw *fw)
{
    unsigned n = 0;
    bool ok = true;

    __builtin_memset(fw->addrset, 0, FW_ADDRSET_SLOTS * sizeof(uint32_t));
    for (unsigned i = 1; i < fw->nlinks; i++)
        if (fw->links[i].used)
            ok &= addrset_add(fw, fw->links[i].ip, &n);
    for (unsigned i = 0; i < fw->nconnected; i++)
        ok &= addrset_add(fw, fw->connected[i], &n);
    if (!ok)
        fw_log(fw, FW_LOG_QDB, QW_LOG_WARN,
               "fw: anti-spoof set full (%u addresses), some ignored",
               FW_ADDRSET_MAX);
    if (fw->ct != NULL && ct_count(fw->ct) != 0)
        for (unsigned i = 1; i < fw->nlinks; i++)
            if (fw->links[i].used)
                ct_recheck_link(fw->ct, (uint16_t)i, keep_not_internal, fw);
}

/* ---- creation --------------------------------------------------------- */

static void frag_dropped(void *ctx, unsigned link, enum qw_drop why,
                         unsigned nfrags)
{
    fw_count(ctx, link, why, nfrags);
}

struct qw *qw_create(void *mem, size_t size, const struct qw_config *cfg,
                     const struct qw_platform *plat)
{
    struct qw_config c;
    struct fw_layout l;
    struct qw *fw = mem;
    uint8_t *base = mem;

    if (mem == NULL || cfg == NULL || plat == NULL || plat->random == NULL ||
        ((uintptr_t)mem & 15) != 0 || fw_defaults(cfg, &c) < 0)
        return NULL;
    fw_layout(&c, &l);
    if (size < l.total)
        return NULL;
    /* One-time clear of the bookkeeping; big tables are set up by their
     * own init functions. */
    __builtin_memset(base, 0, l.tx);
    fw->plat = *plat;
    fw->cfg = c;
    fw->nlinks = c.max_clients + 1;
    fw->links = (struct fw_link *)(base + l.links);
    for (unsigned i = 0; i < fw->nlinks; i++) {
        struct fw_link *k = &fw->links[i];
        k->ctr = (uint64_t *)(base + l.ctr) + (size_t)i * QW_DROP__COUNT;
        if (i > 0) {
            k->rules =
                (struct rules_set *)(base + l.rules + (i - 1) * l.rules_each);
            rules_init(k->rules, c.max_rules);
        }
    }
    fw->ctr_bad_link =
        (uint64_t *)(base + l.ctr) + (size_t)fw->nlinks * QW_DROP__COUNT;
    fw->addrset = (uint32_t *)(base + l.addrset);
    fw->connected = (uint32_t *)(base + l.connected);
    fw->spare_rules =
        (struct rules_set *)(base + l.rules + c.max_clients * l.rules_each);
    rules_init(fw->spare_rules, c.max_rules);
    fw->entries = (struct rules_entry *)(base + l.entries);
    fw->entries_cap = c.max_rules + 16;
    /* per-client cap: the default (half the table), so one client cannot
     * evict everybody else's connections */
    fw->ct = ct_init_links(base + l.ct, c.nat_table_size, fw->nlinks, 0,
                           plat->random, plat->ctx);
    if (fw->ct == NULL)
        return NULL;
    fw->frag = (struct frag *)(base + l.frag);
    frag_pool_init(fw->frag, fw->nlinks, FRAG_DEFAULT_POOL_BYTES,
                   c.frag_link_bytes);
    frag_set_drop_hook(fw->frag, frag_dropped, fw);
    fw->qdb = (struct qdb *)(base + l.qdb);
    fw_qdb_init(fw, c.qdb_max_entries, l.qdb_bytes);
    fw->dns = (struct dns *)(base + l.dns);
    fw_dns_init(fw);
    fw->tx = base + l.tx;
    fw->scratch = base + l.scratch;
    fw_set_gw_mac(fw, mac_fe);
    fw_net_changed(fw); /* applies the --ipv4* overrides, if any */
    fw_log(fw, FW_LOG_CORE, QW_LOG_INFO,
           "fw: started (%u clients, %u connections, %u rules per client, "
           "%zu KiB)",
           (unsigned)c.max_clients, (unsigned)c.nat_table_size,
           (unsigned)c.max_rules, l.total / 1024);
    return fw;
}

/* Every entry point: the time, the output, fresh transmit buffers. */
static void fw_enter(struct qw *fw, uint64_t now, struct qw_out *out)
{
    fw->now = now;
    fw->out = out;
    fw->tx_used = 0;
}

static void fw_leave(struct qw *fw)
{
    fw->out = NULL;
}

/* ---- IPv4 pipeline ----------------------------------------------------- */

static bool is_unicast(uint32_t a)
{
    /* not 0/8, not 127/8, not multicast/class E/broadcast */
    return (a >> 24) != 0 && (a >> 24) != 127 && a < 0xe0000000u;
}

static void pkt_drop(struct qw *fw, const struct fw_pkt *p, enum qw_drop why)
{
    if (p->scratch)
        fw_drop(fw, p->link, p->eth, ETH_HLEN + p->iplen, why);
    else
        fw_drop(fw, p->link, p->eth, p->framelen, why);
}

/*
 * A drop the sender hears about: ICMP destination unreachable `code`,
 * rate-limited per link. Rule drops are silent with drop_silently.
 */
static void pkt_reject(struct qw *fw, const struct fw_pkt *p, enum qw_drop why,
                       uint8_t code)
{
    pkt_drop(fw, p, why);
    if (why == QW_DROP_RULE && fw->cfg.drop_silently)
        return;
    if (!fw_reject_ok(fw, p->link)) {
        fw_count(fw, p->link, QW_DROP_REJECT_LIMIT, 1);
        return;
    }
    fw_icmp_error(fw, p, ICMP_DEST_UNREACH, code, 0);
}

/* TTL 1 or 0: would leave with TTL 0 (RFC 1812 5.3.1). */
static bool pkt_ttl_expired(struct qw *fw, const struct fw_pkt *p)
{
    if (p->ip[8] > 1)
        return false;
    pkt_drop(fw, p, QW_DROP_TTL);
    if (!fw_reject_ok(fw, p->link))
        fw_count(fw, p->link, QW_DROP_REJECT_LIMIT, 1);
    else
        fw_icmp_error(fw, p, ICMP_TIME_EXCEEDED, 0, 0);
    return true;
}

/* Larger than the egress MTU with DF: fragmentation needed (RFC 1191). */
static bool pkt_too_big(struct qw *fw, const struct fw_pkt *p)
{
    if (p->iplen <= FW_MTU || !(qw_get16(p->ip + 6) & IP4_FLAG_DF))
        return false;
    pkt_drop(fw, p, QW_DROP_DF_TOO_BIG);
    if (!fw_reject_ok(fw, p->link))
        fw_count(fw, p->link, QW_DROP_REJECT_LIMIT, 1);
    else
        fw_icmp_error(fw, p, ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, FW_MTU);
    return true;
}

/*
 * Send the (translated) packet on link: in place when it is the received
 * buffer and fits, else copied or refragmented into core buffers.
 */
static void pkt_send(struct qw *fw, struct fw_pkt *p, unsigned link)
{
    struct frag_split it;
    uint8_t *buf;
    size_t n;

    if (p->iplen <= FW_MTU && !p->scratch) {
        fw_eth_hdr(fw, link, p->eth);
        fw_emit(fw, link, p->eth, ETH_HLEN + p->iplen);
        return;
    }
    if (p->iplen <= FW_MTU) {
        buf = fw_tx_alloc(fw);
        if (buf == NULL) {
            pkt_drop(fw, p, QW_DROP_TX_FULL);
            return;
        }
        __builtin_memcpy(buf + ETH_HLEN, p->ip, p->iplen);
        fw_eth_hdr(fw, link, buf);
        fw_emit(fw, link, buf, ETH_HLEN + p->iplen);
        return;
    }
    if (frag_split_init(&it, p->ip, p->iplen, FW_MTU) < 0) {
        pkt_drop(fw, p, QW_DROP_DF_TOO_BIG);
        return;
    }
    for (;;) {
        buf = fw_tx_alloc(fw);
        if (buf == NULL) {
            pkt_drop(fw, p, QW_DROP_TX_FULL);
            return;
        }
        n = frag_split_next(&it, buf + ETH_HLEN, FW_TX_BUF_SIZE - ETH_HLEN);
        if (n == 0) {
            fw->tx_used--; /* give the unused buffer back */
            return;
        }
        fw_eth_hdr(fw, link, buf);
        if (!fw_emit(fw, link, buf, ETH_HLEN + (uint32_t)n))
            return;
    }
}

static void pkt_key(const struct fw_pkt *p, struct ct_key *k)
{
    k->src = p->src;
    k->dst = p->dst;
    k->sport = p->sport;
    k->dport = p->dport;
    k->proto = p->proto;
}

/* Cut a client's ICMP error to 576 bytes (RFC 1812 4.3.2.3), as our own.
 * The ICMP checksum is recomputed after translation. */
static void icmp_error_trim(struct fw_pkt *p)
{
    uint16_t old = qw_get16(p->ip + 2);

    p->iplen = FW_ICMP_ERR_MAX;
    p->l4len = p->iplen - p->hlen;
    qw_put16(p->ip + 2, (uint16_t)p->iplen);
    qw_put16(p->ip + 10,
             qw_csum_update16(qw_get16(p->ip + 10), old, (uint16_t)p->iplen));
}

/*
 * An ICMP error quoting a tracked connection: translate it like the
 * connection (outer and quoted header) and forward it; anything else is
 * dropped. dir 0: from a client, 1: from the uplink.
 */
static void pkt_icmp_error(struct qw *fw, struct fw_pkt *p, int dir)
{
    struct ct_key k;
    struct ct_entry *e;
    unsigned to;

    if (fw_nat_icmp_inner_key(p, &k) < 0) {
        pkt_drop(fw, p, QW_DROP_ICMP_BAD);
        return;
    }
    if (qw_csum_fold(qw_csum_add(0, p->l4, p->l4len)) != 0) {
        pkt_drop(fw, p, QW_DROP_L4_CSUM);
        return;
    }
    e = ct_lookup_dir(fw->ct, &k, dir, fw->now);
    /* from a client, the error is about a packet the remote end sent: it
     * may only go back to that remote end (else it would carry anything
     * to any host past the rules; Linux: outer daddr mismatch) */
    if (e == NULL ||
        (dir == 0 && (e->link != p->link || p->dst != e->orig.dst))) {
        pkt_drop(fw, p, QW_DROP_ICMP_ERR_UNTRACKED);
        return;
    }
    if (e->link == CT_LINK_SELF) {
        /* about a query of our own DNS client: it retries on timeout */
        pkt_drop(fw, p, QW_DROP_TO_FIREWALL);
        return;
    }
    if (pkt_ttl_expired(fw, p) || pkt_too_big(fw, p))
        return;
    to = dir == 0 ? QW_LINK_UPLINK : e->link;
    if (to == QW_LINK_UPLINK && !fw->uplink_up) {
        pkt_drop(fw, p, QW_DROP_NO_LINK);
        return;
    }
    if (dir == 0 && p->iplen > FW_ICMP_ERR_MAX)
        icmp_error_trim(p); /* a quote is a quote, not a data channel */
    fw_nat_icmp_error(p, e, dir);
    fw_nat_ttl(p);
    pkt_send(fw, p, to);
}

/* Translate p for e in direction dir, TTL - 1: TCP/UDP with the deltas
 * precomputed at creation, others field by field. */
static void pkt_nat(struct fw_pkt *p, const struct ct_entry *e, int dir)
{
    if (p->proto == IPPROTO_TCP_ || p->proto == IPPROTO_UDP_) {
        if (dir == 0)
            fw_nat_fast(p->ip, p->l4, p->proto, e->user, 0, e->reply.dst,
                        e->reply.dport);
        else
            fw_nat_fast(p->ip, p->l4, p->proto, e->user, 1, e->orig.src,
                        e->orig.sport);
    } else if (dir == 0) {
        fw_nat_out(p, e);
    } else {
        fw_nat_in(p, e);
    }
}

/* Client -> the firewall's own address. */
static void client_to_fw(struct qw *fw, struct fw_pkt *p)
{
    if (p->proto == IPPROTO_ICMP_ && p->icmp_type == ICMP_ECHO) {
        if (fw_icmp_echo_reply(fw, p))
            pkt_send(fw, p, p->link);
        return;
    }
    pkt_reject(fw, p, QW_DROP_TO_FIREWALL, ICMP_HOST_PROHIBITED);
}

/*
 * ICMP entries keep in ct_entry.user the type that created them (low byte,
 * for re-checks) and one bit per query type seen on them (next byte): the
 * ct key has no type, so each type is judged by the rules once, and only
 * answers to a type seen pass back.
 */
static uint32_t icmp_query_bit(uint8_t type)
{
    switch (type) {
    case ICMP_ECHO:
        return 1;
    case ICMP_TIMESTAMP:
        return 2;
    case ICMP_INFO_REQUEST:
        return 4;
    case ICMP_ADDR_MASK:
        return 8;
    default:
        return 0;
    }
}

/* The query bit an answer type belongs to (0 for anything else). */
static uint32_t icmp_answer_bit(uint8_t type)
{
    switch (type) {
    case ICMP_ECHO_REPLY:
        return 1;
    case ICMP_TIMESTAMP_REPLY:
        return 2;
    case ICMP_INFO_REPLY:
        return 4;
    case ICMP_ADDR_MASK_REPLY:
        return 8;
    default:
        return 0;
    }
}

/* A new connection from a client: only a plain SYN or an ICMP query may
 * start one; the client's rules decide. */
static void client_new(struct qw *fw, struct fw_pkt *p)
{
    struct fw_link *l = &fw->links[p->link];
    struct rules_flow f;
    struct ct_key k;
    struct ct_entry *e;
    int rc;

    if (p->proto == IPPROTO_TCP_ &&
        (p->tcpflags & (CT_TCP_SYN | CT_TCP_ACK | CT_TCP_RST | CT_TCP_FIN)) !=
            CT_TCP_SYN) {
        pkt_drop(fw, p, QW_DROP_TCP_NOT_SYN);
        return;
    }
    if (p->proto == IPPROTO_ICMP_ && !fw_icmp_is_query(p->icmp_type)) {
        pkt_drop(fw, p, QW_DROP_ICMP_TYPE);
        return;
    }
    if (!l->rules_seen) {
        pkt_drop(fw, p, QW_DROP_RULE_NO_RULES);
        return;
    }
    f.dst = p->dst;
    f.dport = p->dport;
    f.proto = p->proto;
    f.icmp_type = p->icmp_type;
    if (rules_match(l->rules, &f, &fw->dns_set, &fw->hosts, NULL) !=
        RULES_ACCEPT) {
        pkt_reject(fw, p, QW_DROP_RULE, ICMP_ADMIN_PROHIBITED);
        return;
    }
    if (!fw->uplink_up) {
        pkt_drop(fw, p, QW_DROP_NO_LINK);
        return;
    }
    if (pkt_too_big(fw, p))
        return;
    pkt_key(p, &k);
    rc = ct_create(fw->ct, &k, fw->net.ip, p->link, fw->now, &e);
    if (rc == -QW_ENOSPC) {
        pkt_drop(fw, p, QW_DROP_NAT_NO_PORT);
        return;
    }
    if (rc < 0 && rc != -QW_EEXIST) {
        pkt_drop(fw, p, QW_DROP_NAT_TABLE_FULL);
        return;
    }
    /* ICMP: the query type, for re-checks; TCP/UDP: the checksum
     * deltas of the translation, for the fast path */
    e->user = p->proto == IPPROTO_ICMP_
                  ? p->icmp_type | icmp_query_bit(p->icmp_type) << 8
                  : fw_nat_delta(e);
    ct_update(fw->ct, e, 0, p->tcpflags, fw->now);
    pkt_nat(p, e, 0);
    pkt_send(fw, p, QW_LINK_UPLINK);
}

/*
 * An ICMP query whose id matches a tracked query of another type (the ct
 * key has no type): a query type of its own must pass the rules as if new
 * (Linux keys ICMP on type too); anything else is dropped. True to go on
 * with the entry.
 */
static bool icmp_other_type_ok(struct qw *fw, struct fw_pkt *p)
{
    struct rules_flow f;

    if (!fw_icmp_is_query(p->icmp_type)) {
        pkt_drop(fw, p, QW_DROP_ICMP_TYPE);
        return false;
    }
    f.dst = p->dst;
    f.dport = 0;
    f.proto = IPPROTO_ICMP_;
    f.icmp_type = p->icmp_type;
    if (rules_match(fw->links[p->link].rules, &f, &fw->dns_set, &fw->hosts,
                    NULL) != RULES_ACCEPT) {
        pkt_reject(fw, p, QW_DROP_RULE, ICMP_ADMIN_PROHIBITED);
        return false;
    }
    return true;
}

static void from_client(struct qw *fw, struct fw_pkt *p)
{
    struct fw_link *l = &fw->links[p->link];
    struct ct_key k;
    struct ct_entry *e;

    if (p->proto == IPPROTO_UDP_ && p->dport == 67) {
        pkt_drop(fw, p, QW_DROP_DHCP);
        return;
    }
    if (p->src != l->ip) {
        pkt_drop(fw, p, QW_DROP_SPOOF_CLIENT);
        return;
    }
    if (!is_unicast(p->dst)) {
        pkt_drop(fw, p, QW_DROP_BROADCAST);
        return;
    }
    if (p->dst == fw->net.ip) {
        client_to_fw(fw, p);
        return;
    }
    if (fw_addrset_has(fw, p->dst)) {
        pkt_drop(fw, p, QW_DROP_CLIENT_TO_CLIENT);
        return;
    }
    if (p->proto == IPPROTO_ICMP_ && fw_icmp_is_error(p->icmp_type)) {
        pkt_icmp_error(fw, p, 0);
        return;
    }
    if (pkt_ttl_expired(fw, p))
        return;
    pkt_key(p, &k);
    /* the fast path may have just looked this key up in vain */
    e = fw->ct_miss ? NULL : ct_lookup_dir(fw->ct, &k, 0, fw->now);
    if (e != NULL && ct_tcp_reopens(e, 0, p->tcpflags)) {
        /* a bare SYN on a finished connection (TIME_WAIT/CLOSE) starts a
         * new one, judged by the rules again, as Linux does */
        ct_remove(fw->ct, e);
        e = NULL;
    }
    if (e == NULL) {
        client_new(fw, p);
        return;
    }
    if (p->proto == IPPROTO_ICMP_ &&
        !(e->user & icmp_query_bit(p->icmp_type) << 8)) {
        /* another query type on this id: judged as new, then it shares
         * the entry (its answers pass too) */
        if (!icmp_other_type_ok(fw, p))
            return;
        e->user |= icmp_query_bit(p->icmp_type) << 8;
    }
    if (!fw->uplink_up) {
        pkt_drop(fw, p, QW_DROP_NO_LINK);
        return;
    }
    if (pkt_too_big(fw, p))
        return;
    ct_update(fw->ct, e, 0, p->tcpflags, fw->now);
    pkt_nat(p, e, 0);
    pkt_send(fw, p, QW_LINK_UPLINK);
}

static void from_uplink(struct qw *fw, struct fw_pkt *p)
{
    struct ct_key k;
    struct ct_entry *e;

    if (p->src == fw->net.ip || fw_addrset_has(fw, p->src)) {
        pkt_drop(fw, p, QW_DROP_SPOOF_UPLINK);
        return;
    }
    if (!is_unicast(p->src)) {
        pkt_drop(fw, p, QW_DROP_IP_MARTIAN);
        return;
    }
    if (p->dst != fw->net.ip) {
        pkt_drop(fw, p,
                 is_unicast(p->dst) ? QW_DROP_UPLINK_NEW : QW_DROP_BROADCAST);
        return;
    }
    if (p->proto == IPPROTO_ICMP_ && fw_icmp_is_error(p->icmp_type)) {
        pkt_icmp_error(fw, p, 1);
        return;
    }
    pkt_key(p, &k);
    e = fw->ct_miss ? NULL : ct_lookup_dir(fw->ct, &k, 1, fw->now);
    if (e == NULL) {
        if (p->proto == IPPROTO_ICMP_ && p->icmp_type == ICMP_ECHO) {
            if (fw_icmp_echo_reply(fw, p))
                pkt_send(fw, p, QW_LINK_UPLINK);
            return;
        }
        pkt_drop(fw, p, QW_DROP_UPLINK_NEW);
        return;
    }
    if (e->link == CT_LINK_SELF) {
        fw_dns_rx(fw, p, e); /* never forwarded */
        return;
    }
    /* an ICMP answer passes only as the answer of a query type seen on
     * the entry (echo -> echo reply, ...) */
    if (p->proto == IPPROTO_ICMP_ &&
        !(e->user & icmp_answer_bit(p->icmp_type) << 8)) {
        pkt_drop(fw, p, QW_DROP_ICMP_TYPE);
        return;
    }
    if (pkt_ttl_expired(fw, p) || pkt_too_big(fw, p))
        return;
    ct_update(fw->ct, e, 1, p->tcpflags, fw->now);
    pkt_nat(p, e, 1);
    pkt_send(fw, p, e->link);
}

/*
 * L4 header checks and the ct key ports. ICMP queries put their id in
 * sport (requests) or dport (answers), as ct.h wants.
 */
static enum qw_drop pkt_l4(struct fw_pkt *p)
{
    const uint8_t *l4 = p->l4;

    p->sport = 0;
    p->dport = 0;
    p->tcpflags = 0;
    p->icmp_type = 0;
    switch (p->proto) {
    case IPPROTO_TCP_:
        if (p->l4len < 20 || (l4[12] >> 4) < 5 ||
            (uint32_t)(l4[12] >> 4) * 4 > p->l4len)
            return QW_DROP_TCP_BAD;
        p->sport = qw_get16(l4);
        p->dport = qw_get16(l4 + 2);
        p->tcpflags = l4[13];
        break;
    case IPPROTO_UDP_:
        if (p->l4len < 8 || qw_get16(l4 + 4) < 8 || qw_get16(l4 + 4) > p->l4len)
            return QW_DROP_UDP_BAD;
        p->sport = qw_get16(l4);
        p->dport = qw_get16(l4 + 2);
        break;
    case IPPROTO_ICMP_:
        if (p->l4len < 8)
            return QW_DROP_ICMP_BAD;
        p->icmp_type = l4[0];
        p->icmp_code = l4[1];
        if (fw_icmp_is_query(l4[0]))
            p->sport = qw_get16(l4 + 4);
        else if (fw_icmp_is_query_reply(l4[0]))
            p->dport = qw_get16(l4 + 4);
        break;
    default:
        break;
    }
    return QW_DROP_NONE;
}

/*
 * IPv4 options we forward: any well-formed list without a source route.
 * LSRR/SSRR (0x83, 0x89) would let a client have the first hop relay its
 * packet to a host its rules forbid (Linux: accept_source_route = 0).
 * A malformed list is refused too (bounded walk over at most 40 bytes).
 */
static bool ip_options_ok(const uint8_t *ip, unsigned hlen)
{
    unsigned i = IP4_MIN_HLEN;

    while (i < hlen) {
        uint8_t t = ip[i];
        if (t == 0) /* end of list */
            return true;
        if (t == 1) { /* no-op */
            i++;
            continue;
        }
        if (i + 1 >= hlen || ip[i + 1] < 2 || i + ip[i + 1] > hlen)
            return false;
        if (t == 0x83 || t == 0x89)
            return false;
        i += ip[i + 1];
    }
    return true;
}

/* Reassembly: the whole datagram goes to the scratch buffer (writable,
 * behind a copy of the last fragment's Ethernet header). */
static bool pkt_defrag(struct qw *fw, struct fw_pkt *p)
{
    const uint8_t *dg;
    size_t dglen;
    enum qw_drop why = QW_DROP_FRAG_BAD;
    int r;

    r = frag_input(fw->frag, p->link, p->ip, p->iplen, fw->now, &dg, &dglen,
                   &why);
    if (r == FRAG_PENDING)
        return false;
    if (r != FRAG_DONE || dglen < IP4_MIN_HLEN || dglen > IP4_MAX_LEN) {
        pkt_drop(fw, p, why);
        return false;
    }
    __builtin_memcpy(fw->scratch, p->eth, ETH_HLEN);
    __builtin_memcpy(fw->scratch + ETH_HLEN, dg, dglen);
    p->eth = fw->scratch;
    p->ip = fw->scratch + ETH_HLEN;
    p->scratch = true;
    p->iplen = (uint32_t)dglen;
    p->hlen = (uint16_t)((p->ip[0] & 15) * 4);
    if (p->hlen < IP4_MIN_HLEN || p->hlen > p->iplen) {
        pkt_drop(fw, p, QW_DROP_FRAG_BAD);
        return false;
    }
    p->l4 = p->ip + p->hlen;
    p->l4len = p->iplen - p->hlen;
    return true;
}

/* The full pipeline, out of line so the fast path stays small. */
__attribute__((noinline)) static void fw_ip4(struct qw *fw, unsigned link,
                                             uint8_t *frame, uint32_t len,
                                             uint16_t flags)
{
    struct fw_pkt p;
    uint8_t *ip = frame + ETH_HLEN;
    uint32_t avail = len - ETH_HLEN;
    enum qw_drop why;

    p.eth = frame;
    p.framelen = len;
    p.link = (uint16_t)link;
    p.scratch = false;
    p.ip = ip;
    p.iplen = avail;
    if (avail < IP4_MIN_HLEN) {
        pkt_drop(fw, &p, QW_DROP_IP_SHORT);
        return;
    }
    if ((ip[0] >> 4) != 4) {
        pkt_drop(fw, &p, QW_DROP_IP_VERSION);
        return;
    }
    p.hlen = (uint16_t)((ip[0] & 15) * 4);
    if (p.hlen < IP4_MIN_HLEN || p.hlen > avail) {
        pkt_drop(fw, &p, QW_DROP_IP_HLEN);
        return;
    }
    p.iplen = qw_get16(ip + 2);
    if (p.iplen < p.hlen || p.iplen > avail) {
        p.iplen = avail;
        pkt_drop(fw, &p, QW_DROP_IP_LEN);
        return;
    }
    if (!fw_ip_hdr_ok(ip, p.hlen)) {
        pkt_drop(fw, &p, QW_DROP_IP_CSUM);
        return;
    }
    if (p.hlen > IP4_MIN_HLEN && !ip_options_ok(ip, p.hlen)) {
        pkt_drop(fw, &p, QW_DROP_IP_OPTIONS);
        return;
    }
    if (!fw_configured(fw)) {
        pkt_drop(fw, &p, QW_DROP_NOT_CONFIGURED);
        return;
    }
    p.proto = ip[9];
    p.src = qw_get32(ip + 12);
    p.dst = qw_get32(ip + 16);
    p.l4 = ip + p.hlen;
    p.l4len = p.iplen - p.hlen;
    if ((qw_get16(ip + 6) & (IP4_FLAG_MF | IP4_OFF_MASK)) != 0) {
        if (!pkt_defrag(fw, &p))
            return;
    } else if (flags & QW_FRAME_CSUM_BLANK) {
        why = pkt_l4(&p);
        if (why != QW_DROP_NONE) {
            pkt_drop(fw, &p, why);
            return;
        }
        fw_csum_complete(&p);
    }
    why = pkt_l4(&p);
    if (why != QW_DROP_NONE) {
        pkt_drop(fw, &p, why);
        return;
    }
    if (link == QW_LINK_UPLINK)
        from_uplink(fw, &p);
    else
        from_client(fw, &p);
}

/* Destination MAC: ours on this link, or broadcast. */
static bool eth_for_us(const struct fw_link *l, const uint8_t *d)
{
    return __builtin_memcmp(d, l->mymac, 6) == 0 ||
           __builtin_memcmp(d, mac_bcast, 6) == 0;
}

/* QW_FRAME_CSUM_BLANK on the fast path: the field holds the folded
 * pseudo-header sum; sum the segment as it is (fw_csum_complete()). */
static void fast_csum_complete(uint8_t *l4, uint8_t proto, uint32_t l4len)
{
    uint8_t *cp = l4 + (proto == IPPROTO_TCP_ ? 16 : 6);
    uint16_t c = (uint16_t)~fw_csum_native(l4, l4len);

    if (c == 0 && proto == IPPROTO_UDP_)
        c = 0xffff;
    __builtin_memcpy(cp, &c, 2);
}

/* k is the key a (live) entry holds: a repeat of the last flow. */
static inline bool same_flow(const struct ct_key *a, const struct ct_key *k,
                             uint64_t now, uint64_t expires)
{
    return a->src == k->src && a->dst == k->dst && a->sport == k->sport &&
           a->dport == k->dport && a->proto == k->proto && now < expires;
}

/*
 * The established-connection fast path: a plain TCP or UDP packet (no IP
 * options, not a fragment, TTL > 1, fits the MTU, valid header checksum)
 * of a connection tracked for this link and direction, forwarded in place.
 * It only takes shortcuts that the full pipeline would take for the same
 * packet; anything else returns false with the frame untouched, and the
 * full pipeline decides everything again.
 */
static bool fw_fast(struct qw *fw, unsigned link, uint8_t *frame, uint32_t len,
                    uint16_t flags)
{
    uint8_t *ip = frame + ETH_HLEN, *l4 = ip + IP4_MIN_HLEN;
    uint8_t proto, tcpflags;
    struct ct_key k;
    struct ct_entry *e;
    uint32_t iplen;
    unsigned to;

    if (len < ETH_HLEN + IP4_MIN_HLEN + 8 || ip[0] != 0x45 || ip[8] <= 1)
        return false;
    iplen = qw_get16(ip + 2);
    /* (the one's complement sum cannot tell a total length from the TOS
     * byte swapped into it: the lower bound matters) */
    if (iplen < IP4_MIN_HLEN + 8 || iplen > len - ETH_HLEN || iplen > FW_MTU ||
        (qw_get16(ip + 6) & (IP4_FLAG_MF | IP4_OFF_MASK)) != 0)
        return false;
    proto = ip[9];
    if (proto == IPPROTO_TCP_) {
        /* a data offset of 5.. that fits (implies iplen >= 40) */
        unsigned doff = l4[12] >> 4;
        tcpflags = l4[13];
        /* SYN: maybe a new connection on a finished tuple (full path) */
        if (doff < 5 || doff * 4 > iplen - IP4_MIN_HLEN ||
            (tcpflags & CT_TCP_SYN))
            return false;
    } else if (proto == IPPROTO_UDP_) {
        uint16_t ulen = qw_get16(l4 + 4);
        if (ulen < 8 || ulen > iplen - IP4_MIN_HLEN)
            return false;
        tcpflags = 0;
    } else {
        return false;
    }
    if (!fw->configured || !fw_ip_hdr_ok(ip, IP4_MIN_HLEN))
        return false;
    k.src = qw_get32(ip + 12);
    k.dst = qw_get32(ip + 16);
    k.sport = qw_get16(l4);
    k.dport = qw_get16(l4 + 2);
    k.proto = proto;
    if (link == QW_LINK_UPLINK) {
        /* a reply hit's source is the connection's remote end, checked
         * not internal at creation and whenever the set changes */
        if (k.dst != fw->net.ip)
            return false;
        e = fw->links[0].last;
        if (e == NULL || !same_flow(&e->reply, &k, fw->now, e->expires) ||
            !(e->flags & CT_F_USED)) {
            e = ct_lookup_dir(fw->ct, &k, 1, fw->now);
            fw->links[0].last = e;
            fw->ct_miss = e == NULL;
        }
        if (e == NULL || e->link == CT_LINK_SELF)
            return false;
        to = e->link;
        if (flags & QW_FRAME_CSUM_BLANK)
            fast_csum_complete(l4, proto, iplen - IP4_MIN_HLEN);
        ct_update(fw->ct, e, 1, tcpflags, fw->now);
        fw_nat_fast(ip, l4, proto, e->user, 1, e->orig.src, e->orig.sport);
    } else {
        if (!fw->uplink_up)
            return false;
        e = fw->links[link].last;
        if (e == NULL || !same_flow(&e->orig, &k, fw->now, e->expires) ||
            !(e->flags & CT_F_USED)) {
            e = ct_lookup_dir(fw->ct, &k, 0, fw->now);
            fw->links[link].last = e;
            fw->ct_miss = e == NULL;
        }
        if (e == NULL || e->link != link)
            return false;
        to = QW_LINK_UPLINK;
        if (flags & QW_FRAME_CSUM_BLANK)
            fast_csum_complete(l4, proto, iplen - IP4_MIN_HLEN);
        ct_update(fw->ct, e, 0, tcpflags, fw->now);
        fw_nat_fast(ip, l4, proto, e->user, 0, e->reply.dst, e->reply.dport);
    }
    __builtin_memcpy(frame, fw->links[to].ethout, 12);
    if (fw->out == NULL || fw->out->n >= fw->out->cap) {
        fw_emit(fw, to, frame, ETH_HLEN + iplen); /* counts tx_full */
        return true;
    }
    {
        struct qw_frame *f = &fw->out->frames[fw->out->n++];
        struct fw_link *ol = &fw->links[to];
        f->data = frame;
        f->len = ETH_HLEN + iplen;
        f->link = (uint16_t)to;
        f->flags = 0;
        ol->st.tx_frames++;
        ol->st.tx_bytes += ETH_HLEN + iplen;
    }
    return true;
}

static void fw_frame(struct qw *fw, struct fw_link *l, unsigned link,
                     uint8_t *frame, uint32_t len, uint16_t flags)
{
    uint16_t type;

    l->st.rx_frames++;
    l->st.rx_bytes += len;
    if (len < ETH_HLEN) {
        fw_drop(fw, link, frame, len, QW_DROP_ETH_SHORT);
        return;
    }
    type = qw_get16(frame + 12);
    if (type != ETHERTYPE_IPV4 && type != ETHERTYPE_ARP) {
        fw_drop(fw, link, frame, len,
                type == ETHERTYPE_IPV6 ? QW_DROP_IPV6 : QW_DROP_ETH_TYPE);
        return;
    }
    if (!eth_for_us(l, frame)) {
        fw_drop(fw, link, frame, len, QW_DROP_ETH_NOT_FOR_US);
        return;
    }
    fw->ct_miss = false;
    if (type == ETHERTYPE_ARP)
        fw_arp_rx(fw, link, frame, len);
    else if ((flags & ~QW_FRAME_CSUM_BLANK) != 0 ||
             !fw_fast(fw, link, frame, len, flags))
        fw_ip4(fw, link, frame, len, flags);
}

void qw_rx(struct qw *fw, unsigned link, struct qw_frame *in, unsigned n,
           uint64_t now, struct qw_out *out)
{
    fw_enter(fw, now, out);
    if (link >= fw->nlinks || !fw->links[link].used) {
        for (unsigned i = 0; i < n; i++)
            fw_drop(fw, link, in[i].data, in[i].len, QW_DROP_NO_LINK);
    } else {
        for (unsigned i = 0; i < n; i++)
            fw_frame(fw, &fw->links[link], link, in[i].data, in[i].len,
                     in[i].flags);
    }
    /* a DNS answer may have made work due now (dns.h: dns_deadline) */
    if (dns_deadline(fw->dns) <= now)
        dns_poll(fw->dns, now);
    fw_leave(fw);
}

/* ---- timers ------------------------------------------------------------ */

static uint64_t min64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

uint64_t qw_poll(struct qw *fw, uint64_t now, struct qw_out *out)
{
    uint64_t next = UINT64_MAX, d;

    fw_enter(fw, now, out);
    fw_arp_poll(fw);
    if (fw->gw_next != 0)
        next = fw->gw_next;
    if (now >= fw->ct_next_sweep) {
        ct_expire(fw->ct, now, FW_CT_SWEEP_BUDGET);
        fw->ct_next_sweep = now + FW_CT_SWEEP_NS;
    }
    if (ct_count(fw->ct) != 0)
        next = min64(next, fw->ct_next_sweep);
    frag_expire(fw->frag, now);
    next = min64(next, frag_next_deadline(fw->frag));
    d = dns_poll(fw->dns, now);
    next = min64(next, d);
    fw_leave(fw);
    return next;
}

/* ---- uplink -------------------------------------------------------------- */

void qw_uplink_up(struct qw *fw, const uint8_t mac[6], uint64_t now,
                  struct qw_out *out)
{
    struct fw_link *l = &fw->links[0];

    fw_enter(fw, now, out);
    __builtin_memcpy(l->mac, mac, 6);
    __builtin_memcpy(l->mymac, mac, 6);
    fw_set_gw_mac(fw, fw->gw_mac);
    l->used = true;
    fw->uplink_up = true;
    fw_log(fw, FW_LOG_CORE, QW_LOG_INFO,
           "fw: uplink up (mac %02x:%02x:%02x:%02x:%02x:%02x)", mac[0], mac[1],
           mac[2], mac[3], mac[4], mac[5]);
    fw_arp_gratuitous(fw);
    fw_arp_gw_start(fw);
    fw_arp_poll(fw);
    fw_leave(fw);
}

void qw_uplink_down(struct qw *fw, uint64_t now)
{
    fw_enter(fw, now, NULL);
    if (fw->uplink_up)
        fw_log(fw, FW_LOG_CORE, QW_LOG_INFO, "fw: uplink down");
    fw->uplink_up = false;
    fw->links[0].used = false;
    fw->gw_state = FW_GW_NONE;
    fw->gw_next = 0;
    frag_flush_link(fw->frag, 0);
    fw_leave(fw);
}

/* ---- clients ---------------------------------------------------------------
 */

int qw_client_attach(struct qw *fw, const struct qw_client *c, uint64_t now)
{
    struct fw_link *l = NULL;
    unsigned i;
    char ip[16];

    fw_enter(fw, now, NULL);
    if (c == NULL || !is_unicast(c->ip) || (c->mac[0] & 1) != 0)
        return -QW_EINVAL;
    for (i = 1; i < fw->nlinks; i++) {
        if (!fw->links[i].used) {
            l = &fw->links[i];
            break;
        }
    }
    if (l == NULL) {
        fw_log(fw, FW_LOG_CORE, QW_LOG_WARN,
               "fw: client %.31s refused (all %u links in use)", c->name,
               fw->nlinks - 1);
        return -QW_ENOSPC;
    }
    __builtin_memset(l->ctr, 0, QW_DROP__COUNT * sizeof(uint64_t));
    __builtin_memset(&l->st, 0, sizeof l->st);
    l->used = true;
    l->rules_seen = false;
    l->last = NULL;
    l->ip = c->ip;
    __builtin_memcpy(l->mac, c->mac, 6);
    __builtin_memcpy(l->ethout, c->mac, 6);
    __builtin_memcpy(l->ethout + 6, mac_fe, 6);
    __builtin_memcpy(l->mymac, mac_fe, 6);
    for (unsigned j = 0; j < sizeof l->name; j++) {
        l->name[j] = c->name[j];
        if (c->name[j] == '\0')
            break;
    }
    l->name[sizeof l->name - 1] = '\0';
    l->reject_credit = FW_REJECT_BURST_NS;
    l->reject_last = now;
    fw_addrset_rebuild(fw);
    fw_fmt_ip4(ip, sizeof ip, c->ip);
    fw_log(fw, FW_LOG_CORE, QW_LOG_INFO,
           "fw: client %s attached (link %u, ip %s)", l->name, i, ip);
    fw_rules_load(fw, i);
    return (int)i;
}

void qw_client_detach(struct qw *fw, unsigned link, uint64_t now)
{
    struct fw_link *l;

    fw_enter(fw, now, NULL);
    if (link == QW_LINK_UPLINK || link >= fw->nlinks || !fw->links[link].used)
        return;
    l = &fw->links[link];
    ct_flush_link(fw->ct, (uint16_t)link);
    frag_flush_link(fw->frag, link);
    rules_release(l->rules, &fw->hosts);
    l->used = false;
    l->rules_seen = false;
    l->last = NULL;
    fw_addrset_rebuild(fw);
    fw_log(fw, FW_LOG_CORE, QW_LOG_INFO, "fw: client %s detached (link %u)",
           l->name, link);
}

/* ---- rule re-check ---------------------------------------------------------
 */

struct recheck_ctx {
    struct qw *fw;
    const struct rules_set *rs;
};

static bool recheck_keep(void *ctx, const struct ct_entry *e)
{
    struct recheck_ctx *rc = ctx;
    struct rules_flow f;

    f.dst = e->orig.dst;
    f.proto = e->orig.proto;
    f.dport = e->orig.dport;
    f.icmp_type = (uint8_t)e->user;
    return rules_match(rc->rs, &f, &rc->fw->dns_set, &rc->fw->hosts, NULL) ==
           RULES_ACCEPT;
}

/* The link's rules (or what they depend on) changed: remove exactly the
 * connections they would now reject (semantics.md "Connections"). */
void fw_recheck_link(struct qw *fw, unsigned link)
{
    struct recheck_ctx rc = {fw, fw->links[link].rules};
    unsigned n;

    n = ct_recheck_link(fw->ct, (uint16_t)link, recheck_keep, &rc);
    if (n != 0)
        fw_log(fw, FW_LOG_RULES, QW_LOG_INFO,
               "fw: client %s: %u connections closed by new rules",
               fw->links[link].name, n);
}

/* ---- counters -------------------------------------------------------------
 */

uint64_t qw_counter(const struct qw *fw, unsigned link, enum qw_drop reason)
{
    if ((unsigned)reason >= QW_DROP__COUNT)
        return 0;
    if (link >= fw->nlinks)
        return fw->ctr_bad_link[reason];
    return fw->links[link].ctr[reason];
}

void qw_link_stats(const struct qw *fw, unsigned link, struct qw_link_stats *st)
{
    if (link >= fw->nlinks) {
        __builtin_memset(st, 0, sizeof *st);
        return;
    }
    *st = fw->links[link].st;
}

struct sbuf {
    char *buf;
    size_t cap, len;
};

static void sb_add(struct sbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void sb_add(struct sbuf *b, const char *fmt, ...)
{
    va_list ap;
    size_t room = b->len < b->cap ? b->cap - b->len : 0;

    va_start(ap, fmt);
    b->len += qw_vsnprintf(room ? b->buf + b->len : NULL, room, fmt, ap);
    va_end(ap);
}

static void stats_link(struct sbuf *b, const struct qw *fw, unsigned i)
{
    const struct fw_link *l = &fw->links[i];
    bool first = true;

    if (i == 0)
        sb_add(b, "uplink");
    else
        sb_add(b, "; %u:%s conns %u", i, l->name,
               ct_link_count(fw->ct, (uint16_t)i));
    sb_add(b, " rx %llu/%llu tx %llu/%llu drop %llu",
           (unsigned long long)l->st.rx_frames,
           (unsigned long long)l->st.rx_bytes,
           (unsigned long long)l->st.tx_frames,
           (unsigned long long)l->st.tx_bytes, (unsigned long long)l->st.drops);
    for (unsigned r = 1; r < QW_DROP__COUNT; r++) {
        if (l->ctr[r] == 0)
            continue;
        sb_add(b, "%s%s=%llu", first ? " (" : " ", qw_drop_name(r),
               (unsigned long long)l->ctr[r]);
        first = false;
    }
    if (!first)
        sb_add(b, ")");
}

size_t qw_stats_format(const struct qw *fw, char *buf, size_t cap)
{
    struct sbuf b = {buf, cap, 0};

    sb_add(&b, "stats: ");
    stats_link(&b, fw, 0);
    for (unsigned i = 1; i < fw->nlinks; i++)
        if (fw->links[i].used)
            stats_link(&b, fw, i);
    sb_add(&b, "; connections %u", ct_count(fw->ct));
    if (cap > 0 && b.len >= cap)
        buf[cap - 1] = '\0';
    return b.len < cap ? b.len : (cap ? cap - 1 : 0);
}
