/*
 * frag.c: IPv4 reassembly and refragmentation (see frag.h).
 *
 * Layout of the caller's block:
 *
 *   struct frag | struct frag_link[nlinks] | struct frag_dgram[nslots]
 *               | uint16_t next[nblk] | uint8_t data[nblk * FRAG_BLOCK]
 *
 * One pool of nblk payload blocks (free list threaded through next[]) and
 * one pool of datagram slots serve every link, so memory does not grow
 * with the number of clients; each link is held to its cap on top (blocks
 * and FRAG_MAX_DGRAMS slots), so one peer cannot take the pool. A link's
 * datagrams form a list through their slots. A stored fragment is a record
 * (offset, length, first block); its payload fills a chain of blocks. Records
 * of a datagram are kept sorted by offset, so overlap checks and the final copy
 * are single passes. The budget counts whole blocks, so a tiny fragment costs a
 * whole block: an attacker spraying 8-byte fragments runs out of budget sooner,
 * not later.
 */
#include "frag.h"
#include "qwall.h"
#include "wire.h"

#define NO_BLOCK 0xffffu
#define NO_SLOT 0xffffu
#define MAX_POOL_BLOCKS (FRAG_MAX_POOL_BYTES / FRAG_BLOCK)

struct frag_rec {
    uint16_t off; /* payload offset, bytes */
    uint16_t len; /* payload bytes */
    uint16_t blk; /* first block of the chain */
};

struct frag_dgram {
    bool used;
    bool have_last; /* a fragment without MF was seen: end is known */
    uint8_t proto;
    uint8_t hlen; /* header length of the offset-0 fragment, 0 = not seen */
    uint16_t id;
    uint16_t nrec;
    uint16_t link;
    uint16_t next; /* the link's list, or the free list */
    uint32_t src, dst;
    uint32_t end;  /* payload length, valid if have_last */
    uint32_t got;  /* payload bytes stored */
    uint32_t nblk; /* blocks held */
    uint64_t born; /* time of the first fragment */
    uint64_t seq;  /* creation order, for eviction */
    uint8_t hdr[60];
    struct frag_rec rec[FRAG_MAX_FRAGS];
};

struct frag_link {
    uint32_t used;    /* blocks in use */
    uint16_t pending; /* datagrams in progress */
    uint16_t head;    /* first slot of the link's list */
};

struct frag {
    unsigned nlinks;
    uint32_t nblk; /* blocks in the pool */
    uint32_t cap;  /* blocks per link */
    uint32_t used; /* blocks in use, all links */
    uint16_t free_head;
    uint16_t free_slot;
    unsigned nslots;
    unsigned pending; /* datagrams in progress, all links */
    uint64_t seq;
    void (*dropped)(void *ctx, unsigned link, enum qw_drop why,
                    unsigned nfrags);
    void *ctx;
    struct frag_link *links;
    struct frag_dgram *slots;
    uint16_t *next;
    uint8_t *data;
    uint8_t out[IP4_MAX_LEN + 1]; /* completed datagram */
};

static uint32_t clamp(uint32_t v, uint32_t lo, uint32_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

struct geometry {
    uint32_t nblk, cap;
    unsigned nslots;
};

static struct geometry geometry(unsigned nlinks, uint32_t pool_bytes,
                                uint32_t link_cap)
{
    struct geometry g;
    uint32_t most = clamp(nlinks * FRAG_MAX_DGRAMS, 1, NO_SLOT - 1);

    link_cap = clamp(link_cap, FRAG_MIN_LINK_BYTES, FRAG_MAX_LINK_BYTES);
    pool_bytes = clamp(pool_bytes, link_cap, FRAG_MAX_POOL_BYTES);
    g.nblk = pool_bytes / FRAG_BLOCK;
    g.cap = link_cap / FRAG_BLOCK;
    /* a slot per 4 KiB of pool: datagrams are rarely smaller */
    g.nslots = clamp(pool_bytes / 4096, FRAG_MAX_DGRAMS,
                     most > FRAG_MAX_DGRAMS ? most : FRAG_MAX_DGRAMS);
    return g;
}

static size_t align16(size_t n)
{
    return (n + 15) & ~(size_t)15;
}

size_t frag_pool_mem_size(unsigned nlinks, uint32_t pool_bytes,
                          uint32_t link_cap)
{
    struct geometry g = geometry(nlinks, pool_bytes, link_cap);

    return align16(sizeof(struct frag)) +
           align16((size_t)nlinks * sizeof(struct frag_link)) +
           align16((size_t)g.nslots * sizeof(struct frag_dgram)) +
           align16((size_t)g.nblk * sizeof(uint16_t)) +
           (size_t)g.nblk * FRAG_BLOCK;
}

static uint32_t pool_for(unsigned nlinks, uint32_t bytes_per_link)
{
    uint64_t p = (uint64_t)nlinks * bytes_per_link;

    return p > FRAG_MAX_POOL_BYTES ? FRAG_MAX_POOL_BYTES : (uint32_t)p;
}

size_t frag_mem_size(unsigned nlinks, uint32_t bytes_per_link)
{
    return frag_pool_mem_size(nlinks, pool_for(nlinks, bytes_per_link),
                              bytes_per_link);
}

static void reset_all(struct frag *f)
{
    for (uint32_t i = 0; i < f->nblk; i++)
        f->next[i] = (uint16_t)(i + 1 < f->nblk ? i + 1 : NO_BLOCK);
    f->free_head = 0;
    f->used = 0;
    for (unsigned i = 0; i < f->nslots; i++) {
        f->slots[i].used = false;
        f->slots[i].next = (uint16_t)(i + 1 < f->nslots ? i + 1 : NO_SLOT);
    }
    f->free_slot = 0;
    f->pending = 0;
    for (unsigned i = 0; i < f->nlinks; i++) {
        f->links[i].used = 0;
        f->links[i].pending = 0;
        f->links[i].head = NO_SLOT;
    }
}

void frag_pool_init(struct frag *f, unsigned nlinks, uint32_t pool_bytes,
                    uint32_t link_cap)
{
    struct geometry g = geometry(nlinks, pool_bytes, link_cap);
    uint8_t *p = (uint8_t *)f;
    size_t off = align16(sizeof(struct frag));

    f->nlinks = nlinks;
    f->nblk = g.nblk;
    f->cap = g.cap;
    f->nslots = g.nslots;
    f->seq = 0;
    f->dropped = NULL;
    f->ctx = NULL;
    f->links = (struct frag_link *)(p + off);
    off += align16((size_t)nlinks * sizeof(struct frag_link));
    f->slots = (struct frag_dgram *)(p + off);
    off += align16((size_t)g.nslots * sizeof(struct frag_dgram));
    f->next = (uint16_t *)(p + off);
    off += align16((size_t)g.nblk * sizeof(uint16_t));
    f->data = p + off;
    reset_all(f);
}

void frag_init(struct frag *f, unsigned nlinks, uint32_t bytes_per_link)
{
    frag_pool_init(f, nlinks, pool_for(nlinks, bytes_per_link), bytes_per_link);
}

void frag_set_drop_hook(struct frag *f,
                        void (*dropped)(void *ctx, unsigned link,
                                        enum qw_drop why, unsigned nfrags),
                        void *ctx)
{
    f->dropped = dropped;
    f->ctx = ctx;
}

static uint8_t *block_data(struct frag *f, uint16_t b)
{
    return f->data + (size_t)b * FRAG_BLOCK;
}

static uint32_t nblocks(uint32_t len)
{
    return (len + FRAG_BLOCK - 1) / FRAG_BLOCK;
}

/* Give a datagram's blocks and slot back; report it if why != NONE. */
static void dgram_free(struct frag *f, struct frag_dgram *d, enum qw_drop why)
{
    struct frag_link *l = &f->links[d->link];
    uint16_t idx = (uint16_t)(d - f->slots);
    uint16_t *pp = &l->head;

    for (unsigned i = 0; i < d->nrec; i++) {
        uint16_t b = d->rec[i].blk;
        for (uint32_t k = nblocks(d->rec[i].len); k > 0; k--) {
            uint16_t nb = f->next[b];
            f->next[b] = f->free_head;
            f->free_head = b;
            b = nb;
        }
    }
    l->used -= d->nblk;
    f->used -= d->nblk;
    l->pending--;
    f->pending--;
    while (*pp != idx)
        pp = &f->slots[*pp].next;
    *pp = d->next;
    if (why != QW_DROP_NONE && d->nrec > 0 && f->dropped)
        f->dropped(f->ctx, d->link, why, d->nrec);
    d->used = false;
    d->next = f->free_slot;
    f->free_slot = idx;
}

/* Oldest datagram of a link (or of every link if link < 0) other than
 * `keep`, or NULL. */
static struct frag_dgram *oldest(struct frag *f, int link,
                                 const struct frag_dgram *keep)
{
    struct frag_dgram *o = NULL;

    if (link >= 0) {
        for (uint16_t i = f->links[link].head; i != NO_SLOT;
             i = f->slots[i].next) {
            struct frag_dgram *d = &f->slots[i];
            if (d != keep && (o == NULL || d->seq < o->seq))
                o = d;
        }
        return o;
    }
    for (unsigned i = 0; i < f->nslots; i++) {
        struct frag_dgram *d = &f->slots[i];
        if (d->used && d != keep && (o == NULL || d->seq < o->seq))
            o = d;
    }
    return o;
}

static unsigned expire_link(struct frag *f, unsigned link, uint64_t now)
{
    unsigned n = 0;
    uint16_t i = f->links[link].head;

    while (i != NO_SLOT) {
        struct frag_dgram *d = &f->slots[i];
        i = d->next;
        if (now >= d->born && now - d->born >= FRAG_TIMEOUT_NS) {
            dgram_free(f, d, QW_DROP_FRAG_TIMEOUT);
            n++;
        }
    }
    return n;
}

unsigned frag_expire(struct frag *f, uint64_t now)
{
    unsigned n = 0;

    for (unsigned i = 0; i < f->nlinks && f->pending > 0; i++)
        n += expire_link(f, i, now);
    return n;
}

uint64_t frag_next_deadline(const struct frag *f)
{
    uint64_t t = UINT64_MAX;

    for (unsigned i = 0; i < f->nslots && f->pending > 0; i++) {
        const struct frag_dgram *d = &f->slots[i];
        uint64_t dl = d->born > UINT64_MAX - FRAG_TIMEOUT_NS
                          ? UINT64_MAX
                          : d->born + FRAG_TIMEOUT_NS;
        if (d->used && dl < t)
            t = dl;
    }
    return t;
}

void frag_flush_link(struct frag *f, unsigned link)
{
    if (link >= f->nlinks)
        return;
    while (f->links[link].head != NO_SLOT)
        dgram_free(f, &f->slots[f->links[link].head], QW_DROP_NONE);
}

uint32_t frag_link_used(const struct frag *f, unsigned link)
{
    return link < f->nlinks ? f->links[link].used * FRAG_BLOCK : 0;
}

unsigned frag_link_pending(const struct frag *f, unsigned link)
{
    return link < f->nlinks ? f->links[link].pending : 0;
}

uint32_t frag_pool_used(const struct frag *f)
{
    return f->used * FRAG_BLOCK;
}

/* The datagram for this key, or a new one (evicting if need be). */
static struct frag_dgram *dgram_get(struct frag *f, unsigned link,
                                    const uint8_t *ip, uint64_t now)
{
    struct frag_link *l = &f->links[link];
    uint32_t src = qw_get32(ip + 12), dst = qw_get32(ip + 16);
    uint16_t id = qw_get16(ip + 4), idx;
    struct frag_dgram *d;

    for (uint16_t i = l->head; i != NO_SLOT; i = f->slots[i].next) {
        d = &f->slots[i];
        if (d->src == src && d->dst == dst && d->id == id && d->proto == ip[9])
            return d;
    }
    /* Too many in progress on the link, or in all: the oldest gives way. */
    if (l->pending >= FRAG_MAX_DGRAMS)
        dgram_free(f, oldest(f, (int)link, NULL), QW_DROP_FRAG_NO_MEM);
    else if (f->free_slot == NO_SLOT)
        dgram_free(f, oldest(f, -1, NULL), QW_DROP_FRAG_NO_MEM);
    idx = f->free_slot;
    d = &f->slots[idx];
    f->free_slot = d->next;
    __builtin_memset(d, 0, sizeof(*d) - sizeof(d->rec));
    d->used = true;
    d->link = (uint16_t)link;
    d->src = src;
    d->dst = dst;
    d->id = id;
    d->proto = ip[9];
    d->born = now;
    d->seq = f->seq++;
    d->next = l->head;
    l->head = idx;
    l->pending++;
    f->pending++;
    return d;
}

/* Make room for `need` blocks: first within the link's cap (its own
 * oldest datagrams go), then in the pool (the oldest of any link). */
static bool make_room(struct frag *f, unsigned link, struct frag_dgram *keep,
                      uint32_t need)
{
    struct frag_link *l = &f->links[link];

    if (need > f->cap)
        return false;
    while (f->cap - l->used < need) {
        struct frag_dgram *o = oldest(f, (int)link, keep);
        if (o == NULL)
            return false;
        dgram_free(f, o, QW_DROP_FRAG_NO_MEM);
    }
    while (f->nblk - f->used < need) {
        struct frag_dgram *o = oldest(f, -1, keep);
        if (o == NULL)
            return false;
        dgram_free(f, o, QW_DROP_FRAG_NO_MEM);
    }
    return true;
}

/* Copy the payload into a fresh chain of blocks and insert its record at
 * index pos. Room was made beforehand. */
static void store(struct frag *f, unsigned link, struct frag_dgram *d,
                  unsigned pos, uint16_t off, const uint8_t *p, uint16_t len)
{
    uint32_t n = nblocks(len);
    uint16_t first = f->free_head, b = first;

    for (uint32_t done = 0; done < len; done += FRAG_BLOCK) {
        uint32_t c = len - done < FRAG_BLOCK ? len - done : FRAG_BLOCK;
        __builtin_memcpy(block_data(f, b), p + done, c);
        b = f->next[b];
    }
    f->free_head = b; /* the chain stays linked from `first` */
    f->links[link].used += n;
    f->used += n;
    d->nblk += n;
    __builtin_memmove(&d->rec[pos + 1], &d->rec[pos],
                      (d->nrec - pos) * sizeof(d->rec[0]));
    d->rec[pos] = (struct frag_rec){.off = off, .len = len, .blk = first};
    d->nrec++;
    d->got += len;
}

/* Build the whole datagram in f->out. */
static size_t assemble(struct frag *f, struct frag_dgram *d)
{
    uint8_t *o = f->out;
    size_t tot = d->hlen + d->end;

    __builtin_memcpy(o, d->hdr, d->hlen);
    qw_put16(o + 2, (uint16_t)tot);
    qw_put16(o + 6, qw_get16(o + 6) & IP4_FLAG_DF);
    qw_put16(o + 10, 0);
    qw_put16(o + 10, qw_csum_fold(qw_csum_add(0, o, d->hlen)));
    for (unsigned i = 0; i < d->nrec; i++) {
        uint8_t *w = o + d->hlen + d->rec[i].off;
        uint16_t b = d->rec[i].blk;
        for (uint32_t done = 0; done < d->rec[i].len; done += FRAG_BLOCK) {
            uint32_t left = d->rec[i].len - done;
            uint32_t c = left < FRAG_BLOCK ? left : FRAG_BLOCK;
            __builtin_memcpy(w + done, block_data(f, b), c);
            b = f->next[b];
        }
    }
    return tot;
}

/*
 * Where a fragment [off, off + len) goes among the sorted records: its
 * insertion index, or -1 for an exact duplicate, -2 for an overlap.
 */
static int place(const struct frag_dgram *d, uint32_t off, uint32_t len)
{
    unsigned i = 0;

    while (i < d->nrec && d->rec[i].off < off)
        i++;
    if (i < d->nrec && d->rec[i].off == off && d->rec[i].len == len)
        return -1;
    if (i > 0 && d->rec[i - 1].off + d->rec[i - 1].len > off)
        return -2;
    if (i < d->nrec && off + len > d->rec[i].off)
        return -2;
    return (int)i;
}

/* Check the fragment against what the datagram knows of its end; record
 * the end from a last fragment. False: inconsistent. */
static bool check_end(struct frag_dgram *d, bool mf, uint32_t end)
{
    if (!mf) {
        if (d->have_last)
            return d->end == end;
        if (d->nrec > 0) {
            const struct frag_rec *r = &d->rec[d->nrec - 1];
            if ((uint32_t)r->off + r->len > end)
                return false;
        }
        d->have_last = true;
        d->end = end;
        return true;
    }
    return !d->have_last || end <= d->end;
}

static int drop(struct frag *f, struct frag_dgram *d, enum qw_drop reason,
                enum qw_drop *why)
{
    if (d != NULL)
        dgram_free(f, d, reason);
    *why = reason;
    return FRAG_DROP;
}

int frag_input(struct frag *f, unsigned link, const uint8_t *ip, size_t len,
               uint64_t now, const uint8_t **out, size_t *outlen,
               enum qw_drop *why)
{
    uint32_t hlen, tot, off, plen;
    uint16_t fo;
    bool mf;
    struct frag_dgram *d;
    int pos;

    *why = QW_DROP_NONE;
    if (link >= f->nlinks || len < IP4_MIN_HLEN || (ip[0] >> 4) != 4)
        return drop(f, NULL, QW_DROP_FRAG_BAD, why);
    hlen = (ip[0] & 15u) * 4;
    tot = qw_get16(ip + 2);
    if (hlen < IP4_MIN_HLEN || tot < hlen || tot > len)
        return drop(f, NULL, QW_DROP_FRAG_BAD, why);
    fo = qw_get16(ip + 6);
    mf = (fo & IP4_FLAG_MF) != 0;
    off = (fo & IP4_OFF_MASK) * 8u;
    plen = tot - hlen;
    if (!mf && off == 0) {
        *out = ip;
        *outlen = tot;
        return FRAG_DONE;
    }

    /* Checks on the fragment alone: only this fragment goes. */
    if (plen == 0 || (mf && plen % 8 != 0))
        return drop(f, NULL, QW_DROP_FRAG_BAD, why);
    if (off + plen + hlen > IP4_MAX_LEN)
        return drop(f, NULL, QW_DROP_FRAG_TOO_BIG, why);

    expire_link(f, link, now);
    d = dgram_get(f, link, ip, now);

    /* Checks against the datagram: on failure the whole datagram goes. */
    pos = place(d, off, plen);
    if (pos == -2)
        return drop(f, d, QW_DROP_FRAG_OVERLAP, why);
    if (!check_end(d, mf, off + plen))
        return drop(f, d, QW_DROP_FRAG_BAD, why);
    if (pos >= 0) {
        if (d->nrec >= FRAG_MAX_FRAGS)
            return drop(f, d, QW_DROP_FRAG_BAD, why);
        if (!make_room(f, link, d, nblocks(plen)))
            return drop(f, d, QW_DROP_FRAG_NO_MEM, why);
        store(f, link, d, (unsigned)pos, (uint16_t)off, ip + hlen,
              (uint16_t)plen);
        if (off == 0) {
            d->hlen = (uint8_t)hlen;
            __builtin_memcpy(d->hdr, ip, hlen);
        }
    }
    if (!d->have_last || d->hlen == 0 || d->got != d->end)
        return FRAG_PENDING;
    if (d->hlen + d->end > IP4_MAX_LEN)
        return drop(f, d, QW_DROP_FRAG_TOO_BIG, why);
    *outlen = assemble(f, d);
    *out = f->out;
    dgram_free(f, d, QW_DROP_NONE);
    return FRAG_DONE;
}

/* ---- refragmentation ---- */

/* Collect the options marked "copied" (type bit 0x80), padded with EOL.
 * A malformed option list stops the copy where it breaks. */
static uint8_t copied_options(const uint8_t *ip, uint32_t hlen, uint8_t *o)
{
    uint32_t i = IP4_MIN_HLEN, n = 0;

    while (i < hlen) {
        uint8_t t = ip[i], ol;
        if (t == 0)
            break;
        if (t == 1) {
            i++;
            continue;
        }
        if (i + 1 >= hlen)
            break;
        ol = ip[i + 1];
        if (ol < 2 || i + ol > hlen)
            break;
        if (t & 0x80) {
            __builtin_memcpy(o + n, ip + i, ol);
            n += ol;
        }
        i += ol;
    }
    while (n % 4 != 0)
        o[n++] = 0;
    return (uint8_t)n;
}

int frag_split_init(struct frag_split *it, const uint8_t *ip, size_t len,
                    unsigned mtu)
{
    uint32_t hlen, tot;
    uint16_t fo;

    __builtin_memset(it, 0, sizeof(*it));
    it->pos = 1; /* "done" until validated */
    if (len < IP4_MIN_HLEN || (ip[0] >> 4) != 4 || mtu < 68)
        return -QW_EINVAL;
    hlen = (ip[0] & 15u) * 4;
    tot = qw_get16(ip + 2);
    if (hlen < IP4_MIN_HLEN || tot < hlen || tot > len)
        return -QW_EINVAL;
    fo = qw_get16(ip + 6);
    if (mtu > IP4_MAX_LEN)
        mtu = IP4_MAX_LEN;
    it->ip = ip;
    it->len = tot;
    it->hlen = (uint16_t)hlen;
    it->mtu = (uint16_t)mtu;
    it->base_off = fo & IP4_OFF_MASK;
    it->base_mf = (fo & IP4_FLAG_MF) != 0;
    it->pos = 0;
    if (tot <= mtu) {
        it->whole = true;
        return 0;
    }
    if ((fo & IP4_FLAG_DF) ||
        it->base_off + (tot - hlen - 1) / 8 > IP4_OFF_MASK) {
        it->pos = 1;
        it->whole = true;
        return -QW_EINVAL;
    }
    it->ohlen = (uint8_t)(IP4_MIN_HLEN + copied_options(ip, hlen, it->opts));
    return 0;
}

size_t frag_split_next(struct frag_split *it, uint8_t *dst, size_t cap)
{
    uint32_t payload, h, room, chunk;
    bool first, last;

    if (it->whole) {
        if (it->pos != 0 || cap < it->len)
            return 0;
        __builtin_memcpy(dst, it->ip, it->len);
        it->pos = 1;
        return it->len;
    }
    payload = it->len - it->hlen;
    if (it->pos >= payload)
        return 0;
    first = it->pos == 0;
    h = first ? it->hlen : it->ohlen;
    room = (it->mtu - h) & ~7u;
    chunk = payload - it->pos < room ? payload - it->pos : room;
    last = it->pos + chunk == payload;
    if (cap < h + chunk)
        return 0;

    __builtin_memcpy(dst, it->ip, IP4_MIN_HLEN);
    if (first)
        __builtin_memcpy(dst + IP4_MIN_HLEN, it->ip + IP4_MIN_HLEN,
                         h - IP4_MIN_HLEN);
    else
        __builtin_memcpy(dst + IP4_MIN_HLEN, it->opts, h - IP4_MIN_HLEN);
    dst[0] = (uint8_t)(0x40 | h / 4);
    qw_put16(dst + 2, (uint16_t)(h + chunk));
    qw_put16(dst + 6, (uint16_t)((it->base_off + it->pos / 8) |
                                 (last && !it->base_mf ? 0 : IP4_FLAG_MF)));
    qw_put16(dst + 10, 0);
    qw_put16(dst + 10, qw_csum_fold(qw_csum_add(0, dst, h)));
    __builtin_memcpy(dst + h, it->ip + it->hlen + it->pos, chunk);
    it->pos += chunk;
    return h + chunk;
}
