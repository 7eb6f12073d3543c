/*
 * wire.h: byte-order accessors, protocol constants and Internet checksums.
 *
 * Everything on the wire is read and written through these helpers, never
 * by casting a packet pointer to a struct: frames may be unaligned and the
 * core must not depend on host byte order.
 */
#ifndef QW_WIRE_H
#define QW_WIRE_H

#include <stddef.h>
#include <stdint.h>

/*
 * Big-endian loads and stores. On a little-endian host they compile to one
 * unaligned access and a byte swap (the byte-by-byte form is not always
 * merged by the compiler); __BYTE_ORDER__ is predefined by GCC and Clang,
 * so no header is needed.
 */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define QW_WIRE_SWAP 1
#elif defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define QW_WIRE_SWAP 0
#endif

static inline uint16_t qw_get16(const uint8_t *p)
{
#ifdef QW_WIRE_SWAP
    uint16_t v;

    __builtin_memcpy(&v, p, 2);
    return QW_WIRE_SWAP ? __builtin_bswap16(v) : v;
#else
    return (uint16_t)(p[0] << 8 | p[1]);
#endif
}

static inline uint32_t qw_get32(const uint8_t *p)
{
#ifdef QW_WIRE_SWAP
    uint32_t v;

    __builtin_memcpy(&v, p, 4);
    return QW_WIRE_SWAP ? __builtin_bswap32(v) : v;
#else
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           p[3];
#endif
}

static inline void qw_put16(uint8_t *p, uint16_t v)
{
#ifdef QW_WIRE_SWAP
    v = QW_WIRE_SWAP ? __builtin_bswap16(v) : v;
    __builtin_memcpy(p, &v, 2);
#else
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
#endif
}

static inline void qw_put32(uint8_t *p, uint32_t v)
{
#ifdef QW_WIRE_SWAP
    v = QW_WIRE_SWAP ? __builtin_bswap32(v) : v;
    __builtin_memcpy(p, &v, 4);
#else
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
#endif
}

/* Ethernet II */
#define ETH_HLEN 14
#define ETH_ALEN 6
#define ETHERTYPE_IPV4 0x0800
#define ETHERTYPE_ARP 0x0806
#define ETHERTYPE_IPV6 0x86dd

/* IPv4 */
#define IP4_MIN_HLEN 20
#define IP4_MAX_LEN 65535
#define IP4_FLAG_DF 0x4000
#define IP4_FLAG_MF 0x2000
#define IP4_OFF_MASK 0x1fff
#define IPPROTO_ICMP_ 1
#define IPPROTO_TCP_ 6
#define IPPROTO_UDP_ 17

/* ICMPv4 types used by the core */
#define ICMP_ECHO_REPLY 0
#define ICMP_DEST_UNREACH 3
#define ICMP_REDIRECT 5
#define ICMP_ECHO 8
#define ICMP_TIME_EXCEEDED 11
#define ICMP_PARAM_PROBLEM 12
#define ICMP_TIMESTAMP 13
#define ICMP_TIMESTAMP_REPLY 14
#define ICMP_INFO_REQUEST 15
#define ICMP_INFO_REPLY 16
#define ICMP_ADDR_MASK 17
#define ICMP_ADDR_MASK_REPLY 18
/* codes of ICMP_DEST_UNREACH */
#define ICMP_FRAG_NEEDED 4
#define ICMP_HOST_PROHIBITED 10
#define ICMP_ADMIN_PROHIBITED 13

/*
 * One's-complement sum of len bytes added to sum (not folded, not
 * inverted). Feed successive pieces with even lengths except the last.
 */
static inline uint32_t qw_csum_add(uint32_t sum, const uint8_t *p, size_t len)
{
    uint64_t s = sum;

    while (len >= 2) {
        s += (uint32_t)(p[0] << 8 | p[1]);
        p += 2;
        len -= 2;
    }
    if (len)
        s += (uint32_t)p[0] << 8;
    while (s >> 32)
        s = (s & 0xffffffffu) + (s >> 32);
    return (uint32_t)s;
}

/* Fold a sum to 16 bits and invert it: the value to store in a header. */
static inline uint16_t qw_csum_fold(uint32_t sum)
{
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

/*
 * RFC 1624 eqn. 3 incremental update: a 16-bit field changed from old to
 * new; returns the new checksum for old checksum `csum`.
 */
static inline uint16_t qw_csum_update16(uint16_t csum, uint16_t old,
                                        uint16_t new_)
{
    uint32_t s = (uint16_t)~csum + (uint32_t)(uint16_t)~old + new_;

    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    return (uint16_t)~s;
}

static inline uint16_t qw_csum_update32(uint16_t csum, uint32_t old,
                                        uint32_t new_)
{
    csum =
        qw_csum_update16(csum, (uint16_t)(old >> 16), (uint16_t)(new_ >> 16));
    return qw_csum_update16(csum, (uint16_t)old, (uint16_t)new_);
}

#endif /* QW_WIRE_H */
