# s60_dns.sh: dsthost rules follow DNS (core/dns.c, docs/dns.md).
#
#   qwe-c1, qwe-c2 ---- qwall-hosted ---- qwe-up
#                                          10.139.1.53  dnsmasq "dyn": zone
#                                                       .dyn from a hosts
#                                                       file rewritten by
#                                                       the scenarios (HUP)
#                                          10.139.1.54  scripted responder
#                                                       (spoofs, then answers)
#                                          10.139.0.10 .11 .12  web :80
#                                          10.139.0.10  :443 whoami (here)
#
# The scenarios that need changing records point the firewall at the "dyn"
# server through QubesDB (/qubes-primary-dns, /qubes-secondary-dns, as
# dom0 would after a netvm DNS change) and restore the suite's servers
# afterwards. TTLs are 1 s at the server; qwall clamps them to 30 s, so a
# change is seen at the refresh 21..24 s after an answer.

DNS_DYN=10.139.1.53
DNS_SCRIPTED=10.139.1.54
DNS_READY=0

# Scripted responder: for every A query it first sends forged replies (from
# another address; from the right address with another id), then, 0.3 s
# later, the real answer (REAL, ttl 300).
DNS_RESPONDER='
import socket, struct, sys, time
me, other, real, fake = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((me, 53))
o = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
o.bind((other, 53))
def reply(q, qid, addr):
    qend = 12
    while q[qend]:
        qend += q[qend] + 1
    qend += 5
    h = struct.pack(">HHHHHH", qid, 0x8180, 1, 1, 0, 0)
    rr = struct.pack(">HHHIH", 0xc00c, 1, 1, 300, 4) + socket.inet_aton(addr)
    return h + q[12:qend] + rr
while True:
    q, peer = s.recvfrom(2048)
    if len(q) < 17:
        continue
    qid = struct.unpack(">H", q[:2])[0]
    print("query", peer[0], peer[1], qid, flush=True)
    o.sendto(reply(q, qid, fake), peer)
    s.sendto(reply(q, qid ^ 0x5a5a, fake), peer)
    time.sleep(0.3)
    s.sendto(reply(q, qid, real), peer)
'

dns_setup() {
    [ "$DNS_READY" = 1 ] && return 0
    ip -n "$TOPO_UP" addr add $DNS_DYN/32 dev eth0 2>/dev/null
    ip -n "$TOPO_UP" addr add $DNS_SCRIPTED/32 dev eth0 2>/dev/null
    : >"$TOPO_RUN/dyn.hosts"
    topo_bg dnsdyn "$TOPO_UP" dnsmasq --conf-file=/dev/null \
        --keep-in-foreground --user=root --listen-address=$DNS_DYN \
        --bind-interfaces --port=53 --no-resolv --no-hosts --no-poll \
        --local=/dyn/ --addn-hosts="$TOPO_RUN/dyn.hosts" --local-ttl=1 \
        --log-queries --log-facility="$TOPO_RUN/dnsdyn.queries"
    topo_bg dnsscripted "$TOPO_UP" python3 -c "$DNS_RESPONDER" \
        $DNS_SCRIPTED $TOPO_OTHER_IP $WEB $TOPO_OTHER_IP
    topo_bg web443 "$TOPO_UP" python3 -c "$TOPO_WHOAMI" $WEB 443
    topo_wait_port "$TOPO_UP" udp $DNS_DYN 53 &&
        topo_wait_port "$TOPO_UP" udp $DNS_SCRIPTED 53 &&
        topo_wait_port "$TOPO_UP" tcp $WEB 443 && DNS_READY=1
}

# dns_hosts "ADDR NAME" ...: the dyn zone's records, then reload dnsmasq.
dns_hosts() {
    printf '%s\n' "$@" >"$TOPO_RUN/dyn.hosts"
    kill -HUP "$(cat "$TOPO_RUN/pids/dnsdyn.pid")"
}

dns_servers() { # PRIMARY SECONDARY: what dom0 would write
    qctl write /qubes-primary-dns "$1" >/dev/null
    qctl write /qubes-secondary-dns "$2" >/dev/null
}

dns_restore() {
    dns_servers "$TOPO_DNS1" "$TOPO_DNS2"
    accept_all $C1 $C2
}

# Lines of the firewall log so far (a mark for dns_wait_log).
dns_mark() { wc -l <"$TOPO_RUN/qwall.log"; }

# dns_wait_log MARK REGEX SECONDS: wait for a log line after MARK.
dns_wait_log() {
    local _
    for _ in $(seq $(($3 * 10))); do
        if tail -n +$(($1 + 1)) "$TOPO_RUN/qwall.log" | grep -Eq "$2"; then
            echo found
            return 0
        fi
        sleep 0.1
    done
    echo "missing"
    return 1
}

dns_queries() { # NAME: A queries dnsmasq "dyn" received for NAME
    grep -c "query\[A\] $1 from" "$TOPO_RUN/dnsdyn.queries" 2>/dev/null
}

dns_http() { # NS ADDR: first line of an HTTP reply, or the probe outcome
    probe "$1" tcp "$2" 80 --timeout 2 --send $'GET / HTTP/1.0\r\n\r\n'
}

dns_follows_change() {
    local m t0
    dns_setup || { expect ready "not ready" "dns test servers"; return; }
    dns_hosts "$WEB flip.dyn"
    dns_servers $DNS_DYN $DNS_DYN
    m=$(dns_mark)
    rules $C1 <<R
action=accept dsthost=flip.dyn proto=tcp
R
    expect found "$(dns_wait_log "$m" 'dns: flip.dyn resolved \(10.139.0.10' 5)" \
        "flip.dyn resolved through the uplink"
    expect "open HTTP/1.0 200 OK" "$(dns_http c1 $WEB)" \
        "accept dsthost: the name's address passes"
    expect prohibited "$(dns_http c1 $TOPO_OTHER_IP)" "other addresses do not"
    dns_hosts "$TOPO_OTHER_IP flip.dyn"
    m=$(dns_mark)
    expect found "$(dns_wait_log "$m" 'dns: flip.dyn changed \(10.139.0.12' 40)" \
        "the change is seen at the refresh (ttl clamped to 30 s)"
    t0=$(date +%s)
    expect "open HTTP/1.0 200 OK" "$(dns_http c1 $TOPO_OTHER_IP)" \
        "the rule follows: the new address passes"
    expect "open HTTP/1.0 200 OK" "$(dns_http c1 $WEB)" \
        "the previous address still passes during its grace (one ttl)"
    sleep $((t0 + 32 - $(date +%s)))
    expect prohibited "$(dns_http c1 $WEB)" \
        "after the grace the previous address is rejected"
    expect "open HTTP/1.0 200 OK" "$(dns_http c1 $TOPO_OTHER_IP)" \
        "the new address still passes"
    dns_restore
}
e2e_add dns_follows_change "dsthost follows a DNS change (refresh, previous-set grace)"

dns_fail_recover() {
    local m
    dns_setup || { expect ready "not ready" "dns test servers"; return; }
    dns_hosts "$WEB flip.dyn"
    dns_servers $DNS_DYN $DNS_DYN
    m=$(dns_mark)
    rules $C1 <<R
action=accept dsthost=late.dyn proto=tcp
R
    rules $C2 <<R
action=drop dsthost=late.dyn
action=accept proto=tcp
R
    expect found "$(dns_wait_log "$m" 'dns: late.dyn failed \(nxdomain' 5)" \
        "an unknown name fails (nxdomain), logged once"
    expect prohibited "$(dns_http c1 $TOPO_BLOCKED_IP)" \
        "unresolved: an accept dsthost rule matches nothing"
    expect prohibited "$(dns_http c2 $WEB)" \
        "unresolved: a drop dsthost rule matches everything"
    m=$(dns_mark)
    dns_hosts "$TOPO_BLOCKED_IP late.dyn"
    expect found "$(dns_wait_log "$m" 'dns: late.dyn resolved \(10.139.0.11' 40)" \
        "the name resolves at a retry (backoff 1, 2, 4, ... s)"
    expect "open HTTP/1.0 200 OK" "$(dns_http c1 $TOPO_BLOCKED_IP)" \
        "resolved: the accept rule matches its address"
    expect "open HTTP/1.0 200 OK" "$(dns_http c2 $WEB)" \
        "resolved: the drop rule no longer matches other addresses"
    expect prohibited "$(dns_http c2 $TOPO_BLOCKED_IP)" \
        "resolved: the drop rule matches its address"
    expect 1 "$(grep -c 'dns: late.dyn failed' "$TOPO_RUN/qwall.log")" \
        "one failure line for the whole failing streak"
    dns_restore
}
e2e_add dns_fail_recover "a name that fails (accept: nothing, drop: everything) then recovers"

dns_spoof_ignored() {
    local m before before_new
    dns_setup || { expect ready "not ready" "dns test servers"; return; }
    before=$(counter uplink dns_unexpected_reply)
    before_new=$(counter uplink new_connection_from_uplink)
    dns_servers $DNS_SCRIPTED $DNS_SCRIPTED
    m=$(dns_mark)
    rules $C1 <<R
action=accept dsthost=spoof.dyn proto=tcp
R
    expect found "$(dns_wait_log "$m" 'dns: spoof.dyn resolved \(10.139.0.10' 5)" \
        "the real answer (0.3 s after the forgeries) is taken"
    expect 0 "$(tail -n +$((m + 1)) "$TOPO_RUN/qwall.log" | grep -c '10.139.0.12')" \
        "the forged address never appears"
    expect "open HTTP/1.0 200 OK" "$(dns_http c1 $WEB)" "the real address passes"
    expect prohibited "$(dns_http c1 $TOPO_OTHER_IP)" \
        "the forged address (reply from another server) is not allowed"
    # from another address the reply matches no reserved port: it never
    # reaches the DNS client; with another id it does and is refused there
    expect_ge $((before_new + 1)) "$(counter uplink new_connection_from_uplink)" \
        "the reply from another address is dropped as new_connection_from_uplink"
    expect_ge $((before + 1)) "$(counter uplink dns_unexpected_reply)" \
        "the reply with another id is counted as dns_unexpected_reply"
    dns_restore
}
e2e_add dns_spoof_ignored "a forged reply from another address or with another id is ignored"

dns_shared_one_query() {
    local m
    dns_setup || { expect ready "not ready" "dns test servers"; return; }
    dns_hosts "$WEB shared.dyn"
    dns_servers $DNS_DYN $DNS_DYN
    m=$(dns_mark)
    rules $C1 <<R
action=accept dsthost=shared.dyn proto=tcp
R
    rules $C2 <<R
action=accept dsthost=shared.dyn proto=tcp dstports=80-80
R
    expect found "$(dns_wait_log "$m" 'dns: shared.dyn resolved' 5)" "resolved"
    expect "open HTTP/1.0 200 OK" "$(dns_http c1 $WEB)" "c1 reaches the name"
    expect "open HTTP/1.0 200 OK" "$(dns_http c2 $WEB)" "c2 reaches the name"
    expect 1 "$(dns_queries shared.dyn)" \
        "two clients' rules, one name: one query upstream"
    dns_restore
}
e2e_add dns_shared_one_query "a name used by two clients is resolved by one query"

# CPU ticks (user + system) of the firewall process.
dns_cpu_ticks() {
    awk '{ print $14 + $15 }' "/proc/$(topo_fw_pid)/stat"
}

dns_idle() {
    local m c0 c1_ hz
    dns_setup || { expect ready "not ready" "dns test servers"; return; }
    m=$(dns_mark)
    rules $C1 <<R
policy: drop
action=accept dsthost=allowed.test proto=tcp dstports=443-443
action=accept specialtarget=dns
action=accept proto=icmp
R
    expect found "$(dns_wait_log "$m" 'dns: allowed.test resolved' 5)" \
        "allowed.test resolved"
    expect_match "open $FWIP:*" "$(probe c1 tcp $WEB 443 --timeout 2)" \
        "tcp 443 to the name's address works (seen from the uplink NATed)"
    expect prohibited "$(dns_http c1 $WEB)" "tcp 80 to it does not (policy drop)"
    expect "$WEB" "$(c1 dig +short +time=2 +tries=1 @$TOPO_DNS1 allowed.test)" \
        "specialtarget=dns lets the client resolve"
    expect 1 "$(c1 ping -c1 -W1 $WEB | grep -c ' 0% packet loss')" "icmp passes"
    # idle: 10 s without traffic; the firewall process should sleep
    hz=$(getconf CLK_TCK)
    c0=$(dns_cpu_ticks)
    sleep 10
    c1_=$(dns_cpu_ticks)
    echo "    note: idle cpu of qwall-hosted: $((c1_ - c0)) ticks of 1/$hz s in 10 s"
    expect 1 "$([ $((c1_ - c0)) -le $((hz / 10)) ] && echo 1 || echo 0)" \
        "idle firewall uses at most 1 % cpu ($((c1_ - c0)) ticks in 10 s)"
    dns_restore
}
e2e_add dns_idle "dsthost + specialtarget=dns + icmp, policy drop: works, then idles"
