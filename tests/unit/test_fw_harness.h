/*
 * test_fw_harness.h: a configured firewall for the pipeline tests
 * (test_fw.c, test_semantics.c): fake clock, fake platform with
 * deterministic random numbers, QubesDB fed through the real protocol,
 * and helpers to push hex frames and compare what comes out.
 *
 * Topology (addresses in test_fw_fixtures.py):
 *   uplink (link 0): us 10.137.0.6 / 00:16:3e:5e:6c:00, gateway
 *                    10.137.0.2 at 02:00:00:00:00:02, DNS 10.139.1.1/.2
 *   link 1 "work"    10.137.0.10 / 00:16:3e:5e:6c:0a
 *   link 2 "other"   10.137.0.11 / 00:16:3e:5e:6c:0b (no rules unless set)
 *   /connected-ips   10.137.0.10 10.137.0.11 10.137.0.50
 */
#ifndef TEST_FW_HARNESS_H
#define TEST_FW_HARNESS_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qdb.h"
#include "qwall.h"
#include "test.h"
#include "test_fw_fixtures.h"
#include "wire.h"

#define IP(a, b, c, d)                                                         \
    ((uint32_t)(a) << 24 | (uint32_t)(b) << 16 | (uint32_t)(c) << 8 | (d))
#define T_FW IP(10, 137, 0, 6)
#define T_GW IP(10, 137, 0, 2)
#define T_WORK IP(10, 137, 0, 10)
#define T_OTHER IP(10, 137, 0, 11)
#define SEC 1000000000ull

#define T_MAXOUT 256
#define T_MAXIN 64
#define T_FRAME 4096

struct tfw {
    struct qw *fw;
    void *mem;
    uint64_t now;
    uint64_t rng;
    unsigned nlog;
    char log[256][320];
    unsigned ndropped;
    enum qw_drop last_drop;
    unsigned last_drop_link;
    struct qw_frame of[T_MAXOUT];
    struct qw_out out;
    uint8_t in[T_MAXIN][T_FRAME];
    unsigned in_next;
    int work, other; /* link numbers */
};

static uint32_t t_random(void *ctx)
{
    struct tfw *t = ctx;

    /* xorshift64*: deterministic, fixed seed */
    t->rng ^= t->rng >> 12;
    t->rng ^= t->rng << 25;
    t->rng ^= t->rng >> 27;
    return (uint32_t)((t->rng * 0x2545f4914f6cdd1dull) >> 32);
}

static void t_log(void *ctx, enum qw_log_level lvl, const char *line)
{
    struct tfw *t = ctx;

    if (getenv("TEST_VERBOSE") != NULL)
        fprintf(stderr, "    log[%d] %s\n", lvl, line);
    if (t->nlog < 256)
        snprintf(t->log[t->nlog++], sizeof t->log[0], "%s", line);
}

static void t_dropped(void *ctx, unsigned link, const uint8_t *frame,
                      uint32_t len, enum qw_drop reason)
{
    struct tfw *t = ctx;

    (void)frame;
    (void)len;
    t->ndropped++;
    t->last_drop = reason;
    t->last_drop_link = link;
    if (getenv("TEST_VERBOSE") != NULL)
        fprintf(stderr, "    drop link %u %s\n", link, qw_drop_name(reason));
}

/* True if a log line containing s was seen. */
static int t_logged(const struct tfw *t, const char *s)
{
    for (unsigned i = 0; i < t->nlog; i++)
        if (strstr(t->log[i], s) != NULL)
            return 1;
    return 0;
}

static void t_reset_out(struct tfw *t)
{
    t->out.frames = t->of;
    t->out.cap = T_MAXOUT;
    t->out.n = 0;
}

/* Feed one QubesDB message from dom0. */
static int t_qdb(struct tfw *t, unsigned type, const char *path,
                 const char *value)
{
    uint8_t msg[QDB_MAX_MSG];
    size_t n = qdb_encode(msg, sizeof msg, type, path, value,
                          value ? strlen(value) : 0);

    t_reset_out(t);
    return qw_qdb_rx(t->fw, msg, n, t->now, &t->out);
}

static int t_write(struct tfw *t, const char *path, const char *value)
{
    return t_qdb(t, QDB_CMD_WRITE, path, value);
}

/* A client's rule tree: rm, entries ("key=value" lines), commit. */
static void t_rules(struct tfw *t, const char *ip, const char *const *rules)
{
    char path[80];

    snprintf(path, sizeof path, "/qubes-firewall/%s/", ip);
    t_qdb(t, QDB_CMD_RM, path, NULL);
    for (unsigned i = 0; rules[i] != NULL; i++) {
        const char *eq = strchr(rules[i], '=');
        char key[16];
        snprintf(key, sizeof key, "%.*s", (int)(eq - rules[i]), rules[i]);
        snprintf(path, sizeof path, "/qubes-firewall/%s/%s", ip, key);
        t_write(t, path, eq + 1);
    }
    snprintf(path, sizeof path, "/qubes-firewall/%s", ip);
    t_write(t, path, "");
}

static const char *const t_work_rules[] = {
    "policy=drop",
    "0000=action=drop dst4=1.1.1.1/24",
    "0001=action=accept proto=tcp dstports=443-443",
    "0002=action=accept proto=udp specialtarget=dns",
    "0003=action=accept proto=icmp icmptype=8",
    /* 0004 missing: a gap (expired rule) */
    "0005=action=accept dst4=198.51.100.0/24",
    NULL,
};

/* Push one hex frame on link; outputs land in t->out (reset first). */
static void t_rx_flags(struct tfw *t, unsigned link, const char *hex,
                       uint16_t flags)
{
    uint8_t *buf = t->in[t->in_next++ % T_MAXIN];
    int n = test_hex(hex, buf, T_FRAME);
    struct qw_frame f = {buf, (uint32_t)(n < 0 ? 0 : n), (uint16_t)link, flags};

    if (n < 0)
        fprintf(stderr, "  bad hex fixture\n");
    t_reset_out(t);
    qw_rx(t->fw, link, &f, 1, t->now, &t->out);
}

static void t_rx(struct tfw *t, unsigned link, const char *hex)
{
    t_rx_flags(t, link, hex, 0);
}

/* Output i equals the hex frame on link. */
static int t_out_is(const struct tfw *t, unsigned i, unsigned link,
                    const char *hex)
{
    static uint8_t want[T_FRAME];
    int n = test_hex(hex, want, sizeof want);

    if (i >= t->out.n) {
        fprintf(stderr, "    no output frame %u (have %u)\n", i, t->out.n);
        return 0;
    }
    if (t->out.frames[i].link != link) {
        fprintf(stderr, "    output %u on link %u, want %u\n", i,
                t->out.frames[i].link, link);
        return 0;
    }
    if (n < 0 || (uint32_t)n != t->out.frames[i].len) {
        fprintf(stderr, "    output %u length %u, want %d\n", i,
                t->out.frames[i].len, n);
        return 0;
    }
    if (memcmp(t->out.frames[i].data, want, (size_t)n) != 0) {
        for (int j = 0; j < n; j++) {
            if (t->out.frames[i].data[j] != want[j]) {
                fprintf(stderr,
                        "    output %u differs at byte %d: %02x, "
                        "want %02x\n",
                        i, j, t->out.frames[i].data[j], want[j]);
                break;
            }
        }
        return 0;
    }
    return 1;
}

/* Dropped with `why` on link, nothing sent. */
static int t_dropped_as(const struct tfw *t, unsigned link, enum qw_drop why)
{
    if (t->last_drop != why || t->last_drop_link != link) {
        fprintf(stderr, "    last drop %s on %u, want %s on %u\n",
                qw_drop_name(t->last_drop), t->last_drop_link,
                qw_drop_name(why), link);
        return 0;
    }
    return 1;
}

static struct qw_config t_config(void)
{
    struct qw_config c;

    memset(&c, 0, sizeof c);
    c.nat_table_size = 256;
    c.max_clients = 4;
    c.max_rules = 64;
    c.frag_link_bytes = 64 * 1024;
    c.dns_cache_names = 16;
    c.qdb_max_entries = 256;
    c.log_level = QW_LOG_INFO;
    return c;
}

static void t_free(struct tfw *t)
{
    free(t->mem);
    free(t);
}

/* A firewall created with cfg; nothing configured yet. */
static struct tfw *t_new_cfg(const struct qw_config *cfg)
{
    struct tfw *t = calloc(1, sizeof *t);
    struct qw_platform p = {t, t_log, t_random, t_dropped, NULL};
    size_t sz = qw_mem_size(cfg);

    t->rng = 0x9e3779b97f4a7c15ull;
    t->now = 1000 * SEC;
    t->mem = aligned_alloc(16, (sz + 15) & ~(size_t)15);
    memset(t->mem, 0xa5, sz); /* qw_create must not rely on zeroed memory */
    t->fw = qw_create(t->mem, sz, cfg, &p);
    t_reset_out(t);
    return t;
}

/* QubesDB connection and initial dump with the network settings. */
static void t_dump(struct tfw *t)
{
    qw_qdb_connected(t->fw, t->now);
    t_qdb(t, QDB_RESP_MULTIREAD, "/qubes-secondary-dns", "10.139.1.2");
    t_qdb(t, QDB_RESP_MULTIREAD, "/qubes-primary-dns", "10.139.1.1");
    t_qdb(t, QDB_RESP_MULTIREAD, "/qubes-ip", "10.137.0.6");
    t_qdb(t, QDB_RESP_MULTIREAD, "/qubes-gateway", "10.137.0.2");
    t_qdb(t, QDB_RESP_MULTIREAD, "/connected-ips",
          "10.137.0.10 10.137.0.11 10.137.0.50");
    t_qdb(t, QDB_RESP_MULTIREAD, "", NULL);
}

/* The standard setup: configured, uplink up, gateway resolved, two
 * clients, work's rules applied. */
static struct tfw *t_setup(void)
{
    struct qw_config c = t_config();
    struct tfw *t = t_new_cfg(&c);
    static const uint8_t upmac[6] = {0x00, 0x16, 0x3e, 0x5e, 0x6c, 0x00};
    struct qw_client w = {T_WORK, {0x00, 0x16, 0x3e, 0x5e, 0x6c, 0x0a}, "work"};
    struct qw_client o = {
        T_OTHER, {0x00, 0x16, 0x3e, 0x5e, 0x6c, 0x0b}, "other"};

    t_dump(t);
    t_reset_out(t);
    qw_uplink_up(t->fw, upmac, t->now, &t->out);
    t_rx(t, 0, FX_ARP_UP_GWREP);
    t->work = qw_client_attach(t->fw, &w, t->now);
    t->other = qw_client_attach(t->fw, &o, t->now);
    t_rules(t, "10.137.0.10", t_work_rules);
    t_reset_out(t);
    return t;
}

#endif /* TEST_FW_HARNESS_H */
