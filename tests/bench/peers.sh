#!/bin/bash
# Fetch systemd 254 from bookworm-backports once, unpack it (dpkg -x, never
# installed over the system's systemd) and print the root it is unpacked in (its systemd-repart is
# ROOT/bin/systemd-repart, run with LD_LIBRARY_PATH=ROOT/usr/lib/x86_64-linux-gnu/systemd).
# Used by tests/bench/run for the "systemd-repart 254" rows; run it alone to
# prefetch.  The .debs are checked against the suite's Packages file (whose
# own checksum is not checked: it comes over plain http, as apt would get it
# before verifying InRelease, which we do not do; this is a benchmark peer,
# not something installed).
#
#   tests/bench/peers.sh [CACHE_DIR]     # default /var/cache/nix-repart-image/systemd-254
set -euo pipefail

MIRROR=${MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm-backports
VERSION=254.26-1~bpo12+1
PACKAGES=(systemd libsystemd-shared libsystemd0)
dir=${1:-/var/cache/nix-repart-image/systemd-254}
root=$dir/root

repart_ok() {
	LD_LIBRARY_PATH=$root/usr/lib/x86_64-linux-gnu/systemd:$root/usr/lib/x86_64-linux-gnu \
		"$root/bin/systemd-repart" --version 2>/dev/null | grep -q '^systemd 254'
}

if [[ -f $dir/.done ]] && repart_ok; then
	echo "$root"
	exit 0
fi

mkdir -p "$dir/debs"
tmp=$(mktemp -d "$dir/.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
curl -sSf -o "$tmp/Packages.xz" "$MIRROR/dists/$SUITE/main/binary-amd64/Packages.xz"
xz -d "$tmp/Packages.xz"

rm -rf "$root.new"
mkdir -p "$root.new"
for p in "${PACKAGES[@]}"; do
	# The stanza of package $p at $VERSION: its pool file name and SHA256.
	file= sha=
	read -r file sha < <(awk -v RS= -v p="$p" -v v="$VERSION" '
		index("\n" $0 "\n", "\nPackage: " p "\n") && index($0 "\n", "\nVersion: " v "\n") {
			f = ""; s = ""
			n = split($0, l, "\n")
			for (i = 1; i <= n; i++) {
				if (l[i] ~ /^Filename: /) f = substr(l[i], 11)
				if (l[i] ~ /^SHA256: /) s = substr(l[i], 9)
			}
			print f, s
		}' "$tmp/Packages") || true
	if [[ -z ${file:-} || -z ${sha:-} ]]; then
		echo "peers.sh: $p $VERSION is not in $SUITE's Packages" >&2
		exit 1
	fi
	deb=$dir/debs/${file##*/}
	if [[ ! -f $deb ]] || ! echo "$sha  $deb" | sha256sum -c --quiet - 2>/dev/null; then
		curl -sSf -o "$deb.part" "$MIRROR/$file"
		echo "$sha  $deb.part" | sha256sum -c --quiet -
		mv "$deb.part" "$deb"
	fi
	dpkg -x "$deb" "$root.new"
done
rm -rf "$root"
mv "$root.new" "$root"
if ! repart_ok; then
	echo "peers.sh: $root/bin/systemd-repart does not run as systemd 254" >&2
	exit 1
fi
touch "$dir/.done"
echo "$root"
