/*
 * fuzz_rules.c: libFuzzer target for the rule parser and matcher.
 *
 * Input: one QubesDB entry per line, "key value" (the key is the text up
 * to the first space, the value the rest; a line without a space has an
 * empty value), e.g.
 *     policy drop
 *     0000 action=accept proto=tcp dstports=443-443
 * The entries are compiled twice (a reload) and a fixed set of flows plus
 * flows derived from the input are matched. A fake resolver answers the
 * dsthost hook from a hash of the name.
 *
 * Invariants checked (abort on violation):
 *   - a failed compile leaves a fail-closed set: every flow is dropped with
 *     RULES_NO_NONE, and the reason is one non-empty untruncated line;
 *   - a compiled set reports rule numbers that exist, or the policy;
 *   - a set whose text never says action=accept, with policy drop, never
 *     accepts;
 *   - compiling the same entries again gives the same verdicts, and host
 *     references never leak, go negative, or drop to zero for a name both
 *     sets use.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qwall.h"
#include "rules.h"

#define MAX_ENTRIES 64
#define MAX_RULES 32
#define NAMES 32

struct fname {
    char name[256];
    int refs;
};

static struct fname names[NAMES];
static int nnames, total_refs, zero_during_reload, in_reload;

static uint32_t hash(const char *s)
{
    uint32_t h = 2166136261u;

    while (*s != '\0')
        h = (h ^ (uint8_t)*s++) * 16777619u;
    return h;
}

static int f_ref(void *ctx, const char *name)
{
    int i;

    (void)ctx;
    if (strlen(name) > 253 || name[0] == '\0')
        abort(); /* rules.h promises a valid, bounded name */
    for (i = 0; i < nnames; i++)
        if (strcmp(names[i].name, name) == 0)
            break;
    if (i == nnames) {
        if (nnames == NAMES)
            return -1; /* table full: the compile must fail closed */
        snprintf(names[i].name, sizeof names[i].name, "%s", name);
        names[i].refs = 0;
        nnames++;
    }
    for (const char *p = name; *p != '\0'; p++)
        if (*p >= 'A' && *p <= 'Z')
            abort(); /* names are lower-cased */
    names[i].refs++;
    total_refs++;
    return i;
}

static void f_unref(void *ctx, int id)
{
    (void)ctx;
    if (id < 0 || id >= nnames || names[id].refs <= 0)
        abort();
    names[id].refs--;
    total_refs--;
    if (names[id].refs == 0 && in_reload)
        zero_during_reload++;
}

static int f_match(void *ctx, int id, uint32_t addr)
{
    uint32_t h;

    (void)ctx;
    if (id < 0 || id >= nnames || names[id].refs <= 0)
        abort();
    h = hash(names[id].name);
    if (h % 3 == 0)
        return -1; /* unresolved */
    return (addr & 0xff) == (h & 0xff) || addr == 0x0a000001u;
}

static const struct rules_host_ops ops = {NULL, f_ref, f_unref, f_match};
static _Alignas(16) uint8_t mem_a[1 << 16];

static const struct rules_flow fixed_flows[] = {
    {0x0a000001u, 80, 6, 0},     {0x0a8b0101u, 53, 17, 0},
    {0x0a8b0102u, 53, 6, 0},     {0x08080808u, 443, 6, 0},
    {0x01020304u, 0, 1, 8},      {0x01020304u, 0, 47, 0},
    {0xffffffffu, 65535, 17, 0}, {0x00000000u, 0, 1, 0},
    {0xc0a80105u, 22, 6, 0},     {0x5db8d822u, 1024, 17, 0},
};
#define NFIXED (sizeof fixed_flows / sizeof fixed_flows[0])
#define NFLOWS (NFIXED + 16)

static void make_flows(const uint8_t *d, size_t n, struct rules_flow *f)
{
    static const uint8_t protos[] = {6, 17, 1, 47, 0, 255, 6, 17};
    uint32_t x = 0x12345678u;

    memcpy(f, fixed_flows, sizeof fixed_flows);
    for (size_t i = 0; i < n; i++)
        x = (x ^ d[i]) * 16777619u;
    for (unsigned i = NFIXED; i < NFLOWS; i++) {
        x = x * 1103515245u + 12345u;
        f[i].dst = x ^ (x << 7);
        x = x * 1103515245u + 12345u;
        f[i].proto = protos[(x >> 16) & 7];
        f[i].dport = (uint16_t)(x >> 3);
        f[i].icmp_type = (uint8_t)(x >> 24);
        if (i & 1)
            f[i].dport = 53;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char buf[8192];
    struct rules_entry e[MAX_ENTRIES];
    struct rules_flow flows[NFLOWS];
    struct rules_dns dns = {{0x0a8b0101u, 0x0a8b0102u}, 2};
    struct rules_set *rs = (struct rules_set *)mem_a;
    char why[RULES_WHY_MAX];
    int verdicts[NFLOWS], nos[NFLOWS];
    unsigned n = 0, i, k;
    int rc, rc2, refs_after_first;
    bool any_accept_text = false, policy_drop = false;
    char *p, *line;

    if (size >= sizeof buf)
        return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    nnames = total_refs = zero_during_reload = in_reload = 0;

    /* split into entries */
    for (line = buf; line != NULL && n < MAX_ENTRIES; line = p) {
        p = strchr(line, '\n');
        if (p != NULL)
            *p++ = '\0';
        char *sp = strchr(line, ' ');
        if (sp != NULL)
            *sp++ = '\0';
        e[n].key = line;
        e[n].value = sp != NULL ? sp : "";
        if (strstr(e[n].value, "action=accept") != NULL)
            any_accept_text = true;
        if (strcmp(line, "policy") == 0 && strcmp(e[n].value, "drop") == 0)
            policy_drop = true;
        n++;
    }
    make_flows(data, size, flows);

    rules_init(rs, MAX_RULES);
    memset(why, 'X', sizeof why);
    rc = rules_compile(rs, e, n, &ops, why, sizeof why);
    refs_after_first = total_refs;
    if (rc < 0) {
        size_t wl = strnlen(why, sizeof why);
        if (wl == 0 || wl >= sizeof why - 1 || strchr(why, '\n') != NULL)
            abort();
        if (rules_state(rs) != RULES_FAILED || rules_count(rs) != 0 ||
            total_refs != 0)
            abort();
        if (rc != -QW_EINVAL && rc != -QW_ENOSPC)
            abort();
    } else {
        if (rules_state(rs) != RULES_LOADED || rules_count(rs) != (unsigned)rc)
            abort();
    }
    for (i = 0; i < NFLOWS; i++) {
        int no = 12345;
        int v = (int)rules_match(rs, &flows[i], &dns, &ops, &no);
        verdicts[i] = v;
        nos[i] = no;
        if (v != RULES_DROP && v != RULES_ACCEPT)
            abort();
        if (rc < 0) {
            if (v != RULES_DROP || no != RULES_NO_NONE)
                abort();
            continue;
        }
        if (v == RULES_ACCEPT && !any_accept_text && policy_drop)
            abort();
        if (no == RULES_NO_POLICY)
            continue;
        /* the reported number must be one of the entries' keys */
        char key[8];
        snprintf(key, sizeof key, "%04d", no);
        for (k = 0; k < n; k++)
            if (strcmp(e[k].key, key) == 0)
                break;
        if (no < 0 || no > 9999 || k == n)
            abort();
    }

    /* reload the same entries: same verdicts, names kept alive */
    in_reload = 1;
    rc2 = rules_compile(rs, e, n, &ops, why, sizeof why);
    in_reload = 0;
    if ((rc < 0) != (rc2 < 0) || (rc >= 0 && rc != rc2))
        abort();
    /* When the first compile held names, the reload takes new references
     * before releasing the old ones: none may hit zero in between (unless
     * the name table filled up and the reload failed). */
    if (rc >= 0 && zero_during_reload != 0)
        abort();
    if (total_refs != refs_after_first)
        abort();
    for (i = 0; i < NFLOWS; i++) {
        int no;
        int v = (int)rules_match(rs, &flows[i], &dns, &ops, &no);
        if (v != verdicts[i] || no != nos[i])
            abort();
    }
    /* no hooks: unresolved everywhere, never an accept through a name */
    for (i = 0; i < NFLOWS; i++)
        (void)rules_match(rs, &flows[i], NULL, NULL, NULL);
    rules_release(rs, &ops);
    if (total_refs != 0 || rules_state(rs) != RULES_EMPTY)
        abort();
    return 0;
}
