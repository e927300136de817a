#!/usr/bin/env bash
# Builds every image of crds/ (Dockerfile.launcher, .controller, .virt-api, .importer, .handler) with buildah,
# pulling nothing from any registry (docs/images.md):
#  - the base: one Debian 12 root made by debootstrap (--variant=minbase) from Debian's mirror with every
#    package the Dockerfiles' runtime stages install, so their apt-get needs no network; cached as an OCI
#    image layout keyed by the package list and debootstrap's version, copied in as
#    localhost/kvlite-base:bookworm;
#  - with --build DIR, the binaries of that meson build (a DESTDIR install) go into an image, and each
#    Dockerfile is built with its `COPY --from=build` lines taking them from that image instead (the builder
#    stage, then unused, is skipped); without it the builder stage compiles from this source tree (its
#    apt-get then fetches the -dev packages from the mirror).
# The Dockerfiles keep their public defaults (debian:12, debian:12-slim) for `docker build` elsewhere.
#
# Usage: crds/build-images.sh [options]
#   --build DIR            binaries from this configured and built meson build directory
#   --cache DIR            where the base is kept (default: <source>/.cache/images)
#   --base-only            make (or find) the cached base, print its directory and stop
#   --root DIR             containers storage root (default: buildah's own); with --runroot
#   --runroot DIR          containers run root (default: buildah's own); with --root
#   --storage-driver NAME  overlay (default) or vfs
#   --tag TAG              image tag (default 0.1.0): kvlite/virt-launcher:TAG and the others
#   --push HOST:PORT       push every image to that registry as HOST:PORT/kvlite/NAME:TAG (plain HTTP)
#   --mirror URL           Debian mirror for debootstrap (default http://deb.debian.org/debian)
#   --help                 this text
# Exit codes: 0 built, 1 a step failed (its output is shown), 2 bad arguments.
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
CRDS=$SRC/crds
IMAGES=(launcher:virt-launcher controller:virt-controller virt-api:virt-api importer:importer handler:virt-handler)
BASE_IMAGE=localhost/kvlite-base:bookworm
BINARIES_IMAGE=localhost/kvlite-binaries:local

usage() { sed -n '/^# Usage:/,/^# Exit codes/s/^# \{0,1\}//p' "$0"; }
die_usage() {
	echo "build-images.sh: $*" >&2
	usage >&2
	exit 2
}

build="" cache=$SRC/.cache/images base_only=0 tag=0.1.0 push="" mirror=http://deb.debian.org/debian
root="" runroot="" driver=overlay
while [ $# -gt 0 ]; do
	case $1 in
	--build | --cache | --root | --runroot | --storage-driver | --tag | --push | --mirror)
		if [ $# -lt 2 ] || [ -z "$2" ]; then die_usage "$1 needs a value"; fi
		case $1 in
		--build) build=$(cd "$2" 2>/dev/null && pwd) || die_usage "--build: no directory $2" ;;
		--cache) cache=$2 ;;
		--root) root=$2 ;;
		--runroot) runroot=$2 ;;
		--storage-driver) driver=$2 ;;
		--tag) tag=$2 ;;
		--push) push=$2 ;;
		--mirror) mirror=$2 ;;
		esac
		shift 2
		;;
	--base-only)
		base_only=1
		shift
		;;
	--help | -h)
		usage
		exit 0
		;;
	*) die_usage "unknown argument $1" ;;
	esac
done
case $driver in overlay | vfs) ;; *) die_usage "--storage-driver: overlay or vfs, not $driver" ;; esac
store=(--storage-driver "$driver") storage_spec="" # skopeo's name for the same storage
if [ -n "$root$runroot" ]; then
	if [ -z "$root" ] || [ -z "$runroot" ]; then die_usage "--root and --runroot go together"; fi
	store+=(--root "$root" --runroot "$runroot")
	storage_spec="[$driver@$root+$runroot]"
fi

log() { printf '{"ts":"%s","level":"info","msg":"%s"}\n' "$(date -u +%FT%T.%3NZ)" "$*" >&2; }
# Runs a command quietly; on failure shows what it printed and stops.
quiet() {
	local out
	if ! out=$("$@" 2>&1); then
		printf '%s\n' "$out" | tail -40 >&2
		echo "build-images.sh: failed: $*" >&2
		exit 1
	fi
}

# The runtime packages of every Dockerfile (its `RUN pkgs="..."` line), sorted and unique.
runtime_packages() {
	awk '/^RUN pkgs="/ { sub(/^RUN pkgs="/, ""); on = 1 }
	     on { done = sub(/".*/, ""); gsub(/\\/, ""); print; if (done) on = 0 }' "$CRDS"/Dockerfile.* |
		tr -s ' \t' '\n' | grep -v '^$' | sort -u
}

# An OCI image layout at $2 (tag bookworm) whose one uncompressed layer is the tarball $1 (moved there): what
# skopeo copies into the storage faster than buildah commits the same tarball.
oci_layout() { # tarball dir
	python3 - "$1" "$2" <<-'EOF'
		import hashlib, json, os, sys
		tar, out = sys.argv[1:]
		os.makedirs(out + "/blobs/sha256")
		def blob(data=None, path=None):
		    h = hashlib.sha256(data or b"")
		    if path:
		        with open(path, "rb") as f:
		            for chunk in iter(lambda: f.read(1 << 20), b""):
		                h.update(chunk)
		    dst = out + "/blobs/sha256/" + h.hexdigest()
		    if path:
		        os.rename(path, dst)
		    else:
		        with open(dst, "wb") as f:
		            f.write(data)
		    return {"digest": "sha256:" + h.hexdigest(), "size": os.path.getsize(dst)}
		layer = blob(path=tar)
		config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
		                     "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]}}).encode()
		manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		                       "config": dict(blob(config), mediaType="application/vnd.oci.image.config.v1+json"),
		                       "layers": [dict(layer, mediaType="application/vnd.oci.image.layer.v1.tar")]}).encode()
		index = {"schemaVersion": 2, "manifests": [dict(blob(manifest), annotations={
		    "org.opencontainers.image.ref.name": "bookworm"}, mediaType="application/vnd.oci.image.manifest.v1+json")]}
		with open(out + "/index.json", "w") as f:
		    json.dump(index, f)
		with open(out + "/oci-layout", "w") as f:
		    json.dump({"imageLayoutVersion": "1.0.0"}, f)
	EOF
}

base_layout() { # prints the cached base's OCI layout directory, making it first when missing
	local pkgs key dir tmp
	pkgs=$(runtime_packages | paste -sd, -)
	key=$(printf 'bookworm minbase %s %s\n' "$(dpkg-query -W -f='${Version}' debootstrap)" "$pkgs" |
		sha256sum | cut -c1-16)
	dir=$cache/base-$key
	if [ ! -s "$dir/index.json" ]; then
		mkdir -p "$cache"
		tmp=$(mktemp -d "$cache/.debootstrap.XXXXXX")
		trap 'rm -rf "$tmp"' EXIT
		log "debootstrap bookworm (minbase) with $pkgs"
		quiet debootstrap --variant=minbase --include="$pkgs" bookworm "$tmp/root" "$mirror"
		rm -rf "$tmp"/root/var/cache/apt/archives/*.deb
		tar --numeric-owner --xattrs -C "$tmp/root" -cf "$tmp/base.tar" .
		quiet oci_layout "$tmp/base.tar" "$tmp/oci"
		rm -rf "$dir"
		mv "$tmp/oci" "$dir"
		rm -rf "$tmp"
		trap - EXIT
		find "$cache" -maxdepth 1 -name 'base-*' ! -name "base-$key" -exec rm -rf {} + # older keys
	fi
	echo "$dir"
}

# An image from a directory added at $3 to an empty root.
image_from() { # name source dest
	local ctr
	ctr=$(buildah "${store[@]}" from --quiet scratch)
	quiet buildah "${store[@]}" add "$ctr" "$2" "$3"
	quiet buildah "${store[@]}" commit --quiet --rm "$ctr" "$1"
}

layout=$(base_layout)
[ "$base_only" = 0 ] || {
	echo "$layout"
	exit 0
}

t0=$(date +%s)
log "copying the base $layout into the storage as $BASE_IMAGE"
quiet skopeo copy --quiet "oci:$layout:bookworm" "containers-storage:$storage_spec$BASE_IMAGE"
args=(--build-arg "BUILDER_IMAGE=$BASE_IMAGE" --build-arg "RUNTIME_IMAGE=$BASE_IMAGE")
if [ -n "$build" ]; then
	tmp=$(mktemp -d)
	log "installing $build into the binaries image $BINARIES_IMAGE"
	quiet env DESTDIR="$tmp/dest" meson install -C "$build" --no-rebuild --quiet
	bindir=$(meson introspect --buildoptions "$build" | python3 -c 'import json, sys
o = {x["name"]: x["value"] for x in json.load(sys.stdin)}
print(o["prefix"].rstrip("/") + "/" + o["bindir"])')
	mkdir -p "$tmp/out/usr"
	cp -a "$tmp/dest$bindir" "$tmp/out/usr/bin"
	image_from "$BINARIES_IMAGE" "$tmp/out" /out
fi

# buildah 1.28 keeps the working container of the image a `COPY --from=IMAGE` reads, mounted, after the
# build: remove those, and only those.
drop_stage_containers() {
	[ -z "$build" ] || buildah "${store[@]}" containers -q --filter ancestor="$BINARIES_IMAGE" |
		xargs -r buildah "${store[@]}" rm >/dev/null
}
trap 'drop_stage_containers; rm -rf "${tmp:-}"' EXIT

for pair in "${IMAGES[@]}"; do
	file=${pair%%:*} name=kvlite/${pair#*:}:$tag
	log "building $name from crds/Dockerfile.$file"
	dockerfile=$CRDS/Dockerfile.$file
	if [ -n "$build" ]; then # the same Dockerfile, its binaries from this build
		sed "s|^COPY --from=build |COPY --from=$BINARIES_IMAGE |" "$dockerfile" >"$tmp/Dockerfile.$file"
		dockerfile=$tmp/Dockerfile.$file
	fi
	quiet buildah "${store[@]}" bud --quiet --pull=never "${args[@]}" -f "$dockerfile" -t "$name" "$SRC"
	drop_stage_containers
	if [ -n "$push" ]; then
		log "pushing $name to $push"
		quiet buildah "${store[@]}" push --quiet --tls-verify=false "$name" "docker://$push/$name"
	fi
done
log "built ${#IMAGES[@]} images in $(($(date +%s) - t0)) s"
