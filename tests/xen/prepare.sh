#!/bin/bash
# prepare.sh OUT: everything check-xen needs except qwall.xen itself.
#
# Installs the host tools if missing (qemu-system-x86, busybox-static,
# cpio, kmod, libxen-dev), fetches Debian's Xen 4.17 hypervisor, its
# toolstack and a Linux kernel as .debs (apt-get download; nothing of Xen is
# installed on the host) and unpacks them under OUT/root. The downloads are
# cached: a second run only rebuilds what changed. Produces OUT/xen.elf
# (the hypervisor, a multiboot ELF for QEMU -kernel) and OUT/vmlinuz
# (the dom0 kernel). The dom0 initramfs is built by mkinitramfs.sh.
set -euo pipefail

mkdir -p "${1:?usage: prepare.sh OUT}"
out=$(realpath "$1")
xv=4.17
mkdir -p "$out/debs"
say() { echo "check-xen: $*"; }

missing=()
for p in qemu-system-x86 busybox-static cpio kmod libxen-dev gcc; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'
    then
        missing+=("$p")
    fi
done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -e "$out/root/.done" ]; then
    # linux-image-amd64 is a meta package; fetch the image it points to.
    kimg=$(apt-cache depends linux-image-amd64 2>/dev/null |
        sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -n 1)
    if [ -z "$kimg" ]; then
        apt-get update -qq
        kimg=$(apt-cache depends linux-image-amd64 |
            sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -n 1)
    fi
    want="xen-hypervisor-$xv-amd64 xen-utils-$xv xenstore-utils $kimg
          libxenmisc$xv libxencall1 libxenevtchn1 libxenforeignmemory1
          libxengnttab1 libxenstore4 libxentoollog1 libxendevicemodel1
          libxenhypfs1 libxentoolcore1 libyajl2"
    say "downloading $(echo $want)"
    (cd "$out/debs" && apt-get download $want >/dev/null 2>&1) || {
        apt-get update -qq
        (cd "$out/debs" && apt-get download $want >/dev/null)
    }
    rm -rf "$out/root"
    mkdir -p "$out/root"
    for d in "$out"/debs/*.deb; do
        dpkg-deb -x "$d" "$out/root"
    done
    touch "$out/root/.done"
fi

kver=$(ls "$out/root/lib/modules" | sort | tail -n 1)
[ -e "$out/root/lib/modules/$kver/modules.dep" ] ||
    depmod -b "$out/root" "$kver"
# Debian ships the hypervisor gzipped; unpacked it is a 32-bit multiboot
# ELF that QEMU's -kernel loads directly.
[ "$out/xen.elf" -nt "$out/root/.done" ] ||
    zcat "$out/root/boot/xen-$xv-amd64.gz" >"$out/xen.elf"
cp -u "$out/root/boot/vmlinuz-$kver" "$out/vmlinuz"
echo "$kver" >"$out/kver"
say "Xen $xv and Linux $kver ready in $out"
