/*
 * rules.c: Qubes firewall rule parser and matcher (see rules.h).
 *
 * XXX: first cut so that core/fw.c can link against the header: every
 * compile fails closed. The parser and matcher land next.
 */
#include "rules.h"

#include "fmt.h"
#include "qwall.h"

struct rules_set {
    uint32_t max_rules;
    uint32_t n;
    uint8_t state;
};

size_t rules_mem_size(unsigned max_rules)
{
    if (max_rules > RULES_MAX)
        max_rules = RULES_MAX;
    return sizeof(struct rules_set) + (size_t)max_rules * 26u;
}

void rules_init(struct rules_set *rs, unsigned max_rules)
{
    rs->max_rules = max_rules > RULES_MAX ? RULES_MAX : max_rules;
    rs->n = 0;
    rs->state = RULES_EMPTY;
}

int rules_compile(struct rules_set *rs, const struct rules_entry *e, unsigned n,
                  const struct rules_host_ops *hosts, char *why, size_t whylen)
{
    (void)e;
    (void)n;
    (void)hosts;
    rs->n = 0;
    rs->state = RULES_FAILED;
    if (why != NULL)
        qw_snprintf(why, whylen, "rules: not implemented yet");
    return -QW_EINVAL;
}

enum rules_action rules_match(const struct rules_set *rs,
                              const struct rules_flow *f,
                              const struct rules_dns *dns,
                              const struct rules_host_ops *hosts, int *rule_no)
{
    (void)rs;
    (void)f;
    (void)dns;
    (void)hosts;
    if (rule_no != NULL)
        *rule_no = RULES_NO_NONE;
    return RULES_DROP;
}

void rules_release(struct rules_set *rs, const struct rules_host_ops *hosts)
{
    (void)hosts;
    rs->n = 0;
    rs->state = RULES_EMPTY;
}

bool rules_uses_host(const struct rules_set *rs, int host_id)
{
    (void)rs;
    (void)host_id;
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
