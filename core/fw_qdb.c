/*
 * fw_qdb.c: what the firewall takes from QubesDB (qubes-interfaces.md
 * section 6): network settings, the anti-spoof list /connected-ips, and
 * each client's rules, applied at a directory commit of
 * /qubes-firewall/<ip> (or at attach when a committed tree exists), never
 * half-written.
 */
#include "fw.h"

#include "fmt.h"

#define FW_PREFIX "/qubes-firewall/"
#define FW_PREFIX_LEN 16

static bool streq(const char *a, const char *b)
{
    while (*a != '\0' && *a == *b) {
        a++;
        b++;
    }
    return *a == *b;
}

static size_t slen(const char *s)
{
    size_t n = 0;

    while (s[n] != '\0')
        n++;
    return n;
}

/* ---- network settings ---------------------------------------------------- */

static uint32_t *net_field(struct qw *fw, const char *path)
{
    if (streq(path, "/qubes-ip"))
        return &fw->qdbnet.ip;
    if (streq(path, "/qubes-gateway"))
        return &fw->qdbnet.gw;
    if (streq(path, "/qubes-primary-dns"))
        return &fw->qdbnet.dns1;
    if (streq(path, "/qubes-secondary-dns"))
        return &fw->qdbnet.dns2;
    return NULL;
}

static void net_fmt(char *buf, size_t cap, const struct fw_net *n)
{
    char a[16], b[16], c[16], d[16];

    fw_fmt_ip4(a, sizeof a, n->ip);
    fw_fmt_ip4(b, sizeof b, n->gw);
    fw_fmt_ip4(c, sizeof c, n->dns1);
    fw_fmt_ip4(d, sizeof d, n->dns2);
    qw_snprintf(buf, cap, "ip %s gateway %s dns %s %s", a, b, c, d);
}

/*
 * Recompute the effective settings (configuration overrides QubesDB) and
 * act on what changed. A new gateway means a new netvm (semantics.md
 * "Uplink and start-up"): NAT state is flushed and the gateway resolved
 * again; a new own address invalidates every NAT mapping too.
 */
void fw_net_changed(struct qw *fw)
{
    struct fw_net old = fw->net, n;
    const struct qw_config *c = &fw->cfg;
    char line[96];
    bool gw_new;

    n.ip = c->ipv4 != 0 ? c->ipv4 : fw->qdbnet.ip;
    n.gw = c->ipv4_gw != 0 ? c->ipv4_gw : fw->qdbnet.gw;
    n.dns1 = c->ipv4_dns != 0 ? c->ipv4_dns : fw->qdbnet.dns1;
    n.dns2 = c->ipv4_dns2 != 0 ? c->ipv4_dns2 : fw->qdbnet.dns2;
    if (__builtin_memcmp(&old, &n, sizeof n) == 0)
        return;
    fw->net = n;
    fw->configured = n.ip != 0 && n.gw != 0;
    net_fmt(line, sizeof line, &n);
    fw_log(fw, FW_LOG_CORE, QW_LOG_INFO, "fw: network settings (%s)", line);
    gw_new = old.gw != 0 && n.gw != old.gw;
    if ((old.ip != 0 && n.ip != old.ip) || gw_new) {
        fw_log(fw, FW_LOG_CORE, QW_LOG_INFO,
               "fw: %s changed: new netvm, nat state flushed (%u connections)",
               gw_new ? "gateway" : "address", ct_count(fw->ct));
        ct_flush(fw->ct);
        frag_flush_link(fw->frag, QW_LINK_UPLINK);
    }
    if (n.ip != old.ip)
        fw_arp_gratuitous(fw);
    if (n.ip != old.ip || n.gw != old.gw)
        fw_arp_gw_start(fw);
    if (n.dns1 != old.dns1 || n.dns2 != old.dns2) {
        fw->dns_set.n = 0;
        if (n.dns1 != 0)
            fw->dns_set.addr[fw->dns_set.n++] = n.dns1;
        if (n.dns2 != 0 && n.dns2 != n.dns1)
            fw->dns_set.addr[fw->dns_set.n++] = n.dns2;
        fw_dns_servers(fw);
        /* specialtarget=dns depends on the set: re-judge connections */
        for (unsigned i = 1; i < fw->nlinks; i++)
            if (fw->links[i].used && fw->links[i].rules_seen)
                fw_recheck_link(fw, i);
    }
    if (fw_configured(fw))
        fw->waiting_logged = false;
}

static void net_write(struct qw *fw, uint32_t *field, const char *path,
                      const char *v, size_t n)
{
    uint32_t ip = 0;

    if (n != 0 && fw_parse_ip4(v, n, &ip) < 0) {
        fw_log(fw, FW_LOG_QDB, QW_LOG_WARN,
               "fw: ignoring %s (not an ipv4 address: %.40s)", path, v);
        ip = 0;
    }
    *field = ip;
    if (qdb_synced(fw->qdb))
        fw_net_changed(fw);
}

/* "/connected-ips": space-separated IPv4 addresses (QSB-056). */
static void connected_write(struct qw *fw, const char *v, size_t n)
{
    size_t i = 0;
    unsigned bad = 0;

    fw->nconnected = 0;
    while (i < n) {
        size_t j = i;
        uint32_t ip;

        while (j < n && v[j] != ' ' && v[j] != '\n' && v[j] != '\t')
            j++;
        if (j > i) {
            if (fw_parse_ip4(v + i, j - i, &ip) < 0)
                bad++;
            else if (fw->nconnected < FW_ADDRSET_MAX)
                fw->connected[fw->nconnected++] = ip;
        }
        i = j + 1;
    }
    if (bad != 0)
        fw_log(fw, FW_LOG_QDB, QW_LOG_WARN,
               "fw: /connected-ips: %u entries are not ipv4 addresses", bad);
    fw_addrset_rebuild(fw);
}

/* ---- rules
 * ------------------------------------------------------------------- */

struct collect {
    struct qw *fw;
    size_t plen;
};

static void collect_entry(void *ctx, const char *path, const char *value,
                          size_t n)
{
    struct collect *c = ctx;
    struct qw *fw = c->fw;

    (void)n;
    if (fw->nentries >= fw->entries_cap) {
        fw->entries_overflow = true;
        return;
    }
    fw->entries[fw->nentries].key = path + c->plen;
    fw->entries[fw->nentries].value = value;
    fw->nentries++;
}

/*
 * Compile the committed tree of link's address into the spare set and
 * swap it in; then close the connections the new rules reject.
 * complete = false: QubesDB could not store the whole tree: fail closed.
 */
static void rules_apply(struct qw *fw, unsigned link, bool complete)
{
    struct fw_link *l = &fw->links[link];
    struct collect c = {fw, 0};
    struct rules_set *old;
    char prefix[40], why[RULES_WHY_MAX], ip[16];
    int rc;

    fw_fmt_ip4(ip, sizeof ip, l->ip);
    c.plen = qw_snprintf(prefix, sizeof prefix, FW_PREFIX "%s/", ip);
    fw->nentries = 0;
    fw->entries_overflow = false;
    if (complete)
        qdb_list(fw->qdb, prefix, collect_entry, &c);
    if (!complete || fw->entries_overflow) {
        rules_compile(fw->spare_rules, NULL, 0, &fw->hosts, NULL, 0);
        qw_snprintf(why, sizeof why, "%s",
                    complete ? "more keys than max_rules allows"
                             : "tree incomplete (qubesdb store full)");
        rc = -QW_ENOSPC;
    } else {
        rc = rules_compile(fw->spare_rules, fw->entries, fw->nentries,
                           &fw->hosts, why, sizeof why);
    }
    old = l->rules;
    l->rules = fw->spare_rules;
    rules_release(old, &fw->hosts);
    fw->spare_rules = old;
    l->rules_seen = true;
    if (rc >= 0)
        fw_log(fw, FW_LOG_RULES, QW_LOG_INFO,
               "fw: client %s (%s): rules applied (%d rules)", l->name, ip, rc);
    else
        fw_log(fw, FW_LOG_RULES, QW_LOG_WARN,
               "fw: client %s (%s): rules rejected, dropping all its "
               "traffic (%s)",
               l->name, ip, why);
    fw_recheck_link(fw, link);
}

/* At attach: apply the tree if dom0 already committed one. */
void fw_rules_load(struct qw *fw, unsigned link)
{
    char path[40], ip[16];

    fw_fmt_ip4(ip, sizeof ip, fw->links[link].ip);
    qw_snprintf(path, sizeof path, FW_PREFIX "%s", ip);
    if (qdb_get(fw->qdb, path, NULL) != NULL)
        rules_apply(fw, link, qdb_dir_complete(fw->qdb, path));
}

/* ---- qdb events -------------------------------------------------------------
 */

static void ev_write(void *ctx, const char *path, const char *value, size_t n)
{
    struct qw *fw = ctx;
    uint32_t *f;

    if (fw->plat.qdb_changed != NULL)
        fw->plat.qdb_changed(fw->plat.ctx, path, value, n);
    f = net_field(fw, path);
    if (f != NULL)
        net_write(fw, f, path, value, n);
    else if (streq(path, "/connected-ips"))
        connected_write(fw, value, n);
}

static void ev_rm(void *ctx, const char *path)
{
    struct qw *fw = ctx;
    uint32_t *f;

    if (fw->plat.qdb_changed != NULL)
        fw->plat.qdb_changed(fw->plat.ctx, path, NULL, 0);
    f = net_field(fw, path);
    if (f != NULL)
        net_write(fw, f, path, "", 0);
    else if (streq(path, "/connected-ips"))
        connected_write(fw, "", 0);
}

static void ev_commit(void *ctx, const char *dir, bool complete)
{
    struct qw *fw = ctx;
    uint32_t ip;

    if (__builtin_memcmp(dir, FW_PREFIX, FW_PREFIX_LEN) != 0 ||
        fw_parse_ip4(dir + FW_PREFIX_LEN, slen(dir + FW_PREFIX_LEN), &ip) < 0)
        return; /* an IPv6 tree, or not a rules directory */
    for (unsigned i = 1; i < fw->nlinks; i++)
        if (fw->links[i].used && fw->links[i].ip == ip)
            rules_apply(fw, i, complete);
}

static void ev_synced(void *ctx)
{
    struct qw *fw = ctx;

    fw_net_changed(fw);
    if (!fw_configured(fw) && !fw->waiting_logged) {
        fw_log(fw, FW_LOG_CORE, QW_LOG_INFO,
               "fw: waiting for network settings (/qubes-ip, "
               "/qubes-gateway)");
        fw->waiting_logged = true;
    }
}

static void ev_log(void *ctx, enum qw_log_level lvl, const char *line)
{
    fw_log(ctx, FW_LOG_QDB, lvl, "%s", line);
}

void fw_qdb_init(struct qw *fw, unsigned max_entries, size_t max_bytes)
{
    struct qdb_events ev = {fw, ev_write, ev_rm, ev_commit, ev_synced, ev_log};

    qdb_init(fw->qdb, max_entries, max_bytes, &ev);
}

/* ---- public QubesDB API
 * ------------------------------------------------------ */

void qw_qdb_connected(struct qw *fw, uint64_t now)
{
    fw->now = now;
    fw->out = NULL;
    qdb_connected(fw->qdb);
}

int qw_qdb_rx(struct qw *fw, const uint8_t *data, size_t len, uint64_t now,
              struct qw_out *out)
{
    int rc;

    fw->now = now;
    fw->out = out;
    fw->tx_used = 0;
    rc = qdb_rx(fw->qdb, data, len);
    fw_arp_poll(fw);
    /* new dsthost names resolve now rather than at the next poll */
    if (dns_deadline(fw->dns) <= now)
        dns_poll(fw->dns, now);
    fw->out = NULL;
    return rc;
}

size_t qw_qdb_tx(struct qw *fw, uint8_t *buf, size_t cap)
{
    return qdb_tx(fw->qdb, buf, cap);
}

const char *qw_qdb_get(const struct qw *fw, const char *path)
{
    return qdb_get(fw->qdb, path, NULL);
}

bool qw_qdb_synced(const struct qw *fw)
{
    return qdb_synced(fw->qdb);
}
