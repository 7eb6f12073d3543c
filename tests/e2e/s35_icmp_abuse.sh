# s35_icmp_abuse.sh: ICMP that a client must not be able to push through
# an existing connection (breaker findings F1, F2 in /work/notes/h1-fw.md;
# unit repros in the core's attack tests). What the uplink receives is the
# oracle.

icmp_error_to_other_host() {
    rules $C1 <<R
action=accept dst4=$WEB/32 proto=tcp dstports=7-7
R
    if ! hold_start; then
        expect connected "$(cat "$TOPO_RUN/hold.out")" "hold a tcp connection"
        hold_stop
        return
    fi
    local cport
    # Only the live connection: an earlier scenario's TIME-WAIT socket to
    # the same port would otherwise be picked (with a state filter, ss
    # omits the State column, so the local address is field 3).
    cport=$(c1 ss -Htn state established "dst $WEB:7" |
        awk '{split($3, a, ":"); print a[2]; exit}')
    # Control: the same error sent to the connection's own peer is
    # legitimate (it is about a packet that peer sent) and gets through.
    up python3 "$E2E_DIR/probe.py" sniff eth0 0x0800 2 --proto 1 \
        --dst $WEB >"$TOPO_RUN/sniff.f1ok" &
    local sp=$!
    wait_ready "$TOPO_RUN/sniff.f1ok"
    c1 python3 "$E2E_DIR/probe.py" icmp $WEB 3 0 \
        --quote "$WEB:7-$C1:$cport" >/dev/null
    wait $sp
    expect 1 "$(sniff_count "$TOPO_RUN/sniff.f1ok")" \
        "control: an error about the connection reaches its peer"
    up python3 "$E2E_DIR/probe.py" sniff eth0 0x0800 2 --proto 1 \
        --dst $TOPO_OTHER_IP >"$TOPO_RUN/sniff.f1" &
    sp=$!
    wait_ready "$TOPO_RUN/sniff.f1"
    # A "port unreachable" quoting the connection's reply packet, sent to
    # a host the rules do not allow, with 400 bytes of payload.
    c1 python3 "$E2E_DIR/probe.py" icmp $TOPO_OTHER_IP 3 0 \
        --quote "$WEB:7-$C1:$cport" --pad 400 >/dev/null
    wait $sp
    hold_stop
    expect 0 "$(sniff_count "$TOPO_RUN/sniff.f1")" \
        "an ICMP error quoting a live connection does not reach another host"
    accept_all $C1
}
e2e_add icmp_error_to_other_host "client ICMP error aimed at another host is dropped (F1)"

icmp_type_rides_echo() {
    # Control: with every ICMP type allowed the sniffer sees the request.
    rules $C1 <<R
action=accept proto=icmp
R
    up python3 "$E2E_DIR/probe.py" sniff eth0 0x0800 1.5 --proto 1 \
        --icmp-type 13 >"$TOPO_RUN/sniff.f2ok" &
    local sp=$!
    wait_ready "$TOPO_RUN/sniff.f2ok"
    c1 python3 "$E2E_DIR/probe.py" icmp $WEB 13 0x4343 >/dev/null
    wait $sp
    expect 1 "$(sniff_count "$TOPO_RUN/sniff.f2ok")" \
        "control: an allowed timestamp request reaches the uplink"
    rules $C1 <<R
action=accept proto=icmp icmptype=8
R
    up python3 "$E2E_DIR/probe.py" sniff eth0 0x0800 2 --proto 1 \
        --icmp-type 13 >"$TOPO_RUN/sniff.f2" &
    sp=$!
    wait_ready "$TOPO_RUN/sniff.f2"
    c1 python3 "$E2E_DIR/probe.py" icmp $WEB 8 0x4242 >/dev/null
    sleep 0.2
    c1 python3 "$E2E_DIR/probe.py" icmp $WEB 13 0x4242 >/dev/null
    wait $sp
    expect 0 "$(sniff_count "$TOPO_RUN/sniff.f2")" \
        "a timestamp request does not ride an echo connection's id"
    accept_all $C1
}
e2e_add icmp_type_rides_echo "ICMP query types are judged by the rules, not by an echo's entry (F2)"
