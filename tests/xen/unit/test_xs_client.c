/*
 * test_xs_client.c: the xenstore client (xen/xs.c) against a scripted
 * fake xenstored on a host copy of the shared ring. The runtime's
 * neighbours (event channels, clock, idle, log) are stubs: idling advances
 * a fake clock and lets the fake server deliver a chunk of its output.
 */
#include <stdarg.h>
#include <stdint.h>

#include <xen/io/xs_wire.h>

#include "clock.h"
#include "cpu.h"
#include "evtchn.h"
#include "log.h"
#include "test.h"
#include "xs.h"

char hypercall_page[4096]; /* referenced by hv.h inlines, never called */

static struct xenstore_domain_interface ring;
static struct xs_msg_reader srv_rd;
static uint8_t srv_out[16384];
static size_t srv_len, srv_off;
static size_t srv_chunk = 4096; /* bytes delivered per idle */
static uint64_t fake_now;
static unsigned idles;

/* What the fake server does with each request. */
static void (*srv_script)(const struct xs_msg_hdr *h, const uint8_t *body);

static void srv_put(uint32_t type, uint32_t req_id, const void *p, size_t n)
{
    uint8_t h[16];
    uint32_t v[4] = {type, req_id, 0, (uint32_t)n};

    for (int i = 0; i < 4; i++)
        for (int b = 0; b < 4; b++)
            h[i * 4 + b] = (uint8_t)(v[i] >> (8 * b));
    memcpy(srv_out + srv_len, h, 16);
    memcpy(srv_out + srv_len + 16, p, n);
    srv_len += 16 + n;
}

static void srv_ok(const struct xs_msg_hdr *h)
{
    srv_put(h->type, h->req_id, "OK", 3);
}

/* Take requests out of the request ring. */
static void srv_consume(void)
{
    while (ring.req_cons != ring.req_prod) {
        uint8_t c = (uint8_t)ring.req[ring.req_cons & 1023];
        size_t used = 0;

        ring.req_cons++;
        if (xs_msg_feed(&srv_rd, &c, 1, &used) == 1 && srv_script != NULL)
            srv_script(&srv_rd.hdr, srv_rd.body);
    }
}

/* Deliver up to srv_chunk bytes of replies into the response ring. */
static void srv_deliver(void)
{
    size_t n = srv_len - srv_off;

    if (n > srv_chunk)
        n = srv_chunk;
    if (n > 1024 - (ring.rsp_prod - ring.rsp_cons))
        n = 1024 - (ring.rsp_prod - ring.rsp_cons);
    for (size_t i = 0; i < n; i++)
        ring.rsp[(ring.rsp_prod + i) & 1023] = (char)srv_out[srv_off + i];
    ring.rsp_prod += (uint32_t)n;
    srv_off += n;
}

/* ---- stubs of the runtime around xs.c ---- */
int evtchn_attach(uint32_t port, evtchn_handler fn, void *arg)
{
    (void)port;
    (void)fn;
    (void)arg;
    return 0;
}
void evtchn_collect(void) {}
bool evtchn_take(uint32_t port)
{
    (void)port;
    return false;
}
void evtchn_send(uint32_t port)
{
    (void)port;
    srv_consume();
}
uint64_t clock_now(void)
{
    return fake_now;
}
uint64_t clock_next(void)
{
    return UINT64_MAX;
}
void clock_program(uint64_t deadline)
{
    (void)deadline;
}
void cpu_idle(void)
{
    idles++;
    fake_now += 1000000; /* 1 ms per idle */
    srv_consume();
    srv_deliver();
}
void log_msg(enum qw_log_level level, const char *fmt, ...)
{
    (void)level;
    (void)fmt;
}

static void reset(void (*script)(const struct xs_msg_hdr *, const uint8_t *))
{
    static bool attached;

    memset(&ring, 0, sizeof(ring));
    /* free-running indices need not start at 0 */
    ring.req_cons = ring.req_prod = 0xfffffe00u;
    ring.rsp_cons = ring.rsp_prod = 0xffffff00u;
    xs_msg_reader_reset(&srv_rd);
    srv_len = srv_off = 0;
    srv_chunk = 4096;
    srv_script = script;
    if (!attached) {
        xs_attach(&ring, 1);
        attached = true;
    }
}

/* ---- scripts ---- */
static void s_read_value(const struct xs_msg_hdr *h, const uint8_t *body)
{
    if (strcmp((const char *)body, "domid") == 0)
        srv_put(XS_MSG_READ, h->req_id, "42", 2);
    else if (strcmp((const char *)body, "big") == 0)
        srv_put(XS_MSG_READ, h->req_id, "0123456789abcdef", 16);
    else
        srv_put(XS_MSG_ERROR, h->req_id, "ENOENT", 7);
}

TEST(read_value_and_errors)
{
    char buf[32];
    uint32_t v = 0;

    reset(s_read_value);
    CHECK_EQ(xs_read(0, "domid", buf, sizeof(buf)), 2);
    CHECK(strcmp(buf, "42") == 0);
    CHECK_EQ(xs_read_uint(0, "domid", &v), 0);
    CHECK_EQ(v, 42);
    CHECK_EQ(xs_read(0, "nope", buf, sizeof(buf)), -XS_ENOENT);
    CHECK_EQ(xs_read(0, "big", buf, 16), -XS_E2BIG); /* needs 17 with NUL */
    CHECK_EQ(xs_read(0, "big", buf, 17), 16);
}

TEST(reply_split_across_wakeups)
{
    char buf[32];

    reset(s_read_value);
    srv_chunk = 3; /* header and payload arrive 3 bytes at a time */
    idles = 0;
    CHECK_EQ(xs_read(0, "domid", buf, sizeof(buf)), 2);
    CHECK(strcmp(buf, "42") == 0);
    CHECK(idles >= 6);
}

static unsigned cb_calls;
static char cb_path[300];

static void watch_cb(void *arg, const char *path)
{
    (void)arg;
    cb_calls++;
    snprintf(cb_path, sizeof(cb_path), "%s", path);
}

static char last_token[32];

/* Answers WATCH with OK after an event for it (like xenstored's first
 * firing), READ with a stray reply, an event and then the real reply. */
static void s_interleave(const struct xs_msg_hdr *h, const uint8_t *body)
{
    const char *parts[2];
    uint8_t ev[128];
    int n;

    if (h->type == XS_MSG_WATCH) {
        xs_msg_split(body, h->len, parts, 2);
        snprintf(last_token, sizeof(last_token), "%s", parts[1]);
        srv_ok(h);
        n = snprintf((char *)ev, sizeof(ev), "%s%c%s", parts[0], 0, parts[1]);
        srv_put(XS_MSG_WATCH_EVENT, 0, ev, (size_t)n + 1);
    } else if (h->type == XS_MSG_READ) {
        srv_put(XS_MSG_READ, h->req_id + 1000, "stray", 5);
        n = snprintf((char *)ev, sizeof(ev), "a/b/c%c%s", 0, last_token);
        srv_put(XS_MSG_WATCH_EVENT, 0, ev, (size_t)n + 1);
        srv_put(XS_MSG_READ, h->req_id, "v", 1);
    } else {
        srv_ok(h);
    }
}

TEST(events_interleaved_with_replies)
{
    char buf[8];
    struct xs_stats st;
    int id;

    reset(s_interleave);
    cb_calls = 0;
    id = xs_watch("a", watch_cb, NULL);
    CHECK(id >= 0);
    CHECK_EQ(xs_read(0, "a/x", buf, sizeof(buf)), 1);
    CHECK(strcmp(buf, "v") == 0);
    CHECK_EQ(cb_calls, 0); /* events wait for the main loop */
    CHECK(xs_events_pending());
    CHECK_EQ(xs_dispatch(), 2);
    CHECK_EQ(cb_calls, 2);
    CHECK(strcmp(cb_path, "a/b/c") == 0);
    xs_get_stats(&st);
    CHECK(st.stray_replies >= 1);
    CHECK_EQ(xs_unwatch(id), 0);
}

static void s_ok(const struct xs_msg_hdr *h, const uint8_t *body)
{
    (void)body;
    srv_ok(h);
}

TEST(watch_table_bounded_no_duplicates)
{
    char path[16];
    int ids[XS_WATCHES];
    struct xs_stats st;

    reset(s_ok);
    for (unsigned i = 0; i < XS_WATCHES; i++) {
        snprintf(path, sizeof(path), "p%u", i);
        ids[i] = xs_watch(path, watch_cb, NULL);
        CHECK(ids[i] >= 0);
    }
    CHECK_EQ(xs_watch("one-more", watch_cb, NULL), -XS_ENOSPC);
    CHECK_EQ(xs_unwatch(ids[3]), 0);
    CHECK_EQ(xs_watch("p0", watch_cb, NULL), -XS_EEXIST);
    CHECK(xs_watch("again", watch_cb, NULL) >= 0);
    CHECK_EQ(xs_unwatch(99), -XS_EINVAL);
    xs_get_stats(&st);
    CHECK_EQ(st.watches, XS_WATCHES);
    for (int i = 0; i < (int)XS_WATCHES; i++)
        xs_unwatch(i);
    xs_get_stats(&st);
    CHECK_EQ(st.watches, 0);
}

/* Floods events for the watch's token, then answers. */
static void s_flood(const struct xs_msg_hdr *h, const uint8_t *body)
{
    const char *parts[2];
    uint8_t ev[64];

    if (h->type == XS_MSG_WATCH) {
        xs_msg_split(body, h->len, parts, 2);
        snprintf(last_token, sizeof(last_token), "%s", parts[1]);
    } else if (h->type == XS_MSG_WRITE) {
        for (int i = 0; i < 30; i++) {
            int n =
                snprintf((char *)ev, sizeof(ev), "f/%d%c%s", i, 0, last_token);
            srv_put(XS_MSG_WATCH_EVENT, 0, ev, (size_t)n + 1);
        }
        /* and one for a token nobody registered */
        srv_put(XS_MSG_WATCH_EVENT, 0, "f\0nobody", 9);
    }
    srv_ok(h);
}

TEST(event_overflow_fires_watch_once_more)
{
    struct xs_stats before, after;
    int id;

    reset(s_flood);
    id = xs_watch("f", watch_cb, NULL);
    CHECK(id >= 0);
    xs_get_stats(&before);
    CHECK_EQ(xs_write(0, "f/x", "1"), 0);
    xs_get_stats(&after);
    CHECK(after.events_dropped - before.events_dropped >= 14);
    CHECK_EQ(after.unknown_tokens - before.unknown_tokens, 1);
    cb_calls = 0;
    xs_dispatch();
    /* 16 queued events + one for the lost ones, with the watched path */
    CHECK_EQ(cb_calls, 17);
    CHECK(strcmp(cb_path, "f") == 0);
    CHECK(!xs_events_pending());
    xs_unwatch(id);
}

static void s_silent(const struct xs_msg_hdr *h, const uint8_t *body)
{
    (void)h;
    (void)body;
}

TEST(timeout_then_late_reply_is_stray)
{
    char buf[8];
    struct xs_stats st;
    uint64_t t0 = fake_now;

    reset(s_silent);
    CHECK_EQ(xs_read(0, "domid", buf, sizeof(buf)), -XS_ETIMEDOUT);
    CHECK(fake_now - t0 >= XS_TIMEOUT_NS);
    /* the late reply shows up before the next request's own */
    srv_script = s_read_value;
    srv_put(XS_MSG_READ, 1, "late", 4);
    xs_get_stats(&st);
    CHECK_EQ(xs_read(0, "domid", buf, sizeof(buf)), 2);
    {
        struct xs_stats st2;

        xs_get_stats(&st2);
        CHECK(st2.stray_replies > st.stray_replies);
    }
}

static void s_bad_type(const struct xs_msg_hdr *h, const uint8_t *body)
{
    (void)body;
    srv_put(XS_MSG_DIRECTORY, h->req_id, "x", 2);
}

static void s_bad_len(const struct xs_msg_hdr *h, const uint8_t *body)
{
    uint8_t hdr[16] = {2, 0, 0, 0};

    (void)body;
    memcpy(hdr + 4, &h->req_id, 4);
    hdr[12] = 0x01;
    hdr[13] = 0x20; /* 8193 bytes */
    memcpy(srv_out + srv_len, hdr, 16);
    srv_len += 16;
}

TEST(malformed_replies)
{
    char buf[8];

    reset(s_bad_type);
    CHECK_EQ(xs_read(0, "domid", buf, sizeof(buf)), -XS_EPROTO);
    reset(s_bad_len);
    CHECK_EQ(xs_read(0, "domid", buf, sizeof(buf)), -XS_EIO);
    /* a peer publishing impossible indices */
    reset(s_read_value);
    ring.rsp_prod = ring.rsp_cons + 5000;
    CHECK_EQ(xs_read(0, "domid", buf, sizeof(buf)), -XS_EIO);
    reset(s_read_value);
    ring.req_cons = ring.req_prod + 7;
    CHECK_EQ(xs_read(0, "domid", buf, sizeof(buf)), -XS_EIO);
}

static int tx_ends;

static void s_tx(const struct xs_msg_hdr *h, const uint8_t *body)
{
    if (h->type == XS_MSG_TRANSACTION_START) {
        srv_put(h->type, h->req_id, "77", 3);
    } else if (h->type == XS_MSG_TRANSACTION_END) {
        if (tx_ends++ == 0)
            srv_put(XS_MSG_ERROR, h->req_id, "EAGAIN", 7);
        else
            srv_ok(h);
    } else if (h->type == XS_MSG_DIRECTORY) {
        if (strcmp((const char *)body, "empty") == 0)
            srv_put(h->type, h->req_id, "", 1);
        else
            srv_put(h->type, h->req_id, "a\0bb\0c", 7);
    } else {
        srv_ok(h);
    }
}

TEST(transactions_and_directory)
{
    uint32_t tx = 0;
    const char *names[4];
    char buf[64];

    reset(s_tx);
    tx_ends = 0;
    CHECK_EQ(xs_transaction_start(&tx), 0);
    CHECK_EQ(tx, 77);
    CHECK_EQ(xs_write(tx, "k", "v"), 0);
    CHECK_EQ(xs_transaction_end(tx, true), -XS_EAGAIN);
    CHECK_EQ(xs_transaction_end(tx, true), 0);
    CHECK_EQ(xs_directory(0, "d", buf, sizeof(buf), names, 4), 3);
    CHECK(strcmp(names[1], "bb") == 0);
    CHECK_EQ(xs_directory(0, "d", buf, sizeof(buf), names, 2), -XS_E2BIG);
    CHECK_EQ(xs_directory(0, "empty", buf, sizeof(buf), names, 4), 0);
    CHECK_EQ(xs_write(0, "k", ""), 0);
}

int main(void)
{
    fake_now = 1000000000ull;
    RUN(read_value_and_errors);
    RUN(reply_split_across_wakeups);
    RUN(events_interleaved_with_replies);
    RUN(watch_table_bounded_no_duplicates);
    RUN(event_overflow_fires_watch_once_more);
    RUN(timeout_then_late_reply_is_stray);
    RUN(malformed_replies);
    RUN(transactions_and_directory);
    return test_summary();
}
