/*
 * qdb.c: QubesDB protocol, VM side, and the bounded key store (qdb.h).
 *
 * XXX: placeholder so that callers can build against qdb.h; the real
 * implementation follows in the next commits.
 */
#include "qdb.h"

struct qdb {
    struct qdb_events ev;
};

size_t qdb_mem_size(unsigned max_entries, size_t max_bytes)
{
    (void)max_entries;
    (void)max_bytes;
    return sizeof(struct qdb);
}

void qdb_init(struct qdb *q, unsigned max_entries, size_t max_bytes,
              const struct qdb_events *ev)
{
    (void)max_entries;
    (void)max_bytes;
    q->ev = *ev;
}

void qdb_connected(struct qdb *q)
{
    (void)q;
}

bool qdb_synced(const struct qdb *q)
{
    (void)q;
    return false;
}

int qdb_rx(struct qdb *q, const uint8_t *b, size_t n)
{
    (void)q;
    (void)b;
    (void)n;
    return -QW_EPROTO;
}

size_t qdb_tx(struct qdb *q, uint8_t *buf, size_t cap)
{
    (void)q;
    (void)buf;
    (void)cap;
    return 0;
}

size_t qdb_tx_pending(const struct qdb *q)
{
    (void)q;
    return 0;
}

const char *qdb_get(const struct qdb *q, const char *path, size_t *len)
{
    (void)q;
    (void)path;
    (void)len;
    return NULL;
}

unsigned qdb_list(const struct qdb *q, const char *prefix,
                  void (*cb)(void *ctx, const char *path, const char *value,
                             size_t n),
                  void *ctx)
{
    (void)q;
    (void)prefix;
    (void)cb;
    (void)ctx;
    return 0;
}

int qdb_write(struct qdb *q, const char *path, const char *value, size_t n)
{
    (void)q;
    (void)path;
    (void)value;
    (void)n;
    return -QW_EPROTO;
}

void qdb_get_stats(const struct qdb *q, struct qdb_stats *st)
{
    (void)q;
    __builtin_memset(st, 0, sizeof(*st));
}

bool qdb_path_ok(const char *path, bool empty_ok)
{
    (void)path;
    (void)empty_ok;
    return false;
}

bool qdb_data_ok(const void *data, size_t n)
{
    (void)data;
    (void)n;
    return false;
}

size_t qdb_encode(uint8_t *out, size_t cap, unsigned type, const char *path,
                  const void *data, size_t n)
{
    (void)out;
    (void)cap;
    (void)type;
    (void)path;
    (void)data;
    (void)n;
    return 0;
}

int qdb_decode_hdr(const uint8_t *b, struct qdb_hdr *h)
{
    (void)b;
    (void)h;
    return -QW_EPROTO;
}
