# s50_robust.sh: hostile clients must not disturb others.

robust_garbage_flood() {
    accept_all $C1 $C2
    local ok=0 i
    # c2 sends malformed frames and floods while c1 works normally.
    c2 python3 "$E2E_DIR/probe.py" garbage eth0 3000 >/dev/null 2>&1 &
    local g=$!
    c2 python3 "$E2E_DIR/probe.py" flood $WEB 9999 4 >/dev/null 2>&1 &
    local f=$!
    c2 ping -f -c 3000 $FWIP >/dev/null 2>&1 &
    local p=$!
    for i in 1 2 3 4 5; do
        [ "$(probe c1 tcp $WEB 80 --timeout 2 --send $'GET / HTTP/1.0\r\n\r\n')" = "open HTTP/1.0 200 OK" ] &&
            ok=$((ok + 1))
        sleep 0.3
    done
    wait $g $f $p
    expect 5 "$ok" "c1's connections all succeed during c2's garbage and flood"
    expect_ge 1 "$(c1 ping -c3 -i0.2 -W1 $WEB | grep -c ' 0% packet loss')" \
        "c1's ping unaffected"
    expect_ge 100 "$(topo_stats | awk '$1 == "link" && $3 == "c2" {
        for (i = 4; i <= NF; i++) if ($i ~ /^drops=/) { sub("drops=", "", $i); print $i } }')" \
        "c2's garbage counted as drops on its own link"
    expect 0 "$(fw_alive; echo $?)" "process still up"
}
e2e_add robust_garbage_flood "a client sending garbage and floods does not disturb another"

robust_qdb_reconnect() {
    rules $C1 <<R
action=accept proto=tcp dstports=80-80
R
    # dom0's daemon restarts (with the same database): the firewall
    # reconnects, reads the dump again and keeps its clients and rules.
    qctl dump | sed 's/ = $/ =/' >"$TOPO_RUN/db.now"
    topo_kill qdb-dom0
    topo_start_qdb "$TOPO_RUN/db.now"
    expect 0 "$(qctl wait-synced 10 >/dev/null; echo $?)" \
        "the firewall reconnected and synced"
    expect_match "open*" "$(probe c1 tcp $WEB 80 --send $'GET / HTTP/1.0\r\n\r\n')" \
        "c1 still attached, its accept rule still applies"
    expect prohibited "$(probe c1 tcp $WEB 8080)" "and its policy"
    accept_all $C1
    expect_match "open*" "$(probe c1 tcp $WEB 8080 --send $'GET / HTTP/1.0\r\n\r\n')" \
        "live changes flow over the new connection"
}
e2e_add robust_qdb_reconnect "QubesDB daemon restart: reconnect, resync, clients kept"
