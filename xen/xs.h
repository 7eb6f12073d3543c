/*
 * xs.h: xenstore client over the shared ring.
 *
 * Requests are synchronous: the caller waits (idling, bounded by
 * XS_TIMEOUT_NS) for the reply with its req_id; replies with any other
 * req_id are counted and dropped. Watch events that arrive meanwhile are
 * queued and delivered by xs_dispatch() from the main loop, to the watch
 * whose token they carry. Watches live in a fixed table (XS_WATCHES): a
 * path is watched at most once and xs_unwatch() frees the slot, so the
 * client cannot leak watches against xenstored's per-domain quota.
 *
 * Paths are relative to /local/domain/<self> unless they start with '/'.
 * Errors are negative errno values (xs_msg.h XS_E*), including those
 * xenstored names in XS_ERROR replies.
 */
#ifndef QW_XEN_XS_H
#define QW_XEN_XS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "xs_msg.h"

#define XS_WATCHES 16u
#define XS_TIMEOUT_NS 5000000000ull
#define XS_EVENT_PATH_MAX 256u

/* Watch callback: `path` is the changed path (or the watched path when
 * events were lost); always re-read the state it describes. */
typedef void (*xs_watch_fn)(void *arg, const char *path);

/* Find the ring, attach its port. 0 or -errno. */
int xs_init(void);

/* Use `ring` (a struct xenstore_domain_interface) and `port` directly
 * (xs_init's second half; host tests drive a fake xenstored with it). */
int xs_attach(void *ring, uint32_t port);

/* Read `path` into buf (NUL-terminated). Returns the value length,
 * -XS_E2BIG if it does not fit in cap - 1 bytes, or -errno. */
int xs_read(uint32_t tx, const char *path, char *buf, size_t cap);

/* Read a decimal value. */
int xs_read_uint(uint32_t tx, const char *path, uint32_t *out);

int xs_write(uint32_t tx, const char *path, const char *value);
int xs_rm(uint32_t tx, const char *path);

/* List the children of `path`: names are stored in buf (cap bytes),
 * pointers to them in names (max). Returns the count or -errno
 * (-XS_E2BIG when they do not fit). */
int xs_directory(uint32_t tx, const char *path, char *buf, size_t cap,
                 const char **names, int max);

/* Watch `path` (recursive, fires once at registration). Returns a watch
 * id >= 0, -XS_EEXIST if already watched, -XS_ENOSPC if the table is
 * full, or -errno from xenstored. */
int xs_watch(const char *path, xs_watch_fn fn, void *arg);
int xs_unwatch(int id);

/* Transactions: start gives an id for the tx arguments above; end with
 * commit=false aborts; -XS_EAGAIN from end means "retry the whole
 * transaction". */
int xs_transaction_start(uint32_t *tx);
int xs_transaction_end(uint32_t tx, bool commit);

/* Deliver queued watch events. Returns how many callbacks ran. */
unsigned xs_dispatch(void);

/* True if watch events are queued. */
bool xs_events_pending(void);

struct xs_stats {
    uint64_t requests, replies, errors, timeouts;
    uint64_t stray_replies, events, events_dropped, unknown_tokens;
    uint64_t protocol_errors;
    unsigned watches;
};
void xs_get_stats(struct xs_stats *st);

#endif /* QW_XEN_XS_H */
