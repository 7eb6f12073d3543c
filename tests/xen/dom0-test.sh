#!/bin/sh
# dom0-test.sh MODE: the in-dom0 half of check-xen. Creates qwall.xen as a
# PVH guest and checks what it does, printing one line per check:
#   QWT-RESULT PASS|FAIL <name> <details>
#   QWT-INFO <name> <details>          (measurements, not pass/fail)
# MODE "full" (default) runs everything, "boot" only boots and shows the
# console. The host half (check-xen.sh) counts the lines.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export LD_LIBRARY_PATH=/lib/x86_64-linux-gnu
mode=${1:-full}
con=/var/log/xen/console

ms() { awk '{printf "%d", $1 * 1000}' /proc/uptime; }
pass() { echo "QWT-RESULT PASS $*"; }
fail() { echo "QWT-RESULT FAIL $*"; }
check() { # check NAME CONDITION-COMMAND... : PASS if the command succeeds
    n=$1; shift
    if "$@" >/dev/null 2>&1; then pass "$n"; else fail "$n"; fi
}

# wait_log NAME PATTERN TIMEOUT_MS: wait for an extended regex in the
# guest's console log; prints the elapsed ms, fails after the timeout.
wait_log() {
    t=$(ms)
    while ! grep -qE "$2" "$con/guest-$1.log" 2>/dev/null; do
        [ $(($(ms) - t)) -gt "$3" ] && return 1
        usleep 20000
    done
    return 0
}

write_cfg() { # write_cfg NAME MEMORY EXTRA_CMDLINE
    cat >"/etc/xen/$1.cfg" <<CFG
name = "$1"
type = "pvh"
kernel = "/boot/qwall.xen"
memory = $2
maxmem = $2
vcpus = 1
tsc_mode = "native"
on_poweroff = "destroy"
on_reboot = "destroy"
on_crash = "destroy"
cmdline = "$3"
CFG
}

gone() { ! xl list "$1" >/dev/null 2>&1; }

show_console() {
    echo "---- console of $1 ----"
    cat "$con/guest-$1.log" 2>/dev/null
    echo "---- end of console of $1 ----"
}

xl info | grep -E '^(xen_version|virt_caps|free_memory)'

# Linux's default kernelopts are in the command line on purpose: the
# image must ignore tokens it does not know.
opts="root=/dev/mapper/dmroot ro nomodeset console=hvc0 rd_NO_PLYMOUTH"
opts="$opts --ipv4=10.137.0.5 --ipv4-gw=10.137.0.1 --ipv4-dns=10.139.1.1"
opts="$opts --ipv4-dns2=10.139.1.2 --nat-table-size=2000 --log-level=debug"
opts="$opts --drop-silently --selftest"
write_cfg qwall 8 "$opts"

t0=$(ms)
if ! xl create /etc/xen/qwall.cfg >/tmp/xl.out 2>&1; then
    cat /tmp/xl.out
    fail create "xl create failed"
    exit 0
fi
pass create "xl create returned after $(($(ms) - t0)) ms"; cat /tmp/xl.out
domid=$(xl domid qwall)

if wait_log qwall 'qwall: booting' 10000; then
    t1=$(ms)
    pass first-line "boot to first console line $((t1 - t0)) ms"
    echo "QWT-INFO boot-first-line-ms $((t1 - t0))"
else
    fail first-line "no console output in 10 s"
fi
if [ "$mode" = boot ]; then
    sleep 2
    show_console qwall
    xl destroy qwall
    exit 0
fi

if wait_log qwall 'xs: ready' 10000; then
    t2=$(ms)
    pass xenstore-ready "boot to xenstore ready $((t2 - t0)) ms"
    echo "QWT-INFO boot-xenstore-ready-ms $((t2 - t0))"
else
    fail xenstore-ready "no 'xs: ready' in 10 s"
fi
check memory-map grep -qE 'boot: memory map 0: .* type 1' "$con/guest-qwall.log"
check mm-report grep -qE 'mm: .* pages free' "$con/guest-qwall.log"
check cmdline grep -qE 'cmdline: ipv4 10.137.0.5 gw 10.137.0.1 dns 10.139.1.1 10.139.1.2 nat 2000 .*drop-silently 1 .*unknown 5' "$con/guest-qwall.log"
check domid-name grep -qE "xs: domid $domid name qwall" "$con/guest-qwall.log"
if wait_log qwall 'timer: test timer fired 10 times every 100 ms, 0 early, .*VIRQ_TIMER events [1-9]' 8000; then
    pass timer "$(grep -m1 -oE 'timer: test timer fired.*' "$con/guest-qwall.log")"
else
    fail timer "no timer line"
fi

# Watch: dom0 writes a key the guest watches.
val="ping-$(ms)"
xenstore-write "/local/domain/$domid/data/qwt-ping" "$val"
if wait_log qwall "watch: data/qwt-ping = $val" 5000; then
    pass watch "guest saw dom0's write ($val)"
else
    fail watch "guest did not report data/qwt-ping = $val"
fi

check unwatch grep -q 'watch: unwatched data/qwt-ping (2 watches left)' "$con/guest-qwall.log"
xenstore-write "/local/domain/$domid/data/qwt-ping" "after-unwatch"
sleep 1
if grep -q 'after-unwatch' "$con/guest-qwall.log"; then
    fail no-event-after-unwatch "guest still reports data/qwt-ping"
else
    pass no-event-after-unwatch "write after unwatch not reported"
fi
check transaction grep -q 'xs: transaction commit ok, abort ok' "$con/guest-qwall.log"
check transaction-dom0-view [ "$(xenstore-read /local/domain/$domid/data/qwt-tx)" = committed ]
check directory grep -qE 'xs: directory control: [0-9]+ entries \(.*feature-poweroff' "$con/guest-qwall.log"
check error-mapping grep -q 'xs: write outside our tree gives -13 (EACCES is -13)' "$con/guest-qwall.log"
check feature-poweroff [ "$(xenstore-read /local/domain/$domid/control/feature-poweroff)" = 1 ]

# Grant round trip with dom0 (gnthelper maps the guest's grant, shares
# two pages back; the guest grant-copies in and out).
if gnthelper "$domid" >/tmp/gnt.out 2>&1; then
    pass grant-helper "$(tail -n 1 /tmp/gnt.out)"
else
    cat /tmp/gnt.out
    fail grant-helper "$(tail -n 1 /tmp/gnt.out)"
fi
if wait_log qwall 'gnttab: round trip ok' 5000; then
    pass grant-guest "$(grep -m1 -oE 'gnttab: round trip ok.*' "$con/guest-qwall.log")"
else
    fail grant-guest "no 'gnttab: round trip ok'"
fi
# 50 rounds; notifications that meet in flight coalesce into one event,
# so the guest may count a few fewer (a lost event stalls the helper).
check event-channel grep -qE 'evtchn: ([3-9][0-9]|[0-9]{3,}) events from dom0 answered' "$con/guest-qwall.log"
check grant-map grep -qE 'gnttab: mapped dom0 gref [0-9]+ at 0x100004000 \(pattern ok\), unmap 0' "$con/guest-qwall.log"
check grant-revoke-refused grep -q 'gnttab: revoke refused while dom0 maps' "$con/guest-qwall.log"

# Clean shutdown through control/shutdown: the guest must acknowledge and
# power off within 5 s; the toolstack's teardown (slow under TCG on a
# loaded host) gets 10 s more. Teardown is polled through xenstore (cheap;
# libxl removes the domain's directory when it destroys the domain) rather
# than with `xl list`, which alone takes a good part of a second here.
t3=$(ms)
xl shutdown qwall >/tmp/xl-shutdown.out 2>&1
if wait_log qwall 'lifecycle: powering off' 5000; then
    t4=$(ms)
    pass shutdown "guest powered off $((t4 - t3)) ms after xl shutdown"
else
    t4=$(ms)
    cat /tmp/xl-shutdown.out
    fail shutdown "guest did not power off within 5 s"
fi
while xenstore-exists "/local/domain/$domid" 2>/dev/null &&
    [ $(($(ms) - t3)) -lt 15000 ]; do
    usleep 20000
done
t5=$(ms)
for _ in 1 2 3 4 5 6 7 8 9 10; do gone qwall && break; sleep 0.5; done
if gone qwall; then
    pass shutdown-gone "domain destroyed $((t5 - t3)) ms after xl shutdown"
else
    fail shutdown-gone "domain still there"
    xl destroy qwall 2>/dev/null
fi
echo "QWT-INFO shutdown-ms $((t4 - t3)) (guest powered off)"
echo "QWT-INFO shutdown-gone-ms $((t5 - t3)) (domain destroyed)"
check shutdown-ack grep -q 'lifecycle: poweroff requested' "$con/guest-qwall.log"
if grep -q "idle: woke" "$con/guest-qwall.log"; then echo "QWT-INFO late-wakeups $(grep -c "idle: woke" "$con/guest-qwall.log") (host starved or timer lost)"; fi
check console-lost grep -qE 'lifecycle: powering off .*console lost 0' "$con/guest-qwall.log"
show_console qwall

# Deliberate faults: a stack overflow must hit the guard page and be
# reported from the double-fault stack; a NULL read must fault (page 0 is
# not mapped). Either way the domain crashes (on_crash=destroy) and goes.
for c in stack null; do
    n=qwc-$c
    write_cfg $n 8 "--selftest-crash=$c"
    xl create "/etc/xen/$n.cfg" >/tmp/xl-$n.out 2>&1
    t5=$(ms)
    while ! gone $n && [ $(($(ms) - t5)) -lt 10000 ]; do usleep 100000; done
    gone $n || xl destroy $n >/dev/null 2>&1
    case $c in
    stack) pat='cpu: exception 8 ' ;;
    null) pat='cpu: exception 14 error 0x0 .*cr2 0x0 ' ;;
    esac
    if grep -qE "$pat" "$con/guest-$n.log" 2>/dev/null; then
        pass "crash-$c" "$(grep -m1 -oE 'cpu: exception.*' "$con/guest-$n.log")"
    else
        fail "crash-$c" "no trap report"
        tail -n 5 "$con/guest-$n.log" 2>/dev/null
    fi
done

# Smallest memory= that still boots to xenstore readiness, and smallest
# with which the core (default configuration: 5000 connections, 64
# clients) also fits.
smallest=
smallest_core=
for m in 12 8 6 4 3 2 1; do
    n=qwm$m
    write_cfg $n $m ""
    if xl create "/etc/xen/$n.cfg" >/tmp/xl-$n.out 2>&1 &&
        wait_log $n 'core: (qw_create|not linked|need)' 8000; then
        smallest=$m
        if grep -q 'core: qw_create ok' "$con/guest-$n.log"; then
            smallest_core=$m
            echo "QWT-INFO memory-$m boots, core created"
        else
            echo "QWT-INFO memory-$m boots, $(grep -m1 -oE 'core: .*' "$con/guest-$n.log")"
        fi
    else
        echo "QWT-INFO memory-$m does-not-boot $(tail -n 1 /tmp/xl-$n.out)"
        tail -n 3 "$con/guest-$n.log" 2>/dev/null
        xl destroy $n >/dev/null 2>&1
        break
    fi
    xl destroy $n >/dev/null 2>&1
done
echo "QWT-INFO smallest-memory-mib ${smallest:-none} (to xenstore ready)"
echo "QWT-INFO smallest-memory-core-mib ${smallest_core:-none} (core created, default config)"
