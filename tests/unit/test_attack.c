/*
 * test_attack.c: attacks on the verdict pipeline (h10 review). Each test
 * plays a hostile client, uplink or dom0 against the standard harness
 * setup (test_fw_harness.h) and states the behaviour semantics.md wants.
 * Frames are built here field by field (addresses, ports, checksums), so
 * the attacks are easy to vary; every frame the firewall sends is checked
 * for valid IPv4 and L4 checksums.
 *
 * Attacks that still succeed live in tests/unit/attack_pending.c (not
 * committed until fixed; see /work/notes/h1-fw.md); it includes this file
 * with ATTACK_NO_MAIN for the helpers. Build and run it with
 *   make B=build/<you> build/<you>/unit/attack_pending
 */
/* not every harness helper is used in every includer */
#pragma GCC diagnostic ignored "-Wunused-function"
#include "test_fw_harness.h"

static const uint8_t a_mac_fe[6] = {0xfe, 0xff, 0xff, 0xff, 0xff, 0xff};
static const uint8_t a_mac_up[6] = {0x00, 0x16, 0x3e, 0x5e, 0x6c, 0x00};
static const uint8_t a_mac_gw[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x02};
static const uint8_t a_mac_work[6] = {0x00, 0x16, 0x3e, 0x5e, 0x6c, 0x0a};

#define A_REMOTE IP(203, 0, 113, 5)  /* allowed by work's 443 rule */
#define A_OK_NET IP(198, 51, 100, 7) /* allowed by work's dst4 rule */
#define A_DENIED IP(8, 8, 8, 8)      /* policy drop for work */

/* L4 checksum (TCP/UDP with pseudo-header, ICMP without). */
static uint16_t a_l4_csum(uint32_t src, uint32_t dst, uint8_t proto,
                          const uint8_t *l4, uint32_t n)
{
    uint8_t ph[12];
    uint32_t s = 0;

    if (proto == IPPROTO_TCP_ || proto == IPPROTO_UDP_) {
        qw_put32(ph, src);
        qw_put32(ph + 4, dst);
        ph[8] = 0;
        ph[9] = proto;
        qw_put16(ph + 10, (uint16_t)n);
        s = qw_csum_add(0, ph, 12);
    }
    return qw_csum_fold(qw_csum_add(s, l4, n));
}

static unsigned a_csum_off(uint8_t proto)
{
    return proto == IPPROTO_TCP_ ? 16 : proto == IPPROTO_UDP_ ? 6 : 2;
}

/* A raw IPv4 packet (no Ethernet) into ip; returns its length. The L4
 * checksum is filled in (UDP: nonzero). */
static uint32_t a_ip(uint8_t *ip, uint32_t src, uint32_t dst, uint8_t proto,
                     uint8_t ttl, uint16_t frag, const uint8_t *l4,
                     uint32_t l4len)
{
    uint32_t len = IP4_MIN_HLEN + l4len;
    uint8_t *p = ip + IP4_MIN_HLEN;

    memset(ip, 0, IP4_MIN_HLEN);
    ip[0] = 0x45;
    qw_put16(ip + 2, (uint16_t)len);
    qw_put16(ip + 4, 0x1234);
    qw_put16(ip + 6, frag);
    ip[8] = ttl;
    ip[9] = proto;
    qw_put32(ip + 12, src);
    qw_put32(ip + 16, dst);
    qw_put16(ip + 10, qw_csum_fold(qw_csum_add(0, ip, IP4_MIN_HLEN)));
    memmove(p, l4, l4len);
    if (proto == IPPROTO_TCP_ || proto == IPPROTO_UDP_ ||
        proto == IPPROTO_ICMP_) {
        unsigned o = a_csum_off(proto);
        uint16_t c;
        qw_put16(p + o, 0);
        c = a_l4_csum(src, dst, proto, p, l4len);
        if (c == 0 && proto == IPPROTO_UDP_)
            c = 0xffff;
        qw_put16(p + o, c);
    }
    return len;
}

static uint32_t a_tcp(uint8_t *l4, uint16_t sport, uint16_t dport,
                      uint8_t flags)
{
    memset(l4, 0, 20);
    qw_put16(l4, sport);
    qw_put16(l4 + 2, dport);
    qw_put32(l4 + 4, 1000);
    l4[12] = 5 << 4;
    l4[13] = flags;
    qw_put16(l4 + 14, 65535);
    return 20;
}

static uint32_t a_udp(uint8_t *l4, uint16_t sport, uint16_t dport,
                      const void *data, uint32_t n)
{
    qw_put16(l4, sport);
    qw_put16(l4 + 2, dport);
    qw_put16(l4 + 4, (uint16_t)(8 + n));
    qw_put16(l4 + 6, 0);
    memcpy(l4 + 8, data, n);
    return 8 + n;
}

static uint32_t a_icmp(uint8_t *l4, uint8_t type, uint8_t code, uint16_t id,
                       uint16_t seq, const void *data, uint32_t n)
{
    l4[0] = type;
    l4[1] = code;
    qw_put16(l4 + 2, 0);
    qw_put16(l4 + 4, id);
    qw_put16(l4 + 6, seq);
    memcpy(l4 + 8, data, n);
    return 8 + n;
}

/* Send one Ethernet frame carrying ip (iplen bytes) on link. */
static void a_send(struct tfw *t, unsigned link, const uint8_t *ip,
                   uint32_t iplen, uint16_t flags)
{
    uint8_t *buf = t->in[t->in_next++ % T_MAXIN];
    struct qw_frame f = {buf, ETH_HLEN + iplen, (uint16_t)link, flags};

    memcpy(buf, link == 0 ? a_mac_up : a_mac_fe, 6);
    memcpy(buf + 6, link == 0 ? a_mac_gw : a_mac_work, 6);
    buf[12] = 0x08;
    buf[13] = 0x00;
    memcpy(buf + ETH_HLEN, ip, iplen);
    t_reset_out(t);
    qw_rx(t->fw, link, &f, 1, t->now, &t->out);
}

/* Output i's IPv4 header, or NULL. */
static const uint8_t *a_out_ip(const struct tfw *t, unsigned i)
{
    if (i >= t->out.n || t->out.frames[i].len < ETH_HLEN + IP4_MIN_HLEN)
        return NULL;
    return t->out.frames[i].data + ETH_HLEN;
}

/* Every output frame has a valid IPv4 header checksum and, when it is not
 * a fragment, a valid TCP/UDP/ICMP checksum. */
static int a_out_csums_ok(const struct tfw *t)
{
    for (unsigned i = 0; i < t->out.n; i++) {
        const uint8_t *ip = a_out_ip(t, i);
        unsigned hl, len;
        if (ip == NULL || qw_get16(t->out.frames[i].data + 12) != 0x0800)
            continue;
        hl = (ip[0] & 15) * 4u;
        len = qw_get16(ip + 2);
        if (qw_csum_fold(qw_csum_add(0, ip, hl)) != 0) {
            fprintf(stderr, "    output %u: bad IP checksum\n", i);
            return 0;
        }
        if (qw_get16(ip + 6) & (IP4_FLAG_MF | IP4_OFF_MASK))
            continue;
        if (ip[9] == IPPROTO_UDP_ && qw_get16(ip + hl + 6) == 0)
            continue;
        if ((ip[9] == IPPROTO_TCP_ || ip[9] == IPPROTO_UDP_ ||
             ip[9] == IPPROTO_ICMP_) &&
            a_l4_csum(qw_get32(ip + 12), qw_get32(ip + 16), ip[9], ip + hl,
                      len - hl) != 0) {
            fprintf(stderr, "    output %u: bad L4 checksum\n", i);
            return 0;
        }
    }
    return 1;
}

/* Number of output frames on link. */
static unsigned a_nout(const struct tfw *t, unsigned link)
{
    unsigned n = 0;

    for (unsigned i = 0; i < t->out.n; i++)
        n += t->out.frames[i].link == link;
    return n;
}

/* Client work opens TCP sport -> dst:dport (SYN); returns the NAT port. */
static uint16_t a_open_tcp(struct tfw *t, uint32_t dst, uint16_t sport,
                           uint16_t dport)
{
    uint8_t l4[64], ip[128];
    uint32_t n = a_tcp(l4, sport, dport, 0x02);

    n = a_ip(ip, T_WORK, dst, IPPROTO_TCP_, 64, 0, l4, n);
    a_send(t, (unsigned)t->work, ip, n, 0);
    if (a_nout(t, 0) != 1)
        return 0;
    return qw_get16(a_out_ip(t, 0) + 20);
}

#ifndef ATTACK_NO_MAIN

/* ---- regression: attacks that the firewall resists ------------------ */

/*
 * The uplink spoofs another client (one only listed in /connected-ips)
 * and the firewall itself as the source: dropped as spoofing, nothing
 * forwarded, even towards an open connection's NAT port.
 */
TEST(uplink_spoof_internal_sources)
{
    struct tfw *t = t_setup();
    uint8_t l4[64], ip[128];
    uint16_t np = a_open_tcp(t, A_REMOTE, 40000, 443);
    uint32_t n;
    const uint32_t srcs[] = {IP(10, 137, 0, 50), T_OTHER, T_FW, T_WORK};

    CHECK(np != 0);
    for (unsigned i = 0; i < 4; i++) {
        n = a_tcp(l4, 443, np, 0x10);
        n = a_ip(ip, srcs[i], T_FW, IPPROTO_TCP_, 64, 0, l4, n);
        a_send(t, 0, ip, n, 0);
        CHECK_EQ(t->out.n, 0);
        CHECK(t_dropped_as(t, 0, QW_DROP_SPOOF_UPLINK));
    }
    t_free(t);
}

/*
 * A new connection from the uplink (SYN and a UDP datagram to our address,
 * a packet for a client's address directly) never reaches a client.
 */
TEST(uplink_new_never_reaches_client)
{
    struct tfw *t = t_setup();
    uint8_t l4[64], ip[128];
    uint32_t n;

    n = a_tcp(l4, 5555, 22, 0x02);
    n = a_ip(ip, A_REMOTE, T_FW, IPPROTO_TCP_, 64, 0, l4, n);
    a_send(t, 0, ip, n, 0);
    CHECK_EQ(t->out.n, 0);
    CHECK(t_dropped_as(t, 0, QW_DROP_UPLINK_NEW));

    n = a_udp(l4, 53, 40000, "x", 1);
    n = a_ip(ip, A_REMOTE, T_WORK, IPPROTO_UDP_, 64, 0, l4, n);
    a_send(t, 0, ip, n, 0);
    CHECK_EQ(t->out.n, 0);
    CHECK(t_dropped_as(t, 0, QW_DROP_UPLINK_NEW));
    t_free(t);
}

/*
 * The uplink answers a client's connection from the right port but to a
 * NAT port that differs by one: no hit, dropped. The right one is
 * translated with valid checksums.
 */
TEST(uplink_reply_exact_tuple_only)
{
    struct tfw *t = t_setup();
    uint8_t l4[64], ip[128];
    uint16_t np = a_open_tcp(t, A_REMOTE, 40001, 443);
    uint32_t n;

    CHECK(np != 0);
    n = a_tcp(l4, 443, (uint16_t)(np + 1), 0x12);
    n = a_ip(ip, A_REMOTE, T_FW, IPPROTO_TCP_, 64, 0, l4, n);
    a_send(t, 0, ip, n, 0);
    CHECK_EQ(t->out.n, 0);
    n = a_tcp(l4, 443, np, 0x12);
    n = a_ip(ip, A_REMOTE, T_FW, IPPROTO_TCP_, 64, 0, l4, n);
    a_send(t, 0, ip, n, 0);
    CHECK_EQ(a_nout(t, (unsigned)t->work), 1);
    CHECK(a_out_csums_ok(t));
    if (t->out.n == 1) {
        CHECK_EQ(qw_get32(a_out_ip(t, 0) + 16), T_WORK);
        CHECK_EQ(qw_get16(a_out_ip(t, 0) + 22), 40001);
    }
    t_free(t);
}

/*
 * An ICMP error from the uplink quoting the client's connection is
 * translated back (outer destination, quoted source address and port,
 * quoted IP checksum, outer ICMP checksum); with a quote cut to 28 bytes
 * as well as with a full one.
 */
TEST(uplink_icmp_error_translation)
{
    struct tfw *t = t_setup();
    uint8_t l4[600], ip[700], q[600], ql4[64];
    uint16_t np = a_open_tcp(t, A_REMOTE, 40002, 443);
    uint32_t n, qn;

    CHECK(np != 0);
    /* the datagram we sent, as the router saw it */
    qn = a_tcp(ql4, np, 443, 0x02);
    qn = a_ip(q, T_FW, A_REMOTE, IPPROTO_TCP_, 60, 0, ql4, qn);
    for (int cut = 0; cut < 2; cut++) {
        uint32_t ql = cut ? 28 : qn;
        const uint8_t *o, *in;
        n = a_icmp(l4, ICMP_DEST_UNREACH, 1, 0, 0, q, ql);
        n = a_ip(ip, IP(192, 0, 2, 1), T_FW, IPPROTO_ICMP_, 64, 0, l4, n);
        a_send(t, 0, ip, n, 0);
        CHECK_EQ(a_nout(t, (unsigned)t->work), 1);
        CHECK(a_out_csums_ok(t));
        o = a_out_ip(t, 0);
        if (o == NULL)
            continue;
        in = o + 28;
        CHECK_EQ(qw_get32(o + 16), T_WORK);
        CHECK_EQ(qw_get32(in + 12), T_WORK);
        CHECK_EQ(qw_get16(in + 20), 40002);
        CHECK_EQ(qw_csum_fold(qw_csum_add(0, in, 20)), 0);
        if (!cut)
            CHECK_EQ(a_l4_csum(T_WORK, A_REMOTE, IPPROTO_TCP_, in + 20, 20), 0);
    }
    t_free(t);
}

/*
 * An ICMP error from a client quoting another client's connection, or no
 * connection at all, is dropped whatever the rules say.
 */
TEST(client_icmp_error_untracked)
{
    struct tfw *t = t_setup();
    uint8_t l4[600], ip[700], q[600], ql4[64];
    uint32_t n, qn;

    qn = a_tcp(ql4, 443, 40003, 0x12);
    qn = a_ip(q, A_OK_NET, T_WORK, IPPROTO_TCP_, 60, 0, ql4, qn);
    n = a_icmp(l4, ICMP_DEST_UNREACH, 3, 0, 0, q, qn);
    n = a_ip(ip, T_WORK, A_OK_NET, IPPROTO_ICMP_, 64, 0, l4, n);
    a_send(t, (unsigned)t->work, ip, n, 0);
    CHECK_EQ(t->out.n, 0);
    CHECK(t_dropped_as(t, (unsigned)t->work, QW_DROP_ICMP_ERR_UNTRACKED));
    t_free(t);
}

/*
 * Client to client: to an attached client, to an address only in
 * /connected-ips, even when the sender's rules would accept it (rule 0005
 * style accept-all to that prefix is not needed: isolation comes first).
 */
TEST(client_to_client_isolated)
{
    struct tfw *t = t_setup();
    static const char *const open_rules[] = {"policy=drop",
                                             "0000=action=accept", NULL};
    uint8_t l4[64], ip[128];
    uint32_t n;
    const uint32_t dsts[] = {T_OTHER, IP(10, 137, 0, 50)};

    t_rules(t, "10.137.0.10", open_rules);
    for (unsigned i = 0; i < 2; i++) {
        n = a_tcp(l4, 40010, 22, 0x02);
        n = a_ip(ip, T_WORK, dsts[i], IPPROTO_TCP_, 64, 0, l4, n);
        a_send(t, (unsigned)t->work, ip, n, 0);
        CHECK_EQ(t->out.n, 0);
        CHECK(t_dropped_as(t, (unsigned)t->work, QW_DROP_CLIENT_TO_CLIENT));
    }
    t_free(t);
}

/*
 * A connection to an outside address that later appears in
 * /connected-ips is closed: the uplink can no longer reach the client
 * through it (the fast path relies on this).
 */
TEST(connection_to_new_internal_address_closed)
{
    struct tfw *t = t_setup();
    uint8_t l4[64], ip[128];
    uint16_t np = a_open_tcp(t, A_OK_NET, 40011, 80);
    uint32_t n;

    CHECK(np != 0);
    n = a_tcp(l4, 80, np, 0x12);
    n = a_ip(ip, A_OK_NET, T_FW, IPPROTO_TCP_, 64, 0, l4, n);
    a_send(t, 0, ip, n, 0);
    CHECK_EQ(a_nout(t, (unsigned)t->work), 1);
    t_write(t, "/connected-ips", "10.137.0.10 10.137.0.11 198.51.100.7");
    n = a_tcp(l4, 80, np, 0x10);
    n = a_ip(ip, A_OK_NET, T_FW, IPPROTO_TCP_, 64, 0, l4, n);
    a_send(t, 0, ip, n, 0);
    CHECK_EQ(t->out.n, 0);
    CHECK(t_dropped_as(t, 0, QW_DROP_SPOOF_UPLINK));
    t_free(t);
}

/*
 * A client floods with everything that is dropped (spoofed source, rule
 * drop, bad header checksum, mid-stream TCP, untracked ICMP error, IPv6):
 * at the default info level, nothing is logged per packet.
 */
TEST(client_flood_no_info_logs)
{
    struct tfw *t = t_setup();
    uint8_t l4[600], ip[700];
    unsigned before = t->nlog;
    uint32_t n;

    for (unsigned i = 0; i < 400; i++) {
        t->now += SEC / 100;
        switch (i % 5) {
        case 0:
            n = a_tcp(l4, (uint16_t)(1024 + i), 80, 0x02);
            n = a_ip(ip, IP(10, 137, 0, 99), A_DENIED, IPPROTO_TCP_, 64, 0, l4,
                     n);
            break;
        case 1:
            n = a_tcp(l4, (uint16_t)(1024 + i), 80, 0x02);
            n = a_ip(ip, T_WORK, A_DENIED, IPPROTO_TCP_, 64, 0, l4, n);
            break;
        case 2:
            n = a_tcp(l4, (uint16_t)(1024 + i), 80, 0x10);
            n = a_ip(ip, T_WORK, A_REMOTE, IPPROTO_TCP_, 64, 0, l4, n);
            break;
        case 3:
            n = a_tcp(l4, (uint16_t)(1024 + i), 443, 0x02);
            n = a_ip(ip, T_WORK, A_REMOTE, IPPROTO_TCP_, 64, 0, l4, n);
            ip[10] ^= 1; /* bad header checksum */
            break;
        default:
            n = a_icmp(l4, ICMP_TIME_EXCEEDED, 0, 0, 0, ip, 28);
            n = a_ip(ip, T_WORK, A_REMOTE, IPPROTO_ICMP_, 64, 0, l4, n);
            break;
        }
        a_send(t, (unsigned)t->work, ip, n, 0);
        CHECK(a_out_csums_ok(t));
    }
    CHECK_EQ(t->nlog, before);
    t_free(t);
}

/*
 * The reject for a rule drop: ICMP 3/13 from our address to the client,
 * quoting the header, valid checksums; rate limited to a burst of 50.
 */
TEST(reject_shape_and_limit)
{
    struct tfw *t = t_setup();
    uint8_t l4[64], ip[128];
    unsigned sent = 0;
    uint32_t n;

    for (unsigned i = 0; i < 200; i++) {
        n = a_tcp(l4, (uint16_t)(2000 + i), 80, 0x02);
        n = a_ip(ip, T_WORK, A_DENIED, IPPROTO_TCP_, 64, 0, l4, n);
        a_send(t, (unsigned)t->work, ip, n, 0);
        CHECK(a_out_csums_ok(t));
        if (t->out.n == 1) {
            const uint8_t *o = a_out_ip(t, 0);
            sent++;
            if (i == 0) {
                CHECK_EQ(o[20], ICMP_DEST_UNREACH);
                CHECK_EQ(o[21], ICMP_ADMIN_PROHIBITED);
                CHECK_EQ(qw_get32(o + 12), T_FW);
                CHECK_EQ(qw_get32(o + 16), T_WORK);
                CHECK_EQ(qw_get32(o + 28 + 16), A_DENIED);
            }
        }
    }
    CHECK_EQ(sent, 50);
    CHECK_EQ(qw_counter(t->fw, (unsigned)t->work, QW_DROP_RULE), 200);
    CHECK_EQ(qw_counter(t->fw, (unsigned)t->work, QW_DROP_REJECT_LIMIT), 150);
    t_free(t);
}

/*
 * Fragmented attack: the first fragment carries a harmless port, later
 * ones overlap to rewrite the port (or the header): reassembly rejects
 * overlap, so the rules judge what is delivered.
 */
TEST(fragment_overlap_port_rewrite)
{
    struct tfw *t = t_setup();
    uint8_t l4[64], ip[128], f1[128], f2[128];
    uint32_t n, n1, n2;

    /* a 40-byte TCP SYN to 443 (allowed), cut into 0-15 and 8-39 (overlap
     * rewrites the destination port to 22 in the second piece) */
    n = a_tcp(l4, 40020, 443, 0x02);
    memset(l4 + 20, 'A', 20);
    n = a_ip(ip, T_WORK, A_REMOTE, IPPROTO_TCP_, 64, 0, l4, 40);
    (void)n;
    n1 = a_ip(f1, T_WORK, A_REMOTE, IPPROTO_TCP_, 64, IP4_FLAG_MF, ip + 20, 16);
    memcpy(l4, ip + 20, 40);
    qw_put16(l4 + 2, 22);
    n2 = a_ip(f2, T_WORK, A_REMOTE, IPPROTO_TCP_, 64, 1, l4 + 8, 32);
    /* a_ip wrote a checksum into the fragment body: restore the bytes */
    memcpy(f1 + 20, ip + 20, 16);
    memcpy(f2 + 20, l4 + 8, 32);
    qw_put16(f1 + 10, 0);
    qw_put16(f1 + 10, qw_csum_fold(qw_csum_add(0, f1, 20)));
    qw_put16(f2 + 10, 0);
    qw_put16(f2 + 10, qw_csum_fold(qw_csum_add(0, f2, 20)));
    a_send(t, (unsigned)t->work, f1, n1, 0);
    CHECK_EQ(t->out.n, 0);
    a_send(t, (unsigned)t->work, f2, n2, 0);
    CHECK_EQ(a_nout(t, 0), 0);
    t_free(t);
}

/*
 * dom0 (or a bug in it) writes more rules than the firewall holds: the
 * client fails closed (nothing passes, a warning names the reason), and
 * a tree written but not yet committed is never applied.
 */
TEST(qdb_rules_overflow_and_uncommitted)
{
    struct tfw *t = t_setup();
    uint8_t l4[64], ip[128];
    char path[80], val[64];
    uint32_t n;

    /* half-written: an accept-all rule without commit changes nothing */
    t_write(t, "/qubes-firewall/10.137.0.10/0000", "action=accept");
    n = a_tcp(l4, 40050, 80, 0x02);
    n = a_ip(ip, T_WORK, A_DENIED, IPPROTO_TCP_, 64, 0, l4, n);
    a_send(t, (unsigned)t->work, ip, n, 0);
    CHECK_EQ(a_nout(t, 0), 0);
    CHECK(t_dropped_as(t, (unsigned)t->work, QW_DROP_RULE));

    /* 200 accept rules (max_rules is 64): fail closed at the commit */
    t_qdb(t, QDB_CMD_RM, "/qubes-firewall/10.137.0.10/", NULL);
    t_write(t, "/qubes-firewall/10.137.0.10/policy", "accept");
    for (unsigned i = 0; i < 200; i++) {
        snprintf(path, sizeof path, "/qubes-firewall/10.137.0.10/%04u", i);
        snprintf(val, sizeof val, "action=accept dstports=%u-%u", i + 1, i + 1);
        t_write(t, path, val);
    }
    t_write(t, "/qubes-firewall/10.137.0.10", "");
    CHECK(t_logged(t, "rules rejected"));
    n = a_tcp(l4, 40051, 5, 0x02);
    n = a_ip(ip, T_WORK, A_REMOTE, IPPROTO_TCP_, 64, 0, l4, n);
    a_send(t, (unsigned)t->work, ip, n, 0);
    CHECK_EQ(a_nout(t, 0), 0);
    t_free(t);
}

/* Cut a complete IPv4 packet (20-byte header) at byte `at` of its payload
 * (a multiple of 8) into two fragments, valid header checksums. */
static void a_split(const uint8_t *ip, uint32_t at, uint8_t *f1, uint32_t *n1,
                    uint8_t *f2, uint32_t *n2)
{
    uint32_t len = qw_get16(ip + 2), pl = len - 20;

    memcpy(f1, ip, 20 + at);
    qw_put16(f1 + 2, (uint16_t)(20 + at));
    qw_put16(f1 + 6, IP4_FLAG_MF);
    qw_put16(f1 + 10, 0);
    qw_put16(f1 + 10, qw_csum_fold(qw_csum_add(0, f1, 20)));
    memcpy(f2, ip, 20);
    memcpy(f2 + 20, ip + 20 + at, pl - at);
    qw_put16(f2 + 2, (uint16_t)(20 + pl - at));
    qw_put16(f2 + 6, (uint16_t)(at / 8));
    qw_put16(f2 + 10, 0);
    qw_put16(f2 + 10, qw_csum_fold(qw_csum_add(0, f2, 20)));
    *n1 = 20 + at;
    *n2 = 20 + pl - at;
}

/*
 * Fragments both ways, out of order: a client's datagram is reassembled,
 * judged, translated and sent whole with valid checksums; the answer in
 * fragments from the uplink reaches the client whole and translated;
 * a 3000-byte one leaves refragmented (MTU 1500) and the pieces carry
 * our address and valid header checksums, and rebuild a valid UDP
 * datagram.
 */
TEST(fragments_translated_correctly)
{
    struct tfw *t = t_setup();
    static uint8_t l4[3200], ip[3300], f1[3300], f2[3300], re[3300];
    uint32_t n, n1, n2;
    uint16_t np;

    memset(l4, 0, sizeof l4);
    n = a_udp(l4, 40060, 5000, "0123456789abcdef0123456789abcdef", 32);
    n = a_ip(ip, T_WORK, A_OK_NET, IPPROTO_UDP_, 64, 0, l4, n);
    a_split(ip, 16, f1, &n1, f2, &n2);
    a_send(t, (unsigned)t->work, f2, n2, 0); /* last one first */
    CHECK_EQ(t->out.n, 0);
    a_send(t, (unsigned)t->work, f1, n1, 0);
    CHECK_EQ(a_nout(t, 0), 1);
    CHECK(a_out_csums_ok(t));
    if (a_nout(t, 0) != 1)
        goto out;
    CHECK_EQ(qw_get32(a_out_ip(t, 0) + 12), T_FW);
    np = qw_get16(a_out_ip(t, 0) + 20);

    n = a_udp(l4, 5000, np, "fedcba9876543210fedcba9876543210", 32);
    n = a_ip(ip, A_OK_NET, T_FW, IPPROTO_UDP_, 64, 0, l4, n);
    a_split(ip, 8, f1, &n1, f2, &n2);
    a_send(t, 0, f1, n1, 0);
    CHECK_EQ(t->out.n, 0);
    a_send(t, 0, f2, n2, 0);
    CHECK_EQ(a_nout(t, (unsigned)t->work), 1);
    CHECK(a_out_csums_ok(t));
    if (t->out.n == 1) {
        CHECK_EQ(qw_get32(a_out_ip(t, 0) + 16), T_WORK);
        CHECK_EQ(qw_get16(a_out_ip(t, 0) + 22), 40060);
    }

    /* 3000 bytes of payload: reassembled, then refragmented */
    for (unsigned i = 0; i < 3000; i++)
        l4[8 + i] = (uint8_t)(i * 7);
    n = a_udp(l4, 40060, 5000, l4 + 8, 3000);
    n = a_ip(ip, T_WORK, A_OK_NET, IPPROTO_UDP_, 64, 0, l4, n);
    a_split(ip, 1480, f1, &n1, f2, &n2);
    a_send(t, (unsigned)t->work, f1, n1, 0);
    a_send(t, (unsigned)t->work, f2, n2, 0);
    CHECK(a_nout(t, 0) >= 3);
    CHECK(a_out_csums_ok(t));
    {
        uint32_t total = 0;
        for (unsigned i = 0; i < t->out.n; i++) {
            const uint8_t *o = a_out_ip(t, i);
            uint32_t off = (qw_get16(o + 6) & IP4_OFF_MASK) * 8u;
            uint32_t pl = qw_get16(o + 2) - 20u;
            CHECK(t->out.frames[i].len <= ETH_HLEN + 1500);
            CHECK_EQ(qw_get32(o + 12), T_FW);
            if (off + pl <= sizeof re - 20) {
                memcpy(re + 20 + off, o + 20, pl);
                if (!(qw_get16(o + 6) & IP4_FLAG_MF))
                    total = off + pl;
            }
        }
        CHECK_EQ(total, 3008);
        CHECK_EQ(a_l4_csum(T_FW, A_OK_NET, IPPROTO_UDP_, re + 20, total), 0);
    }
out:
    t_free(t);
}

/* ---- randomized: hostile traffic both ways against open connections -- */

struct a_conn {
    uint8_t proto;
    uint32_t remote;
    uint16_t rport, cport, nport; /* ICMP: rport 0, cport/nport the id */
};

static uint64_t a_rng = 0x243f6a8885a308d3ull;

static uint32_t a_rand(void)
{
    a_rng ^= a_rng << 13;
    a_rng ^= a_rng >> 7;
    a_rng ^= a_rng << 17;
    return (uint32_t)(a_rng >> 11);
}

/* Is out frame i (on a client link) explained by a connection? */
static int a_explained(const struct tfw *t, unsigned i, const struct a_conn *c,
                       unsigned nc)
{
    const uint8_t *o = a_out_ip(t, i);
    uint32_t src = qw_get32(o + 12);
    const uint8_t *l4 = o + (o[0] & 15) * 4u;

    if (qw_get32(o + 16) != T_WORK)
        return 0;
    if (src == T_FW) /* our own reject, echo reply, time exceeded */
        return o[9] == IPPROTO_ICMP_;
    for (unsigned k = 0; k < nc; k++) {
        if (o[9] != c[k].proto || src != c[k].remote)
            continue;
        if (o[9] != IPPROTO_ICMP_ && qw_get16(l4) == c[k].rport &&
            qw_get16(l4 + 2) == c[k].cport)
            return 1;
        /* any query reply type: the ICMP type is not part of a
         * connection (attack_pending.c icmp_type_rides_echo_connection) */
        if (o[9] == IPPROTO_ICMP_ &&
            (l4[0] == ICMP_ECHO_REPLY || l4[0] == ICMP_TIMESTAMP_REPLY ||
             l4[0] == ICMP_INFO_REPLY || l4[0] == ICMP_ADDR_MASK_REPLY) &&
            qw_get16(l4 + 4) == c[k].cport)
            return 1;
    }
    if (o[9] == IPPROTO_ICMP_ && (l4[0] == 3 || l4[0] == 4 || l4[0] == 5 ||
                                  l4[0] == 11 || l4[0] == 12)) {
        /* an error: the quote must be one of our packets */
        const uint8_t *in = l4 + 8, *il4 = in + (in[0] & 15) * 4u;
        for (unsigned k = 0; k < nc; k++)
            if (in[9] == c[k].proto && qw_get32(in + 12) == T_WORK &&
                qw_get32(in + 16) == c[k].remote &&
                (in[9] == IPPROTO_ICMP_ ? qw_get16(il4 + 4) == c[k].cport
                                        : qw_get16(il4) == c[k].cport &&
                                              qw_get16(il4 + 2) == c[k].rport))
                return 1;
    }
    return 0;
}

/*
 * 20000 random frames, both ways, around a few open connections (TCP,
 * UDP, ICMP echo; remote ports and NAT ports hit often, ICMP errors
 * quoting real or mangled packets, low TTLs). Every frame the firewall
 * sends must carry valid checksums; nothing reaches the client unless a
 * connection (or the firewall itself) explains it; everything leaving on
 * the uplink comes from our address.
 */
TEST(random_traffic_oracles)
{
    struct tfw *t = t_setup();
    static struct a_conn c[4096];
    unsigned nc = 0, bad_csum = 0, unexplained = 0, bad_src = 0;
    unsigned to_client = 0;
    uint8_t l4[700], ip[800], q[200], ql4[64];
    uint32_t n;

    if (getenv("ATTACK_SEED") != NULL) /* more seeds by hand */
        a_rng = strtoull(getenv("ATTACK_SEED"), NULL, 0) | 1;
    /* open: TCP 443, TCP/UDP to the open /24, UDP DNS, ICMP echo */
    {
        static const struct {
            uint8_t proto;
            uint32_t dst;
            uint16_t sport, dport;
        } o[] = {
            {IPPROTO_TCP_, A_REMOTE, 40100, 443},
            {IPPROTO_TCP_, A_OK_NET, 40101, 80},
            {IPPROTO_UDP_, A_OK_NET, 40102, 5000},
            {IPPROTO_UDP_, IP(10, 139, 1, 1), 40103, 53},
            {IPPROTO_ICMP_, A_REMOTE, 77, 0},
        };
        for (unsigned k = 0; k < 5; k++) {
            if (o[k].proto == IPPROTO_TCP_)
                n = a_tcp(l4, o[k].sport, o[k].dport, 0x02);
            else if (o[k].proto == IPPROTO_UDP_)
                n = a_udp(l4, o[k].sport, o[k].dport, "q", 1);
            else
                n = a_icmp(l4, ICMP_ECHO, 0, o[k].sport, 1, "p", 1);
            n = a_ip(ip, T_WORK, o[k].dst, o[k].proto, 64, 0, l4, n);
            a_send(t, (unsigned)t->work, ip, n, 0);
            CHECK_EQ(a_nout(t, 0), 1);
            if (a_nout(t, 0) != 1)
                continue;
            c[nc].proto = o[k].proto;
            c[nc].remote = o[k].dst;
            c[nc].rport = o[k].dport;
            c[nc].cport = o[k].sport;
            c[nc].nport = qw_get16(a_out_ip(t, 0) + 20 +
                                   (o[k].proto == IPPROTO_ICMP_ ? 4 : 0));
            nc++;
        }
    }
    for (unsigned it = 0; it < 20000; it++) {
        const struct a_conn *k = &c[a_rand() % nc];
        bool up = a_rand() & 1;
        uint8_t proto = a_rand() % 4 == 0
                            ? k->proto
                            : (const uint8_t[]){IPPROTO_TCP_, IPPROTO_UDP_,
                                                IPPROTO_ICMP_}[a_rand() % 3];
        uint32_t peer = a_rand() % 8 == 0 ? a_rand() | 0x01000000u : k->remote;
        uint16_t pport = a_rand() % 4 == 0 ? (uint16_t)a_rand() : k->rport;
        uint16_t myport =
            up ? (a_rand() % 4 == 0 ? (uint16_t)a_rand() : k->nport)
               : (a_rand() % 4 == 0 ? (uint16_t)a_rand() : k->cport);
        uint8_t ttl = (uint8_t)(a_rand() % 8 == 0 ? a_rand() % 3 : 64);
        uint32_t me = up ? T_FW : T_WORK;
        bool blank;

        if ((peer >> 24) == 127 || peer >= 0xe0000000u)
            peer = k->remote;
        t->now += SEC / 50;
        switch (proto) {
        case IPPROTO_TCP_:
            n = a_tcp(l4, up ? pport : myport, up ? myport : pport,
                      (uint8_t)(a_rand() & 0x3f));
            break;
        case IPPROTO_UDP_:
            n = a_udp(l4, up ? pport : myport, up ? myport : pport, "data",
                      a_rand() % 5);
            break;
        default: {
            static const uint8_t types[] = {0, 3, 8, 11, 13, 14, 5, 12};
            uint8_t ty = types[a_rand() % 8];
            if (ty == 3 || ty == 11 || ty == 5 || ty == 12) {
                /* quote: the packet the error is about, as the peer saw
                 * it (ours going out, or the remote's coming in) */
                uint32_t qn;
                if (k->proto == IPPROTO_TCP_)
                    qn = a_tcp(ql4, up ? k->nport : k->rport,
                               up ? k->rport : k->cport, 0x10);
                else if (k->proto == IPPROTO_UDP_)
                    qn = a_udp(ql4, up ? k->nport : k->rport,
                               up ? k->rport : k->cport, "qq", 2);
                else
                    qn = a_icmp(ql4, up ? ICMP_ECHO : ICMP_ECHO_REPLY, 0,
                                up ? k->nport : k->cport, 1, "p", 1);
                qn = a_ip(q, up ? T_FW : k->remote, up ? k->remote : T_WORK,
                          k->proto, 60, 0, ql4, qn);
                if (a_rand() % 4 == 0)
                    q[a_rand() % qn] ^= (uint8_t)(1u << (a_rand() % 8));
                n = a_icmp(l4, ty, (uint8_t)(a_rand() % 5), 0, 0, q,
                           a_rand() % 2 ? 28 : qn);
            } else {
                n = a_icmp(l4, ty, 0, myport, (uint16_t)it, "x", 1);
            }
            break;
        }
        }
        if (up)
            n = a_ip(ip, peer, me, proto, ttl, 0, l4, n);
        else
            n = a_ip(ip, me, peer, proto, ttl, 0, l4, n);
        blank = !up && proto != IPPROTO_ICMP_ && a_rand() % 16 == 0;
        if (blank) {
            /* as netfront leaves it: the pseudo-header sum, not inverted */
            uint8_t *p4 = ip + IP4_MIN_HLEN;
            unsigned o = a_csum_off(proto);
            uint8_t ph[12];
            qw_put32(ph, me);
            qw_put32(ph + 4, peer);
            ph[8] = 0;
            ph[9] = proto;
            qw_put16(ph + 10, (uint16_t)(n - IP4_MIN_HLEN));
            qw_put16(p4 + o, (uint16_t)~qw_csum_fold(qw_csum_add(0, ph, 12)));
        }
        a_send(t, up ? 0 : (unsigned)t->work, ip, n,
               blank ? QW_FRAME_CSUM_BLANK : 0);
        if (!a_out_csums_ok(t))
            bad_csum++;
        for (unsigned i = 0; i < t->out.n; i++) {
            const uint8_t *o = a_out_ip(t, i);
            if (o == NULL || qw_get16(t->out.frames[i].data + 12) != 0x0800)
                continue;
            /* a flow the client opened (its rules accept 198.51.100/24
             * for everything): the reply direction is now explained */
            if (!up && t->out.frames[i].link == 0 && o[9] == proto &&
                nc < 4096 &&
                (proto != IPPROTO_ICMP_ || ip[20] == ICMP_ECHO ||
                 ip[20] == ICMP_TIMESTAMP)) {
                const uint8_t *ol4 = o + 20;
                uint16_t rp = proto == IPPROTO_ICMP_ ? 0 : qw_get16(ol4 + 2);
                unsigned d;
                for (d = 0; d < nc; d++)
                    if (c[d].proto == proto &&
                        c[d].remote == qw_get32(o + 16) && c[d].rport == rp &&
                        c[d].nport == qw_get16(ol4 + (proto == 1 ? 4 : 0)) &&
                        c[d].cport == qw_get16(ip + 20 + (proto == 1 ? 4 : 0)))
                        break;
                if (d == nc) {
                    c[nc].proto = proto;
                    c[nc].remote = qw_get32(o + 16);
                    c[nc].rport =
                        proto == IPPROTO_ICMP_ ? 0 : qw_get16(ol4 + 2);
                    c[nc].cport = qw_get16(ip + 20 + (proto == 1 ? 4 : 0));
                    c[nc].nport = qw_get16(ol4 + (proto == 1 ? 4 : 0));
                    nc++;
                }
            }
            if (t->out.frames[i].link == 0 && qw_get32(o + 12) != T_FW)
                bad_src++;
            if (t->out.frames[i].link != 0)
                to_client++;
            if (t->out.frames[i].link != 0 && !a_explained(t, i, c, nc)) {
                const uint8_t *ol4 = o + (o[0] & 15) * 4u;
                if (unexplained++ < 5)
                    fprintf(stderr,
                            "    unexplained to client: it %u proto %u "
                            "src %08x type %u sp %u dp %u\n",
                            it, o[9], qw_get32(o + 12), ol4[0], qw_get16(ol4),
                            qw_get16(ol4 + 2));
            }
        }
    }
    CHECK_EQ(bad_csum, 0);
    CHECK_EQ(unexplained, 0);
    CHECK_EQ(bad_src, 0);
    CHECK(to_client > 1000); /* the oracles saw real traffic */
    fprintf(stderr, "    %u frames to the client, %u flows\n", to_client, nc);
    t_free(t);
}

/*
 * dom0 writes a tree that does not fit the QubesDB store (40 keys here):
 * the accept-all rule at the end is written first, then the drop rules
 * before it, of which the store refuses the later ones. Applying what
 * fits would open what the missing drop rules close; the commit must
 * fail closed instead (everything dropped, one warning).
 */
TEST(qdb_store_full_tree_fails_closed)
{
    struct qw_config cfg = t_config();
    struct tfw *t;
    static const uint8_t upmac[6] = {0x00, 0x16, 0x3e, 0x5e, 0x6c, 0x00};
    struct qw_client w = {T_WORK, {0x00, 0x16, 0x3e, 0x5e, 0x6c, 0x0a}, "work"};
    uint8_t l4[64], ip[128];
    char path[80], val[80];
    uint32_t n;

    cfg.qdb_max_entries = 40;
    t = t_new_cfg(&cfg);
    t_dump(t);
    t_reset_out(t);
    qw_uplink_up(t->fw, upmac, t->now, &t->out);
    t->work = qw_client_attach(t->fw, &w, t->now);
    t_write(t, "/qubes-firewall/10.137.0.10/policy", "drop");
    t_write(t, "/qubes-firewall/10.137.0.10/0060", "action=accept");
    for (unsigned i = 0; i < 60; i++) {
        snprintf(path, sizeof path, "/qubes-firewall/10.137.0.10/%04u", i);
        snprintf(val, sizeof val, "action=drop dst4=198.51.100.%u/32", i);
        t_write(t, path, val);
    }
    t_write(t, "/qubes-firewall/10.137.0.10", "");
    CHECK(t_logged(t, "rules rejected"));
    /* 198.51.100.59: its drop rule was refused by the store */
    n = a_tcp(l4, 40080, 80, 0x02);
    n = a_ip(ip, T_WORK, IP(198, 51, 100, 59), IPPROTO_TCP_, 64, 0, l4, n);
    a_send(t, (unsigned)t->work, ip, n, 0);
    CHECK_EQ(a_nout(t, 0), 0);
    t_free(t);
}

/*
 * An ICMP error from the uplink quoting our UDP datagram with IP options
 * in the quoted header (IHL 6) and the whole datagram: the quoted address,
 * port, IP header checksum and UDP checksum are all translated back.
 */
TEST(uplink_icmp_error_quote_with_options)
{
    struct tfw *t = t_setup();
    uint8_t l4[600], ip[700], q[200], qo[200], ql4[64];
    uint32_t n, qn;
    uint16_t np;
    const uint8_t *o, *in;

    n = a_udp(l4, 40090, 5000, "hello", 5);
    n = a_ip(ip, T_WORK, A_OK_NET, IPPROTO_UDP_, 64, 0, l4, n);
    a_send(t, (unsigned)t->work, ip, n, 0);
    CHECK_EQ(a_nout(t, 0), 1);
    if (a_nout(t, 0) != 1)
        goto out;
    np = qw_get16(a_out_ip(t, 0) + 20);
    qn = a_udp(ql4, np, 5000, "hello", 5);
    qn = a_ip(q, T_FW, A_OK_NET, IPPROTO_UDP_, 63, 0, ql4, qn);
    /* the same with 4 bytes of options (NOP NOP NOP EOL) */
    memcpy(qo, q, 20);
    memcpy(qo + 20, "\x01\x01\x01\x00", 4);
    memcpy(qo + 24, q + 20, qn - 20);
    qo[0] = 0x46;
    qw_put16(qo + 2, (uint16_t)(qn + 4));
    qw_put16(qo + 10, 0);
    qw_put16(qo + 10, qw_csum_fold(qw_csum_add(0, qo, 24)));
    n = a_icmp(l4, ICMP_DEST_UNREACH, 3, 0, 0, qo, qn + 4);
    n = a_ip(ip, A_OK_NET, T_FW, IPPROTO_ICMP_, 64, 0, l4, n);
    a_send(t, 0, ip, n, 0);
    CHECK_EQ(a_nout(t, (unsigned)t->work), 1);
    CHECK(a_out_csums_ok(t));
    o = a_out_ip(t, 0);
    if (o == NULL)
        goto out;
    in = o + 28;
    CHECK_EQ(qw_get32(in + 12), T_WORK);
    CHECK_EQ(qw_get16(in + 24), 40090);
    CHECK_EQ(qw_csum_fold(qw_csum_add(0, in, 24)), 0);
    CHECK_EQ(a_l4_csum(T_WORK, A_OK_NET, IPPROTO_UDP_, in + 24, 13), 0);
out:
    t_free(t);
}

/* ---- findings of the h10 review, fixed in 325bc52: each comment tells
 * the attack as it worked before the fix ------------------------------ */

/*
 * ICMP type is not part of the connection identity. work's rules accept
 * only ICMP echo (icmptype=8) to A_REMOTE; after one ping, a timestamp
 * request (type 13) or an address-mask request with the same id to the
 * same host hits the echo's connection and leaves without rule
 * evaluation. Linux conntrack keys ICMP on (type, code, id), so the
 * timestamp request is a new flow the rules drop.
 */
TEST(icmp_type_rides_echo_connection)
{
    struct tfw *t = t_setup();
    uint8_t l4[64], ip[128], ts[12] = {0};
    uint32_t n;

    n = a_icmp(l4, ICMP_ECHO, 0, 0x4242, 1, "ping", 4);
    n = a_ip(ip, T_WORK, A_REMOTE, IPPROTO_ICMP_, 64, 0, l4, n);
    a_send(t, (unsigned)t->work, ip, n, 0);
    CHECK_EQ(a_nout(t, 0), 1); /* allowed by rule 0003 */

    n = a_icmp(l4, ICMP_TIMESTAMP, 0, 0x4242, 2, ts, sizeof ts);
    n = a_ip(ip, T_WORK, A_REMOTE, IPPROTO_ICMP_, 64, 0, l4, n);
    a_send(t, (unsigned)t->work, ip, n, 0);
    CHECK_EQ(a_nout(t, 0), 0); /* want: judged by the rules, dropped */
    CHECK_EQ(qw_counter(t->fw, (unsigned)t->work, QW_DROP_RULE), 1);
    t_free(t);
}

/*
 * An ICMP error from a client is forwarded to whatever outer destination
 * the client wrote, as long as the quote names one of its connections.
 * work may only reach 203.0.113.5:443 (and DNS, 198.51.100/24); with one
 * open connection it sends "port unreachable" errors to 8.8.8.8 (policy
 * drop) carrying 400 bytes of its own data after the quote: the firewall
 * SNATs and forwards them, a rule bypass and an exfiltration channel to
 * any host. The error is about a packet the remote end sent, so its
 * outer destination must be the connection's remote address (Linux
 * conntrack checks this too: "outer daddr mismatch").
 */
TEST(client_icmp_error_to_any_host)
{
    struct tfw *t = t_setup();
    uint8_t l4[700], ip[800], q[600], ql4[64];
    uint16_t np = a_open_tcp(t, A_REMOTE, 40030, 443);
    uint32_t n, qn;

    CHECK(np != 0);
    /* quote: the reply as the client received it, then secret bytes */
    qn = a_tcp(ql4, 443, 40030, 0x12);
    qn = a_ip(q, A_REMOTE, T_WORK, IPPROTO_TCP_, 60, 0, ql4, qn);
    memset(q + qn, 'S', 400); /* data smuggled behind the quote */
    n = a_icmp(l4, ICMP_DEST_UNREACH, 3, 0, 0, q, qn + 400);
    n = a_ip(ip, T_WORK, A_DENIED, IPPROTO_ICMP_, 64, 0, l4, n);
    a_send(t, (unsigned)t->work, ip, n, 0);
    CHECK_EQ(a_nout(t, 0), 0); /* want: dropped */
    if (t->out.n == 1)
        fprintf(stderr, "    forwarded to %08x, %u bytes\n",
                qw_get32(a_out_ip(t, 0) + 16), t->out.frames[0].len);
    t_free(t);
}

/*
 * The UDP checksum of a reply to the firewall's own DNS client is never
 * verified (fw_dns_rx() hands the payload to dns_rx() as it is). A DNS
 * answer corrupted on its way (sys-net forwards without checking L4
 * checksums) is believed: here the A record's address is damaged in
 * transit, the UDP checksum shows it, and the damaged address is still
 * accepted by a dsthost accept rule. Packets the firewall consumes itself
 * must have their checksum verified (RFC 1122 4.1.3.4), as it already
 * does for echo requests.
 */
TEST(dns_reply_bad_udp_checksum_believed)
{
    struct tfw *t = t_setup();
    static const char *const r[] = {
        "policy=drop", "0000=action=accept dsthost=example.com", NULL};
    uint8_t q[1600], l4[700], ip[800], msg[600];
    uint32_t n, qlen, dlen, server;
    uint16_t qport;

    t_rules(t, "10.137.0.10", r);
    CHECK(t->out.n >= 1);
    if (t->out.n < 1)
        goto out;
    memcpy(q, t->out.frames[0].data, t->out.frames[0].len);
    server = qw_get32(q + 14 + 16);
    qport = qw_get16(q + 14 + 20);
    /* the answer: question copied, one A record 198.18.0.1 */
    qlen = 12;
    while (q[42 + qlen] != 0)
        qlen += q[42 + qlen] + 1u;
    qlen += 5;
    memcpy(msg, q + 42, qlen);
    qw_put16(msg + 2, 0x8180);
    qw_put16(msg + 6, 1);
    qw_put16(msg + 8, 0);
    qw_put16(msg + 10, 0);
    memcpy(msg + qlen, "\xc0\x0c\x00\x01\x00\x01", 6);
    qw_put32(msg + qlen + 6, 300);
    qw_put16(msg + qlen + 10, 4);
    qw_put32(msg + qlen + 12, IP(198, 18, 0, 1));
    dlen = qlen + 16;
    n = a_udp(l4, 53, qport, msg, dlen);
    n = a_ip(ip, server, T_FW, IPPROTO_UDP_, 60, 0, l4, n);
    ip[20 + 8 + qlen + 15] ^= 0x04; /* corrupted: now 198.18.0.5 */
    a_send(t, 0, ip, n, 0);
    CHECK_EQ(t->out.n, 0);
    CHECK(t_dropped_as(t, 0, QW_DROP_L4_CSUM)); /* want: checksum drop */
    /* the damaged address must not be accepted */
    n = a_tcp(l4, 40040, 443, 0x02);
    n = a_ip(ip, T_WORK, IP(198, 18, 0, 5), IPPROTO_TCP_, 64, 0, l4, n);
    a_send(t, (unsigned)t->work, ip, n, 0);
    CHECK_EQ(a_nout(t, 0), 0);
out:
    t_free(t);
}

/*
 * The uplink peer alternates the gateway's MAC in unsolicited ARP
 * replies: every one logs "fw: gateway is at ..." at info level (only the
 * per-source rate limit bounds it: 20 lines, then 5/s, for ever).
 * semantics.md: info is lifecycle only, nothing per packet above debug.
 * Want: a change of the gateway's MAC after it was resolved logged at
 * debug (or once per some minutes), the first resolution at info.
 */
TEST(uplink_arp_gateway_flap_logs_info)
{
    struct tfw *t = t_setup();
    unsigned before = t->nlog;

    for (unsigned i = 0; i < 100; i++) {
        uint8_t *f = t->in[t->in_next++ % T_MAXIN];
        uint8_t *a = f + ETH_HLEN;
        struct qw_frame fr = {f, ETH_HLEN + 28, 0, 0};
        memcpy(f, a_mac_up, 6);
        memcpy(f + 6, a_mac_gw, 6);
        qw_put16(f + 12, 0x0806);
        qw_put16(a, 1);
        qw_put16(a + 2, 0x0800);
        a[4] = 6;
        a[5] = 4;
        qw_put16(a + 6, 2);
        memcpy(a + 8, a_mac_gw, 6);
        a[13] = (uint8_t)(i & 1 ? 0x02 : 0x03);
        qw_put32(a + 14, T_GW);
        memcpy(a + 18, a_mac_up, 6);
        qw_put32(a + 24, T_FW);
        t->now += SEC / 10;
        t_reset_out(t);
        qw_rx(t->fw, 0, &fr, 1, t->now, &t->out);
    }
    CHECK(t->nlog - before <= 2);
    t_free(t);
}

/*
 * IPv4 source routing is forwarded. work may reach 198.51.100.0/24 only
 * (plus 443 and DNS); it sends a TCP SYN to 198.51.100.7 carrying a
 * loose source route (LSRR) whose next hop is 8.8.8.8 (policy drop).
 * The rules judge the first hop only and the packet leaves with the
 * route intact: a host honouring source routes relays it on to 8.8.8.8.
 * Linux sys-firewall drops it (systemd's default sysctl
 * net.ipv4.conf.all.accept_source_route = 0). Want: LSRR/SSRR options
 * from any link dropped and counted (e.g. QW_DROP_IP_MARTIAN or a new
 * "ip_options" reason).
 */
TEST(client_source_route_forwarded)
{
    struct tfw *t = t_setup();
    uint8_t l4[64], ip[128], opt[128];
    uint32_t n, m;

    n = a_tcp(l4, 40070, 80, 0x02);
    m = a_ip(opt, T_WORK, A_OK_NET, IPPROTO_TCP_, 64, 0, l4, n);
    /* insert 8 bytes of options: LSRR (len 7, ptr 4, 8.8.8.8) + EOL */
    memcpy(ip, opt, 20);
    ip[20] = 0x83;
    ip[21] = 7;
    ip[22] = 4;
    qw_put32(ip + 23, A_DENIED);
    ip[27] = 0;
    memcpy(ip + 28, opt + 20, m - 20);
    ip[0] = 0x47;
    qw_put16(ip + 2, (uint16_t)(m + 8));
    qw_put16(ip + 10, 0);
    qw_put16(ip + 10, qw_csum_fold(qw_csum_add(0, ip, 28)));
    a_send(t, (unsigned)t->work, ip, m + 8, 0);
    CHECK_EQ(a_nout(t, 0), 0); /* want: dropped */
    t_free(t);
}

/* ---- rules: the compiled matcher against a plain reading of the text - */

#include "rules.h"

struct a_rule {
    bool accept, has_dst, dns;
    uint32_t net, plen;
    uint8_t proto; /* 0 = any */
    int lo, hi;    /* dstports, lo < 0: absent */
    int icmptype;  /* < 0: absent */
};

/* semantics.md "Rules: how they match", read literally. */
static bool a_rule_match(const struct a_rule *r, const struct rules_flow *f,
                         const struct rules_dns *d)
{
    bool l4 = f->proto == IPPROTO_TCP_ || f->proto == IPPROTO_UDP_;

    if (r->has_dst && r->plen != 0 &&
        ((f->dst ^ r->net) >> (32 - r->plen)) != 0)
        return false;
    if (r->proto != 0 && f->proto != r->proto)
        return false;
    if (r->lo >= 0 && (!l4 || f->dport < r->lo || f->dport > r->hi))
        return false;
    if (r->icmptype >= 0 && (f->proto != 1 || f->icmp_type != r->icmptype))
        return false;
    if (r->dns && (!l4 || f->dport != 53 ||
                   !((d->n > 0 && f->dst == d->addr[0]) ||
                     (d->n > 1 && f->dst == d->addr[1]))))
        return false;
    return true;
}

/*
 * 3000 random rule sets (dst4 prefixes of every length, tcp/udp/icmp or
 * none, port ranges, icmptype, specialtarget=dns, in gapped numbering and
 * shuffled order) against 300 flows each, drawn near the rules' own
 * values: the compiled matcher must agree with the literal reading, rule
 * number included.
 */
TEST(rules_match_reference)
{
    static uint8_t mem[1 << 16];
    struct rules_set *rs = (struct rules_set *)mem;
    struct rules_dns dns = {{IP(10, 139, 1, 1), IP(10, 139, 1, 2)}, 2};
    unsigned mismatches = 0;

    CHECK(rules_mem_size(32) <= sizeof mem);
    rules_init(rs, 32);
    for (unsigned set = 0; set < 3000; set++) {
        struct a_rule r[16];
        struct rules_entry e[17];
        char keys[17][8], vals[17][160];
        unsigned nr = 1 + a_rand() % 16, num[16];
        bool pol_accept = a_rand() % 4 == 0;
        char why[200];
        int rc;

        for (unsigned i = 0; i < nr; i++) {
            struct a_rule *x = &r[i];
            char *v = vals[i];
            int o;
            memset(x, 0, sizeof *x);
            x->lo = x->icmptype = -1;
            x->accept = a_rand() % 2;
            o = snprintf(v, 160, "action=%s", x->accept ? "accept" : "drop");
            if (a_rand() % 2) {
                x->has_dst = true;
                x->plen = a_rand() % 33;
                x->net = a_rand() % 2 ? IP(10, 139, 1, 1) ^ (a_rand() % 4)
                                      : IP(198, 51, 100, a_rand() % 256);
                o += snprintf(v + o, 160 - o, " dst4=%u.%u.%u.%u/%u",
                              x->net >> 24, (x->net >> 16) & 255,
                              (x->net >> 8) & 255, x->net & 255, x->plen);
            }
            switch (a_rand() % 4) {
            case 1:
                x->proto = IPPROTO_TCP_;
                break;
            case 2:
                x->proto = IPPROTO_UDP_;
                break;
            case 3:
                x->proto = IPPROTO_ICMP_;
                break;
            default:
                break;
            }
            if (x->proto != 0)
                o += snprintf(v + o, 160 - o, " proto=%s",
                              x->proto == 6    ? "tcp"
                              : x->proto == 17 ? "udp"
                                               : "icmp");
            if (x->proto != IPPROTO_ICMP_ && a_rand() % 2) {
                x->lo = (int)(a_rand() % 100);
                x->hi = x->lo + (int)(a_rand() % 3 == 0 ? 0 : a_rand() % 60);
                o += snprintf(v + o, 160 - o, " dstports=%d-%d", x->lo, x->hi);
            }
            if (x->proto == IPPROTO_ICMP_ && a_rand() % 2) {
                x->icmptype = (int)(a_rand() % 20);
                o += snprintf(v + o, 160 - o, " icmptype=%d", x->icmptype);
            }
            if (x->proto != IPPROTO_ICMP_ && a_rand() % 3 == 0) {
                x->dns = true;
                o += snprintf(v + o, 160 - o, " specialtarget=dns");
            }
            num[i] = (i == 0 ? 0 : num[i - 1]) + 1 + a_rand() % 3;
            snprintf(keys[i], 8, "%04u", num[i]);
        }
        /* entries in a shuffled order, policy somewhere among them */
        for (unsigned i = 0; i < nr; i++) {
            e[i].key = keys[i];
            e[i].value = vals[i];
        }
        e[nr].key = "policy";
        e[nr].value = pol_accept ? "accept" : "drop";
        for (unsigned i = nr; i > 0; i--) {
            unsigned j = a_rand() % (i + 1);
            struct rules_entry tmp = e[i];
            e[i] = e[j];
            e[j] = tmp;
        }
        rc = rules_compile(rs, e, nr + 1, NULL, why, sizeof why);
        CHECK_EQ(rc, (int)nr);
        if (rc != (int)nr) {
            fprintf(stderr, "    compile failed: %s\n", why);
            break;
        }
        for (unsigned k = 0; k < 300; k++) {
            const struct a_rule *x = &r[a_rand() % nr];
            struct rules_flow f;
            static const uint8_t protos[] = {6, 17, 1, 47, 50};
            int no = -99, want_no = RULES_NO_POLICY;
            bool want = pol_accept;
            enum rules_action got;

            f.dst = x->has_dst && a_rand() % 2
                        ? x->net ^ (1u << (a_rand() % 32))
                    : a_rand() % 2 ? dns.addr[a_rand() % 2]
                                   : IP(198, 51, 100, a_rand() % 256);
            f.proto =
                a_rand() % 2 && x->proto ? x->proto : protos[a_rand() % 5];
            if (a_rand() % 4 == 0)
                f.dport = 53;
            else if (x->lo >= 0)
                f.dport =
                    (uint16_t)(x->lo - 1 +
                               (int)(a_rand() % (unsigned)(x->hi - x->lo + 3)));
            else
                f.dport = (uint16_t)(a_rand() % 120);
            if (x->icmptype >= 0 && a_rand() % 2)
                f.icmp_type = (uint8_t)x->icmptype;
            else
                f.icmp_type = (uint8_t)(a_rand() % 20);
            for (unsigned i = 0; i < nr; i++) {
                if (a_rule_match(&r[i], &f, &dns)) {
                    want = r[i].accept;
                    want_no = (int)num[i];
                    break;
                }
            }
            got = rules_match(rs, &f, &dns, NULL, &no);
            if ((got == RULES_ACCEPT) != want || no != want_no) {
                if (mismatches++ < 5)
                    fprintf(stderr,
                            "    set %u: dst %08x proto %u port %u type %u: "
                            "got %d rule %d, want %d rule %d\n",
                            set, f.dst, f.proto, f.dport, f.icmp_type,
                            got == RULES_ACCEPT, no, want, want_no);
            }
        }
    }
    CHECK_EQ(mismatches, 0);
}

int main(void)
{
    RUN(uplink_spoof_internal_sources);
    RUN(uplink_new_never_reaches_client);
    RUN(uplink_reply_exact_tuple_only);
    RUN(uplink_icmp_error_translation);
    RUN(client_icmp_error_untracked);
    RUN(client_to_client_isolated);
    RUN(connection_to_new_internal_address_closed);
    RUN(client_flood_no_info_logs);
    RUN(reject_shape_and_limit);
    RUN(fragment_overlap_port_rewrite);
    RUN(qdb_rules_overflow_and_uncommitted);
    RUN(fragments_translated_correctly);
    RUN(random_traffic_oracles);
    RUN(rules_match_reference);
    RUN(qdb_store_full_tree_fails_closed);
    RUN(uplink_icmp_error_quote_with_options);
    RUN(icmp_type_rides_echo_connection);
    RUN(client_icmp_error_to_any_host);
    RUN(dns_reply_bad_udp_checksum_believed);
    RUN(uplink_arp_gateway_flap_logs_info);
    RUN(client_source_route_forwarded);
    return test_summary();
}

#endif /* ATTACK_NO_MAIN */
