# s80_observe.sh: what qwall-hosted reports (pcap, counters, signals).

observe_pcap_and_stats() {
    rules $C1 <<R
action=accept proto=tcp dstports=80-80
R
    probe c1 tcp $WEB 80 --send $'GET / HTTP/1.0\r\n\r\n' >/dev/null
    probe c1 tcp $WEB 8080 --timeout 1 >/dev/null
    topo_stats >/dev/null # SIGUSR1 also flushes the capture files
    local d="$TOPO_RUN/pcap" n
    n=$(python3 "$E2E_DIR/probe.py" pcap "$d/vif-c1.pcap" --dport 80)
    expect_ge 3 "$n" "vif-c1.pcap holds the client's HTTP exchange"
    n=$(python3 "$E2E_DIR/probe.py" pcap "$d/up0.pcap" --src $FWIP --dport 80)
    expect_ge 3 "$n" "up0.pcap holds it NATed to 10.137.0.2"
    n=$(python3 "$E2E_DIR/probe.py" comments "$d/drops.pcapng" |
        grep -c 'link=vif-c1 reason=rejected_by_rules')
    expect_ge 1 "$n" "drops.pcapng: the rejected SYN with its reason"
    expect_ge 1 "$(counter c1 rejected_by_rules)" "stats file counts it"
    expect_match "*summary stats:*" "$(grep summary "$TOPO_RUN/stats")" \
        "stats file carries the summary line"
}
e2e_add observe_pcap_and_stats "--pcap captures (per link, drops with reasons) and --stats"
