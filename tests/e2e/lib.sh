# lib.sh: helpers for end-to-end scenarios (sourced by run.sh; bash).
#
# The topology is hosted/topo.sh with prefix $TOPO_P (qwe- by default):
# clients c1 10.137.0.10 and c2 10.137.0.11, the firewall 10.137.0.2, the
# uplink 10.137.0.1 with servers on 10.139.0.10 (web :80 :8080, echo :7
# tcp/udp, whoami :9000 tcp "addr:port" and udp "addr:port length"),
# 10.139.0.11 and .12 (web :80) and dnsmasq on 10.139.1.1/.2 (zone .test).
# See tests/e2e/README.md.

E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
C1=10.137.0.10
C2=10.137.0.11
WEB=$TOPO_WEB_IP
FWIP=$TOPO_FW_IP

c1() { ip netns exec "${TOPO_P}c1" "$@"; }
c2() { ip netns exec "${TOPO_P}c2" "$@"; }
up() { ip netns exec "${TOPO_P}up" "$@"; }
inns() { local n=$1; shift; ip netns exec "${TOPO_P}$n" "$@"; }

# probe NS tcp|udp HOST PORT [opts]: one word of outcome (see probe.py)
probe() {
    local ns=$1
    shift
    ip netns exec "${TOPO_P}$ns" python3 "$E2E_DIR/probe.py" "$@"
}

# rules IP < file: load a client's rules the way dom0 does (rm, writes,
# commit). Lines as in qdb-dom0's load-rules (policy: -, NNNN: rule).
rules() {
    local f="$TOPO_RUN/rules.$1"
    cat >"$f"
    qctl load-rules "$1" "$f" >/dev/null
}

accept_all() { # IP...
    local ip
    for ip in "$@"; do echo "action=accept" | rules "$ip"; done
}

# Assertions: record a failure, keep going; the scenario fails if any did.
expect() { # WANT GOT WHAT
    if [ "$1" = "$2" ]; then
        E2E_NOTES="$E2E_NOTES${E2E_NOTES:+; }ok: $3"
    else
        E2E_FAILED=1
        echo "    FAIL: $3: want '$1', got '$2'"
    fi
}

expect_match() { # GLOB GOT WHAT
    # shellcheck disable=SC2254
    case $2 in
    $1) E2E_NOTES="$E2E_NOTES${E2E_NOTES:+; }ok: $3" ;;
    *)
        E2E_FAILED=1
        echo "    FAIL: $3: want '$1', got '$2'"
        ;;
    esac
}

expect_ge() { # MIN GOT WHAT
    if [ "${2:-0}" -ge "$1" ] 2>/dev/null; then
        E2E_NOTES="$E2E_NOTES${E2E_NOTES:+; }ok: $3"
    else
        E2E_FAILED=1
        echo "    FAIL: $3: want >= $1, got '$2'"
    fi
}

expect_any() { # "WORD WORD..." GOT WHAT
    local w
    for w in $1; do
        if [ "$w" = "$2" ]; then
            E2E_NOTES="$E2E_NOTES${E2E_NOTES:+; }ok: $3"
            return
        fi
    done
    E2E_FAILED=1
    echo "    FAIL: $3: want one of '$1', got '$2'"
}

# wait_ready FILE: until a background sink/sniffer has bound its socket
# (it prints "listening" first), so nothing is sent before it listens.
wait_ready() {
    local i
    for i in $(seq 100); do
        grep -q listening "$1" 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}

# sniff_count FILE: the count a finished sniffer printed (last line).
sniff_count() { tail -n 1 "$1"; }

counter() { topo_counter "$@"; } # LINKNAME REASON

fw_alive() { kill -0 "$(topo_fw_pid)" 2>/dev/null; }

# Register a scenario: e2e_add FUNCTION "one-line description"
E2E_LIST=()
declare -A E2E_DESC
e2e_add() {
    E2E_LIST+=("$1")
    E2E_DESC[$1]=$2
}
