/*
 * qdb.c: QubesDB protocol, VM side, and the bounded key store (qdb.h).
 *
 * Store layout, carved from the caller's block:
 *
 *   struct qdb | struct qdb_ent ents[max_entries] | uint32_t bucket[nb]
 *              | uint8_t arena[max_bytes + max_entries * REC_OVERHEAD]
 *
 * A key is an entry (hash chain link, lengths) and a record in the arena:
 * an 8-byte header (owning entry, record size) then "path\0value\0". The
 * arena is a bump allocator; when its top reaches the end, live records
 * slide down (compaction). The accounting (max_bytes of path + value + 2
 * per key, max_entries keys) guarantees that compaction always makes room,
 * so a write fails only when the limits say so.
 *
 * The receive side keeps one header and one value buffer: messages are
 * processed as soon as they are complete, whatever way the stream was cut.
 */
#include "qdb.h"

#include "fmt.h"

#define NONE 0xffffffffu
#define REC_HDR 8
#define REC_OVERHEAD (REC_HDR + 4) /* header + worst alignment padding */
#define TAINT_MAX 16
#define COMMIT_PREFIX "/qubes-firewall/"
#define COMMIT_PREFIX_LEN 16

enum qdb_state {
    ST_DOWN,   /* before qdb_connected() */
    ST_DUMP,   /* MULTIREAD sent, dump in progress */
    ST_LIVE,   /* dump done, pushes flow */
    ST_FAILED, /* protocol error: wait for qdb_connected() */
};

struct qdb_ent {
    uint32_t rec;   /* arena offset of the record, NONE if free */
    uint32_t hnext; /* hash chain, or free list */
    uint32_t hash;
    uint16_t plen;
    uint16_t vlen;
};

struct qdb {
    struct qdb_events ev;
    enum qdb_state state;
    unsigned max_entries;
    size_t max_bytes;
    uint32_t nbuckets; /* power of two */
    uint32_t free_ent;
    unsigned entries;
    size_t bytes;
    struct qdb_ent *ents;
    uint32_t *bucket;
    uint8_t *arena;
    size_t arena_size, arena_top;
    /* directories that lost a key for lack of space */
    unsigned ntaint;
    bool taint_all;
    char taint[TAINT_MAX][QDB_MAX_PATH];
    /* receive */
    uint8_t hbuf[QDB_HDR_LEN];
    size_t hgot;
    struct qdb_hdr hdr;
    size_t dgot;
    char data[QDB_MAX_DATA]; /* value + NUL */
    /* transmit */
    unsigned pending_acks;
    size_t tx_off, tx_len;
    uint8_t tx[QDB_TX_CAP];
    struct qdb_stats st;
};

static size_t align16(size_t n)
{
    return (n + 15) & ~(size_t)15;
}

static uint32_t buckets_for(unsigned max_entries)
{
    uint32_t n = 16;

    while (n < max_entries && n < (1u << 30))
        n <<= 1;
    return n;
}

size_t qdb_mem_size(unsigned max_entries, size_t max_bytes)
{
    size_t n = align16(sizeof(struct qdb));

    if (max_entries == 0)
        max_entries = 1;
    n += align16((size_t)max_entries * sizeof(struct qdb_ent));
    n += align16((size_t)buckets_for(max_entries) * sizeof(uint32_t));
    n += align16(max_bytes + (size_t)max_entries * REC_OVERHEAD);
    return n;
}

static void qlog(const struct qdb *q, enum qw_log_level lvl, const char *fmt,
                 ...) __attribute__((format(printf, 3, 4)));

static void qlog(const struct qdb *q, enum qw_log_level lvl, const char *fmt,
                 ...)
{
    char line[200];
    va_list ap;

    if (q->ev.log == NULL)
        return;
    va_start(ap, fmt);
    qw_vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    q->ev.log(q->ev.ctx, lvl, line);
}

static void store_clear(struct qdb *q)
{
    for (unsigned i = 0; i < q->max_entries; i++) {
        q->ents[i].rec = NONE;
        q->ents[i].hnext = i + 1 < q->max_entries ? i + 1 : NONE;
    }
    q->free_ent = 0;
    for (uint32_t i = 0; i < q->nbuckets; i++)
        q->bucket[i] = NONE;
    q->entries = 0;
    q->bytes = 0;
    q->arena_top = 0;
    q->ntaint = 0;
    q->taint_all = false;
}

void qdb_init(struct qdb *q, unsigned max_entries, size_t max_bytes,
              const struct qdb_events *ev)
{
    uint8_t *p = (uint8_t *)q;
    size_t off = align16(sizeof(struct qdb));

    if (max_entries == 0)
        max_entries = 1;
    __builtin_memset(q, 0, sizeof(*q));
    if (ev != NULL)
        q->ev = *ev;
    q->state = ST_DOWN;
    q->max_entries = max_entries;
    q->max_bytes = max_bytes;
    q->nbuckets = buckets_for(max_entries);
    q->ents = (struct qdb_ent *)(p + off);
    off += align16((size_t)max_entries * sizeof(struct qdb_ent));
    q->bucket = (uint32_t *)(p + off);
    off += align16((size_t)q->nbuckets * sizeof(uint32_t));
    q->arena = p + off;
    q->arena_size = max_bytes + (size_t)max_entries * REC_OVERHEAD;
    store_clear(q);
}

/* ---- the store ---- */

static size_t slen(const char *s)
{
    size_t n = 0;

    while (s[n] != '\0')
        n++;
    return n;
}

static uint32_t hash_path(const char *p, size_t n)
{
    uint32_t h = 2166136261u; /* FNV-1a */

    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)p[i]) * 16777619u;
    return h;
}

static char *ent_path(const struct qdb *q, const struct qdb_ent *e)
{
    return (char *)q->arena + e->rec + REC_HDR;
}

static uint32_t rec_get(const uint8_t *r)
{
    return (uint32_t)r[0] | (uint32_t)r[1] << 8 | (uint32_t)r[2] << 16 |
           (uint32_t)r[3] << 24;
}

static void rec_put(uint8_t *r, uint32_t v)
{
    r[0] = (uint8_t)v;
    r[1] = (uint8_t)(v >> 8);
    r[2] = (uint8_t)(v >> 16);
    r[3] = (uint8_t)(v >> 24);
}

static uint32_t find(const struct qdb *q, const char *path, size_t plen,
                     uint32_t h)
{
    for (uint32_t i = q->bucket[h & (q->nbuckets - 1)]; i != NONE;
         i = q->ents[i].hnext) {
        const struct qdb_ent *e = &q->ents[i];
        if (e->hash == h && e->plen == plen &&
            __builtin_memcmp(ent_path(q, e), path, plen) == 0)
            return i;
    }
    return NONE;
}

/* Slide live records down over the holes. */
static void compact(struct qdb *q)
{
    size_t rd = 0, wr = 0;

    while (rd < q->arena_top) {
        uint32_t owner = rec_get(q->arena + rd);
        uint32_t size = rec_get(q->arena + rd + 4);
        if (owner != NONE) {
            if (wr != rd)
                __builtin_memmove(q->arena + wr, q->arena + rd, size);
            q->ents[owner].rec = (uint32_t)wr;
            wr += size;
        }
        rd += size;
    }
    q->arena_top = wr;
}

static void ent_remove(struct qdb *q, uint32_t i)
{
    struct qdb_ent *e = &q->ents[i];
    uint32_t *pp = &q->bucket[e->hash & (q->nbuckets - 1)];

    while (*pp != i)
        pp = &q->ents[*pp].hnext;
    *pp = e->hnext;
    rec_put(q->arena + e->rec, NONE);
    if (e->rec + rec_get(q->arena + e->rec + 4) == q->arena_top)
        q->arena_top = e->rec;
    q->bytes -= (size_t)e->plen + e->vlen + 2;
    q->entries--;
    e->rec = NONE;
    e->hnext = q->free_ent;
    q->free_ent = i;
}

/* Store path = value. 0 or -QW_ENOSPC (limits; an old value is removed). */
static int store_put(struct qdb *q, const char *path, const char *v,
                     size_t vlen)
{
    size_t plen = slen(path);
    uint32_t h = hash_path(path, plen);
    uint32_t i = find(q, path, plen, h);
    size_t need = plen + vlen + 2, size = (REC_HDR + need + 3) & ~(size_t)3;
    struct qdb_ent *e;
    uint8_t *r;

    if (i != NONE)
        ent_remove(q, i);
    if (q->bytes + need > q->max_bytes || q->entries >= q->max_entries)
        return -QW_ENOSPC;
    if (q->arena_top + size > q->arena_size)
        compact(q);
    i = q->free_ent;
    e = &q->ents[i];
    q->free_ent = e->hnext;
    e->rec = (uint32_t)q->arena_top;
    e->hash = h;
    e->plen = (uint16_t)plen;
    e->vlen = (uint16_t)vlen;
    e->hnext = q->bucket[h & (q->nbuckets - 1)];
    q->bucket[h & (q->nbuckets - 1)] = i;
    r = q->arena + q->arena_top;
    rec_put(r, i);
    rec_put(r + 4, (uint32_t)size);
    __builtin_memcpy(r + REC_HDR, path, plen + 1);
    __builtin_memcpy(r + REC_HDR + plen + 1, v, vlen);
    r[REC_HDR + plen + 1 + vlen] = '\0';
    q->arena_top += size;
    q->bytes += need;
    q->entries++;
    return 0;
}

static bool has_prefix(const char *s, const char *p, size_t plen)
{
    return __builtin_memcmp(s, p, plen) == 0;
}

/* Remove path, or every key under it if it ends in '/'. Returns count. */
static unsigned store_rm(struct qdb *q, const char *path)
{
    size_t plen = slen(path);
    unsigned n = 0;

    if (plen > 0 && path[plen - 1] == '/') {
        for (uint32_t i = 0; i < q->max_entries; i++) {
            const struct qdb_ent *e = &q->ents[i];
            if (e->rec != NONE && e->plen >= plen &&
                has_prefix(ent_path(q, e), path, plen)) {
                ent_remove(q, i);
                n++;
            }
        }
        return n;
    }
    uint32_t i = find(q, path, plen, hash_path(path, plen));
    if (i != NONE) {
        ent_remove(q, i);
        n++;
    }
    return n;
}

const char *qdb_get(const struct qdb *q, const char *path, size_t *len)
{
    size_t plen = slen(path);
    uint32_t i;

    if (plen >= QDB_MAX_PATH)
        return NULL;
    i = find(q, path, plen, hash_path(path, plen));
    if (i == NONE)
        return NULL;
    if (len != NULL)
        *len = q->ents[i].vlen;
    return ent_path(q, &q->ents[i]) + plen + 1;
}

unsigned qdb_list(const struct qdb *q, const char *prefix,
                  void (*cb)(void *ctx, const char *path, const char *value,
                             size_t n),
                  void *ctx)
{
    size_t plen = slen(prefix);
    unsigned n = 0;

    for (uint32_t i = 0; i < q->max_entries; i++) {
        const struct qdb_ent *e = &q->ents[i];
        if (e->rec == NONE || e->plen < plen)
            continue;
        const char *p = ent_path(q, e);
        if (!has_prefix(p, prefix, plen))
            continue;
        if (cb != NULL)
            cb(ctx, p, p + e->plen + 1, e->vlen);
        n++;
    }
    return n;
}

/* ---- taint: directories that lost a key ---- */

/* "/qubes-firewall/<x>" with exactly two slashes and a non-empty <x>. */
static bool is_commit_dir(const char *path)
{
    if (!has_prefix(path, COMMIT_PREFIX, COMMIT_PREFIX_LEN) ||
        path[COMMIT_PREFIX_LEN] == '\0')
        return false;
    for (const char *p = path + COMMIT_PREFIX_LEN; *p != '\0'; p++)
        if (*p == '/')
            return false;
    return true;
}

static void taint_add(struct qdb *q, const char *dir, size_t n)
{
    for (unsigned i = 0; i < q->ntaint; i++)
        if (slen(q->taint[i]) == n && has_prefix(q->taint[i], dir, n))
            return;
    if (q->ntaint == TAINT_MAX) {
        q->taint_all = true;
        return;
    }
    __builtin_memcpy(q->taint[q->ntaint], dir, n);
    q->taint[q->ntaint][n] = '\0';
    q->ntaint++;
}

/* Mark the directory holding path ("/a/b/c" -> "/a/b"); a commit marker
 * also marks itself, so that its own commit reports the loss. */
static void taint_dir(struct qdb *q, const char *path)
{
    size_t n = slen(path);

    while (n > 0 && path[n - 1] != '/')
        n--;
    if (n > 0)
        n--;
    taint_add(q, path, n);
    if (is_commit_dir(path))
        taint_add(q, path, slen(path));
}

/* A prefix rm "P/" wipes directory D's keys if D + "/" starts with P. */
static void untaint(struct qdb *q, const char *prefix)
{
    size_t pn = slen(prefix);

    for (unsigned i = 0; i < q->ntaint;) {
        size_t dn = slen(q->taint[i]);
        bool wiped = (dn + 1 >= pn && has_prefix(q->taint[i], prefix, pn - 1) &&
                      (dn + 1 == pn || q->taint[i][pn - 1] == '/'));
        if (wiped) {
            q->ntaint--;
            __builtin_memcpy(q->taint[i], q->taint[q->ntaint], QDB_MAX_PATH);
        } else {
            i++;
        }
    }
}

static bool complete(const struct qdb *q, const char *dir)
{
    if (q->taint_all)
        return false;
    for (unsigned i = 0; i < q->ntaint; i++) {
        const char *a = q->taint[i], *b = dir;
        while (*a != '\0' && *a == *b) {
            a++;
            b++;
        }
        if (*a == *b)
            return false;
    }
    return true;
}

/* ---- transmit ---- */

static bool tx_room(struct qdb *q, size_t n)
{
    if (q->tx_off > 0 && q->tx_len + n > QDB_TX_CAP) {
        __builtin_memmove(q->tx, q->tx + q->tx_off, q->tx_len - q->tx_off);
        q->tx_len -= q->tx_off;
        q->tx_off = 0;
    }
    return q->tx_len + n <= QDB_TX_CAP;
}

static bool tx_msg(struct qdb *q, unsigned type, const char *path,
                   const void *data, size_t n)
{
    if (!tx_room(q, QDB_HDR_LEN + n))
        return false;
    q->tx_len += qdb_encode(q->tx + q->tx_len, QDB_TX_CAP - q->tx_len, type,
                            path, data, n);
    return true;
}

size_t qdb_tx(struct qdb *q, uint8_t *buf, size_t cap)
{
    size_t n = q->tx_len - q->tx_off;

    if (n > cap)
        n = cap;
    __builtin_memcpy(buf, q->tx + q->tx_off, n);
    q->tx_off += n;
    if (q->tx_off == q->tx_len)
        q->tx_off = q->tx_len = 0;
    return n;
}

size_t qdb_tx_pending(const struct qdb *q)
{
    return q->tx_len - q->tx_off;
}

/* Answer a pushed command. dom0 ignores the answer, so a full buffer only
 * costs a counter. */
static void reply_ok(struct qdb *q, const char *path)
{
    if (!tx_msg(q, QDB_RESP_OK, path, NULL, 0)) {
        if (q->st.tx_dropped++ == 0)
            qlog(q, QW_LOG_WARN,
                 "qdb: transmit buffer full, dropping replies (%s)", path);
    }
}

/* ---- connection ---- */

void qdb_connected(struct qdb *q)
{
    store_clear(q);
    q->hgot = 0;
    q->dgot = 0;
    q->pending_acks = 0;
    q->tx_off = q->tx_len = 0;
    tx_msg(q, QDB_CMD_MULTIREAD, "", NULL, 0);
    q->state = ST_DUMP;
}

bool qdb_synced(const struct qdb *q)
{
    return q->state == ST_LIVE;
}

static int fail(struct qdb *q, const char *what)
{
    q->st.proto_errors++;
    q->state = ST_FAILED;
    qlog(q, QW_LOG_ERR, "qdb: protocol error from dom0, reconnecting (%s)",
         what);
    return -QW_EPROTO;
}

/* Refused for lack of space: the key is gone and its directory is marked
 * incomplete until dom0 removes it. */
static void refused(struct qdb *q, const char *path, bool had_old)
{
    q->st.refused++;
    taint_dir(q, path);
    if (q->st.refused <= 8 || (q->st.refused & (q->st.refused - 1)) == 0)
        qlog(q, QW_LOG_WARN,
             "qdb: store full, key refused (%s, %u keys, %zu bytes, %llu "
             "refused)",
             path, q->entries, q->bytes, (unsigned long long)q->st.refused);
    if (had_old && q->ev.rm != NULL)
        q->ev.rm(q->ev.ctx, path);
}

/* Report held commits (every committed directory present), then synced. */
static void dump_done(struct qdb *q)
{
    char dir[QDB_MAX_PATH];

    q->state = ST_LIVE;
    qlog(q, QW_LOG_INFO, "qdb: synced (%u keys, %zu bytes)", q->entries,
         q->bytes);
    for (uint32_t i = 0; i < q->max_entries && q->ev.commit != NULL; i++) {
        const struct qdb_ent *e = &q->ents[i];
        if (e->rec == NONE || e->vlen != 0)
            continue;
        __builtin_memcpy(dir, ent_path(q, e), (size_t)e->plen + 1);
        if (is_commit_dir(dir))
            q->ev.commit(q->ev.ctx, dir, complete(q, dir));
    }
    if (q->ev.synced != NULL)
        q->ev.synced(q->ev.ctx);
}

static void handle_write(struct qdb *q, bool pushed)
{
    const char *path = q->hdr.path;
    size_t n = q->hdr.data_len;
    bool had_old = qdb_get(q, path, NULL) != NULL;

    if (pushed)
        reply_ok(q, path);
    if (store_put(q, path, q->data, n) < 0)
        refused(q, path, had_old);
    else if (q->ev.write != NULL) {
        q->ev.write(q->ev.ctx, path, q->data, n);
    }
    if (n == 0 && is_commit_dir(path) && q->state == ST_LIVE &&
        q->ev.commit != NULL)
        q->ev.commit(q->ev.ctx, path, complete(q, path));
}

static void handle_rm(struct qdb *q)
{
    const char *path = q->hdr.path;
    size_t n = slen(path);

    reply_ok(q, path);
    store_rm(q, path);
    if (path[n - 1] == '/')
        untaint(q, path);
    if (q->ev.rm != NULL)
        q->ev.rm(q->ev.ctx, path);
}

static void handle_reply(struct qdb *q)
{
    if (q->pending_acks == 0) {
        qlog(q, QW_LOG_DEBUG, "qdb: unexpected reply ignored (%s)",
             q->hdr.path);
        return;
    }
    q->pending_acks--;
    if (q->hdr.type == QDB_RESP_ERROR) {
        q->st.write_errors++;
        qlog(q, QW_LOG_WARN, "qdb: dom0 refused our write (%s)", q->hdr.path);
    }
}

/* A complete header: judge it before any data is read. */
static int check_hdr(struct qdb *q)
{
    const struct qdb_hdr *h = &q->hdr;
    bool empty;

    if (qdb_decode_hdr(q->hbuf, &q->hdr) < 0)
        return fail(q, "path not terminated");
    empty = h->path[0] == '\0';
    if (h->data_len >= QDB_MAX_DATA)
        return fail(q, "data too long");
    switch (h->type) {
    case QDB_RESP_MULTIREAD:
        if (q->state != ST_DUMP)
            return fail(q, "multiread entry outside the dump");
        if (empty && h->data_len != 0)
            return fail(q, "multiread terminator with data");
        if (!empty && !qdb_path_ok(h->path, false))
            return fail(q, "bad path");
        return 0;
    case QDB_CMD_WRITE:
        if (!qdb_path_ok(h->path, false))
            return fail(q, "bad path");
        return 0;
    case QDB_CMD_RM:
        if (!qdb_path_ok(h->path, false))
            return fail(q, "bad path");
        if (h->data_len != 0)
            return fail(q, "rm with data");
        return 0;
    case QDB_RESP_OK:
    case QDB_RESP_ERROR:
        if (h->data_len != 0)
            return fail(q, "reply with data");
        return 0;
    default:
        return fail(q, "unexpected message type");
    }
}

static int handle_msg(struct qdb *q)
{
    const struct qdb_hdr *h = &q->hdr;

    q->data[h->data_len] = '\0';
    if (slen(q->data) != h->data_len)
        return fail(q, "NUL in data");
    switch (h->type) {
    case QDB_RESP_MULTIREAD:
        if (h->path[0] == '\0')
            dump_done(q);
        else
            handle_write(q, false);
        break;
    case QDB_CMD_WRITE:
        handle_write(q, true);
        break;
    case QDB_CMD_RM:
        handle_rm(q);
        break;
    default:
        handle_reply(q);
        break;
    }
    return 0;
}

int qdb_rx(struct qdb *q, const uint8_t *b, size_t n)
{
    if (q->state == ST_DOWN || q->state == ST_FAILED)
        return -QW_EPROTO;
    while (n > 0) {
        if (q->hgot < QDB_HDR_LEN) {
            size_t c = QDB_HDR_LEN - q->hgot;
            if (c > n)
                c = n;
            __builtin_memcpy(q->hbuf + q->hgot, b, c);
            q->hgot += c;
            b += c;
            n -= c;
            if (q->hgot < QDB_HDR_LEN)
                break;
            if (check_hdr(q) < 0)
                return -QW_EPROTO;
            q->dgot = 0;
        }
        if (q->dgot < q->hdr.data_len) {
            size_t c = q->hdr.data_len - q->dgot;
            if (c > n)
                c = n;
            __builtin_memcpy(q->data + q->dgot, b, c);
            q->dgot += c;
            b += c;
            n -= c;
            if (q->dgot < q->hdr.data_len)
                break;
        }
        q->hgot = 0;
        if (handle_msg(q) < 0)
            return -QW_EPROTO;
    }
    return 0;
}

int qdb_write(struct qdb *q, const char *path, const char *value, size_t n)
{
    uintptr_t v = (uintptr_t)value, a = (uintptr_t)q->arena;

    if (q->state != ST_DUMP && q->state != ST_LIVE)
        return -QW_EPROTO;
    if (!qdb_path_ok(path, false) || !qdb_data_ok(value, n))
        return -QW_EINVAL;
    if (v >= a && v < a + q->arena_size)
        return -QW_EINVAL; /* would move under us; copy it first */
    if (!tx_room(q, QDB_HDR_LEN + n))
        return -QW_ENOSPC;
    if (store_put(q, path, value, n) < 0) {
        q->st.refused++;
        qlog(q, QW_LOG_WARN, "qdb: store full, own write refused (%s)", path);
        return -QW_ENOSPC;
    }
    tx_msg(q, QDB_CMD_WRITE, path, value, n);
    q->pending_acks++;
    return 0;
}

bool qdb_dir_complete(const struct qdb *q, const char *dir)
{
    return complete(q, dir);
}

void qdb_get_stats(const struct qdb *q, struct qdb_stats *st)
{
    *st = q->st;
    st->entries = q->entries;
    st->bytes = q->bytes;
}

/* ---- encoding helpers ---- */

static bool path_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '_' || c == '/' || c == '.' ||
           c == ':' || c == '@' || c == '-';
}

bool qdb_path_ok(const char *path, bool empty_ok)
{
    size_t n = 0;

    if (path[0] == '\0')
        return empty_ok;
    if (path[0] == '-')
        return false;
    for (; path[n] != '\0'; n++)
        if (n >= QDB_MAX_PATH - 1 || !path_char(path[n]))
            return false;
    return true;
}

bool qdb_data_ok(const void *data, size_t n)
{
    const uint8_t *d = data;

    if (n >= QDB_MAX_DATA)
        return false;
    for (size_t i = 0; i < n; i++)
        if (d[i] == 0)
            return false;
    return true;
}

size_t qdb_encode(uint8_t *out, size_t cap, unsigned type, const char *path,
                  const void *data, size_t n)
{
    size_t plen = slen(path);

    if (plen >= QDB_MAX_PATH || n > UINT32_MAX || cap < QDB_HDR_LEN ||
        cap - QDB_HDR_LEN < n)
        return 0;
    __builtin_memset(out, 0, QDB_HDR_LEN);
    out[QDB_OFF_TYPE] = (uint8_t)type;
    __builtin_memcpy(out + QDB_OFF_PATH, path, plen);
    rec_put(out + QDB_OFF_DATA_LEN, (uint32_t)n);
    if (n > 0)
        __builtin_memcpy(out + QDB_HDR_LEN, data, n);
    return QDB_HDR_LEN + n;
}

int qdb_decode_hdr(const uint8_t *b, struct qdb_hdr *h)
{
    size_t n = 0;

    while (n < QDB_MAX_PATH && b[QDB_OFF_PATH + n] != 0)
        n++;
    if (n == QDB_MAX_PATH)
        return -QW_EPROTO;
    h->type = b[QDB_OFF_TYPE];
    __builtin_memcpy(h->path, b + QDB_OFF_PATH, n + 1);
    h->data_len = rec_get(b + QDB_OFF_DATA_LEN);
    return 0;
}
