# s85_qdb_dom0.sh: the test tool itself. qdb-dom0 must behave like dom0's
# daemon, or the suite's QubesDB checks (s90_final.sh) would prove nothing.
# Runs its own instance; the firewall is not involved.

qdbdom0_behaves() {
    local d="$TOPO_RUN/qd" pid out
    mkdir -p "$d"
    printf '/b = 2\n/a = 1\n/c/d = 3\n/empty =\n' >"$d/db"
    "$TOPO_B/qdb-dom0" serve --db "$d/db" --vm "$d/vm" --ctl "$d/ctl" \
        >"$d/log" 2>&1 &
    pid=$!
    for _ in $(seq 30); do [ -S "$d/ctl" ] && break; sleep 0.1; done
    out=$(python3 "$E2E_DIR/qdbvm.py" "$d/vm" "$d/ctl" "$TOPO_B/qdb-dom0" 2>&1)
    kill $pid
    wait $pid 2>/dev/null
    echo "$out" | grep -v '^ok ' | sed 's/^/    /'
    expect 0 "$(echo "$out" | grep -vc '^ok ')" "every qdb-dom0 check passed"
    expect_ge 14 "$(echo "$out" | grep -c '^ok ')" "all checks ran"
}
e2e_add qdbdom0_behaves "qdb-dom0 acts as dom0's QubesDB daemon (order, push/ack, validation)"
