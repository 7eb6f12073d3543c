/*
 * dns.c: DNS client for dsthost rules (see dns.h for the contract and
 * docs/dns.md for the design).
 *
 * Wire format: RFC 1035 sections 4.1 (message), 4.1.4 (compression); RFC
 * 2181 section 8 (TTL with the top bit set); RFC 6891 (EDNS0 OPT record).
 *
 * Limitations:
 *   - UDP only: a truncated reply (TC) is used for what it holds, else the
 *     attempt fails and the next server / a later retry is tried.
 *     TODO: retry over TCP when TC is set and nothing usable arrived.
 *   - The cache tracks A records (IPv4 tree) only; the wire layer already
 *     handles AAAA. TODO: a family argument to dns_ref() for the IPv6 tree.
 *   - No 0x20 case randomisation of queries (the id, the random port and
 *     the question check are the spoofing defence).
 */
#include "dns.h"

#include "fmt.h"
#include "rules.h"
#include "wire.h"

#define NS_PER_S 1000000000ull
#define WIRE_NAME_MAX 255 /* RFC 1035 3.1, including the root label */
#define PTR_HOPS_MAX 64   /* compression jumps per name */
#define HDR_LEN 12
#define FLAG_QR 0x8000
#define FLAG_OPCODE 0x7800
#define FLAG_TC 0x0200
#define FLAG_RD 0x0100
#define RCODE_NXDOMAIN 3
#define LOG_BURST 10   /* log lines before the rate limit bites */
#define LOG_PERIOD_S 2 /* one more line allowed per period */
#define NO_TIME UINT64_MAX
#define ST_TIMEOUT (-100) /* fail(): every attempt timed out */

/* ---- wire format ---------------------------------------------------- */

static uint8_t lower(uint8_t c)
{
    return c >= 'A' && c <= 'Z' ? (uint8_t)(c + 'a' - 'A') : c;
}

static bool host_char(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '-' || c == '_';
}

/*
 * Text host name -> wire form in out (WIRE_NAME_MAX bytes), lower-cased if
 * fold. One trailing dot is allowed. Returns the wire length (with the
 * root label) or 0 if the name is not a valid host name.
 */
static size_t name_to_wire(const char *name, uint8_t *out, bool fold)
{
    size_t len = 0, lab = 0; /* lab: offset of the current length byte */
    const uint8_t *p = (const uint8_t *)name;

    out[len++] = 0;
    for (; *p != '\0'; p++) {
        if (*p == '.') {
            if (len - lab - 1 == 0)
                return 0; /* empty label (or leading dot) */
            if (p[1] == '\0')
                break; /* trailing dot */
            lab = len;
            out[len++] = 0;
            continue;
        }
        if (!host_char(*p) || len - lab - 1 >= 63 || len >= WIRE_NAME_MAX - 1)
            return 0;
        out[len++] = fold ? lower(*p) : *p;
        out[lab]++;
    }
    if (len - lab - 1 == 0)
        return 0; /* empty name */
    out[len++] = 0;
    return len;
}

size_t dns_build_query(uint8_t *buf, size_t cap, uint16_t id, const char *name,
                       uint16_t qtype)
{
    uint8_t wire[WIRE_NAME_MAX];
    size_t wl = name_to_wire(name, wire, false), n = HDR_LEN;

    if (wl == 0 || (qtype != DNS_TYPE_A && qtype != DNS_TYPE_AAAA) ||
        cap < HDR_LEN + wl + 4 + 11)
        return 0;
    __builtin_memset(buf, 0, HDR_LEN);
    qw_put16(buf, id);
    qw_put16(buf + 2, FLAG_RD);
    qw_put16(buf + 4, 1);  /* QDCOUNT */
    qw_put16(buf + 10, 1); /* ARCOUNT: the OPT record */
    __builtin_memcpy(buf + n, wire, wl);
    n += wl;
    qw_put16(buf + n, qtype);
    qw_put16(buf + n + 2, DNS_CLASS_IN);
    n += 4;
    /* OPT (RFC 6891 6.1.2): root owner, CLASS = UDP payload size, TTL =
     * extended RCODE 0, version 0, no DO bit; no options. */
    buf[n] = 0;
    qw_put16(buf + n + 1, DNS_TYPE_OPT);
    qw_put16(buf + n + 3, DNS_EDNS_UDP);
    qw_put32(buf + n + 5, 0);
    qw_put16(buf + n + 9, 0);
    return n + 11;
}

/*
 * Read the (possibly compressed) name at off in m[0..n) into out as
 * lower-cased wire form. *end receives the offset just past the name where
 * it starts (past the first pointer if any). Returns the wire length, or
 * 0 if malformed.
 *
 * Termination: every pointer must point strictly before the previous jump
 * target (the start of the name for the first), so targets strictly
 * decrease; on top of that jumps are capped at PTR_HOPS_MAX and the output
 * at WIRE_NAME_MAX bytes. Real compressors only point at names written
 * earlier, whose own pointers go further back, so they satisfy this.
 */
static size_t name_read(const uint8_t *m, size_t n, size_t off, uint8_t *out,
                        size_t *end)
{
    size_t pos = off, limit = off, len = 0;
    unsigned hops = 0;
    bool jumped = false;

    for (;;) {
        if (pos >= n)
            return 0;
        uint8_t l = m[pos];
        if ((l & 0xc0) == 0xc0) {
            if (pos + 1 >= n || ++hops > PTR_HOPS_MAX)
                return 0;
            size_t target = (size_t)(l & 0x3f) << 8 | m[pos + 1];
            if (target >= limit || target < HDR_LEN)
                return 0; /* forward, self, loop or into the header */
            if (!jumped)
                *end = pos + 2;
            jumped = true;
            limit = target;
            pos = target;
            continue;
        }
        if (l & 0xc0)
            return 0; /* 0x40/0x80: extended label types (RFC 6891 5) */
        if (len + 1 + l > WIRE_NAME_MAX || pos + 1 + l > n)
            return 0;
        out[len++] = l;
        if (l == 0)
            break;
        for (size_t i = 0; i < l; i++)
            out[len++] = lower(m[pos + 1 + i]);
        pos += 1 + l;
    }
    if (!jumped)
        *end = pos + 1;
    return len;
}

/* Does the name at off equal want (wl bytes, lower-cased wire form)? */
static bool name_is(const uint8_t *m, size_t n, size_t off, const uint8_t *want,
                    size_t wl)
{
    uint8_t got[WIRE_NAME_MAX];
    size_t end, gl = name_read(m, n, off, got, &end);

    return gl == wl && __builtin_memcmp(got, want, wl) == 0;
}

/* One answer record, by offsets into the message. */
struct rr {
    uint16_t owner; /* offset of the owner name */
    uint16_t type;
    uint16_t rdoff;
    uint16_t rdlen;
    uint32_t ttl;
};

static uint32_t rr_ttl(uint32_t ttl)
{
    return ttl & 0x80000000u ? 0 : ttl; /* RFC 2181 8 */
}

/*
 * Index the answer section starting at off: up to DNS_MAX_RRS records of
 * class IN into rrs. A record that does not fit ends the walk: malformed
 * (-1) unless tc, where it is where the truncation cut. Returns the count.
 */
static int index_answers(const uint8_t *m, size_t n, size_t off,
                         unsigned ancount, bool tc, struct rr *rrs)
{
    uint8_t tmp[WIRE_NAME_MAX];
    int k = 0;

    for (unsigned i = 0; i < ancount && k < (int)DNS_MAX_RRS; i++) {
        size_t end;
        if (name_read(m, n, off, tmp, &end) == 0 || end + 10 > n)
            return tc ? k : -1;
        uint16_t rdlen = qw_get16(m + end + 8);
        if (end + 10 + rdlen > n)
            return tc ? k : -1;
        if (qw_get16(m + end + 2) == DNS_CLASS_IN) {
            rrs[k].owner = (uint16_t)off;
            rrs[k].type = qw_get16(m + end);
            rrs[k].ttl = rr_ttl(qw_get32(m + end + 4));
            rrs[k].rdoff = (uint16_t)(end + 10);
            rrs[k].rdlen = rdlen;
            k++;
        }
        off = end + 10 + rdlen;
    }
    return k;
}

/* Insert an address (alen bytes at p) into a's ascending distinct set,
 * keeping the DNS_MAX_ADDRS lowest. */
static void add_addr(struct dns_answer *a, const uint8_t *p, unsigned alen)
{
    unsigned i;

    for (i = 0; i < a->n; i++) {
        int c = alen == 4 ? (qw_get32(p) > a->a4[i]) - (qw_get32(p) < a->a4[i])
                          : __builtin_memcmp(p, a->a6[i], 16);
        if (c == 0)
            return;
        if (c < 0)
            break;
    }
    if (a->n == DNS_MAX_ADDRS) {
        a->more = true;
        if (i == DNS_MAX_ADDRS)
            return;
        a->n--; /* the highest goes */
    }
    if (alen == 4) {
        __builtin_memmove(&a->a4[i + 1], &a->a4[i], (a->n - i) * 4);
        a->a4[i] = qw_get32(p);
    } else {
        __builtin_memmove(a->a6[i + 1], a->a6[i], (a->n - i) * 16);
        __builtin_memcpy(a->a6[i], p, 16);
    }
    a->n++;
}

/* Check header and question; returns the offset of the answer section or
 * a negative dns_status. */
static int check_question(const uint8_t *m, size_t n, uint16_t id,
                          const uint8_t *qw, size_t ql, uint16_t qtype,
                          struct dns_answer *a)
{
    uint8_t got[WIRE_NAME_MAX];
    size_t end;

    if (n < HDR_LEN)
        return DNS_E_MALFORMED;
    if (qw_get16(m) != id)
        return DNS_E_ID;
    uint16_t flags = qw_get16(m + 2);
    a->rcode = flags & 0xf;
    a->truncated = (flags & FLAG_TC) != 0;
    if (!(flags & FLAG_QR) || (flags & FLAG_OPCODE))
        return DNS_E_MALFORMED;
    if (qw_get16(m + 4) != 1)
        return DNS_E_QUESTION;
    size_t gl = name_read(m, n, HDR_LEN, got, &end);
    if (gl == 0 || end + 4 > n)
        return DNS_E_MALFORMED;
    if (gl != ql || __builtin_memcmp(got, qw, ql) != 0 ||
        qw_get16(m + end) != qtype || qw_get16(m + end + 2) != DNS_CLASS_IN)
        return DNS_E_QUESTION;
    return (int)(end + 4);
}

/* Follow the CNAME chain from target (in place) through rrs; returns the
 * hops followed or a negative dns_status. */
static int follow_chain(const uint8_t *m, size_t n, const struct rr *rrs, int k,
                        uint8_t *target, size_t *tl, uint32_t *ttl)
{
    int hops = 0;

    for (;;) {
        int i;
        for (i = 0; i < k; i++)
            if (rrs[i].type == DNS_TYPE_CNAME &&
                name_is(m, n, rrs[i].owner, target, *tl))
                break;
        if (i == k)
            return hops;
        if (++hops > (int)DNS_MAX_CNAME)
            return DNS_E_CHAIN;
        size_t end, nl = name_read(m, n, rrs[i].rdoff, target, &end);
        if (nl == 0 || end != (size_t)rrs[i].rdoff + rrs[i].rdlen)
            return DNS_E_MALFORMED;
        *tl = nl;
        if (rrs[i].ttl < *ttl)
            *ttl = rrs[i].ttl;
    }
}

int dns_parse_response(const uint8_t *m, size_t n, uint16_t id,
                       const char *name, uint16_t qtype, struct dns_answer *a)
{
    uint8_t target[WIRE_NAME_MAX];
    struct rr rrs[DNS_MAX_RRS];
    uint32_t ttl = UINT32_MAX;
    unsigned alen = qtype == DNS_TYPE_AAAA ? 16 : 4;

    __builtin_memset(a, 0, sizeof *a);
    size_t tl = name_to_wire(name, target, true);
    if (tl == 0 || (qtype != DNS_TYPE_A && qtype != DNS_TYPE_AAAA))
        return DNS_E_QUESTION;
    if (n > 65535)
        return DNS_E_MALFORMED; /* offsets are 16-bit */
    int off = check_question(m, n, id, target, tl, qtype, a);
    if (off < 0)
        return off;
    if (a->rcode == RCODE_NXDOMAIN)
        return DNS_E_NXDOMAIN;
    if (a->rcode != 0)
        return DNS_E_RCODE;
    int k =
        index_answers(m, n, (size_t)off, qw_get16(m + 6), a->truncated, rrs);
    if (k < 0)
        return DNS_E_MALFORMED;
    int hops = follow_chain(m, n, rrs, k, target, &tl, &ttl);
    if (hops < 0)
        return hops;
    a->cnames = (unsigned)hops;
    for (int i = 0; i < k; i++) {
        if (rrs[i].type != qtype || !name_is(m, n, rrs[i].owner, target, tl))
            continue;
        if (rrs[i].rdlen != alen)
            return DNS_E_MALFORMED;
        add_addr(a, m + rrs[i].rdoff, alen);
        if (rrs[i].ttl < ttl)
            ttl = rrs[i].ttl;
    }
    if (a->n == 0)
        return a->truncated ? DNS_E_TRUNCATED : DNS_E_NODATA;
    a->ttl = ttl;
    return DNS_OK;
}

/* ---- client and cache ----------------------------------------------- */

struct entry {
    uint32_t hash; /* of the name, to skip most string compares */
    uint32_t refs; /* rules using it; 0 = cached only */
    uint32_t name; /* offset of the name text in the arena */
    uint8_t used;
    uint8_t ncur;    /* addresses in cur; 0 = unresolved */
    uint8_t nprev;   /* addresses in prev; 0 = no grace running */
    uint8_t fails;   /* consecutive failed resolutions */
    uint8_t slot;    /* in-flight slot + 1; 0 = none */
    uint8_t failing; /* a failure was logged since the last success */
    uint16_t ttl;    /* of the current set, s (clamped) */
    uint64_t due;    /* next resolution (refresh or retry) */
    uint64_t expire; /* the current set's TTL ends */
    uint64_t stale;  /* the current set is dropped if not refreshed */
    uint64_t grace;  /* the previous set stops matching */
    uint64_t idle;   /* refs dropped to 0 at (eviction order) */
    uint32_t cur[DNS_MAX_ADDRS];
    uint32_t prev[DNS_MAX_ADDRS];
};

struct query {
    int entry; /* -1 = free slot */
    uint32_t server;
    uint64_t deadline;
    uint16_t port; /* 0 if send() failed */
    uint16_t id;
    uint8_t attempt;
    uint8_t failed; /* a SERVFAIL-like reply ended the attempt early */
};

struct dns {
    struct dns_env env;
    unsigned cap;
    uint32_t primary, secondary;
    uint64_t next;     /* dns_deadline() */
    uint64_t now;      /* latest time seen */
    uint64_t log_time; /* rate limit: last refill */
    unsigned log_tokens, log_lost;
    uint32_t arena_size, arena_used;
    struct dns_stats st;
    struct query q[DNS_MAX_INFLIGHT];
    struct entry *e;
    uint8_t *arena; /* records: entry index (2 bytes), text, NUL */
};

size_t dns_bytes_per_name(void)
{
    return sizeof(struct entry) + DNS_NAME_AVG;
}

static unsigned clamp_names(unsigned names)
{
    return names > DNS_MAX_NAMES ? DNS_MAX_NAMES : names;
}

size_t dns_mem_size(unsigned names)
{
    return sizeof(struct dns) + clamp_names(names) * dns_bytes_per_name();
}

void dns_init(struct dns *d, unsigned names, const struct dns_env *env)
{
    names = clamp_names(names);
    __builtin_memset(d, 0, dns_mem_size(names));
    d->env = *env;
    d->cap = names;
    d->e = (struct entry *)(d + 1);
    d->arena = (uint8_t *)(d->e + names);
    d->arena_size = names * DNS_NAME_AVG;
    d->log_tokens = LOG_BURST;
    for (unsigned i = 0; i < DNS_MAX_INFLIGHT; i++)
        d->q[i].entry = -1;
    d->next = NO_TIME;
}

static const char *ename(const struct dns *d, const struct entry *e)
{
    return (const char *)d->arena + e->name;
}

/* Info lines are rate-limited: LOG_BURST, then one per LOG_PERIOD_S. */
__attribute__((format(printf, 3, 4))) static void
dlog(struct dns *d, enum qw_log_level lvl, const char *fmt, ...)
{
    char line[160];
    va_list ap;

    if (d->now - d->log_time >= LOG_PERIOD_S * NS_PER_S) {
        uint64_t add = (d->now - d->log_time) / (LOG_PERIOD_S * NS_PER_S);
        d->log_tokens =
            add >= LOG_BURST ? LOG_BURST : d->log_tokens + (unsigned)add;
        if (d->log_tokens > LOG_BURST)
            d->log_tokens = LOG_BURST;
        d->log_time = d->now;
    }
    if (d->log_tokens == 0) {
        d->log_lost++;
        return;
    }
    d->log_tokens--;
    if (d->log_lost) {
        qw_snprintf(line, sizeof line, "dns: %u log lines suppressed",
                    d->log_lost);
        d->env.log(d->env.ctx, QW_LOG_INFO, line);
        d->log_lost = 0;
    }
    va_start(ap, fmt);
    qw_vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    d->env.log(d->env.ctx, lvl, line);
}

static void changed(struct dns *d, struct entry *e)
{
    d->st.changes++;
    if (e->refs)
        d->env.changed(d->env.ctx, (int)(e - d->e));
}

/* "1.2.3.4" or "1.2.3.4 +2 more" */
static void fmt_set(char *buf, size_t cap, const uint32_t *a, unsigned n)
{
    if (n == 0) {
        qw_snprintf(buf, cap, "none");
        return;
    }
    size_t l = qw_snprintf(buf, cap, "%u.%u.%u.%u", a[0] >> 24,
                           a[0] >> 16 & 0xff, a[0] >> 8 & 0xff, a[0] & 0xff);
    if (n > 1 && l < cap)
        qw_snprintf(buf + l, cap - l, " +%u more", n - 1);
}

static uint64_t secs(uint64_t s)
{
    return s * NS_PER_S;
}

/* Server for attempt k: primary, secondary, primary. */
static uint32_t server_for(const struct dns *d, unsigned k)
{
    return (k & 1) && d->secondary ? d->secondary : d->primary;
}

/* Send attempt q->attempt of q's name; a failed send times out like a
 * lost datagram. */
static void send_attempt(struct dns *d, struct query *q, uint64_t now)
{
    uint8_t buf[DNS_QUERY_MAX];
    struct entry *e = &d->e[q->entry];

    q->id = (uint16_t)d->env.random(d->env.ctx);
    q->server = server_for(d, q->attempt);
    q->deadline = now + secs(1u << q->attempt);
    q->failed = 0;
    size_t n = dns_build_query(buf, sizeof buf, q->id, ename(d, e), DNS_TYPE_A);
    q->port = n ? d->env.send(d->env.ctx, q->server, buf, n, now) : 0;
    if (q->port)
        d->st.queries++;
}

static void slot_free(struct dns *d, struct query *q)
{
    if (q->port)
        d->env.release(d->env.ctx, q->server, q->port);
    d->e[q->entry].slot = 0;
    q->entry = -1;
    q->port = 0;
    d->st.inflight--;
}

static bool same_set(const uint32_t *a, unsigned na, const uint32_t *b,
                     unsigned nb)
{
    return na == nb && __builtin_memcmp(a, b, na * sizeof *a) == 0;
}

/* Is every address of the previous set also in the current one? */
static bool prev_in_cur(const struct entry *e)
{
    for (unsigned i = 0, j = 0; i < e->nprev; i++) {
        while (j < e->ncur && e->cur[j] < e->prev[i])
            j++; /* both ascending */
        if (j == e->ncur || e->cur[j] != e->prev[i])
            return false;
    }
    return true;
}

/* Refresh before the TTL runs out, at 70..80 % of it, so that names
 * resolved together spread out. */
static uint64_t refresh_at(struct dns *d, uint64_t now, unsigned ttl)
{
    uint64_t pm = 700 + d->env.random(d->env.ctx) % 101;

    return now + secs(ttl) * pm / 1000;
}

static void apply(struct dns *d, struct entry *e, const struct dns_answer *a,
                  uint64_t now)
{
    char set[48];
    uint32_t ttl = a->ttl < DNS_TTL_MIN   ? DNS_TTL_MIN
                   : a->ttl > DNS_TTL_MAX ? DNS_TTL_MAX
                                          : a->ttl;
    bool was = e->ncur != 0;

    d->st.answers++;
    e->ttl = (uint16_t)ttl;
    e->fails = 0;
    e->expire = now + secs(ttl);
    e->stale = e->expire + secs(DNS_STALE_S);
    e->due = refresh_at(d, now, ttl);
    if (same_set(e->cur, e->ncur, a->a4, a->n)) {
        if (e->failing)
            dlog(d, QW_LOG_INFO, "dns: %s answering again (ttl %u s)",
                 ename(d, e), (unsigned)ttl);
        e->failing = 0;
        return;
    }
    if (was) {
        /* Keep the old set matching for one TTL: new connections to an
         * address that just rotated out are not cut. */
        __builtin_memcpy(e->prev, e->cur, sizeof e->prev);
        e->nprev = e->ncur;
        e->grace = now + secs(ttl);
    }
    __builtin_memcpy(e->cur, a->a4, a->n * sizeof a->a4[0]);
    e->ncur = (uint8_t)a->n;
    fmt_set(set, sizeof set, e->cur, e->ncur);
    dlog(d, QW_LOG_INFO, "dns: %s %s (%s%s, ttl %u s)", ename(d, e),
         was ? "changed" : "resolved", set, a->more ? ", more dropped" : "",
         (unsigned)ttl);
    e->failing = 0;
    changed(d, e);
}

static const char *status_name(int st)
{
    switch (st) {
    case DNS_E_NXDOMAIN:
        return "nxdomain";
    case DNS_E_RCODE:
        return "server failure";
    case DNS_E_NODATA:
        return "no address";
    case DNS_E_TRUNCATED:
        return "truncated";
    case DNS_E_CHAIN:
        return "cname chain too long";
    default:
        return "no reply";
    }
}

/*
 * A resolution failed. Retry after 1, 2, 4, ... DNS_BACKOFF_MAX s. A
 * definitive answer (no such name, no address) unresolves the name now;
 * otherwise its set lives on until e->stale.
 */
static void fail(struct dns *d, struct entry *e, int st, uint64_t now)
{
    bool definitive = st == DNS_E_NXDOMAIN || st == DNS_E_NODATA;
    unsigned f = e->fails < 6 ? e->fails : 6;
    uint64_t backoff = 1ull << f;

    if (backoff > DNS_BACKOFF_MAX)
        backoff = DNS_BACKOFF_MAX;
    if (e->fails < 255)
        e->fails++;
    d->st.failures++;
    e->due = now + secs(backoff);
    if (!e->failing) {
        e->failing = 1;
        dlog(d, QW_LOG_INFO, "dns: %s failed (%s; %s, retrying from %u s)",
             ename(d, e), status_name(st),
             e->ncur && !definitive ? "keeping the last answer" : "unresolved",
             (unsigned)backoff);
    }
    if (definitive && (e->ncur || e->nprev)) {
        e->ncur = 0;
        e->nprev = 0;
        changed(d, e);
    }
}

/* ---- names: arena and lookup ---------------------------------------- */

static uint32_t hash_name(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */

    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

/* Normalise name into out (DNS_NAME_MAX + 1): lower case, no trailing
 * dot. Returns false if it is not a valid host name. */
static bool normalise(const char *name, char *out)
{
    uint8_t wire[WIRE_NAME_MAX];
    size_t wl = name_to_wire(name, wire, true), o = 0;

    if (wl == 0)
        return false;
    for (size_t i = 0; wire[i] != 0; i += wire[i] + 1) {
        if (o)
            out[o++] = '.';
        __builtin_memcpy(out + o, wire + i + 1, wire[i]);
        o += wire[i];
    }
    out[o] = '\0';
    return true;
}

/* Squeeze out the records of freed names (a record is live when its
 * entry is in use and points at it). */
static void arena_compact(struct dns *d)
{
    uint32_t r = 0, w = 0;

    while (r < d->arena_used) {
        unsigned idx = (unsigned)qw_get16(d->arena + r);
        uint32_t len = 2 + 1;
        while (d->arena[r + len - 1] != '\0')
            len++;
        struct entry *e = idx < d->cap ? &d->e[idx] : NULL;
        if (e && e->used && e->name == r + 2) {
            __builtin_memmove(d->arena + w, d->arena + r, len);
            e->name = w + 2;
            w += len;
        }
        r += len;
    }
    d->arena_used = w;
}

static bool arena_put(struct dns *d, unsigned idx, const char *s, size_t len)
{
    if (d->arena_used + 3 + len > d->arena_size)
        arena_compact(d);
    if (d->arena_used + 3 + len > d->arena_size)
        return false;
    qw_put16(d->arena + d->arena_used, (uint16_t)idx);
    __builtin_memcpy(d->arena + d->arena_used + 2, s, len + 1);
    d->e[idx].name = d->arena_used + 2;
    d->arena_used += (uint32_t)(3 + len);
    return true;
}

static void entry_free(struct dns *d, struct entry *e)
{
    if (e->slot)
        slot_free(d, &d->q[e->slot - 1]);
    e->used = 0;
    d->st.names--;
}

/* A free entry, evicting the unreferenced one idle longest; NULL if all
 * are referenced. */
static struct entry *entry_get(struct dns *d)
{
    struct entry *victim = NULL;

    for (unsigned i = 0; i < d->cap; i++) {
        struct entry *e = &d->e[i];
        if (!e->used)
            return e;
        if (e->refs == 0 && (!victim || e->idle < victim->idle))
            victim = e;
    }
    if (victim) {
        entry_free(d, victim);
        d->st.evictions++;
    }
    return victim;
}

int dns_ref(struct dns *d, const char *name)
{
    char norm[DNS_NAME_MAX + 1];

    if (!normalise(name, norm))
        return -QW_EINVAL;
    uint32_t h = hash_name(norm);
    for (unsigned i = 0; i < d->cap; i++) {
        struct entry *e = &d->e[i];
        if (e->used && e->hash == h &&
            __builtin_strcmp(ename(d, e), norm) == 0) {
            if (e->refs++ == 0) {
                d->st.referenced++;
                d->next = 0; /* its refresh may be due */
            }
            return (int)i;
        }
    }
    struct entry *e = entry_get(d);
    if (!e)
        return -QW_ENOSPC;
    unsigned idx = (unsigned)(e - d->e);
    __builtin_memset(e, 0, sizeof *e);
    if (!arena_put(d, idx, norm, __builtin_strlen(norm)))
        return -QW_ENOSPC;
    e->used = 1;
    e->hash = h;
    e->refs = 1;
    e->due = 0;
    d->st.names++;
    d->st.referenced++;
    d->next = 0;
    return (int)idx;
}

static struct entry *entry_of(const struct dns *d, int id)
{
    if (id < 0 || (unsigned)id >= d->cap || !d->e[id].used)
        return NULL;
    return &d->e[id];
}

void dns_unref(struct dns *d, int id)
{
    struct entry *e = entry_of(d, id);

    if (!e || e->refs == 0)
        return;
    if (--e->refs == 0) {
        e->idle = d->now;
        d->st.referenced--;
        d->next = 0; /* no refresh any more; freed at its TTL */
    }
}

int dns_match(const struct dns *d, int id, uint32_t addr)
{
    const struct entry *e = entry_of(d, id);

    if (!e || e->refs == 0 || e->ncur == 0)
        return -1;
    for (unsigned i = 0; i < e->ncur; i++)
        if (e->cur[i] == addr)
            return 1;
    for (unsigned i = 0; i < e->nprev; i++)
        if (e->prev[i] == addr)
            return 1;
    return 0;
}

const char *dns_name(const struct dns *d, int id)
{
    const struct entry *e = entry_of(d, id);

    return e ? ename(d, e) : NULL;
}

static int ops_ref(void *ctx, const char *name)
{
    return dns_ref(ctx, name);
}

static void ops_unref(void *ctx, int id)
{
    dns_unref(ctx, id);
}

static int ops_match(void *ctx, int id, uint32_t addr)
{
    return dns_match(ctx, id, addr);
}

struct rules_host_ops dns_host_ops(struct dns *d)
{
    struct rules_host_ops ops = {d, ops_ref, ops_unref, ops_match};

    return ops;
}

void dns_set_servers(struct dns *d, uint32_t primary, uint32_t secondary)
{
    char line[80];

    if (secondary == primary)
        secondary = 0;
    if (primary == 0) {
        primary = secondary;
        secondary = 0;
    }
    if (primary == d->primary && secondary == d->secondary)
        return;
    for (unsigned i = 0; i < DNS_MAX_INFLIGHT; i++)
        if (d->q[i].entry >= 0)
            slot_free(d, &d->q[i]);
    d->primary = primary;
    d->secondary = secondary;
    for (unsigned i = 0; i < d->cap; i++) {
        d->e[i].due = 0;
        d->e[i].fails = 0;
    }
    d->next = 0;
    qw_snprintf(line, sizeof line, "dns: servers %u.%u.%u.%u, %u.%u.%u.%u",
                primary >> 24, primary >> 16 & 0xff, primary >> 8 & 0xff,
                primary & 0xff, secondary >> 24, secondary >> 16 & 0xff,
                secondary >> 8 & 0xff, secondary & 0xff);
    d->env.log(d->env.ctx, QW_LOG_INFO, line);
}

/* ---- client: replies and timers ------------------------------------- */

enum qw_drop dns_rx(struct dns *d, uint32_t src, uint16_t sport, uint16_t dport,
                    const uint8_t *payload, size_t n, uint64_t now)
{
    struct dns_answer a;
    struct query *q = NULL;

    d->now = now;
    /* The pipeline may reserve one local port towards two servers: the
     * attempt is the pair (server, port). */
    for (unsigned i = 0; i < DNS_MAX_INFLIGHT; i++)
        if (d->q[i].entry >= 0 && d->q[i].port == dport && dport != 0 &&
            d->q[i].server == src)
            q = &d->q[i];
    if (!q || sport != DNS_PORT) {
        d->st.unexpected++;
        return QW_DROP_DNS_UNEXPECTED;
    }
    struct entry *e = &d->e[q->entry];
    int st = dns_parse_response(payload, n, q->id, ename(d, e), DNS_TYPE_A, &a);
    if (st == DNS_E_ID) {
        d->st.unexpected++;
        return QW_DROP_DNS_UNEXPECTED;
    }
    if (st == DNS_E_MALFORMED || st == DNS_E_QUESTION) {
        d->st.bad++;
        return QW_DROP_DNS_BAD; /* keep waiting for the real reply */
    }
    d->next = 0;
    if (st == DNS_OK || st == DNS_E_NXDOMAIN || st == DNS_E_NODATA ||
        q->attempt + 1u >= DNS_ATTEMPTS) {
        slot_free(d, q);
        if (st == DNS_OK)
            apply(d, e, &a, now);
        else
            fail(d, e, st, now);
        return QW_DROP_NONE;
    }
    /* SERVFAIL and the like: ask the next server at the next poll. */
    if (q->port)
        d->env.release(d->env.ctx, q->server, q->port);
    q->port = 0;
    q->failed = 1;
    q->deadline = now;
    return QW_DROP_NONE;
}

/* Retries and failures of queries whose attempt is over. */
static void poll_queries(struct dns *d, uint64_t now)
{
    for (unsigned i = 0; i < DNS_MAX_INFLIGHT; i++) {
        struct query *q = &d->q[i];
        if (q->entry < 0 || q->deadline > now)
            continue;
        if (!q->failed)
            d->st.timeouts++;
        if (q->attempt + 1u < DNS_ATTEMPTS) {
            if (q->port)
                d->env.release(d->env.ctx, q->server, q->port);
            q->attempt++;
            send_attempt(d, q, now);
            continue;
        }
        struct entry *e = &d->e[q->entry];
        slot_free(d, q);
        fail(d, e, q->failed ? DNS_E_RCODE : ST_TIMEOUT, now);
    }
}

/* Grace and stale ends; forget unreferenced names past their TTL. */
static void poll_expiry(struct dns *d, struct entry *e, uint64_t now)
{
    if (e->nprev && e->grace <= now) {
        bool same = prev_in_cur(e); /* the set only grew: nothing to cut */
        e->nprev = 0;
        if (!same)
            changed(d, e);
    }
    if (e->ncur && e->stale <= now) {
        e->ncur = 0;
        e->nprev = 0;
        dlog(d, QW_LOG_INFO, "dns: %s unresolved (answer expired, no reply)",
             ename(d, e));
        changed(d, e);
    }
    if (e->refs == 0 && !e->slot && (e->ncur == 0 || e->expire <= now))
        entry_free(d, e);
}

/* Start the referenced names due longest ago, while slots are free. */
static void poll_start(struct dns *d, uint64_t now)
{
    struct entry *pick[DNS_MAX_INFLIGHT];
    unsigned nfree = DNS_MAX_INFLIGHT - d->st.inflight, np = 0;

    if (d->primary == 0 || nfree == 0)
        return;
    /* The nfree earliest due, by insertion into a small sorted array. */
    for (unsigned i = 0; i < d->cap; i++) {
        struct entry *e = &d->e[i];
        if (!e->used || !e->refs || e->slot || e->due > now)
            continue;
        if (np == nfree && e->due >= pick[np - 1]->due)
            continue;
        unsigned j = np < nfree ? np++ : np - 1;
        for (; j > 0 && pick[j - 1]->due > e->due; j--)
            pick[j] = pick[j - 1];
        pick[j] = e;
    }
    for (unsigned i = 0, s = 0; i < np; i++) {
        while (d->q[s].entry >= 0)
            s++;
        struct query *q = &d->q[s];
        q->entry = (int)(pick[i] - d->e);
        q->attempt = 0;
        pick[i]->slot = (uint8_t)(s + 1);
        d->st.inflight++;
        send_attempt(d, q, now);
    }
}

static uint64_t min64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

/* The earliest time anything needs dns_poll() again. */
static uint64_t next_deadline(const struct dns *d, uint64_t now)
{
    uint64_t next = NO_TIME;
    bool can_start = d->primary != 0 && d->st.inflight < DNS_MAX_INFLIGHT;

    for (unsigned i = 0; i < DNS_MAX_INFLIGHT; i++)
        if (d->q[i].entry >= 0)
            next = min64(next, d->q[i].deadline);
    for (unsigned i = 0; i < d->cap; i++) {
        const struct entry *e = &d->e[i];
        if (!e->used)
            continue;
        if (e->nprev)
            next = min64(next, e->grace);
        /* An unreferenced name is forgotten at its TTL, once no query of
         * its own is in flight (whose deadline is counted above). */
        if (e->ncur && (e->refs || !e->slot))
            next = min64(next, e->refs ? e->stale : e->expire);
        /* A due name waiting for a slot is started when a query ends,
         * whose deadline is already counted. */
        if (e->refs && !e->slot && can_start)
            next = min64(next, e->due > now ? e->due : now);
    }
    return next;
}

uint64_t dns_poll(struct dns *d, uint64_t now)
{
    d->now = now;
    /* The pipeline polls after every batch of work: skip the table walk
     * until something is due (whatever makes work sets d->next to 0). */
    if (d->next != 0 && now < d->next)
        return d->next;
    poll_queries(d, now);
    for (unsigned i = 0; i < d->cap; i++)
        if (d->e[i].used)
            poll_expiry(d, &d->e[i], now);
    poll_start(d, now);
    d->next = next_deadline(d, now);
    return d->next;
}

uint64_t dns_deadline(const struct dns *d)
{
    return d->next;
}

void dns_get_stats(const struct dns *d, struct dns_stats *st)
{
    *st = d->st;
}
