/*
 * fw_nat.c: rewriting addresses, ports and ICMP ids of a packet for its
 * connection, updating every checksum incrementally (RFC 1624 eqn. 3):
 * the IPv4 header checksum, the TCP/UDP checksum (whose pseudo-header
 * covers the addresses) and the ICMP checksum (which covers the id).
 * An incremental update keeps a bad checksum bad, so the firewall never
 * launders corrupted segments.
 *
 * ICMP errors quoting a connection are translated completely: the outer
 * address, the quoted header's address, port or id and its checksum, the
 * quoted TCP/UDP/ICMP checksum when the quote holds it (a quote may stop
 * after 8 bytes of L4 header), then the outer ICMP checksum, recomputed
 * over the whole message (it was verified first).
 */
#include "fw.h"

#include "wire.h"

static uint16_t udp_fix(uint16_t c)
{
    return c == 0 ? 0xffff : c; /* 0 means "no checksum" in UDP */
}

/*
 * RFC 1624 eqn. 3 with the changes summed first: d is the sum of
 * ~old + new over every changed 16-bit word, so one fold serves any
 * number of fields. d stays below 2^20 for the handful of words here.
 */
static inline uint32_t d32(uint32_t o, uint32_t n)
{
    o = ~o;
    return (o >> 16) + (o & 0xffff) + (n >> 16) + (n & 0xffff);
}

static inline uint32_t d16(uint16_t o, uint16_t n)
{
    return (uint32_t)(uint16_t)~o + n;
}

static inline uint16_t adjust(uint16_t c, uint32_t d)
{
    uint32_t s = (uint32_t)(uint16_t)~c + d;

    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    return (uint16_t)~s;
}

/*
 * Set the packet's addresses and ports (ICMP: the query id, which sits
 * in sport for requests and dport for answers, as in the ct key) and
 * decrement its TTL, with one checksum adjustment per header.
 */
static void rewrite(struct fw_pkt *p, uint32_t src, uint32_t dst,
                    uint16_t sport, uint16_t dport)
{
    uint8_t *ip = p->ip, *l4 = p->l4;
    uint32_t da = d32(p->src, src) + d32(p->dst, dst);
    uint16_t ttlw = qw_get16(ip + 8);

    qw_put32(ip + 12, src);
    qw_put32(ip + 16, dst);
    ip[8]--;
    qw_put16(ip + 10, adjust(qw_get16(ip + 10),
                             da + d16(ttlw, (uint16_t)(ttlw - 0x100))));
    switch (p->proto) {
    case IPPROTO_TCP_:
        qw_put16(l4 + 16, adjust(qw_get16(l4 + 16), da + d16(p->sport, sport) +
                                                        d16(p->dport, dport)));
        qw_put16(l4, sport);
        qw_put16(l4 + 2, dport);
        break;
    case IPPROTO_UDP_:
        if (qw_get16(l4 + 6) != 0)
            qw_put16(l4 + 6, udp_fix(adjust(qw_get16(l4 + 6),
                                            da + d16(p->sport, sport) +
                                                d16(p->dport, dport))));
        qw_put16(l4, sport);
        qw_put16(l4 + 2, dport);
        break;
    case IPPROTO_ICMP_: {
        uint16_t oid = qw_get16(l4 + 4), nid = oid;
        if (fw_icmp_is_query(p->icmp_type))
            nid = sport;
        else if (fw_icmp_is_query_reply(p->icmp_type))
            nid = dport;
        qw_put16(l4 + 4, nid);
        qw_put16(l4 + 2, adjust(qw_get16(l4 + 2), d16(oid, nid)));
        break;
    }
    default:
        break;
    }
    p->src = src;
    p->dst = dst;
    p->sport = sport;
    p->dport = dport;
}

static inline uint16_t fold16(uint32_t s)
{
    s = (s & 0xffff) + (s >> 16);
    return (uint16_t)((s & 0xffff) + (s >> 16));
}

/*
 * The translation of a TCP/UDP connection as two checksum deltas (client
 * to uplink direction; the other direction is their one's complement
 * negation): high half for the IPv4 header (the address), low half for
 * the L4 checksum (address in the pseudo-header and port), each in the
 * native order of a 16-bit load. Computed once when the connection is
 * created, kept in ct_entry.user.
 */
uint32_t fw_nat_delta(const struct ct_entry *e)
{
    uint32_t da = d32(e->orig.src, e->reply.dst);
    uint16_t dip = fold16(da);
    uint16_t dl4 = fold16(da + d16(e->orig.sport, e->reply.dport));

#if defined(QW_WIRE_SWAP) && QW_WIRE_SWAP
    dip = __builtin_bswap16(dip);
    dl4 = __builtin_bswap16(dl4);
#endif
    return (uint32_t)dip << 16 | dl4;
}

/* Client -> uplink: the packet becomes the mirror of e->reply, TTL - 1
 * (the caller checked it is > 1). */
void fw_nat_out(struct fw_pkt *p, const struct ct_entry *e)
{
    rewrite(p, e->reply.dst, e->reply.src, e->reply.dport, e->reply.sport);
}

/* Uplink -> client: the packet becomes the mirror of e->orig, TTL - 1. */
void fw_nat_in(struct fw_pkt *p, const struct ct_entry *e)
{
    rewrite(p, e->orig.dst, e->orig.src, e->orig.dport, e->orig.sport);
}

/* Forwarding without translation: TTL - 1 (the caller checked > 1). */
void fw_nat_ttl(struct fw_pkt *p)
{
    uint8_t *ip = p->ip;
    uint16_t old = qw_get16(ip + 8);

    ip[8]--;
    qw_put16(ip + 10, adjust(qw_get16(ip + 10), d16(old, qw_get16(ip + 8))));
}

/*
 * The ct key of the connection an ICMP error quotes, seen from the
 * error's own direction (the quoted datagram went the other way, so its
 * addresses and ports are swapped). -1 if the quote is unusable: shorter
 * than its header + 8 bytes, not IPv4, or itself an ICMP error.
 */
int fw_nat_icmp_inner_key(const struct fw_pkt *p, struct ct_key *k)
{
    const uint8_t *in = p->l4 + 8, *il4;
    uint32_t avail = p->l4len - 8;
    unsigned ihl;
    uint16_t sport = 0, dport = 0;

    if (p->l4len < 8 + IP4_MIN_HLEN + 8 || (in[0] >> 4) != 4)
        return -1;
    ihl = (in[0] & 15) * 4u;
    if (ihl < IP4_MIN_HLEN || avail < ihl + 8)
        return -1;
    if ((qw_get16(in + 6) & IP4_OFF_MASK) != 0)
        return -1; /* a later fragment: no ports to match */
    il4 = in + ihl;
    switch (in[9]) {
    case IPPROTO_TCP_:
    case IPPROTO_UDP_:
        sport = qw_get16(il4);
        dport = qw_get16(il4 + 2);
        break;
    case IPPROTO_ICMP_:
        if (fw_icmp_is_query(il4[0]))
            sport = qw_get16(il4 + 4);
        else if (fw_icmp_is_query_reply(il4[0]))
            dport = qw_get16(il4 + 4);
        else
            return -1;
        break;
    default:
        break;
    }
    k->src = qw_get32(in + 16);
    k->dst = qw_get32(in + 12);
    k->sport = dport;
    k->dport = sport;
    k->proto = in[9];
    return 0;
}

/* Rewrite the quoted datagram's address at `aoff` (12 src, 16 dst) and its
 * port / ICMP id on the same side (ports: 0 source, 2 destination). */
static void rewrite_inner(uint8_t *in, uint32_t avail, unsigned aoff,
                          uint32_t addr, bool src_side, uint16_t port)
{
    unsigned ihl = (in[0] & 15) * 4u;
    uint8_t *il4 = in + ihl;
    uint32_t il4len = avail - ihl;
    uint32_t oaddr = qw_get32(in + aoff);
    uint16_t oport, c;

    qw_put32(in + aoff, addr);
    qw_put16(in + 10, qw_csum_update32(qw_get16(in + 10), oaddr, addr));
    switch (in[9]) {
    case IPPROTO_TCP_:
    case IPPROTO_UDP_: {
        unsigned poff = src_side ? 0 : 2;
        unsigned coff = in[9] == IPPROTO_TCP_ ? 16 : 6;
        oport = qw_get16(il4 + poff);
        qw_put16(il4 + poff, port);
        if (il4len >= coff + 2) {
            c = qw_get16(il4 + coff);
            if (in[9] == IPPROTO_TCP_ || c != 0) {
                c = qw_csum_update32(c, oaddr, addr);
                c = qw_csum_update16(c, oport, port);
                qw_put16(il4 + coff, in[9] == IPPROTO_UDP_ ? udp_fix(c) : c);
            }
        }
        break;
    }
    case IPPROTO_ICMP_:
        /* the id: no pseudo-header, only the id itself changes */
        oport = qw_get16(il4 + 4);
        qw_put16(il4 + 4, port);
        qw_put16(il4 + 2, qw_csum_update16(qw_get16(il4 + 2), oport, port));
        break;
    default:
        break;
    }
}

/*
 * Translate an ICMP error found to quote e, travelling in direction dir
 * (0 from the client, 1 from the uplink).
 */
void fw_nat_icmp_error(struct fw_pkt *p, const struct ct_entry *e, int dir)
{
    uint8_t *in = p->l4 + 8;
    uint32_t avail = p->l4len - 8;
    uint16_t ipc = qw_get16(p->ip + 10);
    uint32_t na;

    if (dir == 1) {
        /* quoted: our SNATed datagram nat:natport -> remote */
        na = e->orig.src;
        rewrite_inner(in, avail, 12, na, true, e->orig.sport);
        qw_put32(p->ip + 16, na);
        ipc = qw_csum_update32(ipc, p->dst, na);
        p->dst = na;
    } else {
        /* quoted: a reply remote -> client:port, seen before DNAT */
        na = e->reply.dst;
        rewrite_inner(in, avail, 16, na, false, e->reply.dport);
        qw_put32(p->ip + 12, na);
        ipc = qw_csum_update32(ipc, p->src, na);
        p->src = na;
    }
    qw_put16(p->ip + 10, ipc);
    qw_put16(p->l4 + 2, 0);
    qw_put16(p->l4 + 2, qw_csum_fold(qw_csum_add(0, p->l4, p->l4len)));
}

/*
 * Complete a partial checksum (QW_FRAME_CSUM_BLANK): the field holds the
 * folded pseudo-header sum, so summing the segment as it is and folding
 * gives the final value (Linux CHECKSUM_PARTIAL, Xen csum_blank).
 */
void fw_csum_complete(struct fw_pkt *p)
{
    unsigned off;
    uint16_t c;

    if (p->proto == IPPROTO_TCP_)
        off = 16;
    else if (p->proto == IPPROTO_UDP_)
        off = 6;
    else
        return;
    c = (uint16_t)~fw_csum_native(p->l4, p->l4len);
    if (c == 0 && p->proto == IPPROTO_UDP_)
        c = 0xffff; /* either byte order */
    __builtin_memcpy(p->l4 + off, &c, 2);
}
