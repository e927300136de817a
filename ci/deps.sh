#!/usr/bin/env bash
# Installs every Debian package that building, running and testing this project needs.
# Idempotent and quick when everything is already there.
set -euo pipefail

PACKAGES=(
	# build
	meson ninja-build gcc clang llvm libclang-rt-14-dev pkg-config clang-format
	libcjson-dev libyaml-dev libseccomp-dev libcap-dev libcurl4-openssl-dev libedit-dev libisofs-dev
	libmnl-dev libnftables-dev libmicrohttpd-dev libarchive-dev libssl-dev libgnutls28-dev
	libmbedtls-dev
	libgrpc-dev libprotobuf-c-dev protobuf-c-compiler
	# run
	qemu-system-x86 qemu-utils ovmf passt iproute2 nftables swtpm
	# test guest (tests/guest/build.sh) and tests
	cpio xz-utils zstd gzip syslinux syslinux-common mtools dosfstools python3 valgrind ca-certificates openssl curl
	iperf3 socat containernetworking-plugins
	# what tests/guest/build.sh copies into the guest beside Debian's qemu-guest-agent (its ldd libraries)
	libglib2.0-0 libpcre2-8-0 libudev1 libnuma1 liburing2 base-files
	# the test kubelet's device-plugin side (gRPC, messages compiled from handler/deviceplugin.proto)
	python3-grpcio python3-protobuf protobuf-compiler
	# importer tests (registries, image build and push, htpasswd)
	docker-registry skopeo buildah apache2-utils
	# crds/ images (crds/build-images.sh: a debootstrap base) and the launcher Pod under podman kube play with runc
	debootstrap podman runc catatonit
)

missing=()
for p in "${PACKAGES[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "ci/deps.sh: installing ${missing[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q >/dev/null
	apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi
