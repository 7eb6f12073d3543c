#!/bin/bash
# demo.sh: qwall-hosted forwarding real traffic under Qubes rules (make demo).
#
# Needs root on Debian 12; installs what it lacks, builds, creates the
# topology below, shows allowed and rejected traffic, a live rule change, a
# name-based rule and the counters, then removes everything (also when
# interrupted; what a killed earlier run left is removed at start). Exits 1
# if any check failed.
#
#   qwd-work (client)            qwd-fw (firewall)            qwd-up ("sys-net")
#   eth0 10.137.0.10 <--veth--> vif-work                      eth0 10.137.0.1 (gateway)
#                                 qwall-hosted --uplink up0    10.139.0.10 web :80 :8080,
#   qwd-disp (client)             up0 <--------veth-------->       echo :7, whoami :9000
#   eth0 10.138.0.5  <--veth--> vif-disp                      10.139.0.11 "blocked.test" :80
#                                 qdb-dom0 (dom0's QubesDB)   10.139.1.1/.2 dnsmasq, zone
#                                 feeds rules and vifs             .test only, no upstream
#
# The clients' gateway is the firewall's own address 10.137.0.2 (Qubes
# style); the uplink knows only 10.137.0.2, so every reply goes through the
# firewall's NAT.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
B=${B:-build}
case $B in /*) ;; *) B=$ROOT/$B ;; esac

# Root first: a run that cannot work creates nothing.
if [ "$(id -u)" -ne 0 ]; then
    echo "demo: needs root (network namespaces)" >&2
    exit 1
fi

. "$ROOT/hosted/topo.sh"

# The names are fixed (qwd-*), so one demo at a time. A demo killed
# without its cleanup (SIGKILL, a crashed shell) leaves its
# namespaces, their processes and its run directory behind; remove them,
# unless their demo is still running.
cmdline_of() { cat "/proc/$1/cmdline" 2>/dev/null | tr '\0' ' '; }

purge_leftovers() {
    local d p f ns n=0 m=0
    for d in /tmp/qwall-demo.*; do
        [ -d "$d" ] || continue
        p=$(cat "$d/demo.pid" 2>/dev/null)
        if [ -n "$p" ] && cmdline_of "$p" | grep -q 'demo\.sh'; then
            echo "demo: another demo is running (pid $p, $d)" >&2
            exit 1
        fi
        # Its processes outside the namespaces (qdb-dom0), by recorded pid
        # and only if that pid still names this directory.
        for f in "$d"/pids/*.pid; do
            [ -f "$f" ] || continue
            p=$(cat "$f")
            cmdline_of "$p" | grep -qF "$d/" &&
                kill -9 "$p" 2>/dev/null
        done
        rm -rf "$d"
        n=$((n + 1))
    done
    for ns in $(ip netns list | awk '$1 ~ /^qwd-/ { print $1 }'); do
        topo_netns_del "$ns"
        m=$((m + 1))
    done
    [ $((n + m)) -eq 0 ] || echo "demo: removed what an interrupted" \
        "earlier run left ($m namespaces, $n directories)"
}
purge_leftovers
RUN=$(mktemp -d /tmp/qwall-demo.XXXXXX)
echo $$ >"$RUN/demo.pid"
topo_init qwd- "$RUN" "$B"

cleanup() {
    trap - EXIT INT TERM
    topo_down
    rm -rf "$RUN"
    echo "demo: everything removed"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- packages --------------------------------------------------------------
need_pkgs() {
    local missing="" pair cmd pkg
    for pair in ip:iproute2 ethtool:ethtool dnsmasq:dnsmasq-base \
        curl:curl dig:dnsutils nc:netcat-openbsd socat:socat \
        python3:python3 ping:iputils-ping traceroute:traceroute \
        gcc:gcc make:make ss:iproute2; do
        cmd=${pair%%:*}
        pkg=${pair#*:}
        command -v "$cmd" >/dev/null 2>&1 || missing="$missing $pkg"
    done
    if [ -n "$missing" ]; then
        echo "demo: installing$missing"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq $missing >/dev/null || exit 1
    fi
}
need_pkgs
make -C "$ROOT" -s B="$B" hosted || exit 1


PASS=0
FAIL=0
NOTE=0
ok() { echo "  [ok]   $*"; PASS=$((PASS + 1)); }
bad() { echo "  [FAIL] $*"; FAIL=$((FAIL + 1)); }
note() { echo "  [note] $*"; NOTE=$((NOTE + 1)); }
work() { ip netns exec qwd-work "$@"; }
disp() { ip netns exec qwd-disp "$@"; }

# --- topology and dom0 -----------------------------------------------------
cat <<'EOF'
qwall demo: two client qubes behind qwall-hosted, sys-net in a namespace.

  qwd-work  10.137.0.10 --+                                 +-- qwd-up ("sys-net") 10.137.0.1
                          +-- qwd-fw: qwall-hosted ---------+     web 10.139.0.10, blocked.test 10.139.0.11,
  qwd-disp  10.138.0.5  --+   10.137.0.2, rules and vifs    |     other.test 10.139.0.12
                              from qdb-dom0 (dom0's QDB)    +-- dnsmasq 10.139.1.1 (zone .test only)
EOF
topo_up || exit 1
MAC_WORK=$(topo_add_client work 10.137.0.10)
MAC_DISP=$(topo_add_client disp 10.138.0.5)

cat >"$RUN/db" <<'EOF'
/name = sys-firewall
/qubes-ip = 10.137.0.2
/qubes-netmask = 255.255.255.255
/qubes-gateway = 10.137.0.1
/qubes-primary-dns = 10.139.1.1
/qubes-secondary-dns = 10.139.1.2
/qubes-netvm-network = 10.137.0.2
/qubes-netvm-gateway = 10.137.0.2
/qubes-netvm-netmask = 255.255.255.255
/qubes-netvm-primary-dns = 10.139.1.1
/qubes-netvm-secondary-dns = 10.139.1.2
/connected-ips = 10.137.0.10 10.138.0.5
EOF
# work: web on 10.139.0.10:80, DNS, ping, echo; then HTTP anywhere except
# blocked.test (by name).
cat >"$RUN/rules-work" <<'EOF'
action=accept dst4=10.139.0.10/32 proto=tcp dstports=80-80
action=accept specialtarget=dns
action=accept proto=icmp icmptype=8
action=accept proto=tcp dstports=7-7
action=drop dsthost=blocked.test
action=accept proto=tcp dstports=80-80
EOF
# disp: DNS and a name-based accept only.
cat >"$RUN/rules-disp" <<'EOF'
action=accept specialtarget=dns
action=accept dsthost=allowed.test proto=tcp dstports=80-80
EOF

topo_start_qdb "$RUN/db" || exit 1
qctl load-rules 10.137.0.10 "$RUN/rules-work" >/dev/null
qctl load-rules 10.138.0.5 "$RUN/rules-disp" >/dev/null
topo_start_fw --log-level info || { cat "$RUN/qwall.log"; exit 1; }
qctl vif-add work 10.137.0.10 "$MAC_WORK" vif-work >/dev/null
qctl vif-add disp 10.138.0.5 "$MAC_DISP" vif-disp >/dev/null
echo
echo "rules for work (10.137.0.10), policy drop:"
nl -v0 -w4 -nrz -s': ' "$RUN/rules-work" | sed 's/^/   rule /'
echo "rules for disp (10.138.0.5), policy drop:"
nl -v0 -w4 -nrz -s': ' "$RUN/rules-disp" | sed 's/^/   rule /'
cat <<'EOF'
A Qubes "drop" (a drop rule, the drop policy) is a reject the client sees
at once: qwall answers ICMP admin-prohibited, as Linux sys-firewall does.
Only traffic between clients is dropped silently (client isolation).
EOF
echo

# Name-based rules need the firewall's own DNS client: until blocked.test
# resolves, rule 0004 fails closed (rejects everything it could cover).
# Wait, bounded, for both names so the results below do not depend on the
# machine's speed.
wait_names() {
    local i
    for i in $(seq 100); do
        grep -q 'dns: blocked.test resolved' "$RUN/qwall.log" &&
            grep -q 'dns: allowed.test resolved' "$RUN/qwall.log" &&
            { echo "firewall resolved blocked.test and allowed.test" \
                "($((i / 10)).$((i % 10)) s)"; return 0; }
        sleep 0.1
    done
    echo "firewall has not resolved the rules' names after 10 s"
    return 1
}
wait_names
echo

REJ="rejected"
refused() { # CURL-OUTPUT: the connection was rejected (ICMP), not timed out
    case $1 in *"Couldn't connect"* | *"No route"*) return 0 ;; esac
    return 1
}

# --- traffic ----------------------------------------------------------------
echo "traffic from the clients:"
out=$(work curl -sS -m3 http://10.139.0.10/ 2>&1)
[ "$out" = "hello from the uplink" ] &&
    ok "work: curl http://10.139.0.10/ -> \"$out\" (rule 0000)" ||
    bad "work: curl http://10.139.0.10/: $out"

out=$(work curl -sS -m3 http://10.139.0.10:8080/ 2>&1)
refused "$out" &&
    ok "work: curl http://10.139.0.10:8080/ $REJ (policy drop: no rule matches)" ||
    bad "work: curl http://10.139.0.10:8080/ should be rejected: $out"

out=$(work ping -c1 -W2 10.139.0.10 2>&1 | grep -o 'ttl=[0-9]*' | head -1)
[ -n "$out" ] && ok "work: ping 10.139.0.10 answered ($out; rule 0002)" ||
    bad "work: ping 10.139.0.10 failed"

out=$(work dig +short +time=2 +tries=1 @10.139.1.1 allowed.test 2>&1)
[ "$out" = "10.139.0.10" ] &&
    ok "work: dig @10.139.1.1 allowed.test -> $out (rule 0001, specialtarget=dns)" ||
    bad "work: dig @10.139.1.1 allowed.test: $out"

out=$(echo "hello echo" | work nc -w2 -q1 10.139.0.10 7 2>&1)
[ "$out" = "hello echo" ] &&
    ok "work: nc 10.139.0.10 7 (echo) -> \"$out\" (rule 0003)" ||
    bad "work: nc 10.139.0.10 7: $out"

out=$(work ping -c1 -W1 10.138.0.5 2>&1 | tail -2 | head -1)
case $out in
*" 0 received"*) ok "work: ping 10.138.0.5 (disp) blocked, no answer (client isolation): $out" ;;
*) bad "work: ping 10.138.0.5 (disp) should get no answer: $out" ;;
esac

# blocked.test (10.139.0.11) is rejected by rule 0004 while other.test
# (10.139.0.12) passes rule 0005. The clients have no resolver of their
# own here, so they use the addresses; the firewall resolves the names.
b=$(work curl -sS -m3 http://10.139.0.11/ 2>&1)
o=$(work curl -sS -m3 http://10.139.0.12/ 2>&1)
if refused "$b" && [ "$o" = "hello from the uplink" ]; then
    ok "work: curl http://10.139.0.11/ (blocked.test) $REJ (rule 0004, dsthost=blocked.test)"
    ok "work: curl http://10.139.0.12/ (other.test) -> \"$o\" (rule 0005)"
elif refused "$b" && refused "$o"; then
    note "work: dsthost=blocked.test not resolved yet: rule 0004 fails closed, 10.139.0.11 and 10.139.0.12 both rejected"
else
    bad "work: dsthost: 10.139.0.11 (blocked.test) -> $b / 10.139.0.12 (other.test) -> $o"
fi

out=$(disp curl -sS -m3 http://10.139.0.10/ 2>&1)
if [ "$out" = "hello from the uplink" ]; then
    ok "disp: curl http://10.139.0.10/ (allowed.test) -> \"$out\" (rule 0001, dsthost=allowed.test)"
elif refused "$out"; then
    note "disp: dsthost=allowed.test not resolved yet, so rule 0001 does not match and 10.139.0.10 is rejected (policy drop)"
else
    bad "disp: curl http://10.139.0.10/ (allowed.test): $out"
fi

out=$(disp ping -c1 -W2 10.139.0.10 2>&1 | grep -m1 -o 'From .*')
case $out in
*"Packet filtered"*) ok "disp: ping 10.139.0.10 $REJ (policy drop): $out" ;;
*) bad "disp: ping 10.139.0.10 should be rejected with ICMP: $out" ;;
esac

out=$(disp curl -sS -m3 http://10.139.0.11/ 2>&1)
refused "$out" &&
    ok "disp: curl http://10.139.0.11/ (blocked.test) $REJ (policy drop)" ||
    bad "disp: curl http://10.139.0.11/ should be rejected: $out"

# --- live rule change -------------------------------------------------------
echo
echo "live rule change: dom0 adds rule 0006 'action=accept proto=tcp dstports=8080-8080' for work"
printf 'action=accept proto=tcp dstports=8080-8080\n' >>"$RUN/rules-work"
qctl load-rules 10.137.0.10 "$RUN/rules-work" >/dev/null
out=$(work curl -sS -m3 http://10.139.0.10:8080/ 2>&1)
[ "$out" = "hello from the uplink" ] &&
    ok "work: curl http://10.139.0.10:8080/ now -> \"$out\" (rule 0006)" ||
    bad "work: curl http://10.139.0.10:8080/ after the change: $out"
out=$(work curl -sS -m3 http://10.139.0.10:9000/ 2>&1)
refused "$out" &&
    ok "work: curl http://10.139.0.10:9000/ still $REJ (policy drop)" ||
    bad "work: curl http://10.139.0.10:9000/ should be rejected: $out"

# --- counters ---------------------------------------------------------------
echo
echo "counters (SIGUSR1 -> qwall-hosted --stats; the log has the same as one line):"
topo_stats | grep -v '^summary ' | sed 's/^/   /'
cat <<'EOF'
   rejected_by_rules: the rejects above; client_to_client: the isolated ping;
   ipv6: the client kernels' own IPv6 neighbour/router solicitations, dropped
   because qwall is IPv4-only.
EOF
v=$(qctl stats | grep -o 'violations=[0-9]*')
echo "   qdb-dom0: $v (messages dom0 would have refused)"
echo

cleanup
[ "$NOTE" -eq 0 ] || echo "demo: $NOTE notes (features not effective yet)"
echo "demo: $PASS checks ok, $FAIL failed"
[ "$FAIL" -eq 0 ]
