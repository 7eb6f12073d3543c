/*
 * fw_icmp.c: ICMP the firewall generates itself.
 *
 * Errors (destination unreachable, time exceeded) quote the offending
 * datagram as it arrived, up to 576 bytes in all (RFC 1812 4.3.2.3), come
 * from the firewall's address and go back out of the link the datagram
 * came in on. As RFC 1122 3.2.2 requires, none is sent about an ICMP
 * error, or to a source that is not a unicast address. Rate limiting is
 * the caller's (per link, fw_reject_ok()).
 */
#include "fw.h"

#include "wire.h"

bool fw_icmp_is_error(uint8_t type)
{
    return type == ICMP_DEST_UNREACH || type == 4 /* source quench */ ||
           type == ICMP_REDIRECT || type == ICMP_TIME_EXCEEDED ||
           type == ICMP_PARAM_PROBLEM;
}

/* Queries that may start a connection (semantics.md "Rules: how they
 * match"). */
bool fw_icmp_is_query(uint8_t type)
{
    return type == ICMP_ECHO || type == ICMP_TIMESTAMP ||
           type == ICMP_INFO_REQUEST || type == ICMP_ADDR_MASK;
}

bool fw_icmp_is_query_reply(uint8_t type)
{
    return type == ICMP_ECHO_REPLY || type == ICMP_TIMESTAMP_REPLY ||
           type == ICMP_INFO_REPLY || type == ICMP_ADDR_MASK_REPLY;
}

void fw_icmp_error(struct qw *fw, const struct fw_pkt *p, uint8_t type,
                   uint8_t code, uint16_t mtu)
{
    uint32_t quote, iplen;
    uint8_t *f, *ip, *ic;

    if (p->proto == IPPROTO_ICMP_ && !fw_icmp_is_query(p->icmp_type) &&
        !fw_icmp_is_query_reply(p->icmp_type))
        return;
    if ((p->src >> 24) == 0 || (p->src >> 24) == 127 || p->src >= 0xe0000000u ||
        fw->net.ip == 0)
        return;
    f = fw_tx_alloc(fw);
    if (f == NULL) {
        fw->tx_full++;
        fw_count(fw, p->link, QW_DROP_TX_FULL, 1);
        return;
    }
    quote = p->iplen;
    if (quote > FW_ICMP_ERR_MAX - IP4_MIN_HLEN - 8)
        quote = FW_ICMP_ERR_MAX - IP4_MIN_HLEN - 8;
    iplen = IP4_MIN_HLEN + 8 + quote;
    fw_eth_hdr(fw, p->link, f);
    ip = f + ETH_HLEN;
    ip[0] = 0x45;
    ip[1] = 0xc0; /* internetwork control, as Linux sends its errors */
    qw_put16(ip + 2, (uint16_t)iplen);
    /* an atomic datagram (RFC 6864): DF, id 0 */
    qw_put16(ip + 4, 0);
    qw_put16(ip + 6, IP4_FLAG_DF);
    ip[8] = 64;
    ip[9] = IPPROTO_ICMP_;
    qw_put16(ip + 10, 0);
    qw_put32(ip + 12, fw->net.ip);
    qw_put32(ip + 16, p->src);
    qw_put16(ip + 10, fw_ip_csum(ip, IP4_MIN_HLEN));
    ic = ip + IP4_MIN_HLEN;
    ic[0] = type;
    ic[1] = code;
    qw_put16(ic + 2, 0);
    qw_put16(ic + 4, 0);
    qw_put16(ic + 6, mtu); /* next-hop MTU (RFC 1191), else unused */
    __builtin_memcpy(ic + 8, p->ip, quote);
    qw_put16(ic + 2, qw_csum_fold(qw_csum_add(0, ic, 8 + quote)));
    fw_emit(fw, p->link, f, ETH_HLEN + iplen);
}

/*
 * Turn an echo request to our address into its reply, where it lies
 * (received buffer or scratch); the caller sends it back on p->link.
 * False (counted) when the request's checksum is wrong.
 */
bool fw_icmp_echo_reply(struct qw *fw, struct fw_pkt *p)
{
    uint8_t *ip = p->ip;
    uint16_t c;

    if (qw_csum_fold(qw_csum_add(0, p->l4, p->l4len)) != 0) {
        fw_drop(fw, p->link, p->eth,
                p->scratch ? ETH_HLEN + p->iplen : p->framelen,
                QW_DROP_L4_CSUM);
        return false;
    }
    qw_put32(ip + 12, p->dst);
    qw_put32(ip + 16, p->src);
    ip[8] = 64;
    /* A reassembled big echo goes back in fragments. */
    if (p->iplen > FW_MTU)
        qw_put16(ip + 6, 0);
    qw_put16(ip + 10, 0);
    qw_put16(ip + 10, fw_ip_csum(ip, p->hlen));
    c = qw_get16(p->l4 + 2);
    p->l4[0] = ICMP_ECHO_REPLY;
    p->l4[1] = 0;
    qw_put16(p->l4 + 2,
             qw_csum_update16(c, (uint16_t)(ICMP_ECHO << 8 | p->icmp_code), 0));
    return true;
}
