# s30_ip.sh: ICMP to the firewall, TTL, fragments, path MTU, DNS.

ip_ping_firewall() {
    rules $C1 <<R
action=accept proto=tcp dstports=80-80
R
    expect 1 "$(c1 ping -c2 -i0.2 -W1 $FWIP | grep -c ' 0% packet loss')" \
        "the firewall answers ping whatever the rules say"
    expect_any "prohibited refused" "$(probe c1 tcp $FWIP 22 --timeout 1)" \
        "other traffic to the firewall is rejected"
}
e2e_add ip_ping_firewall "ping of the firewall answered"

ip_dns() {
    rules $C1 <<R
action=accept specialtarget=dns
R
    expect "$WEB" "$(c1 dig +short +time=2 +tries=1 @$TOPO_DNS1 server.test)" \
        "DNS through specialtarget=dns to the uplink resolver"
    expect "NXDOMAIN" "$(c1 dig +time=2 +tries=1 @$TOPO_DNS1 nothing.test | grep -o NXDOMAIN | head -1)" \
        "the resolver's answers come back untouched (NXDOMAIN)"
}
e2e_add ip_dns "DNS via specialtarget=dns"

ip_fragments() {
    accept_all $C1
    expect_match "open 10.137.0.2:* 4000" "$(probe c1 udp $WEB 9000 --size 4000)" \
        "a 4,000-byte UDP datagram (3 fragments) arrives whole"
    expect "open 4000" "$(probe c1 udp $WEB 7 --size 4000 --len)" \
        "the 4,000-byte echo comes back through the firewall in fragments"
    expect "open 20000" "$(probe c1 udp $WEB 7 --size 20000 --len)" \
        "a 20,000-byte datagram both ways"
}
e2e_add ip_fragments "fragmented UDP both ways (reassembly, refragmentation)"

ip_ttl() {
    accept_all $C1
    local out hop1
    out=$(c1 traceroute -n -q1 -w1 -m3 $WEB 2>&1)
    hop1=$(echo "$out" | awk '$1 == 1 {print $2}')
    expect "$FWIP" "$hop1" "TTL 1: time-exceeded from the firewall (traceroute hop 1)"
    expect_match "*$WEB*" "$(echo "$out" | awk '$1 == 2')" \
        "hop 2 is the destination (port unreachable came back)"
}
e2e_add ip_ttl "TTL expiry answered with time-exceeded (traceroute)"

ip_df_too_big() {
    accept_all $C1
    # A client link with a larger MTU than the uplink's 1500.
    ip -n ${TOPO_P}c1 link set eth0 mtu 1600
    ip -n ${TOPO_P}fw link set vif-c1 mtu 1600
    local out
    out=$(c1 ping -M do -s 1560 -c2 -i0.3 -W1 $WEB 2>&1)
    expect_match "*mtu*1500*" "$out" \
        "DF packet too big for the uplink: frag-needed with MTU 1500"
    out=$(probe c1 udp $WEB 9000 --size 1560)
    expect_match "open 10.137.0.2:* 1560" "$out" \
        "the same size without DF is fragmented and delivered"
    ip -n ${TOPO_P}fw link set vif-c1 mtu 1500
    ip -n ${TOPO_P}c1 link set eth0 mtu 1500
    c1 ip route flush cache 2>/dev/null
}
e2e_add ip_df_too_big "DF and too big: ICMP fragmentation-needed"

ip_checksum_offload() {
    accept_all $C1
    # Client checksum offload on (the default here): the firewall receives
    # partial checksums (TP_STATUS_CSUMNOTREADY -> QW_FRAME_CSUM_BLANK) and
    # must complete them; off: full checksums, which it must keep valid.
    local mode
    for mode in on off; do
        c1 ethtool -K eth0 tx $mode >/dev/null 2>&1
        expect "open HTTP/1.0 200 OK" \
            "$(probe c1 tcp $WEB 80 --send $'GET / HTTP/1.0\r\n\r\n')" \
            "tcp with client checksum offload $mode"
        expect_match "open 10.137.0.2:* 100" "$(probe c1 udp $WEB 9000 --size 100)" \
            "udp with client checksum offload $mode"
    done
    c1 ethtool -K eth0 tx on >/dev/null 2>&1
    expect 0 "$(counter c1 l4_bad_checksum)" "no checksum drops"
}
e2e_add ip_checksum_offload "partial checksums (offload on) and full ones (off)"
