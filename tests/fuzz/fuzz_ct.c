/*
 * fuzz_ct.c: the connection table under arbitrary operation sequences.
 *
 * Input: byte 0 picks the capacity (1..64, low 6 bits) and the number of
 * client links (1, 3, 5 or 7, top 2 bits; connections come from links
 * 1..4, so some share the quota of out-of-range links), bytes 1..2 seed
 * the random source, then each operation is one opcode byte and its
 * argument bytes (missing bytes read as 0). Keys come from small address
 * and port pools so that collisions, evictions and port exhaustion are
 * common. After every operation ct_check() must hold (counts, both
 * indexes, LRU lists, per-link lists and counts, free list), the per-link
 * counts must add up, and a create must evict at most one entry, never
 * another link's when its own link was at its cap.
 */
#include <stdint.h>
#include <stdlib.h>

#include "ct.h"
#include "wire.h"

#define NS 1000000000ull

struct in {
    const uint8_t *p;
    size_t n;
};

static uint8_t next(struct in *in)
{
    uint8_t b = 0;

    if (in->n > 0) {
        b = *in->p++;
        in->n--;
    }
    return b;
}

static uint64_t rng;

static uint32_t rnd(void *ctx)
{
    (void)ctx;
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

static uint8_t pick_proto(uint8_t b)
{
    static const uint8_t p[] = {IPPROTO_TCP_, IPPROTO_UDP_, IPPROTO_ICMP_, 47};
    return p[b % 4];
}

static struct ct_key key_from(struct in *in)
{
    struct ct_key k = {0};
    uint8_t a = next(in), b = next(in);

    k.proto = pick_proto(a);
    k.src = 0x0a890000u + (a >> 2 & 7);
    k.dst = 0x5db8d800u + (a >> 5);
    if (k.proto != 47)
        k.sport = (uint16_t)(1020 + (b & 15));
    if (k.proto == IPPROTO_TCP_ || k.proto == IPPROTO_UDP_)
        k.dport = (uint16_t)(80 + (b >> 4 & 3));
    if (b & 0x80) { /* flip to a reply-side key */
        struct ct_key r = k;

        r.src = k.dst;
        r.dst = 0x0a8a0009u;
        r.sport = k.dport;
        r.dport = (uint16_t)(b & 0x40 ? k.sport : 1020 + (b & 15));
        k = r;
    }
    return k;
}

static bool keep_cb(void *ctx, const struct ct_entry *e)
{
    return ((e->orig.sport ^ *(const uint8_t *)ctx) & 1) == 0;
}

/* Per-link counts: [0..nlinks-1] the links, [nlinks] the quota that
 * larger link numbers share, [NL] the firewall's own; unused ones 0. */
#define NL 8

static void counts(const struct ct *t, unsigned nlinks, unsigned c[NL + 1])
{
    for (unsigned l = 0; l < NL; l++)
        c[l] = l <= nlinks ? ct_link_count(t, (uint16_t)l) : 0;
    c[NL] = ct_link_count(t, CT_LINK_SELF);
}

static void check(struct ct *t, unsigned cap, unsigned nlinks)
{
    const struct ct_stats *st = ct_get_stats(t);
    unsigned sum;

    if (ct_check(t) != 0 || ct_count(t) > cap || st->entries > st->high_water)
        abort();
    /* links below nlinks have their own count, the rest share one */
    sum = ct_link_count(t, (uint16_t)nlinks) + ct_link_count(t, CT_LINK_SELF);
    for (unsigned l = 0; l < nlinks; l++)
        sum += ct_link_count(t, (uint16_t)l);
    if (sum != ct_count(t) || st->evicted != st->evicted_link_cap +
                                                 st->evicted_table_full +
                                                 st->evicted_self)
        abort();
}

/*
 * After ct_create() by `link` (index li into the counts): at most one
 * entry evicted; none if it failed; the link never grows past its cap;
 * a link at its cap never costs another link anything (other links lose
 * only expired entries).
 */
static void check_create(const struct ct *t, unsigned nlinks, int rc,
                         unsigned li, const unsigned b[NL + 1],
                         const struct ct_stats *sb, unsigned count_before,
                         unsigned cap)
{
    const struct ct_stats *st = ct_get_stats(t);
    unsigned a[NL + 1], lcap = ct_link_cap(t), lost = 0;
    uint64_t ev = st->evicted - sb->evicted;

    counts(t, nlinks, a);
    if (ev > 1 || (rc != 0 && ev != 0))
        abort();
    if (rc == 0 && a[li] > (b[li] > lcap ? b[li] : lcap))
        abort();
    if (b[li] < lcap && st->evicted_link_cap != sb->evicted_link_cap)
        abort();
    if (count_before < cap &&
        (st->evicted_table_full != sb->evicted_table_full ||
         st->evicted_self != sb->evicted_self))
        abort();
    for (unsigned l = 0; l <= NL; l++)
        if (l != li && a[l] < b[l])
            lost += b[l] - a[l];
    if (lost > (st->expired - sb->expired) +
                   (st->evicted_table_full - sb->evicted_table_full) +
                   (st->evicted_self - sb->evicted_self))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint64_t mem[(1u << 16) / 8];
    struct in in = {data, size};
    uint8_t b0 = next(&in);
    unsigned cap = 1 + b0 % 64, nlinks = 1 + (unsigned)(b0 >> 6) * 2;
    uint64_t now = 1000 * NS;
    struct ct *t;
    unsigned ops = 0;

    rng = 0x1234567890abcdefull ^ next(&in) ^ (uint64_t)next(&in) << 8;
    if (ct_mem_size_links(cap, nlinks) > sizeof mem)
        abort();
    t = ct_init_links(mem, cap, nlinks, 0, rnd, NULL);
    if (t == NULL)
        abort();
    while (in.n > 0 && ops++ < 4096) {
        uint8_t op = next(&in);
        struct ct_key k;
        struct ct_entry *e;
        int dir, rc;

        switch (op % 12) {
        case 0: { /* new connection */
            uint16_t link = (uint16_t)(1 + op / 12 % 4);
            unsigned before[NL + 1], n = ct_count(t);
            struct ct_stats sb = *ct_get_stats(t);

            counts(t, nlinks, before);
            k = key_from(&in);
            rc = ct_create(t, &k, 0x0a8a0009u, link, now, &e);
            /* links >= nlinks share one count: compare that one */
            check_create(t, nlinks, rc, link < nlinks ? link : nlinks, before,
                         &sb, n, cap);
            if (rc == 0 && (ct_lookup(t, &e->reply, 0, &dir) != e || dir != 1 ||
                            ct_lookup(t, &k, 0, &dir) != e || dir != 0))
                abort();
            if (rc == -QW_EEXIST && (e == NULL || e->link == 0))
                abort();
            if (rc == -QW_ENOSPC && e != NULL)
                abort();
            if (rc == 0 && (e->link != link || ct_link_count(t, link) == 0))
                abort();
            break;
        }
        case 1: /* a packet of a connection */
        case 2:
            k = key_from(&in);
            e = ct_lookup(t, &k, now, &dir);
            if (e != NULL) {
                uint8_t f = next(&in);

                if (e->expires <= now)
                    abort();
                ct_update(t, e, dir, f, now);
                if (dir == 1 && !(e->flags & CT_F_REPLIED))
                    abort();
                if (e->expires != now + (uint64_t)ct_timeout(e) * NS)
                    abort();
            }
            break;
        case 3:
            k = key_from(&in);
            e = ct_lookup_dir(t, &k, op >> 7, now);
            if (e != NULL)
                ct_remove(t, e);
            break;
        case 4:
            ct_expire(t, now, next(&in));
            break;
        case 5:
            now += (uint64_t)next(&in) * (op & 0x80 ? 100 : 1) * NS;
            break;
        case 6:
            ct_flush_link(t, (uint16_t)(next(&in) % 5));
            break;
        case 7: {
            uint8_t c = next(&in);

            ct_recheck_link(t, (uint16_t)(c % 5), keep_cb, &c);
            break;
        }
        case 8: {
            uint16_t port = 0;
            uint8_t b = next(&in);
            uint64_t link_ev = ct_get_stats(t)->evicted_link_cap;

            rc = ct_reserve_self(t, pick_proto(b), 0x0a8a0009u,
                                 0x0a8a0001u + (b >> 2 & 1), 53, now, &port);
            if ((rc == 0) != (port != 0))
                abort();
            /* own entries are exempt from the cap */
            if (ct_get_stats(t)->evicted_link_cap != link_ev)
                abort();
            break;
        }
        case 9: {
            uint8_t b = next(&in);

            ct_release_self(t, pick_proto(b), 0x0a8a0009u,
                            0x0a8a0001u + (b >> 2 & 1), 53,
                            (uint16_t)(1020 + (b >> 4)));
            break;
        }
        case 10: {
            uint8_t lo = next(&in), span = next(&in);

            ct_set_port_range(t, (uint16_t)(1020 + lo % 16),
                              (uint16_t)(1020 + lo % 16 + span % 16));
            break;
        }
        default:
            if (op == 11) /* rare: flush everything */
                ct_flush(t);
            else /* a new per-link cap (0: the default) */
                ct_set_link_cap(t, next(&in) % 70);
            break;
        }
        check(t, cap, nlinks);
    }
    return 0;
}
