/*
 * rules.h: the Qubes firewall rules of one client, parsed and matched.
 *
 * dom0 writes a client's rules to QubesDB under /qubes-firewall/<ip>/ as a
 * `policy` key and numbered keys "0000".."9999" holding space-separated
 * key=value tokens (qubes-interfaces.md section 8, semantics.md "Rules").
 * rules_compile() validates them as strictly as dom0 does and builds a
 * compact compiled form in caller-given storage; any error turns the whole
 * set into "drop everything" and yields a one-line reason. rules_match()
 * judges one new flow in a few instructions per rule, without string work.
 *
 * This is the IPv4 tree: a rule with dst6 is an error here (dom0 never
 * writes one into the IPv4 tree), so the set fails closed.
 *
 * docs/rules.md has the accepted grammar, the error messages and the
 * matching semantics.
 *
 * Threading: none; main loop only. No allocation: storage is given by the
 * caller (rules_mem_size()).
 */
#ifndef QW_RULES_H
#define QW_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Upper bound of max_rules: rule keys have 4 digits. */
#define RULES_MAX 10000u

/* A reason buffer of this size never truncates a rules_compile() reason. */
#define RULES_WHY_MAX 160u

/* rule_no reported by rules_match() when no numbered rule decided. */
#define RULES_NO_POLICY (-1) /* the policy decided */
#define RULES_NO_NONE (-2)   /* empty or fail-closed set: dropped */

enum rules_action { RULES_DROP = 0, RULES_ACCEPT = 1 };

enum rules_state {
    RULES_EMPTY = 0,  /* after rules_init()/rules_release(): drops all */
    RULES_LOADED = 1, /* a valid set is compiled */
    RULES_FAILED = 2, /* the last compile failed: drops all */
};

/* What a new connection looks like (the parts rules look at). */
struct rules_flow {
    uint32_t dst;      /* IPv4 destination, host order */
    uint16_t dport;    /* TCP/UDP destination port (ignored otherwise) */
    uint8_t proto;     /* IP protocol number */
    uint8_t icmp_type; /* ICMP type when proto is 1 (ignored otherwise) */
};

/* The DNS server set of specialtarget=dns (/qubes-primary-dns and
 * /qubes-secondary-dns), host order; n = 0..2 addresses in use. */
struct rules_dns {
    uint32_t addr[2];
    unsigned n;
};

/*
 * dsthost hook, implemented by core/dns.c. A name is registered once per
 * compiled rule that uses it and released when the rule goes away.
 *   ref:   start tracking a lower-case host name (no trailing dot, at most
 *          253 chars); returns a host id >= 0, or < 0 when the name cannot
 *          be tracked (table full): the compile then fails closed.
 *   unref: the rule holding id is gone.
 *   match: 1 if addr (host order) is in the name's answer set, 0 if the
 *          name is resolved and addr is not in it, -1 while unresolved.
 */
struct rules_host_ops {
    void *ctx;
    int (*ref)(void *ctx, const char *name);
    void (*unref)(void *ctx, int id);
    int (*match)(void *ctx, int id, uint32_t addr);
};

/* One QubesDB entry of a client's tree; both strings NUL-terminated. key is
 * relative to /qubes-firewall/<ip>/: "policy" or "0000".."9999". */
struct rules_entry {
    const char *key;
    const char *value;
};

/* One client's compiled set; lives in rules_mem_size() bytes. */
struct rules_set;

/*
 * Bytes of storage for a set of at most max_rules rules (clamped to
 * RULES_MAX): 30 bytes per rule plus a header of under 128 bytes.
 */
size_t rules_mem_size(unsigned max_rules);

/*
 * Make an empty set (state RULES_EMPTY: every flow is dropped) in rs, which
 * points to rules_mem_size(max_rules) bytes aligned to 8. Does not release
 * host references of whatever rs held before: call rules_release() first
 * when reusing the storage of a set that may hold dsthost rules. The set
 * points into its own storage: move it only by pointer, never by copying
 * the bytes.
 */
void rules_init(struct rules_set *rs, unsigned max_rules);

/*
 * Replace the rules in rs with the n entries e (one client's tree, any
 * order). hosts may be NULL when no resolver exists (a dsthost rule is then
 * an error). Host names are referenced through hosts->ref() before the
 * previous set's references are released, so a name in both sets keeps its
 * answers across a reload. Nothing of e is kept after the call.
 *
 * Returns the number of numbered rules (>= 0) on success (state
 * RULES_LOADED). On any error returns -QW_EINVAL (or -QW_ENOSPC: more rules
 * than max_rules, or a host name that cannot be tracked), leaves rs
 * fail-closed (RULES_FAILED, holding no host references) and writes a
 * one-line reason to why (NUL-terminated, truncated to whylen; why may be
 * NULL), e.g. "rule 0003: dstports: low > high (80-20)".
 */
int rules_compile(struct rules_set *rs, const struct rules_entry *e, unsigned n,
                  const struct rules_host_ops *hosts, char *why, size_t whylen);

/*
 * Judge flow f: rules in ascending number, the first whose every predicate
 * matches decides, otherwise the policy. dns is the current DNS server set
 * (NULL = empty); hosts answers dsthost predicates (NULL = every name is
 * unresolved). An unresolved dsthost predicate is false in an accept rule
 * and true in a drop rule. *rule_no (if rule_no is not NULL) receives the
 * deciding rule's number, RULES_NO_POLICY, or RULES_NO_NONE for an empty or
 * fail-closed set (always RULES_DROP). Packet path: no allocation, no
 * string work.
 */
enum rules_action rules_match(const struct rules_set *rs,
                              const struct rules_flow *f,
                              const struct rules_dns *dns,
                              const struct rules_host_ops *hosts, int *rule_no);

/*
 * Release every host reference of rs (through hosts->unref) and make it
 * empty (RULES_EMPTY). Pass the same hosts as at compile time.
 */
void rules_release(struct rules_set *rs, const struct rules_host_ops *hosts);

/* True if a rule of rs refers to host_id (to re-check connections when
 * that name's answer set changes). */
bool rules_uses_host(const struct rules_set *rs, int host_id);

/* State of rs and the number of compiled numbered rules (0 unless
 * RULES_LOADED). */
enum rules_state rules_state(const struct rules_set *rs);
unsigned rules_count(const struct rules_set *rs);

#endif /* QW_RULES_H */
