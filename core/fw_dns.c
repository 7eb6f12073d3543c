/*
 * fw_dns.c: the pipeline side of qwall's own DNS client (core/dns.c).
 *
 * Queries leave from the uplink address on a UDP port reserved in the
 * connection table as the firewall's own (CT_LINK_SELF), so the reply
 * finds that entry, is handed to dns_rx() and is never forwarded to a
 * client; a client cannot get a mapping on that port meanwhile.
 */
#include "fw.h"

#include "wire.h"

#define UDP_HLEN 8

static uint32_t env_random(void *ctx)
{
    struct qw *fw = ctx;

    return fw->plat.random(fw->plat.ctx);
}

static uint16_t env_send(void *ctx, uint32_t server, const uint8_t *p, size_t n,
                         uint64_t now)
{
    struct qw *fw = ctx;
    uint16_t port;
    uint8_t *f, *ip, *udp;
    uint32_t iplen = (uint32_t)(IP4_MIN_HLEN + UDP_HLEN + n);
    uint32_t sum;

    if (!fw->uplink_up || !fw_configured(fw) || server == 0 || iplen > FW_MTU ||
        fw->out == NULL || fw->out->n >= fw->out->cap)
        return 0;
    if (ct_reserve_self(fw->ct, IPPROTO_UDP_, fw->net.ip, server, DNS_PORT, now,
                        &port) < 0)
        return 0;
    f = fw_tx_alloc(fw);
    if (f == NULL) {
        ct_release_self(fw->ct, IPPROTO_UDP_, fw->net.ip, server, DNS_PORT,
                        port);
        return 0;
    }
    fw_eth_hdr(fw, QW_LINK_UPLINK, f);
    ip = f + ETH_HLEN;
    ip[0] = 0x45;
    ip[1] = 0;
    qw_put16(ip + 2, (uint16_t)iplen);
    qw_put16(ip + 4, fw->ip_id++);
    qw_put16(ip + 6, IP4_FLAG_DF);
    ip[8] = 64;
    ip[9] = IPPROTO_UDP_;
    qw_put16(ip + 10, 0);
    qw_put32(ip + 12, fw->net.ip);
    qw_put32(ip + 16, server);
    qw_put16(ip + 10, fw_ip_csum(ip, IP4_MIN_HLEN));
    udp = ip + IP4_MIN_HLEN;
    qw_put16(udp, port);
    qw_put16(udp + 2, DNS_PORT);
    qw_put16(udp + 4, (uint16_t)(UDP_HLEN + n));
    qw_put16(udp + 6, 0);
    __builtin_memcpy(udp + UDP_HLEN, p, n);
    /* pseudo-header: addresses, protocol, UDP length */
    sum = qw_csum_add(0, ip + 12, 8);
    sum += IPPROTO_UDP_ + UDP_HLEN + (uint32_t)n;
    sum = qw_csum_add(sum, udp, UDP_HLEN + n);
    qw_put16(udp + 6, qw_csum_fold(sum) == 0 ? 0xffff : qw_csum_fold(sum));
    fw_emit(fw, QW_LINK_UPLINK, f, ETH_HLEN + iplen);
    return port;
}

static void env_release(void *ctx, uint32_t server, uint16_t sport)
{
    struct qw *fw = ctx;

    ct_release_self(fw->ct, IPPROTO_UDP_, fw->net.ip, server, DNS_PORT, sport);
}

/* A name's answer set changed: re-judge the connections of every client
 * whose rules use it. */
static void env_changed(void *ctx, int host_id)
{
    struct qw *fw = ctx;

    for (unsigned i = 1; i < fw->nlinks; i++)
        if (fw->links[i].used && rules_uses_host(fw->links[i].rules, host_id))
            fw_recheck_link(fw, i);
}

static void env_log(void *ctx, enum qw_log_level lvl, const char *line)
{
    fw_log(ctx, FW_LOG_DNS, lvl, "%s", line);
}

void fw_dns_init(struct qw *fw)
{
    struct dns_env env = {fw,          env_random,  env_send,
                          env_release, env_changed, env_log};

    dns_init(fw->dns, fw->cfg.dns_cache_names, &env);
    fw->hosts = dns_host_ops(fw->dns);
}

void fw_dns_servers(struct qw *fw)
{
    dns_set_servers(fw->dns, fw->net.dns1, fw->net.dns2);
}

/*
 * A packet for one of our own ports: a DNS reply goes to the client,
 * anything else is dropped. Returns true if dns.c accepted it.
 */
bool fw_dns_rx(struct qw *fw, struct fw_pkt *p, const struct ct_entry *e)
{
    enum qw_drop why;
    uint32_t n;

    (void)e;
    if (p->proto != IPPROTO_UDP_) {
        fw_drop(fw, p->link, p->eth,
                p->scratch ? ETH_HLEN + p->iplen : p->framelen,
                QW_DROP_DNS_UNEXPECTED);
        return false;
    }
    n = qw_get16(p->l4 + 4) - UDP_HLEN;
    /* we are the end host here: a damaged answer must not be believed
     * (0 = no checksum, legal in IPv4 UDP) */
    if (qw_get16(p->l4 + 6) != 0) {
        uint32_t s = qw_csum_add(0, p->ip + 12, 8);
        s += IPPROTO_UDP_ + UDP_HLEN + n;
        s = qw_csum_add(s, p->l4, UDP_HLEN + n);
        if (qw_csum_fold(s) != 0) {
            fw_drop(fw, p->link, p->eth,
                    p->scratch ? ETH_HLEN + p->iplen : p->framelen,
                    QW_DROP_L4_CSUM);
            return false;
        }
    }
    why = dns_rx(fw->dns, p->src, p->sport, p->dport, p->l4 + UDP_HLEN, n,
                 fw->now);
    if (why != QW_DROP_NONE) {
        fw_drop(fw, p->link, p->eth,
                p->scratch ? ETH_HLEN + p->iplen : p->framelen, why);
        return false;
    }
    return true;
}
