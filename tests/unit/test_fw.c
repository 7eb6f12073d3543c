/*
 * test_fw.c: the pipeline beyond the semantics bullets: creation and
 * memory, hostile and malformed frames, batches and output limits,
 * link lifecycle, and a randomised property test of NAT (a flow out and
 * its reply back restore the original addresses and ports, and every
 * checksum stays valid, ICMP errors included).
 */
#include "test_fw_harness.h"

#include "fw.h" /* internals: the connection table, for state checks */

/* ---- an independent frame builder (own checksum code) ---- */

static uint32_t sum16(uint32_t s, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i + 1 < n; i += 2)
        s += (uint32_t)p[i] << 8 | p[i + 1];
    if (n & 1)
        s += (uint32_t)p[n - 1] << 8;
    return s;
}

static uint16_t fold(uint32_t s)
{
    while (s >> 16)
        s = (s & 0xffff) + (s >> 16);
    return (uint16_t)~s;
}

static int ip_csum_ok(const uint8_t *ip)
{
    return fold(sum16(0, ip, (ip[0] & 15) * 4u)) == 0;
}

/* TCP/UDP/ICMP checksum of a whole (unfragmented) IPv4 packet is valid. */
static int l4_csum_ok(const uint8_t *ip)
{
    unsigned hl = (ip[0] & 15) * 4u, len = (unsigned)(ip[2] << 8 | ip[3]);
    const uint8_t *l4 = ip + hl;
    uint32_t s = 0;

    if (ip[9] == 1)
        return fold(sum16(0, l4, len - hl)) == 0;
    if (ip[9] == 17 && l4[6] == 0 && l4[7] == 0)
        return 1;
    s = sum16(0, ip + 12, 8) + ip[9] + (len - hl);
    return fold(sum16(s, l4, len - hl)) == 0;
}

struct flow {
    uint32_t src, dst;
    uint16_t sport, dport; /* ICMP: id in sport */
    uint8_t proto;         /* 6, 17, 1 */
    uint8_t icmp_type;
    uint16_t paylen;
    bool udp_nocsum;
};

/* Build a frame for f; returns its length. */
static size_t build(uint8_t *f, const uint8_t *dmac, const uint8_t *smac,
                    const struct flow *fl, uint8_t tcpflags, uint8_t ttl)
{
    uint8_t *ip = f + 14, *l4 = ip + 20;
    size_t l4len = 0;
    uint32_t s;

    memcpy(f, dmac, 6);
    memcpy(f + 6, smac, 6);
    f[12] = 8;
    f[13] = 0;
    switch (fl->proto) {
    case 6:
        l4len = 20 + fl->paylen;
        memset(l4, 0, 20);
        qw_put16(l4, fl->sport);
        qw_put16(l4 + 2, fl->dport);
        qw_put32(l4 + 4, 0x01020304);
        l4[12] = 5 << 4;
        l4[13] = tcpflags;
        qw_put16(l4 + 14, 1000);
        break;
    case 17:
        l4len = 8 + fl->paylen;
        qw_put16(l4, fl->sport);
        qw_put16(l4 + 2, fl->dport);
        qw_put16(l4 + 4, (uint16_t)l4len);
        qw_put16(l4 + 6, 0);
        break;
    default:
        l4len = 8 + fl->paylen;
        l4[0] = fl->icmp_type;
        l4[1] = 0;
        qw_put16(l4 + 2, 0);
        qw_put16(l4 + 4, fl->sport);
        qw_put16(l4 + 6, 1);
        break;
    }
    for (size_t i = l4len - fl->paylen; i < l4len; i++)
        l4[i] = (uint8_t)(i * 13 + fl->sport);
    memset(ip, 0, 20);
    ip[0] = 0x45;
    qw_put16(ip + 2, (uint16_t)(20 + l4len));
    qw_put16(ip + 4, 0x4242);
    qw_put16(ip + 6, 0x4000);
    ip[8] = ttl;
    ip[9] = fl->proto;
    qw_put32(ip + 12, fl->src);
    qw_put32(ip + 16, fl->dst);
    qw_put16(ip + 10, fold(sum16(0, ip, 20)));
    if (fl->proto == 1) {
        qw_put16(l4 + 2, fold(sum16(0, l4, l4len)));
    } else if (!(fl->proto == 17 && fl->udp_nocsum)) {
        s = sum16(0, ip + 12, 8) + fl->proto + (uint32_t)l4len;
        uint16_t c = fold(sum16(s, l4, l4len));
        if (fl->proto == 17 && c == 0)
            c = 0xffff;
        qw_put16(l4 + (fl->proto == 6 ? 16 : 6), c);
    }
    return 14 + 20 + l4len;
}

static const uint8_t m_fe[6] = {0xfe, 0xff, 0xff, 0xff, 0xff, 0xff};
static const uint8_t m_up[6] = {0, 0x16, 0x3e, 0x5e, 0x6c, 0};
static const uint8_t m_gw[6] = {2, 0, 0, 0, 0, 2};
static const uint8_t m_work[6] = {0, 0x16, 0x3e, 0x5e, 0x6c, 0x0a};

/* Push raw bytes (copied into a harness buffer). */
static void rx_raw(struct tfw *t, unsigned link, const uint8_t *b, size_t n,
                   uint16_t flags)
{
    uint8_t *buf = t->in[t->in_next++ % T_MAXIN];
    struct qw_frame f = {buf, (uint32_t)n, (uint16_t)link, flags};

    memcpy(buf, b, n);
    t_reset_out(t);
    qw_rx(t->fw, link, &f, 1, t->now, &t->out);
}

static size_t from_hex(const char *hex, uint8_t *b)
{
    int n = test_hex(hex, b, T_FRAME);

    return n < 0 ? 0 : (size_t)n;
}

static void fix_ip_csum(uint8_t *ip)
{
    qw_put16(ip + 10, 0);
    qw_put16(ip + 10, fold(sum16(0, ip, (ip[0] & 15) * 4u)));
}

static struct tfw *setup_all(void)
{
    struct tfw *t = t_setup();
    static const char *const all[] = {"policy=drop", "0000=action=accept",
                                      NULL};

    t_rules(t, "10.137.0.10", all);
    t_rules(t, "10.137.0.11", all);
    t_reset_out(t);
    return t;
}

/* ---- creation and memory ---- */

TEST(fw_create_validates)
{
    struct qw_config c = t_config();
    struct qw_platform p = {NULL, NULL, NULL, NULL, NULL};
    size_t sz = qw_mem_size(&c);
    void *mem = aligned_alloc(16, sz + 16);

    CHECK(sz > 0);
    CHECK(qw_create(mem, sz, &c, &p) == NULL); /* no random() */
    {
        struct tfw t0;
        struct qw_platform q = {&t0, NULL, t_random, NULL, NULL};
        t0.rng = 1;
        CHECK(qw_create(mem, sz - 1, &c, &q) == NULL);
        CHECK(qw_create((uint8_t *)mem + 8, sz, &c, &q) == NULL);
        CHECK(qw_create(mem, sz, &c, &q) != NULL);
        c.max_rules = 20000;
        CHECK_EQ(qw_mem_size(&c), 0);
        CHECK(qw_create(mem, sz, &c, &q) == NULL);
        c = t_config();
        c.log_level = (enum qw_log_level)7;
        CHECK_EQ(qw_mem_size(&c), 0);
    }
    free(mem);
}

TEST(fw_mem_info_costs)
{
    struct qw_config c;
    struct qw_mem_info mi;

    memset(&c, 0, sizeof c); /* all defaults */
    qw_mem_info(&c, &mi);
    CHECK_EQ(mi.total, qw_mem_size(&c));
    CHECK(mi.per_connection >= 64);
    CHECK(mi.per_client < 64 * 1024); /* frag pool is shared (h4) */
    CHECK_EQ(mi.fixed + mi.per_connection * 5000 + mi.per_client * 64,
             mi.total);
    CHECK(mi.ct > 5000 * 64);
    printf("# defaults: total %zu, per connection %zu, per client %zu, "
           "ct %zu, rules %zu, frag %zu, qdb %zu, dns %zu, tx %zu\n",
           mi.total, mi.per_connection, mi.per_client, mi.ct, mi.rules, mi.frag,
           mi.qdb, mi.dns, mi.tx);
}

/* ---- malformed frames ---- */

TEST(fw_malformed_frames)
{
    struct tfw *t = setup_all();
    uint8_t b[T_FRAME], *ip = b + 14;
    size_t n;

    rx_raw(t, t->work, b, 0, 0);
    CHECK(t_dropped_as(t, t->work, QW_DROP_ETH_SHORT));
    n = from_hex(FX_SYN_IN, b);
    rx_raw(t, t->work, b, 13, 0);
    CHECK(t_dropped_as(t, t->work, QW_DROP_ETH_SHORT));
    rx_raw(t, t->work, b, 14 + 19, 0);
    CHECK(t_dropped_as(t, t->work, QW_DROP_IP_SHORT));
    b[12] = 0x81; /* VLAN */
    rx_raw(t, t->work, b, n, 0);
    CHECK(t_dropped_as(t, t->work, QW_DROP_ETH_TYPE));
    b[12] = 8;
    b[0] = 0x02; /* another MAC */
    rx_raw(t, t->work, b, n, 0);
    CHECK(t_dropped_as(t, t->work, QW_DROP_ETH_NOT_FOR_US));
    b[0] = 0xfe;
    ip[0] = 0x65;
    rx_raw(t, t->work, b, n, 0);
    CHECK(t_dropped_as(t, t->work, QW_DROP_IP_VERSION));
    ip[0] = 0x44;
    rx_raw(t, t->work, b, n, 0);
    CHECK(t_dropped_as(t, t->work, QW_DROP_IP_HLEN));
    ip[0] = 0x4f; /* 60-byte header in a 54-byte frame */
    rx_raw(t, t->work, b, 14 + 40, 0);
    CHECK(t_dropped_as(t, t->work, QW_DROP_IP_HLEN));
    ip[0] = 0x45;
    qw_put16(ip + 2, 41); /* longer than the frame */
    fix_ip_csum(ip);
    rx_raw(t, t->work, b, n, 0);
    CHECK(t_dropped_as(t, t->work, QW_DROP_IP_LEN));
    qw_put16(ip + 2, 19);
    fix_ip_csum(ip);
    rx_raw(t, t->work, b, n, 0);
    CHECK(t_dropped_as(t, t->work, QW_DROP_IP_LEN));
    qw_put16(ip + 2, 30); /* TCP header cut */
    fix_ip_csum(ip);
    rx_raw(t, t->work, b, n, 0);
    CHECK(t_dropped_as(t, t->work, QW_DROP_TCP_BAD));
    qw_put16(ip + 2, 40);
    fix_ip_csum(ip);
    ip[32] = 0x40; /* data offset 4 */
    rx_raw(t, t->work, b, n, 0);
    CHECK(t_dropped_as(t, t->work, QW_DROP_TCP_BAD));
    ip[32] = 0xf0; /* data offset 15: beyond the segment */
    rx_raw(t, t->work, b, n, 0);
    CHECK(t_dropped_as(t, t->work, QW_DROP_TCP_BAD));
    /* UDP with a length beyond the datagram */
    n = from_hex(FX_DNS_IN, b);
    qw_put16(ip + 24, 200);
    rx_raw(t, t->work, b, n, 0);
    CHECK(t_dropped_as(t, t->work, QW_DROP_UDP_BAD));
    qw_put16(ip + 24, 7);
    rx_raw(t, t->work, b, n, 0);
    CHECK(t_dropped_as(t, t->work, QW_DROP_UDP_BAD));
    /* ICMP shorter than 8 bytes */
    n = from_hex(FX_PING_IN, b);
    qw_put16(ip + 2, 26);
    fix_ip_csum(ip);
    rx_raw(t, t->work, b, n, 0);
    CHECK(t_dropped_as(t, t->work, QW_DROP_ICMP_BAD));
    /* multicast destination */
    n = from_hex(FX_SYN_IN, b);
    qw_put32(ip + 16, IP(224, 0, 0, 251));
    fix_ip_csum(ip);
    rx_raw(t, t->work, b, n, 0);
    CHECK(t_dropped_as(t, t->work, QW_DROP_BROADCAST));
    /* martian source from the uplink */
    n = from_hex(FX_SYNACK_IN, b);
    qw_put32(ip + 12, IP(127, 0, 0, 1));
    fix_ip_csum(ip);
    rx_raw(t, 0, b, n, 0);
    CHECK(t_dropped_as(t, 0, QW_DROP_IP_MARTIAN));
    /* ARP: short, bad hardware type, bad op */
    n = from_hex(FX_ARP_CLIENT_REQ, b);
    rx_raw(t, t->work, b, n - 1, 0);
    CHECK(t_dropped_as(t, t->work, QW_DROP_ARP_BAD));
    b[15] = 6;
    rx_raw(t, t->work, b, n, 0);
    CHECK(t_dropped_as(t, t->work, QW_DROP_ARP_BAD));
    b[15] = 1;
    b[21] = 9;
    rx_raw(t, t->work, b, n, 0);
    CHECK(t_dropped_as(t, t->work, QW_DROP_ARP_BAD));
    CHECK_EQ(t->out.n, 0);
    t_free(t);
}

/* An ICMP error quoting garbage, or too short a quote, is dropped. */
TEST(fw_icmp_error_bad_quotes)
{
    struct tfw *t = setup_all();
    uint8_t b[T_FRAME], *ip = b + 14, *ic = ip + 20;
    size_t n;

    t_rx(t, t->work, FX_DNS_IN);
    n = from_hex(FX_DNS_UNREACH_IN, b);
    ic[2] ^= 1; /* ICMP checksum */
    rx_raw(t, 0, b, n, 0);
    CHECK(t_dropped_as(t, 0, QW_DROP_L4_CSUM));
    n = from_hex(FX_DNS_UNREACH28_IN, b);
    qw_put16(ip + 2, (uint16_t)(20 + 8 + 27)); /* quote of 27 bytes */
    fix_ip_csum(ip);
    rx_raw(t, 0, b, n - 1, 0);
    CHECK(t_dropped_as(t, 0, QW_DROP_ICMP_BAD));
    n = from_hex(FX_DNS_UNREACH_IN, b);
    ic[8] = 0x65; /* quoted version 6 */
    rx_raw(t, 0, b, n, 0);
    CHECK(t_dropped_as(t, 0, QW_DROP_ICMP_BAD));
    /* an error quoting a connection nobody has */
    n = from_hex(FX_DNS_UNREACH_IN, b);
    ic[8 + 20] ^= 0x10; /* quoted source port */
    rx_raw(t, 0, b, n, 0);
    CHECK(t->last_drop == QW_DROP_L4_CSUM); /* checksum first */
    CHECK_EQ(t->out.n, 0);
    t_free(t);
}

/* No ICMP error about an ICMP error, or to a broadcast source. */
TEST(fw_no_error_about_errors)
{
    struct tfw *t = t_setup();
    uint8_t b[T_FRAME], *ip = b + 14;
    size_t n;

    /* TTL 1 on a client's port unreachable quoting a tracked flow */
    t_rx(t, t->work, FX_DNS_IN);
    t_rx(t, 0, FX_DNSR_IN);
    n = from_hex(FX_DNSR_UNREACH_IN, b);
    ip[8] = 1;
    fix_ip_csum(ip);
    rx_raw(t, t->work, b, n, 0);
    CHECK(t_dropped_as(t, t->work, QW_DROP_TTL));
    CHECK_EQ(t->out.n, 0);
    t_free(t);
}

/* ---- links, batches, output limits ---- */

TEST(fw_bad_link_and_tx_full)
{
    struct tfw *t = setup_all();
    uint8_t b[T_FRAME];
    size_t n = from_hex(FX_SYN_IN, b);
    struct qw_frame f = {b, (uint32_t)n, 0, 0};
    struct qw_out none = {t->of, 0, 0};

    qw_rx(t->fw, 99, &f, 1, t->now, &t->out);
    CHECK_EQ(qw_counter(t->fw, 99, QW_DROP_NO_LINK), 1);
    qw_rx(t->fw, 3, &f, 1, t->now, &t->out); /* in range, unattached */
    CHECK_EQ(qw_counter(t->fw, 3, QW_DROP_NO_LINK), 1);
    qw_rx(t->fw, (unsigned)t->work, &f, 1, t->now, &none);
    CHECK_EQ(none.n, 0);
    CHECK_EQ(qw_counter(t->fw, 0, QW_DROP_TX_FULL), 1);
    CHECK_EQ(qw_counter(t->fw, 0, (enum qw_drop)999), 0);
    t_free(t);
}

TEST(fw_batch_in_place)
{
    struct tfw *t = setup_all();
    static uint8_t b[40][T_FRAME];
    struct qw_frame f[40];
    struct flow fl = {T_WORK, IP(93, 184, 216, 34), 0, 443, 6, 0, 0, false};

    for (unsigned i = 0; i < 40; i++) {
        fl.sport = (uint16_t)(20000 + i);
        f[i].data = b[i];
        f[i].len = (uint32_t)build(b[i], m_fe, m_work, &fl, 0x02, 64);
        f[i].flags = 0;
    }
    t_reset_out(t);
    qw_rx(t->fw, (unsigned)t->work, f, 40, t->now, &t->out);
    CHECK_EQ(t->out.n, 40);
    for (unsigned i = 0; i < t->out.n; i++) {
        CHECK(t->out.frames[i].data == b[i]); /* rewritten in place */
        CHECK_EQ(qw_get16(b[i] + 14 + 20), 20000 + i);
    }
    t_free(t);
}

TEST(fw_uplink_down_and_detach)
{
    struct tfw *t = setup_all();
    struct qw_link_stats st;
    struct qw_client w = {T_WORK, {0, 0x16, 0x3e, 0x5e, 0x6c, 0x0a}, "work"};
    int l;

    t_rx(t, t->work, FX_SYN_IN);
    qw_uplink_down(t->fw, t->now);
    t_rx(t, t->work, FX_ACK_IN);
    CHECK(t_dropped_as(t, t->work, QW_DROP_NO_LINK));
    t_rx(t, 0, FX_SYNACK_IN);
    CHECK(t_dropped_as(t, 0, QW_DROP_NO_LINK));
    t_reset_out(t);
    qw_uplink_up(t->fw, m_up, t->now, &t->out);
    CHECK(t->out.n >= 2); /* gratuitous ARP + gateway request */
    t_rx(t, 0, FX_ARP_UP_GWREP);
    t_rx(t, 0, FX_SYNACK_IN); /* the connection survived */
    CHECK(t_out_is(t, 0, t->work, FX_SYNACK_OUT));
    qw_client_detach(t->fw, (unsigned)t->work, t->now);
    CHECK(t_logged(t, "client work detached"));
    t_rx(t, 0, FX_SYNACK_IN);
    CHECK(t_dropped_as(t, 0, QW_DROP_UPLINK_NEW));
    qw_client_detach(t->fw, (unsigned)t->work, t->now); /* twice: no-op */
    qw_client_detach(t->fw, 0, t->now);
    qw_client_detach(t->fw, 1000, t->now);
    /* reattach: the committed tree is applied at once, counters fresh */
    l = qw_client_attach(t->fw, &w, t->now);
    CHECK(l > 0);
    qw_link_stats(t->fw, (unsigned)l, &st);
    CHECK_EQ(st.rx_frames, 0);
    t_rx(t, (unsigned)l, FX_SYN_IN);
    CHECK(t_out_is(t, 0, 0, FX_SYN_OUT));
    t_free(t);
}

TEST(fw_attach_limits)
{
    struct tfw *t = t_setup();
    struct qw_client c = {IP(10, 137, 0, 20), {0, 0x16, 0x3e, 0, 0, 1}, "a"};
    struct qw_client bad = {0, {0, 0x16, 0x3e, 0, 0, 1}, "zero"};

    CHECK_EQ(qw_client_attach(t->fw, &bad, t->now), -QW_EINVAL);
    bad.ip = IP(10, 137, 0, 30);
    bad.mac[0] = 1; /* multicast MAC */
    CHECK_EQ(qw_client_attach(t->fw, &bad, t->now), -QW_EINVAL);
    CHECK(qw_client_attach(t->fw, &c, t->now) > 0);
    c.ip++;
    CHECK(qw_client_attach(t->fw, &c, t->now) > 0);
    c.ip++;
    CHECK_EQ(qw_client_attach(t->fw, &c, t->now), -QW_ENOSPC);
    /* two links may share an address (HVM): both get the rules */
    qw_client_detach(t->fw, 4, t->now);
    c.ip = T_WORK;
    CHECK(qw_client_attach(t->fw, &c, t->now) == 4);
    t_rx(t, 4, FX_SYN_IN);
    CHECK_EQ(t->out.n, 1);
    t_free(t);
}

/* Echo requests to our address from the uplink are answered. */
TEST(fw_uplink_ping)
{
    struct tfw *t = t_setup();

    t_rx(t, 0, FX_UPPING_IN);
    CHECK(t_out_is(t, 0, 0, FX_UPPING_OUT));
    t_free(t);
}

/* ICMP ids: a second client's echo with a taken id gets another one and
 * its reply comes back to it with the original id. */
TEST(fw_icmp_id_conflict)
{
    struct tfw *t = setup_all();
    static const uint8_t m_other[6] = {0, 0x16, 0x3e, 0x5e, 0x6c, 0x0b};
    struct flow a = {T_WORK, IP(9, 9, 9, 9), 77, 0, 1, 8, 10, false};
    struct flow b = {T_OTHER, IP(9, 9, 9, 9), 77, 0, 1, 8, 10, false};
    struct flow r;
    uint8_t f[T_FRAME];
    size_t n;
    uint16_t id;

    n = build(f, m_fe, m_work, &a, 0, 64);
    rx_raw(t, t->work, f, n, 0);
    CHECK_EQ(t->out.n, 1);
    n = build(f, m_fe, m_other, &b, 0, 64);
    rx_raw(t, t->other, f, n, 0);
    CHECK_EQ(t->out.n, 1);
    id = qw_get16(t->out.frames[0].data + 14 + 24);
    CHECK(id != 77);
    CHECK(l4_csum_ok(t->out.frames[0].data + 14));
    r = (struct flow){IP(9, 9, 9, 9), T_FW, id, 0, 1, 0, 10, false};
    n = build(f, m_up, m_gw, &r, 0, 50);
    rx_raw(t, 0, f, n, 0);
    CHECK_EQ(t->out.n, 1);
    CHECK_EQ(t->out.frames[0].link, t->other);
    CHECK_EQ(qw_get16(t->out.frames[0].data + 14 + 24), 77);
    CHECK_EQ(qw_get32(t->out.frames[0].data + 14 + 16), T_OTHER);
    CHECK(l4_csum_ok(t->out.frames[0].data + 14));
    t_free(t);
}

/* A reply to a port of the firewall's own DNS client that no query
 * expects is dropped, never forwarded. */
TEST(fw_dns_self_port_not_forwarded)
{
    struct tfw *t = t_setup();
    static const char *const r[] = {
        "policy=drop", "0000=action=accept dsthost=example.com", NULL};
    struct flow q;
    uint8_t f[T_FRAME];
    size_t n;
    uint16_t port;

    t_rules(t, "10.137.0.10", r);
    CHECK(t->out.n >= 1);
    if (t->out.n < 1) {
        t_free(t);
        return;
    }
    port = qw_get16(t->out.frames[0].data + 14 + 20);
    q = (struct flow){IP(10, 139, 1, 1), T_FW, 53, port, 17, 0, 20, false};
    n = build(f, m_up, m_gw, &q, 0, 60);
    rx_raw(t, 0, f, n, 0);
    CHECK_EQ(t->out.n, 0);
    /* no query in flight has this id: unexpected */
    CHECK(t_dropped_as(t, 0, QW_DROP_DNS_UNEXPECTED));
    t_free(t);
}

/* QubesDB values that are not addresses are ignored with a warning. */
TEST(fw_qdb_bad_values)
{
    struct tfw *t = t_setup();

    t_write(t, "/qubes-primary-dns", "10.139.1.1.1");
    CHECK(t_logged(t, "not an ipv4 address"));
    t_write(t, "/connected-ips", "10.137.0.10 junk 10.137.0.300 10.137.0.50");
    CHECK(t_logged(t, "2 entries are not ipv4"));
    t_rx(t, 0, FX_UPSPOOF_CONNECTED_IN);
    CHECK(t_dropped_as(t, 0, QW_DROP_SPOOF_UPLINK));
    CHECK(qw_qdb_get(t->fw, "/qubes-ip") != NULL);
    CHECK(strcmp(qw_qdb_get(t->fw, "/qubes-ip"), "10.137.0.6") == 0);
    CHECK(qw_qdb_get(t->fw, "/nope") == NULL);
    t_free(t);
}

/* ---- property test: NAT round trips ---- */

static uint32_t prng(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return (uint32_t)*s;
}

/* Compare the reply the client got with the mirror of its flow. */
static int reply_ok(const uint8_t *ip, const struct flow *fl)
{
    const uint8_t *l4 = ip + 20;

    if (!ip_csum_ok(ip) || !l4_csum_ok(ip))
        return 0;
    if (qw_get32(ip + 12) != fl->dst || qw_get32(ip + 16) != fl->src)
        return 0;
    if (fl->proto == 1)
        return qw_get16(l4 + 4) == fl->sport;
    return qw_get16(l4) == fl->dport && qw_get16(l4 + 2) == fl->sport;
}

TEST(fw_property_nat_round_trip)
{
    struct tfw *t = setup_all();
    uint64_t seed = 0x5eed1234abcdull;
    uint8_t f[T_FRAME], q[T_FRAME], out[T_FRAME];
    unsigned ok_out = 0, ok_back = 0, ok_err = 0, flows = 400;
    unsigned partial = 0, ok_partial = 0;

    for (unsigned i = 0; i < flows; i++) {
        struct flow fl, rp;
        uint32_t r = prng(&seed);
        uint8_t *ip;
        size_t n, qlen;
        uint16_t natport;

        fl.src = T_WORK;
        do
            fl.dst = prng(&seed);
        while ((fl.dst >> 24) == 0 || (fl.dst >> 24) == 127 ||
               (fl.dst >> 24) == 10 || fl.dst >= 0xe0000000u);
        fl.proto = (uint8_t)(r % 3 == 0 ? 6 : r % 3 == 1 ? 17 : 1);
        fl.icmp_type = 8;
        fl.sport = (uint16_t)(prng(&seed) | 1);
        fl.dport = (uint16_t)(prng(&seed) % 65535 + 1);
        if (fl.proto == 1)
            fl.dport = 0;
        fl.paylen = (uint16_t)(prng(&seed) % 600);
        fl.udp_nocsum = fl.proto == 17 && (prng(&seed) & 3) == 0;
        n = build(f, m_fe, m_work, &fl, 0x02, (uint8_t)(2 + r % 200));
        rx_raw(t, t->work, f, n, 0);
        if (t->out.n != 1 || t->out.frames[0].link != 0)
            continue;
        ip = t->out.frames[0].data + 14;
        memcpy(out, t->out.frames[0].data, t->out.frames[0].len);
        if (ip_csum_ok(ip) && l4_csum_ok(ip) && qw_get32(ip + 12) == T_FW &&
            qw_get32(ip + 16) == fl.dst &&
            memcmp(t->out.frames[0].data, m_gw, 6) == 0)
            ok_out++;
        natport = qw_get16(ip + 20 + (fl.proto == 1 ? 4 : 0));
        /* the next packet of the flow with a partial checksum
         * (QW_FRAME_CSUM_BLANK, odd and even lengths): completed */
        if (fl.proto != 1 && !fl.udp_nocsum) {
            struct flow f2 = fl;
            uint8_t *l4 = f + 14 + 20;
            unsigned coff = fl.proto == 6 ? 16 : 6;
            uint32_t ps;
            f2.paylen = (uint16_t)(prng(&seed) % 1400);
            n = build(f, m_fe, m_work, &f2, 0x10, 64);
            ps = sum16(0, f + 14 + 12, 8) + fl.proto + (uint32_t)(n - 34);
            while (ps >> 16)
                ps = (ps & 0xffff) + (ps >> 16);
            qw_put16(l4 + coff, (uint16_t)ps);
            rx_raw(t, t->work, f, n, QW_FRAME_CSUM_BLANK);
            if (t->out.n == 1 && l4_csum_ok(t->out.frames[0].data + 14) &&
                qw_get32(t->out.frames[0].data + 14 + 12) == T_FW)
                ok_partial++;
            partial++;
        }
        /* the reply from the remote side */
        rp = fl;
        rp.src = fl.dst;
        rp.dst = T_FW;
        rp.sport = fl.proto == 1 ? natport : fl.dport;
        rp.dport = natport;
        rp.icmp_type = 0;
        n = build(f, m_up, m_gw, &rp, 0x12, 50);
        rx_raw(t, 0, f, n, 0);
        if (t->out.n == 1 && t->out.frames[0].link == t->work &&
            reply_ok(t->out.frames[0].data + 14, &fl))
            ok_back++;
        /* an ICMP error from a router quoting what we sent, cut at a
         * random length >= 28: comes back quoting the client's packet */
        qlen = 28 + prng(&seed) % (qw_get16(out + 16) - 27u);
        memcpy(q, m_up, 6);
        memcpy(q + 6, m_gw, 6);
        q[12] = 8;
        q[13] = 0;
        memset(q + 14, 0, 20);
        q[14] = 0x45;
        qw_put16(q + 16, (uint16_t)(28 + qlen));
        q[22] = 30;
        q[23] = 1;
        qw_put32(q + 26, IP(203, 0, 113, 1));
        qw_put32(q + 30, T_FW);
        fix_ip_csum(q + 14);
        q[34] = 11;
        q[35] = 0;
        memset(q + 36, 0, 6);
        memcpy(q + 42, out + 14, qlen);
        qw_put16(q + 36, fold(sum16(0, q + 34, 8 + qlen)));
        rx_raw(t, 0, q, 14 + 28 + qlen, 0);
        if (t->out.n == 1 && t->out.frames[0].link == t->work) {
            uint8_t *e = t->out.frames[0].data + 14, *in = e + 28;
            /* the quote equals the client's original packet with the TTL
             * it had on the wire out (one less) */
            uint8_t want[T_FRAME];
            n = build(want, m_fe, m_work, &fl, 0x02, (uint8_t)(1 + r % 200));
            if (ip_csum_ok(e) && qw_get32(e + 16) == T_WORK &&
                fold(sum16(0, e + 20, qw_get16(e + 2) - 20u)) == 0 &&
                memcmp(in, want + 14, qlen) == 0)
                ok_err++;
        }
    }
    printf("# %u flows: %u out ok, %u replies ok, %u icmp errors ok, %u/%u "
           "partial checksums completed\n",
           flows, ok_out, ok_back, ok_err, ok_partial, partial);
    CHECK_EQ(ok_out, flows);
    CHECK_EQ(ok_back, flows);
    CHECK_EQ(ok_err, flows);
    CHECK(partial > 100);
    CHECK_EQ(ok_partial, partial);
    t_free(t);
}

/* The fast path's per-link "last connection" hint never outlives the
 * connection: removal by a rule change, expiry, or a flush. */
TEST(fw_fast_path_hint_revalidated)
{
    struct tfw *t = t_setup();
    static const char *const dns_only[] = {
        "policy=drop", "0000=action=accept proto=udp specialtarget=dns", NULL};

    t_rx(t, t->work, FX_SYN_IN);
    t_rx(t, 0, FX_SYNACK_IN);
    CHECK(t_out_is(t, 0, t->work, FX_SYNACK_OUT));
    t_rx(t, t->work, FX_ACK_IN); /* both links now hint at this flow */
    CHECK(t_out_is(t, 0, 0, FX_ACK_OUT));
    t_rx(t, 0, FX_SYNACK_IN);
    CHECK_EQ(t->out.n, 1);
    t_rules(t, "10.137.0.10", dns_only); /* closes the TCP connection */
    t_rx(t, 0, FX_SYNACK_IN);
    CHECK(t_dropped_as(t, 0, QW_DROP_UPLINK_NEW));
    t_rx(t, t->work, FX_ACK_IN);
    CHECK(t_dropped_as(t, t->work, QW_DROP_TCP_NOT_SYN));
    /* expiry: a replied UDP flow lives 120 s without traffic */
    t_rx(t, t->work, FX_DNS_IN);
    t_rx(t, 0, FX_DNSR_IN);
    CHECK(t_out_is(t, 0, t->work, FX_DNSR_OUT));
    t_rx(t, 0, FX_DNSR_IN);
    CHECK(t_out_is(t, 0, t->work, FX_DNSR_OUT));
    t->now += 121 * SEC;
    t_rx(t, 0, FX_DNSR_IN);
    CHECK(t_dropped_as(t, 0, QW_DROP_UPLINK_NEW));
    /* a new netvm flushes everything */
    t_rx(t, t->work, FX_DNS_IN);
    t_rx(t, 0, FX_DNSR_IN);
    CHECK_EQ(t->out.n, 1);
    t_write(t, "/qubes-gateway", "10.137.0.3");
    t_rx(t, 0, FX_DNSR_IN);
    CHECK(t_dropped_as(t, 0, QW_DROP_UPLINK_NEW));
    t_free(t);
}

/* A bare SYN on a finished connection (TIME_WAIT) is a new connection:
 * judged by the rules again, with a fresh entry (Linux behaviour). */
TEST(fw_tcp_syn_reopens_finished_connection)
{
    struct tfw *t = setup_all();
    struct flow c = {T_WORK, IP(93, 184, 216, 34), 40100, 443, 6, 0, 0, false};
    struct flow r = {IP(93, 184, 216, 34), T_FW, 443, 40100, 6, 0, 0, false};
    struct ct_key k = {T_WORK, IP(93, 184, 216, 34), 40100, 443, 6, {0}};
    struct ct_entry *e;
    uint8_t f[T_FRAME];
    uint64_t created;
    size_t n;

    n = build(f, m_fe, m_work, &c, 0x02, 64); /* SYN */
    rx_raw(t, t->work, f, n, 0);
    n = build(f, m_up, m_gw, &r, 0x12, 64); /* SYN-ACK */
    rx_raw(t, 0, f, n, 0);
    n = build(f, m_fe, m_work, &c, 0x10, 64); /* ACK */
    rx_raw(t, t->work, f, n, 0);
    n = build(f, m_fe, m_work, &c, 0x11, 64); /* FIN */
    rx_raw(t, t->work, f, n, 0);
    n = build(f, m_up, m_gw, &r, 0x11, 64); /* FIN */
    rx_raw(t, 0, f, n, 0);
    n = build(f, m_fe, m_work, &c, 0x10, 64); /* last ACK */
    rx_raw(t, t->work, f, n, 0);
    CHECK_EQ(t->out.n, 1);
    e = ct_lookup_dir(((struct qw *)t->fw)->ct, &k, 0, t->now);
    CHECK(e != NULL && ct_tcp_closing(e));
    created = ct_get_stats(((struct qw *)t->fw)->ct)->created;
    n = build(f, m_fe, m_work, &c, 0x02, 64); /* a new SYN */
    rx_raw(t, t->work, f, n, 0);
    CHECK_EQ(t->out.n, 1);
    e = ct_lookup_dir(((struct qw *)t->fw)->ct, &k, 0, t->now);
    CHECK(e != NULL && e->state == CT_SYN_SENT);
    /* a new entry, created after the rules said yes again */
    CHECK_EQ(ct_get_stats(((struct qw *)t->fw)->ct)->created, created + 1);
    CHECK_EQ(qw_counter(t->fw, t->work, QW_DROP_RULE), 0);
    t_free(t);
}

/* Found by fuzz_pipeline: TOS and total length swapped keep the header
 * checksum valid (same one's complement sum) but give a total length of
 * 0; on a tracked flow the fast path once forwarded a 14-byte frame. */
TEST(fw_total_length_below_header)
{
    struct tfw *t = t_setup();
    uint8_t b[T_FRAME], *ip = b + 14;
    size_t n;

    t_rx(t, t->work, FX_DNS_IN);
    n = from_hex(FX_DNSR_IN, b);
    ip[1] = ip[3]; /* 45 00 00 xx -> 45 xx 00 00 */
    ip[3] = 0;
    CHECK(ip_csum_ok(ip));
    rx_raw(t, 0, b, n, 0);
    CHECK_EQ(t->out.n, 0);
    CHECK(t_dropped_as(t, 0, QW_DROP_IP_LEN));
    n = from_hex(FX_ACK_IN, b); /* the same on TCP, from the client */
    t_rx(t, t->work, FX_SYN_IN);
    ip[1] = ip[3];
    ip[3] = 0;
    rx_raw(t, t->work, b, n, 0);
    CHECK_EQ(t->out.n, 0);
    CHECK(t_dropped_as(t, t->work, QW_DROP_IP_LEN));
    t_free(t);
}

/* One client flooding new connections cannot push out another client's
 * (per-client conntrack quota) nor starve its own oldest flows first when
 * a never-answered one can go. */
TEST(fw_flood_keeps_other_clients_connections)
{
    struct tfw *t = setup_all(); /* table of 256 connections */
    static const uint8_t m_other[6] = {0, 0x16, 0x3e, 0x5e, 0x6c, 0x0b};
    struct flow o = {T_OTHER, IP(9, 9, 9, 9), 5000, 53, 17, 0, 10, false};
    struct flow r = {IP(9, 9, 9, 9), T_FW, 53, 5000, 17, 0, 10, false};
    struct flow w = {T_WORK, IP(8, 8, 4, 4), 0, 53, 17, 0, 10, false};
    uint8_t f[T_FRAME];
    size_t n;

    n = build(f, m_fe, m_other, &o, 0, 64);
    rx_raw(t, t->other, f, n, 0);
    CHECK_EQ(t->out.n, 1);
    for (unsigned i = 0; i < 1000; i++) {
        w.sport = (uint16_t)(10000 + i);
        n = build(f, m_fe, m_work, &w, 0, 64);
        rx_raw(t, t->work, f, n, 0);
    }
    CHECK(qw_counter(t->fw, t->work, QW_DROP_NAT_NO_PORT) +
              qw_counter(t->fw, t->work, QW_DROP_NAT_TABLE_FULL) ==
          0);
    n = build(f, m_up, m_gw, &r, 0, 50); /* other's reply still passes */
    rx_raw(t, 0, f, n, 0);
    CHECK_EQ(t->out.n, 1);
    CHECK_EQ(t->out.n ? t->out.frames[0].link : 0, t->other);
    t_free(t);
}

/* QubesDB reconnects (dom0 daemon restart): a fresh dump re-applies the
 * settings and rules without disturbing traffic; garbage is refused. */
TEST(fw_qdb_reconnect)
{
    struct tfw *t = t_setup();
    uint8_t junk[100];
    uint8_t buf[256];

    t_rx(t, t->work, FX_SYN_IN);
    memset(junk, 0xee, sizeof junk);
    CHECK_EQ(qw_qdb_rx(t->fw, junk, sizeof junk, t->now, &t->out), -QW_EPROTO);
    t_dump(t); /* reconnect: MULTIREAD again, same values */
    CHECK(qw_qdb_tx(t->fw, buf, sizeof buf) > 0); /* MULTIREAD queued */
    /* this dump has no rule tree for work: its compiled rules stay */
    t_rx(t, 0, FX_SYNACK_IN); /* the connection survived */
    CHECK(t_out_is(t, 0, t->work, FX_SYNACK_OUT));
    t_rx(t, t->work, FX_SYN80_IN);
    CHECK(t_out_is(t, 0, t->work, FX_SYN80_REJECT));
    t_free(t);
}

/* Review findings F1-F5 (notes/h1-fw.md, h10-breaker), one check each. */

/* F1: a client's ICMP error goes only back to the connection's remote
 * end, and its quote is cut to 576 bytes. */
TEST(fw_client_icmp_error_only_to_remote)
{
    struct tfw *t = t_setup();
    uint8_t b[T_FRAME], *ip = b + 14;
    size_t n;

    t_rx(t, t->work, FX_DNS_IN);
    t_rx(t, 0, FX_DNSR_IN);
    n = from_hex(FX_DNSR_UNREACH_IN, b);
    qw_put32(ip + 16, IP(93, 184, 216, 34)); /* another host */
    fix_ip_csum(ip);
    rx_raw(t, t->work, b, n, 0);
    CHECK_EQ(t->out.n, 0);
    CHECK(t_dropped_as(t, t->work, QW_DROP_ICMP_ERR_UNTRACKED));
    /* to the right host with 700 bytes of trailing data: cut */
    n = from_hex(FX_DNSR_UNREACH_IN, b);
    memset(b + n, 0x5a, 700);
    n += 700;
    qw_put16(ip + 2, (uint16_t)(n - 14));
    fix_ip_csum(ip);
    qw_put16(ip + 22, 0);
    qw_put16(ip + 22, fold(sum16(0, ip + 20, n - 34)));
    rx_raw(t, t->work, b, n, 0);
    CHECK_EQ(t->out.n, 1);
    CHECK_EQ(t->out.n ? t->out.frames[0].len : 0, 14 + 576);
    if (t->out.n == 1) {
        CHECK(ip_csum_ok(t->out.frames[0].data + 14));
        CHECK(l4_csum_ok(t->out.frames[0].data + 14));
    }
    t_free(t);
}

/* F2: the ICMP type is part of a query's identity. */
TEST(fw_icmp_type_not_riding_echo)
{
    struct tfw *t = t_setup(); /* work: icmp only with icmptype=8 */
    struct flow ts = {T_WORK, IP(93, 184, 216, 34), 0x0bcd, 0, 1, 13, 12,
                      false};
    struct flow tr = {IP(93, 184, 216, 34), T_FW, 0x0bcd, 0, 1, 14, 12, false};
    uint8_t f[T_FRAME];
    size_t n;

    t_rx(t, t->work, FX_PING_IN); /* echo id 0x0bcd tracked */
    CHECK(t_out_is(t, 0, 0, FX_PING_OUT));
    n = build(f, m_fe, m_work, &ts, 0, 64); /* timestamp, same id */
    rx_raw(t, t->work, f, n, 0);
    CHECK(t_dropped_as(t, t->work, QW_DROP_RULE));
    CHECK(t->out.n == 1 && t->out.frames[0].link == (unsigned)t->work);
    n = build(f, m_up, m_gw, &tr, 0, 50); /* timestamp reply, same id */
    rx_raw(t, 0, f, n, 0);
    CHECK(t_dropped_as(t, 0, QW_DROP_ICMP_TYPE));
    CHECK_EQ(t->out.n, 0);
    t_rx(t, 0, FX_PONG_IN); /* the echo reply itself still passes */
    CHECK(t_out_is(t, 0, t->work, FX_PONG_OUT));
    t_free(t);
}

/* F3: an answer to our own DNS client with a bad UDP checksum is not
 * believed. */
TEST(fw_dns_reply_udp_checksum_verified)
{
    struct tfw *t = t_setup();
    static const char *const r[] = {
        "policy=drop", "0000=action=accept dsthost=example.com", NULL};
    struct flow q;
    uint8_t f[T_FRAME];
    size_t n;
    uint16_t port;

    t_rules(t, "10.137.0.10", r);
    CHECK(t->out.n >= 1);
    if (t->out.n < 1) {
        t_free(t);
        return;
    }
    port = qw_get16(t->out.frames[0].data + 14 + 20);
    q = (struct flow){IP(10, 139, 1, 1), T_FW, 53, port, 17, 0, 20, false};
    n = build(f, m_up, m_gw, &q, 0, 60);
    f[14 + 20 + 8 + 3] ^= 4; /* damaged in transit */
    rx_raw(t, 0, f, n, 0);
    CHECK(t_dropped_as(t, 0, QW_DROP_L4_CSUM));
    CHECK_EQ(t->out.n, 0);
    t_free(t);
}

/* F4: a gateway flapping its MAC makes no info lines. */
TEST(fw_gateway_mac_flap_quiet)
{
    struct tfw *t = t_setup();
    uint8_t b[T_FRAME];
    size_t n = from_hex(FX_ARP_UP_GWREP, b);
    unsigned before = t->nlog;

    for (int i = 0; i < 100; i++) {
        b[11] = b[27] = (uint8_t)(i & 1 ? 2 : 3); /* sender MAC */
        rx_raw(t, 0, b, n, 0);
    }
    CHECK_EQ(t->nlog, before);
    t_free(t);
}

/* F5: source-routed packets (LSRR/SSRR) and malformed options are
 * refused; other options pass (sem_s32). */
TEST(fw_source_route_refused)
{
    struct tfw *t = setup_all();
    uint8_t b[T_FRAME], *ip = b + 14;
    size_t n = from_hex(FX_SYN_OPTS_IN, b);

    ip[20] = 0x83; /* LSRR, length 4... */
    ip[21] = 4;
    fix_ip_csum(ip);
    rx_raw(t, t->work, b, n, 0);
    CHECK(t_dropped_as(t, t->work, QW_DROP_IP_OPTIONS));
    ip[20] = 0x89; /* SSRR */
    fix_ip_csum(ip);
    rx_raw(t, t->work, b, n, 0);
    CHECK(t_dropped_as(t, t->work, QW_DROP_IP_OPTIONS));
    ip[20] = 0x94; /* router alert with a length past the header */
    ip[21] = 9;
    fix_ip_csum(ip);
    rx_raw(t, t->work, b, n, 0);
    CHECK(t_dropped_as(t, t->work, QW_DROP_IP_OPTIONS));
    CHECK_EQ(t->out.n, 0);
    t_free(t);
}

/* F2b: a second query type the rules accept shares the echo's entry, and
 * its answers come back too. */
TEST(fw_icmp_second_type_answered)
{
    struct tfw *t = setup_all(); /* accept everything */
    struct flow ts = {T_WORK, IP(93, 184, 216, 34), 0x0bcd, 0, 1, 13, 12,
                      false};
    struct flow tr = {IP(93, 184, 216, 34), T_FW, 0x0bcd, 0, 1, 14, 12, false};
    struct flow mr = {IP(93, 184, 216, 34), T_FW, 0x0bcd, 0, 1, 18, 12, false};
    uint8_t f[T_FRAME];
    size_t n;

    t_rx(t, t->work, FX_PING_IN);
    CHECK(t_out_is(t, 0, 0, FX_PING_OUT));
    n = build(f, m_fe, m_work, &ts, 0, 64);
    rx_raw(t, t->work, f, n, 0);
    CHECK(t->out.n == 1 && t->out.frames[0].link == 0);
    n = build(f, m_up, m_gw, &tr, 0, 50);
    rx_raw(t, 0, f, n, 0);
    CHECK(t->out.n == 1 && t->out.frames[0].link == (unsigned)t->work);
    n = build(f, m_up, m_gw, &mr, 0, 50); /* mask reply: never asked */
    rx_raw(t, 0, f, n, 0);
    CHECK(t_dropped_as(t, 0, QW_DROP_ICMP_TYPE));
    t_rx(t, 0, FX_PONG_IN);
    CHECK(t_out_is(t, 0, t->work, FX_PONG_OUT));
    t_free(t);
}

/* qw_qdb_synced() follows the initial dump of each stream: platforms use
 * it to wait for dom0's database instead of parsing the stream again. */
TEST(fw_qdb_synced_follows_dump)
{
    struct qw_config c = t_config();
    struct tfw *t = t_new_cfg(&c);

    CHECK(!qw_qdb_synced(t->fw));
    qw_qdb_connected(t->fw, t->now);
    CHECK(!qw_qdb_synced(t->fw));
    t_qdb(t, QDB_RESP_MULTIREAD, "/qubes-ip", "10.137.0.6");
    CHECK(!qw_qdb_synced(t->fw));
    t_qdb(t, QDB_RESP_MULTIREAD, "", NULL);
    CHECK(qw_qdb_synced(t->fw));
    t_write(t, "/qubes-gateway", "10.137.0.2");
    CHECK(qw_qdb_synced(t->fw));
    qw_qdb_connected(t->fw, t->now); /* dom0's daemon restarted */
    CHECK(!qw_qdb_synced(t->fw));
    t_free(t);
}

int main(void)
{
    RUN(fw_create_validates);
    RUN(fw_mem_info_costs);
    RUN(fw_malformed_frames);
    RUN(fw_icmp_error_bad_quotes);
    RUN(fw_no_error_about_errors);
    RUN(fw_bad_link_and_tx_full);
    RUN(fw_batch_in_place);
    RUN(fw_uplink_down_and_detach);
    RUN(fw_attach_limits);
    RUN(fw_uplink_ping);
    RUN(fw_icmp_id_conflict);
    RUN(fw_dns_self_port_not_forwarded);
    RUN(fw_qdb_bad_values);
    RUN(fw_property_nat_round_trip);
    RUN(fw_fast_path_hint_revalidated);
    RUN(fw_tcp_syn_reopens_finished_connection);
    RUN(fw_total_length_below_header);
    RUN(fw_flood_keeps_other_clients_connections);
    RUN(fw_qdb_reconnect);
    RUN(fw_client_icmp_error_only_to_remote);
    RUN(fw_icmp_type_not_riding_echo);
    RUN(fw_icmp_second_type_answered);
    RUN(fw_dns_reply_udp_checksum_verified);
    RUN(fw_gateway_mac_flap_quiet);
    RUN(fw_source_route_refused);
    RUN(fw_qdb_synced_follows_dump);
    return test_summary();
}
