/*
 * fuzz_dns.c: libFuzzer target for the DNS response parser and the client
 * that consumes replies.
 *
 * Input: one selector byte, then a DNS message. The selector picks the
 * question (name and type) the message is parsed against; the message's
 * own id is used so that the fuzzer gets past the id check. The same
 * message is then fed to a client with that query in flight, as a reply
 * from the right server and port, to exercise dns_rx() and the cache.
 * Checks the parser's output invariants.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dns.h"
#include "wire.h"

static const char *const names[] = {
    "example.com",
    "www.example.com",
    "a.b",
    "x",
};

static uint32_t seed;
static uint16_t sent_port;
static uint8_t sent_query[DNS_QUERY_MAX];

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
    (void)server;
    (void)now;
    memcpy(sent_query, p, n < sizeof sent_query ? n : sizeof sent_query);
    return sent_port = 4242;
}

static void f_release(void *ctx, uint32_t server, uint16_t sport)
{
    (void)ctx;
    (void)server;
    (void)sport;
}

static void f_changed(void *ctx, int id)
{
    (void)ctx;
    (void)id;
}

static void f_log(void *ctx, enum qw_log_level lvl, const char *line)
{
    (void)ctx;
    (void)lvl;
    if (strlen(line) >= 160)
        abort();
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

/* Feed msg to a client whose query for name is in flight. */
static void run_client(const uint8_t *msg, size_t n, const char *name)
{
    static uint64_t mem[(1 << 16) / 8];
    struct dns *d = (struct dns *)mem;
    const struct dns_env env = {NULL,      f_random,  f_send,
                                f_release, f_changed, f_log};
    uint8_t *copy;

    if (dns_mem_size(4) > sizeof mem)
        abort();
    dns_init(d, 4, &env);
    dns_set_servers(d, 0x0a8b0101, 0x0a8b0102);
    int id = dns_ref(d, name);
    if (id < 0)
        abort();
    dns_poll(d, 0);
    copy = malloc(n < 2 ? 2 : n);
    memcpy(copy, msg, n);
    if (n >= 2)
        memcpy(copy, sent_query, 2); /* the query's random id */
    dns_rx(d, 0x0a8b0101, 53, sent_port, copy, n, 1);
    int m = dns_match(d, id, 0x01020304);
    if (m < -1 || m > 1)
        abort();
    /* timers after the reply (retry, refresh, expiry) stay sane */
    uint64_t next = dns_poll(d, 2);
    if (next < 2)
        abort();
    dns_poll(d, 4000000000000ull);
    dns_unref(d, id);
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dns_answer a;
    uint8_t *msg;
    size_t n;

    if (size < 1)
        return 0;
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
