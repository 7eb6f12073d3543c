# s20_conn.sh: connections, NAT, rule changes on live connections.

# A TCP connection to the echo port held open by probe.py hold; each
# hold_say sends a line and prints "ok" or "fail <why>".
hold_start() {
    rm -f "$TOPO_RUN/hold.in" "$TOPO_RUN/hold.out"
    mkfifo "$TOPO_RUN/hold.in"
    c1 python3 -u "$E2E_DIR/probe.py" hold $WEB 7 <"$TOPO_RUN/hold.in" \
        >"$TOPO_RUN/hold.out" 2>&1 &
    HOLD_PID=$!
    exec 8>"$TOPO_RUN/hold.in"
    for _ in $(seq 30); do
        grep -q connected "$TOPO_RUN/hold.out" && return 0
        sleep 0.1
    done
    return 1
}

hold_say() {
    local n
    n=$(wc -l <"$TOPO_RUN/hold.out")
    echo "line" >&8
    for _ in $(seq 40); do
        [ "$(wc -l <"$TOPO_RUN/hold.out")" -gt "$n" ] && break
        sleep 0.1
    done
    tail -n 1 "$TOPO_RUN/hold.out"
}

hold_stop() {
    exec 8>&-
    kill "$HOLD_PID" 2>/dev/null
    wait "$HOLD_PID" 2>/dev/null
    rm -f "$TOPO_RUN/hold.in"
}

conn_rule_change() {
    rules $C1 <<R
action=accept proto=tcp dstports=7-7
action=accept proto=tcp dstports=80-80
R
    if ! hold_start; then
        expect connected "$(cat "$TOPO_RUN/hold.out")" "hold a tcp connection"
        hold_stop
        return
    fi
    expect ok "$(hold_say)" "established connection works"
    rules $C1 <<R
action=accept proto=tcp dstports=7-7
R
    expect ok "$(hold_say)" "it survives an unrelated rule change"
    expect prohibited "$(probe c1 tcp $WEB 80)" "(the change took effect)"
    rules $C1 <<R
action=accept proto=tcp dstports=80-80
R
    expect_match "fail*" "$(hold_say)" "a tightening change cuts it"
    hold_stop
    accept_all $C1
}
e2e_add conn_rule_change "established TCP survives an unrelated change, cut by a tightening one"

conn_nat_ports() {
    accept_all $C1 $C2
    expect "open 10.137.0.2:41234" "$(probe c1 tcp $WEB 9000 --sport 41234)" \
        "tcp: uplink sees the firewall's address and the client's port"
    expect "open 10.137.0.2:41235 6" "$(probe c1 udp $WEB 9000 --sport 41235)" \
        "udp: source port preserved"
    local a b
    a=$(probe c1 udp $WEB 9000 --sport 42000)
    b=$(probe c2 udp $WEB 9000 --sport 42000)
    expect "open 10.137.0.2:42000 6" "$a" "first client keeps port 42000"
    expect_match "open 10.137.0.2:* 6" "$b" "second client is NATed too"
    if [ "$b" = "open 10.137.0.2:42000 6" ]; then
        expect "another port" "$b" "port clash resolved by another port"
    fi
}
e2e_add conn_nat_ports "SNAT to the uplink address with source-port preservation"

conn_icmp_errors_natted() {
    accept_all $C1
    expect refused "$(probe c1 udp $WEB 9999 --timeout 2)" \
        "ICMP port unreachable for a NATed UDP flow reaches the client"
    expect refused "$(probe c1 tcp $WEB 9999)" "TCP RST for a NATed flow"
}
e2e_add conn_icmp_errors_natted "ICMP errors for a NATed flow are translated back"

conn_uplink_new() {
    accept_all $C1
    ip -n ${TOPO_P}up route add $C1/32 via $FWIP dev eth0 2>/dev/null
    c1 python3 -u "$E2E_DIR/probe.py" sink tcp 0.0.0.0 5555 4 \
        >"$TOPO_RUN/sink.tcp" 2>&1 &
    local sp=$!
    c1 python3 -u "$E2E_DIR/probe.py" sink udp 0.0.0.0 5556 4 \
        >"$TOPO_RUN/sink.udp" 2>&1 &
    local sp2=$!
    wait_ready "$TOPO_RUN/sink.tcp"
    wait_ready "$TOPO_RUN/sink.udp"
    expect timeout "$(probe up tcp $C1 5555 --timeout 1)" \
        "new TCP connection from the uplink to a client is dropped"
    probe up udp $C1 5556 --timeout 1 >/dev/null
    expect_any "timeout prohibited refused" "$(probe up tcp $FWIP 22 --timeout 1)" \
        "the firewall's own address offers nothing to the uplink"
    wait $sp $sp2
    expect 0 "$(grep -vc listening "$TOPO_RUN/sink.tcp")" \
        "the client saw no TCP connection"
    expect 0 "$(grep -vc listening "$TOPO_RUN/sink.udp")" \
        "the client saw no UDP datagram"
    expect_ge 1 "$(counter uplink new_connection_from_uplink)" \
        "counted on the uplink"
    ip -n ${TOPO_P}up route del $C1/32 2>/dev/null
}
e2e_add conn_uplink_new "new connections from the uplink are dropped"
