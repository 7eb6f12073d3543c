#!/bin/bash
# mkinitramfs.sh LAB IMAGE HELPER: build LAB/dom0.cpio, the dom0 root file
# system for check-xen: busybox, the Xen toolstack pieces xl needs
# (xenstored, xenconsoled, xen-init-dom0, xl and their libraries from the
# unpacked .debs), the Xen kernel modules of the dom0 kernel, the test
# driver (dom0-test.sh), the grant helper and qwall.xen itself.
set -euo pipefail

lab=$(realpath "${1:?usage: mkinitramfs.sh LAB IMAGE HELPER}")
image=${2:?}
helper=${3:?}
here=$(cd "$(dirname "$0")" && pwd)
pkg="$lab/root"
kver=$(cat "$lab/kver")
xbin="$pkg/usr/lib/xen-4.17/bin"
xlib="$pkg/usr/lib/x86_64-linux-gnu"
r="$lab/initramfs"

rm -rf "$r"
mkdir -p "$r"/{bin,sbin,etc/xen,proc,sys,dev,run,tmp,var/lib/xen,var/log/xen/console,var/lock,lib/x86_64-linux-gnu,lib64,usr/bin,usr/sbin,boot}
ln -s ../run "$r/var/run"
cp /bin/busybox "$r/bin/busybox"
for a in $(/bin/busybox --list); do
    [ "$a" = busybox ] || ln -sf busybox "$r/bin/$a"
done

tools="xl xenstored xenconsoled xen-init-dom0 libxl-save-helper"
for t in $tools; do
    install -m 755 "$xbin/$t" "$r/usr/sbin/$t"
done
install -m 755 "$pkg/usr/bin/xenstore" "$r/usr/bin/xenstore"
for v in read write rm ls exists watch; do
    ln -sf xenstore "$r/usr/bin/xenstore-$v"
done

# Shared libraries: Xen's from the unpacked packages, the rest (glibc,
# same Debian release) from the host. glibc loads libgcc_s at run time for
# thread cancellation, which xl's background child uses.
libs=$(for t in $tools; do echo "$xbin/$t"; done; echo "$pkg/usr/bin/xenstore")
LD_LIBRARY_PATH="$xlib" ldd $libs 2>/dev/null |
    awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\/lib64\// {print $1}' |
    sort -u | while read -r so; do
    case "$so" in
    /lib64/*) cp -L "$so" "$r/lib64/" ;;
    *) cp -L "$so" "$r/lib/x86_64-linux-gnu/" ;;
    esac
done
cp -L /lib/x86_64-linux-gnu/libgcc_s.so.1 "$r/lib/x86_64-linux-gnu/"

# Kernel modules with their dependencies.
mods="xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xenfs"
for m in $mods; do
    modprobe -d "$pkg" -S "$kver" --show-depends "$m" |
        awk '$1 == "insmod" {print $2}'
done | sort -u | while read -r ko; do
    rel=${ko#"$pkg"}
    mkdir -p "$r/$(dirname "$rel")"
    cp "$ko" "$r/$rel"
done
mkdir -p "$r/lib/modules/$kver"
cp "$pkg/lib/modules/$kver"/modules.{order,builtin,builtin.modinfo} \
    "$r/lib/modules/$kver/"
depmod -b "$r" "$kver"

install -m 755 "$here/dom0-init" "$r/init"
install -m 755 "$here/dom0-test.sh" "$r/dom0-test.sh"
install -m 755 "$helper" "$r/usr/bin/gnthelper"
cp "$image" "$r/boot/qwall.xen"
cat >"$r/etc/xen/xl.conf" <<XL
autoballoon="off"
run_hotplug_scripts=1
lockfile="/var/lock/xl"
XL

(cd "$r" && find . -print0 | cpio --null -o -H newc --quiet) >"$lab/dom0.cpio"
echo "check-xen: dom0 initramfs $(du -k "$lab/dom0.cpio" | cut -f1) KiB"
