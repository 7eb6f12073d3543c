/*
 * fuzz_ct.c: the connection table under arbitrary operation sequences.
 *
 * Input: byte 0 picks the capacity (1..64), bytes 1..2 seed the random
 * source, then each operation is one opcode byte and its argument bytes
 * (missing bytes read as 0). Keys come from small address and port pools
 * so that collisions, evictions and port exhaustion are common. After
 * every operation ct_check() must hold (counts, both indexes, LRU lists,
 * free list) and a few cross-checks on what the operation returned.
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

static void check(struct ct *t, unsigned cap)
{
    const struct ct_stats *st = ct_get_stats(t);

    if (ct_check(t) != 0 || ct_count(t) > cap || st->entries > st->high_water)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint64_t mem[(1u << 16) / 8];
    struct in in = {data, size};
    unsigned cap = 1 + next(&in) % 64;
    uint64_t now = 1000 * NS;
    struct ct *t;
    unsigned ops = 0;

    rng = 0x1234567890abcdefull ^ next(&in) ^ (uint64_t)next(&in) << 8;
    if (ct_mem_size(cap) > sizeof mem)
        abort();
    t = ct_init(mem, cap, rnd, NULL);
    if (t == NULL)
        abort();
    while (in.n > 0 && ops++ < 4096) {
        uint8_t op = next(&in);
        struct ct_key k;
        struct ct_entry *e;
        int dir, rc;

        switch (op % 12) {
        case 0: /* new connection */
            k = key_from(&in);
            rc = ct_create(t, &k, 0x0a8a0009u, (uint16_t)(1 + op / 12 % 4), now,
                           &e);
            if (rc == 0 && (ct_lookup(t, &e->reply, 0, &dir) != e || dir != 1 ||
                            ct_lookup(t, &k, 0, &dir) != e || dir != 0))
                abort();
            if (rc == -QW_EEXIST && (e == NULL || e->link == 0))
                abort();
            if (rc == -QW_ENOSPC && e != NULL)
                abort();
            break;
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

            rc = ct_reserve_self(t, pick_proto(b), 0x0a8a0009u,
                                 0x0a8a0001u + (b >> 2 & 1), 53, now, &port);
            if ((rc == 0) != (port != 0))
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
            break;
        }
        check(t, cap);
    }
    return 0;
}
