/*
 * frag.c: IPv4 reassembly and refragmentation (see frag.h).
 *
 * XXX: placeholder so that callers can build against frag.h; the real
 * implementation follows in the next commits.
 */
#include "frag.h"
#include "qwall.h"

struct frag {
    unsigned nlinks;
};

size_t frag_mem_size(unsigned nlinks, uint32_t bytes_per_link)
{
    (void)nlinks;
    (void)bytes_per_link;
    return sizeof(struct frag);
}

void frag_init(struct frag *f, unsigned nlinks, uint32_t bytes_per_link)
{
    (void)bytes_per_link;
    f->nlinks = nlinks;
}

void frag_set_drop_hook(struct frag *f,
                        void (*dropped)(void *ctx, unsigned link,
                                        enum qw_drop why, unsigned nfrags),
                        void *ctx)
{
    (void)f;
    (void)dropped;
    (void)ctx;
}

int frag_input(struct frag *f, unsigned link, const uint8_t *ip, size_t len,
               uint64_t now, const uint8_t **out, size_t *outlen,
               enum qw_drop *why)
{
    (void)f;
    (void)link;
    (void)ip;
    (void)len;
    (void)now;
    (void)out;
    (void)outlen;
    *why = QW_DROP_FRAG_NO_MEM;
    return FRAG_DROP;
}

unsigned frag_expire(struct frag *f, uint64_t now)
{
    (void)f;
    (void)now;
    return 0;
}

uint64_t frag_next_deadline(const struct frag *f)
{
    (void)f;
    return UINT64_MAX;
}

void frag_flush_link(struct frag *f, unsigned link)
{
    (void)f;
    (void)link;
}

uint32_t frag_link_used(const struct frag *f, unsigned link)
{
    (void)f;
    (void)link;
    return 0;
}

unsigned frag_link_pending(const struct frag *f, unsigned link)
{
    (void)f;
    (void)link;
    return 0;
}

int frag_split_init(struct frag_split *it, const uint8_t *ip, size_t len,
                    unsigned mtu)
{
    (void)ip;
    (void)len;
    (void)mtu;
    __builtin_memset(it, 0, sizeof(*it));
    return -QW_EINVAL;
}

size_t frag_split_next(struct frag_split *it, uint8_t *dst, size_t cap)
{
    (void)it;
    (void)dst;
    (void)cap;
    return 0;
}
