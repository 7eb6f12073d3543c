/*
 * fuzz_frag.c: IPv4 reassembly and refragmentation under arbitrary
 * fragment sequences.
 *
 * The input is a list of 8-byte operations on a small table (3 links
 * capped at 4 KiB each, sharing a 6 KiB pool, so both kinds of eviction
 * happen all the time):
 *
 *   op & 3 == 0..1  a fragment: link, id (0..3), offset, length, MF,
 *                   optional header options; its payload is a fixed
 *                   function of (id, absolute offset), so any datagram that
 *                   completes has a payload we can predict exactly
 *   op & 3 == 2     the next 8..72 input bytes as a raw packet (malformed
 *                   headers, odd lengths)
 *   op & 3 == 3     advance the clock (sometimes past the timeout), expire
 *
 * Invariants: a completed datagram is <= 65535 bytes, has a valid header
 * (MF and offset clear, total length = its size, checksum right), the
 * predicted payload, and survives refragmentation to a random MTU and
 * reassembly in a second table byte for byte; memory in use never exceeds
 * the budget, and returns to 0 after expiry and after a flush.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "frag.h"
#include "qwall.h"
#include "wire.h"

#define NLINKS 3
#define BUDGET 4096
#define POOL 6144

static struct frag *tab, *tab2;
static size_t tab_size, tab2_size;
static uint64_t hook_frags;

static void hook(void *ctx, unsigned link, enum qw_drop why, unsigned n)
{
    (void)ctx;
    if (link >= NLINKS || n == 0 || n > FRAG_MAX_FRAGS ||
        (why != QW_DROP_FRAG_BAD && why != QW_DROP_FRAG_OVERLAP &&
         why != QW_DROP_FRAG_TOO_BIG && why != QW_DROP_FRAG_NO_MEM &&
         why != QW_DROP_FRAG_TIMEOUT))
        abort();
    hook_frags += n;
}

static uint8_t pay(unsigned id, uint32_t off)
{
    return (uint8_t)(off * 13 + (off >> 8) + id * 101);
}

static size_t build(uint8_t *b, unsigned id, uint32_t off, uint32_t len,
                    bool mf, unsigned olen)
{
    unsigned h = 20 + olen;

    memset(b, 0, h);
    b[0] = (uint8_t)(0x40 | h / 4);
    qw_put16(b + 2, (uint16_t)(h + len));
    qw_put16(b + 4, (uint16_t)id);
    qw_put16(b + 6, (uint16_t)((off / 8) | (mf ? IP4_FLAG_MF : 0)));
    b[8] = 64;
    b[9] = 17;
    qw_put32(b + 12, 0x0a890005);
    qw_put32(b + 16, 0x01020304);
    for (unsigned i = 20; i + 4 <= h; i += 4) {
        b[i] = 0x94; /* router alert: copied */
        b[i + 1] = 4;
    }
    qw_put16(b + 10, qw_csum_fold(qw_csum_add(0, b, h)));
    for (uint32_t i = 0; i < len; i++)
        b[h + i] = pay(id, off + i);
    return h + len;
}

static void check_whole(const uint8_t *o, size_t n)
{
    unsigned h;
    unsigned id;

    if (n > IP4_MAX_LEN || n < 20)
        abort();
    h = (o[0] & 15u) * 4;
    if ((o[0] >> 4) != 4 || h < 20 || h > n || qw_get16(o + 2) != n)
        abort();
    if ((qw_get16(o + 6) & (IP4_FLAG_MF | IP4_OFF_MASK)) != 0)
        abort();
    if (qw_csum_fold(qw_csum_add(0, o, h)) != 0)
        abort();
    id = qw_get16(o + 4);
    for (size_t i = h; i < n; i++)
        if (o[i] != pay(id, (uint32_t)(i - h)))
            abort();
}

/* Cut a completed datagram to mtu and put it back together. */
static void round_trip(const uint8_t *o, size_t n, unsigned mtu)
{
    static uint8_t copy[65536], fr[65536];
    struct frag_split it;
    const uint8_t *out = NULL;
    size_t outlen = 0, k;
    enum qw_drop why;
    int r = FRAG_PENDING;

    /* stay within FRAG_MAX_FRAGS pieces */
    if ((n / (((mtu - 60) & ~7u))) + 1 > FRAG_MAX_FRAGS - 4)
        mtu = 1500;
    memcpy(copy, o, n);
    if (frag_split_init(&it, copy, n, mtu) < 0)
        abort(); /* DF is never set here */
    frag_flush_link(tab2, 0);
    while ((k = frag_split_next(&it, fr, sizeof(fr))) > 0) {
        if (k > mtu && n > mtu)
            abort();
        if (qw_csum_fold(qw_csum_add(0, fr, (fr[0] & 15u) * 4)) != 0)
            abort();
        if (r == FRAG_DONE)
            abort(); /* done before the last piece */
        r = frag_input(tab2, 0, fr, k, 0, &out, &outlen, &why);
        if (r == FRAG_DROP)
            abort();
    }
    if (r != FRAG_DONE || outlen != n || memcmp(out, copy, n) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t pkt[65536 + 64];
    uint64_t now = 1;
    size_t i = 0;

    if (tab == NULL) {
        tab_size = frag_pool_mem_size(NLINKS, POOL, BUDGET);
        tab = aligned_alloc(16, (tab_size + 15) & ~(size_t)15);
        tab2_size = frag_mem_size(1, 80 * 1024);
        tab2 = aligned_alloc(16, (tab2_size + 15) & ~(size_t)15);
        frag_init(tab2, 1, 80 * 1024);
    }
    frag_pool_init(tab, NLINKS, POOL, BUDGET);
    frag_set_drop_hook(tab, hook, NULL);

    while (i + 8 <= size) {
        const uint8_t *op = data + i;
        const uint8_t *out = NULL;
        size_t outlen = 0, n;
        enum qw_drop why = QW_DROP_NONE;
        unsigned link = op[1] % NLINKS;
        int r;

        i += 8;
        switch (op[0] & 3) {
        case 0:
        case 1: {
            unsigned id = op[2] & 3;
            uint32_t off = (uint32_t)(qw_get16(op + 3) & IP4_OFF_MASK) * 8;
            uint32_t len = qw_get16(op + 5) % 1481;
            bool mf = op[7] & 1;
            unsigned olen = (op[7] >> 1 & 3) * 4;
            if (op[0] & 4) /* keep offsets small often, to complete */
                off &= 0x3ff8;
            if (op[0] & 8)
                len &= ~7u;
            if (off + len + 20 + olen > sizeof(pkt))
                len = 0;
            n = build(pkt, id, off, len, mf, olen);
            r = frag_input(tab, link, pkt, n, now, &out, &outlen, &why);
            break;
        }
        case 2: {
            n = 8 + op[2] % 65;
            if (n > size - i)
                n = size - i;
            memcpy(pkt, data + i, n);
            i += n;
            r = frag_input(tab, link, pkt, n, now, &out, &outlen, &why);
            break;
        }
        default:
            now += (uint64_t)qw_get32(op + 2) * (op[6] & 1 ? 1000000 : 1);
            frag_expire(tab, now);
            r = -1;
            break;
        }
        if (r == FRAG_DONE && (op[0] & 3) != 2) {
            check_whole(out, outlen);
            if (op[0] & 0x10)
                round_trip(out, outlen, 68 + qw_get16(op + 3) % 1433);
        } else if (r == FRAG_DONE) {
            if (outlen > IP4_MAX_LEN)
                abort();
        } else if (r == FRAG_DROP && why == QW_DROP_NONE) {
            abort();
        }
        uint32_t sum = 0;
        for (unsigned l = 0; l < NLINKS; l++) {
            if (frag_link_used(tab, l) > BUDGET ||
                frag_link_pending(tab, l) > FRAG_MAX_DGRAMS)
                abort();
            sum += frag_link_used(tab, l);
        }
        if (sum != frag_pool_used(tab) || sum > POOL)
            abort();
    }

    /* Everything times out, and the budget comes back in full. */
    frag_expire(tab, now + FRAG_TIMEOUT_NS);
    for (unsigned l = 0; l < NLINKS; l++)
        if (frag_link_used(tab, l) != 0 || frag_link_pending(tab, l) != 0)
            abort();
    if (frag_next_deadline(tab) != UINT64_MAX || frag_pool_used(tab) != 0)
        abort();
    for (unsigned l = 0; l < NLINKS; l++)
        frag_flush_link(tab, l);
    return 0;
}
