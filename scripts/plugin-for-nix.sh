#!/usr/bin/env bash
# Builds the plugin against each newer Nix that scripts/newer-nix.sh has
# built, and puts it at BUILD_DIR/nix-VERSION/libnix-repart-image.so.
#
#   scripts/plugin-for-nix.sh BUILD_DIR VERSION...
#
# Only the plugin (meson -Dbuilder=false): the builder and its bundle do not
# depend on Nix, and every Nix uses the host build's bundle, so that the
# images they build can be compared byte for byte.  The plugin is compiled in
# the trixie chroot, with the compiler and C++ library that Nix was built
# with, against that Nix's nix-expr.pc, as a user builds it against theirs
# (README, "Building the plugin against your Nix").  Like Nix there, it is
# linked with an RPATH into the chroot's libraries, so it loads into that Nix
# run on the host.
#
# Incremental: the sources are copied into the chroot only where they
# changed, and ninja rebuilds what they touch (a few seconds when nothing
# did).  Prints "VERSION PLUGIN" for each version built; exits non-zero when
# one fails (its compiler output is printed).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$here/scripts/trixie-chroot.sh" # CACHE, C, say, die, inchroot, chroot_lock, chroot_mount

[ $# -ge 2 ] || die "usage: $0 BUILD_DIR VERSION..."
[ "$(id -u)" -eq 0 ] || die "run as root (it builds in a chroot)"
build_dir=$(mkdir -p "$1" && cd "$1" && pwd)
shift

for ver in "$@"; do
  [ -x "$CACHE/nix-$ver/bin/nix" ] && [ -f "$CACHE/nix-$ver/.built" ] ||
    die "Nix $ver is not in $CACHE: run scripts/newer-nix.sh $ver first"
done

chroot_lock
chroot_mount

# This checkout's sources in the chroot (one copy per checkout).  A file is
# copied only when its content differs, so that unchanged files keep their
# time and ninja leaves their objects alone.
key=$(printf '%s' "$here" | sha256sum | cut -c1-12)
work=/build/nri-plugin-$key
src=$work/src
mkdir -p "$C$src"
(cd "$here" && find meson.build meson_options.txt include plugin -type f) | while read -r f; do
  if ! cmp -s "$here/$f" "$C$src/$f"; then
    mkdir -p "$(dirname "$C$src/$f")"
    cp "$here/$f" "$C$src/$f"
  fi
done

status=0
for ver in "$@"; do
  prefix=$CACHE/nix-$ver # the same path in the chroot and on the host
  bdir=$work/nix-$ver
  rpath=$C/usr/lib/x86_64-linux-gnu:$C/lib/x86_64-linux-gnu
  # A rebuilt Nix (another stamp) gets a fresh build directory.
  if ! cmp -s "$C$prefix/.built" "$C$bdir/.nix-built"; then
    rm -rf "$C$bdir"
  fi
  log=$build_dir/nix-$ver/build.log
  mkdir -p "$build_dir/nix-$ver"
  if [ ! -f "$C$bdir/build.ninja" ]; then
    say "Nix $ver: meson setup (plugin only)"
    if ! inchroot env PKG_CONFIG_PATH="$prefix/lib/pkgconfig" LDFLAGS="-Wl,--disable-new-dtags -Wl,-rpath,$rpath" \
         meson setup "$bdir" "$src" -Dbuilder=false --buildtype=debugoptimized -Dwerror=true \
         >"$log" 2>&1; then
      cat "$log" >&2
      echo "plugin-for-nix: Nix $ver: meson setup failed ($log)" >&2
      rm -rf "$C$bdir"
      status=1
      continue
    fi
    cp "$C$prefix/.built" "$C$bdir/.nix-built"
  fi
  if ! inchroot ninja -C "$bdir" >>"$log" 2>&1; then
    grep -v '^\[' "$log" | tail -60 >&2
    echo "plugin-for-nix: Nix $ver: the plugin does not build ($log)" >&2
    status=1
    continue
  fi
  install -D -m 0755 "$C$bdir/plugin/libnix-repart-image.so" "$build_dir/nix-$ver/libnix-repart-image.so"
  echo "$ver $build_dir/nix-$ver/libnix-repart-image.so"
done
exit $status
