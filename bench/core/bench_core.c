/*
 * bench_core.c: cost of the verdict pipeline per packet, without I/O.
 *
 *   bench_core instr SCENARIO N   run N measured packets through
 *                                 bench_measured() (callgrind counts the
 *                                 instructions inside it only)
 *   bench_core ns SCENARIO N      wall-clock ns per packet over N packets
 *
 * Scenarios: est_tcp (established TCP, client -> uplink, NAT hit),
 * est_tcp_reply (uplink -> client), new_10 / new_100 / new_1000 (a new
 * TCP connection judged by that many rules, the last one accepting,
 * conntrack entry created), arp (a client's ARP request answered),
 * frag3 (a 3000-byte UDP datagram arriving in 3 fragments: reassembled,
 * NATed, sent as 2 + 1 fragments).
 *
 * Frames are rebuilt from a template before each packet (the pipeline
 * rewrites them in place); that copy is outside the measured function for
 * the instruction count, and included in the wall-clock figure.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qdb.h"
#include "qwall.h"
#include "wire.h"

#define IP(a, b, c, d)                                                         \
    ((uint32_t)(a) << 24 | (uint32_t)(b) << 16 | (uint32_t)(c) << 8 | (d))
#define FW_IP IP(10, 137, 0, 6)
#define WORK IP(10, 137, 0, 10)
#define REMOTE IP(93, 184, 216, 34)

static struct qw *fw;
static uint64_t now = 1000000000000ull;
static uint64_t rng = 88172645463325252ull;
#define BATCH 32
static struct qw_frame outf[64];
static struct qw_out out = {outf, 64, 0};

static const uint8_t m_fe[6] = {0xfe, 0xff, 0xff, 0xff, 0xff, 0xff};
static const uint8_t m_up[6] = {0, 0x16, 0x3e, 0x5e, 0x6c, 0};
static const uint8_t m_gw[6] = {2, 0, 0, 0, 0, 2};
static const uint8_t m_work[6] = {0, 0x16, 0x3e, 0x5e, 0x6c, 0x0a};

static uint32_t b_random(void *ctx)
{
    (void)ctx;
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)rng;
}

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

/* An Ethernet + IPv4 + TCP/UDP frame with valid checksums. */
static size_t build(uint8_t *f, const uint8_t *dmac, const uint8_t *smac,
                    uint32_t src, uint32_t dst, uint8_t proto, uint16_t sport,
                    uint16_t dport, uint8_t flags, size_t paylen,
                    uint16_t ipflags_off)
{
    uint8_t *ip = f + 14, *l4 = ip + 20;
    size_t l4len = (proto == 6 ? 20 : 8) + paylen;
    uint32_t s;

    memcpy(f, dmac, 6);
    memcpy(f + 6, smac, 6);
    f[12] = 8;
    f[13] = 0;
    memset(l4, 0, proto == 6 ? 20 : 8);
    qw_put16(l4, sport);
    qw_put16(l4 + 2, dport);
    if (proto == 6) {
        qw_put32(l4 + 4, 1000);
        qw_put32(l4 + 8, 2000);
        l4[12] = 5 << 4;
        l4[13] = flags;
        qw_put16(l4 + 14, 64240);
    } else {
        qw_put16(l4 + 4, (uint16_t)l4len);
    }
    for (size_t i = l4len - paylen; i < l4len; i++)
        l4[i] = (uint8_t)(i * 7);
    memset(ip, 0, 20);
    ip[0] = 0x45;
    qw_put16(ip + 2, (uint16_t)(20 + l4len));
    qw_put16(ip + 4, 0x5555);
    qw_put16(ip + 6, ipflags_off);
    ip[8] = 64;
    ip[9] = proto;
    qw_put32(ip + 12, src);
    qw_put32(ip + 16, dst);
    qw_put16(ip + 10, fold(sum16(0, ip, 20)));
    s = sum16(0, ip + 12, 8) + proto + (uint32_t)l4len;
    qw_put16(l4 + (proto == 6 ? 16 : 6), fold(sum16(s, l4, l4len)));
    return 14 + 20 + l4len;
}

static void qdb(unsigned type, const char *path, const char *value)
{
    static uint8_t msg[QDB_MAX_MSG];
    size_t n = qdb_encode(msg, sizeof msg, type, path, value,
                          value ? strlen(value) : 0);

    out.n = 0;
    qw_qdb_rx(fw, msg, n, now, &out);
}

/* Configured firewall, client "work" with nrules rules, the last
 * accepting TCP; the others never match (other addresses / ports). */
static void setup(unsigned nrules)
{
    struct qw_config c;
    struct qw_platform p = {NULL, NULL, b_random, NULL, NULL};
    struct qw_client w = {WORK, {0, 0x16, 0x3e, 0x5e, 0x6c, 0x0a}, "work"};
    uint8_t arp[42];
    struct qw_frame f = {arp, 42, 0, 0};
    char path[64], val[96];
    size_t sz;

    memset(&c, 0, sizeof c);
    c.nat_table_size = 65536;
    c.max_clients = 8;
    c.max_rules = 1024;
    c.frag_link_bytes = 256 * 1024;
    c.qdb_max_entries = 4096;
    c.log_level = QW_LOG_ERR;
    sz = qw_mem_size(&c);
    fw = qw_create(aligned_alloc(16, (sz + 15) & ~(size_t)15), sz, &c, &p);
    if (fw == NULL) {
        fprintf(stderr, "bench_core: qw_create failed\n");
        exit(1);
    }
    qw_qdb_connected(fw, now);
    qdb(QDB_RESP_MULTIREAD, "/qubes-ip", "10.137.0.6");
    qdb(QDB_RESP_MULTIREAD, "/qubes-gateway", "10.137.0.2");
    qdb(QDB_RESP_MULTIREAD, "/qubes-primary-dns", "10.139.1.1");
    qdb(QDB_RESP_MULTIREAD, "/qubes-secondary-dns", "10.139.1.2");
    qdb(QDB_RESP_MULTIREAD, "/connected-ips", "10.137.0.10");
    qdb(QDB_RESP_MULTIREAD, "", NULL);
    out.n = 0;
    qw_uplink_up(fw, m_up, now, &out);
    /* the gateway answers ARP */
    memcpy(arp, m_up, 6);
    memcpy(arp + 6, m_gw, 6);
    memcpy(arp + 12, "\x08\x06\x00\x01\x08\x00\x06\x04\x00\x02", 10);
    memcpy(arp + 22, m_gw, 6);
    qw_put32(arp + 28, IP(10, 137, 0, 2));
    memcpy(arp + 32, m_up, 6);
    qw_put32(arp + 38, FW_IP);
    out.n = 0;
    qw_rx(fw, 0, &f, 1, now, &out);
    if (qw_client_attach(fw, &w, now) != 1) {
        fprintf(stderr, "bench_core: attach failed\n");
        exit(1);
    }
    qdb(QDB_CMD_WRITE, "/qubes-firewall/10.137.0.10/policy", "drop");
    for (unsigned i = 0; i + 1 < nrules; i++) {
        snprintf(path, sizeof path, "/qubes-firewall/10.137.0.10/%04u", i);
        snprintf(val, sizeof val,
                 "action=%s dst4=192.0.%u.%u/32 proto=%s dstports=%u-%u",
                 i % 3 ? "accept" : "drop", 2 + i / 256, i % 256,
                 i & 1 ? "udp" : "tcp", 1000 + i, 1000 + i + i % 7);
        qdb(QDB_CMD_WRITE, path, val);
    }
    snprintf(path, sizeof path, "/qubes-firewall/10.137.0.10/%04u",
             nrules ? nrules - 1 : 0);
    qdb(QDB_CMD_WRITE, path, "action=accept proto=tcp");
    qdb(QDB_CMD_WRITE, "/qubes-firewall/10.137.0.10", "");
    if (!qw_configured(fw)) {
        fprintf(stderr, "bench_core: not configured\n");
        exit(1);
    }
}

/* The measured call (callgrind --toggle-collect=bench_measured). */
__attribute__((noinline)) void bench_measured(unsigned link, struct qw_frame *f,
                                              unsigned n);
__attribute__((noinline)) void bench_measured(unsigned link, struct qw_frame *f,
                                              unsigned n)
{
    out.n = 0;
    qw_rx(fw, link, f, n, now, &out);
}

enum scen { EST, EST_REPLY, NEW, ARP, FRAG3 };

/* SYN out, SYN-ACK back, ACK out: an established connection from port. */
static void establish(uint16_t port)
{
    uint8_t f[2048];
    struct qw_frame q = {f, 0, 0, 0};

    q.len = (uint32_t)build(f, m_fe, m_work, WORK, REMOTE, 6, port, 443, 0x02,
                            0, 0x4000);
    out.n = 0;
    qw_rx(fw, 1, &q, 1, now, &out);
    q.len = (uint32_t)build(f, m_up, m_gw, REMOTE, FW_IP, 6, 443, port, 0x12, 0,
                            0x4000);
    out.n = 0;
    qw_rx(fw, 0, &q, 1, now, &out);
    q.len = (uint32_t)build(f, m_fe, m_work, WORK, REMOTE, 6, port, 443, 0x10,
                            0, 0x4000);
    out.n = 0;
    qw_rx(fw, 1, &q, 1, now, &out);
}

struct job {
    enum scen s;
    uint8_t tmpl[BATCH][2048];
    size_t tlen[BATCH];
    uint8_t buf[BATCH][2048];
    struct qw_frame f[BATCH];
    unsigned nf, link;
    unsigned expect_out;
};

static void prepare(struct job *j, const char *name)
{
    unsigned nrules = 100, nflows;

    memset(j, 0, sizeof *j);
    j->nf = 1;
    j->link = 1;
    j->expect_out = 1;
    if (strncmp(name, "est_tcp", 7) == 0) {
        /* est_tcp[_reply]: batches of 32 packets of one flow, as a busy
         * link delivers them; est_tcp[_reply]_b1: one packet per call */
        j->s = strstr(name, "reply") != NULL ? EST_REPLY : EST;
        if (strstr(name, "_b1") == NULL) {
            j->nf = BATCH;
            j->expect_out = BATCH;
        }
    } else if (strncmp(name, "new_", 4) == 0) {
        j->s = NEW;
        nrules = (unsigned)atoi(name + 4);
    } else if (strcmp(name, "arp") == 0) {
        j->s = ARP;
    } else if (strcmp(name, "frag3") == 0) {
        j->s = FRAG3;
    } else {
        fprintf(stderr, "bench_core: unknown scenario %s\n", name);
        exit(2);
    }
    setup(nrules);
    if (j->s == EST || j->s == EST_REPLY) {
        establish(40000);
        /* est_tcp_mix: 32 flows interleaved, so that consecutive packets
         * never belong to the same connection */
        nflows = strstr(name, "mix") != NULL ? BATCH : 1;
        for (unsigned k = 1; k < nflows; k++) {
            establish(40000 + k);
        }
        for (unsigned k = 0; k < j->nf; k++) {
            uint16_t port = (uint16_t)(40000 + k % nflows);
            if (j->s == EST) {
                j->tlen[k] = build(j->tmpl[k], m_fe, m_work, WORK, REMOTE, 6,
                                   port, 443, 0x10, 64, 0x4000);
            } else {
                j->link = 0;
                j->tlen[k] = build(j->tmpl[k], m_up, m_gw, REMOTE, FW_IP, 6,
                                   443, port, 0x10, 64, 0x4000);
            }
        }
    } else if (j->s == NEW) {
        j->tlen[0] = build(j->tmpl[0], m_fe, m_work, WORK, REMOTE, 6, 1024, 443,
                           0x02, 0, 0x4000);
    } else if (j->s == ARP) {
        uint8_t *a = j->tmpl[0];
        memset(a, 0xff, 6);
        memcpy(a + 6, m_work, 6);
        memcpy(a + 12, "\x08\x06\x00\x01\x08\x00\x06\x04\x00\x01", 10);
        memcpy(a + 22, m_work, 6);
        qw_put32(a + 28, WORK);
        memset(a + 32, 0, 6);
        qw_put32(a + 38, FW_IP);
        j->tlen[0] = 42;
    } else {
        /* a 3000-byte UDP datagram; rule 0000 now accepts UDP */
        uint8_t whole[4096];
        uint8_t *ip = whole + 14;
        static const unsigned cut[4] = {0, 1000, 2000, 2980};
        build(whole, m_fe, m_work, WORK, REMOTE, 17, 5000, 443, 0, 2972, 0);
        qdb(QDB_CMD_WRITE, "/qubes-firewall/10.137.0.10/0000",
            "action=accept proto=udp");
        qdb(QDB_CMD_WRITE, "/qubes-firewall/10.137.0.10", "");
        j->nf = 3;
        j->expect_out = 3;
        for (unsigned k = 0; k < 3; k++) {
            uint8_t *g = j->tmpl[k], *gi = g + 14;
            unsigned plen = cut[k + 1] - cut[k];
            memcpy(g, whole, 34);
            memcpy(gi + 20, ip + 20 + cut[k], plen);
            qw_put16(gi + 2, (uint16_t)(20 + plen));
            qw_put16(gi + 6, (uint16_t)((k < 2 ? 0x2000 : 0) | cut[k] / 8));
            qw_put16(gi + 10, 0);
            qw_put16(gi + 10, fold(sum16(0, gi, 20)));
            j->tlen[k] = 34 + plen;
        }
    }
}

/* Restore the frames for packet number i (outside the measurement). */
static void refill(struct job *j, unsigned i)
{
    for (unsigned k = 0; k < j->nf; k++) {
        memcpy(j->buf[k], j->tmpl[k], j->tlen[k]);
        j->f[k].data = j->buf[k];
        j->f[k].len = (uint32_t)j->tlen[k];
        j->f[k].flags = 0;
    }
    if (j->s == NEW) {
        /* a fresh connection each time: another source port and
         * destination; checksums patched incrementally */
        uint8_t *ip = j->buf[0] + 14;
        uint16_t sport = (uint16_t)(1024 + i % 60000);
        uint32_t dst = REMOTE + i / 60000;
        uint16_t c = qw_get16(ip + 36);
        c = qw_csum_update16(c, 1024, sport);
        c = qw_csum_update32(c, REMOTE, dst);
        qw_put16(ip + 36, c);
        qw_put16(ip + 20, sport);
        qw_put16(ip + 10, qw_csum_update32(qw_get16(ip + 10), REMOTE, dst));
        qw_put32(ip + 16, dst);
    }
}

static double ns_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

int main(int argc, char **argv)
{
    static struct job j;
    unsigned n, per, bad = 0;
    double t0, t1;

    if (argc != 4) {
        fprintf(stderr, "usage: bench_core instr|ns SCENARIO N\n");
        return 2;
    }
    n = (unsigned)atoi(argv[3]);
    prepare(&j, argv[2]);
    /* units: packets, except frag3 whose unit is a 3-fragment datagram;
     * a call carries `per` units */
    per = j.s == FRAG3 ? 1 : j.nf;
    n = n / per;
    if (strcmp(argv[1], "instr") == 0) {
        printf("%u\n", n * per); /* run.sh divides callgrind's total */
        for (unsigned i = 0; i < n; i++) {
            refill(&j, i);
            bench_measured(j.link, j.f, j.nf);
            bad += out.n != j.expect_out;
            now += 1000;
        }
    } else {
        /* best of 5 rounds (other load on the machine only inflates a
         * round); the time includes restoring each frame from its
         * template, a copy like the one a platform makes from its ring.
         * Subtracting a copy-only loop is not done: out-of-order execution
         * overlaps the two, and the difference would under-report. */
        double best = 1e30;
        for (unsigned r = 0; r < 5; r++) {
            t0 = ns_now();
            for (unsigned i = 0; i < n; i++) {
                refill(&j, i);
                bench_measured(j.link, j.f, j.nf);
                bad += out.n != j.expect_out;
                now += 1000;
            }
            t1 = ns_now();
            if (t1 - t0 < best)
                best = t1 - t0;
        }
        printf("%.1f\n", best / n / per);
    }
    if (bad != 0) {
        fprintf(stderr,
                "bench_core %s: %u of %u packets gave unexpected "
                "output\n",
                argv[2], bad, n);
        return 1;
    }
    return 0;
}
