/*
 * test_frag.c: IPv4 reassembly and refragmentation (core/frag.c).
 */
#include <stdlib.h>

#include "frag.h"
#include "qwall.h"
#include "test.h"
#include "wire.h"

#define SEC 1000000000ull

/* A UDP datagram 10.137.0.10:40000 -> 8.8.8.8:53, id 0x1234, 16 bytes of
 * data "A".."P", whole and cut in two (16 + 8 bytes of IP payload). */
static const char whole_hex[] =
    "45 00 00 2c 12 34 00 00 40 11 4d eb 0a 89 00 0a 08 08 08 08"
    "9c 40 00 35 00 18 00 00 41 42 43 44 45 46 47 48 49 4a 4b 4c"
    "4d 4e 4f 50";
static const char f1_hex[] =
    "45 00 00 24 12 34 20 00 40 11 2d f3 0a 89 00 0a 08 08 08 08"
    "9c 40 00 35 00 18 00 00 41 42 43 44 45 46 47 48";
static const char f2_hex[] =
    "45 00 00 1c 12 34 00 02 40 11 4d f9 0a 89 00 0a 08 08 08 08"
    "49 4a 4b 4c 4d 4e 4f 50";

struct hook_log {
    unsigned calls, frags;
    enum qw_drop last;
    unsigned link;
};

static void hook(void *ctx, unsigned link, enum qw_drop why, unsigned n)
{
    struct hook_log *h = ctx;

    h->calls++;
    h->frags += n;
    h->last = why;
    h->link = link;
}

static struct frag *mk(unsigned nlinks, uint32_t bytes, struct hook_log *h)
{
    size_t sz = frag_mem_size(nlinks, bytes);
    struct frag *f = aligned_alloc(16, (sz + 15) & ~(size_t)15);

    frag_init(f, nlinks, bytes);
    if (h != NULL) {
        memset(h, 0, sizeof(*h));
        frag_set_drop_hook(f, hook, h);
    }
    return f;
}

static bool ip_csum_ok(const uint8_t *ip)
{
    return qw_csum_fold(qw_csum_add(0, ip, (ip[0] & 15u) * 4)) == 0;
}

/*
 * Build a fragment of a test datagram: header (20 bytes + opts) with id,
 * proto 17, src/dst as in the fixtures, offset off (bytes), MF, and the
 * payload bytes pay[off .. off + n).
 */
static size_t mkfrag(uint8_t *b, uint16_t id, uint32_t off, bool mf,
                     const uint8_t *pay, uint32_t n, const uint8_t *opts,
                     unsigned olen)
{
    unsigned h = 20 + olen;

    memset(b, 0, h);
    b[0] = (uint8_t)(0x40 | h / 4);
    qw_put16(b + 2, (uint16_t)(h + n));
    qw_put16(b + 4, id);
    qw_put16(b + 6, (uint16_t)(off / 8 | (mf ? IP4_FLAG_MF : 0)));
    b[8] = 64;
    b[9] = 17;
    qw_put32(b + 12, 0x0a89000a);
    qw_put32(b + 16, 0x08080808);
    if (olen)
        memcpy(b + 20, opts, olen);
    qw_put16(b + 10, qw_csum_fold(qw_csum_add(0, b, h)));
    memcpy(b + h, pay + off, n);
    return h + n;
}

static uint8_t pattern[65536];

static void fill_pattern(void)
{
    for (size_t i = 0; i < sizeof(pattern); i++)
        pattern[i] = (uint8_t)(i * 7 + (i >> 8));
}

static int feed(struct frag *f, unsigned link, const uint8_t *p, size_t n,
                uint64_t now, const uint8_t **out, size_t *outlen,
                enum qw_drop *why)
{
    return frag_input(f, link, p, n, now, out, outlen, why);
}

TEST(in_order_fixture)
{
    uint8_t w[64], a[64], b[64];
    int nw = test_hex(whole_hex, w, sizeof(w));
    int na = test_hex(f1_hex, a, sizeof(a));
    int nb = test_hex(f2_hex, b, sizeof(b));
    struct frag *f = mk(2, 64 * 1024, NULL);
    const uint8_t *out = NULL;
    size_t outlen = 0;
    enum qw_drop why;

    CHECK_EQ(nw, 44);
    CHECK(ip_csum_ok(a) && ip_csum_ok(b) && ip_csum_ok(w));
    CHECK_EQ(feed(f, 1, a, na, 0, &out, &outlen, &why), FRAG_PENDING);
    CHECK_EQ(frag_link_pending(f, 1), 1);
    CHECK_EQ(frag_link_used(f, 1), FRAG_BLOCK);
    CHECK_EQ(feed(f, 1, b, nb, 1, &out, &outlen, &why), FRAG_DONE);
    CHECK_EQ(outlen, 44);
    CHECK_MEM(out, w, 44);
    CHECK_EQ(frag_link_pending(f, 1), 0);
    CHECK_EQ(frag_link_used(f, 1), 0);
    free(f);
}

TEST(out_of_order_fixture)
{
    uint8_t w[64], a[64], b[64];
    int nw = test_hex(whole_hex, w, sizeof(w));
    int na = test_hex(f1_hex, a, sizeof(a));
    int nb = test_hex(f2_hex, b, sizeof(b));
    struct frag *f = mk(2, 64 * 1024, NULL);
    const uint8_t *out = NULL;
    size_t outlen = 0;
    enum qw_drop why;

    CHECK_EQ(feed(f, 0, b, nb, 0, &out, &outlen, &why), FRAG_PENDING);
    CHECK_EQ(feed(f, 0, a, na, 0, &out, &outlen, &why), FRAG_DONE);
    CHECK_EQ(outlen, (size_t)nw);
    CHECK_MEM(out, w, 44);
    CHECK_EQ(frag_link_used(f, 0), 0);
    free(f);
}

TEST(trailing_bytes_ignored)
{
    uint8_t w[64], a[80], b[64];
    int na = test_hex(f1_hex, a, sizeof(a));
    int nb = test_hex(f2_hex, b, sizeof(b));
    struct frag *f = mk(1, 0, NULL);
    const uint8_t *out = NULL;
    size_t outlen = 0;
    enum qw_drop why;

    test_hex(whole_hex, w, sizeof(w));
    memset(a + na, 0xee, 10); /* Ethernet padding after the datagram */
    CHECK_EQ(feed(f, 0, a, na + 10, 0, &out, &outlen, &why), FRAG_PENDING);
    CHECK_EQ(feed(f, 0, b, nb, 0, &out, &outlen, &why), FRAG_DONE);
    CHECK_MEM(out, w, 44);
    free(f);
}

TEST(unfragmented_passes_through)
{
    uint8_t w[64];
    int nw = test_hex(whole_hex, w, sizeof(w));
    struct frag *f = mk(1, 0, NULL);
    const uint8_t *out = NULL;
    size_t outlen = 0;
    enum qw_drop why;

    CHECK_EQ(feed(f, 0, w, nw, 0, &out, &outlen, &why), FRAG_DONE);
    CHECK(out == w);
    CHECK_EQ(outlen, 44);
    CHECK_EQ(frag_link_pending(f, 0), 0);
    free(f);
}

TEST(duplicates_absorbed)
{
    uint8_t w[64], a[64], b[64];
    int na = test_hex(f1_hex, a, sizeof(a));
    int nb = test_hex(f2_hex, b, sizeof(b));
    struct frag *f = mk(1, 0, NULL);
    const uint8_t *out = NULL;
    size_t outlen = 0;
    enum qw_drop why;

    test_hex(whole_hex, w, sizeof(w));
    CHECK_EQ(feed(f, 0, a, na, 0, &out, &outlen, &why), FRAG_PENDING);
    /* Same placement, different bytes: the first copy wins. */
    a[30] ^= 0xff;
    a[10] = a[11] = 0;
    qw_put16(a + 10, qw_csum_fold(qw_csum_add(0, a, 20)));
    CHECK_EQ(feed(f, 0, a, na, 0, &out, &outlen, &why), FRAG_PENDING);
    CHECK_EQ(frag_link_used(f, 0), FRAG_BLOCK);
    CHECK_EQ(feed(f, 0, b, nb, 0, &out, &outlen, &why), FRAG_DONE);
    CHECK_MEM(out, w, 44);
    free(f);
}

/* Stored: [16, 32) of a datagram; each new fragment overlaps it. */
TEST(overlaps_of_every_shape)
{
    static const struct {
        uint32_t off, len;
        bool mf;
    } shapes[] = {
        {16, 24, true}, /* same start, longer */
        {16, 8, true},  /* same start, shorter */
        {24, 16, true}, /* starts inside, ends after */
        {8, 16, true},  /* starts before, ends inside */
        {8, 32, true},  /* contains */
        {0, 40, true},  /* contains, from 0 */
        {24, 8, true},  /* same end, starts inside */
        {8, 24, true},  /* same end, starts before */
        {24, 3, false}, /* last fragment inside */
        {16, 5, false}, /* last fragment, same start */
    };
    uint8_t p[256];
    struct hook_log h;
    struct frag *f = mk(1, 0, &h);
    const uint8_t *out;
    size_t outlen, n;
    enum qw_drop why;

    fill_pattern();
    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
        n = mkfrag(p, 7, 16, true, pattern, 16, NULL, 0);
        CHECK_EQ(feed(f, 0, p, n, 0, &out, &outlen, &why), FRAG_PENDING);
        n = mkfrag(p, 7, shapes[i].off, shapes[i].mf, pattern, shapes[i].len,
                   NULL, 0);
        CHECK_EQ(feed(f, 0, p, n, 0, &out, &outlen, &why), FRAG_DROP);
        CHECK_EQ(why, QW_DROP_FRAG_OVERLAP);
        CHECK_EQ(frag_link_pending(f, 0), 0);
        CHECK_EQ(frag_link_used(f, 0), 0);
        CHECK_EQ(h.last, QW_DROP_FRAG_OVERLAP);
        CHECK_EQ(h.calls, i + 1);
    }
    CHECK_EQ(h.frags, sizeof(shapes) / sizeof(shapes[0]));

    /* Adjacent on both sides is not an overlap, and completes. */
    n = mkfrag(p, 8, 16, true, pattern, 16, NULL, 0);
    CHECK_EQ(feed(f, 0, p, n, 0, &out, &outlen, &why), FRAG_PENDING);
    n = mkfrag(p, 8, 32, false, pattern, 5, NULL, 0);
    CHECK_EQ(feed(f, 0, p, n, 0, &out, &outlen, &why), FRAG_PENDING);
    n = mkfrag(p, 8, 0, true, pattern, 16, NULL, 0);
    CHECK_EQ(feed(f, 0, p, n, 0, &out, &outlen, &why), FRAG_DONE);
    CHECK_EQ(outlen, 20 + 37);
    CHECK_MEM(out + 20, pattern, 37);
    free(f);
}

TEST(overlap_with_a_neighbour_not_first)
{
    uint8_t p[256];
    struct frag *f = mk(1, 0, NULL);
    const uint8_t *out;
    size_t outlen, n;
    enum qw_drop why;

    fill_pattern();
    n = mkfrag(p, 9, 0, true, pattern, 8, NULL, 0);
    CHECK_EQ(feed(f, 0, p, n, 0, &out, &outlen, &why), FRAG_PENDING);
    n = mkfrag(p, 9, 32, true, pattern, 8, NULL, 0);
    CHECK_EQ(feed(f, 0, p, n, 0, &out, &outlen, &why), FRAG_PENDING);
    n = mkfrag(p, 9, 64, false, pattern, 8, NULL, 0);
    CHECK_EQ(feed(f, 0, p, n, 0, &out, &outlen, &why), FRAG_PENDING);
    /* [24, 40) straddles the middle record only */
    n = mkfrag(p, 9, 24, true, pattern, 16, NULL, 0);
    CHECK_EQ(feed(f, 0, p, n, 0, &out, &outlen, &why), FRAG_DROP);
    CHECK_EQ(why, QW_DROP_FRAG_OVERLAP);
    CHECK_EQ(frag_link_used(f, 0), 0);
    free(f);
}

TEST(bad_fragments)
{
    uint8_t p[256];
    struct hook_log h;
    struct frag *f = mk(1, 0, &h);
    const uint8_t *out;
    size_t outlen, n;
    enum qw_drop why;

    fill_pattern();
    /* non-last fragment, payload not a multiple of 8 */
    n = mkfrag(p, 1, 0, true, pattern, 12, NULL, 0);
    CHECK_EQ(feed(f, 0, p, n, 0, &out, &outlen, &why), FRAG_DROP);
    CHECK_EQ(why, QW_DROP_FRAG_BAD);
    /* empty payload */
    n = mkfrag(p, 1, 8, true, pattern, 0, NULL, 0);
    CHECK_EQ(feed(f, 0, p, n, 0, &out, &outlen, &why), FRAG_DROP);
    CHECK_EQ(why, QW_DROP_FRAG_BAD);
    /* truncated: total length beyond the buffer */
    n = mkfrag(p, 1, 8, true, pattern, 16, NULL, 0);
    CHECK_EQ(feed(f, 0, p, n - 1, 0, &out, &outlen, &why), FRAG_DROP);
    CHECK_EQ(why, QW_DROP_FRAG_BAD);
    /* too short for a header, bad version, bad IHL */
    CHECK_EQ(feed(f, 0, p, 19, 0, &out, &outlen, &why), FRAG_DROP);
    p[0] = 0x65;
    CHECK_EQ(feed(f, 0, p, n, 0, &out, &outlen, &why), FRAG_DROP);
    p[0] = 0x44;
    CHECK_EQ(feed(f, 0, p, n, 0, &out, &outlen, &why), FRAG_DROP);
    CHECK_EQ(why, QW_DROP_FRAG_BAD);
    /* a link that does not exist */
    n = mkfrag(p, 1, 8, true, pattern, 16, NULL, 0);
    CHECK_EQ(feed(f, 5, p, n, 0, &out, &outlen, &why), FRAG_DROP);
    CHECK_EQ(frag_link_pending(f, 0), 0);
    CHECK_EQ(h.calls, 0);

    /* conflicting last-fragment lengths: the whole datagram goes */
    n = mkfrag(p, 2, 0, true, pattern, 8, NULL, 0);
    CHECK_EQ(feed(f, 0, p, n, 0, &out, &outlen, &why), FRAG_PENDING);
    n = mkfrag(p, 2, 16, false, pattern, 8, NULL, 0);
    CHECK_EQ(feed(f, 0, p, n, 0, &out, &outlen, &why), FRAG_PENDING);
    n = mkfrag(p, 2, 32, false, pattern, 8, NULL, 0);
    CHECK_EQ(feed(f, 0, p, n, 0, &out, &outlen, &why), FRAG_DROP);
    CHECK_EQ(why, QW_DROP_FRAG_BAD);
    CHECK_EQ(frag_link_pending(f, 0), 0);
    CHECK_EQ(h.frags, 2);

    /* data beyond a known end */
    n = mkfrag(p, 3, 8, false, pattern, 8, NULL, 0);
    CHECK_EQ(feed(f, 0, p, n, 0, &out, &outlen, &why), FRAG_PENDING);
    n = mkfrag(p, 3, 16, true, pattern, 8, NULL, 0);
    CHECK_EQ(feed(f, 0, p, n, 0, &out, &outlen, &why), FRAG_DROP);
    CHECK_EQ(why, QW_DROP_FRAG_BAD);
    /* a last fragment ending before stored data */
    n = mkfrag(p, 4, 16, true, pattern, 8, NULL, 0);
    CHECK_EQ(feed(f, 0, p, n, 0, &out, &outlen, &why), FRAG_PENDING);
    n = mkfrag(p, 4, 8, false, pattern, 4, NULL, 0);
    CHECK_EQ(feed(f, 0, p, n, 0, &out, &outlen, &why), FRAG_DROP);
    CHECK_EQ(why, QW_DROP_FRAG_BAD);
    CHECK_EQ(frag_link_used(f, 0), 0);
    free(f);
}

TEST(too_many_fragments)
{
    uint8_t p[256];
    struct hook_log h;
    struct frag *f = mk(1, 64 * 1024, &h);
    const uint8_t *out;
    size_t outlen, n;
    enum qw_drop why;
    unsigned i;

    fill_pattern();
    for (i = 0; i < FRAG_MAX_FRAGS; i++) {
        n = mkfrag(p, 5, 8 + i * 8, true, pattern, 8, NULL, 0);
        CHECK_EQ(feed(f, 0, p, n, 0, &out, &outlen, &why), FRAG_PENDING);
    }
    CHECK_EQ(frag_link_used(f, 0), FRAG_MAX_FRAGS * FRAG_BLOCK);
    n = mkfrag(p, 5, 8 + i * 8, true, pattern, 8, NULL, 0);
    CHECK_EQ(feed(f, 0, p, n, 0, &out, &outlen, &why), FRAG_DROP);
    CHECK_EQ(why, QW_DROP_FRAG_BAD);
    CHECK_EQ(h.frags, FRAG_MAX_FRAGS);
    CHECK_EQ(frag_link_used(f, 0), 0);
    free(f);
}

TEST(boundary_65535)
{
    static uint8_t p[65536 + 64];
    uint8_t opts[4] = {0x94, 0x04, 0x00, 0x00};
    struct frag *f = mk(1, 0, NULL);
    const uint8_t *out;
    size_t outlen, n;
    enum qw_drop why;

    fill_pattern();
    /* offset 65480 + 35 bytes + 20 of header = 65535: acceptable */
    n = mkfrag(p, 6, 65480, false, pattern, 35, NULL, 0);
    CHECK_EQ(feed(f, 0, p, n, 0, &out, &outlen, &why), FRAG_PENDING);
    frag_flush_link(f, 0);
    /* one byte more is a ping of death */
    n = mkfrag(p, 6, 65480, false, pattern, 36, NULL, 0);
    CHECK_EQ(feed(f, 0, p, n, 0, &out, &outlen, &why), FRAG_DROP);
    CHECK_EQ(why, QW_DROP_FRAG_TOO_BIG);
    /* header options count: 24 + 65480 + 32 > 65535 */
    n = mkfrag(p, 6, 65480, false, pattern, 32, opts, 4);
    CHECK_EQ(feed(f, 0, p, n, 0, &out, &outlen, &why), FRAG_DROP);
    CHECK_EQ(why, QW_DROP_FRAG_TOO_BIG);
    CHECK_EQ(frag_link_pending(f, 0), 0);
    free(f);
}

/* The last fragment fits with its 20-byte header, but the first fragment
 * carries options, so the reassembled datagram would exceed 65535. */
TEST(boundary_first_header_options)
{
    static uint8_t p[65536 + 64];
    uint8_t opts[4] = {0x94, 0x04, 0x00, 0x00};
    struct hook_log h;
    struct frag *f = mk(1, 128 * 1024, &h);
    const uint8_t *out;
    size_t outlen, n;
    enum qw_drop why;
    uint32_t off;

    fill_pattern();
    n = mkfrag(p, 6, 0, true, pattern, 1480, opts, 4);
    CHECK_EQ(feed(f, 0, p, n, 0, &out, &outlen, &why), FRAG_PENDING);
    for (off = 1480; off < 65480; off += 1480) {
        uint32_t len = 65480 - off < 1480 ? 65480 - off : 1480;
        n = mkfrag(p, 6, off, true, pattern, len, NULL, 0);
        CHECK(feed(f, 0, p, n, 0, &out, &outlen, &why) == FRAG_PENDING);
    }
    n = mkfrag(p, 6, 65480, false, pattern, 35, NULL, 0);
    CHECK_EQ(feed(f, 0, p, n, 0, &out, &outlen, &why), FRAG_DROP);
    CHECK_EQ(why, QW_DROP_FRAG_TOO_BIG);
    CHECK_EQ(h.last, QW_DROP_FRAG_TOO_BIG);
    CHECK_EQ(frag_link_used(f, 0), 0);
    free(f);
}

TEST(largest_datagram_round_trip)
{
    static uint8_t big[65535], frag[1500];
    struct frag_split it;
    struct frag *f = mk(1, 128 * 1024, NULL);
    const uint8_t *out = NULL;
    size_t outlen = 0, n;
    enum qw_drop why;
    int r = FRAG_PENDING;
    unsigned count = 0;

    fill_pattern();
    n = mkfrag(big, 0x4242, 0, false, pattern, 65535 - 20, NULL, 0);
    CHECK_EQ(n, 65535);
    CHECK_EQ(frag_split_init(&it, big, n, 1500), 0);
    while ((n = frag_split_next(&it, frag, sizeof(frag))) > 0) {
        CHECK(n <= 1500);
        r = feed(f, 0, frag, n, 0, &out, &outlen, &why);
        count++;
    }
    CHECK_EQ(count, 45);
    CHECK_EQ(r, FRAG_DONE);
    CHECK_EQ(outlen, 65535);
    CHECK_MEM(out, big, 65535);
    CHECK_EQ(frag_link_used(f, 0), 0);
    free(f);
}

TEST(timeout)
{
    uint8_t a[64], b[64];
    int na = test_hex(f1_hex, a, sizeof(a));
    int nb = test_hex(f2_hex, b, sizeof(b));
    struct hook_log h;
    struct frag *f = mk(3, 0, &h);
    const uint8_t *out;
    size_t outlen;
    enum qw_drop why;
    uint64_t t0 = 1000 * SEC;

    CHECK_EQ(frag_next_deadline(f), UINT64_MAX);
    CHECK_EQ(feed(f, 2, a, na, t0, &out, &outlen, &why), FRAG_PENDING);
    CHECK_EQ(frag_next_deadline(f), t0 + FRAG_TIMEOUT_NS);
    CHECK_EQ(frag_expire(f, t0 + FRAG_TIMEOUT_NS - 1), 0);
    CHECK_EQ(frag_link_pending(f, 2), 1);
    CHECK_EQ(frag_expire(f, t0 + FRAG_TIMEOUT_NS), 1);
    CHECK_EQ(frag_link_pending(f, 2), 0);
    CHECK_EQ(frag_link_used(f, 2), 0);
    CHECK_EQ(h.last, QW_DROP_FRAG_TIMEOUT);
    CHECK_EQ(h.link, 2);
    CHECK_EQ(h.frags, 1);

    /* Expiry also happens when the link sees traffic: the late second
     * half starts a new datagram instead of completing the old one. */
    CHECK_EQ(feed(f, 2, a, na, t0, &out, &outlen, &why), FRAG_PENDING);
    CHECK_EQ(feed(f, 2, b, nb, t0 + 31 * SEC, &out, &outlen, &why),
             FRAG_PENDING);
    CHECK_EQ(h.calls, 2);
    CHECK_EQ(frag_link_pending(f, 2), 1);
    CHECK_EQ(frag_link_used(f, 2), FRAG_BLOCK);
    free(f);
}

TEST(link_cap_evicts_oldest)
{
    uint8_t p[1600];
    struct hook_log h;
    /* 4 KiB = 32 blocks; a 1480-byte fragment takes 12 */
    struct frag *f = mk(2, 4096, &h);
    const uint8_t *out;
    size_t outlen, n;
    enum qw_drop why;

    fill_pattern();
    n = mkfrag(p, 100, 0, true, pattern, 1480, NULL, 0);
    CHECK_EQ(feed(f, 1, p, n, 0, &out, &outlen, &why), FRAG_PENDING);
    n = mkfrag(p, 101, 0, true, pattern, 1480, NULL, 0);
    CHECK_EQ(feed(f, 1, p, n, 1, &out, &outlen, &why), FRAG_PENDING);
    CHECK_EQ(frag_link_used(f, 1), 24 * FRAG_BLOCK);
    /* another link is not affected by this one */
    n = mkfrag(p, 100, 0, true, pattern, 1480, NULL, 0);
    CHECK_EQ(feed(f, 0, p, n, 2, &out, &outlen, &why), FRAG_PENDING);
    n = mkfrag(p, 102, 0, true, pattern, 1480, NULL, 0);
    CHECK_EQ(feed(f, 1, p, n, 3, &out, &outlen, &why), FRAG_PENDING);
    CHECK_EQ(h.calls, 1);
    CHECK_EQ(h.last, QW_DROP_FRAG_NO_MEM);
    CHECK_EQ(h.link, 1);
    CHECK_EQ(frag_link_used(f, 1), 24 * FRAG_BLOCK);
    CHECK_EQ(frag_link_pending(f, 1), 2);
    CHECK_EQ(frag_link_pending(f, 0), 1);
    /* id 100 was the victim: its second half now starts afresh */
    n = mkfrag(p, 100, 1480, false, pattern, 100, NULL, 0);
    CHECK_EQ(feed(f, 1, p, n, 4, &out, &outlen, &why), FRAG_PENDING);
    /* id 101 is intact and completes */
    n = mkfrag(p, 101, 1480, false, pattern, 100, NULL, 0);
    CHECK_EQ(feed(f, 1, p, n, 5, &out, &outlen, &why), FRAG_DONE);
    CHECK_EQ(outlen, 20 + 1580);
    CHECK_MEM(out + 20, pattern, 1580);
    /* a datagram bigger than the whole budget cannot be kept */
    frag_flush_link(f, 1);
    CHECK_EQ(frag_link_used(f, 1), 0);
    CHECK_EQ(frag_link_pending(f, 1), 0);
    for (uint32_t off = 0; off < 4 * 1480; off += 1480) {
        n = mkfrag(p, 103, off, true, pattern, 1480, NULL, 0);
        int r = feed(f, 1, p, n, 6, &out, &outlen, &why);
        if (off < 2 * 1480)
            CHECK_EQ(r, FRAG_PENDING);
        else if (off == 2 * 1480)
            CHECK(r == FRAG_DROP && why == QW_DROP_FRAG_NO_MEM);
    }
    CHECK(frag_link_used(f, 1) <= 4096);
    free(f);
}

TEST(too_many_datagrams_evicts_oldest)
{
    uint8_t p[256];
    struct hook_log h;
    struct frag *f = mk(1, 64 * 1024, &h);
    const uint8_t *out;
    size_t outlen, n;
    enum qw_drop why;

    fill_pattern();
    for (unsigned i = 0; i <= FRAG_MAX_DGRAMS; i++) {
        n = mkfrag(p, (uint16_t)(200 + i), 0, true, pattern, 8, NULL, 0);
        CHECK_EQ(feed(f, 0, p, n, i, &out, &outlen, &why), FRAG_PENDING);
    }
    CHECK_EQ(frag_link_pending(f, 0), FRAG_MAX_DGRAMS);
    CHECK_EQ(h.calls, 1);
    CHECK_EQ(h.last, QW_DROP_FRAG_NO_MEM);
    /* the first (id 200) went; the second (201) is still there */
    n = mkfrag(p, 201, 8, false, pattern, 1, NULL, 0);
    CHECK_EQ(feed(f, 0, p, n, 99, &out, &outlen, &why), FRAG_DONE);
    n = mkfrag(p, 200, 8, false, pattern, 1, NULL, 0);
    CHECK_EQ(feed(f, 0, p, n, 99, &out, &outlen, &why), FRAG_PENDING);
    free(f);
}

TEST(keys_do_not_mix)
{
    uint8_t a[64], b[64];
    int na = test_hex(f1_hex, a, sizeof(a));
    int nb = test_hex(f2_hex, b, sizeof(b));
    struct frag *f = mk(2, 0, NULL);
    const uint8_t *out;
    size_t outlen;
    enum qw_drop why;

    CHECK_EQ(feed(f, 0, a, na, 0, &out, &outlen, &why), FRAG_PENDING);
    CHECK_EQ(feed(f, 1, b, nb, 0, &out, &outlen, &why), FRAG_PENDING);
    b[9] = 6; /* proto TCP */
    CHECK_EQ(feed(f, 0, b, nb, 0, &out, &outlen, &why), FRAG_PENDING);
    b[9] = 17;
    b[15] = 11; /* another source */
    CHECK_EQ(feed(f, 0, b, nb, 0, &out, &outlen, &why), FRAG_PENDING);
    b[15] = 10;
    b[5] = 0x35; /* another id */
    CHECK_EQ(feed(f, 0, b, nb, 0, &out, &outlen, &why), FRAG_PENDING);
    b[5] = 0x34;
    b[19] = 4; /* another destination */
    CHECK_EQ(feed(f, 0, b, nb, 0, &out, &outlen, &why), FRAG_PENDING);
    CHECK_EQ(frag_link_pending(f, 0), 5);
    b[19] = 8;
    CHECK_EQ(feed(f, 0, b, nb, 0, &out, &outlen, &why), FRAG_DONE);
    CHECK_EQ(frag_link_pending(f, 0), 4);
    frag_flush_link(f, 0);
    CHECK_EQ(frag_link_pending(f, 0), 0);
    CHECK_EQ(frag_link_used(f, 0), 0);
    CHECK_EQ(frag_link_pending(f, 1), 1);
    free(f);
}

/* A 4000-byte UDP datagram leaving on a 1500-byte link. */
TEST(refragment_4000_udp)
{
    static const char first_hdr_hex[] =
        "45 00 05 dc 00 77 20 00 40 11 00 00 0a 89 00 0a 08 08 08 08";
    uint8_t dgram[4000], fr[3][1500], hdr[20];
    size_t len[3], n;
    struct frag_split it;
    struct frag *f = mk(1, 64 * 1024, NULL);
    const uint8_t *out = NULL;
    size_t outlen = 0;
    enum qw_drop why;
    unsigned k = 0;

    fill_pattern();
    n = mkfrag(dgram, 0x77, 0, false, pattern, 3980, NULL, 0);
    qw_put16(dgram + 20, 40000);
    qw_put16(dgram + 22, 53);
    qw_put16(dgram + 24, 3980);
    CHECK_EQ(n, 4000);
    dgram[10] = dgram[11] = 0;
    qw_put16(dgram + 10, qw_csum_fold(qw_csum_add(0, dgram, 20)));
    CHECK_EQ(frag_split_init(&it, dgram, n, 1500), 0);
    while (k < 3 && (len[k] = frag_split_next(&it, fr[k], 1500)) > 0)
        k++;
    CHECK_EQ(k, 3);
    CHECK_EQ(frag_split_next(&it, fr[0], 1500), 0);
    CHECK_EQ(len[0], 1500);
    CHECK_EQ(len[1], 1500);
    CHECK_EQ(len[2], 20 + 1020);
    /* byte-exact first header, checksum aside */
    test_hex(first_hdr_hex, hdr, sizeof(hdr));
    CHECK_MEM(fr[0], hdr, 10);
    CHECK_MEM(fr[0] + 12, hdr + 12, 8);
    CHECK_EQ(qw_get16(fr[1] + 6), IP4_FLAG_MF | 185);
    CHECK_EQ(qw_get16(fr[2] + 6), 370);
    for (unsigned i = 0; i < 3; i++) {
        CHECK(ip_csum_ok(fr[i]));
        CHECK_MEM(fr[i] + 20, dgram + 20 + i * 1480, len[i] - 20);
    }
    /* reassembly round trip, in reverse order */
    CHECK_EQ(feed(f, 0, fr[2], len[2], 0, &out, &outlen, &why), FRAG_PENDING);
    CHECK_EQ(feed(f, 0, fr[1], len[1], 0, &out, &outlen, &why), FRAG_PENDING);
    CHECK_EQ(feed(f, 0, fr[0], len[0], 0, &out, &outlen, &why), FRAG_DONE);
    CHECK_EQ(outlen, 4000);
    CHECK_MEM(out, dgram, 4000);
    free(f);
}

TEST(refragment_copies_only_copied_options)
{
    /* Router alert (148, copied) + record route (7, not copied) + NOP */
    static const uint8_t opts[12] = {0x94, 0x04, 0x00, 0x00, 0x07, 0x07,
                                     0x04, 0x00, 0x00, 0x00, 0x00, 0x01};
    uint8_t dgram[300], fr[8][100];
    size_t len[8], n;
    struct frag_split it;
    struct frag *f = mk(1, 0, NULL);
    const uint8_t *out = NULL;
    size_t outlen = 0;
    enum qw_drop why;
    unsigned k = 0, pay = 0;
    int r = FRAG_PENDING;

    fill_pattern();
    n = mkfrag(dgram, 0x99, 0, false, pattern, 200, opts, sizeof(opts));
    CHECK_EQ(n, 232);
    CHECK_EQ(frag_split_init(&it, dgram, n, 100), 0);
    while (k < 8 && (len[k] = frag_split_next(&it, fr[k], 100)) > 0)
        k++;
    /* first: 32 + 64, then 24 + 72, then 24 + 64 */
    CHECK_EQ(k, 3);
    CHECK_EQ(len[0], 32 + 64);
    CHECK_EQ(len[1], 24 + 72);
    CHECK_EQ(len[2], 24 + 64);
    CHECK_EQ(fr[0][0], 0x48);
    CHECK_MEM(fr[0] + 20, opts, 12);
    CHECK_EQ(fr[1][0], 0x46);
    CHECK_MEM(fr[1] + 20, opts, 4);
    CHECK_EQ(fr[2][0], 0x46);
    CHECK_MEM(fr[2] + 20, opts, 4);
    for (unsigned i = 0; i < k; i++) {
        unsigned h = (fr[i][0] & 15u) * 4;
        CHECK(ip_csum_ok(fr[i]));
        CHECK_EQ((qw_get16(fr[i] + 6) & IP4_OFF_MASK) * 8, pay);
        CHECK_MEM(fr[i] + h, pattern + pay, len[i] - h);
        pay += (unsigned)(len[i] - h);
        r = feed(f, 0, fr[i], len[i], 0, &out, &outlen, &why);
    }
    CHECK_EQ(pay, 200);
    CHECK_EQ(r, FRAG_DONE);
    CHECK_EQ(outlen, n);
    CHECK_MEM(out, dgram, n);
    free(f);
}

TEST(refragment_malformed_options_stop_copy)
{
    /* copied option, then an option whose length runs past the header */
    static const uint8_t opts[8] = {0x94, 0x04, 0x00, 0x00,
                                    0x83, 0x09, 0x00, 0x00};
    uint8_t dgram[300], fr[100];
    size_t n;
    struct frag_split it;

    fill_pattern();
    n = mkfrag(dgram, 1, 0, false, pattern, 160, opts, sizeof(opts));
    CHECK_EQ(frag_split_init(&it, dgram, n, 100), 0);
    CHECK(frag_split_next(&it, fr, sizeof(fr)) > 0);
    n = frag_split_next(&it, fr, sizeof(fr));
    CHECK(n > 0);
    CHECK_EQ(fr[0], 0x46);
    CHECK_MEM(fr + 20, opts, 4);
}

TEST(refragment_edge_cases)
{
    uint8_t w[64], dgram[2000], fr[1500];
    int nw = test_hex(whole_hex, w, sizeof(w));
    struct frag_split it;
    size_t n;

    /* fits: emitted unchanged, once */
    CHECK_EQ(frag_split_init(&it, w, nw, 1500), 0);
    CHECK_EQ(frag_split_next(&it, fr, sizeof(fr)), 44);
    CHECK_MEM(fr, w, 44);
    CHECK_EQ(frag_split_next(&it, fr, sizeof(fr)), 0);
    /* DF and too big: refused (ICMP frag-needed is the caller's job) */
    fill_pattern();
    n = mkfrag(dgram, 2, 0, false, pattern, 1600, NULL, 0);
    qw_put16(dgram + 6, IP4_FLAG_DF);
    CHECK_EQ(frag_split_init(&it, dgram, n, 1500), -QW_EINVAL);
    CHECK_EQ(frag_split_next(&it, fr, sizeof(fr)), 0);
    /* mtu below 68, truncated input */
    CHECK_EQ(frag_split_init(&it, w, nw, 67), -QW_EINVAL);
    CHECK_EQ(frag_split_init(&it, w, 43, 1500), -QW_EINVAL);
    CHECK_EQ(frag_split_next(&it, fr, sizeof(fr)), 0);
    /* a fragment re-cut: offsets continue from its own, MF kept */
    n = mkfrag(dgram, 3, 800, true, pattern, 1600, NULL, 0);
    CHECK_EQ(frag_split_init(&it, dgram, n, 1000), 0);
    CHECK_EQ(frag_split_next(&it, fr, sizeof(fr)), 20 + 976);
    CHECK_EQ(qw_get16(fr + 6), IP4_FLAG_MF | 100);
    CHECK_EQ(frag_split_next(&it, fr, sizeof(fr)), 20 + 624);
    CHECK_EQ(qw_get16(fr + 6), IP4_FLAG_MF | (800 + 976) / 8);
    CHECK_EQ(frag_split_next(&it, fr, sizeof(fr)), 0);
    /* a small destination buffer gets nothing */
    n = mkfrag(dgram, 4, 0, false, pattern, 1600, NULL, 0);
    CHECK_EQ(frag_split_init(&it, dgram, n, 1500), 0);
    CHECK_EQ(frag_split_next(&it, fr, 100), 0);
    /* minimum MTU with a 60-byte header: 8 bytes in the first fragment,
     * 48 in the others (no option is copied from 40 NOPs) */
    {
        uint8_t nops[40];
        memset(nops, 1, sizeof(nops));
        n = mkfrag(dgram, 5, 0, false, pattern, 64, nops, sizeof(nops));
        CHECK_EQ(frag_split_init(&it, dgram, n, 68), 0);
        CHECK_EQ(frag_split_next(&it, fr, sizeof(fr)), 68);
        CHECK_EQ(frag_split_next(&it, fr, sizeof(fr)), 68);
        CHECK_EQ(fr[0], 0x45);
        CHECK_EQ(qw_get16(fr + 6), IP4_FLAG_MF | 1);
        CHECK_EQ(frag_split_next(&it, fr, sizeof(fr)), 28);
        CHECK_EQ(qw_get16(fr + 6), 7);
        CHECK_EQ(frag_split_next(&it, fr, sizeof(fr)), 0);
    }
}

/* Pool smaller than the sum of the caps: when it runs out, the oldest
 * datagram of any link gives way; a link at its cap evicts its own. */
TEST(shared_pool)
{
    uint8_t p[1600];
    struct hook_log h;
    size_t sz = frag_pool_mem_size(4, 8192, 4096);
    struct frag *f = aligned_alloc(16, (sz + 15) & ~(size_t)15);
    const uint8_t *out;
    size_t outlen, n;
    enum qw_drop why;

    memset(&h, 0, sizeof(h));
    frag_pool_init(f, 4, 8192, 4096); /* 64 blocks, 32 per link */
    frag_set_drop_hook(f, hook, &h);
    fill_pattern();
    /* link 1: two datagrams of 12 blocks; link 2: two more */
    for (unsigned i = 0; i < 4; i++) {
        n = mkfrag(p, (uint16_t)(300 + i), 0, true, pattern, 1480, NULL, 0);
        CHECK_EQ(feed(f, 1 + i / 2, p, n, i, &out, &outlen, &why),
                 FRAG_PENDING);
    }
    CHECK_EQ(frag_pool_used(f), 48 * FRAG_BLOCK);
    CHECK_EQ(h.calls, 0);
    /* link 3 takes the last 16 blocks, then needs more: link 1's oldest
     * datagram (id 300) is evicted although link 3 is under its cap */
    n = mkfrag(p, 310, 0, true, pattern, 1480, NULL, 0);
    CHECK_EQ(feed(f, 3, p, n, 10, &out, &outlen, &why), FRAG_PENDING);
    CHECK_EQ(h.calls, 0);
    n = mkfrag(p, 311, 0, true, pattern, 1480, NULL, 0);
    CHECK_EQ(feed(f, 3, p, n, 11, &out, &outlen, &why), FRAG_PENDING);
    CHECK_EQ(h.calls, 1);
    CHECK_EQ(h.link, 1);
    CHECK_EQ(h.last, QW_DROP_FRAG_NO_MEM);
    CHECK_EQ(frag_link_pending(f, 1), 1);
    CHECK_EQ(frag_pool_used(f), 60 * FRAG_BLOCK);
    /* link 3 at its cap (24 + 12 > 32) evicts its own oldest, not others */
    n = mkfrag(p, 312, 0, true, pattern, 1480, NULL, 0);
    CHECK_EQ(feed(f, 3, p, n, 12, &out, &outlen, &why), FRAG_PENDING);
    CHECK_EQ(h.calls, 2);
    CHECK_EQ(h.link, 3);
    CHECK_EQ(frag_link_used(f, 3), 24 * FRAG_BLOCK);
    CHECK_EQ(frag_link_pending(f, 2), 2);
    /* everything returns to the pool */
    for (unsigned l = 0; l < 4; l++)
        frag_flush_link(f, l);
    CHECK_EQ(frag_pool_used(f), 0);
    CHECK_EQ(frag_next_deadline(f), UINT64_MAX);
    free(f);
}

TEST(memory_figures)
{
    size_t one = frag_mem_size(1, 256 * 1024);
    size_t two = frag_mem_size(2, 256 * 1024);
    size_t dflt = frag_pool_mem_size(65, FRAG_DEFAULT_POOL_BYTES, 256 * 1024);
    size_t more = frag_pool_mem_size(66, FRAG_DEFAULT_POOL_BYTES, 256 * 1024);

    printf("  frag: per-link pools: %zu fixed + %zu per link of 256 KiB\n",
           one - (two - one), two - one);
    printf("  frag: 65 links, 1 MiB pool, 256 KiB cap: %zu bytes; "
           "+%zu per extra link\n",
           dflt, more - dflt);
    CHECK(two - one >= 256 * 1024);
    CHECK(two - one < 256 * 1024 + 32 * 1024);
    CHECK(dflt < 2 * 1024 * 1024);
    CHECK(more - dflt <= 32);
}

int main(void)
{
    RUN(in_order_fixture);
    RUN(out_of_order_fixture);
    RUN(trailing_bytes_ignored);
    RUN(unfragmented_passes_through);
    RUN(duplicates_absorbed);
    RUN(overlaps_of_every_shape);
    RUN(overlap_with_a_neighbour_not_first);
    RUN(bad_fragments);
    RUN(too_many_fragments);
    RUN(boundary_65535);
    RUN(boundary_first_header_options);
    RUN(largest_datagram_round_trip);
    RUN(timeout);
    RUN(link_cap_evicts_oldest);
    RUN(too_many_datagrams_evicts_oldest);
    RUN(keys_do_not_mix);
    RUN(refragment_4000_udp);
    RUN(refragment_copies_only_copied_options);
    RUN(refragment_malformed_options_stop_copy);
    RUN(refragment_edge_cases);
    RUN(shared_pool);
    RUN(memory_figures);
    return test_summary();
}
