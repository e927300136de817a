#!/usr/bin/env bash
# Builds the test guest described in tests/guest/README.md into OUTDIR from Debian packages only.
# Cached: does nothing when OUTDIR/VERSION names the same package versions and the same build inputs.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# What /init loads: before the readiness marker only what the power button needs (each insmod costs 10-20 ms
# under TCG), everything else right after it. build.sh adds dependencies (modules.dep) and orders them.
# The cloud kernel has no AHCI driver: on q35, CD-ROMs and disks must be virtio or SCSI.
MODULES_EARLY=(button evdev)
MODULES_LATE=(virtio_pci virtio_blk virtio_net virtio_scsi sd_mod sr_mod isofs vfat nls_cp437 nls_ascii nls_utf8
	virtio_console virtio-rng virtio_balloon virtio_mem ata_piix virtiofs pvpanic_mmio
	pvpanic_pci)
DISK_MB=48
# Debian's qemu-guest-agent runs in the guest with the host's copies of the libraries `ldd` lists for it (the
# same Debian 12 packages; ci/deps.sh installs them): their versions are part of the cache key.
AGENT_LIB_PACKAGES=(libc6 libglib2.0-0 libpcre2-8-0 libudev1 libnuma1 liburing2)

usage() {
	cat <<EOF
usage: $0 OUTDIR
Builds the test guest (kernel, busybox initramfs, bootable qcow2) from Debian packages into OUTDIR.
See tests/guest/README.md for what OUTDIR holds. Does nothing when OUTDIR is up to date.
EOF
}
die() { echo "tests/guest/build.sh: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null || die "missing $1 (package $2; run ci/deps.sh)"; }

candidates() { # Debian packages... -> "package version" lines for what apt would download
	apt-cache policy "$@" 2>/dev/null |
		awk '/^[^ ]/ { sub(/:$/, ""); p = $0 } $1 == "Candidate:" && $2 != "(none)" { print p, $2 }'
}
candidate() { candidates "$1" | awk '{ print $2 }'; }
installed() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo none; }

# linux-image-cloud-amd64 is a metapackage; the kernel is in the versioned package it depends on.
kernel_package() {
	apt-cache show --no-all-versions linux-image-cloud-amd64 2>/dev/null |
		sed -n 's/^Depends: .*\(linux-image-[0-9][^ ,]*-cloud-amd64\).*/\1/p' | head -1
}

host_packages_stamp() { # what the guest takes from the host: the agent's libraries, /etc/os-release
	local p
	for p in "${AGENT_LIB_PACKAGES[@]}" base-files; do printf '%s %s ' "$p" "$(installed "$p")"; done
	echo
}

inputs_hash() { cat "$HERE/build.sh" "$HERE/init" "$HERE/udhcpc.sh" "$HERE/chpasswd" | sha256sum | cut -d' ' -f1; }

# What the cache key is made of: package versions, host tools that end up in the image, our inputs.
version_stamp() {
	local kpkg
	kpkg=$(kernel_package)
	[ -n "$kpkg" ] || die "cannot resolve the kernel package of linux-image-cloud-amd64"
	candidates linux-image-cloud-amd64 "$kpkg" busybox-static qemu-guest-agent
	echo "syslinux $(installed syslinux) syslinux-common $(installed syslinux-common)"
	host_packages_stamp
	echo "inputs $(inputs_hash)"
}

# apt-cache takes about a second here (no pkgcache.bin), so a run first checks this cheaper key: the
# version stamp can only change when the package lists, syslinux or our inputs do.
quick_key() {
	{
		stat -c '%n %s %Y' /var/lib/apt/lists/*Packages* 2>/dev/null || true
		installed syslinux
		installed syslinux-common
		host_packages_stamp
		inputs_hash
	} | sha256sum | cut -d' ' -f1
}

outputs_present() {
	local f
	for f in vmlinuz initrd.img disk.qcow2 containerdisk/disk/disk.qcow2 kernelboot/boot/vmlinuz \
		kernelboot/boot/initrd.img; do
		[ -s "$OUT/$f" ] || return 1
	done
}

fetch() { # dir: downloads the kernel, busybox and qemu-guest-agent .debs of the current candidate versions
	local opts=(-q) kpkg
	[ "$(id -u)" != 0 ] || opts+=(-o APT::Sandbox::User=root) # root's temp dir is closed to _apt
	kpkg=$(kernel_package)
	[ -n "$kpkg" ] || return 1
	(cd "$1" && apt-get download "${opts[@]}" "busybox-static=$(candidate busybox-static)" \
		"$kpkg=$(candidate "$kpkg")" "qemu-guest-agent=$(candidate qemu-guest-agent)" >/dev/null)
}

download() { # dir
	# Stale package lists name versions the archive no longer has (kernel security updates): refresh once.
	fetch "$1" 2>/dev/null || { apt-get update -q >/dev/null && fetch "$1"; } ||
		die "apt-get download of the kernel, busybox-static and qemu-guest-agent failed"
}

# Prints the modules to load, in load order: each after everything it depends on (modules.dep).
module_load_order() { # modules.dep, names...
	local dep=$1
	shift
	awk -v want="$*" '
		function base(p) { sub(/.*\//, "", p); sub(/\.ko(\.[a-z]+)?$/, "", p); gsub(/-/, "_", p); return p }
		function visit(m,   n, i, d) {
			if (m in done) return
			done[m] = 1
			if (!(m in path)) { print "unknown module " m > "/dev/stderr"; exit 1 }
			n = split(deps[m], d, " ")
			for (i = 1; i <= n; i++) visit(base(d[i]))
			print path[m]
		}
		{ sub(/:$/, "", $1); m = base($1); path[m] = $1; $1 = ""; deps[m] = $0 }
		END { n = split(want, w, " "); for (i = 1; i <= n; i++) { x = w[i]; gsub(/-/, "_", x); visit(x) } }
	' "$dep"
}

# qemu-ga and every library `ldd` resolves for it, at the same paths, and Debian's /etc/os-release (what
# guest-get-osinfo reports), as /agent.tar.gz: /init unpacks it after the readiness marker, so the kernel's
# initramfs unpacking (before /init) only copies its already compressed bytes and boot time stays the same.
install_agent() { # extracted packages dir, staging dir, output tarball
	local ga=$1/usr/sbin/qemu-ga lib missing
	[ -x "$ga" ] || die "no /usr/sbin/qemu-ga in the qemu-guest-agent package"
	missing=$(ldd "$ga" | grep 'not found' || true)
	[ -z "$missing" ] || die "qemu-ga needs libraries this host lacks (run ci/deps.sh): $missing"
	mkdir -p "$2/usr/sbin" "$2/etc"
	cp "$ga" "$2/usr/sbin/qemu-ga"
	for lib in $(ldd "$ga" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'); do
		mkdir -p "$2/$(dirname "$lib")"
		cp -L "$lib" "$2/$lib"
	done
	cp -L /usr/lib/os-release "$2/etc/os-release"
	(cd "$2" && find . -mindepth 1 | LC_ALL=C sort | tar -c --no-recursion --owner=0 --group=0 -T - |
		gzip -6 -n >"$3")
}

build_initrd() { # extracted packages dir, kernel version, staging dir, output file
	local pkgs=$1 kver=$2 root=$3 out=$4 bb=$1/bin/busybox m
	mkdir -p "$root"/{bin,sbin,etc/acpi/PWRF,dev,proc,sys,run,tmp,mnt,www,lib/modules/"$kver"}
	cp "$bb" "$root/bin/busybox"
	for m in $("$bb" --list); do
		[ "$m" = busybox ] || ln -s busybox "$root/bin/$m"
	done
	"$bb" depmod -b "$pkgs" "$kver"
	local dep=$pkgs/lib/modules/$kver/modules.dep
	module_load_order "$dep" "${MODULES_EARLY[@]}" >"$root/etc/modules.early"
	module_load_order "$dep" "${MODULES_EARLY[@]}" "${MODULES_LATE[@]}" |
		grep -vxFf "$root/etc/modules.early" >"$root/etc/modules.late"
	for m in $(cat "$root/etc/modules.early" "$root/etc/modules.late"); do
		mkdir -p "$root/lib/modules/$kver/$(dirname "$m")"
		cp "$pkgs/lib/modules/$kver/$m" "$root/lib/modules/$kver/$m"
	done
	sed -i "s|^|/lib/modules/$kver/|" "$root/etc/modules.early" "$root/etc/modules.late"
	"$bb" depmod -b "$root" "$kver" # so that modprobe works in the guest's shell
	install_agent "$pkgs" "$root.agent" "$root/agent.tar.gz"
	install -m 755 "$HERE/init" "$root/init"
	install -m 755 "$HERE/udhcpc.sh" "$root/etc/udhcpc.sh"
	# Accounts for the guest agent's guest-ssh-*-authorized-keys and guest-set-user-password
	install -m 755 "$HERE/chpasswd" "$root/sbin/chpasswd"
	mkdir -p -m 700 "$root/root"
	printf 'root:x:0:0:root:/root:/bin/sh\nkvuser:x:1000:1000:kvuser:/home/kvuser:/bin/sh\n' >"$root/etc/passwd"
	printf 'root:x:0:\nkvuser:x:1000:\n' >"$root/etc/group"
	printf 'root:*:20000:0:99999:7:::\nkvuser:*:20000:0:99999:7:::\n' >"$root/etc/shadow"
	chmod 600 "$root/etc/shadow"
	mkdir -p "$root/home/kvuser"
	printf '#!/bin/sh\nsync\npoweroff -f\n' >"$root/etc/acpi/PWRF/00000080"
	chmod 755 "$root/etc/acpi/PWRF/00000080"
	(cd "$root" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) | gzip -6 -n >"$out"
}

build_disk() { # vmlinuz, initrd, work dir, output qcow2
	local img=$3/fat.img
	cat >"$3/syslinux.cfg" <<EOF
SERIAL 0 115200
DEFAULT kvguest
PROMPT 0
TIMEOUT 0
LABEL kvguest
  LINUX /vmlinuz
  INITRD /initrd.img
  APPEND console=ttyS0
EOF
	# Unpartitioned FAT ("superfloppy"): syslinux's boot sector is sector 0, which is all SeaBIOS needs,
	# and mtools writes it without loop devices or root.
	mkfs.vfat -C -n KVGUEST "$img" $((DISK_MB * 1024)) >/dev/null
	MTOOLS_SKIP_CHECK=1 mcopy -i "$img" "$1" ::/vmlinuz
	MTOOLS_SKIP_CHECK=1 mcopy -i "$img" "$2" ::/initrd.img
	MTOOLS_SKIP_CHECK=1 mcopy -i "$img" "$3/syslinux.cfg" ::/syslinux.cfg
	syslinux --install "$img"
	qemu-img convert -q -f raw -O qcow2 "$img" "$4"
}

build() { # work dir, new OUTDIR
	local work=$1 new=$2 deb kver
	download "$work"
	mkdir -p "$work/pkgs"
	for deb in "$work"/*.deb; do dpkg-deb -x "$deb" "$work/pkgs"; done
	kver=$(basename "$(ls -d "$work"/pkgs/lib/modules/*)")
	[ -f "$work/pkgs/boot/vmlinuz-$kver" ] || die "no /boot/vmlinuz-$kver in the kernel package"
	mkdir -p "$new/containerdisk/disk" "$new/kernelboot/boot"
	cp "$work/pkgs/boot/vmlinuz-$kver" "$new/vmlinuz"
	build_initrd "$work/pkgs" "$kver" "$work/root" "$new/initrd.img"
	build_disk "$new/vmlinuz" "$new/initrd.img" "$work" "$new/disk.qcow2"
	cp "$new/disk.qcow2" "$new/containerdisk/disk/disk.qcow2"
	cp "$new/vmlinuz" "$new/initrd.img" "$new/kernelboot/boot/"
}

main() {
	[ $# -eq 1 ] || { usage >&2; exit 2; }
	case $1 in -h | --help) usage; exit 0 ;; esac
	OUT=$(realpath -m "$1")
	for t in apt-get:apt dpkg-deb:dpkg cpio:cpio gzip:gzip mkfs.vfat:dosfstools mcopy:mtools \
		syslinux:syslinux qemu-img:qemu-utils flock:util-linux; do
		need "${t%%:*}" "${t#*:}"
	done
	[ -f /usr/lib/syslinux/modules/bios/ldlinux.c32 ] || die "missing syslinux-common (run ci/deps.sh)"

	mkdir -p "$(dirname "$OUT")"
	exec 9>"$OUT.lock"
	flock 9 # two builds of the same OUTDIR wait for each other instead of mixing files

	local key stamp
	key=$(quick_key)
	if [ -f "$OUT/.quickkey" ] && [ "$(cat "$OUT/.quickkey")" = "$key" ] && outputs_present; then
		exit 0
	fi
	# Fresh machines may have no package lists yet.
	stamp=$(version_stamp) || { apt-get update -q >/dev/null && stamp=$(version_stamp); } || exit 1
	if [ -f "$OUT/VERSION" ] && [ "$(cat "$OUT/VERSION")" = "$stamp" ] && outputs_present; then
		quick_key >"$OUT/.quickkey"
		exit 0
	fi
	if [ -e "$OUT" ] && [ ! -f "$OUT/VERSION" ] && [ -n "$(ls -A "$OUT")" ]; then
		die "$OUT exists and is not a test guest directory (no VERSION); refusing to replace it"
	fi

	WORK=$(mktemp -d "${TMPDIR:-/tmp}/kvguest.XXXXXX")
	trap 'rm -rf "$WORK" "$OUT.new"' EXIT
	rm -rf "$OUT.new"
	build "$WORK" "$OUT.new"
	version_stamp >"$OUT.new/VERSION" # again: download may have refreshed the package lists
	quick_key >"$OUT.new/.quickkey"
	rm -rf "$OUT"
	mv "$OUT.new" "$OUT"
	echo "tests/guest/build.sh: built $OUT ($(head -2 "$OUT/VERSION" | tail -1))" >&2
}

main "$@"
