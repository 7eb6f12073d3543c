#!/bin/bash
# check-xen.sh LAB IMAGE HELPER LOGDIR [MODE]: boot qwall.xen on real Xen.
#
# Prepares Debian's Xen 4.17 + a Linux PV dom0 (prepare.sh, cached in
# LAB), builds the dom0 initramfs with IMAGE and the grant helper
# (mkinitramfs.sh), boots it all under QEMU TCG and lets dom0-test.sh
# create qwall.xen as a PVH guest. Every QWT-RESULT line becomes one
# passed/failed check; QWT-INFO lines are measurements. The whole serial
# log is kept in LOGDIR. A run that dies from one of the lab's known flaky
# failures (dom0 user-space crash, QEMU/Xen stall with no result) is
# retried once, and the output says so. Ends with "N passed, N failed".
#
# Environment: QWT_CPU (max,-smap,-avx,-avx2), QWT_TIMEOUT (240 s),
# QWT_MODE (full; "boot" only boots the image and prints its console).
set -uo pipefail

mkdir -p "${1:?usage: check-xen.sh LAB IMAGE HELPER LOGDIR}"
lab=$(realpath "$1")
image=${2:?}
helper=${3:?}
logdir=${4:?}
mode=${QWT_MODE:-full}
cpu=${QWT_CPU:-max,-smap,-avx,-avx2}
timeout=${QWT_TIMEOUT:-240}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$logdir"

"$here/prepare.sh" "$lab" || { echo "0 passed, 1 failed"; exit 1; }
"$here/mkinitramfs.sh" "$lab" "$image" "$helper" ||
    { echo "0 passed, 1 failed"; exit 1; }

# Without Xen (QEMU's own PVH loader), the image must notice that no
# hypercall page can be installed, say so on port 0xE9 and stop instead
# of faulting.
nox=$(timeout 8 qemu-system-x86_64 -machine pc,accel=tcg -cpu max -m 64 \
    -nic none -display none -monitor none -serial none -debugcon stdio \
    -no-reboot -kernel "$image" 2>/dev/null </dev/null)
if echo "$nox" | grep -q 'not running on Xen'; then
    noxen="PASS no-xen-fallback image stops cleanly without Xen"
else
    noxen="FAIL no-xen-fallback no message on port 0xE9 without Xen"
fi

# run_once LOG: one QEMU boot; the serial console goes to LOG with the
# host's elapsed seconds in front of each line.
run_once() {
    local log=$1 start us
    start=${EPOCHREALTIME/./}
    # QEMU's multiboot loader: Xen is the kernel, the dom0 kernel (with its
    # command line) and the initramfs are modules. Xen's own console is
    # the serial port; dom0's console goes through Xen to the same port.
    timeout --signal=KILL "$timeout" qemu-system-x86_64 \
        -machine pc,accel=tcg -cpu "$cpu" -smp 2 -m 1536 \
        -no-reboot -nic none -display none -monitor none -serial stdio \
        -kernel "$lab/xen.elf" \
        -append "console=com1 com1=115200,8n1 loglvl=all guest_loglvl=all console_timestamps=boot dom0_mem=384M,max:384M" \
        -initrd "$lab/vmlinuz console=hvc0 earlyprintk=xen rdinit=/init qwt=$mode,$lab/dom0.cpio" \
        </dev/null 2>&1 |
        while IFS= read -r line; do
            us=$((${EPOCHREALTIME/./} - start))
            printf '[%4d.%02d] %s\n' $((us / 1000000)) \
                $((us / 10000 % 100)) "${line%$'\r'}"
        done >"$log"
}

# flaky LOG: true if the run failed in one of the lab's known ways.
flaky() {
    ! grep -q 'QWT-END' "$1" ||
        grep -qE 'segfault at|general protection fault|Hardware Dom0 crashed|Kernel panic' "$1"
}

attempt=1
while :; do
    log="$logdir/serial-$(date +%Y%m%d-%H%M%S)-try$attempt.log"
    echo "check-xen: booting Xen + dom0 under QEMU (cpu $cpu, mode $mode), log $log"
    t0=$(date +%s)
    run_once "$log"
    t1=$(date +%s)
    if grep -q 'QWT-RESULT FAIL' "$log" || ! grep -q 'QWT-END' "$log"; then
        if [ "$attempt" -eq 1 ] && flaky "$log"; then
            echo "check-xen: run $attempt hit a known flaky lab failure" \
                "($(grep -m1 -oE 'segfault at|general protection fault|Hardware Dom0 crashed|Kernel panic' "$log" || echo 'no QWT-END')), retrying once"
            attempt=2
            continue
        fi
    fi
    break
done

echo "check-xen: QEMU ran $((t1 - t0)) s (attempt $attempt)"
sed -n '/^\[.*\] ---- console of qwall ----/,/---- end of console of qwall ----/p' "$log" |
    sed 's/^\[ *[0-9.]*\] /  | /'
grep -E 'QWT-INFO' "$log" | sed 's/^\[ *[0-9.]*\] QWT-INFO /check-xen: measured /'
# Xen time stamps its console lines with its system time, which is also
# the guest's clock: domain build (libxl saving the new domain's HVM
# context) -> PVH entry (port 0xE9 line) -> "xs: ready" (guest log).
dom=$(grep -m1 -oE 'QWT-RESULT PASS domid-name' "$log" >/dev/null &&
    sed -n 's/.*(d\([0-9]*\)) \[ *[0-9.]*\] qwall: PVH entry.*/\1/p' "$log" | head -n 1)
if [ -n "$dom" ]; then
    tb=$(sed -n "s/.*(XEN) \[ *\([0-9.]*\)\] HVM d${dom}v0 save: CPU.*/\1/p" "$log" | head -n 1)
    te=$(sed -n "s/.*(d${dom}) \[ *\([0-9.]*\)\] qwall: PVH entry.*/\1/p" "$log" | head -n 1)
    tx=$(sed -n 's/.*\] \[ *\([0-9.]*\)\] xs: ready.*/\1/p' "$log" | head -n 1)
    if [ -n "$tb" ] && [ -n "$te" ] && [ -n "$tx" ]; then
        awk -v b="$tb" -v e="$te" -v x="$tx" 'BEGIN {
            printf "check-xen: measured (Xen clock) domain build -> PVH entry %.0f ms, entry -> xenstore ready %.0f ms\n", (e - b) * 1000, (x - e) * 1000 }'
    fi
fi
pass=0
fail=0
echo "  $noxen"
case "$noxen" in PASS*) pass=1 ;; *) fail=1 ;; esac
while IFS= read -r line; do
    r=${line#*QWT-RESULT }
    echo "  $r"
    case "$r" in
    PASS*) pass=$((pass + 1)) ;;
    *) fail=$((fail + 1)) ;;
    esac
done < <(grep 'QWT-RESULT' "$log")
if ! grep -q 'QWT-END' "$log"; then
    echo "  FAIL dom0 test driver did not finish (see $log)"
    grep -E '\(XEN\).*(crash|Triple|Panic)|\(d[0-9]+\)' "$log" | tail -n 20 | sed 's/^/    /'
    fail=$((fail + 1))
fi
if [ "$pass" -eq 0 ] && [ "$fail" -eq 0 ]; then
    fail=1
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
