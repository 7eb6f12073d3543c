/*
 * ct.c: connection tracking and NAT table (see ct.h, docs/conntrack.md).
 *
 * TODO: first commit is a placeholder so the pipeline can link; the table
 * follows in the next commit.
 */
#include "ct.h"

struct ct {
    unsigned capacity;
};

size_t ct_mem_size(unsigned capacity)
{
    if (capacity == 0 || capacity > CT_MAX_CAPACITY)
        return 0;
    return sizeof(struct ct);
}

struct ct *ct_init(void *mem, unsigned capacity, uint32_t (*rnd)(void *),
                   void *rnd_ctx)
{
    struct ct *t = mem;

    (void)rnd_ctx;
    if (mem == NULL || rnd == NULL || ct_mem_size(capacity) == 0)
        return NULL;
    t->capacity = capacity;
    return t;
}

int ct_set_port_range(struct ct *t, uint16_t lo, uint16_t hi)
{
    (void)t;
    return lo == 0 || lo > hi ? -QW_EINVAL : 0;
}

struct ct_entry *ct_lookup(struct ct *t, const struct ct_key *k, uint64_t now,
                           int *dir)
{
    (void)t, (void)k, (void)now, (void)dir;
    return NULL;
}

struct ct_entry *ct_lookup_dir(struct ct *t, const struct ct_key *k, int dir,
                               uint64_t now)
{
    (void)t, (void)k, (void)now, (void)dir;
    return NULL;
}

int ct_create(struct ct *t, const struct ct_key *orig, uint32_t nat_addr,
              uint16_t link, uint64_t now, struct ct_entry **e)
{
    (void)t, (void)orig, (void)nat_addr, (void)link, (void)now;
    *e = NULL;
    return -QW_ENOSPC;
}

void ct_update(struct ct *t, struct ct_entry *e, int dir, uint8_t tcp_flags,
               uint64_t now)
{
    (void)t, (void)e, (void)dir, (void)tcp_flags, (void)now;
}

void ct_remove(struct ct *t, struct ct_entry *e)
{
    (void)t, (void)e;
}

unsigned ct_expire(struct ct *t, uint64_t now, unsigned budget)
{
    (void)t, (void)now, (void)budget;
    return 0;
}

unsigned ct_recheck_link(struct ct *t, uint16_t link,
                         bool (*keep)(void *ctx, const struct ct_entry *e),
                         void *ctx)
{
    (void)t, (void)link, (void)keep, (void)ctx;
    return 0;
}

unsigned ct_flush_link(struct ct *t, uint16_t link)
{
    (void)t, (void)link;
    return 0;
}

void ct_flush(struct ct *t)
{
    (void)t;
}

int ct_reserve_self(struct ct *t, uint8_t proto, uint32_t local_addr,
                    uint32_t remote, uint16_t rport, uint64_t now,
                    uint16_t *port)
{
    (void)t, (void)proto, (void)local_addr, (void)remote, (void)rport;
    (void)now;
    *port = 0;
    return -QW_ENOSPC;
}

void ct_release_self(struct ct *t, uint8_t proto, uint32_t local_addr,
                     uint32_t remote, uint16_t rport, uint16_t port)
{
    (void)t, (void)proto, (void)local_addr, (void)remote, (void)rport;
    (void)port;
}

unsigned ct_count(const struct ct *t)
{
    (void)t;
    return 0;
}

const struct ct_stats *ct_get_stats(const struct ct *t)
{
    static struct ct_stats none;

    (void)t;
    return &none;
}

uint32_t ct_timeout(const struct ct_entry *e)
{
    (void)e;
    return CT_TO_OTHER;
}

int ct_check(const struct ct *t)
{
    (void)t;
    return 0;
}
