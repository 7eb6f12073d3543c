/*
 * xs.c: see xs.h.
 */
#include "xs.h"

#include <xen/io/xs_wire.h>

#include "clock.h"
#include "cpu.h"
#include "evtchn.h"
#include "fmt.h"
#include "hv.h"
#include "libc.h"
#include "log.h"
#include "ring.h"

#define XS_TOKEN_MAX 16u
#define XS_WATCH_PATH_MAX 256u
#define XS_QUEUE 16u

struct xs_watch {
    bool used;
    bool lost; /* events were dropped: fire once with the watched path */
    char path[XS_WATCH_PATH_MAX];
    char token[XS_TOKEN_MAX];
    xs_watch_fn fn;
    void *arg;
};

struct xs_event {
    unsigned watch;
    char path[XS_EVENT_PATH_MAX];
};

static volatile struct xenstore_domain_interface *xs_ring;
static uint32_t xs_port;
static struct xs_msg_reader xs_reader;
static uint8_t xs_out[XS_MSG_HDR + XS_MSG_PAYLOAD_MAX];
static uint32_t xs_next_id = 1;
static unsigned xs_token_seq;

static struct xs_watch xs_watches[XS_WATCHES];
static struct xs_event xs_queue[XS_QUEUE];
static unsigned xs_qhead, xs_qlen;

/* The one request in flight. */
static struct {
    bool waiting, done;
    uint32_t req_id;
    uint32_t type;
    int err;
    uint8_t *buf;
    size_t cap, len;
} xs_cur;

static struct xs_stats xs_st;

static void xs_event_port(uint32_t port, void *arg);

int xs_attach(void *ring, uint32_t port)
{
    xs_ring = ring;
    xs_port = port;
    xs_msg_reader_reset(&xs_reader);
    return evtchn_attach(xs_port, xs_event_port, NULL);
}

int xs_init(void)
{
    uint64_t pfn, port;

    if (hv_get_param(HVM_PARAM_STORE_PFN, &pfn) < 0 || pfn == 0 ||
        hv_get_param(HVM_PARAM_STORE_EVTCHN, &port) < 0)
        return -XS_EIO;
    return xs_attach((void *)(uintptr_t)(pfn << 12), (uint32_t)port);
}

/* Find the watch a token names ("qw<slot>.<seq>"). */
static int xs_watch_by_token(const char *token)
{
    for (unsigned i = 0; i < XS_WATCHES; i++) {
        if (xs_watches[i].used && strcmp(xs_watches[i].token, token) == 0)
            return (int)i;
    }
    return -1;
}

static void xs_queue_event(const uint8_t *body, size_t len)
{
    const char *parts[2];
    int n = xs_msg_split(body, len, parts, 2), w;
    struct xs_event *e;
    size_t plen;

    xs_st.events++;
    if (n != 2) {
        xs_st.protocol_errors++;
        return;
    }
    w = xs_watch_by_token(parts[1]);
    if (w < 0) {
        /* A watch we removed may still have events in flight. */
        xs_st.unknown_tokens++;
        return;
    }
    plen = strlen(parts[0]);
    if (xs_qlen == XS_QUEUE || plen >= XS_EVENT_PATH_MAX) {
        xs_watches[w].lost = true;
        xs_st.events_dropped++;
        return;
    }
    e = &xs_queue[(xs_qhead + xs_qlen) % XS_QUEUE];
    e->watch = (unsigned)w;
    memcpy(e->path, parts[0], plen + 1);
    xs_qlen++;
}

static void xs_complete(void)
{
    const struct xs_msg_hdr *h = &xs_reader.hdr;

    if (h->type == XS_MSG_WATCH_EVENT) {
        xs_queue_event(xs_reader.body, h->len);
        return;
    }
    if (!xs_cur.waiting || xs_cur.done || h->req_id != xs_cur.req_id) {
        xs_st.stray_replies++;
        return;
    }
    xs_st.replies++;
    xs_cur.done = true;
    if (h->type == XS_MSG_ERROR) {
        xs_st.errors++;
        xs_cur.err = -xs_msg_errno(xs_reader.body, h->len);
        return;
    }
    if (h->type != xs_cur.type) {
        xs_st.protocol_errors++;
        xs_cur.err = -XS_EPROTO;
        return;
    }
    if (h->len > xs_cur.cap) {
        xs_cur.err = -XS_E2BIG;
        return;
    }
    memcpy(xs_cur.buf, xs_reader.body, h->len);
    xs_cur.len = h->len;
    xs_cur.err = 0;
}

/* Drain the response ring into the reader; returns false if the ring is
 * broken (indices not sane or a malformed header). */
static bool xs_pump(void)
{
    volatile struct xenstore_domain_interface *r = xs_ring;
    bool moved = false;

    for (;;) {
        uint32_t cons = r->rsp_cons, prod = r->rsp_prod;
        uint8_t chunk[256];
        size_t n, off = 0;

        hv_rmb();
        if (!ring_sane(prod, cons, XENSTORE_RING_SIZE)) {
            xs_st.protocol_errors++;
            return false;
        }
        n = ring_used(prod, cons);
        if (n == 0)
            break;
        if (n > sizeof(chunk))
            n = sizeof(chunk);
        ring_copy_out(chunk, r->rsp, XENSTORE_RING_SIZE, cons, n);
        hv_mb();
        r->rsp_cons = cons + (uint32_t)n;
        moved = true;
        while (off < n) {
            size_t used = 0;
            int rc = xs_msg_feed(&xs_reader, chunk + off, n - off, &used);

            off += used;
            if (rc < 0) {
                xs_st.protocol_errors++;
                xs_msg_reader_reset(&xs_reader);
                return false;
            }
            if (rc == 1)
                xs_complete();
        }
    }
    if (moved)
        evtchn_send(xs_port);
    return true;
}

static void xs_event_port(uint32_t port, void *arg)
{
    static bool reported;

    (void)port;
    (void)arg;
    if (!xs_pump() && !reported) {
        reported = true; /* once: the peer could otherwise flood the log */
        log_err("xs: response ring broken (indices or header), "
                "ignoring it");
    }
}

/* Idle until the xenstore port fires, `deadline`, or the next timer
 * (whose VIRQ wakes us; the timer itself runs later, from the main
 * loop). Other ports are left pending for the main loop. */
static void xs_wait(uint64_t deadline)
{
    uint64_t next = clock_next();

    evtchn_collect();
    evtchn_take(xs_port);
    if (xs_ring->rsp_prod != xs_ring->rsp_cons)
        return;
    clock_program(next < deadline ? next : deadline);
    cpu_idle();
}

static int xs_send(const uint8_t *msg, size_t len, uint64_t deadline)
{
    volatile struct xenstore_domain_interface *r = xs_ring;
    size_t off = 0;

    while (off < len) {
        uint32_t cons = r->req_cons, prod = r->req_prod, room;

        hv_rmb();
        if (!ring_sane(prod, cons, XENSTORE_RING_SIZE))
            return -XS_EIO;
        room = ring_space(prod, cons, XENSTORE_RING_SIZE);
        if (room == 0) {
            if (clock_now() >= deadline)
                return -XS_ETIMEDOUT;
            xs_wait(deadline);
            continue;
        }
        if (room > len - off)
            room = (uint32_t)(len - off);
        ring_copy_in(r->req, XENSTORE_RING_SIZE, prod, msg + off, room);
        hv_wmb();
        r->req_prod = prod + room;
        off += room;
        evtchn_send(xs_port);
    }
    return 0;
}

/* Send one request and wait for its reply (payload into rbuf). */
static int xs_request(uint32_t type, uint32_t tx, const char *path,
                      const void *data, size_t dlen, bool data_nul, void *rbuf,
                      size_t rcap, size_t *rlen)
{
    uint64_t deadline;
    int len, rc;

    if (xs_ring == NULL)
        return -XS_EIO;
    if (xs_cur.waiting)
        return -XS_EBUSY; /* a watch callback may not nest requests */
    len = xs_msg_build(xs_out, sizeof(xs_out), type, xs_next_id, tx, path, data,
                       dlen, data_nul);
    if (len < 0)
        return len;
    xs_cur.waiting = true;
    xs_cur.done = false;
    xs_cur.req_id = xs_next_id++;
    xs_cur.type = type;
    xs_cur.buf = rbuf;
    xs_cur.cap = rcap;
    xs_cur.len = 0;
    xs_st.requests++;
    deadline = clock_now() + XS_TIMEOUT_NS;
    rc = xs_send(xs_out, (size_t)len, deadline);
    while (rc == 0 && !xs_cur.done) {
        if (!xs_pump()) {
            rc = -XS_EIO;
            break;
        }
        if (xs_cur.done)
            break;
        if (clock_now() >= deadline) {
            xs_st.timeouts++;
            rc = -XS_ETIMEDOUT;
            break;
        }
        xs_wait(deadline);
    }
    xs_cur.waiting = false;
    if (rc < 0)
        return rc;
    if (rlen != NULL)
        *rlen = xs_cur.len;
    return xs_cur.err;
}

int xs_read(uint32_t tx, const char *path, char *buf, size_t cap)
{
    size_t len = 0;
    int rc;

    if (cap == 0)
        return -XS_E2BIG;
    rc = xs_request(XS_MSG_READ, tx, path, NULL, 0, false, buf, cap - 1, &len);
    if (rc < 0)
        return rc;
    buf[len] = '\0';
    return (int)len;
}

int xs_read_uint(uint32_t tx, const char *path, uint32_t *out)
{
    char buf[16];
    int n = xs_read(tx, path, buf, sizeof(buf));

    if (n < 0)
        return n;
    return xs_msg_uint((const uint8_t *)buf, (size_t)n, out);
}

int xs_write(uint32_t tx, const char *path, const char *value)
{
    char ok[8];

    return xs_request(XS_MSG_WRITE, tx, path, value, strlen(value), false, ok,
                      sizeof(ok), NULL);
}

int xs_rm(uint32_t tx, const char *path)
{
    char ok[8];

    return xs_request(XS_MSG_RM, tx, path, NULL, 0, false, ok, sizeof(ok),
                      NULL);
}

int xs_directory(uint32_t tx, const char *path, char *buf, size_t cap,
                 const char **names, int max)
{
    size_t len = 0;
    int rc, n;

    rc = xs_request(XS_MSG_DIRECTORY, tx, path, NULL, 0, false, buf, cap, &len);
    if (rc < 0)
        return rc;
    n = xs_msg_split((const uint8_t *)buf, len, names, max);
    if (n == -XS_EPROTO && len > 0 && buf[len - 1] == '\0')
        return -XS_E2BIG; /* well formed, more names than max */
    /* An empty directory may come back as one empty name. */
    if (n == 1 && names[0][0] == '\0')
        n = 0;
    return n;
}

int xs_watch(const char *path, xs_watch_fn fn, void *arg)
{
    unsigned slot = XS_WATCHES;
    size_t plen = strlen(path);
    struct xs_watch *w;
    char ok[8];
    int rc;

    if (plen >= XS_WATCH_PATH_MAX)
        return -XS_E2BIG;
    for (unsigned i = 0; i < XS_WATCHES; i++) {
        if (xs_watches[i].used && strcmp(xs_watches[i].path, path) == 0)
            return -XS_EEXIST;
        if (!xs_watches[i].used && slot == XS_WATCHES)
            slot = i;
    }
    if (slot == XS_WATCHES)
        return -XS_ENOSPC;
    w = &xs_watches[slot];
    memcpy(w->path, path, plen + 1);
    /* A fresh token per registration: late events of an earlier watch in
     * the same slot cannot be taken for this one. */
    qw_snprintf(w->token, sizeof(w->token), "qw%u.%u", slot, ++xs_token_seq);
    w->fn = fn;
    w->arg = arg;
    w->lost = false;
    w->used = true;
    rc = xs_request(XS_MSG_WATCH, 0, w->path, w->token, strlen(w->token), true,
                    ok, sizeof(ok), NULL);
    if (rc < 0) {
        w->used = false;
        return rc;
    }
    return (int)slot;
}

int xs_unwatch(int id)
{
    struct xs_watch *w;
    char ok[8];
    int rc;

    if (id < 0 || (unsigned)id >= XS_WATCHES || !xs_watches[id].used)
        return -XS_EINVAL;
    w = &xs_watches[id];
    rc = xs_request(XS_MSG_UNWATCH, 0, w->path, w->token, strlen(w->token),
                    true, ok, sizeof(ok), NULL);
    /* Free the slot whatever xenstored says: ENOENT means it is gone
     * already, and any other error leaves nothing we could retry. */
    w->used = false;
    for (unsigned i = 0; i < xs_qlen; i++) {
        struct xs_event *e = &xs_queue[(xs_qhead + i) % XS_QUEUE];

        if (e->watch == (unsigned)id)
            e->watch = XS_WATCHES; /* dropped at dispatch */
    }
    return rc == -XS_ENOENT ? 0 : rc;
}

int xs_transaction_start(uint32_t *tx)
{
    char buf[16];
    size_t len = 0;
    int rc;

    rc = xs_request(XS_MSG_TRANSACTION_START, 0, "", NULL, 0, false, buf,
                    sizeof(buf), &len);
    if (rc < 0)
        return rc;
    return xs_msg_uint((const uint8_t *)buf, len, tx);
}

int xs_transaction_end(uint32_t tx, bool commit)
{
    char ok[8];

    return xs_request(XS_MSG_TRANSACTION_END, tx, commit ? "T" : "F", NULL, 0,
                      false, ok, sizeof(ok), NULL);
}

bool xs_events_pending(void)
{
    if (xs_qlen != 0)
        return true;
    for (unsigned i = 0; i < XS_WATCHES; i++) {
        if (xs_watches[i].used && xs_watches[i].lost)
            return true;
    }
    return false;
}

unsigned xs_dispatch(void)
{
    unsigned ran = 0;

    while (xs_qlen != 0) {
        struct xs_event e = xs_queue[xs_qhead];

        xs_qhead = (xs_qhead + 1) % XS_QUEUE;
        xs_qlen--;
        if (e.watch >= XS_WATCHES || !xs_watches[e.watch].used)
            continue;
        xs_watches[e.watch].fn(xs_watches[e.watch].arg, e.path);
        ran++;
    }
    for (unsigned i = 0; i < XS_WATCHES; i++) {
        struct xs_watch *w = &xs_watches[i];

        if (w->used && w->lost) {
            w->lost = false;
            w->fn(w->arg, w->path);
            ran++;
        }
    }
    return ran;
}

void xs_get_stats(struct xs_stats *st)
{
    *st = xs_st;
    st->watches = 0;
    for (unsigned i = 0; i < XS_WATCHES; i++)
        st->watches += xs_watches[i].used;
}
