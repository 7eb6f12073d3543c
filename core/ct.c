/*
 * ct.c: connection tracking and NAT table (contracts in ct.h, design in
 * docs/conntrack.md).
 *
 * Memory: [struct ct][capacity x struct ct_entry][2 x nbuckets x uint32]
 * [capacity x 2 x uint32 per-link list links][nlinks + 1 x struct
 * ct_link]. Entries are linked by 32-bit slot indexes, never pointers, so
 * an entry stays 64 bytes (one cache line) on 64-bit hosts; the per-link
 * list links live beside the entries because they are only touched when
 * an entry is created, removed or moved in its LRU lists.
 *
 * Limitations:
 * - TCP is tracked by flags only, without sequence-window checks (Linux
 *   checks windows): a forged in-tuple RST moves an entry to CLOSE. An
 *   attacker must know the NAT port and both addresses to do it.
 */
#include "ct.h"
#include "wire.h"

#define NIL 0xffffffffu
#define NS_PER_S 1000000000ull

/* Longest hash chain allowed. Inserts that would exceed it are refused,
 * so every walk is bounded and a lookup never misses an entry. With a
 * secret hash and at most one entry per bucket on average, a chain this
 * long is practically impossible without an attack. */
#define CHAIN_MAX 24u

/* Random NAT ports tried after the client's own port is taken. */
#define PORT_TRIES 16u

/*
 * One client link's entries: two LRU lists (never replied, replied; head
 * = most recent) linked through ct.lk, in the same order as the global
 * lists restricted to this link, so that a link at its cap finds its own
 * victim in O(1).
 */
struct ct_link {
    uint32_t head[2], tail[2];
    uint32_t count;
};

struct ct {
    uint32_t capacity;
    uint32_t nlinks;   /* links[nlinks] is shared by larger link numbers */
    uint32_t link_cap; /* most entries per client link */
    uint32_t nself;    /* CT_LINK_SELF entries */
    uint32_t nbuckets;
    uint32_t bshift;      /* 64 - log2(nbuckets) */
    uint32_t free_head;   /* free slots chained through hnext[0] */
    uint32_t lru_head[3]; /* [0] never replied, [1] replied, [2] own;
                             head = most recently used */
    uint32_t lru_tail[3];
    uint32_t hand; /* ct_expire() clock hand */
    uint16_t port_lo, port_hi;
    uint32_t hk[4]; /* hash secret */
    uint64_t hmul;  /* hash secret, odd */
    struct ct_entry *ent;
    uint32_t *bucket[2]; /* [0] original keys, [1] reply keys */
    uint32_t *lk;        /* slot i: lk[2i] prev, lk[2i+1] next in its
                            link's list */
    struct ct_link *links;
    uint32_t (*rnd)(void *);
    void *rnd_ctx;
    struct ct_stats st;
};

static size_t buckets_for(unsigned capacity)
{
    size_t n = 16;

    while (n < capacity)
        n <<= 1;
    return n;
}

static size_t head_size(void)
{
    return (sizeof(struct ct) + 63) & ~(size_t)63;
}

size_t ct_mem_size_links(unsigned capacity, unsigned nlinks)
{
    if (capacity == 0 || capacity > CT_MAX_CAPACITY || nlinks == 0 ||
        nlinks > CT_MAX_LINKS)
        return 0;
    return head_size() + (size_t)capacity * sizeof(struct ct_entry) +
           2 * buckets_for(capacity) * sizeof(uint32_t) +
           2 * (size_t)capacity * sizeof(uint32_t) +
           ((size_t)nlinks + 1) * sizeof(struct ct_link);
}

size_t ct_mem_size(unsigned capacity)
{
    return ct_mem_size_links(capacity, CT_DEFAULT_LINKS);
}

_Static_assert(sizeof(struct ct_key) == 16, "ct_key is two 64-bit words");
_Static_assert(sizeof(struct ct_entry) == 64, "ct_entry is one cache line");

/*
 * A key as two 64-bit words: addresses, then ports and protocol with the
 * pad bytes masked off. Keys stored in entries always have zero pad, so
 * comparing them with a looked-up key is two XORs.
 */
struct kw {
    uint64_t a, b;
};

static inline uint64_t pad_mask(void)
{
    struct ct_key m;
    uint64_t w;

    __builtin_memset(&m, 0, sizeof m);
    m.sport = m.dport = 0xffff;
    m.proto = 0xff;
    __builtin_memcpy(&w, (const uint8_t *)&m + 8, 8);
    return w; /* a constant once compiled */
}

static inline struct kw kwords(const struct ct_key *k)
{
    struct kw w;

    __builtin_memcpy(&w.a, k, 8);
    __builtin_memcpy(&w.b, (const uint8_t *)k + 8, 8);
    w.b &= pad_mask();
    return w;
}

/*
 * Keyed hash of a key: one NH round (Black et al., UMAC) over its four
 * 32-bit words, then a multiply-xorshift finaliser; the index is the top
 * bits. NH under a secret key makes two chosen keys collide with
 * probability about 2^-32, which keeps a remote peer from piling its
 * flows onto one chain (Linux conntrack seeds jhash for the same
 * reason). About a dozen instructions and no table.
 */
static inline uint32_t hkw(const struct ct *t, struct kw w)
{
    uint64_t h;

    h = (uint64_t)((uint32_t)w.a + t->hk[0]) *
        (uint32_t)((uint32_t)(w.a >> 32) + t->hk[1]);
    h += (uint64_t)((uint32_t)w.b + t->hk[2]) *
         (uint32_t)((uint32_t)(w.b >> 32) + t->hk[3]);
    h ^= h >> 29;
    h *= t->hmul;
    return (uint32_t)(h >> t->bshift);
}

static inline uint32_t hkey(const struct ct *t, const struct ct_key *k)
{
    return hkw(t, kwords(k));
}

static inline const struct ct_key *ekey(const struct ct_entry *e, int d)
{
    return d ? &e->reply : &e->orig;
}

static void key_set(struct ct_key *k, uint8_t proto, uint32_t src, uint32_t dst,
                    uint16_t sport, uint16_t dport)
{
    k->src = src;
    k->dst = dst;
    k->sport = sport;
    k->dport = dport;
    k->proto = proto;
    k->pad[0] = k->pad[1] = k->pad[2] = 0;
}

/* Slot of the entry with key w in index d (NIL if none); *len = the
 * number of entries walked (the chain's length when w is absent). Inlined
 * so that the hot lookups get a constant d. */
static inline __attribute__((always_inline)) uint32_t
find_w(const struct ct *t, int d, struct kw w, uint32_t h, unsigned *len)
{
    uint32_t i = t->bucket[d][h];
    unsigned n;

    for (n = 0; i != NIL && n < CHAIN_MAX; n++) {
        const struct ct_entry *e = &t->ent[i];
        uint64_t a, b;

        __builtin_memcpy(&a, ekey(e, d), 8);
        __builtin_memcpy(&b, (const uint8_t *)ekey(e, d) + 8, 8);
        if (((a ^ w.a) | (b ^ w.b)) == 0)
            break;
        i = e->hnext[d];
    }
    if (n == CHAIN_MAX)
        i = NIL; /* unreachable while the chain bound holds */
    if (len != NULL)
        *len = n;
    return i;
}

static uint32_t find(const struct ct *t, int d, const struct ct_key *k,
                     uint32_t h, unsigned *len)
{
    return find_w(t, d, kwords(k), h, len);
}

static void hash_unlink(struct ct *t, int d, uint32_t i)
{
    uint32_t *p = &t->bucket[d][hkey(t, ekey(&t->ent[i], d))];
    unsigned n = 0;

    while (*p != NIL && *p != i && n++ <= CHAIN_MAX)
        p = &t->ent[*p].hnext[d];
    if (*p == i)
        *p = t->ent[i].hnext[d];
}

static void hash_link(struct ct *t, int d, uint32_t i, uint32_t h)
{
    t->ent[i].hnext[d] = t->bucket[d][h];
    t->bucket[d][h] = i;
}

/* LRU list of an entry. The firewall's own entries (DNS queries) have a
 * list of their own so that a client's flood of new flows cannot evict
 * them; they are few and short-lived. */
static inline int lru_of(const struct ct_entry *e)
{
    if (e->link == CT_LINK_SELF)
        return 2;
    return (e->flags & CT_F_REPLIED) ? 1 : 0;
}

/* Per-link record of a client link (not CT_LINK_SELF). */
static inline struct ct_link *link_of(const struct ct *t, uint16_t link)
{
    return &t->links[link < t->nlinks ? link : t->nlinks];
}

/* Global list l: unlink slot i / make it the most recent. */
static inline void g_unlink(struct ct *t, int l, uint32_t i)
{
    struct ct_entry *e = &t->ent[i];

    if (e->lprev != NIL)
        t->ent[e->lprev].lnext = e->lnext;
    else
        t->lru_head[l] = e->lnext;
    if (e->lnext != NIL)
        t->ent[e->lnext].lprev = e->lprev;
    else
        t->lru_tail[l] = e->lprev;
}

static inline void g_push(struct ct *t, int l, uint32_t i)
{
    struct ct_entry *e = &t->ent[i];

    e->lprev = NIL;
    e->lnext = t->lru_head[l];
    if (e->lnext != NIL)
        t->ent[e->lnext].lprev = i;
    else
        t->lru_tail[l] = i;
    t->lru_head[l] = i;
}

/* List l of link record k: unlink slot i / make it the most recent. */
static inline void k_unlink(struct ct *t, struct ct_link *k, int l, uint32_t i)
{
    uint32_t prev = t->lk[2 * i], next = t->lk[2 * i + 1];

    if (prev != NIL)
        t->lk[2 * prev + 1] = next;
    else
        k->head[l] = next;
    if (next != NIL)
        t->lk[2 * next] = prev;
    else
        k->tail[l] = prev;
}

static inline void k_push(struct ct *t, struct ct_link *k, int l, uint32_t i)
{
    uint32_t next = k->head[l];

    t->lk[2 * i] = NIL;
    t->lk[2 * i + 1] = next;
    if (next != NIL)
        t->lk[2 * next] = i;
    else
        k->tail[l] = i;
    k->head[l] = i;
}

/* Unlink slot i from global list l and, for a client entry, from its
 * link's list l. */
static void lru_unlink(struct ct *t, int l, uint32_t i)
{
    g_unlink(t, l, i);
    if (l < 2)
        k_unlink(t, link_of(t, t->ent[i].link), l, i);
}

/* Make slot i the most recent of global list l and of its link's list l:
 * both lists stay in the same order. */
static void lru_push(struct ct *t, int l, uint32_t i)
{
    g_push(t, l, i);
    if (l < 2)
        k_push(t, link_of(t, t->ent[i].link), l, i);
}

/* Count e in its link (or among the firewall's own) by delta. */
static inline void count_add(struct ct *t, const struct ct_entry *e, int delta)
{
    if (e->link == CT_LINK_SELF)
        t->nself += (uint32_t)delta;
    else
        link_of(t, e->link)->count += (uint32_t)delta;
}

static void slot_free(struct ct *t, uint32_t i)
{
    struct ct_entry *e = &t->ent[i];

    hash_unlink(t, 0, i);
    hash_unlink(t, 1, i);
    lru_unlink(t, lru_of(e), i);
    count_add(t, e, -1);
    __builtin_memset(e, 0, sizeof *e);
    e->hnext[0] = t->free_head;
    t->free_head = i;
    t->st.entries--;
}

static inline bool expired(const struct ct_entry *e, uint64_t now)
{
    return now != 0 && e->expires <= now;
}

static void reset(struct ct *t)
{
    __builtin_memset(t->ent, 0, (size_t)t->capacity * sizeof *t->ent);
    for (uint32_t i = 0; i < t->capacity; i++)
        t->ent[i].hnext[0] = i + 1 < t->capacity ? i + 1 : NIL;
    t->free_head = 0;
    __builtin_memset(t->bucket[0], 0xff,
                     2 * (size_t)t->nbuckets * sizeof(uint32_t));
    for (int l = 0; l < 3; l++)
        t->lru_head[l] = t->lru_tail[l] = NIL;
    /* lk needs no reset: lru_push() sets a slot's links */
    for (uint32_t k = 0; k <= t->nlinks; k++) {
        t->links[k].head[0] = t->links[k].head[1] = NIL;
        t->links[k].tail[0] = t->links[k].tail[1] = NIL;
        t->links[k].count = 0;
    }
    t->nself = 0;
    t->hand = 0;
    t->st.entries = 0;
}

static uint32_t default_link_cap(uint32_t capacity)
{
    return capacity / 2 > CT_LINK_CAP_MIN ? capacity / 2 : CT_LINK_CAP_MIN;
}

struct ct *ct_init_links(void *mem, unsigned capacity, unsigned nlinks,
                         unsigned link_cap, uint32_t (*rnd)(void *),
                         void *rnd_ctx)
{
    struct ct *t = mem;
    uint8_t *p = mem;
    unsigned bits = 0;

    if (mem == NULL || rnd == NULL || ct_mem_size_links(capacity, nlinks) == 0)
        return NULL;
    __builtin_memset(t, 0, sizeof *t);
    t->capacity = capacity;
    t->nlinks = nlinks;
    t->link_cap = link_cap ? link_cap : default_link_cap(capacity);
    t->nbuckets = (uint32_t)buckets_for(capacity);
    while ((1u << bits) < t->nbuckets)
        bits++;
    t->bshift = 64 - bits;
    t->ent = (struct ct_entry *)(p + head_size());
    t->bucket[0] = (uint32_t *)(t->ent + capacity);
    t->bucket[1] = t->bucket[0] + t->nbuckets;
    t->lk = t->bucket[1] + t->nbuckets;
    t->links = (struct ct_link *)(t->lk + 2 * (size_t)capacity);
    t->rnd = rnd;
    t->rnd_ctx = rnd_ctx;
    for (int i = 0; i < 4; i++)
        t->hk[i] = rnd(rnd_ctx);
    t->hmul = ((uint64_t)rnd(rnd_ctx) << 32 | rnd(rnd_ctx)) | 1;
    t->port_lo = CT_PORT_MIN;
    t->port_hi = CT_PORT_MAX;
    t->st.capacity = capacity;
    reset(t);
    return t;
}

struct ct *ct_init(void *mem, unsigned capacity, uint32_t (*rnd)(void *),
                   void *rnd_ctx)
{
    return ct_init_links(mem, capacity, CT_DEFAULT_LINKS, 0, rnd, rnd_ctx);
}

void ct_set_link_cap(struct ct *t, unsigned link_cap)
{
    t->link_cap = link_cap ? link_cap : default_link_cap(t->capacity);
}

unsigned ct_link_cap(const struct ct *t)
{
    return t->link_cap;
}

unsigned ct_link_count(const struct ct *t, uint16_t link)
{
    return link == CT_LINK_SELF ? t->nself : link_of(t, link)->count;
}

int ct_set_port_range(struct ct *t, uint16_t lo, uint16_t hi)
{
    if (lo == 0 || lo > hi)
        return -QW_EINVAL;
    t->port_lo = lo;
    t->port_hi = hi;
    return 0;
}

/* Out of line so that the lookup fast path saves no registers for it. */
static __attribute__((noinline)) void reap_slow(struct ct *t, uint32_t i)
{
    slot_free(t, i);
    t->st.expired++;
}

/* Remove e if it expired; true if it did. */
static inline bool reap(struct ct *t, uint32_t i, uint64_t now)
{
    if (!expired(&t->ent[i], now))
        return false;
    reap_slow(t, i);
    return true;
}

struct ct_entry *ct_lookup_dir(struct ct *t, const struct ct_key *k, int dir,
                               uint64_t now)
{
    struct kw w = kwords(k);
    uint32_t h = hkw(t, w);
    uint32_t i = dir ? find_w(t, 1, w, h, NULL) : find_w(t, 0, w, h, NULL);

    if (i == NIL || reap(t, i, now))
        return NULL;
    return &t->ent[i];
}

struct ct_entry *ct_lookup(struct ct *t, const struct ct_key *k, uint64_t now,
                           int *dir)
{
    struct kw w = kwords(k);
    uint32_t h = hkw(t, w); /* one hash serves both indexes */

    for (int d = 0; d < 2; d++) {
        uint32_t i = find_w(t, d, w, h, NULL);

        if (i == NIL)
            continue;
        if (reap(t, i, now))
            return NULL;
        if (dir != NULL)
            *dir = d;
        return &t->ent[i];
    }
    return NULL;
}

static inline uint32_t timeout_s(const struct ct_entry *e)
{
    static const uint32_t tcp[CT_STATE__COUNT] = {
        [CT_NONE] = CT_TO_CLOSE,        [CT_SYN_SENT] = CT_TO_SYN_SENT,
        [CT_SYN_RECV] = CT_TO_SYN_RECV, [CT_ESTABLISHED] = CT_TO_ESTABLISHED,
        [CT_FIN_WAIT] = CT_TO_FIN_WAIT, [CT_CLOSE_WAIT] = CT_TO_CLOSE_WAIT,
        [CT_LAST_ACK] = CT_TO_LAST_ACK, [CT_TIME_WAIT] = CT_TO_TIME_WAIT,
        [CT_CLOSE] = CT_TO_CLOSE,
    };

    switch (e->orig.proto) {
    case IPPROTO_TCP_:
        return e->state < CT_STATE__COUNT ? tcp[e->state] : CT_TO_CLOSE;
    case IPPROTO_UDP_:
        return (e->flags & CT_F_REPLIED) ? CT_TO_UDP_REPLIED : CT_TO_UDP;
    case IPPROTO_ICMP_:
        return CT_TO_ICMP;
    default:
        return CT_TO_OTHER;
    }
}

uint32_t ct_timeout(const struct ct_entry *e)
{
    return timeout_s(e);
}

bool ct_tcp_closing(const struct ct_entry *e)
{
    return e->orig.proto == IPPROTO_TCP_ &&
           (e->state == CT_TIME_WAIT || e->state == CT_CLOSE);
}

bool ct_tcp_reopens(const struct ct_entry *e, int dir, uint8_t tcp_flags)
{
    return dir == 0 &&
           (tcp_flags & (CT_TCP_SYN | CT_TCP_ACK | CT_TCP_RST | CT_TCP_FIN)) ==
               CT_TCP_SYN &&
           ct_tcp_closing(e);
}

/*
 * Is reply key k free for a new entry? Also refuses a key already used as
 * an original key (a client flow towards our own uplink address) and a
 * key whose chain is at its bound. An expired holder is reaped.
 */
static bool reply_free(struct ct *t, const struct ct_key *k, uint64_t now,
                       uint32_t *hout)
{
    uint32_t h = hkey(t, k);
    unsigned len;

    for (int d = 0; d < 2; d++) {
        uint32_t i = find(t, d, k, h, &len);

        if (i != NIL && !reap(t, i, now))
            return false;
    }
    find(t, 1, k, h, &len);
    if (len >= CHAIN_MAX) {
        t->st.chain_fail++;
        return false;
    }
    *hout = h;
    return true;
}

/* The victim among LRU tails un (never replied) and r (replied): r if it
 * has expired (it costs nobody anything), else un, else r. */
static inline uint32_t pick_victim(const struct ct *t, uint32_t un, uint32_t r,
                                   uint64_t now)
{
    if (r != NIL && expired(&t->ent[r], now))
        return r;
    return un != NIL ? un : r;
}

/* Make room by removing slot v; *cause counts it unless it had expired. */
static void evict(struct ct *t, uint32_t v, uint64_t now, uint64_t *cause)
{
    if (reap(t, v, now))
        return;
    t->st.evicted++;
    (*cause)++;
    if (t->ent[v].flags & CT_F_REPLIED)
        t->st.evicted_replied++;
    slot_free(t, v);
}

/*
 * Take a free slot for an entry of `link`. A client link at its cap gives
 * up its own least recently used entry (never-replied first), so a flood
 * from one client recycles that client's entries only. Otherwise, if the
 * table is full: an expired replied entry first, then the least recently
 * used never-replied entry, then the least recently used replied one; the
 * firewall's own entries only when nothing else is left.
 */
static uint32_t slot_alloc(struct ct *t, uint16_t link, uint64_t now)
{
    uint32_t i;

    if (link != CT_LINK_SELF) {
        const struct ct_link *k = link_of(t, link);

        if (k->count >= t->link_cap) /* count >= 1: a tail exists */
            evict(t, pick_victim(t, k->tail[0], k->tail[1], now), now,
                  &t->st.evicted_link_cap);
    }
    if (t->free_head == NIL) {
        uint32_t v = pick_victim(t, t->lru_tail[0], t->lru_tail[1], now);

        if (v != NIL)
            evict(t, v, now, &t->st.evicted_table_full);
        else
            evict(t, t->lru_tail[2], now, &t->st.evicted_self);
    }
    i = t->free_head;
    t->free_head = t->ent[i].hnext[0];
    return i;
}

static struct ct_entry *insert(struct ct *t, const struct ct_key *orig,
                               uint32_t horig, const struct ct_key *reply,
                               uint32_t hreply, uint16_t link, uint64_t now)
{
    uint32_t i = slot_alloc(t, link, now);
    struct ct_entry *e = &t->ent[i];

    __builtin_memset(e, 0, sizeof *e);
    key_set(&e->orig, orig->proto, orig->src, orig->dst, orig->sport,
            orig->dport);
    e->reply = *reply;
    e->link = link;
    e->flags = CT_F_USED;
    e->state = orig->proto == IPPROTO_TCP_ ? CT_SYN_SENT : CT_NONE;
    e->expires = now + (uint64_t)timeout_s(e) * NS_PER_S;
    hash_link(t, 0, i, horig);
    hash_link(t, 1, i, hreply);
    lru_push(t, lru_of(e), i);
    count_add(t, e, 1);
    t->st.created++;
    if (++t->st.entries > t->st.high_water)
        t->st.high_water = t->st.entries;
    return e;
}

static bool has_ports(uint8_t proto)
{
    return proto == IPPROTO_TCP_ || proto == IPPROTO_UDP_ ||
           proto == IPPROTO_ICMP_;
}

static uint16_t random_port(struct ct *t)
{
    uint32_t span = (uint32_t)t->port_hi - t->port_lo + 1;

    return (uint16_t)(t->port_lo + t->rnd(t->rnd_ctx) % span);
}

/* Original key free and its chain below the bound? */
static int orig_free(struct ct *t, const struct ct_key *orig, uint64_t now,
                     uint32_t *h, struct ct_entry **e)
{
    unsigned len;
    uint32_t i;

    *h = hkey(t, orig);
    i = find(t, 0, orig, *h, &len);
    if (i != NIL && !reap(t, i, now)) {
        *e = &t->ent[i];
        return -QW_EEXIST;
    }
    if (i != NIL)
        find(t, 0, orig, *h, &len);
    if (len >= CHAIN_MAX) {
        t->st.chain_fail++;
        return -QW_ENOSPC;
    }
    return 0;
}

int ct_create(struct ct *t, const struct ct_key *orig, uint32_t nat_addr,
              uint16_t link, uint64_t now, struct ct_entry **e)
{
    struct ct_key r;
    uint32_t ho, hr;
    int rc;

    *e = NULL;
    if (link == CT_LINK_SELF)
        return -QW_EINVAL;
    rc = orig_free(t, orig, now, &ho, e);
    if (rc < 0)
        return rc;

    /* Keep the client's port (ICMP: query id) if we can. */
    key_set(&r, orig->proto, orig->dst, nat_addr, orig->dport, orig->sport);
    if (!reply_free(t, &r, now, &hr)) {
        unsigned n = has_ports(orig->proto) ? PORT_TRIES : 0;

        while (n > 0) {
            r.dport = random_port(t);
            if (reply_free(t, &r, now, &hr))
                break;
            n--;
        }
        if (n == 0) {
            t->st.port_fail++;
            return -QW_ENOSPC;
        }
    }
    /* Reaping above may have shortened, never lengthened, the chains. */
    *e = insert(t, orig, ho, &r, hr, link, now);
    return 0;
}

int ct_reserve_self(struct ct *t, uint8_t proto, uint32_t local_addr,
                    uint32_t remote, uint16_t rport, uint64_t now,
                    uint16_t *port)
{
    struct ct_key o, r;
    struct ct_entry *e;

    *port = 0;
    if (proto != IPPROTO_UDP_ && proto != IPPROTO_TCP_)
        return -QW_EINVAL;
    for (unsigned n = 0; n < PORT_TRIES; n++) {
        uint16_t p = random_port(t);
        uint32_t ho, hr;

        key_set(&o, proto, local_addr, remote, p, rport);
        key_set(&r, proto, remote, local_addr, rport, p);
        if (orig_free(t, &o, now, &ho, &e) < 0 || !reply_free(t, &r, now, &hr))
            continue;
        insert(t, &o, ho, &r, hr, CT_LINK_SELF, now);
        *port = p;
        return 0;
    }
    t->st.port_fail++;
    return -QW_ENOSPC;
}

void ct_release_self(struct ct *t, uint8_t proto, uint32_t local_addr,
                     uint32_t remote, uint16_t rport, uint16_t port)
{
    struct ct_key o;
    uint32_t i;

    key_set(&o, proto, local_addr, remote, port, rport);
    i = find(t, 0, &o, hkey(t, &o), NULL);
    if (i != NIL && t->ent[i].link == CT_LINK_SELF)
        slot_free(t, i);
}

/*
 * TCP state after a packet with flags f in direction dir. Follows the
 * shape of Linux's tcp_conntracks table without its sequence checks:
 * the side that sends the first FIN is remembered so that FIN_WAIT ->
 * CLOSE_WAIT needs the other side's ACK and LAST_ACK -> TIME_WAIT needs
 * the first closer's ACK of the second FIN.
 */
static void tcp_step(struct ct_entry *e, int dir, uint8_t f)
{
    uint8_t mine = dir ? CT_F_FIN_REPLY : CT_F_FIN_ORIG;
    bool other =
        (e->flags & (CT_F_FIN_ORIG | CT_F_FIN_REPLY)) && !(e->flags & mine);

    if (f & CT_TCP_RST) {
        e->state = CT_CLOSE;
        return;
    }
    if (f & CT_TCP_SYN) {
        if (dir == 0 && (e->state == CT_TIME_WAIT || e->state == CT_CLOSE)) {
            /* the client reuses the tuple: a new connection */
            e->state = CT_SYN_SENT;
            e->flags &= (uint8_t) ~(CT_F_FIN_ORIG | CT_F_FIN_REPLY);
        } else if (dir == 1 && e->state == CT_SYN_SENT) {
            e->state = CT_SYN_RECV; /* SYN-ACK, or simultaneous open */
        }
        return;
    }
    if (f & CT_TCP_FIN) {
        switch (e->state) {
        case CT_SYN_RECV:
        case CT_ESTABLISHED:
            e->state = CT_FIN_WAIT;
            e->flags |= mine;
            break;
        case CT_FIN_WAIT:
        case CT_CLOSE_WAIT:
            if (other)
                e->state = CT_LAST_ACK;
            break;
        default:
            break;
        }
        return;
    }
    if (!(f & CT_TCP_ACK))
        return;
    if (e->state == CT_SYN_RECV && dir == 0)
        e->state = CT_ESTABLISHED;
    else if (e->state == CT_FIN_WAIT && other)
        e->state = CT_CLOSE_WAIT;
    else if (e->state == CT_LAST_ACK && !other)
        e->state = CT_TIME_WAIT;
}

/* Make slot i the most recent of its list, after setting `flags` (which
 * may move it to another list). */
static __attribute__((noinline)) void relink(struct ct *t, uint32_t i, int l,
                                             uint8_t flags)
{
    struct ct_entry *e = &t->ent[i];
    int nl;

    g_unlink(t, l, i);
    e->flags |= flags;
    nl = lru_of(e);
    g_push(t, nl, i);
    if (nl < 2) {
        struct ct_link *k = link_of(t, e->link);

        /* interleaved flows of different links: often already the most
         * recent of its own link */
        if (nl != l || k->head[l] != i) {
            k_unlink(t, k, l, i);
            k_push(t, k, nl, i);
        }
    }
}

void ct_update(struct ct *t, struct ct_entry *e, int dir, uint8_t tcp_flags,
               uint64_t now)
{
    uint32_t i = (uint32_t)(e - t->ent);
    int l = lru_of(e);

    /* An established flow's ACKs change no state: skip the machine. */
    if (e->orig.proto == IPPROTO_TCP_ &&
        ((tcp_flags & (CT_TCP_SYN | CT_TCP_FIN | CT_TCP_RST)) ||
         e->state != CT_ESTABLISHED))
        tcp_step(e, dir, tcp_flags);
    if (dir && !(e->flags & CT_F_REPLIED))
        relink(t, i, l, CT_F_REPLIED);
    else if (t->lru_head[l] != i) /* a busy flow costs no list writes */
        relink(t, i, l, 0);
    e->expires = now + (uint64_t)timeout_s(e) * NS_PER_S;
}

void ct_remove(struct ct *t, struct ct_entry *e)
{
    if (e->flags & CT_F_USED)
        slot_free(t, (uint32_t)(e - t->ent));
}

unsigned ct_expire(struct ct *t, uint64_t now, unsigned budget)
{
    unsigned removed = 0;

    if (budget > t->capacity)
        budget = t->capacity;
    while (budget-- > 0) {
        uint32_t i = t->hand;

        t->hand = i + 1 < t->capacity ? i + 1 : 0;
        if ((t->ent[i].flags & CT_F_USED) && reap(t, i, now))
            removed++;
    }
    return removed;
}

/* Remove the entries of `link` on list l (per-link list for a client
 * link, the global own list for CT_LINK_SELF) that keep() rejects. */
static unsigned recheck_list(struct ct *t, uint16_t link, int l,
                             bool (*keep)(void *ctx, const struct ct_entry *e),
                             void *ctx)
{
    bool self = link == CT_LINK_SELF;
    uint32_t i = self ? t->lru_head[2] : link_of(t, link)->head[l];
    unsigned removed = 0;

    while (i != NIL) {
        struct ct_entry *e = &t->ent[i];
        uint32_t next = self ? e->lnext : t->lk[2 * i + 1];

        /* links >= nlinks share a list: look at the number */
        if (e->link == link && (keep == NULL || !keep(ctx, e))) {
            slot_free(t, i);
            removed++;
        }
        i = next;
    }
    return removed;
}

unsigned ct_recheck_link(struct ct *t, uint16_t link,
                         bool (*keep)(void *ctx, const struct ct_entry *e),
                         void *ctx)
{
    if (link == CT_LINK_SELF)
        return recheck_list(t, link, 2, keep, ctx);
    return recheck_list(t, link, 0, keep, ctx) +
           recheck_list(t, link, 1, keep, ctx);
}

unsigned ct_flush_link(struct ct *t, uint16_t link)
{
    return ct_recheck_link(t, link, NULL, NULL);
}

void ct_flush(struct ct *t)
{
    reset(t);
}

unsigned ct_count(const struct ct *t)
{
    return t->st.entries;
}

const struct ct_stats *ct_get_stats(const struct ct *t)
{
    return &t->st;
}

/* One LRU list: links, membership and length. Returns its length or -1. */
static long check_lru(const struct ct *t, int l)
{
    uint32_t i = t->lru_head[l], prev = NIL;
    long n = 0;

    while (i != NIL) {
        const struct ct_entry *e;

        if (i >= t->capacity || n > (long)t->capacity)
            return -1;
        e = &t->ent[i];
        if (!(e->flags & CT_F_USED) || lru_of(e) != l || e->lprev != prev)
            return -1;
        prev = i;
        i = e->lnext;
        n++;
    }
    return prev == t->lru_tail[l] ? n : -1;
}

/* Per-link list l of record k: links, membership, order. Returns its
 * length or -1. */
static long check_link_list(const struct ct *t, uint32_t k, int l)
{
    const struct ct_link *r = &t->links[k];
    uint32_t i = r->head[l], prev = NIL;
    long n = 0;

    while (i != NIL) {
        const struct ct_entry *e;

        if (i >= t->capacity || n > (long)t->capacity)
            return -1;
        e = &t->ent[i];
        if (!(e->flags & CT_F_USED) || e->link == CT_LINK_SELF ||
            link_of(t, e->link) != r || lru_of(e) != l || t->lk[2 * i] != prev)
            return -1;
        /* same order as the global list: the global head is the link
         * head (ct_update() relies on it to skip relinking) */
        if (t->lru_head[l] == i && prev != NIL)
            return -1;
        prev = i;
        i = t->lk[2 * i + 1];
        n++;
    }
    return prev == r->tail[l] ? n : -1;
}

/* Every per-link record: lists and counts; they and the own entries add
 * up to `used`. */
static int check_links(const struct ct *t, uint32_t used, long nself)
{
    uint64_t sum = 0;

    for (uint32_t k = 0; k <= t->nlinks; k++) {
        long a = check_link_list(t, k, 0), b = check_link_list(t, k, 1);

        if (a < 0 || b < 0 || (uint64_t)(a + b) != t->links[k].count)
            return -1;
        sum += t->links[k].count;
    }
    if ((long)t->nself != nself || sum + t->nself != used)
        return -1;
    return 0;
}

/* One hash index: chain bounds, bucket placement, entry count. */
static int check_index(const struct ct *t, int d)
{
    uint32_t total = 0;

    for (uint32_t b = 0; b < t->nbuckets; b++) {
        uint32_t i = t->bucket[d][b];
        unsigned n = 0;

        while (i != NIL) {
            const struct ct_entry *e;

            if (i >= t->capacity || ++n > CHAIN_MAX)
                return -1;
            e = &t->ent[i];
            if (!(e->flags & CT_F_USED) || hkey(t, ekey(e, d)) != b)
                return -1;
            i = e->hnext[d];
        }
        total += n;
    }
    return total == t->st.entries ? 0 : -1;
}

int ct_check(const struct ct *t)
{
    uint32_t used = 0, nfree = 0;
    long a, b, c;

    for (uint32_t i = 0; i < t->capacity; i++) {
        const struct ct_entry *e = &t->ent[i];

        if (!(e->flags & CT_F_USED))
            continue;
        used++;
        if (find(t, 0, &e->orig, hkey(t, &e->orig), NULL) != i)
            return -1;
        if (find(t, 1, &e->reply, hkey(t, &e->reply), NULL) != i)
            return -2;
        if (e->state >= CT_STATE__COUNT ||
            (e->orig.proto != IPPROTO_TCP_ && e->state != CT_NONE))
            return -3;
    }
    if (used != t->st.entries || used > t->st.high_water)
        return -4;
    for (uint32_t i = t->free_head; i != NIL; i = t->ent[i].hnext[0]) {
        if (i >= t->capacity || nfree > t->capacity ||
            (t->ent[i].flags & CT_F_USED))
            return -5;
        nfree++;
    }
    if (nfree + used != t->capacity)
        return -6;
    if (check_index(t, 0) < 0)
        return -7;
    if (check_index(t, 1) < 0)
        return -8;
    a = check_lru(t, 0);
    b = check_lru(t, 1);
    c = check_lru(t, 2);
    if (a < 0 || b < 0 || c < 0 || a + b + c != (long)used)
        return -9;
    if (check_links(t, used, c) < 0)
        return -10;
    return 0;
}
