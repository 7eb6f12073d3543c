/*
 * test_qdb.c: QubesDB protocol (VM side) and key store (core/qdb.c).
 */
#include <stdlib.h>

#include "qdb.h"
#include "test.h"

/* ---- an independent dom0: what its verify_hdr accepts from a VM ---- */

struct dom0 {
    uint8_t buf[QDB_TX_CAP * 4];
    size_t len;
    uint8_t raw[QDB_TX_CAP * 4]; /* everything received, for comparisons */
    size_t rawlen;
    unsigned multireads, msgs;
    int bad; /* first violation: line number in this file, 0 = none */
};

static bool dom0_path_char(char c)
{
    return strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                  "0123456789_/.:@-",
                  c) != NULL;
}

#define DOM0_BAD(d)                                                            \
    do {                                                                       \
        if ((d)->bad == 0)                                                     \
            (d)->bad = __LINE__;                                               \
        return;                                                                \
    } while (0)

/* Check every complete message in d->buf, keep a partial tail. */
static void dom0_verify(struct dom0 *d)
{
    size_t p = 0;

    while (d->len - p >= 72) {
        const uint8_t *m = d->buf + p;
        uint32_t dl = m[68] | m[69] << 8 | m[70] << 16 | (uint32_t)m[71] << 24;
        size_t n = memchr(m + 1, 0, 64) ? strlen((const char *)m + 1) : 64;

        if (dl >= 3072)
            DOM0_BAD(d);
        if (d->len - p < 72 + dl)
            break;
        if (n == 64)
            DOM0_BAD(d);
        for (size_t i = 0; i < n; i++)
            if (!dom0_path_char((char)m[1 + i]))
                DOM0_BAD(d);
        if (n > 0 && m[1] == '-')
            DOM0_BAD(d);
        switch (m[0]) {
        case QDB_CMD_MULTIREAD:
            if (d->multireads++ > 0 || n != 0 || dl != 0)
                DOM0_BAD(d);
            break;
        case QDB_CMD_WRITE:
            if (n == 0 || memchr(m + 72, 0, dl) != NULL)
                DOM0_BAD(d);
            break;
        case QDB_CMD_RM:
        case QDB_RESP_OK:
        case QDB_RESP_ERROR:
            if (n == 0 || dl != 0)
                DOM0_BAD(d);
            break;
        default: /* RESP_MULTIREAD is dom0's; the rest are local-only */
            DOM0_BAD(d);
        }
        d->msgs++;
        p += 72 + dl;
    }
    memmove(d->buf, d->buf + p, d->len - p);
    d->len -= p;
}

/* Move everything q wants to send into d, in pieces of `chunk`. */
static void drain(struct qdb *q, struct dom0 *d, size_t chunk)
{
    size_t n;

    while ((n = qdb_tx(q, d->buf + d->len,
                       chunk < sizeof(d->buf) - d->len
                           ? chunk
                           : sizeof(d->buf) - d->len)) > 0) {
        if (d->rawlen + n <= sizeof(d->raw)) {
            memcpy(d->raw + d->rawlen, d->buf + d->len, n);
            d->rawlen += n;
        }
        d->len += n;
        dom0_verify(d);
    }
}

/* ---- event log ---- */

struct evlog {
    char s[16384];
    size_t n;
    unsigned logs, warns;
    struct qdb *q; /* for callbacks that write back */
    bool write_back;
};

static void ev_add(struct evlog *l, const char *fmt, const char *a,
                   const char *b, size_t bn)
{
    int r = snprintf(l->s + l->n, sizeof(l->s) - l->n, fmt, a, (int)bn, b);
    if (r > 0 && (size_t)r < sizeof(l->s) - l->n)
        l->n += (size_t)r;
}

static void ev_write(void *ctx, const char *p, const char *v, size_t n)
{
    ev_add(ctx, "W %s=%.*s\n", p, v, n);
}

static void ev_rm(void *ctx, const char *p)
{
    ev_add(ctx, "R %s%.*s\n", p, "", 0);
}

static void ev_commit(void *ctx, const char *dir, bool complete)
{
    struct evlog *l = ctx;

    ev_add(ctx, "C %s %.*s\n", dir, complete ? "1" : "0", 1);
    if (l->write_back) /* callbacks may write */
        CHECK_EQ(qdb_write(l->q, "/qubes-firewall-handled/x", "1", 1), 0);
}

static void ev_synced(void *ctx)
{
    ev_add(ctx, "S%s%.*s\n", "", "", 0);
}

static void ev_log(void *ctx, enum qw_log_level lvl, const char *line)
{
    struct evlog *l = ctx;

    l->logs++;
    if (lvl <= QW_LOG_WARN)
        l->warns++;
    CHECK(strncmp(line, "qdb: ", 5) == 0);
}

static struct qdb *mk(unsigned ents, size_t bytes, struct evlog *l)
{
    struct qdb_events ev = {l, ev_write, ev_rm, ev_commit, ev_synced, ev_log};
    size_t sz = qdb_mem_size(ents, bytes);
    struct qdb *q = aligned_alloc(16, (sz + 15) & ~(size_t)15);

    memset(l, 0, sizeof(*l));
    l->q = q;
    qdb_init(q, ents, bytes, &ev);
    return q;
}

/* Append one message to a stream. */
static size_t put(uint8_t *s, size_t at, unsigned type, const char *path,
                  const char *data)
{
    size_t n =
        qdb_encode(s + at, 65536, type, path, data, data ? strlen(data) : 0);
    CHECK(n >= QDB_HDR_LEN);
    return at + n;
}

/* ---- tests ---- */

TEST(encode_layout)
{
    static const char write_hex[] =
        "01 2f 71 75 62 65 73 2d 69 70 00 00 00 00 00 00" /* /qubes-ip */
        "00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00"
        "00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00"
        "00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00"
        "00 00 00 00"                    /* 3 bytes of padding at 65 */
        "0a 00 00 00"                    /* data_len 10, little-endian */
        "31 30 2e 31 33 37 2e 30 2e 36"; /* 10.137.0.6 */
    uint8_t want[100], got[100];
    int nw = test_hex(write_hex, want, sizeof(want));
    struct qdb_hdr h;
    char path[70];

    CHECK_EQ(nw, 82);
    CHECK_EQ(qdb_encode(got, sizeof(got), QDB_CMD_WRITE, "/qubes-ip",
                        "10.137.0.6", 10),
             82);
    CHECK_MEM(got, want, 82);
    CHECK_EQ(qdb_decode_hdr(got, &h), 0);
    CHECK_EQ(h.type, QDB_CMD_WRITE);
    CHECK(strcmp(h.path, "/qubes-ip") == 0);
    CHECK_EQ(h.data_len, 10);
    /* too small, path too long */
    CHECK_EQ(qdb_encode(got, 81, QDB_CMD_WRITE, "/qubes-ip", "10.137.0.6", 10),
             0);
    memset(path, 'a', 64);
    path[64] = '\0';
    CHECK_EQ(qdb_encode(got, sizeof(got), QDB_CMD_WRITE, path, NULL, 0), 0);
    path[63] = '\0';
    CHECK_EQ(qdb_encode(got, sizeof(got), QDB_CMD_WRITE, path, NULL, 0), 72);
    /* an unterminated path does not decode */
    memset(got + 1, 'a', 64);
    CHECK_EQ(qdb_decode_hdr(got, &h), -QW_EPROTO);
    CHECK_EQ(QDB_HDR_LEN, 72);
    CHECK_EQ(QDB_OFF_DATA_LEN, 68);
}

TEST(path_and_data_rules)
{
    char p[80];

    CHECK(qdb_path_ok("/qubes-firewall/fd09:24ef:4179::a89:a/0000", false));
    CHECK(qdb_path_ok("/a_b.c@d-e/F9", false));
    CHECK(!qdb_path_ok("", false));
    CHECK(qdb_path_ok("", true));
    CHECK(!qdb_path_ok("-x", false));
    CHECK(!qdb_path_ok("/a b", false));
    CHECK(!qdb_path_ok("/a\n", false));
    CHECK(!qdb_path_ok("/a+b", false));
    CHECK(!qdb_path_ok("/\xc3\xa9", false));
    memset(p, 'a', sizeof(p));
    p[0] = '/';
    p[63] = '\0';
    CHECK(qdb_path_ok(p, false));
    p[63] = 'a';
    p[64] = '\0';
    CHECK(!qdb_path_ok(p, false));
    CHECK(qdb_data_ok("abc", 3));
    CHECK(qdb_data_ok("", 0));
    CHECK(!qdb_data_ok("a\0c", 3));
    {
        static char big[QDB_MAX_DATA];
        memset(big, 'x', sizeof(big));
        CHECK(qdb_data_ok(big, QDB_MAX_DATA - 1));
        CHECK(!qdb_data_ok(big, QDB_MAX_DATA));
    }
}

TEST(connect_sends_one_multiread)
{
    struct evlog l;
    struct qdb *q = mk(16, 4096, &l);
    uint8_t out[200], want[72] = {QDB_CMD_MULTIREAD};
    struct dom0 d = {0};

    CHECK_EQ(qdb_tx(q, out, sizeof(out)), 0);
    CHECK_EQ(qdb_rx(q, want, 72), -QW_EPROTO); /* not connected */
    CHECK_EQ(qdb_write(q, "/a", "b", 1), -QW_EPROTO);
    qdb_connected(q);
    CHECK(!qdb_synced(q));
    CHECK_EQ(qdb_tx_pending(q), 72);
    CHECK_EQ(qdb_tx(q, out, 10), 10);
    CHECK_EQ(qdb_tx(q, out + 10, sizeof(out) - 10), 62);
    CHECK_MEM(out, want, 72);
    CHECK_EQ(qdb_tx(q, out, sizeof(out)), 0);
    /* a reconnect drops unsent bytes and queues exactly one MULTIREAD */
    CHECK_EQ(qdb_write(q, "/x", "1", 1), 0);
    qdb_connected(q);
    CHECK(qdb_get(q, "/x", NULL) == NULL);
    drain(q, &d, 7);
    CHECK_EQ(d.bad, 0);
    CHECK_EQ(d.multireads, 1);
    CHECK_EQ(d.msgs, 1);
    free(q);
}

/*
 * A recorded session: dump (reverse sorted, as dom0 sends it), then live
 * pushes: a rule update for one client (rm dir/, policy, rules, commit),
 * a plain write, an rm of an unknown key, a prefix rm that must not touch
 * the key without the slash nor a sibling, and a reply to our write.
 */
static size_t session(uint8_t *s)
{
    size_t n = 0;

    n = put(s, n, QDB_RESP_MULTIREAD, "/qubes-primary-dns", "10.139.1.1");
    n = put(s, n, QDB_RESP_MULTIREAD, "/qubes-ip", "10.137.0.6");
    n = put(s, n, QDB_RESP_MULTIREAD, "/qubes-gateway", "10.137.0.2");
    n = put(s, n, QDB_RESP_MULTIREAD, "/qubes-firewall/10.137.0.11/policy",
            "drop");
    n = put(s, n, QDB_RESP_MULTIREAD, "/qubes-firewall/10.137.0.11", "");
    n = put(s, n, QDB_RESP_MULTIREAD, "/qubes-firewall/10.137.0.10/policy",
            "drop");
    n = put(s, n, QDB_RESP_MULTIREAD, "/qubes-firewall/10.137.0.10/0000",
            "action=accept");
    n = put(s, n, QDB_RESP_MULTIREAD, "/qubes-firewall/10.137.0.10", "");
    n = put(s, n, QDB_RESP_MULTIREAD, "/name", "sys-firewall");
    n = put(s, n, QDB_RESP_MULTIREAD, "/mapped-ip/10.137.0.10/visible-ip",
            "10.137.0.10");
    n = put(s, n, QDB_RESP_MULTIREAD, "/connected-ips",
            "10.137.0.10 10.137.0.11");
    n = put(s, n, QDB_RESP_MULTIREAD, "", NULL);
    n = put(s, n, QDB_CMD_RM, "/qubes-firewall/10.137.0.10/", NULL);
    n = put(s, n, QDB_CMD_WRITE, "/qubes-firewall/10.137.0.10/policy", "drop");
    n = put(s, n, QDB_CMD_WRITE, "/qubes-firewall/10.137.0.10/0000",
            "action=accept proto=tcp dstports=443-443");
    n = put(s, n, QDB_CMD_WRITE, "/qubes-firewall/10.137.0.10/0001",
            "action=drop");
    n = put(s, n, QDB_CMD_WRITE, "/qubes-firewall/10.137.0.10", "");
    n = put(s, n, QDB_CMD_WRITE, "/qubes-block-devices", "");
    n = put(s, n, QDB_CMD_RM, "/no/such/key", NULL);
    n = put(s, n, QDB_CMD_RM, "/mapped-ip/", NULL);
    n = put(s, n, QDB_RESP_OK, "/qubes-iptables-error", NULL);
    return n;
}

static const char session_events[] =
    "W /qubes-primary-dns=10.139.1.1\n"
    "W /qubes-ip=10.137.0.6\n"
    "W /qubes-gateway=10.137.0.2\n"
    "W /qubes-firewall/10.137.0.11/policy=drop\n"
    "W /qubes-firewall/10.137.0.11=\n"
    "W /qubes-firewall/10.137.0.10/policy=drop\n"
    "W /qubes-firewall/10.137.0.10/0000=action=accept\n"
    "W /qubes-firewall/10.137.0.10=\n"
    "W /name=sys-firewall\n"
    "W /mapped-ip/10.137.0.10/visible-ip=10.137.0.10\n"
    "W /connected-ips=10.137.0.10 10.137.0.11\n"
    /* held back until the dump ends, in store order */
    "C /qubes-firewall/10.137.0.11 1\n"
    "C /qubes-firewall/10.137.0.10 1\n"
    "S\n"
    "R /qubes-firewall/10.137.0.10/\n"
    "W /qubes-firewall/10.137.0.10/policy=drop\n"
    "W /qubes-firewall/10.137.0.10/0000=action=accept proto=tcp "
    "dstports=443-443\n"
    "W /qubes-firewall/10.137.0.10/0001=action=drop\n"
    "W /qubes-firewall/10.137.0.10=\n"
    "C /qubes-firewall/10.137.0.10 1\n"
    "W /qubes-block-devices=\n"
    "R /no/such/key\n"
    "R /mapped-ip/\n";

/* RESP_OK for every push, in order, then nothing else. */
static size_t session_replies(uint8_t *s)
{
    size_t n = 0;

    n = put(s, n, QDB_CMD_MULTIREAD, "", NULL);
    n = put(s, n, QDB_CMD_WRITE, "/qubes-iptables-error", "");
    n = put(s, n, QDB_RESP_OK, "/qubes-firewall/10.137.0.10/", NULL);
    n = put(s, n, QDB_RESP_OK, "/qubes-firewall/10.137.0.10/policy", NULL);
    n = put(s, n, QDB_RESP_OK, "/qubes-firewall/10.137.0.10/0000", NULL);
    n = put(s, n, QDB_RESP_OK, "/qubes-firewall/10.137.0.10/0001", NULL);
    n = put(s, n, QDB_RESP_OK, "/qubes-firewall/10.137.0.10", NULL);
    n = put(s, n, QDB_RESP_OK, "/qubes-block-devices", NULL);
    n = put(s, n, QDB_RESP_OK, "/no/such/key", NULL);
    n = put(s, n, QDB_RESP_OK, "/mapped-ip/", NULL);
    return n;
}

/* Play the session with the stream cut at `cut1` and `cut2` (or byte by
 * byte if step == 1). Returns true if events, replies and store match. */
static bool play(const uint8_t *s, size_t n, size_t cut1, size_t cut2,
                 size_t step)
{
    static uint8_t want[8192];
    static struct dom0 d;
    struct evlog l;
    struct qdb *q = mk(64, 8192, &l);
    size_t wn = session_replies(want), at = 0, len;
    bool ok = true;
    struct qdb_stats st;

    memset(&d, 0, sizeof(d));
    qdb_connected(q);
    /* our own write, answered by the RESP_OK at the end of the stream */
    ok &= qdb_write(q, "/qubes-iptables-error", "", 0) == 0;
    while (at < n) {
        if (step)
            len = step;
        else
            len = at < cut1 ? cut1 - at : at < cut2 ? cut2 - at : n - at;
        if (len > n - at)
            len = n - at;
        ok &= qdb_rx(q, s + at, len) == 0;
        at += len;
        if (at == cut1 || step) /* drain at odd moments too */
            drain(q, &d, 5);
    }
    drain(q, &d, 1000);
    ok &= d.bad == 0 && d.rawlen == wn && memcmp(d.raw, want, wn) == 0;
    ok &=
        l.n == strlen(session_events) && memcmp(l.s, session_events, l.n) == 0;
    ok &= qdb_synced(q);
    ok &= qdb_get(q, "/qubes-firewall/10.137.0.10/0001", NULL) != NULL;
    ok &= qdb_get(q, "/mapped-ip/10.137.0.10/visible-ip", NULL) == NULL;
    ok &= qdb_list(q, "/qubes-firewall/10.137.0.10/", NULL, NULL) == 3;
    qdb_get_stats(q, &st);
    ok &= st.entries == 13 && st.refused == 0 && st.proto_errors == 0;
    free(q);
    return ok;
}

TEST(session_whole)
{
    static uint8_t s[16384];
    size_t n = session(s);
    struct evlog l;
    struct qdb *q = mk(64, 8192, &l);
    size_t vlen = 0;
    const char *v;

    CHECK(play(s, n, n, n, 0));
    /* the same, looking at the store */
    qdb_connected(q);
    CHECK_EQ(qdb_write(q, "/qubes-iptables-error", "", 0), 0);
    CHECK_EQ(qdb_rx(q, s, n), 0);
    v = qdb_get(q, "/qubes-ip", &vlen);
    CHECK(v != NULL && strcmp(v, "10.137.0.6") == 0);
    CHECK_EQ(vlen, 10);
    v = qdb_get(q, "/qubes-firewall/10.137.0.10/0000", &vlen);
    CHECK(v != NULL &&
          strcmp(v, "action=accept proto=tcp dstports=443-443") == 0);
    CHECK(qdb_get(q, "/qubes-firewall/10.137.0.10/", NULL) == NULL);
    v = qdb_get(q, "/qubes-firewall/10.137.0.10", &vlen);
    CHECK(v != NULL && vlen == 0);
    CHECK_EQ(qdb_list(q, "/qubes-firewall/", NULL, NULL), 6);
    CHECK_EQ(qdb_list(q, "", NULL, NULL), 13);
    free(q);
}

TEST(session_split_at_every_byte)
{
    static uint8_t s[16384];
    size_t n = session(s);
    unsigned bad = 0;

    for (size_t cut = 1; cut < n; cut++)
        if (!play(s, n, cut, n, 0))
            bad++;
    CHECK_EQ(bad, 0);
    /* three pieces, a spread of second cuts */
    for (size_t cut = 1; cut < n; cut += 7)
        if (!play(s, n, cut, cut + (cut * 31) % (n - cut), 0))
            bad++;
    CHECK_EQ(bad, 0);
    CHECK(play(s, n, 0, 0, 1));
    CHECK(play(s, n, 0, 0, 3));
    CHECK(play(s, n, 0, 0, 71));
    CHECK(play(s, n, 0, 0, 73));
}

TEST(commit_callback_may_write)
{
    static uint8_t s[16384];
    size_t n = session(s);
    struct evlog l;
    struct qdb *q = mk(64, 8192, &l);
    struct dom0 d = {0};

    l.write_back = true;
    qdb_connected(q);
    CHECK_EQ(qdb_rx(q, s, n), 0);
    drain(q, &d, 100);
    CHECK_EQ(d.bad, 0);
    CHECK(qdb_get(q, "/qubes-firewall-handled/x", NULL) != NULL);
    free(q);
}

TEST(prefix_rm_is_exact)
{
    uint8_t s[4096];
    size_t n = 0;
    struct evlog l;
    struct qdb *q = mk(64, 8192, &l);

    n = put(s, n, QDB_RESP_MULTIREAD, "/a/b", "dir");
    n = put(s, n, QDB_RESP_MULTIREAD, "/a/b/c", "1");
    n = put(s, n, QDB_RESP_MULTIREAD, "/a/b/d/e", "2");
    n = put(s, n, QDB_RESP_MULTIREAD, "/a/bc", "3");
    n = put(s, n, QDB_RESP_MULTIREAD, "/a/bc/d", "4");
    n = put(s, n, QDB_RESP_MULTIREAD, "", NULL);
    n = put(s, n, QDB_CMD_RM, "/a/b/", NULL);
    qdb_connected(q);
    CHECK_EQ(qdb_rx(q, s, n), 0);
    CHECK(qdb_get(q, "/a/b", NULL) != NULL);
    CHECK(qdb_get(q, "/a/b/c", NULL) == NULL);
    CHECK(qdb_get(q, "/a/b/d/e", NULL) == NULL);
    CHECK(qdb_get(q, "/a/bc", NULL) != NULL);
    CHECK(qdb_get(q, "/a/bc/d", NULL) != NULL);
    /* rm of the key itself (no slash) removes only it */
    n = put(s, 0, QDB_CMD_RM, "/a/bc", NULL);
    CHECK_EQ(qdb_rx(q, s, n), 0);
    CHECK(qdb_get(q, "/a/bc", NULL) == NULL);
    CHECK(qdb_get(q, "/a/bc/d", NULL) != NULL);
    n = put(s, 0, QDB_CMD_RM, "/", NULL);
    CHECK_EQ(qdb_rx(q, s, n), 0);
    CHECK_EQ(qdb_list(q, "", NULL, NULL), 0);
    free(q);
}

/* One invalid message after a valid connect + dump. */
static int bad_one(const uint8_t *m, size_t n, bool in_dump)
{
    uint8_t s[256];
    size_t k = 0;
    struct evlog l;
    struct qdb *q = mk(16, 4096, &l);
    struct qdb_stats st;
    int r, again;

    qdb_connected(q);
    if (!in_dump) {
        k = put(s, 0, QDB_RESP_MULTIREAD, "", NULL);
        CHECK_EQ(qdb_rx(q, s, k), 0);
    }
    r = qdb_rx(q, m, n);
    again = qdb_rx(q, s, k ? k : 1);
    qdb_get_stats(q, &st);
    CHECK(r != 0 ? again == -QW_EPROTO && st.proto_errors == 1 : true);
    CHECK(r != 0 ? l.warns >= 1 : true);
    /* a reconnect recovers */
    qdb_connected(q);
    k = put(s, 0, QDB_RESP_MULTIREAD, "", NULL);
    CHECK_EQ(qdb_rx(q, s, k), 0);
    CHECK(qdb_synced(q));
    free(q);
    return r;
}

TEST(invalid_input)
{
    uint8_t m[4096];
    size_t n;
    static const unsigned bad_types[] = {0, 2, 3, 5, 6, 8, 10, 12, 13, 14, 255};

    for (size_t i = 0; i < sizeof(bad_types) / sizeof(bad_types[0]); i++) {
        n = qdb_encode(m, sizeof(m), bad_types[i], "/a", NULL, 0);
        CHECK_EQ(bad_one(m, n, false), -QW_EPROTO);
    }
    /* path not NUL-terminated within 64 */
    n = qdb_encode(m, sizeof(m), QDB_CMD_WRITE, "/a", "x", 1);
    memset(m + 1, 'a', 64);
    CHECK_EQ(bad_one(m, n, false), -QW_EPROTO);
    /* data_len 3072, and huge */
    n = qdb_encode(m, sizeof(m), QDB_CMD_WRITE, "/a", NULL, 0);
    m[68] = 0x00;
    m[69] = 0x0c; /* 3072 */
    CHECK_EQ(bad_one(m, n, false), -QW_EPROTO);
    m[71] = 0x80;
    CHECK_EQ(bad_one(m, n, false), -QW_EPROTO);
    /* 3071 bytes is fine */
    memset(m + 72, 'v', 3071);
    m[68] = 0xff;
    m[69] = 0x0b;
    m[71] = 0;
    CHECK_EQ(bad_one(m, 72 + 3071, false), 0);
    /* NUL in data */
    n = qdb_encode(m, sizeof(m), QDB_CMD_WRITE, "/a", "x\0y", 3);
    CHECK_EQ(bad_one(m, n, false), -QW_EPROTO);
    /* paths dom0 would never accept back */
    n = qdb_encode(m, sizeof(m), QDB_CMD_WRITE, "/a b", "x", 1);
    CHECK_EQ(bad_one(m, n, false), -QW_EPROTO);
    n = qdb_encode(m, sizeof(m), QDB_CMD_WRITE, "-a", "x", 1);
    CHECK_EQ(bad_one(m, n, false), -QW_EPROTO);
    n = qdb_encode(m, sizeof(m), QDB_CMD_WRITE, "", "x", 1);
    CHECK_EQ(bad_one(m, n, false), -QW_EPROTO);
    n = qdb_encode(m, sizeof(m), QDB_CMD_RM, "", NULL, 0);
    CHECK_EQ(bad_one(m, n, false), -QW_EPROTO);
    n = qdb_encode(m, sizeof(m), QDB_RESP_MULTIREAD, "/a\x7f", "x", 1);
    CHECK_EQ(bad_one(m, n, true), -QW_EPROTO);
    /* data where there must be none */
    n = qdb_encode(m, sizeof(m), QDB_CMD_RM, "/a", "x", 1);
    CHECK_EQ(bad_one(m, n, false), -QW_EPROTO);
    n = qdb_encode(m, sizeof(m), QDB_RESP_OK, "/a", "x", 1);
    CHECK_EQ(bad_one(m, n, false), -QW_EPROTO);
    n = qdb_encode(m, sizeof(m), QDB_RESP_ERROR, "/a", "x", 1);
    CHECK_EQ(bad_one(m, n, false), -QW_EPROTO);
    n = qdb_encode(m, sizeof(m), QDB_RESP_MULTIREAD, "", "x", 1);
    CHECK_EQ(bad_one(m, n, true), -QW_EPROTO);
    /* a dump entry after the dump ended */
    n = qdb_encode(m, sizeof(m), QDB_RESP_MULTIREAD, "/a", "x", 1);
    CHECK_EQ(bad_one(m, n, false), -QW_EPROTO);
    n = qdb_encode(m, sizeof(m), QDB_RESP_MULTIREAD, "", NULL, 0);
    CHECK_EQ(bad_one(m, n, false), -QW_EPROTO);
    /* valid ones for contrast: unexpected replies are ignored */
    n = qdb_encode(m, sizeof(m), QDB_RESP_OK, "/a", NULL, 0);
    CHECK_EQ(bad_one(m, n, false), 0);
    n = qdb_encode(m, sizeof(m), QDB_CMD_WRITE, "/a", "", 0);
    CHECK_EQ(bad_one(m, n, true), 0);
}

TEST(own_writes)
{
    struct evlog l;
    struct qdb *q = mk(16, 4096, &l);
    struct dom0 d = {0};
    uint8_t s[256], want[200];
    size_t n, wn;
    static char big[QDB_MAX_DATA + 1];
    struct qdb_stats st;

    qdb_connected(q);
    drain(q, &d, 1000);
    d.rawlen = 0;
    CHECK_EQ(qdb_write(q, "/qubes-iptables-error", "", 0), 0);
    wn = qdb_encode(want, sizeof(want), QDB_CMD_WRITE, "/qubes-iptables-error",
                    NULL, 0);
    drain(q, &d, 1000);
    CHECK_EQ(d.rawlen, wn);
    CHECK_MEM(d.raw, want, wn);
    CHECK(qdb_get(q, "/qubes-iptables-error", NULL) != NULL);
    /* what dom0 would reject is refused here */
    CHECK_EQ(qdb_write(q, "", "x", 1), -QW_EINVAL);
    CHECK_EQ(qdb_write(q, "-x", "x", 1), -QW_EINVAL);
    CHECK_EQ(qdb_write(q,
                       "/dns/10.137.0.10/"
                       "a-very-long-host-name.in-a-long-domain.example.org",
                       "x", 1),
             -QW_EINVAL);
    CHECK_EQ(qdb_write(q, "/a", "x\0y", 3), -QW_EINVAL);
    memset(big, 'x', QDB_MAX_DATA);
    CHECK_EQ(qdb_write(q, "/a", big, QDB_MAX_DATA), -QW_EINVAL);
    {
        const char *v = qdb_get(q, "/qubes-iptables-error", NULL);
        CHECK_EQ(qdb_write(q, "/b", v, 0), -QW_EINVAL); /* points inside */
    }
    CHECK_EQ(qdb_tx_pending(q), 0);
    /* dom0 answers: OK, then an ERROR for a second write */
    CHECK_EQ(qdb_write(q, "/qubes-x", "1", 1), 0);
    n = put(s, 0, QDB_RESP_MULTIREAD, "", NULL);
    n = put(s, n, QDB_RESP_OK, "/qubes-iptables-error", NULL);
    n = put(s, n, QDB_RESP_ERROR, "/qubes-x", NULL);
    CHECK_EQ(qdb_rx(q, s, n), 0);
    qdb_get_stats(q, &st);
    CHECK_EQ(st.write_errors, 1);
    CHECK(l.warns >= 1);
    /* the transmit buffer is bounded */
    memset(big, 'y', QDB_MAX_DATA - 1);
    big[QDB_MAX_DATA - 1] = '\0';
    free(q);
    q = mk(16, 65536, &l);
    memset(&d, 0, sizeof(d));
    qdb_connected(q);
    int r = 0;
    unsigned k;
    for (k = 0; k < 10 && r == 0; k++)
        r = qdb_write(q, k % 2 ? "/big1" : "/big2", big, QDB_MAX_DATA - 1);
    CHECK_EQ(r, -QW_ENOSPC);
    CHECK_EQ(k, 6); /* 72 + 5 * 3143 <= 16384 */
    drain(q, &d, 999);
    CHECK_EQ(d.bad, 0);
    free(q);
}

TEST(reply_buffer_full)
{
    static uint8_t s[400 * 80];
    size_t n = 0;
    struct evlog l;
    struct qdb *q = mk(16, 4096, &l);
    struct qdb_stats st;
    struct dom0 d = {0};

    qdb_connected(q);
    n = put(s, n, QDB_RESP_MULTIREAD, "", NULL);
    for (unsigned i = 0; i < 300; i++)
        n = put(s, n, QDB_CMD_WRITE, "/k", "v");
    CHECK_EQ(qdb_rx(q, s, n), 0);
    qdb_get_stats(q, &st);
    /* MULTIREAD (72) + 226 replies fill 16344 of 16384 bytes */
    CHECK_EQ(st.tx_dropped, 300 - 226);
    CHECK_EQ(qdb_tx_pending(q), 72 + 226 * 72);
    drain(q, &d, 4096);
    CHECK_EQ(d.bad, 0);
    CHECK_EQ(d.msgs, 227);
    free(q);
}

TEST(store_limits)
{
    static uint8_t s[65536];
    size_t n = 0;
    struct evlog l;
    /* 6 keys, 160 bytes of paths and values */
    struct qdb *q = mk(6, 160, &l);
    struct qdb_stats st;

    qdb_connected(q);
    n = put(s, n, QDB_RESP_MULTIREAD, "/qubes-firewall/10.137.0.10/policy",
            "drop");
    n = put(s, n, QDB_RESP_MULTIREAD, "/qubes-firewall/10.137.0.10/0001",
            "action=accept proto=tcp");
    n = put(s, n, QDB_RESP_MULTIREAD, "/qubes-firewall/10.137.0.10/0000",
            "action=drop dst4=1.2.3.4");
    /* 40 + 57 + 58 = 155 bytes: neither of the next two keys fits */
    n = put(s, n, QDB_RESP_MULTIREAD, "/qubes-firewall/10.137.0.10", "");
    n = put(s, n, QDB_RESP_MULTIREAD, "/qubes-ip", "10.137.0.6");
    n = put(s, n, QDB_RESP_MULTIREAD, "", NULL);
    CHECK_EQ(qdb_rx(q, s, n), 0);
    qdb_get_stats(q, &st);
    CHECK_EQ(st.entries, 3);
    CHECK_EQ(st.bytes, 155);
    CHECK_EQ(st.refused, 2);
    CHECK(l.warns >= 2);
    CHECK(qdb_get(q, "/qubes-ip", NULL) == NULL);
    /* the marker was refused: no commit during the dump (fail closed) */
    CHECK(strstr(l.s, "C ") == NULL);
    CHECK(strstr(l.s, "S\n") != NULL);

    /* live: the commit of the tainted directory says incomplete */
    n = put(s, 0, QDB_CMD_WRITE, "/qubes-firewall/10.137.0.10", "");
    l.n = 0;
    CHECK_EQ(qdb_rx(q, s, n), 0);
    CHECK(strstr(l.s, "C /qubes-firewall/10.137.0.10 0\n") != NULL);
    CHECK(!qdb_dir_complete(q, "/qubes-firewall/10.137.0.10"));
    CHECK(qdb_dir_complete(q, "/qubes-firewall/10.137.0.12"));

    /* dom0 rewrites the directory: rm dir/ clears the mark */
    n = put(s, 0, QDB_CMD_RM, "/qubes-firewall/10.137.0.10/", NULL);
    n = put(s, n, QDB_CMD_WRITE, "/qubes-firewall/10.137.0.10/policy", "drop");
    n = put(s, n, QDB_CMD_WRITE, "/qubes-firewall/10.137.0.10", "");
    l.n = 0;
    CHECK_EQ(qdb_rx(q, s, n), 0);
    CHECK(strstr(l.s, "C /qubes-firewall/10.137.0.10 1\n") != NULL);
    CHECK(qdb_dir_complete(q, "/qubes-firewall/10.137.0.10"));

    /* a replacement that no longer fits removes the old value */
    n = put(s, 0, QDB_CMD_WRITE, "/qubes-firewall/10.137.0.10/policy",
            "drop-drop-drop-drop-drop-drop-drop-drop-drop-drop-drop-drop-"
            "drop-drop-drop-drop-drop-drop-drop-drop-drop-drop-drop-drop-"
            "drop-drop-drop-drop-drop-drop-drop-drop-drop-drop-drop-drop");
    l.n = 0;
    CHECK_EQ(qdb_rx(q, s, n), 0);
    CHECK(qdb_get(q, "/qubes-firewall/10.137.0.10/policy", NULL) == NULL);
    CHECK(strstr(l.s, "R /qubes-firewall/10.137.0.10/policy\n") != NULL);
    n = put(s, 0, QDB_CMD_WRITE, "/qubes-firewall/10.137.0.10", "");
    l.n = 0;
    CHECK_EQ(qdb_rx(q, s, n), 0);
    CHECK(strstr(l.s, "C /qubes-firewall/10.137.0.10 0\n") != NULL);
    /* other directories are unaffected */
    n = put(s, 0, QDB_CMD_WRITE, "/qubes-firewall/10.137.0.11", "");
    l.n = 0;
    CHECK_EQ(qdb_rx(q, s, n), 0);
    CHECK(strstr(l.s, "C /qubes-firewall/10.137.0.11 1\n") != NULL);

    /* entry limit: 6 keys */
    qdb_connected(q);
    n = 0;
    for (unsigned i = 0; i < 8; i++) {
        char p[8] = "/k0";
        p[2] = (char)('0' + i);
        n = put(s, n, QDB_RESP_MULTIREAD, p, "v");
    }
    n = put(s, n, QDB_RESP_MULTIREAD, "", NULL);
    CHECK_EQ(qdb_rx(q, s, n), 0);
    qdb_get_stats(q, &st);
    CHECK_EQ(st.entries, 6);
    CHECK(qdb_get(q, "/k5", NULL) != NULL);
    CHECK(qdb_get(q, "/k6", NULL) == NULL);
    /* overwriting an existing key at the limit works */
    n = put(s, 0, QDB_CMD_WRITE, "/k0", "new");
    CHECK_EQ(qdb_rx(q, s, n), 0);
    CHECK(strcmp(qdb_get(q, "/k0", NULL), "new") == 0);
    free(q);
}

/* Many writes of changing sizes in a nearly full store: compaction must
 * keep every value intact, and a refused write leaves the key absent. */
TEST(store_churn)
{
    static uint8_t s[QDB_HDR_LEN + 200];
    static char want[32][128];
    static bool present[32];
    struct evlog l;
    struct qdb *q = mk(32, 2048, &l);
    struct qdb_stats st;
    unsigned seed = 1, bad = 0;
    size_t n;

    qdb_connected(q);
    n = put(s, 0, QDB_RESP_MULTIREAD, "", NULL);
    CHECK_EQ(qdb_rx(q, s, n), 0);
    for (unsigned it = 0; it < 20000; it++) {
        char p[16], v[128];
        unsigned k, len;
        const char *g;

        seed = seed * 1103515245 + 12345;
        k = (seed >> 16) % 32;
        len = (seed >> 8) % 100;
        snprintf(p, sizeof(p), "/key/%u", k);
        for (unsigned i = 0; i < len; i++)
            v[i] = (char)('a' + (it + i) % 26);
        v[len] = '\0';
        if ((seed & 0x70) == 0)
            n = put(s, 0, QDB_CMD_RM, p, NULL);
        else
            n = put(s, 0, QDB_CMD_WRITE, p, v);
        if (qdb_rx(q, s, n) != 0)
            bad++;
        while (qdb_tx(q, s, sizeof(s)) > 0)
            ;
        g = qdb_get(q, p, NULL);
        present[k] = g != NULL;
        if (g != NULL) {
            if ((seed & 0x70) == 0 || strcmp(g, v) != 0)
                bad++;
            strcpy(want[k], v);
        }
    }
    for (unsigned k = 0; k < 32; k++) {
        char p[16];
        const char *g;

        snprintf(p, sizeof(p), "/key/%u", k);
        g = qdb_get(q, p, NULL);
        if ((g != NULL) != present[k] || (g && strcmp(g, want[k]) != 0))
            bad++;
    }
    qdb_get_stats(q, &st);
    CHECK_EQ(bad, 0);
    CHECK(st.bytes <= 2048);
    CHECK(st.refused > 0); /* 32 keys of up to 100 bytes overflow 2 KiB */
    CHECK_EQ(st.proto_errors, 0);
    free(q);
}

TEST(memory_figures)
{
    size_t a = qdb_mem_size(4096, 256 * 1024);
    size_t b = qdb_mem_size(8192, 256 * 1024);
    size_t c = qdb_mem_size(4096, 512 * 1024);

    printf("  qdb: 4096 keys + 256 KiB = %zu bytes; %zu per key slot; "
           "fixed %zu\n",
           a, (b - a) / 4096, a - 4096 * ((b - a) / 4096) - 256 * 1024);
    CHECK_EQ(c - a, 256 * 1024);
    CHECK((b - a) / 4096 <= 40);
}

int main(void)
{
    RUN(encode_layout);
    RUN(path_and_data_rules);
    RUN(connect_sends_one_multiread);
    RUN(session_whole);
    RUN(session_split_at_every_byte);
    RUN(commit_callback_may_write);
    RUN(prefix_rm_is_exact);
    RUN(invalid_input);
    RUN(own_writes);
    RUN(reply_buffer_full);
    RUN(store_limits);
    RUN(store_churn);
    RUN(memory_figures);
    return test_summary();
}
