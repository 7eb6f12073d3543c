#!/bin/bash
# bench.sh: qwall-hosted against kernel forwarding + nftables and a null
# forwarder with qwall-hosted's own I/O, side by side in one run (make
# bench; root). Writes bench/hosted/raw.jsonl and bench/results/hosted.md.
#
#   qwb-c1 (client)             qwb-fw                          qwb-up (uplink)
#   eth0 10.137.0.10 <--veth--> vif-c1   [one of the three]  up0 <-veth-> eth0 10.137.0.1
#   default via 10.137.0.2                                          iperf3 -s 10.139.0.10
#
#   qwall : qwall-hosted on vif-c1/up0, Qubes-like rules from qdb-dom0
#   nft   : the fw namespace routes (10.137.0.2 on both sides), nftables
#           with the same rules in Qubes' shape (bench/hosted/fw.nft)
#   null  : bench/hosted/nullfwd copies frames between vif-c1 and up0
#           (client and uplink on-link to each other; no NAT, no rules);
#           offloads off only (it cannot complete partial checksums)
#   tap   : bench/hosted/tapfwd copies frames between TAP devices that
#           replace the client's and the uplink's interfaces (read/write
#           per frame): the I/O method qwall-hosted did not pick
#
# Tests from the client to 10.139.0.10: iperf3 TCP 1 and 4 streams, UDP at
# full rate with 64- and 1400-byte payloads (received packets per second),
# ping RTT (median of 100). RUNS runs (default 3) interleaved across the
# configurations, SECS seconds per iperf3 test; offloads off, then on.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
B=${B:-build}
case $B in /*) ;; *) B=$ROOT/$B ;; esac
RUNS=${RUNS:-3}
SECS=${SECS:-5}
OFFLOADS=${OFFLOADS:-"off on"}
CONFIGS=${CONFIGS:-"qwall nft null tap"}
RAW=bench/hosted/raw.jsonl
RUN=$(mktemp -d /tmp/qwall-bench.XXXXXX)

[ "$(id -u)" -eq 0 ] || { echo "bench: needs root"; exit 1; }
for t in iperf3 nft ethtool python3 ping; do
    command -v $t >/dev/null || { echo "bench: missing $t"; exit 1; }
done

. hosted/topo.sh
topo_init qwb- "$RUN" "$B"
cleanup() {
    trap - EXIT INT TERM
    topo_down
    rm -rf "$RUN"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

C=qwb-c1
F=qwb-fw
U=qwb-up
CIP=10.137.0.10
SRV=$TOPO_WEB_IP

topo_up || exit 1
topo_add_client c1 $CIP >"$RUN/mac"
MAC=$(cat "$RUN/mac")
topo_bg iperf3 $U iperf3 -s -B $SRV
topo_wait_port $U tcp $SRV 5201 || exit 1

cat >"$RUN/db" <<EOF
/qubes-ip = $TOPO_FW_IP
/qubes-gateway = $TOPO_GW_IP
/qubes-primary-dns = $TOPO_DNS1
/qubes-secondary-dns = $TOPO_DNS2
/qubes-netvm-gateway = $TOPO_FW_IP
/qubes-netvm-primary-dns = $TOPO_DNS1
/qubes-netvm-secondary-dns = $TOPO_DNS2
/connected-ips = $CIP
EOF
# The same 9 rules as bench/hosted/fw.nft, in qvm-firewall's form.
cat >"$RUN/rules" <<EOF
action=drop dsthost=blocked.test
action=drop proto=tcp dstports=25-25
action=accept proto=icmp icmptype=8
action=accept specialtarget=dns
action=accept proto=tcp dstports=80-80
action=accept proto=tcp dstports=443-443
action=accept proto=tcp dstports=8000-8100
action=accept proto=udp dstports=123-123
action=accept dst4=$SRV/32 dstports=5201-5210
EOF

offload() { # on|off
    local ns dev
    for ns in $C $F $U; do
        for dev in $(ip netns exec $ns ls /sys/class/net); do
            [ "$dev" = lo ] && continue
            if [ "$1" = off ]; then
                ip netns exec $ns ethtool -K $dev tx off rx off sg off \
                    tso off gso off gro off >/dev/null 2>&1
            elif [ "$CFG" = nft ]; then
                ip netns exec $ns ethtool -K $dev tx on rx on sg on \
                    tso on gso on gro off >/dev/null 2>&1
            else
                # A ring slot holds one frame: no TSO/GSO towards the
                # firewall, checksum offload only (partial checksums).
                ip netns exec $ns ethtool -K $dev tx on rx on sg on \
                    tso off gso off gro off >/dev/null 2>&1
            fi
        done
    done
}

flush_neigh() {
    ip -n $C neigh flush all 2>/dev/null
    ip -n $U neigh flush all 2>/dev/null
}

start_cfg() {
    flush_neigh
    case $CFG in
    qwall)
        topo_start_qdb "$RUN/db" || return 1
        qctl load-rules $CIP "$RUN/rules" >/dev/null
        topo_start_fw --log-level warn || return 1
        qctl vif-add c1 $CIP "$MAC" vif-c1 >/dev/null
        FWPID=$(topo_fw_pid)
        ;;
    nft)
        ip -n $F addr add $TOPO_FW_IP/32 dev vif-c1
        ip -n $F addr add $TOPO_FW_IP/32 dev up0
        ip -n $F route add $CIP/32 dev vif-c1 scope link
        ip -n $F route add $TOPO_GW_IP/32 dev up0 scope link
        ip -n $F route add default via $TOPO_GW_IP dev up0
        ip netns exec $F sysctl -qw net.ipv4.ip_forward=1
        ip netns exec $F nft -f bench/hosted/fw.nft || return 1
        FWPID=""
        ;;
    null)
        ip -n $C route replace default dev eth0 scope link
        ip -n $U route add $CIP/32 dev eth0 scope link
        topo_bg nullfwd $F "$B/bench/nullfwd" vif-c1 up0
        FWPID=$(cat "$RUN/pids/nullfwd.pid")
        ;;
    tap)
        # tap0 takes over the client's address and the server's address
        ip -n $C tuntap add tap0 mode tap
        ip -n $U tuntap add tap0 mode tap
        ip -n $C link set tap0 mtu 1500 up
        ip -n $U link set tap0 mtu 1500 up
        ip -n $C addr del $CIP/32 dev eth0
        ip -n $C addr add $CIP/32 dev tap0
        ip -n $C route replace default dev tap0 scope link
        ip -n $U addr add $SRV/32 dev tap0
        ip -n $U route add $CIP/32 dev tap0 scope link
        topo_bg tapfwd $F "$B/bench/tapfwd" $C:tap0 $U:tap0
        FWPID=$(cat "$RUN/pids/tapfwd.pid")
        ;;
    esac
    sleep 0.5
    # warm up: resolve neighbours and (qwall) the dsthost name
    ip netns exec $C ping -c3 -i0.2 -W1 $SRV >/dev/null 2>&1
}

stop_cfg() {
    case $CFG in
    qwall)
        local hwm
        hwm=$(awk '/VmHWM/ {print $2}' /proc/"$FWPID"/status 2>/dev/null)
        [ -n "$hwm" ] && emit peak_rss_kib "$hwm"
        topo_stop_fw
        topo_kill qdb-dom0
        ;;
    nft)
        ip netns exec $F nft flush ruleset
        ip netns exec $F sysctl -qw net.ipv4.ip_forward=0
        ip -n $F route flush dev up0 2>/dev/null
        ip -n $F route flush dev vif-c1 2>/dev/null
        ip -n $F addr flush dev vif-c1
        ip -n $F addr flush dev up0
        ;;
    null)
        topo_kill nullfwd
        ip -n $C route replace default via $TOPO_FW_IP dev eth0
        ip -n $U route del $CIP/32 dev eth0 2>/dev/null
        ;;
    tap)
        topo_kill tapfwd
        ip -n $C link del tap0
        ip -n $U link del tap0
        ip -n $C addr add $CIP/32 dev eth0
        ip -n $C route add $TOPO_FW_IP/32 dev eth0 scope link
        ip -n $C route replace default via $TOPO_FW_IP dev eth0
        ;;
    esac
}

emit() { # TEST VALUE [CPU% [NS_PER_FRAME]]
    printf '{"cfg":"%s","offload":"%s","run":%d,"test":"%s","value":%s,"cpu":%s,"nspf":%s,"load":"%s"}\n' \
        "$CFG" "$OFF" "$R" "$1" "${2:-null}" "${3:-null}" "${4:-null}" \
        "$(cut -d' ' -f1 /proc/loadavg)" >>"$RAW"
}

# Frames the firewall side put on its two interfaces (both directions);
# for TAP, the frames it wrote into the two tap devices.
fw_tx_frames() {
    if [ "$CFG" = tap ]; then
        { ip netns exec $C cat /sys/class/net/tap0/statistics/rx_packets
          ip netns exec $U cat /sys/class/net/tap0/statistics/rx_packets; } |
            awk '{n += $1} END {print n}'
        return
    fi
    ip netns exec $F cat /sys/class/net/vif-c1/statistics/tx_packets \
        /sys/class/net/up0/statistics/tx_packets | awk '{n += $1} END {print n}'
}

cpu_ticks() { # PID: utime+stime
    [ -n "$1" ] && awk '{print $14 + $15}' /proc/"$1"/stat 2>/dev/null || echo 0
}

iperf() { # TEST ARGS...
    local test=$1 t0 t1 c0 c1 cpu v f0 f1 nspf
    shift
    c0=$(cpu_ticks "$FWPID")
    f0=$(fw_tx_frames)
    t0=$(date +%s.%N)
    timeout $((SECS + 20)) ip netns exec $C iperf3 -c $SRV -t "$SECS" \
        --connect-timeout 3000 -J "$@" >"$RUN/iperf.json" 2>&1
    t1=$(date +%s.%N)
    c1=$(cpu_ticks "$FWPID")
    f1=$(fw_tx_frames)
    cpu=null
    nspf=null
    if [ -n "$FWPID" ]; then
        cpu=$(python3 -c "print(round(($c1-$c0)/$(getconf CLK_TCK)/($t1-$t0)*100,1))")
        nspf=$(python3 -c "print(int(($c1-$c0)/$(getconf CLK_TCK)*1e9/max(1,$f1-$f0)))")
    fi
    v=$(python3 - "$RUN/iperf.json" "$test" <<'PY'
import json, sys
try:
    j = json.load(open(sys.argv[1]))
    e = j["end"]
    if sys.argv[2].startswith("tcp"):
        print(round(e["sum_received"]["bits_per_second"] / 1e9, 3))
    else:
        s = e["sum"]
        print(int((s["packets"] - s["lost_packets"]) / s["seconds"]))
except Exception:
    print("null")
PY
)
    emit "$test" "$v" "$cpu" "$nspf"
    echo "    $test: $v (fw cpu $cpu %, $nspf ns/frame)"
}

ping_rtt() {
    local v
    v=$(ip netns exec $C ping -c100 -i0.01 -W1 $SRV 2>/dev/null |
        sed -n 's/.*time=\([0-9.]*\) ms/\1/p' | sort -n |
        awk '{a[NR] = $1} END {if (NR) print int(a[int((NR + 1) / 2)] * 1000); else print "null"}')
    emit ping_rtt_us "$v"
    echo "    ping_rtt_us: $v"
}

: >"$RAW"
echo "bench: $RUNS runs x {$CONFIGS} x offloads {$OFFLOADS}, $SECS s per test"
for OFF in $OFFLOADS; do
    for R in $(seq "$RUNS"); do
        for CFG in $CONFIGS; do
            # A null forwarder cannot pass a partial checksum on (the ring
            # says only "not ready", not where): no null run with offloads.
            [ "$OFF" = on ] && [ "$CFG" != qwall ] && [ "$CFG" != nft ] &&
                continue
            echo "  offloads $OFF, run $R, $CFG"
            offload "$OFF"
            if ! start_cfg; then
                echo "bench: $CFG failed to start"
                tail -5 "$RUN"/*.log
                stop_cfg
                continue
            fi
            iperf tcp1
            iperf tcp4 -P 4
            iperf udp64 -u -b 0 -l 64
            iperf udp1400 -u -b 0 -l 1400
            ping_rtt
            stop_cfg
        done
    done
done
python3 bench/hosted/report.py "$RAW" bench/results/hosted.md
echo "bench: results in bench/results/hosted.md"
