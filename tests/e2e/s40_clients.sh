# s40_clients.sh: isolation, spoofing, IPv6, clients coming and going.

clients_isolated() {
    accept_all $C1 $C2
    c2 python3 -u "$E2E_DIR/probe.py" sink tcp 0.0.0.0 5557 3 \
        >"$TOPO_RUN/sink.c2" 2>&1 &
    local sp=$!
    wait_ready "$TOPO_RUN/sink.c2"
    expect_any "timeout prohibited" "$(probe c1 tcp $C2 5557 --timeout 1)" \
        "client to client TCP blocked although the rules accept all"
    expect 0 "$(c1 ping -c1 -W1 $C2 | grep -c ' 0% packet loss')" \
        "client to client ping blocked"
    wait $sp
    expect 0 "$(grep -vc listening "$TOPO_RUN/sink.c2")" "c2 saw nothing"
    expect_ge 1 "$(counter c1 client_to_client)" "counted"
}
e2e_add clients_isolated "client to client blocked"

clients_spoof() {
    accept_all $C1
    up python3 -u "$E2E_DIR/probe.py" sink udp $WEB 5558 3 \
        >"$TOPO_RUN/sink.spoof" 2>&1 &
    local sp=$!
    wait_ready "$TOPO_RUN/sink.spoof"
    ip -n ${TOPO_P}c1 addr add 10.137.0.99/32 dev eth0
    c1 python3 -c "
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('10.137.0.99', 0))
for i in range(5): s.sendto(b'spoof', ('$WEB', 5558))
s2 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s2.bind(('$C1', 0))
s2.sendto(b'real', ('$WEB', 5558))
"
    wait $sp
    ip -n ${TOPO_P}c1 addr del 10.137.0.99/32 dev eth0
    expect 1 "$(grep -vc listening "$TOPO_RUN/sink.spoof")" \
        "uplink got only the datagram with the real source"
    expect_ge 5 "$(counter c1 spoofed_source_from_client)" "spoofed ones counted"
}
e2e_add clients_spoof "spoofed source from a client dropped"

clients_ipv6() {
    accept_all $C2
    # c2's IPv6 rule tree (dom0 writes one per address family).
    rules fd09:24ef:4179::a89:b <<R
action=accept dst6=fd09:24ef:4179::/48
action=accept proto=udp dstports=53-53
R
    local before after seen
    before=$(counter c2 ipv6)
    up python3 "$E2E_DIR/probe.py" sniff eth0 0x86dd 3 \
        >"$TOPO_RUN/sniff6" &
    local sp=$!
    wait_ready "$TOPO_RUN/sniff6"
    c2 ip -6 addr add fd09:24ef:4179::a89:b/128 dev eth0 nodad 2>/dev/null
    c2 ip -6 route add default dev eth0 2>/dev/null
    c2 ping -6 -c3 -i0.2 -W1 fd09:24ef:4179::1 >/dev/null 2>&1
    c2 python3 -c "
import socket
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
for i in range(3): s.sendto(b'v6', ('fd09:24ef:4179::1', 53))
" 2>/dev/null
    wait $sp
    after=$(counter c2 ipv6)
    expect 0 "$(sniff_count "$TOPO_RUN/sniff6")" "no IPv6 frame reached the uplink"
    expect_ge 3 "$((after - before))" "IPv6 frames dropped and counted"
    expect_match "open*" "$(probe c2 tcp $WEB 80 --send $'GET / HTTP/1.0\r\n\r\n')" \
        "an IPv6 rule tree with dst6 rules leaves IPv4 alone"
    c2 ip -6 addr del fd09:24ef:4179::a89:b/128 dev eth0 2>/dev/null
}
e2e_add clients_ipv6 "IPv6 dropped and counted"

clients_come_and_go() {
    local ip=10.137.0.12 mac out
    rules $ip <<R
action=accept proto=tcp dstports=80-80
R
    mac=$(topo_add_client c3 $ip)
    qctl vif-add c3 $ip "$mac" vif-c3 >/dev/null
    expect_match "open*" "$(probe c3 tcp $WEB 80 --send $'GET / HTTP/1.0\r\n\r\n')" \
        "c3 attached with its rules"
    qctl vif-rm c3 >/dev/null
    topo_del_client c3
    # dom0 writes the new qube's rules before its vif appears
    rules $ip <<R
action=accept proto=icmp
R
    mac=$(topo_add_client c4 $ip)
    qctl vif-add c4 $ip "$mac" vif-c4 >/dev/null
    expect prohibited "$(probe c4 tcp $WEB 80)" \
        "a new client with the same address does not inherit the old rules"
    expect 1 "$(inns c4 ping -c1 -W1 $WEB | grep -c ' 0% packet loss')" \
        "its own rules apply"
    out=$(probe c1 tcp $WEB 80 --send $'GET / HTTP/1.0\r\n\r\n')
    expect_match "open*" "$out" "other clients unaffected"
    qctl vif-rm c4 >/dev/null
    topo_del_client c4
    expect 0 "$(fw_alive; echo $?)" "still running after vifs vanished"
}
e2e_add clients_come_and_go "a client leaves, a new one with the same address gets only its own rules"

clients_vanish() {
    local ip=10.137.0.13 mac t0 t1
    accept_all $ip $C1
    mac=$(topo_add_client c5 $ip)
    qctl vif-add c5 $ip "$mac" vif-c5 >/dev/null
    expect_match "open*" "$(probe c5 tcp $WEB 80 --send $'GET / HTTP/1.0\r\n\r\n')" \
        "c5 attached"
    # The client's namespace (and so the firewall's vif-c5) disappears
    # before dom0 removes its keys.
    topo_del_client c5
    sleep 0.5
    t0=$(awk '{print $14 + $15}' /proc/"$(topo_fw_pid)"/stat)
    sleep 2
    t1=$(awk '{print $14 + $15}' /proc/"$(topo_fw_pid)"/stat)
    expect_any "0 1 2 3 4 5 6 7 8 9 10" "$((t1 - t0))" \
        "no busy loop on the vanished interface (CPU ticks in 2 s)"
    expect_match "open*" "$(probe c1 tcp $WEB 80 --send $'GET / HTTP/1.0\r\n\r\n')" \
        "other clients unaffected"
    # The qube comes back (new vif, new MAC): dom0 rewrites its keys.
    mac=$(topo_add_client c5 $ip)
    qctl vif-add c5 $ip "$mac" vif-c5 >/dev/null
    expect_match "open*" "$(probe c5 tcp $WEB 80 --send $'GET / HTTP/1.0\r\n\r\n')" \
        "c5 attached again"
    qctl vif-rm c5 >/dev/null
    topo_del_client c5
}
e2e_add clients_vanish "a client's interface vanishes before its keys: detached, no spin, comes back"
