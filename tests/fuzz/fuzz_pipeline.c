/*
 * fuzz_pipeline.c: libFuzzer target for the frame pipeline.
 *
 * A firewall is set up once as in production: QubesDB dump with the
 * network settings, uplink up, gateway resolved, two clients with rules
 * (one with every field, one accepting all). Each input is then a script
 * of records, played against it:
 *
 *   0x00 link len_lo len_hi bytes...   one frame on link (link % 4:
 *                                      3 is a link that is not attached)
 *   0x01 link len_lo len_hi bytes...   same with QW_FRAME_CSUM_BLANK
 *   0x02 secs                          advance the clock, then qw_poll()
 *   0x03 n                             control: commit rule set n % 8 for
 *                                      work, change /connected-ips or the
 *                                      gateway, detach/re-attach "other"
 *   anything else                      end of script
 *
 * Invariants checked after every call: the output count is within its
 * capacity; every output frame goes to an existing link, is 14..1514
 * bytes, and if IPv4 has a valid version, header length, total length
 * equal to the frame's payload and a valid header checksum; ARP output is
 * 42 bytes; after each input the connection table passes ct_check(). It
 * is flushed between inputs so that inputs stay independent.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ct.h"
#include "fw.h"
#include "qdb.h"
#include "qwall.h"
#include "wire.h"

#define OUT_CAP 256

static struct qw *fw;
static uint64_t now = 1000000000000ull;
static uint64_t rng = 0x1234567887654321ull;
static struct qw_frame outf[OUT_CAP];
static struct qw_out out = {outf, OUT_CAP, 0};

static uint32_t f_random(void *ctx)
{
    (void)ctx;
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)rng;
}

static void qdb(unsigned type, const char *path, const char *value)
{
    uint8_t msg[QDB_MAX_MSG];
    size_t n = qdb_encode(msg, sizeof msg, type, path, value,
                          value ? strlen(value) : 0);

    out.n = 0;
    qw_qdb_rx(fw, msg, n, now, &out);
}

static void check_out(void)
{
    if (out.n > out.cap)
        abort();
    for (unsigned i = 0; i < out.n; i++) {
        const struct qw_frame *f = &out.frames[i];
        uint16_t type;

        if (f->link > 2 || f->len < 14 || f->len > QW_FRAME_MAX)
            abort();
        type = qw_get16(f->data + 12);
        if (type == ETHERTYPE_ARP) {
            if (f->len != 42)
                abort();
        } else if (type == ETHERTYPE_IPV4) {
            const uint8_t *ip = f->data + 14;
            unsigned hl;
            if (f->len < 34 || (ip[0] >> 4) != 4)
                abort();
            hl = (ip[0] & 15) * 4u;
            if (hl < 20 || hl > f->len - 14u ||
                qw_get16(ip + 2) != f->len - 14u ||
                qw_csum_fold(qw_csum_add(0, ip, hl)) != 0)
                abort();
        } else {
            abort(); /* the core emits nothing else */
        }
    }
}

static const char *const work[] = {
    "policy", "drop",
    "0000",   "action=drop dst4=1.1.1.1/24",
    "0001",   "action=accept proto=tcp dstports=443-443",
    "0002",   "action=accept proto=udp specialtarget=dns",
    "0003",   "action=accept proto=icmp icmptype=8",
    "0005",   "action=accept dst4=198.51.100.0/24",
    "0006",   "action=accept dsthost=example.com",
    NULL,
};

/* work's rule tree as at start-up. */
static void work_rules(void)
{
    char path[64];

    qdb(QDB_CMD_RM, "/qubes-firewall/10.137.0.10/", NULL);
    for (unsigned i = 0; work[i] != NULL; i += 2) {
        snprintf(path, sizeof path, "/qubes-firewall/10.137.0.10/%s", work[i]);
        qdb(QDB_CMD_WRITE, path, work[i + 1]);
    }
    qdb(QDB_CMD_WRITE, "/qubes-firewall/10.137.0.10", "");
}

static void setup(void)
{
    struct qw_config c;
    struct qw_platform p = {NULL, NULL, f_random, NULL, NULL};
    struct qw_client w = {
        0x0a89000a, {0, 0x16, 0x3e, 0x5e, 0x6c, 0x0a}, "work"};
    struct qw_client o = {
        0x0a89000b, {0, 0x16, 0x3e, 0x5e, 0x6c, 0x0b}, "other"};
    static const uint8_t up[6] = {0, 0x16, 0x3e, 0x5e, 0x6c, 0};
    size_t sz;
    void *mem;

    memset(&c, 0, sizeof c);
    c.nat_table_size = 512;
    c.max_clients = 3;
    c.max_rules = 32;
    c.frag_link_bytes = 64 * 1024;
    c.dns_cache_names = 8;
    c.qdb_max_entries = 128;
    c.log_level = QW_LOG_DEBUG; /* exercise the log paths (no sink) */
    sz = qw_mem_size(&c);
    mem = aligned_alloc(16, (sz + 15) & ~(size_t)15);
    fw = qw_create(mem, sz, &c, &p);
    if (fw == NULL)
        abort();
    qw_qdb_connected(fw, now);
    qdb(QDB_RESP_MULTIREAD, "/qubes-ip", "10.137.0.6");
    qdb(QDB_RESP_MULTIREAD, "/qubes-gateway", "10.137.0.2");
    qdb(QDB_RESP_MULTIREAD, "/qubes-primary-dns", "10.139.1.1");
    qdb(QDB_RESP_MULTIREAD, "/qubes-secondary-dns", "10.139.1.2");
    qdb(QDB_RESP_MULTIREAD, "/connected-ips", "10.137.0.10 10.137.0.11");
    qdb(QDB_RESP_MULTIREAD, "", NULL);
    out.n = 0;
    qw_uplink_up(fw, up, now, &out);
    if (qw_client_attach(fw, &w, now) != 1 ||
        qw_client_attach(fw, &o, now) != 2)
        abort();
    work_rules();
    qdb(QDB_CMD_WRITE, "/qubes-firewall/10.137.0.11/policy", "drop");
    qdb(QDB_CMD_WRITE, "/qubes-firewall/10.137.0.11/0000", "action=accept");
    qdb(QDB_CMD_WRITE, "/qubes-firewall/10.137.0.11", "");
}

/* Control-plane events between frames: rule commits (with re-checks of
 * live connections), anti-spoof set and gateway changes, detach/attach. */
static bool dirty; /* control() changed the set-up: restore it */

static void control(uint8_t n)
{
    static const char *const sets[6] = {
        "action=accept",
        "action=accept proto=tcp dstports=1-1024",
        "action=drop dst4=93.184.216.0/24",
        "action=accept proto=udp specialtarget=dns",
        "action=accept proto=icmp icmptype=8",
        "action=bogus", /* fails closed */
    };
    struct qw_client o = {
        0x0a89000b, {0, 0x16, 0x3e, 0x5e, 0x6c, 0x0b}, "other"};

    dirty = true;
    switch (n % 8) {
    case 6:
        qdb(QDB_CMD_WRITE, "/connected-ips",
            (n & 8) ? "10.137.0.10 10.137.0.11"
                    : "10.137.0.10 10.137.0.11 93.184.216.34");
        break;
    case 7:
        if (n & 8) {
            qdb(QDB_CMD_WRITE, "/qubes-gateway",
                (n & 16) ? "10.137.0.2" : "10.137.0.3");
        } else {
            qw_client_detach(fw, 2, now);
            if (qw_client_attach(fw, &o, now) != 2)
                abort();
        }
        break;
    default:
        qdb(QDB_CMD_WRITE, "/qubes-firewall/10.137.0.10/0000", sets[n % 8]);
        qdb(QDB_CMD_WRITE, "/qubes-firewall/10.137.0.10", "");
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t frames[64][2048];
    unsigned nf = 0;
    size_t i = 0;

    if (fw == NULL)
        setup();
    if (dirty) {
        /* inputs stay independent of each other */
        work_rules();
        qdb(QDB_CMD_WRITE, "/connected-ips", "10.137.0.10 10.137.0.11");
        qdb(QDB_CMD_WRITE, "/qubes-gateway", "10.137.0.2");
        dirty = false;
    }
    ct_flush(fw->ct);
    while (i < size && nf < 64) {
        uint8_t op = data[i++];

        if (op <= 1) {
            struct qw_frame f;
            unsigned link, len;
            if (size - i < 3)
                break;
            link = data[i] % 4;
            len = (unsigned)(data[i + 1] | data[i + 2] << 8) % 2048;
            i += 3;
            if (len > size - i)
                len = (unsigned)(size - i);
            memcpy(frames[nf], data + i, len);
            i += len;
            f.data = frames[nf++];
            f.len = len;
            f.link = (uint16_t)link;
            f.flags = op == 1 ? QW_FRAME_CSUM_BLANK : 0;
            out.n = 0;
            qw_rx(fw, link, &f, 1, now, &out);
            check_out();
        } else if (op == 2) {
            if (i >= size)
                break;
            now += (uint64_t)data[i++] * 1000000000ull;
            out.n = 0;
            qw_poll(fw, now, &out);
            check_out();
        } else if (op == 3) {
            if (i >= size)
                break;
            control(data[i++]);
            check_out();
        } else {
            break;
        }
    }
    /* O(capacity): once per input */
    if (ct_check(fw->ct) != 0)
        abort();
    return 0;
}
