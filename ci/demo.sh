#!/usr/bin/env bash
# The README's main job on a fresh Debian 12: installs packages, builds the test guest and the project, then
# boots examples/vmi-demo.yaml with virt-launcher, showing the guest's serial console (Ctrl-C powers it off).
# DEMO_SECONDS=N stops the VM gracefully after N seconds (for unattended runs).
set -euo pipefail
cd "$(dirname "$0")/.."

ci/deps.sh
tests/guest/build.sh .cache/guest
[ -d build ] || meson setup build >/dev/null
ninja -C build >/dev/null

run=$(mktemp -d "${TMPDIR:-/tmp}/kvlite-demo.XXXXXX")
pids=()
trap '[ ${#pids[@]} -eq 0 ] || kill "${pids[@]}" 2>/dev/null; rm -rf "$run"' EXIT
launcher=build/launcher/supervisor/virt-launcher
if [ -x "$launcher" ]; then
	# SIGTERM, like Ctrl-C, makes the launcher press the ACPI power button (then quit after the grace period).
	# No --image-root: the image reference falls back to this build's test guest, .cache/guest/containerdisk.
	timeout -s TERM "${DEMO_SECONDS:-infinity}" \
		"$launcher" --vmi examples/vmi-demo.yaml --run-dir "$run" --serial-stdout || [ $? -eq 124 ]
else
	echo "ci/demo.sh: no $launcher yet; booting the test guest with plain QEMU" >&2
	qemu-system-x86_64 -accel tcg -machine q35 -m 256M -nodefaults -no-user-config -display none \
		-kernel .cache/guest/vmlinuz -initrd .cache/guest/initrd.img -append console=ttyS0 \
		-serial stdio -qmp "unix:$run/qmp.sock,server=on,wait=off" </dev/null &
	pids+=($!)
	sleep "${DEMO_SECONDS:-8}"
	build/qmp/qmp "$run/qmp.sock" system_powerdown >/dev/null 2>&1 || kill "${pids[@]}"
	wait "${pids[-1]}"
fi
