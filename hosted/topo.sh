# topo.sh: network-namespace topology for qwall-hosted (sourced by the
# demo, the end-to-end suite and the benchmark; bash).
#
#   <P>c1 (client)      <P>fw (firewall)                 <P>up (uplink, "sys-net")
#   eth0 10.137.0.10 <-veth-> vif-c1                     servers on eth0:
#   default via          qwall-hosted --uplink up0       10.137.0.1  gateway
#     10.137.0.2         up0 <-------------veth------->  eth0  10.139.0.10 web/echo
#   <P>c2 (client)       (no IP addresses: the core      10.139.0.11 "blocked"
#   eth0 10.137.0.11 <-veth-> vif-c2   owns the links)   10.139.0.12 "other"
#                                                        10.139.1.1/.2 dnsmasq
#
# The firewall's address is 10.137.0.2 on both sides (Qubes style: the
# clients' gateway is the firewall's own /qubes-ip). The uplink knows only
# 10.137.0.2, so replies reach a client only through the firewall's NAT.
# Every address lives only inside these namespaces. Names carry a prefix
# (qwd- demo, qwe- tests, qwb- bench) so several users never collide, and
# every process started here is recorded by pid in $TOPO_RUN and stopped
# by that pid in topo_down, which then stops whatever is left in each of
# its namespaces (forked children) before deleting them.
#
# Offloads: TSO/GSO/GRO are turned off on every veth end, because a
# PACKET_MMAP slot holds one MTU-sized frame and a GSO super-frame would be
# truncated (hosted/ring.h). Transmit checksum offload stays on in client
# namespaces so the firewall sees partial checksums, as from a Xen
# netfront (QW_FRAME_CSUM_BLANK); topo_offload off turns it off too.

TOPO_FW_IP=10.137.0.2
TOPO_GW_IP=10.137.0.1
TOPO_WEB_IP=10.139.0.10
TOPO_BLOCKED_IP=10.139.0.11
TOPO_OTHER_IP=10.139.0.12
TOPO_DNS1=10.139.1.1
TOPO_DNS2=10.139.1.2

# "whoami" on TCP and UDP: answers "addr:port" (TCP) or "addr:port length"
# (UDP, the reassembled datagram's size): the source as the uplink sees it.
TOPO_WHOAMI='
import socket, sys, threading
addr, port = sys.argv[1], int(sys.argv[2])
def udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((addr, port))
    while True:
        d, a = s.recvfrom(65535)
        s.sendto(("%s:%d %d\n" % (a[0], a[1], len(d))).encode(), a)
threading.Thread(target=udp, daemon=True).start()
t = socket.socket()
t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind((addr, port))
t.listen(64)
while True:
    c, a = t.accept()
    try:
        c.sendall(("%s:%d\n" % a).encode())
    except OSError:
        pass
    c.close()
'

topo_init() { # PREFIX RUNDIR BUILDDIR
    TOPO_P=$1
    TOPO_RUN=$2
    TOPO_B=$3
    TOPO_FW=${TOPO_P}fw
    TOPO_UP=${TOPO_P}up
    mkdir -p "$TOPO_RUN/pids"
}

tx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
topo_ns() { echo "${TOPO_P}$1"; } # client namespace of NAME

topo_bg() { # NAME NS CMD... : start in the background, remember the pid
    local name=$1 ns=$2
    shift 2
    ip netns exec "$ns" "$@" >"$TOPO_RUN/$name.log" 2>&1 &
    echo $! >"$TOPO_RUN/pids/$name.pid"
}

topo_kill() { # NAME: stop one recorded process by its pid
    local f="$TOPO_RUN/pids/$1.pid" p
    [ -f "$f" ] || return 0
    p=$(cat "$f")
    if [ -n "$p" ] && kill -0 "$p" 2>/dev/null; then
        kill "$p" 2>/dev/null
        for _ in $(seq 30); do
            kill -0 "$p" 2>/dev/null || break
            sleep 0.1
        done
        kill -0 "$p" 2>/dev/null && kill -9 "$p" 2>/dev/null
    fi
    rm -f "$f"
}

# Namespaces are created through topo_netns_add, which records them, so
# topo_down deletes only what this run created (never another run's
# namespaces that happen to share the prefix).
topo_netns_add() { # NS
    ip netns add "$1" || return 1
    echo "$1" >>"$TOPO_RUN/netns"
}

# topo_netns_kill NS: stop every process still in NS (TERM, then KILL
# after a short wait). Recorded pids are not enough: children such as the
# per-connection ones of `socat ...,fork` are reparented to init and would
# keep a deleted namespace alive.
topo_netns_kill() {
    local pids i
    pids=$(ip netns pids "$1" 2>/dev/null)
    [ -n "$pids" ] || return 0
    kill $pids 2>/dev/null
    for i in $(seq 20); do
        sleep 0.1
        pids=$(ip netns pids "$1" 2>/dev/null)
        [ -n "$pids" ] || return 0
    done
    kill -9 $pids 2>/dev/null
    return 0
}

topo_netns_del() { # NS: its processes, then the namespace
    topo_netns_kill "$1"
    ip netns del "$1" 2>/dev/null
}

topo_quiet_if() { # NS IF: no IPv6, no GSO/TSO/GRO
    tx "$1" sysctl -qw "net.ipv6.conf.$2.disable_ipv6=1" 2>/dev/null
    tx "$1" ethtool -K "$2" tso off gso off gro off >/dev/null 2>&1
}

topo_up() {
    local ns
    for ns in $TOPO_FW $TOPO_UP; do
        topo_netns_add "$ns" || return 1
        tx "$ns" ip link set lo up
        tx "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 \
            net.ipv6.conf.default.disable_ipv6=1
    done
    # The firewall namespace keeps no addresses and forwards nothing
    # itself: only qwall-hosted answers on its links.
    tx $TOPO_FW sysctl -qw net.ipv4.ip_forward=0
    ip -n $TOPO_FW link add up0 type veth peer name eth0 netns $TOPO_UP
    topo_quiet_if $TOPO_FW up0
    topo_quiet_if $TOPO_UP eth0
    ip -n $TOPO_FW link set up0 up
    ip -n $TOPO_UP link set eth0 up
    for a in $TOPO_GW_IP $TOPO_WEB_IP $TOPO_BLOCKED_IP $TOPO_OTHER_IP \
        $TOPO_DNS1 $TOPO_DNS2; do
        ip -n $TOPO_UP addr add $a/32 dev eth0
    done
    ip -n $TOPO_UP route add $TOPO_FW_IP/32 dev eth0 scope link
    topo_servers
}

# Servers in the uplink: a local DNS zone (no upstream, no forwarding),
# HTTP, TCP/UDP echo and "whoami" (prints the peer address:port as the
# uplink sees it; the UDP one adds the datagram length).
topo_servers() {
    mkdir -p "$TOPO_RUN/www"
    echo "hello from the uplink" >"$TOPO_RUN/www/index.html"
    tx $TOPO_UP dnsmasq --conf-file=/dev/null --keep-in-foreground \
        --pid-file="$TOPO_RUN/dnsmasq.pidfile" --user=root \
        --listen-address=$TOPO_DNS1 --listen-address=$TOPO_DNS2 \
        --bind-interfaces --port=53 --no-resolv --no-hosts --no-poll \
        --local=/test/ --host-record=allowed.test,$TOPO_WEB_IP \
        --host-record=server.test,$TOPO_WEB_IP \
        --host-record=blocked.test,$TOPO_BLOCKED_IP \
        --host-record=other.test,$TOPO_OTHER_IP \
        >"$TOPO_RUN/dnsmasq.log" 2>&1 &
    echo $! >"$TOPO_RUN/pids/dnsmasq.pid"
    topo_bg http $TOPO_UP python3 -m http.server 80 --bind $TOPO_WEB_IP \
        --directory "$TOPO_RUN/www"
    topo_bg http2 $TOPO_UP python3 -m http.server 80 \
        --bind $TOPO_BLOCKED_IP --directory "$TOPO_RUN/www"
    topo_bg http4 $TOPO_UP python3 -m http.server 80 --bind $TOPO_OTHER_IP \
        --directory "$TOPO_RUN/www"
    topo_bg http3 $TOPO_UP python3 -m http.server 8080 --bind $TOPO_WEB_IP \
        --directory "$TOPO_RUN/www"
    topo_bg echo $TOPO_UP socat TCP-LISTEN:7,bind=$TOPO_WEB_IP,fork,reuseaddr \
        EXEC:cat
    topo_bg uecho $TOPO_UP socat -T2 -b 65536 \
        UDP-RECVFROM:7,bind=$TOPO_WEB_IP,fork EXEC:cat
    topo_bg whoami $TOPO_UP python3 -c "$TOPO_WHOAMI" $TOPO_WEB_IP 9000
    topo_wait_port $TOPO_UP tcp $TOPO_WEB_IP 80 &&
        topo_wait_port $TOPO_UP tcp $TOPO_WEB_IP 9000 &&
        topo_wait_port $TOPO_UP udp $TOPO_DNS1 53
}

topo_wait_port() { # NS tcp|udp ADDR PORT
    local i
    for i in $(seq 50); do
        if tx "$1" ss -Hln"${2:0:1}" "src $3:$4" 2>/dev/null | grep -q .; then
            return 0
        fi
        sleep 0.1
    done
    echo "topo: $2 $3:$4 not listening in $1" >&2
    return 1
}

# topo_add_client NAME IP [MTU]: a client namespace <P>NAME with eth0,
# its peer vif-NAME in the firewall namespace. Prints the client's MAC.
topo_add_client() {
    local name=$1 ip=$2 mtu=${3:-1500} ns
    ns=$(topo_ns "$name")
    topo_netns_add "$ns" || return 1
    tx "$ns" ip link set lo up
    ip -n $TOPO_FW link add "vif-$name" mtu "$mtu" type veth peer name eth0 \
        mtu "$mtu" netns "$ns"
    topo_quiet_if $TOPO_FW "vif-$name"
    tx "$ns" ethtool -K eth0 tso off gso off gro off >/dev/null 2>&1
    ip -n $TOPO_FW link set "vif-$name" up
    ip -n "$ns" link set eth0 up
    ip -n "$ns" addr add "$ip/32" dev eth0
    ip -n "$ns" route add $TOPO_FW_IP/32 dev eth0 scope link
    ip -n "$ns" route add default via $TOPO_FW_IP dev eth0
    tx "$ns" cat /sys/class/net/eth0/address
}

topo_del_client() { # NAME
    local ns
    ns=$(topo_ns "$1")
    topo_netns_del "$ns"
    sed -i "/^$ns\$/d" "$TOPO_RUN/netns" 2>/dev/null
    return 0
}

topo_offload() { # on|off: checksum offloads in every namespace of ours
    local ns
    for ns in $(cat "$TOPO_RUN/netns"); do
        for dev in $(tx "$ns" ls /sys/class/net); do
            [ "$dev" = lo ] && continue
            tx "$ns" ethtool -K "$dev" tx "$1" rx "$1" >/dev/null 2>&1
        done
    done
}

# QubesDB (dom0 side) and the firewall itself.
topo_start_qdb() { # DBFILE
    rm -f "$TOPO_RUN/qdb.sock" "$TOPO_RUN/qdb.ctl"
    "$TOPO_B/qdb-dom0" serve --db "$1" --vm "$TOPO_RUN/qdb.sock" \
        --ctl "$TOPO_RUN/qdb.ctl" >"$TOPO_RUN/qdb-dom0.log" 2>&1 &
    echo $! >"$TOPO_RUN/pids/qdb-dom0.pid"
    for _ in $(seq 50); do
        [ -S "$TOPO_RUN/qdb.ctl" ] && return 0
        sleep 0.1
    done
    return 1
}

qctl() { "$TOPO_B/qdb-dom0" ctl "$TOPO_RUN/qdb.ctl" "$@"; }

topo_start_fw() { # [qwall-hosted options...]; TOPO_FW_BIN overrides
    topo_bg qwall $TOPO_FW "${TOPO_FW_BIN:-$TOPO_B/qwall-hosted}" --uplink up0 \
        --qdb "$TOPO_RUN/qdb.sock" --stats "$TOPO_RUN/stats" "$@"
    qctl wait-synced 10 >/dev/null
}

topo_stop_fw() { topo_kill qwall; }

topo_fw_pid() { cat "$TOPO_RUN/pids/qwall.pid" 2>/dev/null; }

# Ask the firewall for its counters (SIGUSR1) and print the stats file.
topo_stats() {
    local pid
    pid=$(topo_fw_pid) || return 1
    rm -f "$TOPO_RUN/stats"
    kill -USR1 "$pid" 2>/dev/null || return 1
    for _ in $(seq 50); do
        [ -f "$TOPO_RUN/stats" ] && break
        sleep 0.05
    done
    cat "$TOPO_RUN/stats" 2>/dev/null
}

# topo_counter LINKNAME REASON: one drop counter (0 if absent).
topo_counter() {
    topo_stats | awk -v l="$1" -v r="$2" \
        '$1 == "drop" && $3 == l && $4 == r { n = $5 } END { print n + 0 }'
}

topo_down() {
    local f ns
    if [ -f "$TOPO_RUN/dnsmasq.pidfile" ]; then
        cp "$TOPO_RUN/dnsmasq.pidfile" "$TOPO_RUN/pids/dnsmasq.pid" 2>/dev/null
    fi
    for f in "$TOPO_RUN"/pids/*.pid; do
        [ -f "$f" ] && topo_kill "$(basename "$f" .pid)"
    done
    if [ -f "$TOPO_RUN/netns" ]; then
        while read -r ns; do
            topo_netns_del "$ns"
        done <"$TOPO_RUN/netns"
        rm -f "$TOPO_RUN/netns"
    fi
    return 0
}
