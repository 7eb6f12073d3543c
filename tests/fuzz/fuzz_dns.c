/*
 * fuzz_dns.c: libFuzzer target for the DNS response parser and the client
 * that consumes replies.
 *
 * Input: one selector byte, then the rest.
 *   selector bit 3 clear: the rest is a DNS message. Bits 0-1 pick the
 *     question name, bit 2 the type (A/AAAA); the message's own id is used
 *     so that the fuzzer gets past the id check. The parser's output
 *     invariants are checked; for A, the same message is then fed to a
 *     client with that query in flight, as a reply from the right server
 *     and port.
 *   selector bit 3 set: the rest is a sequence of client operations (ref,
 *     unref, poll with time steps, correct replies with fuzzed contents,
 *     raw replies, server changes, match). Checks: queries in flight never
 *     exceed DNS_MAX_INFLIGHT, every released port was reserved, a correct
 *     reply to a live query is always accepted, a poll's deadline is
 *     always later than the poll (no spin), changed() names a live host,
 *     and once every reference is dropped and time passes the cache
 *     empties and every port is back.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dns.h"
#include "wire.h"

#define S 1000000000ull
#define PRI 0x0a8b0101u
#define SEC 0x0a8b0102u

static const char *const names[] = {
    "example.com", "www.example.com", "a.b", "x",
    "c.example",   "d.example",       "e.f", "long-name.example.org",
};

/* Fake pipeline: the ports it reserved for the client. */
struct fq {
    uint32_t server;
    uint16_t port;
    bool live;
    uint8_t q[DNS_QUERY_MAX];
    size_t n;
};

static struct fq fq[64];
static unsigned live;
static uint16_t port_ctr;
static uint32_t seed;
static struct dns *cur_dns;

static uint32_t f_random(void *ctx)
{
    (void)ctx;
    seed = seed * 1103515245u + 12345u;
    return seed >> 1;
}

static uint16_t f_send(void *ctx, uint32_t server, const uint8_t *p, size_t n,
                       uint64_t now)
{
    (void)ctx;
    (void)now;
    if (n > DNS_QUERY_MAX || server == 0)
        abort();
    for (unsigned i = 0; i < 64; i++) {
        if (fq[i].live)
            continue;
        fq[i].live = true;
        fq[i].server = server;
        fq[i].port = (uint16_t)(1024 + port_ctr++ % 60000);
        memcpy(fq[i].q, p, n);
        fq[i].n = n;
        if (++live > DNS_MAX_INFLIGHT)
            abort();
        return fq[i].port;
    }
    abort();
}

static void f_release(void *ctx, uint32_t server, uint16_t sport)
{
    (void)ctx;
    for (unsigned i = 0; i < 64; i++) {
        if (fq[i].live && fq[i].server == server && fq[i].port == sport) {
            fq[i].live = false;
            live--;
            return;
        }
    }
    abort(); /* released a port that was not reserved */
}

static void f_changed(void *ctx, int id)
{
    (void)ctx;
    if (cur_dns && dns_name(cur_dns, id) == NULL)
        abort();
}

static void f_log(void *ctx, enum qw_log_level lvl, const char *line)
{
    (void)ctx;
    (void)lvl;
    if (strlen(line) >= 160)
        abort();
}

static const struct dns_env env = {NULL,      f_random,  f_send,
                                   f_release, f_changed, f_log};

static struct dns *new_client(unsigned names_cap)
{
    static uint64_t mem[(1 << 16) / 8];
    struct dns *d = (struct dns *)mem;

    if (dns_mem_size(names_cap) > sizeof mem)
        abort();
    memset(fq, 0, sizeof fq);
    live = 0;
    port_ctr = 0;
    seed = 1;
    dns_init(d, names_cap, &env);
    cur_dns = d;
    return d;
}

static void check_answer(const struct dns_answer *a, int st, uint16_t qtype)
{
    if (st == DNS_OK && (a->n == 0 || a->n > DNS_MAX_ADDRS))
        abort();
    if (st != DNS_OK && st != DNS_E_MALFORMED && st != DNS_E_ID &&
        st != DNS_E_QUESTION && st != DNS_E_NXDOMAIN && st != DNS_E_RCODE &&
        st != DNS_E_NODATA && st != DNS_E_TRUNCATED && st != DNS_E_CHAIN)
        abort();
    if (st != DNS_OK)
        return;
    if (a->cnames > DNS_MAX_CNAME || a->ttl > 0x7fffffffu)
        abort();
    for (unsigned i = 1; i < a->n; i++) {
        if (qtype == DNS_TYPE_A && a->a4[i - 1] >= a->a4[i])
            abort();
        if (qtype == DNS_TYPE_AAAA && memcmp(a->a6[i - 1], a->a6[i], 16) >= 0)
            abort();
    }
}

static void check_drop(enum qw_drop r)
{
    if (r != QW_DROP_NONE && r != QW_DROP_DNS_BAD &&
        r != QW_DROP_DNS_UNEXPECTED)
        abort();
}

/* Feed msg to a client whose query for name is in flight. */
static void run_client(const uint8_t *msg, size_t n, const char *name)
{
    struct dns *d = new_client(4);
    uint8_t *copy;

    dns_set_servers(d, PRI, SEC);
    int id = dns_ref(d, name);
    if (id < 0)
        abort();
    dns_poll(d, 0);
    if (!fq[0].live)
        abort();
    copy = malloc(n < 2 ? 2 : n);
    memcpy(copy, msg, n);
    if (n >= 2)
        memcpy(copy, fq[0].q, 2); /* the query's random id */
    check_drop(dns_rx(d, PRI, 53, fq[0].port, copy, n, 1));
    int m = dns_match(d, id, 0x01020304);
    if (m < -1 || m > 1)
        abort();
    /* timers after the reply (retry, refresh, expiry) stay sane */
    uint64_t next = dns_poll(d, 2);
    if (next < 2)
        abort();
    dns_poll(d, 4000 * S);
    dns_unref(d, id);
    free(copy);
}

/* A well-formed reply to live query k: rcode, addresses and ttl from the
 * input. */
static size_t good_reply(uint8_t *out, const struct fq *k, uint8_t r,
                         const uint8_t *in, size_t avail)
{
    size_t qend = 12, n;
    unsigned na = r < 200 ? r % 5 : 0;

    while (k->q[qend])
        qend += k->q[qend] + 1u;
    qend += 5;
    memcpy(out, k->q, qend);
    qw_put16(out + 2, (uint16_t)(0x8180 | (r < 200 ? 0 : (r & 0xf))));
    qw_put16(out + 6, (uint16_t)na);
    qw_put16(out + 10, 0);
    n = qend;
    for (unsigned i = 0; i < na; i++) {
        uint8_t b = i < avail ? in[i] : (uint8_t)i;
        qw_put16(out + n, 0xc00c);
        qw_put16(out + n + 2, DNS_TYPE_A);
        qw_put16(out + n + 4, DNS_CLASS_IN);
        qw_put32(out + n + 6, (uint32_t)b * 37u);
        qw_put16(out + n + 10, 4);
        qw_put32(out + n + 12, 0x0a000000u | (b & 7u));
        n += 16;
    }
    return n;
}

/* The k-th live reservation (cyclically), or NULL. */
static struct fq *pick_live(unsigned k)
{
    for (unsigned i = 0; i < 64; i++) {
        struct fq *f = &fq[(k + i) % 64];
        if (f->live)
            return f;
    }
    return NULL;
}

static void run_sequence(const uint8_t *b, size_t n)
{
    struct dns *d = new_client(6);
    int held[32];
    unsigned nheld = 0;
    uint64_t now = 0;
    uint8_t msg[512];
    struct dns_stats st;
    size_t i = 0;

    dns_set_servers(d, PRI, SEC);
    while (i + 1 < n) {
        uint8_t op = b[i++] % 7, arg = b[i++];
        struct fq *f;
        int id;

        switch (op) {
        case 0:
            id = dns_ref(d, names[arg % 8]);
            if (id >= 0 && nheld < 32)
                held[nheld++] = id;
            else if (id >= 0)
                dns_unref(d, id);
            break;
        case 1:
            if (nheld) {
                unsigned k = arg % nheld;
                dns_unref(d, held[k]);
                held[k] = held[--nheld];
            }
            break;
        case 2:
            now += (uint64_t)(arg + 1) * (S / 20) * (arg > 250 ? 1000 : 1);
            if (dns_poll(d, now) <= now)
                abort();
            break;
        case 3:
            f = pick_live(arg);
            if (f && i < n) {
                uint8_t r = b[i++];
                size_t len = good_reply(msg, f, r, b + i, n - i);
                uint32_t srv = f->server;
                uint16_t port = f->port;
                if (dns_rx(d, srv, 53, port, msg, len, now) != QW_DROP_NONE)
                    abort(); /* a correct reply is always taken */
            }
            break;
        case 4:
            f = pick_live(arg);
            if (f) {
                size_t len = arg % 48;
                if (len > n - i)
                    len = n - i;
                memcpy(msg, b + i, len);
                if (len >= 2 && (arg & 1))
                    memcpy(msg, f->q, 2);
                i += len;
                check_drop(dns_rx(d, f->server, 53, f->port, msg, len, now));
            }
            break;
        case 5: {
            static const uint32_t srv[4][2] = {
                {PRI, SEC}, {PRI, 0}, {0, 0}, {SEC, PRI}};
            dns_set_servers(d, srv[arg % 4][0], srv[arg % 4][1]);
            break;
        }
        case 6:
            if (nheld) {
                int m =
                    dns_match(d, held[arg % nheld], 0x0a000000u | (arg & 7));
                if (m < -1 || m > 1)
                    abort();
            }
            break;
        }
        dns_get_stats(d, &st);
        if (st.inflight > DNS_MAX_INFLIGHT || live > st.inflight)
            abort();
    }
    /* Everything released and time passing empties the cache. */
    while (nheld)
        dns_unref(d, held[--nheld]);
    for (int k = 0; k < 8; k++) {
        now += 5000 * S;
        dns_poll(d, now);
    }
    dns_get_stats(d, &st);
    if (st.names != 0 || st.referenced != 0 || st.inflight != 0 || live != 0)
        abort();
    cur_dns = NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dns_answer a;
    uint8_t *msg;
    size_t n;

    if (size < 1)
        return 0;
    if (data[0] & 8) {
        run_sequence(data + 1, size - 1);
        return 0;
    }
    const char *name = names[data[0] & 3];
    uint16_t qtype = data[0] & 4 ? DNS_TYPE_AAAA : DNS_TYPE_A;
    n = size - 1;
    /* an exact-size heap copy so ASan sees any read past the end */
    msg = malloc(n ? n : 1);
    memcpy(msg, data + 1, n);
    uint16_t id = n >= 2 ? qw_get16(msg) : 0;
    int st = dns_parse_response(msg, n, id, name, qtype, &a);
    check_answer(&a, st, qtype);
    if (qtype == DNS_TYPE_A)
        run_client(msg, n, name);
    free(msg);
    return 0;
}
