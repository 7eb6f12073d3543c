# s10_rules.sh: every rule field, first match, numbering gaps, rejects.

rules_action() {
    rules $C1 <<R
action=accept proto=tcp dstports=80-80
action=drop proto=tcp dstports=8080-8080
R
    expect "open HTTP/1.0 200 OK" "$(probe c1 tcp $WEB 80 --send $'GET / HTTP/1.0\r\n\r\n')" \
        "accept: tcp :80 passes"
    expect prohibited "$(probe c1 tcp $WEB 8080)" \
        "drop rule: client sees the ICMP reject (admin prohibited)"
    expect prohibited "$(probe c1 tcp $WEB 7)" "policy drop rejects too"
}
e2e_add rules_action "action accept/drop and the policy; rejects reach the client"

rules_dst4() {
    # host bits set on purpose: dom0 does not clear them
    rules $C1 <<R
action=accept dst4=10.139.0.9/30 proto=tcp
R
    expect_match "open*" "$(probe c1 tcp 10.139.0.10 80 --send $'GET / HTTP/1.0\r\n\r\n')" \
        "dst4 10.139.0.9/30 matches .10"
    expect_match "open*" "$(probe c1 tcp 10.139.0.11 80 --send $'GET / HTTP/1.0\r\n\r\n')" \
        "dst4 10.139.0.9/30 matches .11"
    expect prohibited "$(probe c1 tcp 10.139.0.12 80)" "dst4 /30 excludes .12"
}
e2e_add rules_dst4 "dst4 prefix (host bits ignored)"

rules_proto() {
    rules $C1 <<R
action=accept proto=udp
R
    expect "open 10.137.0.2:40001 6" \
        "$(probe c1 udp $WEB 9000 --sport 40001)" "proto=udp lets UDP through"
    expect prohibited "$(probe c1 tcp $WEB 9000)" "proto=udp does not cover TCP"
    expect "1" "$(c1 ping -c1 -W1 $WEB | grep -c 'Packet filtered')" \
        "proto=udp does not cover ICMP (ping: Packet filtered)"
}
e2e_add rules_proto "proto tcp/udp/icmp"

rules_dstports() {
    rules $C1 <<R
action=accept dstports=8000-8100
R
    expect "open HTTP/1.0 200 OK" "$(probe c1 tcp $WEB 8080 --send $'GET / HTTP/1.0\r\n\r\n')" \
        "8080 in 8000-8100 (tcp, no proto)"
    expect prohibited "$(probe c1 tcp $WEB 80)" "80 outside the range"
    expect prohibited "$(probe c1 udp $WEB 9000)" "udp 9000 outside the range"
    expect "1" "$(c1 ping -c1 -W1 $WEB | grep -c 'Packet filtered')" \
        "dstports without proto does not match ICMP"
}
e2e_add rules_dstports "dstports range (tcp and udp without proto)"

rules_icmptype() {
    rules $C1 <<R
action=accept proto=icmp icmptype=13
R
    expect "1" "$(c1 ping -c1 -W1 $WEB | grep -c 'Packet filtered')" \
        "echo request rejected when only type 13 is allowed"
    rules $C1 <<R
action=accept proto=icmp icmptype=8
R
    expect "1" "$(c1 ping -c1 -W1 $WEB | grep -c ' 0% packet loss')" \
        "echo request (type 8) accepted"
}
e2e_add rules_icmptype "icmptype"

rules_specialtarget() {
    rules $C1 <<R
action=accept specialtarget=dns
R
    expect "$WEB" "$(c1 dig +short +time=2 +tries=1 @$TOPO_DNS1 allowed.test)" \
        "udp dns to the primary resolver"
    expect "$WEB" "$(c1 dig +short +tcp +time=2 +tries=1 @$TOPO_DNS2 allowed.test)" \
        "tcp dns to the secondary resolver"
    expect prohibited "$(probe c1 udp $WEB 53 --timeout 1)" \
        "port 53 on a non-DNS address is not specialtarget"
    rules $C1 <<R
action=accept proto=tcp specialtarget=dns
R
    expect "$WEB" "$(c1 dig +short +tcp +time=2 +tries=1 @$TOPO_DNS1 allowed.test)" \
        "proto=tcp specialtarget=dns: tcp passes"
    expect_match "*host unreachable*" \
        "$(c1 dig +time=1 +tries=1 @$TOPO_DNS1 allowed.test 2>&1 | head -1)" \
        "proto=tcp specialtarget=dns: udp is rejected (no over-match)"
    expect prohibited "$(probe c1 tcp $WEB 80)" \
        "proto=tcp specialtarget=dns does not accept other tcp"
}
e2e_add rules_specialtarget "specialtarget=dns (with and without proto)"

rules_dsthost() {
    rules $C1 <<R
action=drop dsthost=blocked.test
action=accept proto=tcp
R
    sleep 1 # the firewall resolves the name through the uplink
    expect prohibited "$(probe c1 tcp 10.139.0.11 80)" \
        "dsthost=blocked.test drop matches its address"
    expect_match "open*" "$(probe c1 tcp 10.139.0.12 80 --send $'GET / HTTP/1.0\r\n\r\n')" \
        "other addresses reach the next rule"
}
e2e_add rules_dsthost "dsthost (name resolved by the firewall)"

rules_first_match_gaps() {
    rules $C1 <<R
0000: action=drop proto=tcp dst4=10.139.0.10/32 dstports=80-80
0002: action=accept proto=tcp dstports=80-80
0007: action=accept proto=tcp dstports=8080-8080
0003: action=drop proto=tcp dstports=8080-8080
R
    expect prohibited "$(probe c1 tcp $WEB 80)" "first match wins (0000 before 0002)"
    expect_match "open*" "$(probe c1 tcp 10.139.0.12 80 --send $'GET / HTTP/1.0\r\n\r\n')" \
        "rule after a gap (0002) is used"
    expect prohibited "$(probe c1 tcp $WEB 8080)" \
        "numeric order, not file order (0003 before 0007)"
}
e2e_add rules_first_match_gaps "first match in numeric order, gaps in numbering"

rules_fail_closed() {
    rules $C2 <<R
action=accept
R
    rules $C1 <<R
policy: -
action=accept
R
    expect_any "prohibited timeout" "$(probe c1 tcp $WEB 80 --timeout 1)" \
        "missing policy: the client fails closed"
    expect_match "open*" "$(probe c2 tcp $WEB 80 --send $'GET / HTTP/1.0\r\n\r\n')" \
        "missing policy: the other client is unaffected"
    rules $C1 <<R
action=accept proto=tcp dstports=80-80
action=accept proto=tcp dstports=90-80
R
    expect_any "prohibited timeout" "$(probe c1 tcp $WEB 80 --timeout 1)" \
        "malformed rule (90-80): the whole client fails closed"
    rules $C1 <<R
action=accept proto=tcp dstports=80-80 color=blue
R
    expect_any "prohibited timeout" "$(probe c1 tcp $WEB 80 --timeout 1)" \
        "unknown key: fails closed"
    expect_match "open*" "$(probe c2 tcp $WEB 80 --send $'GET / HTTP/1.0\r\n\r\n')" \
        "malformed rules: the other client is unaffected"
    expect 0 "$(fw_alive; echo $?)" "qwall-hosted is still running"
    accept_all $C1
    expect_match "open*" "$(probe c1 tcp $WEB 80 --send $'GET / HTTP/1.0\r\n\r\n')" \
        "a good commit restores the client"
}
e2e_add rules_fail_closed "missing policy / malformed rule: fail closed per client"

rules_drop_silently() {
    rules $C1 <<R
action=accept proto=tcp dstports=80-80
R
    topo_stop_fw
    start_fw --drop-silently
    expect timeout "$(probe c1 tcp $WEB 8080 --timeout 1)" \
        "--drop-silently: no ICMP reject, the client times out"
    expect_match "open*" "$(probe c1 tcp $WEB 80 --send $'GET / HTTP/1.0\r\n\r\n')" \
        "--drop-silently: accepted traffic still flows"
    topo_stop_fw
    start_fw
}
e2e_add rules_drop_silently "--drop-silently turns rejects into silent drops"
