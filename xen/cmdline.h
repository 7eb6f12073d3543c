/*
 * cmdline.h: the kernel command line of qwall.xen.
 *
 * Qubes passes kernelopts (and, without the no-default-kernelopts
 * feature, Linux defaults such as "root=... ro console=hvc0"). Tokens are
 * separated by spaces or tabs; tokens this parser does not know are
 * counted and ignored. Known options:
 *   --ipv4=A.B.C.D --ipv4-gw=A.B.C.D --ipv4-dns=A.B.C.D --ipv4-dns2=A.B.C.D
 *   --nat-table-size=N (1..1000000) --log-level=err|warn|info|debug|0..3
 *   --drop-silently  --selftest (runtime self-tests for check-xen)
 *   --selftest-crash=stack|null (check-xen: overflow the stack or read
 *   address 0, to see the fault reported and the domain crash)
 * A known option with a bad value is counted in `errors`, named in `bad`
 * and leaves the default. Pure C: also compiled into host unit tests.
 */
#ifndef QW_XEN_CMDLINE_H
#define QW_XEN_CMDLINE_H

#include <stdbool.h>
#include <stdint.h>

#include "qwall.h"

struct cmdline_opts {
    struct qw_config cfg;
    bool selftest;
    unsigned crashtest; /* --selftest-crash=stack|null: 1, 2 (check-xen) */
    unsigned unknown;   /* tokens ignored */
    unsigned errors;    /* known options with bad values */
    char bad[48];       /* the first bad option, for the log */
};

/* Fill o (defaults first) from the NUL-terminated line s. Returns
 * o->errors. */
unsigned cmdline_parse(const char *s, struct cmdline_opts *o);

/* Parse a dotted quad of exactly n bytes; host byte order. */
bool cmdline_ipv4(const char *s, unsigned n, uint32_t *out);

#endif /* QW_XEN_CMDLINE_H */
