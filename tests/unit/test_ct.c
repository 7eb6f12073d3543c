/*
 * test_ct.c: connection tracking and NAT table (core/ct.c).
 *
 * Fixed cases for NAT port choice, every TCP state's timeout, UDP/ICMP,
 * eviction order, per-link removal and self entries; then a randomised
 * differential test against a linear-list model and a NAT round-trip
 * property test. All randomness is seeded: runs are reproducible.
 */
#include <stdlib.h>

#include "ct.h"
#include "test.h"
#include "wire.h"

#define S(x) ((uint64_t)(x)*1000000000ull)
#define T0 S(1000)

#define CLIENT 0x0a890005u  /* 10.137.0.5 */
#define CLIENT2 0x0a890006u /* 10.137.0.6 */
#define REMOTE 0x5db8d822u  /* 93.184.216.34 */
#define REMOTE2 0x01010101u
#define NAT 0x0a8a0009u /* 10.138.0.9 */
#define DNS1 0x0a8a0001u

static uint64_t rng_state;

static uint64_t rng64(void)
{
    /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

static uint32_t rnd_cb(void *ctx)
{
    (void)ctx;
    return (uint32_t)(rng64() >> 32);
}

static unsigned rnd_below(unsigned n)
{
    return (unsigned)(rng64() >> 33) % n;
}

static struct ct *mk(unsigned cap)
{
    size_t n = ct_mem_size(cap);
    void *mem = aligned_alloc(64, (n + 63) & ~(size_t)63);

    rng_state = 0x9e3779b97f4a7c15ull ^ cap;
    return ct_init(mem, cap, rnd_cb, NULL);
}

/* A table for client links 0..nlinks-1 with a per-link cap (0: default). */
static struct ct *mkl(unsigned cap, unsigned nlinks, unsigned link_cap)
{
    size_t n = ct_mem_size_links(cap, nlinks);
    void *mem = aligned_alloc(64, (n + 63) & ~(size_t)63);

    rng_state = 0x9e3779b97f4a7c15ull ^ cap ^ (uint64_t)nlinks << 32;
    return ct_init_links(mem, cap, nlinks, link_cap, rnd_cb, NULL);
}

static void rm(struct ct *t)
{
    free(t);
}

static struct ct_key K(uint8_t proto, uint32_t src, uint32_t dst,
                       uint16_t sport, uint16_t dport) {
    struct ct_key k;

    memset(&k, 0, sizeof k);
    k.src = src;
    k.dst = dst;
    k.sport = sport;
    k.dport = dport;
    k.proto = proto;
    return k;
}

static bool
key_eq(const struct ct_key *a, const struct ct_key *b)
{
    return a->src == b->src && a->dst == b->dst && a->sport == b->sport &&
           a->dport == b->dport && a->proto == b->proto;
}

TEST(sizes_and_init)
{
    static uint8_t small[4096] __attribute__((aligned(64)));
    size_t n = ct_mem_size(5000);

    CHECK_EQ(sizeof(struct ct_entry), 64);
    CHECK_EQ(ct_mem_size(0), 0);
    CHECK_EQ(ct_mem_size(CT_MAX_CAPACITY + 1), 0);
    CHECK(ct_mem_size(1) > 0);
    CHECK(ct_mem_size(1) <= sizeof small);
    /* 64-byte entries, 8 bytes of per-link list links per entry, two
     * 4-byte bucket heads per power-of-two slot, 20 bytes per link */
    CHECK(n >= 5000 * 72 + 2 * 8192 * 4 + (CT_DEFAULT_LINKS + 1) * 20);
    CHECK(n <= 5000 * 72 + 2 * 8192 * 4 + (CT_DEFAULT_LINKS + 1) * 20 + 256);
    CHECK_EQ(ct_mem_size(5000), ct_mem_size_links(5000, CT_DEFAULT_LINKS));
    CHECK_EQ(ct_mem_size_links(5000, 4097) - ct_mem_size_links(5000, 65),
             (4097 - 65) * 20);
    CHECK_EQ(ct_mem_size_links(5000, 0), 0);
    CHECK_EQ(ct_mem_size_links(5000, CT_MAX_LINKS + 1), 0);
    CHECK_EQ(ct_mem_size_links(0, 5), 0);
    CHECK(ct_mem_size_links(1, CT_MAX_LINKS) > 0);
    printf("# ct: %zu bytes for 5000 connections (%zu per connection)\n", n,
           n / 5000);
    CHECK(ct_init(NULL, 10, rnd_cb, NULL) == NULL);
    CHECK(ct_init(small, 0, rnd_cb, NULL) == NULL);
    CHECK(ct_init(small, 10, NULL, NULL) == NULL);
    CHECK(ct_init(small, 1, rnd_cb, NULL) != NULL);
    CHECK_EQ(ct_set_port_range(ct_init(small, 1, rnd_cb, NULL), 0, 10),
             -QW_EINVAL);
    CHECK_EQ(ct_set_port_range(ct_init(small, 1, rnd_cb, NULL), 10, 9),
             -QW_EINVAL);
    CHECK(ct_init_links(small, 1, 0, 0, rnd_cb, NULL) == NULL);
    CHECK(ct_init_links(NULL, 1, 2, 0, rnd_cb, NULL) == NULL);
    CHECK(ct_init_links(small, 1, 2, 0, NULL, NULL) == NULL);
    /* default cap: half the capacity, at least CT_LINK_CAP_MIN */
    CHECK_EQ(ct_link_cap(ct_init_links(small, 1, 2, 0, rnd_cb, NULL)),
             CT_LINK_CAP_MIN);
    CHECK_EQ(ct_link_cap(ct_init_links(small, 1, 2, 7, rnd_cb, NULL)), 7);
    CHECK_EQ(ct_link_cap(ct_init(small, 1, rnd_cb, NULL)), CT_LINK_CAP_MIN);
    {
        struct ct *t = mk(5000);

        CHECK_EQ(ct_link_cap(t), 2500);
        ct_set_link_cap(t, 10);
        CHECK_EQ(ct_link_cap(t), 10);
        ct_set_link_cap(t, 0);
        CHECK_EQ(ct_link_cap(t), 2500);
        CHECK_EQ(ct_link_count(t, 1), 0);
        CHECK_EQ(ct_link_count(t, CT_LINK_SELF), 0);
        rm(t);
    }
}

TEST(port_preserved)
{
    struct ct *t = mk(16);
    struct ct_key k = K(IPPROTO_TCP_, CLIENT, REMOTE, 40000, 443);
    struct ct_key r = K(IPPROTO_TCP_, REMOTE, NAT, 443, 40000);
    struct ct_entry *e = NULL, *f;
    int dir = -1;

    CHECK_EQ(ct_create(t, &k, NAT, 3, T0, &e), 0);
    CHECK(e != NULL);
    CHECK(key_eq(&e->orig, &k));
    CHECK(key_eq(&e->reply, &r));
    CHECK_EQ(e->link, 3);
    CHECK_EQ(e->state, CT_SYN_SENT);
    CHECK_EQ(e->user, 0);
    CHECK(!(e->flags & CT_F_REPLIED));
    f = ct_lookup(t, &k, T0, &dir);
    CHECK(f == e);
    CHECK_EQ(dir, 0);
    f = ct_lookup(t, &r, T0, &dir);
    CHECK(f == e);
    CHECK_EQ(dir, 1);
    CHECK(ct_lookup_dir(t, &r, 0, T0) == NULL);
    CHECK(ct_lookup_dir(t, &r, 1, T0) == e);
    CHECK(ct_lookup_dir(t, &k, 0, T0) == e);
    /* pad bytes are not part of the key */
    k.pad[1] = 0x55;
    CHECK(ct_lookup(t, &k, T0, NULL) == e);
    CHECK_EQ(ct_count(t), 1);
    CHECK_EQ(ct_check(t), 0);
    rm(t);
}

TEST(same_port_other_remote_kept)
{
    struct ct *t = mk(16);
    struct ct_key a = K(IPPROTO_UDP_, CLIENT, REMOTE, 5353, 53);
    struct ct_key b = K(IPPROTO_UDP_, CLIENT2, REMOTE2, 5353, 53);
    struct ct_key c = K(IPPROTO_UDP_, CLIENT2, REMOTE, 5353, 54);
    struct ct_entry *e;

    CHECK_EQ(ct_create(t, &a, NAT, 1, T0, &e), 0);
    CHECK_EQ(e->reply.dport, 5353);
    CHECK_EQ(ct_create(t, &b, NAT, 2, T0, &e), 0);
    CHECK_EQ(e->reply.dport, 5353);
    CHECK_EQ(ct_create(t, &c, NAT, 2, T0, &e), 0);
    CHECK_EQ(e->reply.dport, 5353);
    CHECK_EQ(ct_check(t), 0);
    rm(t);
}

TEST(collision_random_port)
{
    struct ct *t = mk(16);
    struct ct_key a = K(IPPROTO_TCP_, CLIENT, REMOTE, 40000, 443);
    struct ct_key b = K(IPPROTO_TCP_, CLIENT2, REMOTE, 40000, 443);
    struct ct_entry *ea, *eb;
    struct ct_key r;

    CHECK_EQ(ct_create(t, &a, NAT, 1, T0, &ea), 0);
    CHECK_EQ(ct_create(t, &b, NAT, 2, T0, &eb), 0);
    CHECK_EQ(ea->reply.dport, 40000);
    CHECK(eb->reply.dport != 40000);
    CHECK(eb->reply.dport >= CT_PORT_MIN);
    r = K(IPPROTO_TCP_, REMOTE, NAT, 443, eb->reply.dport);
    CHECK(ct_lookup(t, &r, T0, NULL) == eb);
    r.dport = 40000;
    CHECK(ct_lookup(t, &r, T0, NULL) == ea);
    CHECK_EQ(ct_get_stats(t)->port_fail, 0);
    CHECK_EQ(ct_check(t), 0);
    rm(t);
}

TEST(exists)
{
    struct ct *t = mk(16);
    struct ct_key a = K(IPPROTO_UDP_, CLIENT, REMOTE, 1000, 53);
    struct ct_entry *e1, *e2;

    CHECK_EQ(ct_create(t, &a, NAT, 1, T0, &e1), 0);
    CHECK_EQ(ct_create(t, &a, NAT, 1, T0, &e2), -QW_EEXIST);
    CHECK(e2 == e1);
    /* once expired, the same flow may be created anew */
    CHECK_EQ(ct_create(t, &a, NAT, 1, T0 + S(CT_TO_UDP), &e2), 0);
    CHECK_EQ(ct_count(t), 1);
    CHECK_EQ(ct_get_stats(t)->expired, 1);
    CHECK_EQ(ct_create(t, &a, CT_LINK_SELF, CT_LINK_SELF, T0, &e2), -QW_EINVAL);
    CHECK_EQ(ct_check(t), 0);
    rm(t);
}

TEST(exhaustion_no_hang)
{
    struct ct *t = mk(512);
    unsigned ok = 0, fail = 0;

    CHECK_EQ(ct_set_port_range(t, 2000, 2007), 0);
    /* 200 clients, all from port 5000 to the same remote port: 5000 once,
     * then the 8 ports of the range, then nothing. */
    for (unsigned i = 0; i < 200; i++) {
        struct ct_key k = K(IPPROTO_UDP_, CLIENT + i, REMOTE, 5000, 53);
        struct ct_entry *e;
        int rc = ct_create(t, &k, NAT, 1, T0, &e);

        if (rc == 0) {
            ok++;
            CHECK(e->reply.dport == 5000 ||
                  (e->reply.dport >= 2000 && e->reply.dport <= 2007));
        } else {
            fail++;
            CHECK_EQ(rc, -QW_ENOSPC);
            CHECK(e == NULL);
        }
    }
    CHECK_EQ(ok, 9);
    CHECK_EQ(fail, 191);
    CHECK_EQ(ct_get_stats(t)->port_fail, 191);
    CHECK_EQ(ct_count(t), 9);
    CHECK_EQ(ct_check(t), 0);
    rm(t);
}

TEST(other_proto_address_only)
{
    struct ct *t = mk(16);
    struct ct_key a = K(47, CLIENT, REMOTE, 0, 0);
    struct ct_key b = K(47, CLIENT2, REMOTE, 0, 0);
    struct ct_key c = K(47, CLIENT2, REMOTE2, 0, 0);
    struct ct_key r = K(47, REMOTE, NAT, 0, 0);
    struct ct_entry *e;

    CHECK_EQ(ct_create(t, &a, NAT, 1, T0, &e), 0);
    CHECK(key_eq(&e->reply, &r));
    CHECK_EQ(ct_timeout(e), CT_TO_OTHER);
    CHECK(ct_lookup(t, &r, T0, NULL) == e);
    /* a second client to the same remote: nothing to vary */
    CHECK_EQ(ct_create(t, &b, NAT, 2, T0, &e), -QW_ENOSPC);
    CHECK_EQ(ct_create(t, &c, NAT, 2, T0, &e), 0);
    CHECK_EQ(ct_count(t), 2);
    CHECK_EQ(ct_check(t), 0);
    rm(t);
}

TEST(icmp_query_id)
{
    struct ct *t = mk(16);
    struct ct_key a = K(IPPROTO_ICMP_, CLIENT, REMOTE, 77, 0);
    struct ct_key b = K(IPPROTO_ICMP_, CLIENT2, REMOTE, 77, 0);
    struct ct_key r = K(IPPROTO_ICMP_, REMOTE, NAT, 0, 77);
    struct ct_entry *e, *f;
    int dir;

    CHECK_EQ(ct_create(t, &a, NAT, 1, T0, &e), 0);
    CHECK(key_eq(&e->reply, &r));
    CHECK_EQ(e->state, CT_NONE);
    CHECK(ct_lookup(t, &r, T0, &dir) == e);
    CHECK_EQ(dir, 1);
    CHECK_EQ(ct_create(t, &b, NAT, 2, T0, &f), 0);
    CHECK(f->reply.dport != 77);
    CHECK_EQ(f->reply.sport, 0);
    CHECK_EQ(e->expires, T0 + S(CT_TO_ICMP));
    ct_update(t, e, 1, 0, T0 + S(5));
    CHECK_EQ(e->expires, T0 + S(5 + CT_TO_ICMP));
    CHECK(ct_lookup(t, &r, T0 + S(5 + CT_TO_ICMP) - 1, NULL) == e);
    CHECK(ct_lookup(t, &r, T0 + S(5 + CT_TO_ICMP), NULL) == NULL);
    CHECK_EQ(ct_count(t), 1);
    CHECK_EQ(ct_check(t), 0);
    rm(t);
}

TEST(udp_replied)
{
    struct ct *t = mk(16);
    struct ct_key a = K(IPPROTO_UDP_, CLIENT, REMOTE, 1234, 53);
    struct ct_entry *e;
    uint64_t now = T0;

    CHECK_EQ(ct_create(t, &a, NAT, 1, now, &e), 0);
    CHECK_EQ(e->expires, now + S(CT_TO_UDP));
    CHECK_EQ(ct_timeout(e), CT_TO_UDP);
    now += S(10);
    ct_update(t, e, 0, 0, now);
    CHECK_EQ(e->expires, now + S(CT_TO_UDP));
    CHECK(!(e->flags & CT_F_REPLIED));
    now += S(10);
    ct_update(t, e, 1, 0, now);
    CHECK(e->flags & CT_F_REPLIED);
    CHECK_EQ(e->expires, now + S(CT_TO_UDP_REPLIED));
    /* more client packets keep the replied timeout */
    now += S(1);
    ct_update(t, e, 0, 0, now);
    CHECK_EQ(e->expires, now + S(CT_TO_UDP_REPLIED));
    CHECK(ct_lookup(t, &a, now + S(CT_TO_UDP_REPLIED) - 1, NULL) == e);
    CHECK(ct_lookup(t, &a, now + S(CT_TO_UDP_REPLIED), NULL) == NULL);
    CHECK_EQ(ct_count(t), 0);

    /* unreplied expires after 30 s */
    CHECK_EQ(ct_create(t, &a, NAT, 1, now, &e), 0);
    CHECK(ct_lookup(t, &a, now + S(CT_TO_UDP) - 1, NULL) == e);
    CHECK(ct_lookup(t, &a, now + S(CT_TO_UDP), NULL) == NULL);
    CHECK_EQ(ct_check(t), 0);
    rm(t);
}

/* A TCP step: direction and flags, and the state and timeout expected. */
struct step {
    int dir;
    uint8_t flags;
    uint8_t state;
    uint32_t timeout;
};

#define SYN CT_TCP_SYN
#define ACK CT_TCP_ACK
#define FIN CT_TCP_FIN
#define RST CT_TCP_RST

static void run_steps(const struct step *s, unsigned n, bool check_expiry)
{
    struct ct *t = mk(16);
    struct ct_key a = K(IPPROTO_TCP_, CLIENT, REMOTE, 40001, 80);
    struct ct_entry *e;
    uint64_t now = T0;

    CHECK_EQ(ct_create(t, &a, NAT, 1, now, &e), 0);
    CHECK_EQ(e->state, CT_SYN_SENT);
    CHECK_EQ(e->expires, now + S(CT_TO_SYN_SENT));
    for (unsigned i = 0; i < n; i++) {
        now += S(1);
        ct_update(t, e, s[i].dir, s[i].flags, now);
        if (e->state != s[i].state)
            fprintf(stderr, "  step %u: state %u, want %u\n", i, e->state,
                    s[i].state);
        CHECK_EQ(e->state, s[i].state);
        CHECK_EQ(ct_timeout(e), s[i].timeout);
        CHECK_EQ(e->expires, now + S(s[i].timeout));
    }
    if (check_expiry) {
        uint64_t end = e->expires;

        CHECK(ct_lookup(t, &a, end - 1, NULL) == e);
        CHECK(ct_lookup(t, &e->reply, end - 1, NULL) == e);
        CHECK(ct_lookup(t, &a, end, NULL) == NULL);
        CHECK_EQ(ct_count(t), 0);
    }
    CHECK_EQ(ct_check(t), 0);
    rm(t);
}

TEST(tcp_full_lifecycle)
{
    static const struct step s[] = {
        {0, SYN, CT_SYN_SENT, CT_TO_SYN_SENT}, /* retransmitted SYN */
        {1, SYN | ACK, CT_SYN_RECV, CT_TO_SYN_RECV},
        {0, ACK, CT_ESTABLISHED, CT_TO_ESTABLISHED},
        {1, ACK, CT_ESTABLISHED, CT_TO_ESTABLISHED},
        {0, ACK, CT_ESTABLISHED, CT_TO_ESTABLISHED},
        {0, FIN | ACK, CT_FIN_WAIT, CT_TO_FIN_WAIT},
        {0, ACK, CT_FIN_WAIT, CT_TO_FIN_WAIT}, /* same side: no change */
        {1, ACK, CT_CLOSE_WAIT, CT_TO_CLOSE_WAIT},
        {1, ACK, CT_CLOSE_WAIT, CT_TO_CLOSE_WAIT},
        {1, FIN | ACK, CT_LAST_ACK, CT_TO_LAST_ACK},
        {1, ACK, CT_LAST_ACK, CT_TO_LAST_ACK}, /* second closer: no */
        {0, ACK, CT_TIME_WAIT, CT_TO_TIME_WAIT},
        {1, ACK, CT_TIME_WAIT, CT_TO_TIME_WAIT},
        {0, SYN, CT_SYN_SENT, CT_TO_SYN_SENT}, /* tuple reused */
        {1, SYN | ACK, CT_SYN_RECV, CT_TO_SYN_RECV},
        {1, RST, CT_CLOSE, CT_TO_CLOSE},
        {0, ACK, CT_CLOSE, CT_TO_CLOSE},
        {0, SYN, CT_SYN_SENT, CT_TO_SYN_SENT}, /* reopen after close */
    };

    run_steps(s, sizeof s / sizeof s[0], true);
}

TEST(tcp_each_state_expires)
{
    /* Reach each state, then check the entry lives exactly its timeout. */
    static const struct step syn_sent[] = {
        {0, SYN, CT_SYN_SENT, CT_TO_SYN_SENT}};
    static const struct step syn_recv[] = {
        {1, SYN | ACK, CT_SYN_RECV, CT_TO_SYN_RECV}};
    static const struct step est[] = {
        {1, SYN | ACK, CT_SYN_RECV, CT_TO_SYN_RECV},
        {0, ACK, CT_ESTABLISHED, CT_TO_ESTABLISHED}};
    static const struct step fin_wait[] = {
        {1, SYN | ACK, CT_SYN_RECV, CT_TO_SYN_RECV},
        {0, ACK, CT_ESTABLISHED, CT_TO_ESTABLISHED},
        {1, FIN | ACK, CT_FIN_WAIT, CT_TO_FIN_WAIT}};
    static const struct step close_wait[] = {
        {1, SYN | ACK, CT_SYN_RECV, CT_TO_SYN_RECV},
        {0, ACK, CT_ESTABLISHED, CT_TO_ESTABLISHED},
        {1, FIN | ACK, CT_FIN_WAIT, CT_TO_FIN_WAIT},
        {0, ACK, CT_CLOSE_WAIT, CT_TO_CLOSE_WAIT}};
    static const struct step last_ack[] = {
        {1, SYN | ACK, CT_SYN_RECV, CT_TO_SYN_RECV},
        {0, ACK, CT_ESTABLISHED, CT_TO_ESTABLISHED},
        {1, FIN | ACK, CT_FIN_WAIT, CT_TO_FIN_WAIT},
        {0, FIN | ACK, CT_LAST_ACK, CT_TO_LAST_ACK}}; /* FIN+ACK at once */
    static const struct step time_wait[] = {
        {1, SYN | ACK, CT_SYN_RECV, CT_TO_SYN_RECV},
        {0, ACK, CT_ESTABLISHED, CT_TO_ESTABLISHED},
        {1, FIN | ACK, CT_FIN_WAIT, CT_TO_FIN_WAIT},
        {0, FIN | ACK, CT_LAST_ACK, CT_TO_LAST_ACK},
        {1, ACK, CT_TIME_WAIT, CT_TO_TIME_WAIT}};
    static const struct step close[] = {
        {1, SYN | ACK, CT_SYN_RECV, CT_TO_SYN_RECV},
        {0, ACK, CT_ESTABLISHED, CT_TO_ESTABLISHED},
        {0, RST, CT_CLOSE, CT_TO_CLOSE}};
    static const struct step simultaneous[] = {
        {1, SYN, CT_SYN_RECV, CT_TO_SYN_RECV},
        {0, SYN | ACK, CT_SYN_RECV, CT_TO_SYN_RECV},
        {0, ACK, CT_ESTABLISHED, CT_TO_ESTABLISHED}};
    static const struct step rst_early[] = {
        {1, RST | ACK, CT_CLOSE, CT_TO_CLOSE}};
    /* a FIN before the handshake completes does not close anything */
    static const struct step fin_in_syn_sent[] = {
        {0, FIN, CT_SYN_SENT, CT_TO_SYN_SENT}};

    run_steps(syn_sent, 1, true);
    run_steps(syn_recv, 1, true);
    run_steps(est, 2, true);
    run_steps(fin_wait, 3, true);
    run_steps(close_wait, 4, true);
    run_steps(last_ack, 4, true);
    run_steps(time_wait, 5, true);
    run_steps(close, 3, true);
    run_steps(simultaneous, 3, true);
    run_steps(rst_early, 1, true);
    run_steps(fin_in_syn_sent, 1, true);
    run_steps(NULL, 0, true); /* bare SYN_SENT from creation: 120 s */
}

TEST(lru_evicts_unreplied_first)
{
    struct ct *t = mk(4);
    struct ct_entry *e[8];
    struct ct_key k[8];
    uint64_t now = T0;

    for (int i = 0; i < 8; i++)
        k[i] = K(IPPROTO_UDP_, CLIENT, REMOTE, (uint16_t)(1000 + i), 53);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(ct_create(t, &k[i], NAT, 1, now += S(1), &e[i]), 0);
    ct_update(t, e[0], 1, 0, now += S(1)); /* 0, 1 replied */
    ct_update(t, e[1], 1, 0, now += S(1));
    /* full: the oldest never-replied (2) goes, not the older replied 0 */
    CHECK_EQ(ct_create(t, &k[4], NAT, 1, now += S(1), &e[4]), 0);
    CHECK(ct_lookup(t, &k[2], now, NULL) == NULL);
    CHECK(ct_lookup(t, &k[0], now, NULL) != NULL);
    CHECK_EQ(ct_get_stats(t)->evicted, 1);
    CHECK_EQ(ct_get_stats(t)->evicted_replied, 0);
    /* a packet makes 3 the most recent: 4 is now the oldest unreplied */
    ct_update(t, e[3], 0, 0, now += S(1));
    CHECK_EQ(ct_create(t, &k[5], NAT, 1, now += S(1), &e[5]), 0);
    CHECK(ct_lookup(t, &k[4], now, NULL) == NULL);
    CHECK(ct_lookup(t, &k[3], now, NULL) == e[3]);
    /* all replied: the least recently used replied entry goes (1, since
     * 0 was used after it) */
    ct_update(t, e[3], 1, 0, now += S(1));
    ct_update(t, e[5], 1, 0, now += S(1));
    ct_update(t, e[0], 0, 0, now += S(1));
    CHECK_EQ(ct_create(t, &k[6], NAT, 1, now += S(1), &e[6]), 0);
    CHECK(ct_lookup(t, &k[1], now, NULL) == NULL);
    CHECK(ct_lookup(t, &k[0], now, NULL) != NULL);
    CHECK_EQ(ct_get_stats(t)->evicted, 3);
    CHECK_EQ(ct_get_stats(t)->evicted_replied, 1);
    CHECK_EQ(ct_count(t), 4);
    CHECK_EQ(ct_get_stats(t)->high_water, 4);
    CHECK_EQ(ct_check(t), 0);
    rm(t);
}

TEST(lru_expired_replied_before_live_unreplied)
{
    struct ct *t = mk(2);
    struct ct_entry *a, *b, *c;
    struct ct_key ka = K(IPPROTO_UDP_, CLIENT, REMOTE, 1, 53);
    struct ct_key kb = K(IPPROTO_UDP_, CLIENT, REMOTE, 2, 53);
    struct ct_key kc = K(IPPROTO_UDP_, CLIENT, REMOTE, 3, 53);
    uint64_t now = T0;

    CHECK_EQ(ct_create(t, &ka, NAT, 1, now, &a), 0);
    ct_update(t, a, 1, 0, now); /* replied, lives 120 s */
    now += S(CT_TO_UDP_REPLIED);
    CHECK_EQ(ct_create(t, &kb, NAT, 1, now, &b), 0); /* unreplied, live */
    CHECK_EQ(ct_create(t, &kc, NAT, 1, now, &c), 0);
    CHECK(ct_lookup(t, &kb, now, NULL) == b);
    CHECK(ct_lookup(t, &ka, 0, NULL) == NULL);
    CHECK_EQ(ct_get_stats(t)->evicted, 0);
    CHECK_EQ(ct_get_stats(t)->expired, 1);
    CHECK_EQ(ct_check(t), 0);
    rm(t);
}

static bool keep_https(void *ctx, const struct ct_entry *e)
{
    (*(unsigned *)ctx)++;
    return e->orig.dport == 443;
}

TEST(recheck_and_flush)
{
    struct ct *t = mk(64);
    struct ct_entry *e;
    unsigned calls = 0;

    for (uint16_t i = 0; i < 10; i++) {
        struct ct_key k1 =
            K(IPPROTO_TCP_, CLIENT, REMOTE, 2000 + i, i % 2 ? 443 : 80);
        struct ct_key k2 = K(IPPROTO_TCP_, CLIENT2, REMOTE, 2000 + i, 443);

        CHECK_EQ(ct_create(t, &k1, NAT, 1, T0, &e), 0);
        CHECK_EQ(ct_create(t, &k2, NAT, 2, T0, &e), 0);
    }
    CHECK_EQ(ct_count(t), 20);
    CHECK_EQ(ct_recheck_link(t, 1, keep_https, &calls), 5);
    CHECK_EQ(calls, 10); /* only link 1's entries were asked about */
    CHECK_EQ(ct_count(t), 15);
    for (uint16_t i = 0; i < 10; i++) {
        struct ct_key k1 =
            K(IPPROTO_TCP_, CLIENT, REMOTE, 2000 + i, i % 2 ? 443 : 80);

        CHECK((ct_lookup(t, &k1, T0, NULL) != NULL) == (i % 2 == 1));
    }
    CHECK_EQ(ct_check(t), 0);
    CHECK_EQ(ct_flush_link(t, 2), 10);
    CHECK_EQ(ct_flush_link(t, 2), 0);
    CHECK_EQ(ct_count(t), 5);
    CHECK_EQ(ct_check(t), 0);
    ct_flush(t);
    CHECK_EQ(ct_count(t), 0);
    CHECK_EQ(ct_check(t), 0);
    CHECK_EQ(ct_get_stats(t)->high_water, 20);
    /* usable after a flush */
    {
        struct ct_key k = K(IPPROTO_TCP_, CLIENT, REMOTE, 2000, 80);

        CHECK_EQ(ct_create(t, &k, NAT + 1, 1, T0, &e), 0);
        CHECK_EQ(e->reply.dst, NAT + 1);
    }
    CHECK_EQ(ct_check(t), 0);
    rm(t);
}

TEST(self_entries)
{
    struct ct *t = mk(64);
    struct ct_entry *e;
    uint16_t port = 0, p2 = 0;
    int dir;

    CHECK_EQ(ct_reserve_self(t, IPPROTO_UDP_, NAT, DNS1, 53, T0, &port), 0);
    CHECK(port >= CT_PORT_MIN);
    {
        struct ct_key r = K(IPPROTO_UDP_, DNS1, NAT, 53, port);
        struct ct_key o = K(IPPROTO_UDP_, NAT, DNS1, port, 53);

        e = ct_lookup(t, &r, T0, &dir);
        CHECK(e != NULL);
        CHECK_EQ(dir, 1);
        CHECK_EQ(e->link, CT_LINK_SELF);
        CHECK(key_eq(&e->orig, &o));
        /* a client using the same source port to the same server gets
         * another NAT port: the reply must reach the DNS client */
        {
            struct ct_key c = K(IPPROTO_UDP_, CLIENT, DNS1, port, 53);
            struct ct_entry *f;

            CHECK_EQ(ct_create(t, &c, NAT, 1, T0, &f), 0);
            CHECK(f->reply.dport != port);
        }
        ct_release_self(t, IPPROTO_UDP_, NAT, DNS1, 53, port);
        CHECK(ct_lookup(t, &r, T0, NULL) == NULL);
        ct_release_self(t, IPPROTO_UDP_, NAT, DNS1, 53, port); /* no-op */
    }
    CHECK_EQ(ct_count(t), 1);
    /* release never touches a client's entry */
    {
        struct ct_key c = K(IPPROTO_UDP_, NAT, DNS1, 7777, 53);

        CHECK_EQ(ct_create(t, &c, NAT, 1, T0, &e), 0);
        ct_release_self(t, IPPROTO_UDP_, NAT, DNS1, 53, 7777);
        CHECK(ct_lookup(t, &c, T0, NULL) == e);
    }
    CHECK_EQ(ct_reserve_self(t, IPPROTO_ICMP_, NAT, DNS1, 0, T0, &p2),
             -QW_EINVAL);
    /* exhaustion: four ports, then nothing */
    CHECK_EQ(ct_set_port_range(t, 3000, 3003), 0);
    {
        unsigned ok = 0, fail = 0;

        for (int i = 0; i < 30; i++) {
            int rc = ct_reserve_self(t, IPPROTO_TCP_, NAT, DNS1, 53, T0, &p2);

            if (rc == 0) {
                ok++;
                CHECK(p2 >= 3000 && p2 <= 3003);
            } else {
                fail++;
                CHECK_EQ(rc, -QW_ENOSPC);
                CHECK_EQ(p2, 0);
            }
        }
        CHECK_EQ(ok, 4);
        CHECK_EQ(fail, 26);
    }
    CHECK_EQ(ct_flush_link(t, CT_LINK_SELF), 4);
    CHECK_EQ(ct_check(t), 0);
    rm(t);
}

TEST(self_entries_survive_flood)
{
    struct ct *t = mk(8);
    struct ct_entry *e;
    uint16_t port;
    uint64_t now = T0;

    CHECK_EQ(ct_reserve_self(t, IPPROTO_UDP_, NAT, DNS1, 53, now, &port), 0);
    for (uint16_t i = 0; i < 20; i++) {
        struct ct_key k = K(IPPROTO_TCP_, CLIENT, REMOTE, 3000 + i, 80);

        CHECK_EQ(ct_create(t, &k, NAT, 1, now += S(1), &e), 0);
    }
    {
        struct ct_key r = K(IPPROTO_UDP_, DNS1, NAT, 53, port);

        e = ct_lookup(t, &r, now, NULL);
        CHECK(e != NULL && e->link == CT_LINK_SELF);
        /* the answer arrives: replied, still on its own list */
        ct_update(t, e, 1, 0, now);
        CHECK(e->flags & CT_F_REPLIED);
    }
    CHECK_EQ(ct_get_stats(t)->evicted, 13);
    CHECK_EQ(ct_check(t), 0);
    rm(t);

    /* with nothing else left, a client's flow may take its slot */
    t = mk(1);
    CHECK_EQ(ct_reserve_self(t, IPPROTO_UDP_, NAT, DNS1, 53, now, &port), 0);
    {
        struct ct_key k = K(IPPROTO_TCP_, CLIENT, REMOTE, 3000, 80);

        CHECK_EQ(ct_create(t, &k, NAT, 1, now, &e), 0);
        CHECK_EQ(ct_count(t), 1);
        CHECK_EQ(e->link, 1);
    }
    CHECK_EQ(ct_check(t), 0);
    rm(t);
}

static uint32_t zero_rnd(void *ctx)
{
    (void)ctx;
    return 0;
}

TEST(chain_bound)
{
    /* A zero secret (a broken random source) lets keys be chosen that all
     * land in one bucket: with src = 0 and proto = 0 the hash ignores the
     * rest. The chain stops at its bound, lookups stay exact. */
    size_t n = ct_mem_size(256);
    void *mem = aligned_alloc(64, (n + 63) & ~(size_t)63);
    struct ct *t = ct_init(mem, 256, zero_rnd, NULL);
    unsigned ok = 0, fail = 0;

    for (uint32_t i = 0; i < 64; i++) {
        struct ct_key k = K(0, 0, REMOTE + i, 0, 0);
        struct ct_entry *e;
        int rc = ct_create(t, &k, NAT, 1, T0, &e);

        if (rc == 0)
            ok++;
        else if (rc == -QW_ENOSPC)
            fail++;
    }
    CHECK_EQ(ok, 24); /* CHAIN_MAX in ct.c */
    CHECK_EQ(ok + fail, 64);
    CHECK_EQ(ct_get_stats(t)->chain_fail, fail);
    for (uint32_t i = 0; i < ok; i++) {
        struct ct_key k = K(0, 0, REMOTE + i, 0, 0);
        struct ct_entry *e = ct_lookup(t, &k, T0, NULL);

        CHECK(e != NULL && e->orig.dst == REMOTE + i);
    }
    CHECK_EQ(ct_check(t), 0);
    free(mem);
}

TEST(expire_bounded_batches)
{
    struct ct *t = mk(100);
    unsigned total = 0, calls = 0;

    ct_set_link_cap(t, 100); /* one link fills the table */
    for (uint16_t i = 0; i < 100; i++) {
        struct ct_key k = K(IPPROTO_UDP_, CLIENT, REMOTE, 1000 + i, 53);
        struct ct_entry *e;

        CHECK_EQ(ct_create(t, &k, NAT, 1, T0 + S(i % 2), &e), 0);
    }
    CHECK_EQ(ct_expire(t, T0 + S(CT_TO_UDP) - 1, 1000), 0);
    /* at T0 + 30 s only the even half has expired */
    CHECK_EQ(ct_expire(t, T0 + S(CT_TO_UDP), 100), 50);
    while (ct_count(t) > 0 && calls < 100) {
        unsigned n = ct_expire(t, T0 + S(CT_TO_UDP + 1), 7);

        CHECK(n <= 7);
        total += n;
        calls++;
    }
    CHECK_EQ(total, 50);
    CHECK(calls <= 15); /* 100 slots / 7 per call */
    CHECK_EQ(ct_get_stats(t)->expired, 100);
    CHECK_EQ(ct_link_count(t, 1), 0);
    CHECK_EQ(ct_check(t), 0);
    rm(t);
}

TEST(reply_key_of_expired_entry_reused)
{
    struct ct *t = mk(16);
    struct ct_key a = K(IPPROTO_UDP_, CLIENT, REMOTE, 4000, 53);
    struct ct_key b = K(IPPROTO_UDP_, CLIENT2, REMOTE, 4000, 53);
    struct ct_entry *e;

    CHECK_EQ(ct_create(t, &a, NAT, 1, T0, &e), 0);
    CHECK_EQ(ct_create(t, &b, NAT, 2, T0 + S(CT_TO_UDP), &e), 0);
    CHECK_EQ(e->reply.dport, 4000); /* the stale holder was reaped */
    CHECK_EQ(ct_count(t), 1);
    CHECK_EQ(ct_check(t), 0);
    rm(t);
}

/* ------------------------------------------------------------------ */
/* Per-link cap.                                                       */

TEST(link_cap_flood_evicts_own)
{
    struct ct *t = mkl(1024, 4, 100);
    const struct ct_stats *st = ct_get_stats(t);
    struct ct_entry *e;
    uint64_t now = T0;

    /* link 2: 50 connections, half of them answered */
    for (uint16_t i = 0; i < 50; i++) {
        struct ct_key k = K(IPPROTO_TCP_, CLIENT2, REMOTE, 5000 + i, 443);

        CHECK_EQ(ct_create(t, &k, NAT, 2, now += 1000, &e), 0);
        if (i % 2)
            ct_update(t, e, 1, SYN | ACK, now += 1000);
    }
    /* link 1: 10 answered UDP flows, then a flood of 1000 SYNs */
    for (uint16_t i = 0; i < 10; i++) {
        struct ct_key k = K(IPPROTO_UDP_, CLIENT, REMOTE, 100 + i, 53);

        CHECK_EQ(ct_create(t, &k, NAT, 1, now += 1000, &e), 0);
        ct_update(t, e, 1, 0, now += 1000);
    }
    for (uint16_t i = 0; i < 1000; i++) {
        struct ct_key k = K(IPPROTO_TCP_, CLIENT, REMOTE2, 10000 + i, 80);

        CHECK_EQ(ct_create(t, &k, NAT, 1, now += 1000, &e), 0);
        CHECK(ct_link_count(t, 1) <= 100);
    }
    CHECK_EQ(ct_link_count(t, 1), 100);
    CHECK_EQ(ct_link_count(t, 2), 50);
    CHECK_EQ(ct_link_count(t, 3), 0);
    CHECK_EQ(ct_count(t), 150);
    CHECK_EQ(st->evicted_link_cap, 910);
    CHECK_EQ(st->evicted_table_full, 0);
    CHECK_EQ(st->evicted_self, 0);
    CHECK_EQ(st->evicted, 910);
    CHECK_EQ(st->evicted_replied, 0); /* unanswered SYNs went first */
    /* every entry of link 2 survived */
    for (uint16_t i = 0; i < 50; i++) {
        struct ct_key k = K(IPPROTO_TCP_, CLIENT2, REMOTE, 5000 + i, 443);

        CHECK(ct_lookup(t, &k, now, NULL) != NULL);
    }
    /* link 1 kept its answered flows and the 90 newest SYNs */
    for (uint16_t i = 0; i < 10; i++) {
        struct ct_key k = K(IPPROTO_UDP_, CLIENT, REMOTE, 100 + i, 53);

        CHECK(ct_lookup(t, &k, now, NULL) != NULL);
    }
    for (uint16_t i = 0; i < 1000; i++) {
        struct ct_key k = K(IPPROTO_TCP_, CLIENT, REMOTE2, 10000 + i, 80);

        CHECK((ct_lookup(t, &k, now, NULL) != NULL) == (i >= 910));
    }
    CHECK_EQ(ct_check(t), 0);

    /* all of link 1 answered: its least recently used answered entry
     * goes (UDP 100, the oldest), then a never-answered one is preferred
     * again */
    for (uint16_t i = 910; i < 1000; i++) {
        struct ct_key k = K(IPPROTO_TCP_, CLIENT, REMOTE2, 10000 + i, 80);

        now += 1000;
        ct_update(t, ct_lookup(t, &k, now, NULL), 1, SYN | ACK, now);
    }
    {
        struct ct_key x = K(IPPROTO_UDP_, CLIENT, REMOTE2, 7000, 53);
        struct ct_key y = K(IPPROTO_UDP_, CLIENT, REMOTE2, 7001, 53);
        struct ct_key u0 = K(IPPROTO_UDP_, CLIENT, REMOTE, 100, 53);
        struct ct_key u1 = K(IPPROTO_UDP_, CLIENT, REMOTE, 101, 53);

        CHECK_EQ(ct_create(t, &x, NAT, 1, now += 1000, &e), 0);
        CHECK(ct_lookup(t, &u0, now, NULL) == NULL);
        CHECK_EQ(st->evicted_replied, 1);
        CHECK_EQ(ct_create(t, &y, NAT, 1, now += 1000, &e), 0);
        CHECK(ct_lookup(t, &x, now, NULL) == NULL);
        CHECK(ct_lookup(t, &u1, now, NULL) != NULL);
        CHECK_EQ(st->evicted_replied, 1);
        CHECK_EQ(st->evicted_link_cap, 912);
    }
    CHECK_EQ(ct_link_count(t, 1), 100);
    CHECK_EQ(ct_link_count(t, 2), 50);
    CHECK_EQ(ct_flush_link(t, 1), 100);
    CHECK_EQ(ct_link_count(t, 1), 0);
    CHECK_EQ(ct_count(t), 50);
    CHECK_EQ(ct_check(t), 0);
    rm(t);
}

TEST(link_cap_expired_answered_first)
{
    struct ct *t = mkl(64, 3, 2);
    struct ct_key ka = K(IPPROTO_UDP_, CLIENT, REMOTE, 1, 53);
    struct ct_key kb = K(IPPROTO_UDP_, CLIENT, REMOTE, 2, 53);
    struct ct_key kc = K(IPPROTO_UDP_, CLIENT, REMOTE, 3, 53);
    struct ct_entry *a, *b, *c;
    uint64_t now = T0;

    CHECK_EQ(ct_create(t, &ka, NAT, 1, now, &a), 0);
    ct_update(t, a, 1, 0, now); /* answered, lives 120 s */
    now += S(CT_TO_UDP_REPLIED);
    CHECK_EQ(ct_create(t, &kb, NAT, 1, now, &b), 0); /* at the cap */
    CHECK_EQ(ct_link_count(t, 1), 2);
    CHECK_EQ(ct_create(t, &kc, NAT, 1, now, &c), 0);
    CHECK(ct_lookup(t, &kb, now, NULL) == b); /* live one kept */
    CHECK(ct_lookup(t, &ka, 0, NULL) == NULL);
    CHECK_EQ(ct_get_stats(t)->evicted, 0);
    CHECK_EQ(ct_get_stats(t)->expired, 1);
    CHECK_EQ(ct_link_count(t, 1), 2);
    CHECK_EQ(ct_check(t), 0);
    rm(t);
}

TEST(link_cap_table_full_uses_global_order)
{
    struct ct *t = mkl(8, 4, 5);
    const struct ct_stats *st = ct_get_stats(t);
    struct ct_entry *e;
    uint64_t now = T0;
    uint16_t port = 0;

    /* link 1: 3 unanswered, link 2: 3 answered, link 3: 2 unanswered */
    for (uint16_t i = 0; i < 8; i++) {
        uint16_t link = i < 3 ? 1 : i < 6 ? 2 : 3;
        struct ct_key k = K(IPPROTO_UDP_, CLIENT, REMOTE, 200 + i, 53);

        CHECK_EQ(ct_create(t, &k, NAT, link, now += 1000, &e), 0);
        if (link == 2)
            ct_update(t, e, 1, 0, now += 1000);
    }
    CHECK_EQ(ct_count(t), 8);
    /* link 3 is below its cap: the table's oldest unanswered entry goes,
     * which is link 1's first */
    {
        struct ct_key k = K(IPPROTO_UDP_, CLIENT, REMOTE, 300, 53);
        struct ct_key k0 = K(IPPROTO_UDP_, CLIENT, REMOTE, 200, 53);

        CHECK_EQ(ct_create(t, &k, NAT, 3, now += 1000, &e), 0);
        CHECK(ct_lookup(t, &k0, now, NULL) == NULL);
    }
    CHECK_EQ(st->evicted_table_full, 1);
    CHECK_EQ(st->evicted_link_cap, 0);
    CHECK_EQ(ct_link_count(t, 1), 2);
    CHECK_EQ(ct_link_count(t, 3), 3);
    CHECK_EQ(ct_check(t), 0);
    rm(t);

    /* own entries are exempt from the cap and evicted last */
    t = mkl(8, 4, 2);
    st = ct_get_stats(t);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(ct_reserve_self(t, IPPROTO_UDP_, NAT, DNS1, 53, now, &port),
                 0);
    CHECK_EQ(ct_link_count(t, CT_LINK_SELF), 4);
    for (uint16_t i = 0; i < 10; i++) {
        struct ct_key k = K(IPPROTO_TCP_, CLIENT, REMOTE, 400 + i, 80);

        CHECK_EQ(ct_create(t, &k, NAT, 1, now += 1000, &e), 0);
    }
    CHECK_EQ(ct_link_count(t, 1), 2);
    CHECK_EQ(st->evicted_link_cap, 8);
    for (uint16_t i = 0; i < 4; i++) {
        struct ct_key k = K(IPPROTO_TCP_, CLIENT2, REMOTE, 500 + i, 80);

        CHECK_EQ(ct_create(t, &k, NAT, (uint16_t)(2 + i / 2), now += 1000, &e),
                 0);
    }
    /* 4 own + 2 + 2 + 2 > 8: link 1's two oldest went, no own entry */
    CHECK_EQ(st->evicted_table_full, 2);
    CHECK_EQ(st->evicted_self, 0);
    CHECK_EQ(ct_link_count(t, 1), 0);
    CHECK_EQ(ct_link_count(t, CT_LINK_SELF), 4);
    CHECK_EQ(ct_check(t), 0);
    rm(t);

    /* nothing but own entries left: one of them goes */
    t = mkl(2, 2, 0);
    st = ct_get_stats(t);
    CHECK_EQ(ct_reserve_self(t, IPPROTO_UDP_, NAT, DNS1, 53, now, &port), 0);
    CHECK_EQ(ct_reserve_self(t, IPPROTO_UDP_, NAT, DNS1, 53, now, &port), 0);
    {
        struct ct_key k = K(IPPROTO_TCP_, CLIENT, REMOTE, 600, 80);

        CHECK_EQ(ct_create(t, &k, NAT, 1, now, &e), 0);
    }
    CHECK_EQ(st->evicted_self, 1);
    CHECK_EQ(st->evicted, 1);
    CHECK_EQ(ct_link_count(t, CT_LINK_SELF), 1);
    CHECK_EQ(ct_link_count(t, 1), 1);
    CHECK_EQ(ct_check(t), 0);
    rm(t);
}

TEST(link_cap_out_of_range_links_share)
{
    /* links 0..1 have their own quota; 5 and 9 (a caller bug) share one */
    struct ct *t = mkl(64, 2, 3);
    struct ct_entry *e;
    struct ct_key k[5];
    uint64_t now = T0;

    for (uint16_t i = 0; i < 5; i++)
        k[i] = K(IPPROTO_UDP_, CLIENT, REMOTE, 700 + i, 53);
    CHECK_EQ(ct_create(t, &k[0], NAT, 5, now += 1000, &e), 0);
    CHECK_EQ(ct_create(t, &k[1], NAT, 5, now += 1000, &e), 0);
    CHECK_EQ(ct_create(t, &k[2], NAT, 9, now += 1000, &e), 0);
    CHECK_EQ(ct_link_count(t, 5), 3);
    CHECK_EQ(ct_link_count(t, 9), 3);
    CHECK_EQ(ct_link_count(t, 1), 0);
    CHECK_EQ(ct_create(t, &k[3], NAT, 9, now += 1000, &e), 0);
    CHECK(ct_lookup(t, &k[0], now, NULL) == NULL); /* the shared LRU */
    CHECK_EQ(ct_get_stats(t)->evicted_link_cap, 1);
    CHECK_EQ(ct_create(t, &k[4], NAT, 1, now += 1000, &e), 0);
    CHECK_EQ(ct_link_count(t, 1), 1);
    /* flushing one of them leaves the other's entries */
    CHECK_EQ(ct_flush_link(t, 9), 2);
    CHECK(ct_lookup(t, &k[1], now, NULL) != NULL);
    CHECK_EQ(ct_link_count(t, 5), 1);
    CHECK_EQ(ct_count(t), 2);
    CHECK_EQ(ct_check(t), 0);
    rm(t);
}

TEST(link_cap_lowered_recycles)
{
    struct ct *t = mkl(256, 3, 0);
    struct ct_entry *e;
    uint64_t now = T0;

    CHECK_EQ(ct_link_cap(t), CT_LINK_CAP_MIN * 2); /* 256 / 2 */
    for (uint16_t i = 0; i < 20; i++) {
        struct ct_key k = K(IPPROTO_UDP_, CLIENT, REMOTE, 800 + i, 53);

        CHECK_EQ(ct_create(t, &k, NAT, 1, now += 1000, &e), 0);
    }
    ct_set_link_cap(t, 10);
    CHECK_EQ(ct_link_count(t, 1), 20); /* nothing removed */
    {
        struct ct_key k = K(IPPROTO_UDP_, CLIENT, REMOTE, 900, 53);
        struct ct_key k0 = K(IPPROTO_UDP_, CLIENT, REMOTE, 800, 53);

        CHECK_EQ(ct_create(t, &k, NAT, 1, now += 1000, &e), 0);
        CHECK(ct_lookup(t, &k0, now, NULL) == NULL);
    }
    CHECK_EQ(ct_link_count(t, 1), 20); /* recycles its own */
    CHECK_EQ(ct_get_stats(t)->evicted_link_cap, 1);
    for (uint16_t i = 0; i < 11; i++) {
        struct ct_key k = K(IPPROTO_UDP_, CLIENT2, REMOTE, 800 + i, 53);

        CHECK_EQ(ct_create(t, &k, NAT, 2, now += 1000, &e), 0);
    }
    CHECK_EQ(ct_link_count(t, 2), 10);
    CHECK_EQ(ct_get_stats(t)->evicted_link_cap, 2);
    /* timeouts bring link 1 below the new cap */
    CHECK_EQ(ct_expire(t, now + S(CT_TO_UDP), 256), 30);
    CHECK_EQ(ct_link_count(t, 1), 0);
    CHECK_EQ(ct_check(t), 0);
    rm(t);
}

TEST(link_cap_big_table)
{
    /* 2^18 entries, the pipeline's 65 links, default cap (half). Three
     * links hold 20,000 answered flows each; link 1 then opens 400,000
     * flows. Every create finds its victim at the tail of link 1's own
     * list: nothing of the others moves. (Speed is measured in the
     * benchmark, not here.) */
    const unsigned cap = 1u << 18;
    struct ct *t = mkl(cap, CT_DEFAULT_LINKS, 0);
    const struct ct_stats *st = ct_get_stats(t);
    unsigned bad = 0, half = cap / 2;
    struct ct_entry *e;
    uint64_t now = T0;

    CHECK(t != NULL);
    CHECK_EQ(ct_link_cap(t), half);
    for (uint16_t l = 2; l <= 4; l++)
        for (unsigned i = 0; i < 20000; i++) {
            struct ct_key k = K(IPPROTO_UDP_, CLIENT + l, REMOTE + l,
                                (uint16_t)(1024 + i % 50000), 443);

            bad += ct_create(t, &k, NAT, l, now, &e) != 0;
            if (e != NULL)
                ct_update(t, e, 1, 0, now);
        }
    for (unsigned i = 0; i < 400000; i++) {
        struct ct_key k = K(IPPROTO_UDP_, CLIENT, REMOTE2 + i / 50000,
                            (uint16_t)(1024 + i % 50000), 53);

        bad += ct_create(t, &k, NAT, 1, now += 1000, &e) != 0;
    }
    CHECK_EQ(bad, 0);
    CHECK_EQ(ct_link_count(t, 1), half);
    CHECK_EQ(ct_count(t), half + 60000);
    CHECK_EQ(st->evicted_link_cap, 400000 - half);
    CHECK_EQ(st->evicted_table_full, 0);
    for (uint16_t l = 2; l <= 4; l++) {
        CHECK_EQ(ct_link_count(t, l), 20000);
        for (unsigned i = 0; i < 20000; i++) {
            struct ct_key k = K(IPPROTO_UDP_, CLIENT + l, REMOTE + l,
                                (uint16_t)(1024 + i % 50000), 443);

            bad += ct_lookup(t, &k, now, NULL) == NULL;
        }
    }
    /* link 1 holds exactly its newest `half` flows */
    for (unsigned i = 0; i < 400000; i += 7) {
        struct ct_key k = K(IPPROTO_UDP_, CLIENT, REMOTE2 + i / 50000,
                            (uint16_t)(1024 + i % 50000), 53);

        bad += (ct_lookup(t, &k, now, NULL) != NULL) != (i >= 400000 - half);
    }
    CHECK_EQ(bad, 0);
    CHECK_EQ(ct_check(t), 0);
    CHECK_EQ(ct_flush_link(t, 1), half);
    CHECK_EQ(ct_count(t), 60000);
    CHECK_EQ(ct_check(t), 0);
    rm(t);
}

/* ------------------------------------------------------------------ */
/* A SYN on a finished TCP connection starts a new one.                 */

TEST(tcp_closing_and_reopen)
{
    static const struct step to_tw[] = {
        {1, SYN | ACK, CT_SYN_RECV, CT_TO_SYN_RECV},
        {0, ACK, CT_ESTABLISHED, CT_TO_ESTABLISHED},
        {0, FIN | ACK, CT_FIN_WAIT, CT_TO_FIN_WAIT},
        {1, ACK, CT_CLOSE_WAIT, CT_TO_CLOSE_WAIT},
        {1, FIN | ACK, CT_LAST_ACK, CT_TO_LAST_ACK},
        {0, ACK, CT_TIME_WAIT, CT_TO_TIME_WAIT},
    };
    struct ct *t = mk(16);
    struct ct_key a = K(IPPROTO_TCP_, CLIENT, REMOTE, 40001, 80);
    struct ct_key u = K(IPPROTO_UDP_, CLIENT, REMOTE, 40001, 80);
    struct ct_entry *e, *f;
    uint64_t now = T0;

    CHECK_EQ(ct_create(t, &u, NAT, 1, now, &f), 0);
    CHECK(!ct_tcp_closing(f));
    CHECK(!ct_tcp_reopens(f, 0, SYN));
    CHECK_EQ(ct_create(t, &a, NAT, 1, now, &e), 0);
    for (unsigned i = 0; i < sizeof to_tw / sizeof to_tw[0]; i++) {
        CHECK(!ct_tcp_closing(e)); /* SYN_SENT .. LAST_ACK: not over */
        CHECK(!ct_tcp_reopens(e, 0, SYN));
        ct_update(t, e, to_tw[i].dir, to_tw[i].flags, now += S(1));
        CHECK_EQ(e->state, to_tw[i].state);
    }
    CHECK(ct_tcp_closing(e));
    CHECK(ct_tcp_reopens(e, 0, SYN));
    CHECK(!ct_tcp_reopens(e, 0, SYN | ACK));
    CHECK(!ct_tcp_reopens(e, 0, SYN | FIN));
    CHECK(!ct_tcp_reopens(e, 0, ACK));
    CHECK(!ct_tcp_reopens(e, 1, SYN)); /* the remote cannot reopen */
    /* what the pipeline does: remove, then a new connection, which keeps
     * the client's port since the old reply key is gone */
    ct_remove(t, e);
    CHECK_EQ(ct_create(t, &a, NAT, 1, now, &e), 0);
    CHECK_EQ(e->state, CT_SYN_SENT);
    CHECK_EQ(e->reply.dport, 40001);
    CHECK_EQ(e->flags & (CT_F_REPLIED | CT_F_FIN_ORIG | CT_F_FIN_REPLY), 0);
    CHECK_EQ(ct_link_count(t, 1), 2);
    /* after a RST (CLOSE) too */
    ct_update(t, e, 1, RST, now += S(1));
    CHECK(ct_tcp_closing(e));
    CHECK(ct_tcp_reopens(e, 0, SYN));
    CHECK_EQ(ct_check(t), 0);
    rm(t);
}

/* ------------------------------------------------------------------ */
/* Differential test against a naive model.                           */

#define M_CAP 48
#define M_MAX 64
#define M_LINKS 4 /* links 1..3 are used */

struct mentry {
    struct ct_key orig, reply;
    uint16_t link;
    uint8_t state, flags;
    uint64_t expires, touch;
};

static struct mentry model[M_MAX];
static unsigned mcount;
static uint64_t mseq;
static unsigned m_link_cap;           /* the table's per-link cap */
static uint64_t m_ev_link, m_ev_full; /* live evictions by cause */

static uint32_t m_timeout(const struct mentry *m)
{
    static const uint32_t to[] = {0,
                                  CT_TO_SYN_SENT,
                                  CT_TO_SYN_RECV,
                                  CT_TO_ESTABLISHED,
                                  CT_TO_FIN_WAIT,
                                  CT_TO_CLOSE_WAIT,
                                  CT_TO_LAST_ACK,
                                  CT_TO_TIME_WAIT,
                                  CT_TO_CLOSE};

    if (m->orig.proto == IPPROTO_TCP_)
        return to[m->state];
    if (m->orig.proto == IPPROTO_UDP_)
        return (m->flags & CT_F_REPLIED) ? CT_TO_UDP_REPLIED : CT_TO_UDP;
    if (m->orig.proto == IPPROTO_ICMP_)
        return CT_TO_ICMP;
    return CT_TO_OTHER;
}

/* The TCP rules restated as a transition list (first match wins). */
struct mrule {
    uint8_t from;    /* 0xff any */
    int dir;         /* -1 any */
    uint8_t need;    /* flags that must be set */
    uint8_t without; /* flags that must be clear */
    int fin_side;    /* -1 any, 0 the first FIN was this side's, 1 other */
    uint8_t to;      /* 0xff unchanged */
};

static const struct mrule mrules[] = {
    {0xff, -1, RST, 0, -1, CT_CLOSE},
    {CT_TIME_WAIT, 0, SYN, 0, -1, CT_SYN_SENT},
    {CT_CLOSE, 0, SYN, 0, -1, CT_SYN_SENT},
    {CT_SYN_SENT, 1, SYN, 0, -1, CT_SYN_RECV},
    {0xff, -1, SYN, 0, -1, 0xff},
    {CT_SYN_RECV, -1, FIN, 0, -1, CT_FIN_WAIT},
    {CT_ESTABLISHED, -1, FIN, 0, -1, CT_FIN_WAIT},
    {CT_FIN_WAIT, -1, FIN, 0, 1, CT_LAST_ACK},
    {CT_CLOSE_WAIT, -1, FIN, 0, 1, CT_LAST_ACK},
    {0xff, -1, FIN, 0, -1, 0xff},
    {CT_SYN_RECV, 0, ACK, 0, -1, CT_ESTABLISHED},
    {CT_FIN_WAIT, -1, ACK, 0, 1, CT_CLOSE_WAIT},
    {CT_LAST_ACK, -1, ACK, 0, 0, CT_TIME_WAIT},
};

static void m_tcp(struct mentry *m, int dir, uint8_t f)
{
    uint8_t fins = m->flags & (CT_F_FIN_ORIG | CT_F_FIN_REPLY);
    int side = !fins                                              ? -1
               : (fins == (dir ? CT_F_FIN_REPLY : CT_F_FIN_ORIG)) ? 0
                                                                  : 1;

    for (size_t i = 0; i < sizeof mrules / sizeof mrules[0]; i++) {
        const struct mrule *r = &mrules[i];

        if ((r->from != 0xff && r->from != m->state) ||
            (r->dir >= 0 && r->dir != dir) || (f & r->need) != r->need ||
            (f & r->without) || (r->fin_side >= 0 && r->fin_side != side))
            continue;
        if (r->to == CT_FIN_WAIT)
            m->flags |= dir ? CT_F_FIN_REPLY : CT_F_FIN_ORIG;
        if (r->to == CT_SYN_SENT)
            m->flags &= (uint8_t) ~(CT_F_FIN_ORIG | CT_F_FIN_REPLY);
        if (r->to != 0xff)
            m->state = r->to;
        return;
    }
}

static void m_del(unsigned i)
{
    model[i] = model[--mcount];
}

static bool m_expired(const struct mentry *m, uint64_t now)
{
    return m->expires <= now;
}

static bool m_same(const struct mentry *m, const struct ct_entry *e)
{
    return key_eq(&m->orig, &e->orig) && key_eq(&m->reply, &e->reply) &&
           m->link == e->link && m->state == e->state &&
           (m->flags & 7) == (e->flags & 7) && m->expires == e->expires;
}

/* Live model entry holding key k in either direction, or -1. */
static int m_find(const struct ct_key *k, uint64_t now, int *dir)
{
    for (unsigned i = 0; i < mcount; i++) {
        if (now && m_expired(&model[i], now))
            continue;
        if (key_eq(&model[i].orig, k) || key_eq(&model[i].reply, k)) {
            if (dir)
                *dir = key_eq(&model[i].orig, k) ? 0 : 1;
            return (int)i;
        }
    }
    return -1;
}

/* Least recently used entry of `link` (-1: of any link): an expired
 * replied one, else a never-replied one, else a replied one. */
static int m_lru(uint64_t now, int link)
{
    int old[2] = {-1, -1};

    for (unsigned i = 0; i < mcount; i++) {
        int l = (model[i].flags & CT_F_REPLIED) ? 1 : 0;

        if (link >= 0 && model[i].link != link)
            continue;
        if (old[l] < 0 || model[i].touch < model[old[l]].touch)
            old[l] = (int)i;
    }
    if (old[1] >= 0 && m_expired(&model[old[1]], now))
        return old[1];
    return old[0] >= 0 ? old[0] : old[1];
}

static unsigned m_link_count(int link)
{
    unsigned n = 0;

    for (unsigned i = 0; i < mcount; i++)
        n += model[i].link == link;
    return n;
}

/*
 * The eviction victim the model predicts when `link` creates an entry:
 * the link's own LRU if it holds its cap (*by_link = true), else the
 * table's LRU (the table is full).
 */
static int m_victim(uint64_t now, int link, bool *by_link)
{
    *by_link = m_link_count(link) >= m_link_cap;
    return m_lru(now, *by_link ? link : -1);
}

static unsigned diff_fail;

static void diff_check(bool ok, const char *what, unsigned op)
{
    if (!ok && diff_fail++ < 3)
        fprintf(stderr, "  differential: %s at op %u\n", what, op);
}

/*
 * Bring the model in line with the table: entries the table no longer
 * has must have expired, except at most one eviction victim (allowed when
 * victim_ok, for a create by `link`). Returns the number dropped.
 */
static unsigned m_reconcile(struct ct *t, uint64_t now, bool victim_ok,
                            int link, unsigned op)
{
    unsigned gone = 0, live_gone = 0;
    struct mentry lost = {0};

    for (unsigned i = 0; i < mcount;) {
        struct ct_entry *e = ct_lookup_dir(t, &model[i].orig, 0, 0);

        if (e != NULL) {
            if (!m_same(&model[i], e) && diff_fail < 3)
                fprintf(stderr,
                        "  model p%u %x:%u>%x:%u r:%u l%u s%u f%x exp %llu"
                        " / table r:%u l%u s%u f%x exp %llu\n",
                        model[i].orig.proto, model[i].orig.src,
                        model[i].orig.sport, model[i].orig.dst,
                        model[i].orig.dport, model[i].reply.dport,
                        model[i].link, model[i].state, model[i].flags,
                        (unsigned long long)model[i].expires, e->reply.dport,
                        e->link, e->state, e->flags,
                        (unsigned long long)e->expires);
            diff_check(m_same(&model[i], e), "entry differs", op);
            i++;
            continue;
        }
        if (!m_expired(&model[i], now)) {
            live_gone++;
            lost = model[i];
        }
        gone++;
        m_del(i);
    }
    if (live_gone) {
        bool by_link;
        int v;

        diff_check(victim_ok && live_gone == 1, "live entry vanished", op);
        /* the victim is the oldest (of its link, if the creating link is
         * at its cap) once the lost one is put back: the model is then the
         * table as ct_create() found it when it needed a slot */
        model[mcount++] = lost;
        v = m_victim(now, link, &by_link);
        diff_check(v == (int)mcount - 1, "wrong eviction victim", op);
        diff_check(!by_link || lost.link == link, "other link's entry", op);
        mcount--;
        if (by_link)
            m_ev_link++;
        else
            m_ev_full++;
    }
    return gone;
}

static bool keep_even(void *ctx, const struct ct_entry *e)
{
    (void)ctx;
    return e->orig.sport % 2 == 0;
}

static struct ct_key rand_key(void)
{
    static const uint8_t protos[] = {IPPROTO_TCP_, IPPROTO_TCP_,  IPPROTO_UDP_,
                                     IPPROTO_UDP_, IPPROTO_ICMP_, 47};
    uint8_t p = protos[rnd_below(sizeof protos)];
    uint32_t src = CLIENT + rnd_below(5);
    uint32_t dst = REMOTE + rnd_below(4);

    if (p == 47)
        return K(p, src, dst, 0, 0);
    if (p == IPPROTO_ICMP_)
        return K(p, src, dst, (uint16_t)(1030 + rnd_below(8)), 0);
    return K(p, src, dst, (uint16_t)(1030 + rnd_below(8)),
             (uint16_t)(80 + rnd_below(2)));
}

static void diff_create(struct ct *t, uint64_t now, unsigned op)
{
    struct ct_key k = rand_key(), r;
    uint16_t link = (uint16_t)(1 + rnd_below(3));
    struct ct_entry *e = NULL;
    int mi = -1, rc, kept_taken, free_ports = 0;
    unsigned before;

    /* an expired entry with this original key is always reaped first */
    for (unsigned i = 0; i < mcount; i++) {
        if (!key_eq(&model[i].orig, &k))
            continue;
        if (m_expired(&model[i], now))
            m_del(i);
        else
            mi = (int)i;
        break;
    }
    r = K(k.proto, k.dst, NAT, k.dport, k.sport);
    kept_taken = m_find(&r, now, NULL) >= 0;
    for (uint16_t p = 1024; p <= 1039; p++) {
        r.dport = p;
        free_ports += m_find(&r, now, NULL) < 0;
    }
    rc = ct_create(t, &k, NAT, link, now, &e);
    if (mi >= 0) {
        diff_check(rc == -QW_EEXIST && e != NULL && m_same(&model[mi], e),
                   "expected EEXIST", op);
        m_reconcile(t, now, false, -1, op);
        return;
    }
    if (rc < 0) {
        diff_check(rc == -QW_ENOSPC && kept_taken, "create failed", op);
        m_reconcile(t, now, false, -1, op);
        return;
    }
    diff_check(!kept_taken || (k.proto != 47 && free_ports > 0),
               "created without a free port", op);
    diff_check(kept_taken ? (e->reply.dport >= 1024 && e->reply.dport <= 1039)
                          : e->reply.dport == k.sport,
               "wrong NAT port", op);
    before = mcount;
    m_reconcile(t, now, before >= M_CAP || m_link_count(link) >= m_link_cap,
                link, op);
    model[mcount] = (struct mentry){
        .orig = k,
        .reply = e->reply,
        .link = link,
        .state = k.proto == IPPROTO_TCP_ ? CT_SYN_SENT : CT_NONE,
        .touch = ++mseq};
    model[mcount].expires = now + S(m_timeout(&model[mcount]));
    diff_check(m_same(&model[mcount], e), "new entry differs", op);
    mcount++;
}

static void diff_packet(struct ct *t, uint64_t now, unsigned op)
{
    static const uint8_t fl[] = {SYN,       SYN | ACK, ACK, ACK, ACK,
                                 FIN | ACK, FIN,       RST, 0};
    unsigned i;
    int d = (int)rnd_below(2), dir = -1, want_dir = -1;
    struct ct_key k;
    struct ct_entry *e;

    if (mcount == 0)
        return;
    i = rnd_below(mcount);
    k = d ? model[i].reply : model[i].orig;
    e = rnd_below(2) ? ct_lookup(t, &k, now, &dir)
                     : (dir = d, ct_lookup_dir(t, &k, d, now));
    if (m_expired(&model[i], now)) {
        diff_check(e == NULL, "expired entry returned", op);
        m_del(i);
        return;
    }
    m_find(&k, now, &want_dir);
    diff_check(e != NULL && dir == want_dir && m_same(&model[i], e), "lookup",
               op);
    if (e == NULL)
        return;
    if (rnd_below(8) == 0) {
        ct_remove(t, e);
        m_del(i);
        return;
    }
    {
        uint8_t f = fl[rnd_below(sizeof fl)];

        ct_update(t, e, dir, f, now);
        if (k.proto == IPPROTO_TCP_)
            m_tcp(&model[i], dir, f);
        if (dir)
            model[i].flags |= CT_F_REPLIED;
        model[i].touch = ++mseq;
        model[i].expires = now + S(m_timeout(&model[i]));
        diff_check(m_same(&model[i], e), "after update", op);
    }
}

static void diff_absent(struct ct *t, uint64_t now, unsigned op)
{
    struct ct_key k = rand_key();
    int dir, mi;
    struct ct_entry *e;

    if (rnd_below(2)) /* a reply-side key */
        k = K(k.proto, k.dst, NAT, k.dport, (uint16_t)(1024 + rnd_below(16)));
    mi = m_find(&k, 0, NULL);
    e = ct_lookup(t, &k, now, &dir);
    if (mi >= 0 && m_expired(&model[mi], now)) {
        diff_check(e == NULL, "expired found", op);
        m_del((unsigned)mi);
    } else if (mi >= 0) {
        diff_check(e != NULL && m_same(&model[mi], e), "key lookup", op);
    } else {
        diff_check(e == NULL, "phantom entry", op);
    }
}

TEST(differential_vs_model)
{
    /* three links of up to 20 entries in a table of 48: links reach
     * their cap and the table fills up, so both eviction rules run */
    struct ct *t = mkl(M_CAP, M_LINKS, 20);
    uint64_t now = T0;
    unsigned ops = 250000, checks_failed = 0;
    const struct ct_stats *st;

    mcount = 0;
    mseq = 0;
    diff_fail = 0;
    m_link_cap = 20;
    m_ev_link = m_ev_full = 0;
    CHECK_EQ(ct_set_port_range(t, 1024, 1039), 0);
    for (unsigned op = 0; op < ops; op++) {
        unsigned r = rnd_below(100);

        if (r < 5)
            now += S(rnd_below(r == 0 ? 200 : 10));
        else if (r < 40)
            diff_create(t, now, op);
        else if (r < 75)
            diff_packet(t, now, op);
        else if (r < 90)
            diff_absent(t, now, op);
        else if (r < 97) {
            unsigned n = ct_expire(t, now, 1 + rnd_below(M_CAP));

            diff_check(m_reconcile(t, now, false, -1, op) == n, "expire count",
                       op);
        } else if (r < 98) {
            uint16_t link = (uint16_t)(1 + rnd_below(3));
            unsigned n = 0;

            for (unsigned i = 0; i < mcount;)
                if (model[i].link == link) {
                    m_del(i);
                    n++;
                } else {
                    i++;
                }
            diff_check(ct_flush_link(t, link) == n, "flush_link", op);
        } else if (r < 99) {
            uint16_t link = (uint16_t)(1 + rnd_below(3));
            unsigned n = 0;

            for (unsigned i = 0; i < mcount;)
                if (model[i].link == link && model[i].orig.sport % 2) {
                    m_del(i);
                    n++;
                } else {
                    i++;
                }
            diff_check(ct_recheck_link(t, link, keep_even, NULL) == n,
                       "recheck", op);
        } else if (rnd_below(4) == 0) {
            /* a new cap: lowering it removes nothing */
            m_link_cap = 8 + rnd_below(40);
            ct_set_link_cap(t, m_link_cap);
        } else {
            now += S(1);
        }
        if (ct_count(t) != mcount)
            diff_check(false, "count", op);
        for (int l = 0; l < M_LINKS; l++)
            if (ct_link_count(t, (uint16_t)l) != m_link_count(l))
                diff_check(false, "link count", op);
        if ((op & 15) == 0 && ct_check(t) != 0)
            diff_check(false, "invariants", op);
    }
    checks_failed = diff_fail;
    CHECK_EQ(checks_failed, 0);
    CHECK_EQ(ct_check(t), 0);
    st = ct_get_stats(t);
    CHECK_EQ(st->evicted_link_cap, m_ev_link);
    CHECK_EQ(st->evicted_table_full, m_ev_full);
    CHECK_EQ(st->evicted_self, 0);
    CHECK_EQ(st->evicted,
             st->evicted_link_cap + st->evicted_table_full + st->evicted_self);
    printf("# differential: evicted at link cap %llu, table full %llu\n",
           (unsigned long long)m_ev_link, (unsigned long long)m_ev_full);
    printf("# differential: %u ops, created %llu, evicted %llu, expired "
           "%llu, port failures %llu, high water %u\n",
           ops, (unsigned long long)ct_get_stats(t)->created,
           (unsigned long long)ct_get_stats(t)->evicted,
           (unsigned long long)ct_get_stats(t)->expired,
           (unsigned long long)ct_get_stats(t)->port_fail,
           ct_get_stats(t)->high_water);
    /* the run must have exercised the interesting paths */
    CHECK(ct_get_stats(t)->evicted > 100);
    CHECK(m_ev_link > 100);
    CHECK(m_ev_full > 100);
    CHECK(ct_get_stats(t)->expired > 100);
    CHECK(ct_get_stats(t)->port_fail > 100);
    rm(t);
}

/* ------------------------------------------------------------------ */
/* Property: the reply key maps back to exactly its entry and restores  */
/* the original addresses and ports.                                    */

TEST(nat_round_trip_property)
{
    const unsigned cap = 20000;
    struct ct *t = mk(cap);
    struct ct_key *flows = calloc(cap, sizeof *flows);
    unsigned made = 0, bad = 0, kept = 0;
    static const uint8_t protos[] = {IPPROTO_TCP_, IPPROTO_UDP_, IPPROTO_ICMP_};

    for (unsigned i = 0; i < cap; i++) {
        uint8_t p = protos[rnd_below(3)];
        unsigned c = rnd_below(8); /* client c on link c + 1 */
        /* few clients, remotes and ports: many port collisions */
        struct ct_key k =
            K(p, CLIENT + c, REMOTE + rnd_below(16),
              (uint16_t)(30000 + rnd_below(64)),
              p == IPPROTO_ICMP_ ? 0 : (uint16_t)(443 + rnd_below(2)));
        struct ct_entry *e;

        if (ct_create(t, &k, NAT + rnd_below(2), (uint16_t)(c + 1), T0, &e) ==
            0)
            flows[made++] = k;
    }
    CHECK(made > cap / 4);
    CHECK_EQ(ct_count(t), made);
    CHECK_EQ(ct_get_stats(t)->evicted, 0); /* 8 links stay below cap / 2 */
    for (unsigned i = 0; i < made; i++) {
        int dir = -1;
        struct ct_entry *e = ct_lookup(t, &flows[i], T0, &dir);
        struct ct_key out, back, restored;
        struct ct_entry *r;

        if (e == NULL || dir != 0) {
            bad++;
            continue;
        }
        kept += e->reply.dport == flows[i].sport;
        /* the client's packet as it leaves: src := reply.dst, sport :=
         * reply.dport; the remote's answer swaps it */
        out = flows[i];
        out.src = e->reply.dst;
        out.sport = e->reply.dport;
        back = K(out.proto, out.dst, out.src, out.dport, out.sport);
        r = ct_lookup(t, &back, T0, &dir);
        if (r != e || dir != 1 || !key_eq(&back, &e->reply)) {
            bad++;
            continue;
        }
        /* reverse NAT restores the client's view of the answer */
        restored = back;
        restored.dst = r->orig.src;
        restored.dport = r->orig.sport;
        if (restored.src != flows[i].dst || restored.sport != flows[i].dport ||
            restored.dst != flows[i].src || restored.dport != flows[i].sport)
            bad++;
    }
    CHECK_EQ(bad, 0);
    CHECK(kept > 0 && kept < made); /* both kept and remapped ports seen */
    printf("# round trip: %u flows, %u kept their port\n", made, kept);
    CHECK_EQ(ct_check(t), 0);
    free(flows);
    rm(t);
}

int main(void)
{
    RUN(sizes_and_init);
    RUN(port_preserved);
    RUN(same_port_other_remote_kept);
    RUN(collision_random_port);
    RUN(exists);
    RUN(exhaustion_no_hang);
    RUN(other_proto_address_only);
    RUN(icmp_query_id);
    RUN(udp_replied);
    RUN(tcp_full_lifecycle);
    RUN(tcp_each_state_expires);
    RUN(lru_evicts_unreplied_first);
    RUN(lru_expired_replied_before_live_unreplied);
    RUN(recheck_and_flush);
    RUN(self_entries);
    RUN(self_entries_survive_flood);
    RUN(chain_bound);
    RUN(expire_bounded_batches);
    RUN(reply_key_of_expired_entry_reused);
    RUN(link_cap_flood_evicts_own);
    RUN(link_cap_expired_answered_first);
    RUN(link_cap_table_full_uses_global_order);
    RUN(link_cap_out_of_range_links_share);
    RUN(link_cap_lowered_recycles);
    RUN(link_cap_big_table);
    RUN(tcp_closing_and_reopen);
    RUN(differential_vs_model);
    RUN(nat_round_trip_property);
    return test_summary();
}
