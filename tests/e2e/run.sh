#!/bin/bash
# run.sh: the end-to-end suite (make check-e2e; root).
#
# Builds nothing: expects $B/qwall-hosted and $B/qdb-dom0. Creates the
# qwe- topology once (hosted/topo.sh), sources every scenario file
# tests/e2e/s[0-9][0-9]_*.sh in name order and runs the scenarios they
# register, each after the firewall is checked alive (and restarted if a
# previous one killed it, which counts as that one's failure). Closing
# line: "N passed, N failed". E2E_ONLY=regex runs a subset; E2E_KEEP=1
# keeps the run directory (logs, pcaps) for inspection; E2E_PREFIX
# (default qwe-) names the namespaces, so two suites can run at once.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
B=${B:-build}
case $B in /*) ;; *) B=$ROOT/$B ;; esac
RUN=$(mktemp -d /tmp/qwall-e2e.XXXXXX)

if [ "$(id -u)" -ne 0 ]; then
    echo "check-e2e: needs root (network namespaces)"
    echo "0 passed, 1 failed"
    exit 1
fi
for t in ip ethtool dnsmasq python3 socat curl dig ping traceroute nc; do
    command -v $t >/dev/null || { echo "check-e2e: missing $t"; echo "0 passed, 1 failed"; exit 1; }
done

. hosted/topo.sh
topo_init "${E2E_PREFIX:-qwe-}" "$RUN" "$B"
if [ "${E2E_SAN:-0}" = 1 ]; then
    # ASan/UBSan build: any report ends the process, which fails the
    # scenario that triggered it (its log is printed).
    TOPO_FW_BIN=$B/qwall-hosted-san
    export ASAN_OPTIONS=abort_on_error=0:detect_leaks=0
fi
. tests/e2e/lib.sh

cleanup() {
    trap - EXIT INT TERM
    topo_down
    if [ "${E2E_KEEP:-0}" = 1 ]; then
        echo "check-e2e: kept $RUN"
    else
        rm -rf "$RUN"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cat >"$RUN/db" <<DB
/name = sys-firewall
/qubes-ip = $TOPO_FW_IP
/qubes-netmask = 255.255.255.255
/qubes-gateway = $TOPO_GW_IP
/qubes-primary-dns = $TOPO_DNS1
/qubes-secondary-dns = $TOPO_DNS2
/qubes-netvm-network = $TOPO_FW_IP
/qubes-netvm-gateway = $TOPO_FW_IP
/qubes-netvm-netmask = 255.255.255.255
/qubes-netvm-primary-dns = $TOPO_DNS1
/qubes-netvm-secondary-dns = $TOPO_DNS2
/connected-ips = $C1 $C2
DB

start_fw() {
    topo_start_fw --log-level info --pcap "$RUN/pcap" "$@" ||
        { echo "check-e2e: firewall did not sync"; return 1; }
    qctl vif-add c1 "$C1" "$MAC1" vif-c1 >/dev/null &&
        qctl vif-add c2 "$C2 fd09:24ef:4179::a89:b" "$MAC2" vif-c2 >/dev/null
}

setup() {
    topo_up || return 1
    MAC1=$(topo_add_client c1 $C1) || return 1
    MAC2=$(topo_add_client c2 $C2) || return 1
    topo_start_qdb "$RUN/db" || return 1
    accept_all $C1 $C2
    start_fw
}

if ! setup; then
    echo "check-e2e: topology setup failed"
    tail -20 "$RUN"/*.log
    echo "0 passed, 1 failed"
    exit 1
fi

for f in tests/e2e/s[0-9][0-9]_*.sh; do
    . "$f"
done

pass=0
fail=0
failed=""
t0=$(date +%s)
for s in "${E2E_LIST[@]}"; do
    if [ -n "${E2E_ONLY:-}" ] && ! [[ $s =~ $E2E_ONLY ]]; then
        continue
    fi
    if ! fw_alive; then
        echo "  (restarting qwall-hosted)"
        start_fw
    fi
    E2E_FAILED=0
    E2E_NOTES=""
    ts=$(date +%s)
    "$s"
    if ! fw_alive; then
        E2E_FAILED=1
        echo "    FAIL: qwall-hosted exited"
        tail -5 "$RUN/qwall.log" | sed 's/^/      /'
    fi
    if [ "$E2E_FAILED" = 0 ]; then
        pass=$((pass + 1))
        echo "  ok   $s: ${E2E_DESC[$s]} ($(($(date +%s) - ts)) s)"
    else
        fail=$((fail + 1))
        failed="$failed $s"
        echo "  FAIL $s: ${E2E_DESC[$s]}"
    fi
done
echo "check-e2e: $(($(date +%s) - t0)) s${failed:+, failed:$failed}"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
