/*
 * dns.c: DNS client for dsthost rules (see dns.h for the contract).
 *
 * XXX: placeholder so the pipeline can link against dns.h; every name is
 * unresolved and nothing is sent. Next step: wire format, cache, client.
 */
#include "dns.h"

#include "rules.h"

struct dns {
    struct dns_env env;
    unsigned names;
    uint32_t primary, secondary;
};

size_t dns_mem_size(unsigned names)
{
    (void)names;
    return sizeof(struct dns);
}

size_t dns_bytes_per_name(void)
{
    return 0;
}

void dns_init(struct dns *d, unsigned names, const struct dns_env *env)
{
    __builtin_memset(d, 0, sizeof *d);
    d->env = *env;
    d->names = names;
}

void dns_set_servers(struct dns *d, uint32_t primary, uint32_t secondary)
{
    d->primary = primary;
    d->secondary = secondary;
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

int dns_ref(struct dns *d, const char *name)
{
    (void)d;
    (void)name;
    return -QW_ENOSPC;
}

void dns_unref(struct dns *d, int id)
{
    (void)d;
    (void)id;
}

int dns_match(const struct dns *d, int id, uint32_t addr)
{
    (void)d;
    (void)id;
    (void)addr;
    return -1;
}

enum qw_drop dns_rx(struct dns *d, uint32_t src, uint16_t sport, uint16_t dport,
                    const uint8_t *payload, size_t n, uint64_t now)
{
    (void)d;
    (void)src;
    (void)sport;
    (void)dport;
    (void)payload;
    (void)n;
    (void)now;
    return QW_DROP_DNS_UNEXPECTED;
}

uint64_t dns_poll(struct dns *d, uint64_t now)
{
    (void)d;
    (void)now;
    return UINT64_MAX;
}

uint64_t dns_deadline(const struct dns *d)
{
    (void)d;
    return UINT64_MAX;
}

const char *dns_name(const struct dns *d, int id)
{
    (void)d;
    (void)id;
    return NULL;
}

void dns_get_stats(const struct dns *d, struct dns_stats *st)
{
    (void)d;
    __builtin_memset(st, 0, sizeof *st);
}

size_t dns_build_query(uint8_t *buf, size_t cap, uint16_t id, const char *name,
                       uint16_t qtype)
{
    (void)buf;
    (void)cap;
    (void)id;
    (void)name;
    (void)qtype;
    return 0;
}

int dns_parse_response(const uint8_t *m, size_t n, uint16_t id,
                       const char *name, uint16_t qtype, struct dns_answer *a)
{
    (void)m;
    (void)n;
    (void)id;
    (void)name;
    (void)qtype;
    __builtin_memset(a, 0, sizeof *a);
    return DNS_E_MALFORMED;
}
