/*
 * cmdline.c: see cmdline.h.
 */
#include "cmdline.h"

#include <stddef.h>

bool cmdline_ipv4(const char *s, unsigned n, uint32_t *out)
{
    uint32_t v = 0;
    unsigned part = 0, digits = 0, cur = 0;

    for (unsigned i = 0; i <= n; i++) {
        if (i == n || s[i] == '.') {
            if (digits == 0 || part > 3)
                return false;
            v = v << 8 | cur;
            part++;
            cur = 0;
            digits = 0;
            continue;
        }
        if (s[i] < '0' || s[i] > '9' || digits == 3)
            return false;
        /* No leading zeros ("010" is octal to some parsers). */
        if (digits == 1 && cur == 0)
            return false;
        cur = cur * 10 + (unsigned)(s[i] - '0');
        digits++;
        if (cur > 255)
            return false;
    }
    if (part != 4)
        return false;
    *out = v;
    return true;
}

static bool cmdline_uint(const char *s, unsigned n, uint32_t max, uint32_t *out)
{
    uint64_t v = 0;

    if (n == 0 || n > 10)
        return false;
    for (unsigned i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v == 0 || v > max)
        return false;
    *out = (uint32_t)v;
    return true;
}

static bool cmdline_eq(const char *s, unsigned n, const char *lit)
{
    unsigned i = 0;

    for (; i < n; i++) {
        if (lit[i] == '\0' || lit[i] != s[i])
            return false;
    }
    return lit[i] == '\0';
}

static bool cmdline_level(const char *s, unsigned n, enum qw_log_level *out)
{
    static const char *const names[] = {"err", "warn", "info", "debug"};

    for (unsigned i = 0; i < 4; i++) {
        if (cmdline_eq(s, n, names[i]) || (n == 1 && s[0] == (char)('0' + i))) {
            *out = (enum qw_log_level)i;
            return true;
        }
    }
    return false;
}

static void cmdline_bad(struct cmdline_opts *o, const char *t, unsigned n)
{
    if (o->errors++ == 0) {
        unsigned k = n < sizeof(o->bad) - 1 ? n : sizeof(o->bad) - 1;

        for (unsigned i = 0; i < k; i++)
            o->bad[i] = t[i];
        o->bad[k] = '\0';
    }
}

/* One token t (n bytes). */
static void cmdline_token(struct cmdline_opts *o, const char *t, unsigned n)
{
    static const struct {
        const char *name;
        size_t off;
    } addrs[] = {
        {"--ipv4=", offsetof(struct qw_config, ipv4)},
        {"--ipv4-gw=", offsetof(struct qw_config, ipv4_gw)},
        {"--ipv4-dns=", offsetof(struct qw_config, ipv4_dns)},
        {"--ipv4-dns2=", offsetof(struct qw_config, ipv4_dns2)},
    };
    const char *eq = NULL;
    unsigned klen;

    for (unsigned i = 0; i < n; i++) {
        if (t[i] == '=') {
            eq = t + i;
            break;
        }
    }
    klen = eq != NULL ? (unsigned)(eq - t) + 1 : n;
    for (unsigned i = 0; i < sizeof(addrs) / sizeof(addrs[0]); i++) {
        if (cmdline_eq(t, klen, addrs[i].name)) {
            uint32_t *dst = (uint32_t *)((char *)&o->cfg + addrs[i].off);

            if (!cmdline_ipv4(t + klen, n - klen, dst))
                cmdline_bad(o, t, n);
            return;
        }
    }
    if (cmdline_eq(t, klen, "--nat-table-size=")) {
        if (!cmdline_uint(t + klen, n - klen, 1000000, &o->cfg.nat_table_size))
            cmdline_bad(o, t, n);
    } else if (cmdline_eq(t, klen, "--log-level=")) {
        if (!cmdline_level(t + klen, n - klen, &o->cfg.log_level))
            cmdline_bad(o, t, n);
    } else if (cmdline_eq(t, n, "--drop-silently")) {
        o->cfg.drop_silently = true;
    } else if (cmdline_eq(t, n, "--selftest")) {
        o->selftest = true;
    } else if (cmdline_eq(t, klen, "--selftest-crash=")) {
        if (cmdline_eq(t + klen, n - klen, "stack"))
            o->crashtest = 1;
        else if (cmdline_eq(t + klen, n - klen, "null"))
            o->crashtest = 2;
        else
            cmdline_bad(o, t, n);
    } else {
        o->unknown++;
    }
}

unsigned cmdline_parse(const char *s, struct cmdline_opts *o)
{
    const char *t = NULL;

    __builtin_memset(o, 0, sizeof(*o));
    o->cfg.log_level = QW_LOG_INFO;
    for (;; s++) {
        bool sep = *s == ' ' || *s == '\t' || *s == '\n' || *s == '\0';

        if (!sep && t == NULL)
            t = s;
        if (sep && t != NULL) {
            cmdline_token(o, t, (unsigned)(s - t));
            t = NULL;
        }
        if (*s == '\0')
            break;
    }
    return o->errors;
}
