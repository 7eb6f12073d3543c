/*
 * drop.h: every reason a frame can be dropped, in one enum.
 *
 * Each drop bumps a per-link, per-reason counter (qw_counter()). New
 * reasons are appended inside the group of the module that owns them; the
 * string is the stable name used in logs, pcap drop files and the stats
 * line (lower case, underscores).
 */
#ifndef QW_DROP_H
#define QW_DROP_H

#define QW_DROP_REASONS(X)                                                     \
    X(NONE, "none")                                                            \
    /* link layer (fw.c, arp.c) */                                             \
    X(ETH_SHORT, "eth_short")                                                  \
    X(ETH_NOT_FOR_US, "eth_not_for_us")                                        \
    X(ETH_TYPE, "eth_type_unsupported")                                        \
    X(IPV6, "ipv6")                                                            \
    X(ARP_BAD, "arp_bad")                                                      \
    X(ARP_IGNORED, "arp_ignored")                                              \
    /* IPv4 (ip4.c, fw.c) */                                                   \
    X(IP_SHORT, "ip_short")                                                    \
    X(IP_VERSION, "ip_bad_version")                                            \
    X(IP_HLEN, "ip_bad_header_len")                                            \
    X(IP_LEN, "ip_bad_total_len")                                              \
    X(IP_CSUM, "ip_bad_checksum")                                              \
    X(IP_MARTIAN, "ip_martian_address")                                        \
    X(IP_OPTIONS, "ip_options_refused")                                        \
    X(TCP_BAD, "tcp_bad_header")                                               \
    X(UDP_BAD, "udp_bad_header")                                               \
    X(ICMP_BAD, "icmp_bad_header")                                             \
    X(L4_CSUM, "l4_bad_checksum")                                              \
    /* policy (fw.c) */                                                        \
    X(SPOOF_CLIENT, "spoofed_source_from_client")                              \
    X(SPOOF_UPLINK, "internal_source_from_uplink")                             \
    X(RULE, "rejected_by_rules")                                               \
    X(RULE_NO_RULES, "no_rules_yet")                                           \
    X(REJECT_LIMIT, "reject_rate_limited")                                     \
    X(CLIENT_TO_CLIENT, "client_to_client")                                    \
    X(TO_FIREWALL, "to_firewall")                                              \
    X(DHCP, "dhcp")                                                            \
    X(UPLINK_NEW, "new_connection_from_uplink")                                \
    X(TCP_NOT_SYN, "tcp_untracked_not_syn")                                    \
    X(ICMP_ERR_UNTRACKED, "icmp_error_untracked")                              \
    X(ICMP_TYPE, "icmp_type_not_allowed")                                      \
    X(BROADCAST, "ip_broadcast_or_multicast")                                  \
    X(TTL, "ttl_expired")                                                      \
    X(DF_TOO_BIG, "df_too_big")                                                \
    X(NOT_CONFIGURED, "not_configured")                                        \
    X(NO_LINK, "no_such_link")                                                 \
    X(TX_FULL, "tx_queue_full")                                                \
    /* conntrack / NAT (ct.c) */                                               \
    X(NAT_NO_PORT, "nat_no_free_port")                                         \
    X(NAT_TABLE_FULL, "nat_table_full")                                        \
    /* fragments (frag.c) */                                                   \
    X(FRAG_BAD, "frag_bad")                                                    \
    X(FRAG_OVERLAP, "frag_overlap")                                            \
    X(FRAG_TOO_BIG, "frag_datagram_too_big")                                   \
    X(FRAG_NO_MEM, "frag_no_memory")                                           \
    X(FRAG_TIMEOUT, "frag_timeout")                                            \
    /* DNS client (dns.c) */                                                   \
    X(DNS_BAD, "dns_bad_reply")                                                \
    X(DNS_UNEXPECTED, "dns_unexpected_reply")

enum qw_drop {
#define QW_DROP_ENUM(name, str) QW_DROP_##name,
    QW_DROP_REASONS(QW_DROP_ENUM)
#undef QW_DROP_ENUM
        QW_DROP__COUNT
};

/* Stable name of a reason ("spoofed_source_from_client"); never NULL. */
const char *qw_drop_name(enum qw_drop reason);

#endif /* QW_DROP_H */
