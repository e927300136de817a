#!/bin/bash
# Runs a command as if this host's /dev/kvm were something else, to exercise the kvmcheck tests' other
# branches on a machine without KVM. In a private mount namespace /dev becomes a tmpfs with the usual nodes
# and a /dev/kvm that is /dev/null's device (c 1 3): not a KVM device, so `absent`. With --denied the node
# has mode 000 and the command runs as nobody: kvmcheck says `unusable` (permission). The host's /dev is not
# touched. Needs root.
#   scripts/fake-kvm-host.sh [--denied] CMD...
#   e.g. KV_BUILD_ROOT=$PWD/build KV_GUEST_DIR=/work/guest scripts/fake-kvm-host.sh --denied \
#        /usr/bin/python3 kvmcheck/test-consistency.py build/kvmcheck/kvmcheck
set -euo pipefail
if [ "${1:-}" != --inside ]; then
	exec unshare --mount --propagation private -- "$0" --inside "$@"
fi
shift
mode=666 as=()
if [ "${1:-}" = --denied ]; then
	mode=000 as=(setpriv --reuid=65534 --regid=65534 --clear-groups)
	shift
fi
dev=$(mktemp -d)
mount -t tmpfs kvfakedev "$dev"
for n in null zero full random urandom tty; do
	mknod -m 666 "$dev/$n" c $((0x$(stat -c %t /dev/$n))) $((0x$(stat -c %T /dev/$n)))
done
mkdir -m 1777 "$dev/shm"
mknod -m "$mode" "$dev/kvm" c 1 3
mount --move "$dev" /dev
rmdir "$dev"
exec "${as[@]}" "$@"
