/*
 * frag.c: IPv4 reassembly and refragmentation (see frag.h).
 *
 * Layout of the caller's block:
 *
 *   struct frag | struct frag_link[nlinks] | uint16_t next[nlinks * nblk]
 *               | uint8_t data[nlinks * nblk * FRAG_BLOCK]
 *
 * Each link owns nblk payload blocks with a free list threaded through
 * next[]. A stored fragment is a record (offset, length, first block); its
 * payload fills a chain of blocks. Records of a datagram are kept sorted by
 * offset, so overlap checks and the final copy are single passes. The
 * budget counts whole blocks, so a tiny fragment costs a whole block: an
 * attacker spraying 8-byte fragments runs out of budget sooner, not later.
 */
#include "frag.h"
#include "qwall.h"
#include "wire.h"

#define NO_BLOCK 0xffffu
#define MAX_BLOCKS (FRAG_MAX_LINK_BYTES / FRAG_BLOCK)

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
    uint32_t used;      /* blocks in use */
    uint16_t free_head; /* free list through next[] */
    uint16_t pending;   /* datagrams in progress */
    struct frag_dgram d[FRAG_MAX_DGRAMS];
};

struct frag {
    unsigned nlinks;
    uint32_t nblk; /* blocks per link */
    uint64_t seq;
    void (*dropped)(void *ctx, unsigned link, enum qw_drop why,
                    unsigned nfrags);
    void *ctx;
    uint16_t *next;               /* nlinks * nblk */
    uint8_t *data;                /* nlinks * nblk * FRAG_BLOCK */
    uint8_t out[IP4_MAX_LEN + 1]; /* completed datagram */
    struct frag_link links[];
};

static uint32_t blocks_for(uint32_t bytes_per_link)
{
    if (bytes_per_link < FRAG_MIN_LINK_BYTES)
        bytes_per_link = FRAG_MIN_LINK_BYTES;
    if (bytes_per_link > FRAG_MAX_LINK_BYTES)
        bytes_per_link = FRAG_MAX_LINK_BYTES;
    return bytes_per_link / FRAG_BLOCK;
}

static size_t align16(size_t n)
{
    return (n + 15) & ~(size_t)15;
}

size_t frag_mem_size(unsigned nlinks, uint32_t bytes_per_link)
{
    size_t nblk = blocks_for(bytes_per_link);
    size_t n = align16(sizeof(struct frag) +
                       (size_t)nlinks * sizeof(struct frag_link));

    n += align16((size_t)nlinks * nblk * sizeof(uint16_t));
    n += (size_t)nlinks * nblk * FRAG_BLOCK;
    return n;
}

static void link_reset(struct frag *f, unsigned link)
{
    struct frag_link *l = &f->links[link];
    uint16_t *next = f->next + (size_t)link * f->nblk;

    __builtin_memset(l, 0, sizeof(*l));
    for (uint32_t i = 0; i < f->nblk; i++)
        next[i] = (uint16_t)(i + 1 < f->nblk ? i + 1 : NO_BLOCK);
    l->free_head = 0;
}

void frag_init(struct frag *f, unsigned nlinks, uint32_t bytes_per_link)
{
    uint8_t *p = (uint8_t *)f;
    size_t off = align16(sizeof(struct frag) +
                         (size_t)nlinks * sizeof(struct frag_link));

    f->nlinks = nlinks;
    f->nblk = blocks_for(bytes_per_link);
    f->seq = 0;
    f->dropped = NULL;
    f->ctx = NULL;
    f->next = (uint16_t *)(p + off);
    off += align16((size_t)nlinks * f->nblk * sizeof(uint16_t));
    f->data = p + off;
    for (unsigned i = 0; i < nlinks; i++)
        link_reset(f, i);
}

void frag_set_drop_hook(struct frag *f,
                        void (*dropped)(void *ctx, unsigned link,
                                        enum qw_drop why, unsigned nfrags),
                        void *ctx)
{
    f->dropped = dropped;
    f->ctx = ctx;
}

static uint8_t *block_data(struct frag *f, unsigned link, uint16_t b)
{
    return f->data + ((size_t)link * f->nblk + b) * FRAG_BLOCK;
}

static uint32_t nblocks(uint32_t len)
{
    return (len + FRAG_BLOCK - 1) / FRAG_BLOCK;
}

/* Give a datagram's blocks back; report it if why != NONE. */
static void dgram_free(struct frag *f, unsigned link, struct frag_dgram *d,
                       enum qw_drop why)
{
    struct frag_link *l = &f->links[link];
    uint16_t *next = f->next + (size_t)link * f->nblk;

    for (unsigned i = 0; i < d->nrec; i++) {
        uint16_t b = d->rec[i].blk;
        for (uint32_t k = nblocks(d->rec[i].len); k > 0; k--) {
            uint16_t nb = next[b];
            next[b] = l->free_head;
            l->free_head = b;
            b = nb;
        }
    }
    l->used -= d->nblk;
    l->pending--;
    if (why != QW_DROP_NONE && d->nrec > 0 && f->dropped)
        f->dropped(f->ctx, link, why, d->nrec);
    d->used = false;
}

/* Oldest datagram of a link other than `keep`, or NULL. */
static struct frag_dgram *oldest(struct frag_link *l,
                                 const struct frag_dgram *keep)
{
    struct frag_dgram *o = NULL;

    for (unsigned i = 0; i < FRAG_MAX_DGRAMS; i++) {
        struct frag_dgram *d = &l->d[i];
        if (d->used && d != keep && (o == NULL || d->seq < o->seq))
            o = d;
    }
    return o;
}

static unsigned expire_link(struct frag *f, unsigned link, uint64_t now)
{
    struct frag_link *l = &f->links[link];
    unsigned n = 0;

    for (unsigned i = 0; i < FRAG_MAX_DGRAMS && l->pending > 0; i++) {
        struct frag_dgram *d = &l->d[i];
        if (d->used && now >= d->born && now - d->born >= FRAG_TIMEOUT_NS) {
            dgram_free(f, link, d, QW_DROP_FRAG_TIMEOUT);
            n++;
        }
    }
    return n;
}

unsigned frag_expire(struct frag *f, uint64_t now)
{
    unsigned n = 0;

    for (unsigned i = 0; i < f->nlinks; i++)
        n += expire_link(f, i, now);
    return n;
}

uint64_t frag_next_deadline(const struct frag *f)
{
    uint64_t t = UINT64_MAX;

    for (unsigned i = 0; i < f->nlinks; i++) {
        const struct frag_link *l = &f->links[i];
        for (unsigned k = 0; k < FRAG_MAX_DGRAMS && l->pending > 0; k++) {
            const struct frag_dgram *d = &l->d[k];
            uint64_t dl = d->born > UINT64_MAX - FRAG_TIMEOUT_NS
                              ? UINT64_MAX
                              : d->born + FRAG_TIMEOUT_NS;
            if (d->used && dl < t)
                t = dl;
        }
    }
    return t;
}

void frag_flush_link(struct frag *f, unsigned link)
{
    if (link < f->nlinks)
        link_reset(f, link);
}

uint32_t frag_link_used(const struct frag *f, unsigned link)
{
    return link < f->nlinks ? f->links[link].used * FRAG_BLOCK : 0;
}

unsigned frag_link_pending(const struct frag *f, unsigned link)
{
    return link < f->nlinks ? f->links[link].pending : 0;
}

/* The datagram for this key, a new one, or NULL (no slot could be had). */
static struct frag_dgram *dgram_get(struct frag *f, unsigned link,
                                    const uint8_t *ip, uint64_t now)
{
    struct frag_link *l = &f->links[link];
    uint32_t src = qw_get32(ip + 12), dst = qw_get32(ip + 16);
    uint16_t id = qw_get16(ip + 4);
    struct frag_dgram *fr = NULL;

    for (unsigned i = 0; i < FRAG_MAX_DGRAMS; i++) {
        struct frag_dgram *d = &l->d[i];
        if (!d->used) {
            if (fr == NULL)
                fr = d;
            continue;
        }
        if (d->src == src && d->dst == dst && d->id == id && d->proto == ip[9])
            return d;
    }
    if (fr == NULL) {
        /* Too many in progress: the oldest gives way. */
        fr = oldest(l, NULL);
        dgram_free(f, link, fr, QW_DROP_FRAG_NO_MEM);
    }
    __builtin_memset(fr, 0, sizeof(*fr) - sizeof(fr->rec));
    fr->used = true;
    fr->src = src;
    fr->dst = dst;
    fr->id = id;
    fr->proto = ip[9];
    fr->born = now;
    fr->seq = f->seq++;
    l->pending++;
    return fr;
}

/* Make room for `need` blocks by evicting other datagrams of the link. */
static bool make_room(struct frag *f, unsigned link, struct frag_dgram *keep,
                      uint32_t need)
{
    struct frag_link *l = &f->links[link];

    if (need > f->nblk)
        return false;
    while (f->nblk - l->used < need) {
        struct frag_dgram *o = oldest(l, keep);
        if (o == NULL)
            return false;
        dgram_free(f, link, o, QW_DROP_FRAG_NO_MEM);
    }
    return true;
}

/* Copy the payload into a fresh chain of blocks and insert its record at
 * index pos. Room was made beforehand. */
static void store(struct frag *f, unsigned link, struct frag_dgram *d,
                  unsigned pos, uint16_t off, const uint8_t *p, uint16_t len)
{
    struct frag_link *l = &f->links[link];
    uint16_t *next = f->next + (size_t)link * f->nblk;
    uint32_t n = nblocks(len);
    uint16_t first = l->free_head, b = first;

    for (uint32_t done = 0; done < len; done += FRAG_BLOCK) {
        uint32_t c = len - done < FRAG_BLOCK ? len - done : FRAG_BLOCK;
        __builtin_memcpy(block_data(f, link, b), p + done, c);
        b = next[b];
    }
    l->free_head = b; /* the chain stays linked from `first` */
    l->used += n;
    d->nblk += n;
    __builtin_memmove(&d->rec[pos + 1], &d->rec[pos],
                      (d->nrec - pos) * sizeof(d->rec[0]));
    d->rec[pos] = (struct frag_rec){.off = off, .len = len, .blk = first};
    d->nrec++;
    d->got += len;
}

/* Build the whole datagram in f->out. */
static size_t assemble(struct frag *f, unsigned link, struct frag_dgram *d)
{
    uint16_t *next = f->next + (size_t)link * f->nblk;
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
            __builtin_memcpy(w + done, block_data(f, link, b), c);
            b = next[b];
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

static int drop(struct frag *f, unsigned link, struct frag_dgram *d,
                enum qw_drop reason, enum qw_drop *why)
{
    if (d != NULL)
        dgram_free(f, link, d, reason);
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
        return drop(f, link, NULL, QW_DROP_FRAG_BAD, why);
    hlen = (ip[0] & 15u) * 4;
    tot = qw_get16(ip + 2);
    if (hlen < IP4_MIN_HLEN || tot < hlen || tot > len)
        return drop(f, link, NULL, QW_DROP_FRAG_BAD, why);
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
        return drop(f, link, NULL, QW_DROP_FRAG_BAD, why);
    if (off + plen + hlen > IP4_MAX_LEN)
        return drop(f, link, NULL, QW_DROP_FRAG_TOO_BIG, why);

    expire_link(f, link, now);
    d = dgram_get(f, link, ip, now);

    /* Checks against the datagram: on failure the whole datagram goes. */
    pos = place(d, off, plen);
    if (pos == -2)
        return drop(f, link, d, QW_DROP_FRAG_OVERLAP, why);
    if (!check_end(d, mf, off + plen))
        return drop(f, link, d, QW_DROP_FRAG_BAD, why);
    if (pos >= 0) {
        if (d->nrec >= FRAG_MAX_FRAGS)
            return drop(f, link, d, QW_DROP_FRAG_BAD, why);
        if (!make_room(f, link, d, nblocks(plen)))
            return drop(f, link, d, QW_DROP_FRAG_NO_MEM, why);
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
        return drop(f, link, d, QW_DROP_FRAG_TOO_BIG, why);
    *outlen = assemble(f, link, d);
    *out = f->out;
    dgram_free(f, link, d, QW_DROP_NONE);
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
