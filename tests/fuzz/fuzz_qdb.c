/*
 * fuzz_qdb.c: the QubesDB VM side under an arbitrary dom0 byte stream,
 * cut at arbitrary places, with our own writes mixed in.
 *
 * Input: byte 0 picks the mode and seeds the cutting; then either
 *   raw:        the rest is the byte stream from dom0, or
 *   structured: records [type][path][len][len bytes of value] turned into
 *               well-formed messages (type and path from small tables,
 *               sometimes raw), so that deep states are reached quickly.
 * Between pieces the target drains qdb_tx() in odd sizes into a dom0-side
 * verifier written here from dom0's rules (verify_hdr with vchan=1), and
 * sometimes issues qdb_write() with input-derived path and value.
 *
 * Invariants: everything we send passes the verifier; at most one
 * MULTIREAD per connection; the store never exceeds its limits; a written
 * key reads back; after -QW_EPROTO every call fails until reconnect.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qdb.h"

#define MAX_ENTS 8
#define MAX_BYTES 512

/* ---- dom0's view ---- */

static struct {
    uint8_t buf[2 * QDB_TX_CAP];
    size_t len;
    unsigned multireads;
} d0;

static int d0_path_char(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '_' || c == '/' || c == '.' ||
           c == ':' || c == '@' || c == '-';
}

static void d0_check(void)
{
    size_t p = 0;

    while (d0.len - p >= 72) {
        const uint8_t *m = d0.buf + p;
        uint32_t dl = (uint32_t)m[68] | (uint32_t)m[69] << 8 |
                      (uint32_t)m[70] << 16 | (uint32_t)m[71] << 24;
        size_t n = 0;

        if (dl >= 3072)
            abort();
        if (d0.len - p < 72 + (size_t)dl)
            break;
        while (n < 64 && m[1 + n] != 0)
            n++;
        if (n == 64 || (n > 0 && m[1] == '-'))
            abort();
        for (size_t i = 0; i < n; i++)
            if (!d0_path_char(m[1 + i]))
                abort();
        switch (m[0]) {
        case QDB_CMD_MULTIREAD:
            if (d0.multireads++ > 0 || n != 0 || dl != 0)
                abort();
            break;
        case QDB_CMD_WRITE:
            if (n == 0 || memchr(m + 72, 0, dl) != NULL)
                abort();
            break;
        case QDB_RESP_OK:
        case QDB_RESP_ERROR:
        case QDB_CMD_RM:
            if (n == 0 || dl != 0)
                abort();
            break;
        default:
            abort(); /* ERROR_NOENT, local-only types, garbage */
        }
        p += 72 + dl;
    }
    memmove(d0.buf, d0.buf + p, d0.len - p);
    d0.len -= p;
}

static void d0_reset(void)
{
    d0.len = 0;
    d0.multireads = 0;
}

/* ---- the store under test ---- */

static struct qdb *q;
static unsigned in_cb;

static void ev_write(void *ctx, const char *p, const char *v, size_t n)
{
    size_t len = 0;
    const char *g = qdb_get(q, p, &len);

    (void)ctx;
    if (g == NULL || len != n || memcmp(g, v, n) != 0 || g[n] != '\0')
        abort();
    if (!qdb_path_ok(p, false) || memchr(v, 0, n) != NULL)
        abort();
}

static void ev_rm(void *ctx, const char *p)
{
    (void)ctx;
    if (!qdb_path_ok(p, false))
        abort();
}

static void ev_commit(void *ctx, const char *dir, bool complete)
{
    (void)ctx;
    (void)complete;
    if (strncmp(dir, "/qubes-firewall/", 16) != 0 || strchr(dir + 16, '/'))
        abort();
    /* what the firewall does: report it handled the directory */
    if (in_cb++ == 0)
        qdb_write(q, "/qubes-firewall-handled/x", "1", 1);
    in_cb--;
}

static void ev_synced(void *ctx)
{
    (void)ctx;
    if (!qdb_synced(q))
        abort();
}

static void ev_log(void *ctx, enum qw_log_level lvl, const char *line)
{
    (void)ctx;
    (void)lvl;
    if (strncmp(line, "qdb: ", 5) != 0)
        abort();
}

static uint32_t rng;

static uint32_t next(void)
{
    rng = rng * 1103515245u + 12345u;
    return rng >> 8;
}

static void drain(void)
{
    size_t n;

    do {
        size_t want = 1 + next() % 200;
        if (want > sizeof(d0.buf) - d0.len)
            want = sizeof(d0.buf) - d0.len;
        n = qdb_tx(q, d0.buf + d0.len, want);
        d0.len += n;
        d0_check();
    } while (n > 0);
}

static void check_store(void)
{
    struct qdb_stats st;

    qdb_get_stats(q, &st);
    if (st.entries > MAX_ENTS || st.bytes > MAX_BYTES ||
        qdb_list(q, "", NULL, NULL) != st.entries ||
        qdb_tx_pending(q) > QDB_TX_CAP)
        abort();
}

static void own_write(const uint8_t *b, size_t n)
{
    char path[80];
    size_t pl = n > 0 ? b[0] % 70 : 0;
    int r;

    if (pl + 1 > n)
        return;
    memcpy(path, b + 1, pl);
    path[pl] = '\0';
    r = qdb_write(q, path, (const char *)b + 1 + pl, n - 1 - pl);
    if (r == 0 &&
        (!qdb_path_ok(path, false) || !qdb_data_ok(b + 1 + pl, n - 1 - pl)))
        abort();
}

/* Feed the stream to q in pieces, reconnecting after protocol errors. */
static void feed(const uint8_t *s, size_t n)
{
    size_t at = 0;

    while (at < n) {
        size_t len = 1 + next() % 150;
        int r;

        if (len > n - at)
            len = n - at;
        r = qdb_rx(q, s + at, len);
        at += len;
        if (r != 0) {
            if (r != -QW_EPROTO || qdb_rx(q, s, 1) != -QW_EPROTO ||
                qdb_write(q, "/a", "b", 1) != -QW_EPROTO)
                abort();
            qdb_connected(q);
            d0_reset();
        }
        check_store();
        if (next() % 4 == 0)
            drain();
        if (next() % 8 == 0 && at + 8 <= n) {
            size_t w = 8 + next() % 24;
            own_write(s + at, w < n - at ? w : n - at);
        }
    }
    drain();
}

static const char *const paths[] = {
    "",
    "/qubes-firewall/10.137.0.10",
    "/qubes-firewall/10.137.0.10/",
    "/qubes-firewall/10.137.0.10/policy",
    "/qubes-firewall/10.137.0.10/0000",
    "/qubes-firewall/10.137.0.10/0001",
    "/qubes-firewall/10.137.0.11",
    "/qubes-firewall/",
    "/qubes-ip",
    "/qubes-gateway",
    "/a/b",
    "/a/b/",
    "/",
    "-x",
    "/bad path",
};

static const uint8_t types[] = {
    QDB_RESP_MULTIREAD, QDB_RESP_MULTIREAD, QDB_CMD_WRITE, QDB_CMD_WRITE,
    QDB_CMD_WRITE,      QDB_CMD_RM,         QDB_RESP_OK,   QDB_RESP_ERROR,
};

static size_t structured(const uint8_t *in, size_t n, uint8_t *s, size_t cap)
{
    size_t at = 0, o = 0;

    while (at + 3 <= n) {
        unsigned t = in[at], p = in[at + 1], len = in[at + 2];
        char path[80];
        size_t k;

        at += 3;
        if (len > n - at)
            len = (unsigned)(n - at);
        if (p & 0x80) { /* raw path from the input */
            size_t pl = p % 64 < len ? p % 64 : len;
            memcpy(path, in + at, pl);
            path[pl] = '\0';
        } else {
            strcpy(path, paths[p % (sizeof(paths) / sizeof(paths[0]))]);
        }
        if (t & 0x80)
            t = t & 0x7f; /* any type at all */
        else
            t = types[t % sizeof(types)];
        if (t == QDB_RESP_MULTIREAD && (p & 0x40))
            path[0] = '\0', len = 0; /* the terminator */
        if (t == QDB_CMD_RM || t == QDB_RESP_OK || t == QDB_RESP_ERROR)
            len = 0;
        k = qdb_encode(s + o, cap - o, t, path, in + at, len);
        if (k == 0)
            break;
        o += k;
        at += len;
    }
    return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t stream[1 << 20];
    struct qdb_events ev = {NULL,      ev_write,  ev_rm,
                            ev_commit, ev_synced, ev_log};

    if (size < 1)
        return 0;
    if (q == NULL) {
        size_t sz = qdb_mem_size(MAX_ENTS, MAX_BYTES);
        q = aligned_alloc(16, (sz + 15) & ~(size_t)15);
    }
    qdb_init(q, MAX_ENTS, MAX_BYTES, &ev);
    d0_reset();
    rng = data[0];
    if (qdb_rx(q, data, size) != -QW_EPROTO) /* not connected yet */
        abort();
    qdb_connected(q);
    if (data[0] & 1) {
        feed(data + 1, size - 1);
    } else {
        size_t n = structured(data + 1, size - 1, stream, sizeof(stream));
        feed(stream, n);
    }
    check_store();
    return 0;
}
