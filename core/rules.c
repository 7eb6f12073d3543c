/*
 * rules.c: Qubes firewall rule parser and matcher (see rules.h and
 * docs/rules.md).
 *
 * Compiled form: one 16-byte struct rule per numbered rule, in ascending
 * rule number, judged by ONE masked compare of a 64-bit flow word
 *     W = dst << 32 | protocol class << 16 | key
 * (key = TCP/UDP destination port, ICMP type, 0 otherwise): a rule matches
 * when (W & m) == v. The class codes are chosen so that every protocol
 * predicate is a mask: tcp 010, udp 011, icmp 100, other 000, so "tcp or
 * udp" (dstports or specialtarget without proto) is mask 110 value 010 and
 * "never" is 111/111 (no flow has class 7). A dst4 prefix is the high half.
 * A port range that is a single port or an aligned power-of-two block is a
 * mask on the key; any other range, the DNS server set and dsthost names
 * are checked only after the compare passed (flag bits, see below).
 *
 * The rule's flags live in bits 19-31 of m: W has zeros there, so they
 * never change (W & m) and v keeps zeros there too.
 *
 * Side arrays, parallel to the rules: num[] (the rule's number, reported to
 * the caller), range[] (lo | span << 16 of a range that is not a mask),
 * host[] (dsthost id or -1) and order[] (scratch for the compile: the sort,
 * then where the dsthost value is, then the new host ids until the old ones
 * are released).
 */
#include "rules.h"

#include <stdarg.h>

#include "fmt.h"
#include "qwall.h"

/* Protocol classes of a flow (pmask bits). */
#define PB_OTHER 0x1u
#define PB_TCP 0x2u
#define PB_UDP 0x4u
#define PB_ICMP 0x8u
#define PB_ANY 0xfu

/* Flags (struct crule.flags; bits 19.. of struct rule.m) */
#define RF_ACCEPT 0x1u
#define RF_DNS 0x2u   /* destination must be a DNS server */
#define RF_HOST 0x4u  /* destination must be in host[i]'s answer set */
#define RF_RANGE 0x8u /* key must be in range[i] */
#define RF_SLOW (RF_DNS | RF_HOST | RF_RANGE)
#define RF_SHIFT 19

/* Protocol class codes in the flow word (bits 16-18). */
#define CL_OTHER 0u
#define CL_TCP 2u
#define CL_UDP 3u
#define CL_ICMP 4u

/* Longest rule text scanned; dom0's rules are well under 200 chars and
 * QubesDB values are capped at 3072 bytes. */
#define RULE_TEXT_MAX 1024u
#define HOST_NAME_MAX_ 253u

/* A rule while it is being parsed. */
struct crule {
    uint32_t net;  /* destination network (host bits cleared) */
    uint32_t mask; /* destination mask; 0 = any destination */
    uint16_t lo;   /* key range start (port or ICMP type) */
    uint16_t span; /* key range length - 1 (0xffff = any) */
    uint8_t pmask; /* PB_* classes this rule can match; 0 = never */
    uint8_t flags; /* RF_* */
    uint16_t hoff; /* offset of the dsthost value in the rule text */
};

/* A compiled rule: matches flow word W when (W & m) == v. */
struct rule {
    uint64_t m;
    uint64_t v;
};

_Static_assert(sizeof(struct rule) == 16, "struct rule must stay compact");

struct rules_set {
    uint32_t max_rules;
    uint32_t n;     /* compiled rules (0 unless RULES_LOADED) */
    uint8_t state;  /* enum rules_state */
    uint8_t policy; /* enum rules_action */
    uint8_t slow;   /* some rule has RF_SLOW */
    bool have_ops;  /* ops holds the hooks host[] ids were taken with */
    struct rules_host_ops ops;
    struct rule *rules;
    int32_t *host;
    uint32_t *order;
    uint32_t *range;
    uint16_t *num;
};

static size_t hdr_size(void)
{
    return (sizeof(struct rules_set) + 15u) & ~(size_t)15u;
}

static unsigned clamp_max(unsigned max_rules)
{
    return max_rules > RULES_MAX ? RULES_MAX : max_rules;
}

size_t rules_mem_size(unsigned max_rules)
{
    size_t m = clamp_max(max_rules);

    return hdr_size() + m * (sizeof(struct rule) + sizeof(int32_t) +
                             2 * sizeof(uint32_t) + sizeof(uint16_t));
}

void rules_init(struct rules_set *rs, unsigned max_rules)
{
    size_t m = clamp_max(max_rules);
    uint8_t *p = (uint8_t *)rs + hdr_size();

    __builtin_memset(rs, 0, sizeof(*rs));
    rs->max_rules = (uint32_t)m;
    rs->state = RULES_EMPTY;
    rs->policy = RULES_DROP;
    /* Alignment: the header is a multiple of 16, rules are 16 bytes, then
     * 4-byte arrays, then the 2-byte one. */
    rs->rules = (struct rule *)(void *)p;
    p += m * sizeof(struct rule);
    rs->host = (int32_t *)(void *)p;
    p += m * sizeof(int32_t);
    rs->order = (uint32_t *)(void *)p;
    p += m * sizeof(uint32_t);
    rs->range = (uint32_t *)(void *)p;
    p += m * sizeof(uint32_t);
    rs->num = (uint16_t *)(void *)p;
}

/* ---- reasons ---------------------------------------------------------- */

struct why {
    char *buf;
    size_t len;
};

static void why_set(struct why *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void why_set(struct why *w, const char *fmt, ...)
{
    va_list ap;

    if (w->buf == NULL || w->len == 0)
        return;
    va_start(ap, fmt);
    qw_vsnprintf(w->buf, w->len, fmt, ap);
    va_end(ap);
}

/*
 * A peer-controlled string made safe to quote in a one-line log: at most
 * 48 bytes, non-printable bytes shown as '?', "..." when cut.
 */
struct quoted {
    char s[56];
};

static struct quoted quote(const char *p, size_t len)
{
    struct quoted q;
    size_t i, n = len > 48 ? 48 : len;

    for (i = 0; i < n; i++)
        q.s[i] = (p[i] >= 0x20 && p[i] < 0x7f) ? p[i] : '?';
    if (n < len) {
        __builtin_memcpy(q.s + n, "...", 3);
        n += 3;
    }
    q.s[n] = '\0';
    return q;
}

/* ---- small parsers over (p, len) -------------------------------------- */

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_hex(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool str_is(const char *p, size_t len, const char *lit)
{
    size_t i;

    for (i = 0; i < len; i++)
        if (lit[i] == '\0' || lit[i] != p[i])
            return false;
    return lit[len] == '\0';
}

/* Decimal of 1..maxdig digits (leading zeros allowed). */
static bool parse_dec(const char *p, size_t len, size_t maxdig, uint32_t *v)
{
    uint32_t x = 0;
    size_t i;

    if (len == 0 || len > maxdig)
        return false;
    for (i = 0; i < len; i++) {
        if (!is_digit(p[i]))
            return false;
        x = x * 10u + (uint32_t)(p[i] - '0');
    }
    *v = x;
    return true;
}

/* Decimal without leading zeros (IPv4 octets, prefix lengths): "010" could
 * mean octal to some parsers, so dom0 never writes it and we refuse it. */
static bool parse_dec_strict(const char *p, size_t len, uint32_t max,
                             uint32_t *v)
{
    if (len > 1 && p[0] == '0')
        return false;
    return parse_dec(p, len, 3, v) && *v <= max;
}

/* Dotted quad a.b.c.d, exactly four octets 0-255. */
static bool parse_ip4(const char *p, size_t len, uint32_t *addr)
{
    uint32_t a = 0, octet;
    size_t i = 0, start;
    int k;

    for (k = 0; k < 4; k++) {
        start = i;
        while (i < len && p[i] != '.')
            i++;
        if (!parse_dec_strict(p + start, i - start, 255, &octet))
            return false;
        a = a << 8 | octet;
        if (k < 3) {
            if (i == len)
                return false;
            i++; /* the dot */
        }
    }
    if (i != len)
        return false;
    *addr = a;
    return true;
}

/* Split "x/n" at the last '/'; no slash means the full length (maxlen). */
static bool split_prefix(const char *p, size_t len, uint32_t maxlen,
                         size_t *alen, uint32_t *plen)
{
    size_t i = len;

    while (i > 0 && p[i - 1] != '/')
        i--;
    if (i == 0) {
        *alen = len;
        *plen = maxlen;
        return true;
    }
    *alen = i - 1;
    return parse_dec_strict(p + i, len - i, maxlen, plen);
}

/* IPv6 text (RFC 4291 2.2: hex groups, one "::", trailing dotted quad). */
static bool parse_ip6(const char *p, size_t len)
{
    size_t i = 0, j;
    unsigned groups = 0;
    bool dcolon = false;
    uint32_t v4;

    if (len >= 2 && p[0] == ':' && p[1] == ':') {
        dcolon = true;
        i = 2;
    } else if (len == 0 || p[0] == ':') {
        return false;
    }
    while (i < len) {
        j = i;
        while (j < len && is_hex(p[j]) && j - i < 5)
            j++;
        if (j < len && p[j] == '.') {
            if (!parse_ip4(p + i, len - i, &v4))
                return false;
            groups += 2;
            break;
        }
        if (j == i || j - i > 4)
            return false;
        groups++;
        if (j == len)
            break;
        if (p[j] != ':')
            return false;
        j++;
        if (j < len && p[j] == ':') {
            if (dcolon)
                return false;
            dcolon = true;
            j++;
        } else if (j == len) {
            return false; /* a single trailing colon */
        }
        i = j;
    }
    return dcolon ? groups <= 7 : groups == 8;
}

/*
 * Host name: [a-z0-9._-] (upper case folded), labels 1-63, at most 253
 * chars, one trailing dot dropped. An address is not a name (dom0 turns
 * dsthost=<address> into dst4/dst6). Writes the lower-case name to out
 * (HOST_NAME_MAX_ + 1 bytes) when out is not NULL.
 */
static bool parse_host(const char *p, size_t len, char *out)
{
    size_t i, label = 0;
    uint32_t v4;

    if (len > 0 && p[len - 1] == '.')
        len--;
    if (len == 0 || len > HOST_NAME_MAX_ || parse_ip4(p, len, &v4))
        return false;
    for (i = 0; i < len; i++) {
        char c = p[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (c == '.') {
            if (label == 0)
                return false;
            label = 0;
        } else if ((c >= 'a' && c <= 'z') || is_digit(c) || c == '-' ||
                   c == '_') {
            if (++label > 63)
                return false;
        } else {
            return false;
        }
        if (out != NULL)
            out[i] = c;
    }
    if (label == 0)
        return false; /* "a.b.." */
    if (out != NULL)
        out[len] = '\0';
    return true;
}

/* ---- one rule --------------------------------------------------------- */

enum tok {
    T_ACTION,
    T_DST4,
    T_DST6,
    T_DSTHOST,
    T_PROTO,
    T_SPECIALTARGET,
    T_DSTPORTS,
    T_ICMPTYPE,
    T__COUNT
};

static const char *const tok_names[T__COUNT] = {
    "action", "dst4",          "dst6",     "dsthost",
    "proto",  "specialtarget", "dstports", "icmptype",
};

struct tokval {
    const char *p;
    size_t len;
};

/* Split text into key=value tokens (spaces between, any order, each key
 * once). Returns false with the reason set. */
#define NO_EQ ((size_t)-1)

static bool tokenize(const char *text, unsigned num, struct tokval *tv,
                     struct why *w)
{
    size_t i = 0, start, eq;
    int k;

    for (k = 0; k < T__COUNT; k++)
        tv[k].p = NULL;
    for (;;) {
        while (i < RULE_TEXT_MAX && text[i] == ' ')
            i++;
        if (i >= RULE_TEXT_MAX) {
            why_set(w, "rule %04u: longer than %u chars", num, RULE_TEXT_MAX);
            return false;
        }
        if (text[i] == '\0')
            return true;
        start = i;
        eq = NO_EQ;
        while (i < RULE_TEXT_MAX && text[i] != ' ' && text[i] != '\0') {
            if (text[i] == '=' && eq == NO_EQ)
                eq = i;
            i++;
        }
        if (i >= RULE_TEXT_MAX) {
            why_set(w, "rule %04u: longer than %u chars", num, RULE_TEXT_MAX);
            return false;
        }
        if (eq == NO_EQ) {
            why_set(w, "rule %04u: token without '=' (%s)", num,
                    quote(text + start, i - start).s);
            return false;
        }
        for (k = 0; k < T__COUNT; k++)
            if (str_is(text + start, eq - start, tok_names[k]))
                break;
        if (k == T__COUNT) {
            why_set(w, "rule %04u: unknown key (%s)", num,
                    quote(text + start, eq - start).s);
            return false;
        }
        if (tv[k].p != NULL) {
            why_set(w, "rule %04u: duplicate key (%s)", num, tok_names[k]);
            return false;
        }
        tv[k].p = text + eq + 1;
        tv[k].len = i - eq - 1;
    }
}

/* Checks one value; on failure sets the reason "rule N: key: what (v)". */
#define BAD(k, what)                                                           \
    do {                                                                       \
        why_set(w, "rule %04u: %s: %s (%s)", num, tok_names[k], what,          \
                quote(tv[k].p, tv[k].len).s);                                  \
        return false;                                                          \
    } while (0)

static bool compile_dst(const struct tokval *tv, unsigned num, struct crule *r,
                        const char *text, struct why *w)
{
    size_t alen;
    uint32_t plen, addr;

    if ((tv[T_DST4].p != NULL) + (tv[T_DST6].p != NULL) +
            (tv[T_DSTHOST].p != NULL) >
        1) {
        why_set(w, "rule %04u: more than one of dst4, dst6, dsthost", num);
        return false;
    }
    if (tv[T_DST4].p != NULL) {
        if (!split_prefix(tv[T_DST4].p, tv[T_DST4].len, 32, &alen, &plen) ||
            !parse_ip4(tv[T_DST4].p, alen, &addr))
            BAD(T_DST4, "bad IPv4 prefix");
        /* Host bits are allowed (dom0 keeps them) and ignored. */
        r->mask = plen == 0 ? 0 : ~(uint32_t)0 << (32 - plen);
        r->net = addr & r->mask;
    }
    if (tv[T_DST6].p != NULL) {
        if (!split_prefix(tv[T_DST6].p, tv[T_DST6].len, 128, &alen, &plen) ||
            !parse_ip6(tv[T_DST6].p, alen))
            BAD(T_DST6, "bad IPv6 prefix");
        BAD(T_DST6, "IPv6 rule in the IPv4 tree");
    }
    if (tv[T_DSTHOST].p != NULL) {
        if (!parse_host(tv[T_DSTHOST].p, tv[T_DSTHOST].len, NULL))
            BAD(T_DSTHOST, "bad host name");
        r->flags |= RF_HOST;
        r->hoff = (uint16_t)(tv[T_DSTHOST].p - text);
    }
    return true;
}

static bool compile_l4(const struct tokval *tv, unsigned num, struct crule *r,
                       struct why *w)
{
    uint32_t lo, hi;
    size_t i;
    const struct tokval *t;

    r->pmask = PB_ANY;
    r->lo = 0;
    r->span = 0xffff;
    t = &tv[T_PROTO];
    if (t->p != NULL) {
        if (str_is(t->p, t->len, "tcp"))
            r->pmask = PB_TCP;
        else if (str_is(t->p, t->len, "udp"))
            r->pmask = PB_UDP;
        else if (str_is(t->p, t->len, "icmp"))
            r->pmask = PB_ICMP;
        else
            BAD(T_PROTO, "not tcp, udp or icmp");
    }
    t = &tv[T_DSTPORTS];
    if (t->p != NULL) {
        if (r->pmask == PB_ICMP)
            BAD(T_DSTPORTS, "only with proto tcp or udp");
        for (i = 0; i < t->len && t->p[i] != '-'; i++)
            ;
        if (!parse_dec(t->p, i, 5, &lo))
            BAD(T_DSTPORTS, "bad port range");
        if (i == t->len)
            hi = lo; /* a single port, as qvm-firewall accepts it */
        else if (!parse_dec(t->p + i + 1, t->len - i - 1, 5, &hi))
            BAD(T_DSTPORTS, "bad port range");
        if (lo > 65535 || hi > 65535)
            BAD(T_DSTPORTS, "port above 65535");
        if (lo > hi)
            BAD(T_DSTPORTS, "low > high");
        r->pmask &= PB_TCP | PB_UDP;
        r->lo = (uint16_t)lo;
        r->span = (uint16_t)(hi - lo);
    }
    t = &tv[T_ICMPTYPE];
    if (t->p != NULL) {
        if (r->pmask != PB_ICMP)
            BAD(T_ICMPTYPE, "only with proto=icmp");
        if (!parse_dec(t->p, t->len, 3, &lo) || lo > 255)
            BAD(T_ICMPTYPE, "not 0-255");
        r->lo = (uint16_t)lo;
        r->span = 0;
    }
    return true;
}

static bool compile_special(const struct tokval *tv, unsigned num,
                            struct crule *r, struct why *w)
{
    if (tv[T_SPECIALTARGET].p == NULL)
        return true;
    if (!str_is(tv[T_SPECIALTARGET].p, tv[T_SPECIALTARGET].len, "dns"))
        BAD(T_SPECIALTARGET, "not dns");
    if (r->pmask == PB_ICMP)
        BAD(T_SPECIALTARGET, "not with proto=icmp");
    /* DNS is TCP or UDP to port 53 of a DNS server: limit the protocol, and
     * intersect the port range with 53 (a range without 53 never matches,
     * like Linux skipping the rule). */
    r->flags |= RF_DNS;
    r->pmask &= PB_TCP | PB_UDP;
    if ((uint16_t)(53u - r->lo) > r->span)
        r->pmask = 0;
    r->lo = 53;
    r->span = 0;
    return true;
}

static bool compile_rule(const char *text, unsigned num, struct crule *r,
                         struct why *w)
{
    struct tokval tv[T__COUNT];

    __builtin_memset(r, 0, sizeof(*r));
    if (!tokenize(text, num, tv, w))
        return false;
    if (tv[T_ACTION].p == NULL) {
        why_set(w, "rule %04u: missing action", num);
        return false;
    }
    if (str_is(tv[T_ACTION].p, tv[T_ACTION].len, "accept"))
        r->flags |= RF_ACCEPT;
    else if (!str_is(tv[T_ACTION].p, tv[T_ACTION].len, "drop"))
        BAD(T_ACTION, "not accept or drop");
    return compile_dst(tv, num, r, text, w) && compile_l4(tv, num, r, w) &&
           compile_special(tv, num, r, w);
}

#undef BAD

/* ---- the set ---------------------------------------------------------- */

static bool is_rule_key(const char *k, unsigned *num)
{
    uint32_t v;

    if (!parse_dec(k, 4, 4, &v) || k[4] != '\0')
        return false;
    *num = v;
    return true;
}

/* In-place heapsort of order[] (number << 16 | entry index): bounded time
 * whatever dom0 sends, no recursion, no scratch. */
static void sift(uint32_t *a, size_t root, size_t n)
{
    for (;;) {
        size_t c = 2 * root + 1;
        uint32_t t;
        if (c >= n)
            return;
        if (c + 1 < n && a[c + 1] > a[c])
            c++;
        if (a[root] >= a[c])
            return;
        t = a[root];
        a[root] = a[c];
        a[c] = t;
        root = c;
    }
}

static void sort_u32(uint32_t *a, size_t n)
{
    size_t i;
    uint32_t t;

    for (i = n / 2; i-- > 0;)
        sift(a, i, n);
    for (i = n; i-- > 1;) {
        t = a[0];
        a[0] = a[i];
        a[i] = t;
        sift(a, 0, i);
    }
}

static void unref_all(const struct rules_host_ops *ops, const int32_t *ids,
                      size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (ids[i] >= 0)
            ops->unref(ops->ctx, (int)ids[i]);
}

/* Drop the compiled rules and every host reference (old set). */
static void clear(struct rules_set *rs, uint8_t state)
{
    if (rs->have_ops)
        unref_all(&rs->ops, rs->host, rs->n);
    rs->have_ops = false;
    rs->n = 0;
    rs->slow = 0;
    rs->policy = RULES_DROP;
    rs->state = state;
}

/* Validate the keys, find the policy and list the rules in order[]. */
static int collect(struct rules_set *rs, const struct rules_entry *e,
                   unsigned n, unsigned *nrules, struct why *w)
{
    unsigned i, nr = 0, num, policy = n;
    const char *k;

    for (i = 0; i < n; i++) {
        k = e[i].key != NULL ? e[i].key : "";
        if (str_is(k, 6, "policy") && k[6] == '\0') {
            if (policy != n) {
                why_set(w, "policy: duplicate");
                return -QW_EINVAL;
            }
            policy = i;
        } else if (is_rule_key(k, &num)) {
            /* i < 65536 here: every earlier entry was the policy or a
             * counted rule, and rules stop at max_rules <= RULES_MAX. */
            if (nr < rs->max_rules)
                rs->order[nr] = (uint32_t)num << 16 | i;
            nr++;
        } else {
            why_set(w, "bad key (%s): not policy or a 4-digit rule number",
                    quote(k, __builtin_strlen(k)).s);
            return -QW_EINVAL;
        }
        if (nr > rs->max_rules) {
            why_set(w, "too many rules (more than %u)", rs->max_rules);
            return -QW_ENOSPC;
        }
    }
    if (policy == n) {
        why_set(w, "policy: missing");
        return -QW_EINVAL;
    }
    k = e[policy].value != NULL ? e[policy].value : "";
    if (str_is(k, 6, "accept") && k[6] == '\0') {
        rs->policy = RULES_ACCEPT;
    } else if (str_is(k, 4, "drop") && k[4] == '\0') {
        rs->policy = RULES_DROP;
    } else {
        why_set(w, "policy: not accept or drop (%s)",
                quote(k, __builtin_strlen(k)).s);
        return -QW_EINVAL;
    }
    *nrules = nr;
    return 0;
}

static uint32_t rule_flags(const struct rule *r)
{
    return (uint32_t)(r->m >> RF_SHIFT) & 0x1fffu;
}

/* Fold a parsed rule into its masked compare (see the top of the file). */
static void encode(const struct crule *c, struct rule *r, uint32_t *range)
{
    uint64_t m = (uint64_t)c->mask << 32, v = (uint64_t)c->net << 32;
    uint32_t cm, cv, flags = c->flags;

    switch (c->pmask) {
    case PB_ANY:
        cm = 0, cv = 0;
        break;
    case PB_TCP | PB_UDP:
        cm = 6, cv = CL_TCP;
        break;
    case PB_TCP:
        cm = 7, cv = CL_TCP;
        break;
    case PB_UDP:
        cm = 7, cv = CL_UDP;
        break;
    case PB_ICMP:
        cm = 7, cv = CL_ICMP;
        break;
    default: /* never matches: no flow has class 7 */
        cm = 7, cv = 7;
        break;
    }
    m |= (uint64_t)cm << 16;
    v |= (uint64_t)cv << 16;
    *range = 0;
    if ((((uint32_t)c->span + 1) & c->span) == 0 && (c->lo & c->span) == 0) {
        /* one value, an aligned power-of-two block, or everything */
        m |= (uint16_t)~c->span;
        v |= c->lo;
    } else {
        flags |= RF_RANGE;
        *range = c->lo | (uint32_t)c->span << 16;
    }
    m |= (uint64_t)flags << RF_SHIFT;
    r->m = m;
    r->v = v;
}

/* Take references for the new dsthost rules into order[] (which holds
 * entry index << 16 | offset of the dsthost value for those rules). */
static int ref_hosts(struct rules_set *rs, const struct rules_entry *e,
                     unsigned nr, const struct rules_host_ops *hosts,
                     struct why *w)
{
    char name[HOST_NAME_MAX_ + 1];
    const char *p;
    unsigned i;
    size_t len;
    int id;

    for (i = 0; i < nr; i++) {
        if (!(rule_flags(&rs->rules[i]) & RF_HOST)) {
            rs->order[i] = (uint32_t)-1;
            continue;
        }
        p = e[rs->order[i] >> 16].value + (rs->order[i] & 0xffff);
        for (len = 0; p[len] != ' ' && p[len] != '\0'; len++)
            ;
        parse_host(p, len, name);
        id = hosts == NULL ? -1 : hosts->ref(hosts->ctx, name);
        if (id < 0) {
            why_set(w, "rule %04u: dsthost: %s (%s)", rs->num[i],
                    hosts == NULL ? "no resolver" : "cannot track name",
                    quote(p, len).s);
            if (hosts != NULL)
                unref_all(hosts, (const int32_t *)(const void *)rs->order, i);
            return hosts == NULL ? -QW_EINVAL : -QW_ENOSPC;
        }
        rs->order[i] = (uint32_t)id;
    }
    return 0;
}

int rules_compile(struct rules_set *rs, const struct rules_entry *e, unsigned n,
                  const struct rules_host_ops *hosts, char *why, size_t whylen)
{
    struct why w = {why, whylen};
    struct crule c;
    unsigned i, nr = 0;
    uint8_t slow = 0;
    int rc;

    if (why != NULL && whylen > 0)
        why[0] = '\0';
    rc = collect(rs, e, n, &nr, &w);
    if (rc < 0)
        goto fail;
    sort_u32(rs->order, nr);

    /* The old rules are overwritten from here on; their host ids stay in
     * host[] until the new references are taken. */
    for (i = 0; i < nr; i++) {
        unsigned num = rs->order[i] >> 16, idx = rs->order[i] & 0xffff;
        const char *text = e[idx].value;
        if (i > 0 && num == rs->num[i - 1]) {
            why_set(&w, "rule %04u: duplicate rule number", num);
            rc = -QW_EINVAL;
            goto fail;
        }
        rs->num[i] = (uint16_t)num;
        if (!compile_rule(text != NULL ? text : "", num, &c, &w)) {
            rc = -QW_EINVAL;
            goto fail;
        }
        encode(&c, &rs->rules[i], &rs->range[i]);
        rs->order[i] = (uint32_t)idx << 16 | c.hoff;
        slow |= c.flags & (RF_DNS | RF_HOST);
    }
    rc = ref_hosts(rs, e, nr, hosts, &w);
    if (rc < 0)
        goto fail;

    /* Release the previous set's names only now (see rules.h). */
    if (rs->have_ops)
        unref_all(&rs->ops, rs->host, rs->n);
    for (i = 0; i < nr; i++)
        rs->host[i] = (int32_t)rs->order[i];
    rs->have_ops = hosts != NULL;
    if (hosts != NULL)
        rs->ops = *hosts;
    rs->n = nr;
    rs->slow = slow;
    rs->state = RULES_LOADED;
    return (int)nr;

fail:
    clear(rs, RULES_FAILED);
    return rc;
}

/* ---- matching --------------------------------------------------------- */

/* The checks that are not a mask; only reached once the compare passed. */
static bool slow_match(const struct rules_set *rs, unsigned i, uint64_t w,
                       const struct rules_dns *dns,
                       const struct rules_host_ops *hosts)
{
    uint32_t flags = rule_flags(&rs->rules[i]), dst = (uint32_t)(w >> 32);
    int m;

    if (flags & RF_RANGE) {
        uint16_t key = (uint16_t)w, lo = (uint16_t)rs->range[i];
        if ((uint16_t)(key - lo) > (uint16_t)(rs->range[i] >> 16))
            return false;
    }
    if (flags & RF_DNS) {
        if (dns == NULL || !((dns->n > 0 && dst == dns->addr[0]) ||
                             (dns->n > 1 && dst == dns->addr[1])))
            return false;
    }
    if (flags & RF_HOST) {
        m = hosts == NULL ? -1 : hosts->match(hosts->ctx, rs->host[i], dst);
        if (m < 0) /* unresolved: fail closed (see rules.h) */
            return !(flags & RF_ACCEPT);
        return m > 0;
    }
    return true;
}

enum rules_action rules_match(const struct rules_set *rs,
                              const struct rules_flow *f,
                              const struct rules_dns *dns,
                              const struct rules_host_ops *hosts, int *rule_no)
{
    const struct rule *r = rs->rules, *end = r + rs->n;
    const uint64_t slow = (uint64_t)RF_SLOW << RF_SHIFT;
    uint64_t w;
    int dummy;

    if (rule_no == NULL)
        rule_no = &dummy;
    if (rs->state != RULES_LOADED) {
        *rule_no = RULES_NO_NONE;
        return RULES_DROP;
    }
    w = (uint64_t)f->dst << 32;
    switch (f->proto) {
    case 6:
        w |= CL_TCP << 16 | f->dport;
        break;
    case 17:
        w |= CL_UDP << 16 | f->dport;
        break;
    case 1:
        w |= CL_ICMP << 16 | f->icmp_type;
        break;
    default:
        w |= CL_OTHER << 16;
        break;
    }
    for (; r < end; r++) {
        if ((w & r->m) != r->v)
            continue;
        if ((r->m & slow) &&
            !slow_match(rs, (unsigned)(r - rs->rules), w, dns, hosts))
            continue;
        *rule_no = rs->num[r - rs->rules];
        return (rule_flags(r) & RF_ACCEPT) ? RULES_ACCEPT : RULES_DROP;
    }
    *rule_no = RULES_NO_POLICY;
    return (enum rules_action)rs->policy;
}

void rules_release(struct rules_set *rs, const struct rules_host_ops *hosts)
{
    /* The set keeps a copy of the hooks its ids were taken with and
     * releases through those (a set compiled without hooks holds no ids). */
    (void)hosts;
    clear(rs, RULES_EMPTY);
}

bool rules_uses_host(const struct rules_set *rs, int host_id)
{
    unsigned i;

    if (!rs->slow || host_id < 0)
        return false;
    for (i = 0; i < rs->n; i++)
        if (rs->host[i] == host_id)
            return true;
    return false;
}

enum rules_state rules_state(const struct rules_set *rs)
{
    return (enum rules_state)rs->state;
}

unsigned rules_count(const struct rules_set *rs)
{
    return rs->state == RULES_LOADED ? rs->n : 0;
}
