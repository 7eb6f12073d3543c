/*
 * test_rules.c: the Qubes rule parser and matcher (core/rules.c).
 *
 * Fixed cases for every field and every validation error, the dsthost
 * hook contract (fake resolver below), and a randomised differential test
 * against a plain evaluator that works on the rule text's tokens.
 */
#include <arpa/inet.h>
#include <stdlib.h>

#include "qwall.h"
#include "rules.h"
#include "test.h"

#define IP(a, b, c, d)                                                         \
    ((uint32_t)(a) << 24 | (uint32_t)(b) << 16 | (uint32_t)(c) << 8 |          \
     (uint32_t)(d))

#define TCP 6
#define UDP 17
#define ICMP 1
#define GRE 47

/* ---- fake dsthost resolver -------------------------------------------- */

#define FAKE_MAX 16

struct fake_name {
    char name[256];
    int resolved;
    uint32_t addr[4];
    int naddr;
    int refs;
};

struct fake {
    struct fake_name n[FAKE_MAX];
    int count;
    int capacity;    /* ref() fails beyond this many names */
    int zero_events; /* unrefs that dropped a name to 0 references */
    int total_refs;
    int match_calls;
};

static int fake_find(struct fake *f, const char *name)
{
    for (int i = 0; i < f->count; i++)
        if (strcmp(f->n[i].name, name) == 0)
            return i;
    return -1;
}

static int fake_ref(void *ctx, const char *name)
{
    struct fake *f = ctx;
    int i = fake_find(f, name);

    if (i < 0) {
        if (f->count >= f->capacity)
            return -1;
        i = f->count++;
        memset(&f->n[i], 0, sizeof f->n[i]);
        snprintf(f->n[i].name, sizeof f->n[i].name, "%s", name);
    }
    f->n[i].refs++;
    f->total_refs++;
    return i;
}

static void fake_unref(void *ctx, int id)
{
    struct fake *f = ctx;

    if (id < 0 || id >= f->count || f->n[id].refs <= 0) {
        f->zero_events += 1000; /* a bogus unref: make the test fail */
        return;
    }
    f->total_refs--;
    if (--f->n[id].refs == 0)
        f->zero_events++;
}

static int fake_match(void *ctx, int id, uint32_t addr)
{
    struct fake *f = ctx;

    f->match_calls++;
    if (id < 0 || id >= f->count)
        return -1000; /* never happens with a correct caller */
    if (!f->n[id].resolved)
        return -1;
    for (int i = 0; i < f->n[id].naddr; i++)
        if (f->n[id].addr[i] == addr)
            return 1;
    return 0;
}

/* Pre-declare a name's resolution state (the set need not reference it). */
static void fake_set(struct fake *f, const char *name, int resolved,
                     uint32_t a0, uint32_t a1)
{
    int i = fake_find(f, name);

    if (i < 0) {
        i = f->count++;
        memset(&f->n[i], 0, sizeof f->n[i]);
        snprintf(f->n[i].name, sizeof f->n[i].name, "%s", name);
    }
    f->n[i].resolved = resolved;
    f->n[i].naddr = 0;
    if (a0 != 0)
        f->n[i].addr[f->n[i].naddr++] = a0;
    if (a1 != 0)
        f->n[i].addr[f->n[i].naddr++] = a1;
}

static struct fake fk;
static struct rules_host_ops fops;

static void fake_reset(void)
{
    memset(&fk, 0, sizeof fk);
    fk.capacity = FAKE_MAX;
    fops.ctx = &fk;
    fops.ref = fake_ref;
    fops.unref = fake_unref;
    fops.match = fake_match;
}

/* ---- helpers ---------------------------------------------------------- */

static _Alignas(16) uint8_t setmem[1 << 20];
static char why[RULES_WHY_MAX];

static struct rules_set *new_set(unsigned max_rules)
{
    struct rules_set *rs = (struct rules_set *)setmem;

    if (rules_mem_size(max_rules) > sizeof setmem)
        abort();
    rules_init(rs, max_rules);
    return rs;
}

static const struct rules_dns dns2 = {{IP(10, 139, 1, 1), IP(10, 139, 1, 2)},
                                      2};

/* Compile "policy" + rules given as alternating key, value strings. */
static int compile_kv(struct rules_set *rs, const char *const *kv)
{
    struct rules_entry e[64];
    unsigned n = 0;

    for (; kv[0] != NULL; kv += 2)
        e[n++] = (struct rules_entry){kv[0], kv[1]};
    return rules_compile(rs, e, n, &fops, why, sizeof why);
}

/* Compile one rule (key 0000) with policy drop. */
static int compile1(struct rules_set *rs, const char *rule)
{
    const char *kv[] = {"policy", "drop", "0000", rule, NULL};

    return compile_kv(rs, kv);
}

static int verdict(const struct rules_set *rs, uint8_t proto, uint32_t dst,
                   uint16_t dport, uint8_t type, int *no)
{
    struct rules_flow f = {dst, dport, proto, type};

    return (int)rules_match(rs, &f, &dns2, &fops, no);
}

/* 1 accept, 0 drop; only the verdict */
static int acc(const struct rules_set *rs, uint8_t proto, uint32_t dst,
               uint16_t dport)
{
    return verdict(rs, proto, dst, dport, 0, NULL);
}

static int acc_icmp(const struct rules_set *rs, uint32_t dst, uint8_t type)
{
    return verdict(rs, ICMP, dst, 0, type, NULL);
}

/* ---- fixed cases ------------------------------------------------------ */

TEST(empty_set_drops)
{
    struct rules_set *rs = new_set(8);
    int no = 0;

    fake_reset();
    CHECK_EQ(rules_state(rs), RULES_EMPTY);
    CHECK_EQ(verdict(rs, TCP, IP(1, 2, 3, 4), 80, 0, &no), RULES_DROP);
    CHECK_EQ(no, RULES_NO_NONE);
    CHECK_EQ(rules_count(rs), 0);
}

TEST(policy_only)
{
    struct rules_set *rs = new_set(8);
    const char *acc_kv[] = {"policy", "accept", NULL};
    const char *drop_kv[] = {"policy", "drop", NULL};
    int no = 0;

    fake_reset();
    CHECK_EQ(compile_kv(rs, acc_kv), 0);
    CHECK_EQ(rules_state(rs), RULES_LOADED);
    CHECK_EQ(verdict(rs, GRE, IP(1, 2, 3, 4), 0, 0, &no), RULES_ACCEPT);
    CHECK_EQ(no, RULES_NO_POLICY);
    CHECK_EQ(compile_kv(rs, drop_kv), 0);
    CHECK_EQ(verdict(rs, TCP, IP(1, 2, 3, 4), 80, 0, &no), RULES_DROP);
    CHECK_EQ(no, RULES_NO_POLICY);
    CHECK_EQ(why[0], '\0');
}

TEST(accept_all_matches_every_protocol)
{
    struct rules_set *rs = new_set(8);
    int no = -5;

    fake_reset();
    CHECK_EQ(compile1(rs, "action=accept"), 1);
    CHECK_EQ(verdict(rs, TCP, IP(8, 8, 8, 8), 443, 0, &no), RULES_ACCEPT);
    CHECK_EQ(no, 0);
    CHECK_EQ(acc(rs, UDP, IP(0, 0, 0, 0), 0), 1);
    CHECK_EQ(acc_icmp(rs, IP(255, 255, 255, 255), 8), 1);
    CHECK_EQ(acc(rs, GRE, IP(10, 0, 0, 1), 0), 1);
    CHECK_EQ(acc(rs, 50, IP(10, 0, 0, 1), 0), 1);
    CHECK_EQ(acc(rs, 132, IP(10, 0, 0, 1), 0), 1);
    /* rule_no may be NULL */
    CHECK_EQ(
        rules_match(rs, &(struct rules_flow){1, 2, TCP, 0}, NULL, NULL, NULL),
        RULES_ACCEPT);
}

TEST(order_gaps_and_first_match)
{
    struct rules_set *rs = new_set(16);
    /* keys out of order, with gaps; 0002 decides before 0005 and 0007 */
    const char *kv[] = {"0007",   "action=accept",
                        "0005",   "action=drop proto=tcp",
                        "policy", "drop",
                        "0002",   "action=accept proto=tcp dstports=443-443",
                        "0010",   "action=drop",
                        NULL};
    int no;

    fake_reset();
    CHECK_EQ(compile_kv(rs, kv), 4);
    CHECK_EQ(rules_count(rs), 4);
    CHECK_EQ(verdict(rs, TCP, IP(1, 1, 1, 1), 443, 0, &no), RULES_ACCEPT);
    CHECK_EQ(no, 2);
    CHECK_EQ(verdict(rs, TCP, IP(1, 1, 1, 1), 80, 0, &no), RULES_DROP);
    CHECK_EQ(no, 5);
    CHECK_EQ(verdict(rs, UDP, IP(1, 1, 1, 1), 80, 0, &no), RULES_ACCEPT);
    CHECK_EQ(no, 7);
}

TEST(sorting_many_rules)
{
    /* 10000 rules given in descending key order: the sort must restore
     * ascending order; rule k accepts TCP port k only. */
    static struct rules_entry e[RULES_MAX + 1];
    static char keys[RULES_MAX][5], vals[RULES_MAX][48];
    struct rules_set *rs = new_set(RULES_MAX);
    unsigned i;
    int no, ok = 1;

    fake_reset();
    e[0] = (struct rules_entry){"policy", "drop"};
    for (i = 0; i < RULES_MAX; i++) {
        unsigned k = RULES_MAX - 1 - i;
        snprintf(keys[i], sizeof keys[i], "%04u", k);
        snprintf(vals[i], sizeof vals[i], "proto=tcp action=%s dstports=%u",
                 k % 3 ? "accept" : "drop", k);
        e[i + 1] = (struct rules_entry){keys[i], vals[i]};
    }
    CHECK_EQ(rules_compile(rs, e, RULES_MAX + 1, &fops, why, sizeof why),
             RULES_MAX);
    for (i = 0; i < RULES_MAX; i += 7) {
        int v = verdict(rs, TCP, IP(1, 2, 3, 4), (uint16_t)i, 0, &no);
        if (no != (int)i || v != (i % 3 ? RULES_ACCEPT : RULES_DROP))
            ok = 0;
    }
    CHECK(ok);
    CHECK_EQ(verdict(rs, TCP, IP(1, 2, 3, 4), 10000, 0, &no), RULES_DROP);
    CHECK_EQ(no, RULES_NO_POLICY);
}

TEST(token_order_and_spaces)
{
    struct rules_set *rs = new_set(8);
    const char *forms[] = {
        "action=accept proto=tcp dst4=10.0.0.0/8 dstports=22-22",
        "dstports=22-22 dst4=10.0.0.0/8 proto=tcp action=accept",
        "  proto=tcp   action=accept dstports=22   dst4=10.0.0.0/8  ",
        "dst4=10.0.0.0/8 action=accept dstports=22-22 proto=tcp ",
    };

    fake_reset();
    for (unsigned i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        CHECK_EQ(compile1(rs, forms[i]), 1);
        CHECK_EQ(acc(rs, TCP, IP(10, 9, 8, 7), 22), 1);
        CHECK_EQ(acc(rs, TCP, IP(10, 9, 8, 7), 23), 0);
        CHECK_EQ(acc(rs, TCP, IP(11, 9, 8, 7), 22), 0);
        CHECK_EQ(acc(rs, UDP, IP(10, 9, 8, 7), 22), 0);
    }
}

TEST(field_dst4)
{
    struct rules_set *rs = new_set(8);

    fake_reset();
    /* host bits allowed and ignored */
    CHECK_EQ(compile1(rs, "action=accept dst4=192.168.1.77/24"), 1);
    CHECK_EQ(acc(rs, TCP, IP(192, 168, 1, 1), 1), 1);
    CHECK_EQ(acc(rs, TCP, IP(192, 168, 1, 255), 1), 1);
    CHECK_EQ(acc(rs, TCP, IP(192, 168, 2, 77), 1), 0);
    /* /32 and a bare address */
    CHECK_EQ(compile1(rs, "action=accept dst4=8.8.8.8/32"), 1);
    CHECK_EQ(acc(rs, UDP, IP(8, 8, 8, 8), 53), 1);
    CHECK_EQ(acc(rs, UDP, IP(8, 8, 8, 9), 53), 0);
    CHECK_EQ(compile1(rs, "action=accept dst4=8.8.8.8"), 1);
    CHECK_EQ(acc(rs, UDP, IP(8, 8, 8, 8), 53), 1);
    CHECK_EQ(acc(rs, UDP, IP(8, 8, 4, 4), 53), 0);
    /* /0 matches everything, host bits and all */
    CHECK_EQ(compile1(rs, "action=accept dst4=1.2.3.4/0"), 1);
    CHECK_EQ(acc(rs, GRE, IP(200, 1, 1, 1), 0), 1);
    /* /1 and /31 edges */
    CHECK_EQ(compile1(rs, "action=accept dst4=128.0.0.0/1"), 1);
    CHECK_EQ(acc(rs, TCP, IP(255, 0, 0, 1), 1), 1);
    CHECK_EQ(acc(rs, TCP, IP(127, 255, 255, 255), 1), 0);
    CHECK_EQ(compile1(rs, "action=accept dst4=10.0.0.3/31"), 1);
    CHECK_EQ(acc(rs, TCP, IP(10, 0, 0, 2), 1), 1);
    CHECK_EQ(acc(rs, TCP, IP(10, 0, 0, 3), 1), 1);
    CHECK_EQ(acc(rs, TCP, IP(10, 0, 0, 4), 1), 0);
    CHECK_EQ(compile1(rs, "action=accept dst4=0.0.0.0/8"), 1);
    CHECK_EQ(acc(rs, TCP, IP(0, 255, 0, 4), 1), 1);
}

TEST(field_proto)
{
    struct rules_set *rs = new_set(8);

    fake_reset();
    CHECK_EQ(compile1(rs, "action=accept proto=tcp"), 1);
    CHECK_EQ(acc(rs, TCP, IP(1, 1, 1, 1), 0), 1);
    CHECK_EQ(acc(rs, UDP, IP(1, 1, 1, 1), 0), 0);
    CHECK_EQ(acc_icmp(rs, IP(1, 1, 1, 1), 8), 0);
    CHECK_EQ(compile1(rs, "action=accept proto=udp"), 1);
    CHECK_EQ(acc(rs, UDP, IP(1, 1, 1, 1), 65535), 1);
    CHECK_EQ(acc(rs, TCP, IP(1, 1, 1, 1), 0), 0);
    CHECK_EQ(compile1(rs, "action=accept proto=icmp"), 1);
    CHECK_EQ(acc_icmp(rs, IP(1, 1, 1, 1), 0), 1);
    CHECK_EQ(acc_icmp(rs, IP(1, 1, 1, 1), 255), 1);
    CHECK_EQ(acc(rs, GRE, IP(1, 1, 1, 1), 0), 0);
    CHECK_EQ(acc(rs, UDP, IP(1, 1, 1, 1), 0), 0);
    /* a drop rule of one protocol lets the others fall to the next rule */
    const char *kv[] = {
        "policy", "drop",          "0000", "action=drop proto=udp",
        "0001",   "action=accept", NULL};
    CHECK_EQ(compile_kv(rs, kv), 2);
    CHECK_EQ(acc(rs, UDP, IP(1, 1, 1, 1), 53), 0);
    CHECK_EQ(acc(rs, GRE, IP(1, 1, 1, 1), 0), 1);
}

TEST(field_dstports)
{
    struct rules_set *rs = new_set(8);

    fake_reset();
    CHECK_EQ(compile1(rs, "action=accept proto=tcp dstports=1024-65535"), 1);
    CHECK_EQ(acc(rs, TCP, IP(1, 1, 1, 1), 1023), 0);
    CHECK_EQ(acc(rs, TCP, IP(1, 1, 1, 1), 1024), 1);
    CHECK_EQ(acc(rs, TCP, IP(1, 1, 1, 1), 65535), 1);
    CHECK_EQ(acc(rs, UDP, IP(1, 1, 1, 1), 2000), 0);
    CHECK_EQ(compile1(rs, "action=accept proto=udp dstports=0-0"), 1);
    CHECK_EQ(acc(rs, UDP, IP(1, 1, 1, 1), 0), 1);
    CHECK_EQ(acc(rs, UDP, IP(1, 1, 1, 1), 1), 0);
    CHECK_EQ(compile1(rs, "action=accept proto=udp dstports=0-65535"), 1);
    CHECK_EQ(acc(rs, UDP, IP(1, 1, 1, 1), 0), 1);
    CHECK_EQ(acc(rs, UDP, IP(1, 1, 1, 1), 65535), 1);
    CHECK_EQ(acc(rs, TCP, IP(1, 1, 1, 1), 0), 0);
    /* single port form */
    CHECK_EQ(compile1(rs, "action=accept proto=tcp dstports=443"), 1);
    CHECK_EQ(acc(rs, TCP, IP(1, 1, 1, 1), 443), 1);
    CHECK_EQ(acc(rs, TCP, IP(1, 1, 1, 1), 444), 0);
    CHECK_EQ(acc(rs, TCP, IP(1, 1, 1, 1), 442), 0);
    /* without proto: TCP and UDP only */
    CHECK_EQ(compile1(rs, "action=accept dstports=53-53"), 1);
    CHECK_EQ(acc(rs, TCP, IP(1, 1, 1, 1), 53), 1);
    CHECK_EQ(acc(rs, UDP, IP(1, 1, 1, 1), 53), 1);
    CHECK_EQ(acc(rs, UDP, IP(1, 1, 1, 1), 54), 0);
    CHECK_EQ(acc_icmp(rs, IP(1, 1, 1, 1), 53), 0);
    CHECK_EQ(acc(rs, GRE, IP(1, 1, 1, 1), 53), 0);
    /* aligned power-of-two blocks (compiled to a mask) and odd ranges */
    CHECK_EQ(compile1(rs, "action=accept proto=tcp dstports=1024-2047"), 1);
    CHECK_EQ(acc(rs, TCP, IP(1, 1, 1, 1), 1023), 0);
    CHECK_EQ(acc(rs, TCP, IP(1, 1, 1, 1), 1024), 1);
    CHECK_EQ(acc(rs, TCP, IP(1, 1, 1, 1), 2047), 1);
    CHECK_EQ(acc(rs, TCP, IP(1, 1, 1, 1), 2048), 0);
    CHECK_EQ(acc(rs, TCP, IP(1, 1, 1, 1), 1024 + 65536 / 2), 0);
    CHECK_EQ(compile1(rs, "action=accept dstports=32768-65535"), 1);
    CHECK_EQ(acc(rs, UDP, IP(1, 1, 1, 1), 32767), 0);
    CHECK_EQ(acc(rs, UDP, IP(1, 1, 1, 1), 32768), 1);
    CHECK_EQ(acc(rs, TCP, IP(1, 1, 1, 1), 65535), 1);
    CHECK_EQ(compile1(rs, "action=accept proto=udp dstports=1025-2048"), 1);
    CHECK_EQ(acc(rs, UDP, IP(1, 1, 1, 1), 1024), 0);
    CHECK_EQ(acc(rs, UDP, IP(1, 1, 1, 1), 1025), 1);
    CHECK_EQ(acc(rs, UDP, IP(1, 1, 1, 1), 2048), 1);
    CHECK_EQ(acc(rs, UDP, IP(1, 1, 1, 1), 2049), 0);
    CHECK_EQ(acc(rs, TCP, IP(1, 1, 1, 1), 1500), 0);
    CHECK_EQ(compile1(rs, "action=accept proto=tcp dstports=65534-65535"), 1);
    CHECK_EQ(acc(rs, TCP, IP(1, 1, 1, 1), 65533), 0);
    CHECK_EQ(acc(rs, TCP, IP(1, 1, 1, 1), 65534), 1);
    /* the ICMP type is not a port */
    CHECK_EQ(compile1(rs, "action=accept dstports=0-10"), 1);
    CHECK_EQ(acc_icmp(rs, IP(1, 1, 1, 1), 8), 0);
}

TEST(field_icmptype)
{
    struct rules_set *rs = new_set(8);

    fake_reset();
    CHECK_EQ(compile1(rs, "action=accept proto=icmp icmptype=8"), 1);
    CHECK_EQ(acc_icmp(rs, IP(1, 1, 1, 1), 8), 1);
    CHECK_EQ(acc_icmp(rs, IP(1, 1, 1, 1), 0), 0);
    CHECK_EQ(acc_icmp(rs, IP(1, 1, 1, 1), 13), 0);
    /* a TCP flow with port 8 is not ICMP type 8 */
    CHECK_EQ(acc(rs, TCP, IP(1, 1, 1, 1), 8), 0);
    CHECK_EQ(compile1(rs, "icmptype=255 action=accept proto=icmp"), 1);
    CHECK_EQ(acc_icmp(rs, IP(1, 1, 1, 1), 255), 1);
    CHECK_EQ(acc_icmp(rs, IP(1, 1, 1, 1), 254), 0);
    CHECK_EQ(compile1(rs, "action=accept proto=icmp icmptype=0"), 1);
    CHECK_EQ(acc_icmp(rs, IP(1, 1, 1, 1), 0), 1);
}

TEST(field_action_drop)
{
    struct rules_set *rs = new_set(8);
    const char *kv[] = {"policy", "accept", "0003",
                        "action=drop dst4=1.0.0.0/8", NULL};
    int no;

    fake_reset();
    CHECK_EQ(compile_kv(rs, kv), 1);
    CHECK_EQ(verdict(rs, TCP, IP(1, 2, 3, 4), 1, 0, &no), RULES_DROP);
    CHECK_EQ(no, 3);
    CHECK_EQ(verdict(rs, TCP, IP(2, 2, 3, 4), 1, 0, &no), RULES_ACCEPT);
    CHECK_EQ(no, RULES_NO_POLICY);
}

TEST(specialtarget_dns)
{
    struct rules_set *rs = new_set(8);
    uint32_t d1 = IP(10, 139, 1, 1), d2 = IP(10, 139, 1, 2);
    struct rules_dns one = {{IP(10, 139, 1, 2), 0}, 1}, none = {{0, 0}, 0};
    struct rules_flow f = {IP(10, 139, 1, 1), 53, UDP, 0};

    fake_reset();
    /* without proto: TCP and UDP to port 53 of a server */
    CHECK_EQ(compile1(rs, "action=accept specialtarget=dns"), 1);
    CHECK_EQ(acc(rs, UDP, d1, 53), 1);
    CHECK_EQ(acc(rs, TCP, d2, 53), 1);
    CHECK_EQ(acc(rs, UDP, d1, 54), 0);
    CHECK_EQ(acc(rs, UDP, IP(8, 8, 8, 8), 53), 0);
    CHECK_EQ(acc_icmp(rs, d1, 8), 0);
    CHECK_EQ(acc(rs, GRE, d1, 53), 0);
    /* the server set comes from the caller */
    CHECK_EQ(rules_match(rs, &f, &one, &fops, NULL), RULES_DROP);
    f.dst = d2;
    CHECK_EQ(rules_match(rs, &f, &one, &fops, NULL), RULES_ACCEPT);
    CHECK_EQ(rules_match(rs, &f, &none, &fops, NULL), RULES_DROP);
    CHECK_EQ(rules_match(rs, &f, NULL, &fops, NULL), RULES_DROP);
    /* with proto: limited to it (unlike the OCaml firewall) */
    CHECK_EQ(compile1(rs, "action=accept proto=udp specialtarget=dns"), 1);
    CHECK_EQ(acc(rs, UDP, d1, 53), 1);
    CHECK_EQ(acc(rs, TCP, d1, 53), 0);
    CHECK_EQ(acc(rs, UDP, IP(1, 1, 1, 1), 53), 0);
    CHECK_EQ(acc(rs, UDP, IP(1, 1, 1, 1), 80), 0);
    CHECK_EQ(compile1(rs, "action=accept proto=tcp specialtarget=dns"), 1);
    CHECK_EQ(acc(rs, TCP, d2, 53), 1);
    CHECK_EQ(acc(rs, UDP, d2, 53), 0);
    /* with dstports including 53: still port 53 only */
    CHECK_EQ(compile1(rs, "action=accept specialtarget=dns dstports=1-1000"),
             1);
    CHECK_EQ(acc(rs, UDP, d1, 53), 1);
    CHECK_EQ(acc(rs, UDP, d1, 80), 0);
    CHECK_EQ(compile1(rs, "action=accept specialtarget=dns dstports=53"), 1);
    CHECK_EQ(acc(rs, TCP, d1, 53), 1);
    /* with dstports excluding 53: never matches */
    CHECK_EQ(compile1(rs, "action=accept specialtarget=dns dstports=80-80"), 1);
    CHECK_EQ(acc(rs, UDP, d1, 53), 0);
    CHECK_EQ(acc(rs, UDP, d1, 80), 0);
    CHECK_EQ(compile1(rs, "action=accept specialtarget=dns dstports=54-100"),
             1);
    CHECK_EQ(acc(rs, TCP, d1, 53), 0);
    /* combined with dst4: both must hold */
    CHECK_EQ(compile1(rs, "action=accept specialtarget=dns dst4=10.139.1.2"),
             1);
    CHECK_EQ(acc(rs, UDP, d1, 53), 0);
    CHECK_EQ(acc(rs, UDP, d2, 53), 1);
    /* drop + dns, then accept */
    const char *kv[] = {"policy", "drop",
                        "0000",   "action=drop proto=tcp specialtarget=dns",
                        "0001",   "action=accept",
                        NULL};
    CHECK_EQ(compile_kv(rs, kv), 2);
    CHECK_EQ(acc(rs, TCP, d1, 53), 0);
    CHECK_EQ(acc(rs, UDP, d1, 53), 1);
    CHECK_EQ(acc(rs, TCP, d1, 80), 1);
}

TEST(dsthost_resolved)
{
    struct rules_set *rs = new_set(8);
    const char *kv[] = {"policy", "drop",
                        "0000",   "action=accept dsthost=example.com proto=tcp",
                        "0001",   "action=drop dsthost=Ads.Example.NET.",
                        "0002",   "action=accept",
                        NULL};
    int no;

    fake_reset();
    fake_set(&fk, "example.com", 1, IP(93, 184, 216, 34), IP(93, 184, 216, 35));
    fake_set(&fk, "ads.example.net", 1, IP(6, 6, 6, 6), 0);
    CHECK_EQ(compile_kv(rs, kv), 3);
    CHECK_EQ(fk.n[0].refs, 1);
    CHECK_EQ(fk.n[1].refs, 1); /* lower-cased, trailing dot dropped */
    CHECK_EQ(fk.count, 2);
    CHECK(rules_uses_host(rs, 0));
    CHECK(rules_uses_host(rs, 1));
    CHECK(!rules_uses_host(rs, 2));
    CHECK(!rules_uses_host(rs, -1));
    CHECK_EQ(verdict(rs, TCP, IP(93, 184, 216, 35), 443, 0, &no), RULES_ACCEPT);
    CHECK_EQ(no, 0);
    CHECK_EQ(verdict(rs, UDP, IP(93, 184, 216, 35), 443, 0, &no), RULES_ACCEPT);
    CHECK_EQ(no, 2);
    CHECK_EQ(verdict(rs, TCP, IP(6, 6, 6, 6), 443, 0, &no), RULES_DROP);
    CHECK_EQ(no, 1);
    CHECK_EQ(verdict(rs, TCP, IP(6, 6, 6, 7), 443, 0, &no), RULES_ACCEPT);
    CHECK_EQ(no, 2);
    /* resolved to nothing: never in the set */
    fake_set(&fk, "ads.example.net", 1, 0, 0);
    CHECK_EQ(verdict(rs, TCP, IP(6, 6, 6, 6), 443, 0, &no), RULES_ACCEPT);
    CHECK_EQ(no, 2);
    rules_release(rs, &fops);
    CHECK_EQ(fk.total_refs, 0);
    CHECK_EQ(fk.zero_events, 2);
    CHECK_EQ(rules_state(rs), RULES_EMPTY);
    CHECK_EQ(acc(rs, TCP, IP(1, 1, 1, 1), 1), 0);
}

TEST(dsthost_unresolved)
{
    struct rules_set *rs = new_set(8);
    const char *acc_kv[] = {"policy", "drop", "0000",
                            "action=accept dsthost=slow.example", NULL};
    const char *drop_kv[] = {
        "policy", "accept",
        "0000",   "action=drop dsthost=slow.example proto=tcp",
        "0001",   "action=accept",
        NULL};
    int no;

    fake_reset();
    /* accept rule with an unresolved name matches nothing */
    CHECK_EQ(compile_kv(rs, acc_kv), 1);
    CHECK_EQ(verdict(rs, TCP, IP(1, 2, 3, 4), 80, 0, &no), RULES_DROP);
    CHECK_EQ(no, RULES_NO_POLICY);
    CHECK(fk.match_calls > 0);
    /* once resolved it matches its addresses */
    fake_set(&fk, "slow.example", 1, IP(1, 2, 3, 4), 0);
    CHECK_EQ(verdict(rs, TCP, IP(1, 2, 3, 4), 80, 0, &no), RULES_ACCEPT);
    CHECK_EQ(no, 0);
    /* drop rule with an unresolved name: its dsthost predicate holds for
     * every address, the other predicates still apply */
    fake_set(&fk, "slow.example", 0, 0, 0);
    CHECK_EQ(compile_kv(rs, drop_kv), 2);
    CHECK_EQ(verdict(rs, TCP, IP(9, 9, 9, 9), 80, 0, &no), RULES_DROP);
    CHECK_EQ(no, 0);
    CHECK_EQ(verdict(rs, UDP, IP(9, 9, 9, 9), 80, 0, &no), RULES_ACCEPT);
    CHECK_EQ(no, 1);
    /* no hooks at match time: every name is unresolved */
    struct rules_flow f = {IP(9, 9, 9, 9), 80, TCP, 0};
    CHECK_EQ(rules_match(rs, &f, &dns2, NULL, &no), RULES_DROP);
    CHECK_EQ(no, 0);
    CHECK_EQ(compile_kv(rs, acc_kv), 1);
    CHECK_EQ(rules_match(rs, &f, &dns2, NULL, &no), RULES_DROP);
    CHECK_EQ(no, RULES_NO_POLICY);
    rules_release(rs, &fops);
    CHECK_EQ(fk.total_refs, 0);
}

TEST(dsthost_reload_keeps_refs)
{
    struct rules_set *rs = new_set(8);
    const char *a[] = {"policy", "drop",
                       "0000",   "action=accept dsthost=a.example",
                       "0001",   "action=accept dsthost=b.example",
                       NULL};
    const char *b[] = {"policy", "drop",
                       "0004",   "action=accept dsthost=b.example",
                       "0009",   "action=accept dsthost=c.example",
                       NULL};
    const char *bad[] = {
        "policy", "drop",         "0000", "action=accept dsthost=c.example",
        "0001",   "action=maybe", NULL};

    fake_reset();
    CHECK_EQ(compile_kv(rs, a), 2);
    CHECK_EQ(fk.total_refs, 2);
    CHECK_EQ(compile_kv(rs, b), 2);
    /* b.example went 1 -> 2 -> 1: never to zero; a.example released */
    CHECK_EQ(fk.zero_events, 1);
    CHECK_EQ(fk.n[fake_find(&fk, "a.example")].refs, 0);
    CHECK_EQ(fk.n[fake_find(&fk, "b.example")].refs, 1);
    CHECK_EQ(fk.n[fake_find(&fk, "c.example")].refs, 1);
    CHECK_EQ(fk.total_refs, 2);
    /* a failing compile releases everything */
    CHECK(compile_kv(rs, bad) < 0);
    CHECK_EQ(fk.total_refs, 0);
    CHECK_EQ(rules_state(rs), RULES_FAILED);
    CHECK(!rules_uses_host(rs, fake_find(&fk, "c.example")));
    CHECK(strcmp(why, "rule 0001: action: not accept or drop (maybe)") == 0);
}

TEST(dsthost_ref_failure)
{
    struct rules_set *rs = new_set(8);
    const char *kv[] = {"policy", "drop",
                        "0000",   "action=accept dsthost=a.example",
                        "0001",   "action=accept dsthost=b.example",
                        "0002",   "action=accept dsthost=c.example",
                        NULL};

    fake_reset();
    fk.capacity = 2;
    CHECK_EQ(compile_kv(rs, kv), -QW_ENOSPC);
    CHECK(strcmp(why, "rule 0002: dsthost: cannot track name (c.example)") ==
          0);
    CHECK_EQ(fk.total_refs, 0);
    CHECK_EQ(fk.zero_events, 2);
    CHECK_EQ(rules_state(rs), RULES_FAILED);
    /* no resolver at all */
    fake_reset();
    struct rules_entry e[2] = {{"policy", "drop"},
                               {"0000", "action=accept dsthost=x.example"}};
    CHECK_EQ(rules_compile(rs, e, 2, NULL, why, sizeof why), -QW_EINVAL);
    CHECK(strcmp(why, "rule 0000: dsthost: no resolver (x.example)") == 0);
    /* but a set without dsthost needs none */
    e[1].value = "action=accept";
    CHECK_EQ(rules_compile(rs, e, 2, NULL, why, sizeof why), 1);
    CHECK_EQ(acc(rs, TCP, IP(1, 1, 1, 1), 1), 1);
}

TEST(fail_closed_behaviour)
{
    struct rules_set *rs = new_set(8);
    const char *good[] = {"policy", "accept", "0000", "action=accept", NULL};
    const char *bad[] = {"policy", "accept",
                         "0000",   "action=accept",
                         "0001",   "action=accept proto=sctp",
                         NULL};
    int no;

    fake_reset();
    CHECK_EQ(compile_kv(rs, good), 1);
    CHECK_EQ(acc(rs, TCP, IP(1, 1, 1, 1), 1), 1);
    /* a later bad rule poisons the whole set, even policy accept */
    CHECK_EQ(compile_kv(rs, bad), -QW_EINVAL);
    CHECK_EQ(rules_state(rs), RULES_FAILED);
    CHECK_EQ(rules_count(rs), 0);
    CHECK_EQ(verdict(rs, TCP, IP(1, 1, 1, 1), 1, 0, &no), RULES_DROP);
    CHECK_EQ(no, RULES_NO_NONE);
    CHECK_EQ(acc(rs, GRE, IP(1, 1, 1, 1), 0), 0);
    CHECK_EQ(acc_icmp(rs, IP(1, 1, 1, 1), 8), 0);
    CHECK(strcmp(why, "rule 0001: proto: not tcp, udp or icmp (sctp)") == 0);
    /* recovers with the next good set */
    CHECK_EQ(compile_kv(rs, good), 1);
    CHECK_EQ(rules_state(rs), RULES_LOADED);
    CHECK_EQ(acc(rs, TCP, IP(1, 1, 1, 1), 1), 1);
    /* why may be NULL or tiny */
    struct rules_entry e[1] = {{"0000", "action=accept"}};
    CHECK_EQ(rules_compile(rs, e, 1, &fops, NULL, 0), -QW_EINVAL);
    char tiny[6];
    CHECK_EQ(rules_compile(rs, e, 1, &fops, tiny, sizeof tiny), -QW_EINVAL);
    CHECK(strcmp(tiny, "polic") == 0);
    CHECK_EQ(acc(rs, TCP, IP(1, 1, 1, 1), 1), 0);
}

TEST(too_many_rules)
{
    struct rules_set *rs = new_set(3);
    const char *kv[] = {"policy", "drop",          "0000", "action=accept",
                        "0001",   "action=accept", "0002", "action=accept",
                        "0003",   "action=accept", NULL};
    const char *kv3[] = {"policy",        "drop",          "0000",
                         "action=accept", "0001",          "action=accept",
                         "0002",          "action=accept", NULL};

    fake_reset();
    CHECK_EQ(compile_kv(rs, kv3), 3);
    CHECK_EQ(compile_kv(rs, kv), -QW_ENOSPC);
    CHECK(strcmp(why, "too many rules (more than 3)") == 0);
    CHECK_EQ(acc(rs, TCP, IP(1, 1, 1, 1), 1), 0);
    /* max_rules 0: only a policy */
    rs = new_set(0);
    const char *pol[] = {"policy", "accept", NULL};
    CHECK_EQ(compile_kv(rs, pol), 0);
    CHECK_EQ(compile_kv(rs, kv3), -QW_ENOSPC);
    /* clamped to RULES_MAX */
    CHECK_EQ(rules_mem_size(RULES_MAX + 5), rules_mem_size(RULES_MAX));
    CHECK(rules_mem_size(10) > rules_mem_size(9));
}

/* Each bad rule text and the exact reason it yields (as rule 0003). */
static const struct {
    const char *rule;
    const char *why;
} bad_rules[] = {
    {"", "rule 0003: missing action"},
    {"   ", "rule 0003: missing action"},
    {"proto=tcp", "rule 0003: missing action"},
    {"action=accept expire=1700000000", "rule 0003: unknown key (expire)"},
    {"action=accept comment=x", "rule 0003: unknown key (comment)"},
    {"action=accept dpi=NO", "rule 0003: unknown key (dpi)"},
    {"action=accept Proto=tcp", "rule 0003: unknown key (Proto)"},
    {"action=accept =tcp", "rule 0003: unknown key ()"},
    {"action=accept proto", "rule 0003: token without '=' (proto)"},
    {"action=accept\tproto=tcp", "rule 0003: action: not accept or drop "
                                 "(accept?proto=tcp)"},
    {"action=accept action=accept", "rule 0003: duplicate key (action)"},
    {"action=accept proto=tcp proto=tcp", "rule 0003: duplicate key (proto)"},
    {"action=allow", "rule 0003: action: not accept or drop (allow)"},
    {"action=ACCEPT", "rule 0003: action: not accept or drop (ACCEPT)"},
    {"action=", "rule 0003: action: not accept or drop ()"},
    {"action=accept dst4=10.0.0.0/33", "rule 0003: dst4: bad IPv4 prefix "
                                       "(10.0.0.0/33)"},
    {"action=accept dst4=10.0.0/8", "rule 0003: dst4: bad IPv4 prefix "
                                    "(10.0.0/8)"},
    {"action=accept dst4=10.0.0.256/32", "rule 0003: dst4: bad IPv4 prefix "
                                         "(10.0.0.256/32)"},
    {"action=accept dst4=10.0.0.1.2/32", "rule 0003: dst4: bad IPv4 prefix "
                                         "(10.0.0.1.2/32)"},
    {"action=accept dst4=010.0.0.1/32", "rule 0003: dst4: bad IPv4 prefix "
                                        "(010.0.0.1/32)"},
    {"action=accept dst4=10.0.0.1/", "rule 0003: dst4: bad IPv4 prefix "
                                     "(10.0.0.1/)"},
    {"action=accept dst4=10.0.0.1/08", "rule 0003: dst4: bad IPv4 prefix "
                                       "(10.0.0.1/08)"},
    {"action=accept dst4=10..0.1/8", "rule 0003: dst4: bad IPv4 prefix "
                                     "(10..0.1/8)"},
    {"action=accept dst4=-1.0.0.1/8", "rule 0003: dst4: bad IPv4 prefix "
                                      "(-1.0.0.1/8)"},
    {"action=accept dst4=", "rule 0003: dst4: bad IPv4 prefix ()"},
    {"action=accept dst4=fd00::/8", "rule 0003: dst4: bad IPv4 prefix "
                                    "(fd00::/8)"},
    {"action=accept dst6=fd00::/8", "rule 0003: dst6: IPv6 rule in the IPv4 "
                                    "tree (fd00::/8)"},
    {"action=accept dst6=::/0", "rule 0003: dst6: IPv6 rule in the IPv4 tree "
                                "(::/0)"},
    {"action=accept dst6=2a00:1450::1:2:3:4:5:6/128",
     "rule 0003: dst6: bad IPv6 prefix (2a00:1450::1:2:3:4:5:6/128)"},
    {"action=accept dst6=fd00::/129", "rule 0003: dst6: bad IPv6 prefix "
                                      "(fd00::/129)"},
    {"action=accept dst6=fd00:::1/64", "rule 0003: dst6: bad IPv6 prefix "
                                       "(fd00:::1/64)"},
    {"action=accept dst6=1::2::3/64", "rule 0003: dst6: bad IPv6 prefix "
                                      "(1::2::3/64)"},
    {"action=accept dst6=12345::/64", "rule 0003: dst6: bad IPv6 prefix "
                                      "(12345::/64)"},
    {"action=accept dst6=10.0.0.1/32", "rule 0003: dst6: bad IPv6 prefix "
                                       "(10.0.0.1/32)"},
    {"action=accept dst6=:1::/64", "rule 0003: dst6: bad IPv6 prefix "
                                   "(:1::/64)"},
    {"action=accept dst6=::1.2.3/96", "rule 0003: dst6: bad IPv6 prefix "
                                      "(::1.2.3/96)"},
    {"action=accept dst6=fd00:g::/64", "rule 0003: dst6: bad IPv6 prefix "
                                       "(fd00:g::/64)"},
    {"action=accept dst6=fd0g::/64", "rule 0003: dst6: bad IPv6 prefix "
                                     "(fd0g::/64)"},
    {"action=accept dst6=1:2:3:4:5:6:7:/64", "rule 0003: dst6: bad IPv6 "
                                             "prefix (1:2:3:4:5:6:7:/64)"},
    {"action=accept dst6=1:2:3:4:5:6:7:8:9", "rule 0003: dst6: bad IPv6 "
                                             "prefix (1:2:3:4:5:6:7:8:9)"},
    {"action=accept dst6=1:2:3:4:5:6:7", "rule 0003: dst6: bad IPv6 prefix "
                                         "(1:2:3:4:5:6:7)"},
    {"action=accept dsthost=", "rule 0003: dsthost: bad host name ()"},
    {"action=accept dsthost=a..b", "rule 0003: dsthost: bad host name "
                                   "(a..b)"},
    {"action=accept dsthost=.a", "rule 0003: dsthost: bad host name (.a)"},
    {"action=accept dsthost=a.b..", "rule 0003: dsthost: bad host name "
                                    "(a.b..)"},
    {"action=accept dsthost=a/b", "rule 0003: dsthost: bad host name (a/b)"},
    {"action=accept dsthost=a:b", "rule 0003: dsthost: bad host name (a:b)"},
    {"action=accept dsthost=1.2.3.4", "rule 0003: dsthost: bad host name "
                                      "(1.2.3.4)"},
    {"action=accept dst4=1.2.3.4 dsthost=a.b",
     "rule 0003: more than one of dst4, dst6, dsthost"},
    {"action=accept dst4=1.2.3.4 dst6=::1",
     "rule 0003: more than one of dst4, dst6, dsthost"},
    {"action=accept proto=TCP", "rule 0003: proto: not tcp, udp or icmp "
                                "(TCP)"},
    {"action=accept proto=6", "rule 0003: proto: not tcp, udp or icmp (6)"},
    {"action=accept proto=", "rule 0003: proto: not tcp, udp or icmp ()"},
    {"action=accept specialtarget=ntp", "rule 0003: specialtarget: not dns "
                                        "(ntp)"},
    {"action=accept specialtarget=dns proto=icmp",
     "rule 0003: specialtarget: not with proto=icmp (dns)"},
    {"action=accept proto=tcp dstports=80-20", "rule 0003: dstports: low > "
                                               "high (80-20)"},
    {"action=accept proto=tcp dstports=0-65536", "rule 0003: dstports: port "
                                                 "above 65535 (0-65536)"},
    {"action=accept proto=tcp dstports=99999", "rule 0003: dstports: port "
                                               "above 65535 (99999)"},
    {"action=accept proto=tcp dstports=123456", "rule 0003: dstports: bad "
                                                "port range (123456)"},
    {"action=accept proto=tcp dstports=-80", "rule 0003: dstports: bad port "
                                             "range (-80)"},
    {"action=accept proto=tcp dstports=80-", "rule 0003: dstports: bad port "
                                             "range (80-)"},
    {"action=accept proto=tcp dstports=1-2-3", "rule 0003: dstports: bad "
                                               "port range (1-2-3)"},
    {"action=accept proto=tcp dstports=http", "rule 0003: dstports: bad port "
                                              "range (http)"},
    {"action=accept proto=tcp dstports=+80", "rule 0003: dstports: bad port "
                                             "range (+80)"},
    {"action=accept proto=tcp dstports=", "rule 0003: dstports: bad port "
                                          "range ()"},
    {"action=accept proto=icmp dstports=1-2", "rule 0003: dstports: only "
                                              "with proto tcp or udp (1-2)"},
    {"action=accept proto=icmp icmptype=256", "rule 0003: icmptype: not "
                                              "0-255 (256)"},
    {"action=accept proto=icmp icmptype=-1", "rule 0003: icmptype: not 0-255 "
                                             "(-1)"},
    {"action=accept proto=icmp icmptype=", "rule 0003: icmptype: not 0-255 "
                                           "()"},
    {"action=accept proto=icmp icmptype=0008", "rule 0003: icmptype: not "
                                               "0-255 (0008)"},
    {"action=accept icmptype=8", "rule 0003: icmptype: only with proto=icmp "
                                 "(8)"},
    {"action=accept proto=tcp icmptype=8", "rule 0003: icmptype: only with "
                                           "proto=icmp (8)"},
};

TEST(validation_errors)
{
    struct rules_set *rs = new_set(8);
    const char *kv[] = {"policy", "accept", "0001", "action=accept",
                        "0003",   NULL,     NULL};
    unsigned i;

    fake_reset();
    for (i = 0; i < sizeof bad_rules / sizeof bad_rules[0]; i++) {
        int rc;
        kv[5] = bad_rules[i].rule;
        rc = compile_kv(rs, kv);
        CHECK(rc < 0);
        if (strcmp(why, bad_rules[i].why) != 0)
            fprintf(stderr, "  rule '%s': got '%s' want '%s'\n",
                    bad_rules[i].rule, why, bad_rules[i].why);
        CHECK(strcmp(why, bad_rules[i].why) == 0);
        CHECK_EQ(rules_state(rs), RULES_FAILED);
        CHECK_EQ(acc(rs, TCP, IP(1, 1, 1, 1), 1), 0);
    }
    CHECK_EQ(fk.total_refs, 0);
}

TEST(valid_edge_values)
{
    struct rules_set *rs = new_set(8);
    const char *ok[] = {
        "action=accept dst4=255.255.255.255/32",
        "action=accept dst4=0.0.0.0/0",
        "action=accept proto=tcp dstports=0-65535",
        "action=accept proto=tcp dstports=00443",
        "action=accept proto=icmp icmptype=000",
        "action=accept dsthost=a",
        "action=accept dsthost=x_y-z.example.",
        "action=accept dsthost=EXAMPLE.com",
        "action=drop specialtarget=dns proto=udp dstports=53-53",
        "action=accept dst4=10.139.1.1/32 specialtarget=dns",
        "action=accept dsthost=1.2.3.4.example",
        "action=accept dsthost=123",
    };
    unsigned i;

    fake_reset();
    for (i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int rc = compile1(rs, ok[i]);
        if (rc != 1)
            fprintf(stderr, "  rule '%s': %s\n", ok[i], why);
        CHECK_EQ(rc, 1);
    }
    /* long names: 63-char labels and 253 chars are fine, 64 / 254 not */
    char rule[400], name[300];
    memset(name, 'a', 63);
    name[63] = '\0';
    snprintf(rule, sizeof rule, "action=accept dsthost=%s", name);
    CHECK_EQ(compile1(rs, rule), 1);
    memset(name, 'a', 64);
    name[64] = '\0';
    snprintf(rule, sizeof rule, "action=accept dsthost=%s", name);
    CHECK(compile1(rs, rule) < 0);
    for (i = 0; i < 253; i++)
        name[i] = (i % 2) ? '.' : 'b';
    name[253] = '\0';
    snprintf(rule, sizeof rule, "action=accept dsthost=%s", name);
    CHECK_EQ(compile1(rs, rule), 1);
    name[253] = 'c';
    name[254] = '\0';
    snprintf(rule, sizeof rule, "action=accept dsthost=%s", name);
    CHECK(compile1(rs, rule) < 0);
    CHECK(strncmp(why, "rule 0000: dsthost: bad host name (b.b.b", 40) == 0);
    /* valid IPv6 forms are recognised as such (and refused in this tree) */
    const char *v6[] = {"::",
                        "::1",
                        "fd00::/8",
                        "1:2:3:4:5:6:7:8/128",
                        "::ffff:10.0.0.1/96",
                        "1::",
                        "1:2:3:4:5:6:7::",
                        "FD09:24EF:4179::/64",
                        "::/0"};
    for (i = 0; i < sizeof v6 / sizeof v6[0]; i++) {
        snprintf(rule, sizeof rule, "action=accept dst6=%s", v6[i]);
        CHECK(compile1(rs, rule) < 0);
        CHECK(strstr(why, "IPv6 rule in the IPv4 tree") != NULL);
    }
    rules_release(rs, &fops);
    CHECK_EQ(fk.total_refs, 0);
}

TEST(key_and_policy_errors)
{
    struct rules_set *rs = new_set(8);
    static const struct {
        const char *k1, *v1, *k2, *v2, *why;
    } cases[] = {
        {"0000", "action=accept", NULL, NULL, "policy: missing"},
        {"policy", "reject", NULL, NULL, "policy: not accept or drop (reject)"},
        {"policy", "", NULL, NULL, "policy: not accept or drop ()"},
        {"policy", "drop ", NULL, NULL, "policy: not accept or drop (drop )"},
        {"policy", "drop", "policy", "drop", "policy: duplicate"},
        {"policy", "drop", "10000", "action=accept",
         "bad key (10000): not policy or a 4-digit rule number"},
        {"policy", "drop", "000", "action=accept",
         "bad key (000): not policy or a 4-digit rule number"},
        {"policy", "drop", "00a1", "action=accept",
         "bad key (00a1): not policy or a 4-digit rule number"},
        {"policy", "drop", "", "action=accept",
         "bad key (): not policy or a 4-digit rule number"},
        {"policy", "drop", "Policy", "drop",
         "bad key (Policy): not policy or a 4-digit rule number"},
        {"policy", "drop", "0001", "action=accept",
         NULL /* valid: marker for the duplicate-number case below */},
    };
    unsigned i;

    fake_reset();
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct rules_entry e[3];
        unsigned n = 0;
        e[n++] = (struct rules_entry){cases[i].k1, cases[i].v1};
        if (cases[i].k2 != NULL)
            e[n++] = (struct rules_entry){cases[i].k2, cases[i].v2};
        if (cases[i].why == NULL) {
            /* the same number twice (a caller passing duplicates) */
            e[n++] = (struct rules_entry){"0001", "action=drop"};
            CHECK_EQ(rules_compile(rs, e, n, &fops, why, sizeof why),
                     -QW_EINVAL);
            CHECK(strcmp(why, "rule 0001: duplicate rule number") == 0);
            continue;
        }
        CHECK(rules_compile(rs, e, n, &fops, why, sizeof why) < 0);
        if (strcmp(why, cases[i].why) != 0)
            fprintf(stderr, "  case %u: got '%s' want '%s'\n", i, why,
                    cases[i].why);
        CHECK(strcmp(why, cases[i].why) == 0);
        CHECK_EQ(rules_state(rs), RULES_FAILED);
    }
    /* NULL key / value are treated as empty strings */
    struct rules_entry e[2] = {{"policy", NULL}, {"0000", "action=accept"}};
    CHECK(rules_compile(rs, e, 2, &fops, why, sizeof why) < 0);
    CHECK(strcmp(why, "policy: not accept or drop ()") == 0);
    e[0] = (struct rules_entry){"policy", "drop"};
    e[1].value = NULL;
    CHECK(rules_compile(rs, e, 2, &fops, why, sizeof why) < 0);
    CHECK(strcmp(why, "rule 0000: missing action") == 0);
    e[1].key = NULL;
    CHECK(rules_compile(rs, e, 2, &fops, why, sizeof why) < 0);
    /* the lowest-numbered bad rule is reported */
    const char *kv[] = {"policy", "drop",     "0009", "action=x",
                        "0004",   "action=y", NULL};
    CHECK(compile_kv(rs, kv) < 0);
    CHECK(strcmp(why, "rule 0004: action: not accept or drop (y)") == 0);
}

TEST(reason_is_sanitised)
{
    struct rules_set *rs = new_set(8);
    char rule[300];

    fake_reset();
    /* control bytes and overlong values are not copied into the log line */
    CHECK(compile1(rs, "action=accept proto=\x01\x1b[31m") < 0);
    CHECK(strcmp(why, "rule 0000: proto: not tcp, udp or icmp (??[31m)") == 0);
    memset(rule, 'x', sizeof rule);
    memcpy(rule, "action=", 7);
    rule[sizeof rule - 1] = '\0';
    CHECK(compile1(rs, rule) < 0);
    CHECK(strlen(why) < RULES_WHY_MAX);
    CHECK(strstr(why, "...)") != NULL);
    /* rules longer than the scan limit */
    static char huge[5000];
    memset(huge, ' ', sizeof huge);
    memcpy(huge, "action=accept", 13);
    huge[sizeof huge - 1] = '\0';
    CHECK(compile1(rs, huge) < 0);
    CHECK(strcmp(why, "rule 0000: longer than 1024 chars") == 0);
    /* one token running past the limit */
    memset(huge, 'y', sizeof huge);
    memcpy(huge, "action=accept dsthost=", 22);
    huge[sizeof huge - 1] = '\0';
    CHECK(compile1(rs, huge) < 0);
    CHECK(strcmp(why, "rule 0000: longer than 1024 chars") == 0);
}

/* ---- randomised differential test ------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(void)
{
    /* xorshift64*: fixed seed, reproducible */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545f4914f6cdd1dull) >> 32);
}

static uint32_t rn(uint32_t n)
{
    return rnd() % n;
}

static const uint32_t addr_pool[] = {
    IP(10, 0, 0, 1),      IP(10, 1, 2, 3),   IP(192, 168, 1, 77),
    IP(8, 8, 8, 8),       IP(10, 139, 1, 1), IP(10, 139, 1, 2),
    IP(93, 184, 216, 34), IP(1, 2, 3, 4),    IP(255, 255, 255, 255),
    IP(0, 0, 0, 0),
};
#define NPOOL (sizeof addr_pool / sizeof addr_pool[0])

static const char *const host_pool[] = {"a.example", "b.example", "c.example",
                                        "d.example"};
static const uint16_t port_pool[] = {0,  1,   22,   52,   53,    54,
                                     80, 443, 1024, 8080, 65534, 65535};
#define NPORTS (sizeof port_pool / sizeof port_pool[0])

struct gen {
    char keys[16][8];
    char text[16][200];
    unsigned n; /* numbered rules */
    char policy[16];
    bool expect_fail;
};

static void add_tok(char toks[8][80], unsigned *nt, const char *fmt, uint32_t a,
                    uint32_t b)
{
    snprintf(toks[(*nt)++], 80, fmt, a, b);
}

static void ip_str(char *b, size_t cap, uint32_t a)
{
    snprintf(b, cap, "%u.%u.%u.%u", a >> 24, (a >> 16) & 255, (a >> 8) & 255,
             a & 255);
}

/* One random rule; sometimes (inject) with one error. */
static void gen_rule(char *out, size_t cap, bool inject)
{
    char toks[8][80], ipb[20];
    unsigned nt = 0, proto = rn(4); /* 0 none, 1 tcp, 2 udp, 3 icmp */
    unsigned dst = rn(10), err = inject ? 1 + rn(9) : 0;

    if (err == 2)
        dst = 0; /* the bad prefix needs a dst4 */

    if (err != 1)
        add_tok(toks, &nt, rn(2) ? "action=accept" : "action=drop", 0, 0);
    if (dst < 4) {
        ip_str(ipb, sizeof ipb, addr_pool[rn(NPOOL)] ^ (rn(4) ? 0 : rnd()));
        snprintf(toks[nt++], 80, "dst4=%s/%u", ipb,
                 err == 2 ? 33 : (rn(3) ? rn(33) : 32));
    } else if (dst < 6) {
        snprintf(toks[nt++], 80, "dsthost=%s", host_pool[rn(4)]);
    }
    if (proto)
        snprintf(toks[nt++], 80, "proto=%s",
                 proto == 1   ? "tcp"
                 : proto == 2 ? "udp"
                              : "icmp");
    if (proto != 3 && rn(6) == 0)
        add_tok(toks, &nt, "specialtarget=dns", 0, 0);
    if ((proto != 3 && rn(3) == 0) || err == 3) {
        uint32_t lo = rn(3) ? port_pool[rn(NPORTS)] : rn(65536);
        uint32_t hi = rn(3) ? lo + rn(100) : port_pool[rn(NPORTS)];
        if (hi > 65535)
            hi = 65535;
        if (lo > hi) {
            uint32_t t = lo;
            lo = hi;
            hi = t;
        }
        if (err == 3) { /* low > high (or dstports with icmp) */
            lo = 100;
            hi = 99;
        }
        if (lo == hi && rn(2))
            add_tok(toks, &nt, "dstports=%u", lo, 0);
        else
            add_tok(toks, &nt, "dstports=%u-%u", lo, hi);
    }
    if ((proto == 3 && rn(2)) || err == 4)
        add_tok(toks, &nt, "icmptype=%u", err == 4 ? 256 + rn(10) : rn(20), 0);
    if (err == 5)
        add_tok(toks, &nt, "expire=+3600", 0, 0);
    if (err == 6)
        add_tok(toks, &nt, "proto=gre", 0, 0); /* bad or duplicate */
    if (err == 7)
        add_tok(toks, &nt, "dst6=fd00::/8", 0, 0);
    if (err == 8)
        add_tok(toks, &nt, "action=accept", 0, 0); /* duplicate */
    if (err == 9)
        add_tok(toks, &nt, "dst4=10.0.0.300/8", 0, 0);
    /* random order, random spacing */
    for (unsigned i = nt; i > 1; i--) {
        unsigned j = rn(i);
        char t[80];
        memcpy(t, toks[i - 1], 80);
        memcpy(toks[i - 1], toks[j], 80);
        memcpy(toks[j], t, 80);
    }
    size_t len = 0;
    out[0] = '\0';
    for (unsigned i = 0; i < nt; i++)
        len += (size_t)snprintf(
            out + len, cap - len, "%s%s",
            i == 0 ? (rn(8) ? "" : " ") : (rn(4) ? " " : "   "), toks[i]);
}

static void gen_set(struct gen *g)
{
    unsigned num = rn(3), bad = 99;

    g->expect_fail = rn(20) == 0;
    g->n = rn(13);
    if (g->expect_fail) {
        if (g->n == 0)
            g->n = 1;
        bad = rn(g->n);
    }
    for (unsigned i = 0; i < g->n; i++) {
        snprintf(g->keys[i], sizeof g->keys[i], "%04u", num);
        num += 1 + (rn(4) ? 0 : rn(5)); /* gaps */
        gen_rule(g->text[i], sizeof g->text[i], i == bad);
    }
    snprintf(g->policy, sizeof g->policy, "%s", rn(4) ? "drop" : "accept");
}

/* Reference: evaluate the text rules directly, key by key. */
struct ref_tok {
    char k[16], v[200];
};

static int ref_tokens(const char *text, struct ref_tok *t)
{
    char buf[256], *save = NULL, *s;
    int n = 0;

    snprintf(buf, sizeof buf, "%s", text);
    for (s = strtok_r(buf, " ", &save); s != NULL;
         s = strtok_r(NULL, " ", &save)) {
        char *eq = strchr(s, '=');
        *eq = '\0';
        snprintf(t[n].k, sizeof t[n].k, "%s", s);
        snprintf(t[n].v, sizeof t[n].v, "%s", eq + 1);
        n++;
    }
    return n;
}

static const char *ref_get(const struct ref_tok *t, int n, const char *k)
{
    for (int i = 0; i < n; i++)
        if (strcmp(t[i].k, k) == 0)
            return t[i].v;
    return NULL;
}

static int ref_host_state(const char *name, uint32_t dst)
{
    for (int i = 0; i < fk.count; i++)
        if (strcmp(fk.n[i].name, name) == 0) {
            if (!fk.n[i].resolved)
                return -1;
            for (int j = 0; j < fk.n[i].naddr; j++)
                if (fk.n[i].addr[j] == dst)
                    return 1;
            return 0;
        }
    return -1;
}

static bool ref_rule_matches(const char *text, const struct rules_flow *f,
                             const struct rules_dns *dns)
{
    struct ref_tok t[10];
    int n = ref_tokens(text, t);
    const char *v;
    bool tcpudp = f->proto == 6 || f->proto == 17;

    if ((v = ref_get(t, n, "proto")) != NULL) {
        int p = strcmp(v, "tcp") == 0 ? 6 : strcmp(v, "udp") == 0 ? 17 : 1;
        if (f->proto != p)
            return false;
    }
    if ((v = ref_get(t, n, "dst4")) != NULL) {
        char a[256];
        unsigned plen;
        struct in_addr ia;
        snprintf(a, sizeof a, "%s", v);
        *strchr(a, '/') = '\0';
        plen = (unsigned)atoi(strchr(v, '/') + 1);
        inet_pton(AF_INET, a, &ia);
        uint64_t mask = (0xffffffffull << (32 - plen)) & 0xffffffffull;
        if (((ntohl(ia.s_addr) ^ f->dst) & mask) != 0)
            return false;
    }
    if ((v = ref_get(t, n, "dstports")) != NULL) {
        unsigned lo, hi;
        if (sscanf(v, "%u-%u", &lo, &hi) != 2)
            hi = lo;
        if (!tcpudp || f->dport < lo || f->dport > hi)
            return false;
    }
    if ((v = ref_get(t, n, "icmptype")) != NULL)
        if (f->proto != 1 || f->icmp_type != (unsigned)atoi(v))
            return false;
    if (ref_get(t, n, "specialtarget") != NULL) {
        bool server = false;
        for (unsigned i = 0; i < dns->n; i++)
            server |= dns->addr[i] == f->dst;
        if (!tcpudp || f->dport != 53 || !server)
            return false;
    }
    if ((v = ref_get(t, n, "dsthost")) != NULL) {
        int s = ref_host_state(v, f->dst);
        bool drop = strcmp(ref_get(t, n, "action"), "drop") == 0;
        if (s == 0 || (s < 0 && !drop))
            return false;
    }
    return true;
}

static int ref_match(const struct gen *g, const struct rules_flow *f,
                     const struct rules_dns *dns, int *no)
{
    /* keys are 4-digit, so string order is numeric order; they are
     * generated ascending but the compile sees them shuffled */
    for (unsigned i = 0; i < g->n; i++) {
        if (ref_rule_matches(g->text[i], f, dns)) {
            struct ref_tok t[10];
            int n = ref_tokens(g->text[i], t);
            *no = atoi(g->keys[i]);
            return strcmp(ref_get(t, n, "action"), "accept") == 0;
        }
    }
    *no = RULES_NO_POLICY;
    return strcmp(g->policy, "accept") == 0;
}

static void random_flow(const struct gen *g, struct rules_flow *f)
{
    static const uint8_t protos[] = {6, 6, 17, 17, 1, 1, 47, 50, 0, 255};

    f->proto = protos[rn(sizeof protos)];
    f->dst = rn(4) ? addr_pool[rn(NPOOL)] : rnd();
    if (rn(3) == 0)
        f->dst ^= 1u << rn(32);
    f->dport = rn(3) ? port_pool[rn(NPORTS)] : (uint16_t)rnd();
    if (rn(4) == 0)
        f->dport = 53;
    f->icmp_type = rn(4) ? (uint8_t)rn(20) : (uint8_t)rnd();
    (void)g;
}

TEST(differential_random)
{
    struct rules_set *rs = new_set(16);
    static struct gen g;
    struct rules_entry e[17];
    unsigned sets = 0, flows = 0, fails = 0, mismatches = 0, accepts = 0;

    fake_reset();
    for (unsigned h = 0; h < 4; h++)
        fake_set(&fk, host_pool[h], 0, 0, 0);
    for (unsigned iter = 0; iter < 120000; iter++) {
        struct rules_dns dns = {{IP(10, 139, 1, 1), IP(10, 139, 1, 2)}, rn(3)};
        unsigned n = 0, order[17];
        int rc;

        if (dns.n == 1 && rn(2))
            dns.addr[0] = IP(10, 139, 1, 2);
        /* random resolution state of the names */
        for (unsigned h = 0; h < 4; h++)
            fake_set(&fk, host_pool[h], rn(3) != 0,
                     rn(2) ? addr_pool[rn(NPOOL)] : 0,
                     rn(2) ? addr_pool[rn(NPOOL)] : 0);
        gen_set(&g);
        /* shuffled entries, policy somewhere among them */
        for (unsigned i = 0; i <= g.n; i++)
            order[i] = i;
        for (unsigned i = g.n + 1; i > 1; i--) {
            unsigned j = rn(i), t = order[i - 1];
            order[i - 1] = order[j];
            order[j] = t;
        }
        for (unsigned i = 0; i <= g.n; i++)
            e[n++] = order[i] == g.n ? (struct rules_entry){"policy", g.policy}
                                     : (struct rules_entry){g.keys[order[i]],
                                                            g.text[order[i]]};
        rc = rules_compile(rs, e, n, &fops, why, sizeof why);
        sets++;
        if ((rc < 0) != g.expect_fail) {
            if (mismatches++ < 5)
                fprintf(stderr, "  compile rc %d (%s), expect_fail %d\n", rc,
                        why, g.expect_fail);
            continue;
        }
        for (unsigned k = 0; k < 20; k++) {
            struct rules_flow f;
            int no, rno, v, rv;
            random_flow(&g, &f);
            v = (int)rules_match(rs, &f, &dns, &fops, &no);
            flows++;
            if (rc < 0) {
                fails++;
                if (v != RULES_DROP || no != RULES_NO_NONE)
                    mismatches++;
                continue;
            }
            rv = ref_match(&g, &f, &dns, &rno);
            accepts += rv == 1;
            if (v != rv || no != rno) {
                if (mismatches++ < 5) {
                    fprintf(stderr,
                            "  flow proto %u dst %08x dport %u type %u: "
                            "got %d/%d want %d/%d\n",
                            f.proto, f.dst, f.dport, f.icmp_type, v, no, rv,
                            rno);
                    for (unsigned i = 0; i < g.n; i++)
                        fprintf(stderr, "    %s %s\n", g.keys[i], g.text[i]);
                    fprintf(stderr, "    policy %s\n", g.policy);
                }
            }
        }
    }
    rules_release(rs, &fops);
    printf("# differential: %u sets, %u flows, %u accepted, %u in failed "
           "sets\n",
           sets, flows, accepts, fails);
    CHECK_EQ(mismatches, 0);
    CHECK(sets >= 100000);
    /* the generator exercises both outcomes and the fail-closed path */
    CHECK(accepts > flows / 10);
    CHECK(fails > 1000);
    CHECK_EQ(fk.total_refs, 0);
}

int main(void)
{
    RUN(empty_set_drops);
    RUN(policy_only);
    RUN(accept_all_matches_every_protocol);
    RUN(order_gaps_and_first_match);
    RUN(sorting_many_rules);
    RUN(token_order_and_spaces);
    RUN(field_dst4);
    RUN(field_proto);
    RUN(field_dstports);
    RUN(field_icmptype);
    RUN(field_action_drop);
    RUN(specialtarget_dns);
    RUN(dsthost_resolved);
    RUN(dsthost_unresolved);
    RUN(dsthost_reload_keeps_refs);
    RUN(dsthost_ref_failure);
    RUN(fail_closed_behaviour);
    RUN(too_many_rules);
    RUN(validation_errors);
    RUN(valid_edge_values);
    RUN(key_and_policy_errors);
    RUN(reason_is_sanitised);
    RUN(differential_random);
    return test_summary();
}
