#!/usr/bin/env bash
# Installs everything nix-repart-image needs to build and test on Debian 12,
# then configures and builds the project with meson.  Safe to run again: each
# step checks whether its work is already done.
#
#   scripts/setup-debian.sh [BUILD_DIR]      (default: build)
#
# Environment: NRI_SKIP_APT=1 skips the apt steps (for machines set up already).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${1:-$here/build}
say() { printf '== %s\n' "$*" >&2; }

packages=(
  # build
  meson ninja-build pkg-config gcc g++ dpkg-dev
  # evaluator half: Nix 2.8 and what its headers include
  nix-bin libgc-dev libboost-dev nlohmann-json3-dev
  # builder half
  libfdisk-dev libext2fs-dev libcjson-dev libssl-dev libzstd-dev liblzma-dev mtools
  # tests: the tools that check our images, and the peer we compare with
  python3 python3-pytest e2fsprogs dosfstools fdisk gdisk util-linux
  systemd systemd-container zstd xz-utils
  # the read-only writers' checks: veritysetup, fsck.erofs/dump.erofs,
  # unsquashfs/mksquashfs and sqfsdiff
  cryptsetup-bin erofs-utils squashfs-tools squashfs-tools-ng
  # tests with the sandbox on: /bin/sh for the test packages, and strace
  busybox-static strace
  # the builder under valgrind (tests/integration/test_valgrind.py)
  valgrind
  # the bootable examples and the boot test: Debian's kernel, systemd's EFI
  # stub, objcopy for the UKI, cpio for the initrd, QEMU and OVMF
  linux-image-amd64 systemd-boot-efi binutils cpio qemu-system-x86 ovmf
)

if [ "$(id -u)" -ne 0 ]; then
  echo "setup-debian.sh: run as root (it installs Debian packages)" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive

# Debian ships Nix without its C++ headers; they come from Debian's own source
# package, so apt needs a deb-src entry for bookworm.
src_list=/etc/apt/sources.list.d/nix-repart-image-src.sources
if [ -z "${NRI_SKIP_APT:-}" ]; then
  if [ ! -f "$src_list" ]; then
    say "adding a deb-src entry for Debian's nix source package ($src_list)"
    cat >"$src_list" <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    rm -f /var/lib/nix-repart-image/apt-updated
  fi
  missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ! -f /var/lib/nix-repart-image/apt-updated ] || [ ${#missing[@]} -gt 0 ]; then
    say "apt-get update"
    apt-get update -q >/dev/null
    mkdir -p /var/lib/nix-repart-image && touch /var/lib/nix-repart-image/apt-updated
  fi
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

# The Nix headers: exactly the source version of the installed nix-bin.
nix_src_version=$(dpkg-query -W -f='${source:Version}' nix-bin)
nix_upstream=${nix_src_version%%-*}
stamp=/usr/include/nix/.nix-repart-image-headers
if [ "$(cat "$stamp" 2>/dev/null)" != "$nix_src_version" ]; then
  say "installing the Nix $nix_src_version C++ headers from Debian's nix source package"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && apt-get source -q --download-only "nix=$nix_src_version" >/dev/null 2>&1 \
     && dpkg-source -x "nix_${nix_src_version#*:}.dsc" src >/dev/null 2>&1)
  src=$work/src
  # What Nix's own `make install` puts under $(includedir)/nix (local.mk,
  # src/libexpr/local.mk, src/libstore/local.mk).
  install -d /usr/include/nix/flake /usr/include/nix/builtins /usr/include/nix/build
  install -m 0644 "$src"/src/lib*/*.hh /usr/include/nix/
  install -m 0644 "$src"/src/libexpr/flake/*.hh /usr/include/nix/flake/
  install -m 0644 "$src"/src/libstore/builtins/*.hh /usr/include/nix/builtins/
  install -m 0644 "$src"/src/libstore/build/*.hh /usr/include/nix/build/
  "$here"/scripts/nix-config-h.sh "$nix_upstream" >/usr/include/nix/config.h
  echo "$nix_src_version" >"$stamp"
  rm -rf "$work"
  trap - EXIT
fi

# Configure once, then let ninja decide what is out of date.
if [ ! -f "$build_dir/build.ninja" ]; then
  say "meson setup $build_dir"
  meson setup "$build_dir" "$here" --buildtype=debugoptimized \
    -Dpkg_config_path=/usr/lib/nix/pkgconfig -Dwerror=true >/dev/null
fi
say "building in $build_dir"
ninja -C "$build_dir" >/dev/null
