/*
 * qdb.h: QubesDB, the VM side of the protocol, and a bounded key store.
 *
 * dom0's per-VM qubesdb-daemon talks to us over a byte stream (a vchan on
 * Xen, a socket in the hosted build). Every message is a 72-byte header
 * (type u8, path[64] NUL-terminated, 3 bytes of padding, data_len u32
 * little-endian) followed by data_len bytes of value (no NUL). On connect
 * we send one MULTIREAD with an empty path; dom0 answers with one
 * RESP_MULTIREAD per key and an empty-path terminator, then pushes
 * CMD_WRITE / CMD_RM for every change, each of which we answer RESP_OK.
 * See docs/qubesdb.md.
 *
 * dom0 kills its per-VM daemon on any message it dislikes, so nothing we
 * emit can be invalid: paths [A-Za-z0-9_/.:@-], no leading '-', at most
 * 63 bytes; data < 3072 bytes without NUL; never ERROR_NOENT; one
 * MULTIREAD per connection. Everything dom0 sends is validated as well;
 * anything unexpected makes qdb_rx() return -QW_EPROTO and the platform
 * reconnects.
 *
 * The store holds at most max_entries keys and max_bytes bytes of paths
 * and values (fixed at init). A write that does not fit is refused,
 * counted and logged; the key is then absent, and the directory it belongs
 * to is marked incomplete so that its commit reports complete = false and
 * the firewall fails closed for that client (see docs/qubesdb.md).
 *
 * Memory: qdb_mem_size() bytes from the caller; no call allocates.
 */
#ifndef QW_QDB_H
#define QW_QDB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qwall.h"

/* Wire format (shared with the dom0-side test tool). */
#define QDB_HDR_LEN 72
#define QDB_MAX_PATH 64   /* path field size, NUL included: <= 63 chars */
#define QDB_MAX_DATA 3072 /* data_len must be < QDB_MAX_DATA */
#define QDB_OFF_TYPE 0
#define QDB_OFF_PATH 1
#define QDB_OFF_DATA_LEN 68 /* after 3 bytes of padding at 65..67 */
#define QDB_MAX_MSG (QDB_HDR_LEN + QDB_MAX_DATA - 1)
#define QDB_VCHAN_PORT 111 /* dom0 listens, the VM connects */

enum qdb_type {
    QDB_CMD_READ = 0,      /* local socket only, never on the vchan */
    QDB_CMD_WRITE = 1,     /* both ways */
    QDB_CMD_MULTIREAD = 2, /* VM -> dom0, once per connection, path "" */
    QDB_CMD_LIST = 3,      /* local only */
    QDB_CMD_RM = 4,        /* both ways; "dir/" removes the whole subtree */
    QDB_CMD_WATCH = 5,     /* local only */
    QDB_CMD_UNWATCH = 6,   /* local only */
    QDB_RESP_OK = 7,
    QDB_RESP_ERROR_NOENT = 8, /* local only: fatal on the vchan */
    QDB_RESP_ERROR = 9,
    QDB_RESP_READ = 10,      /* local only */
    QDB_RESP_MULTIREAD = 11, /* one per key, then an empty-path terminator */
    QDB_RESP_LIST = 12,      /* local only */
    QDB_RESP_WATCH = 13,     /* local only */
};

/* Transmit buffer: room for a MULTIREAD, a few of our own writes and many
 * RESP_OKs. Replies that do not fit are dropped and counted (dom0 ignores
 * RESP_OK anyway); our own writes get -QW_ENOSPC. */
#define QDB_TX_CAP 16384

/*
 * What the store tells its owner. Every callback is optional (NULL) and
 * may call qdb_get(), qdb_list() and qdb_write(), but not qdb_rx() or
 * qdb_connected(). Strings are NUL-terminated and valid during the call.
 */
struct qdb_events {
    void *ctx;
    /* A key was stored (pushed CMD_WRITE or a MULTIREAD entry). */
    void (*write)(void *ctx, const char *path, const char *value, size_t n);
    /* dom0 removed `path` as sent; a path ending in '/' removed every key
     * under it (and not the key without the slash). Also called when
     * nothing matched. */
    void (*rm)(void *ctx, const char *path);
    /*
     * Directory commit: an empty write to "/qubes-firewall/<x>" (exactly
     * two '/'), i.e. every key under "/qubes-firewall/<x>/" is now final.
     * complete is false when a key under that directory was refused for
     * lack of space since its last removal: the caller must fail closed.
     * During the initial dump commits are held back and reported, for
     * every such directory present, just before synced().
     */
    void (*commit)(void *ctx, const char *dir, bool complete);
    /* The MULTIREAD dump ended: the store mirrors dom0's. */
    void (*synced)(void *ctx);
    /* One log line, "qdb: what (details)". */
    void (*log)(void *ctx, enum qw_log_level level, const char *line);
};

struct qdb_stats {
    unsigned entries;      /* keys held */
    size_t bytes;          /* bytes of paths and values held (+2 NULs each) */
    uint64_t refused;      /* writes refused: store full */
    uint64_t tx_dropped;   /* RESP_OKs dropped: transmit buffer full */
    uint64_t write_errors; /* RESP_ERROR answers to our own writes */
    uint64_t proto_errors; /* -QW_EPROTO returns */
};

struct qdb; /* opaque; lives in the caller's memory */

/* Bytes qdb_init() needs. A key costs its path and value plus 2 bytes of
 * max_bytes, and a fixed bookkeeping overhead (see docs/qubesdb.md). */
size_t qdb_mem_size(unsigned max_entries, size_t max_bytes);

/*
 * Build an empty, disconnected store in q (qdb_mem_size() bytes, 16-byte
 * aligned). max_entries >= 1; max_bytes < 2^31. ev is copied.
 */
void qdb_init(struct qdb *q, unsigned max_entries, size_t max_bytes,
              const struct qdb_events *ev);

/* The stream (re)opened: clear the store (no events), drop anything not
 * yet sent, queue the MULTIREAD. Until the dump ends, qdb_synced() is
 * false. */
void qdb_connected(struct qdb *q);

/* True after the MULTIREAD terminator of the current connection. */
bool qdb_synced(const struct qdb *q);

/*
 * Bytes from dom0, split anywhere. Processes every complete message,
 * keeps the partial tail. Returns 0, or -QW_EPROTO when dom0 sent
 * something invalid (also before qdb_connected()); afterwards every call
 * fails until qdb_connected().
 */
int qdb_rx(struct qdb *q, const uint8_t *b, size_t n);

/* Take up to cap bytes to send to dom0 (a message may be split over
 * calls). Returns the count, 0 when nothing is pending. */
size_t qdb_tx(struct qdb *q, uint8_t *buf, size_t cap);

/* Bytes waiting in the transmit buffer. */
size_t qdb_tx_pending(const struct qdb *q);

/* A key's value, NUL-terminated (len without the NUL), or NULL. Valid
 * until the store changes. */
const char *qdb_get(const struct qdb *q, const char *path, size_t *len);

/* Call cb for every key starting with prefix (any order); returns the
 * count. cb must not change the store. */
unsigned qdb_list(const struct qdb *q, const char *prefix,
                  void (*cb)(void *ctx, const char *path, const char *value,
                             size_t n),
                  void *ctx);

/*
 * Write a key in dom0's database (and our copy). Returns 0, -QW_EINVAL
 * (path or value dom0 would reject), -QW_ENOSPC (store or transmit buffer
 * full) or -QW_EPROTO (not connected). dom0's RESP_OK/RESP_ERROR answer is
 * consumed by qdb_rx(); an error is logged and counted.
 */
int qdb_write(struct qdb *q, const char *path, const char *value, size_t n);

void qdb_get_stats(const struct qdb *q, struct qdb_stats *st);

/*
 * False when a key under dir ("/qubes-firewall/<x>", no trailing slash)
 * was refused for lack of space since dir's last prefix removal (or the
 * dir key itself was): what the store holds under it is not what dom0
 * has. The same value commit() reports; for callers that read a committed
 * tree later (client attach), so that they fail closed too.
 */
bool qdb_dir_complete(const struct qdb *q, const char *dir);

/* ---- encoding helpers, shared with the dom0-side tool (hosted/) ---- */

/* True if dom0 accepts path from a VM: 1..63 bytes of [A-Za-z0-9_/.:@-],
 * not starting with '-'. The empty path is accepted only if empty_ok. */
bool qdb_path_ok(const char *path, bool empty_ok);

/* True if n < QDB_MAX_DATA and data has no NUL. */
bool qdb_data_ok(const void *data, size_t n);

/*
 * Encode one message (header + data) into out. path must be shorter than
 * QDB_MAX_PATH (it is not otherwise checked, so a test tool can build
 * invalid messages); n <= UINT32_MAX. Returns QDB_HDR_LEN + n, or 0 if it
 * does not fit in cap or the path is too long.
 */
size_t qdb_encode(uint8_t *out, size_t cap, unsigned type, const char *path,
                  const void *data, size_t n);

/* A decoded header. */
struct qdb_hdr {
    uint8_t type;
    char path[QDB_MAX_PATH]; /* always NUL-terminated */
    uint32_t data_len;
};

/* Decode QDB_HDR_LEN bytes. Returns 0, or -QW_EPROTO if the path is not
 * NUL-terminated within its 64 bytes. Type and length are not judged. */
int qdb_decode_hdr(const uint8_t *b, struct qdb_hdr *h);

#endif /* QW_QDB_H */
