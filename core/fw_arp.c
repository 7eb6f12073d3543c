/*
 * fw_arp.c: ARP on both sides (semantics.md "Link layer").
 *
 * Client links are point-to-point: every request is answered with
 * fe:ff:ff:ff:ff:ff except one for the client's own address (duplicate
 * address detection must not succeed); nothing a client says is learnt.
 * On the uplink we answer for our own address, announce it with a
 * gratuitous ARP when the link comes up, and resolve the gateway with a
 * few requests, falling back to fe:ff:ff:ff:ff:ff (the MAC of Linux
 * netback's vif, and what VPN netvms that never answer need).
 */
#include "fw.h"

#include "wire.h"

#define ARP_LEN 28
#define ARP_OP_REQUEST 1
#define ARP_OP_REPLY 2

static const uint8_t mac_fe[6] = QW_MAC_FE;

/* Turn the request in frame into its reply, in place, and send it. */
static void arp_reply(struct qw *fw, unsigned link, uint8_t *frame,
                      const uint8_t *mymac)
{
    uint8_t *a = frame + ETH_HLEN;
    uint8_t sha[6], spa[4], tpa[4];

    __builtin_memcpy(sha, a + 8, 6);
    __builtin_memcpy(spa, a + 14, 4);
    __builtin_memcpy(tpa, a + 24, 4);
    __builtin_memcpy(frame, sha, 6);
    __builtin_memcpy(frame + 6, mymac, 6);
    qw_put16(a + 6, ARP_OP_REPLY);
    __builtin_memcpy(a + 8, mymac, 6);
    __builtin_memcpy(a + 14, tpa, 4);
    __builtin_memcpy(a + 18, sha, 6);
    __builtin_memcpy(a + 24, spa, 4);
    fw_emit(fw, link, frame, ETH_HLEN + ARP_LEN);
}

/* A request from us on the uplink (tpa = target), broadcast. */
static void arp_request(struct qw *fw, uint32_t spa, uint32_t tpa)
{
    uint8_t *f = fw_tx_alloc(fw);
    uint8_t *a;

    if (f == NULL) {
        fw->tx_full++;
        fw_count(fw, 0, QW_DROP_TX_FULL, 1);
        return;
    }
    a = f + ETH_HLEN;
    __builtin_memset(f, 0xff, 6);
    __builtin_memcpy(f + 6, fw->links[0].mac, 6);
    qw_put16(f + 12, ETHERTYPE_ARP);
    qw_put16(a, 1);
    qw_put16(a + 2, ETHERTYPE_IPV4);
    a[4] = 6;
    a[5] = 4;
    qw_put16(a + 6, ARP_OP_REQUEST);
    __builtin_memcpy(a + 8, fw->links[0].mac, 6);
    qw_put32(a + 14, spa);
    __builtin_memset(a + 18, 0, 6);
    qw_put32(a + 24, tpa);
    fw_emit(fw, 0, f, ETH_HLEN + ARP_LEN);
}

static void uplink_arp(struct qw *fw, uint8_t *frame, uint32_t len, unsigned op)
{
    const uint8_t *a = frame + ETH_HLEN;
    const uint8_t *sha = a + 8;
    uint32_t spa = qw_get32(a + 14), tpa = qw_get32(a + 24);
    bool learnt = false;

    if (!fw_configured(fw)) {
        fw_drop(fw, 0, frame, len, QW_DROP_ARP_IGNORED);
        return;
    }
    /* Only the gateway's own mapping is of any use to us. */
    if (spa == fw->net.gw && (sha[0] & 1) == 0 &&
        (sha[0] | sha[1] | sha[2] | sha[3] | sha[4] | sha[5]) != 0) {
        /* info once per resolution; a peer flapping the MAC is only
         * worth debug lines (it is the only peer on this link) */
        if (fw->gw_state != FW_GW_RESOLVED)
            fw_log(fw, FW_LOG_ARP, QW_LOG_INFO,
                   "fw: gateway is at %02x:%02x:%02x:%02x:%02x:%02x", sha[0],
                   sha[1], sha[2], sha[3], sha[4], sha[5]);
        else if (__builtin_memcmp(fw->gw_mac, sha, 6) != 0)
            fw_log(fw, FW_LOG_ARP, QW_LOG_DEBUG,
                   "fw: gateway moved to %02x:%02x:%02x:%02x:%02x:%02x", sha[0],
                   sha[1], sha[2], sha[3], sha[4], sha[5]);
        fw_set_gw_mac(fw, sha);
        fw->gw_state = FW_GW_RESOLVED;
        fw->gw_next = 0;
        learnt = true;
    }
    if (op == ARP_OP_REQUEST && tpa == fw->net.ip && spa != fw->net.ip) {
        arp_reply(fw, 0, frame, fw->links[0].mac);
        return;
    }
    if (!learnt)
        fw_drop(fw, 0, frame, len, QW_DROP_ARP_IGNORED);
}

void fw_arp_rx(struct qw *fw, unsigned link, uint8_t *frame, uint32_t len)
{
    const uint8_t *a = frame + ETH_HLEN;
    unsigned op;

    if (len < ETH_HLEN + ARP_LEN || qw_get16(a) != 1 ||
        qw_get16(a + 2) != ETHERTYPE_IPV4 || a[4] != 6 || a[5] != 4) {
        fw_drop(fw, link, frame, len, QW_DROP_ARP_BAD);
        return;
    }
    op = qw_get16(a + 6);
    if (op != ARP_OP_REQUEST && op != ARP_OP_REPLY) {
        fw_drop(fw, link, frame, len, QW_DROP_ARP_BAD);
        return;
    }
    if (link == QW_LINK_UPLINK) {
        uplink_arp(fw, frame, len, op);
        return;
    }
    /* Client: answer everything but its own address; never learn. */
    if (op != ARP_OP_REQUEST || qw_get32(a + 24) == fw->links[link].ip) {
        fw_drop(fw, link, frame, len, QW_DROP_ARP_IGNORED);
        return;
    }
    arp_reply(fw, link, frame, mac_fe);
}

/* Announce our uplink address (at link up and when it changes). */
void fw_arp_gratuitous(struct qw *fw)
{
    if (fw->uplink_up && fw->net.ip != 0)
        arp_request(fw, fw->net.ip, fw->net.ip);
}

/* (Re)start resolving the gateway; the fallback MAC is used meanwhile. */
void fw_arp_gw_start(struct qw *fw)
{
    fw_set_gw_mac(fw, mac_fe);
    fw->gw_tries = 0;
    if (!fw->uplink_up || !fw_configured(fw)) {
        fw->gw_state = FW_GW_NONE;
        fw->gw_next = 0;
        return;
    }
    fw->gw_state = FW_GW_PROBING;
    fw->gw_next = fw->now;
}

/* Gateway ARP retries; called from qw_poll() and the entry points that
 * can send. */
void fw_arp_poll(struct qw *fw)
{
    char gw[16];

    if (fw->gw_next == 0 || fw->now < fw->gw_next || !fw->uplink_up ||
        !fw_configured(fw))
        return;
    if (fw->gw_state == FW_GW_PROBING && fw->gw_tries >= FW_ARP_TRIES) {
        fw_fmt_ip4(gw, sizeof gw, fw->net.gw);
        fw_log(fw, FW_LOG_ARP, QW_LOG_WARN,
               "fw: gateway %s does not answer arp, using "
               "fe:ff:ff:ff:ff:ff",
               gw);
        fw->gw_state = FW_GW_FALLBACK;
    }
    arp_request(fw, fw->net.ip, fw->net.gw);
    fw->gw_tries++;
    fw->gw_next = fw->now + (fw->gw_state == FW_GW_PROBING ? FW_ARP_RETRY_NS
                                                           : FW_ARP_SLOW_NS);
}
