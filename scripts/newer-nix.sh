#!/usr/bin/env bash
# Builds the newer Nix versions the plugin is tested against, once, into a
# cache on this machine, and reuses them on the next run in seconds.
#
#   scripts/newer-nix.sh [VERSION...]     (default: every version below)
#   scripts/newer-nix.sh --list           the versions it knows, one a line
#
# Debian 12 ships Nix 2.8.0 only, and newer Nix cannot be built on it (its
# libgit2, meson, libseccomp and boost are too old); trixie's own nix-bin is
# linked statically and exports no symbols, so no plugin can load into it.
# So each version is built from source, with shared libraries, inside a
# Debian trixie chroot, and installed under a prefix of the cache:
#
#   $NRI_NIX_CACHE/                       (default /var/cache/nix-repart-image)
#     trixie/                             the chroot (debootstrap --variant=minbase)
#     nix-VERSION -> trixie/$NRI_NIX_CACHE/nix-VERSION
#                                         bin/ (nix, nix-build, …), lib/,
#                                         include/, lib/pkgconfig/
#
# The programs run on the host as they are: they are linked with the
# chroot's dynamic loader as their interpreter and an RPATH (DT_RPATH, not
# RUNPATH: it applies to the libraries' own dependencies too, so that none
# comes from the host) into the chroot's libraries, and the prefix has the
# same path inside and outside the chroot (inside, $NRI_NIX_CACHE/trixie is a
# symlink to /).  They use the host's /nix/store, /nix/var and $NIX_CONF_DIR
# like any Nix, with Debian's Nix 2.8: the store database keeps schema 10;
# a newer Nix adds a SchemaMigrations table, which 2.8 ignores, and 2.35
# drops the index IndexReferrer, which the primary key of Refs (referrer,
# reference) makes redundant and 2.8 does not need (its queries and
# `nix-store --verify` work as before).
#
# Sources, and nothing downloaded but Debian packages:
#   2.26.3   Debian trixie's nix source package (Debian's patches applied)
#   2.33.6   upstream tarball nix-2.33.6.tar.xz  } from $NRI_NIX_TARBALLS,
#   2.35.2   upstream tarball nix-2.35.2.tar.xz  } checked against the sha256 below
# 2.35 needs curl >= 8.17 and meson >= 1.8, and 2.33 libblake3 >= 1.8.2,
# which trixie lacks: curl comes from trixie-backports (8.21), meson and
# libblake3 from Debian forky (testing), pinned so nothing else is taken
# from there.  2.33 and 2.35 need boost >= 1.87: trixie's boost 1.88
# (libboost1.88-dev) replaces its default 1.83 in the chroot, and every
# version is built with it, so that the plugin, compiled with the same boost
# headers, agrees with each Nix on the layout of the boost types they share
# (boost::format in every error message).
#
# Environment:
#   NRI_NIX_CACHE=/var/cache/nix-repart-image
#   NRI_NIX_TARBALLS=DIR   where nix-VERSION.tar.xz are (default: the
#                          directory ../shared/nix-src beside the project,
#                          as on the project's development machines)
#   NRI_NIX_OPT=-O0        optimisation of the Nix build (-O1: slower to
#                          build, faster to evaluate)
#   JOBS=$(nproc)
#   MIRROR=http://deb.debian.org/debian
#   NRI_NIX_BUILD_BY=SECONDS  (since the epoch) a version is built only if
#                          its build is expected to end by then (from the
#                          CPU time it took here, below, and JOBS); one that
#                          would not is reported as skipped and is built by
#                          the next run.  tests/run sets it from its time
#                          budget; unset, every version is built.
#
# Prints, last, one line per version: "VERSION PREFIX" for those that are
# ready.  Exits non-zero when a version could not be built; a version whose
# tarball is missing is reported and skipped (exit status 3 when that is the
# only problem).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$here/scripts/trixie-chroot.sh" # CACHE, C, say, die, inchroot, chroot_lock, chroot_mount
# child_cpu VAR: VAR = user and system CPU seconds of this script's
# finished children so far (`times` in this shell, not in a subshell).
child_cpu() {
  local f
  f=$(mktemp)
  times >"$f"
  printf -v "$1" '%s' "$(awk 'NR == 2 { split($1, u, "m"); split($2, s, "m"); print u[1] * 60 + u[2] + s[1] * 60 + s[2] }' "$f")"
  rm -f "$f"
}
TARBALLS=${NRI_NIX_TARBALLS:-$(cd "$here/.." && pwd)/shared/nix-src}
OPT=${NRI_NIX_OPT:--O0}
JOBS=${JOBS:-$(nproc)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
# Changing how a version is built changes this; a cached build made by
# another recipe is rebuilt.  2: boost 1.88 for every version, libraries in
# lib/ and found through DT_RPATH.
RECIPE=2
# What the chroot has installed beyond debootstrap: changing it installs
# again (.deps-done holds the list that was installed).
DEPS="build-dep nix; build-essential dpkg-dev pkg-config libcjson-dev libssl-dev libtoml11-dev;
boost 1.88: libboost1.88-dev libboost-container1.88-dev libboost-context1.88-dev
  libboost-coroutine1.88-dev libboost-iostreams1.88-dev libboost-url1.88-dev;
trixie-backports: libcurl4-openssl-dev; forky: meson libblake3-dev"

# version  source  sha256 of the tarball (upstream sources)  CPU minutes its
# build took on the project's development machine (ninja's children: the
# .time file it leaves; NRI_NIX_BUILD_BY's estimate)
VERSIONS=(
  "2.26.3 debian:2.26.3+dfsg-1 - 22"
  "2.33.6 tarball ae6b33195e162f5e096ff032c398dbf457e864ce3d5023223c988e48dae7ce2e 31"
  "2.35.2 tarball e5a43158e47f26836f1e7ac6526079573a2a07b6fdbf8a1fdda96d39525d3385 37"
)

if [ "${1:-}" = --list ]; then
  for v in "${VERSIONS[@]}"; do echo "${v%% *}"; done
  exit 0
fi

[ "$(id -u)" -eq 0 ] || die "run as root (it makes a chroot and installs Debian packages into it)"

wanted=("$@")
if [ ${#wanted[@]} -eq 0 ]; then
  for v in "${VERSIONS[@]}"; do wanted+=("${v%% *}"); done
fi
spec_of() {
  local v
  for v in "${VERSIONS[@]}"; do [ "${v%% *}" = "$1" ] && { echo "$v"; return 0; }; done
  return 1
}
for v in "${wanted[@]}"; do
  spec_of "$v" >/dev/null || die "Nix $v is not one of the versions this script builds: ${VERSIONS[*]%% *}"
done

# A version is ready when its stamp matches the recipe and its source.
stamp_text() { printf 'recipe %s\nsource %s\nopt %s\n' "$RECIPE" "$2" "$OPT"; }
ready() { # ready VERSION SOURCE-ID
  local p=$C$CACHE/nix-$1
  [ -x "$p/bin/nix" ] && [ "$(cat "$p/.built" 2>/dev/null)" = "$(stamp_text "$1" "$2")" ]
}
# Patches to a version's source, applied in name order: only what it takes
# to build with Debian's libraries (see each patch's header).
patches_of() { ls "$here/scripts/nix-patches/$1"/*.patch 2>/dev/null || true; }
source_id() { # source_id VERSION KIND SHA
  local id=$3 p
  [ "$2" = tarball ] || id=$2
  p=$(patches_of "$1")
  [ -z "$p" ] || id="$id+patches-$(cat $p | sha256sum | cut -c1-16)"
  echo "$id"
}

# A build's expected wall time: its CPU minutes over JOBS cores, a quarter
# more for the steps that run one at a time (linking), and a minute for
# unpacking and meson.
expected_minutes() { echo $(( ($1 * 5 + JOBS * 4 - 1) / (JOBS * 4) + 1 )); }
in_budget() { # in_budget VERSION CPU-MINUTES: or it says it is skipped
  [ -z "${NRI_NIX_BUILD_BY:-}" ] && return 0
  [ $(( $(date +%s) + $(expected_minutes "$2") * 60 )) -le "$NRI_NIX_BUILD_BY" ] && return 0
  echo "newer-nix: Nix $1 is skipped: building it takes about $(expected_minutes "$2") minutes on $JOBS cores, which would end after this test run's time budget (NRI_NIX_BUILD_BY); the next run builds it, or now: scripts/newer-nix.sh $1" >&2
  skipped=1
  return 1
}

todo=()
for v in "${wanted[@]}"; do
  read -r ver kind sha cpu_min <<<"$(spec_of "$v")"
  ready "$ver" "$(source_id "$ver" "$kind" "$sha")" && continue
  # Not even the first build fits: no chroot is made for it.
  if [ ${#todo[@]} -eq 0 ]; then in_budget "$ver" "$cpu_min" || continue; fi
  todo+=("$v")
done

if [ ${#todo[@]} -gt 0 ]; then
  chroot_lock
  # ---- the chroot: trixie with Nix's build dependencies -------------------
  if ! command -v debootstrap >/dev/null; then
    say "installing debootstrap on the host"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap >/dev/null
  fi
  if [ ! -x "$C/usr/bin/apt-get" ] || [ ! -f "$C/.debootstrap-done" ]; then
    say "debootstrap trixie -> $C (about a minute)"
    rm -rf "$C"
    debootstrap --variant=minbase --include=ca-certificates trixie "$C" "$MIRROR" \
      >"$CACHE/debootstrap.log" 2>&1 || { tail -20 "$CACHE/debootstrap.log"; die "debootstrap failed"; }
    touch "$C/.debootstrap-done"
  fi

  chroot_mount
  cp /etc/resolv.conf "$C/etc/resolv.conf"

  # The host's path of the chroot is a symlink to / inside it, so that the
  # interpreter and RPATH the programs are linked with work in both.
  mkdir -p "$C$(dirname "$C")"
  [ -L "$C$C" ] || ln -sfn / "$C$C"

  # forky's Release file in Debian's archive may be past its Valid-Until
  # while its packages are still signed: only its date is not checked.
  sources="deb $MIRROR trixie main
deb-src $MIRROR trixie main
deb $MIRROR trixie-backports main
deb [check-valid-until=no] $MIRROR forky main"
  if [ "$(cat "$C/etc/apt/sources.list" 2>/dev/null)" != "$sources" ]; then
    printf '%s\n' "$sources" >"$C/etc/apt/sources.list"
    rm -f "$C/.deps-done"
    cat >"$C/etc/apt/preferences.d/nri-pin" <<'EOF'
Package: *
Pin: release n=forky
Pin-Priority: 100

Package: *
Pin: release n=trixie-backports
Pin-Priority: 100
EOF
  fi
  if [ "$(cat "$C/.deps-done" 2>/dev/null)" != "$DEPS" ]; then
    say "installing Nix's build dependencies in the chroot (about two minutes)"
    inchroot apt-get update -q >/dev/null
    # Once: after the newer curl below it no longer resolves (trixie's
    # libcurl4-gnutls-dev wants trixie's libcurl).
    if [ ! -e "$C/.build-dep-done" ] && [ ! -e "$C/.deps-done" ]; then
      inchroot apt-get build-dep -y -q --no-install-recommends nix >/dev/null
    fi
    touch "$C/.build-dep-done"
    inchroot apt-get install -y -q --no-install-recommends build-essential dpkg-dev pkg-config \
      libcjson-dev libssl-dev libtoml11-dev >/dev/null
    # boost 1.88 instead of trixie's default 1.83 (whose -dev packages it
    # conflicts with, and removes).
    inchroot apt-get install -y -q --no-install-recommends libboost1.88-dev libboost-container1.88-dev \
      libboost-context1.88-dev libboost-coroutine1.88-dev libboost-iostreams1.88-dev \
      libboost-url1.88-dev >/dev/null
    # Newer than trixie has: curl (2.35), meson (2.35), libblake3 (2.33, 2.35).
    inchroot apt-get install -y -q --no-install-recommends -t trixie-backports libcurl4-openssl-dev >/dev/null
    inchroot apt-get install -y -q --no-install-recommends -t forky meson libblake3-dev >/dev/null
    printf '%s' "$DEPS" >"$C/.deps-done"
  fi
  mkdir -p "$C/build"

  # ---- each version --------------------------------------------------------
  for v in "${todo[@]}"; do
    read -r ver kind sha cpu_min <<<"$(spec_of "$v")"
    sid=$(source_id "$ver" "$kind" "$sha")
    ready "$ver" "$sid" && continue # built by the run we waited for
    src=/build/src-$ver
    in_budget "$ver" "$cpu_min" || continue
    if [ "$kind" = tarball ]; then
      tb=$TARBALLS/nix-$ver.tar.xz
      if [ ! -f "$tb" ]; then
        echo "newer-nix: Nix $ver is skipped: its source tarball $tb is missing (set NRI_NIX_TARBALLS to the directory holding nix-$ver.tar.xz, sha256 $sha)" >&2
        skipped=1
        continue
      fi
      got=$(sha256sum "$tb" | cut -d' ' -f1)
      [ "$got" = "$sha" ] || die "$tb has sha256 $got, not $sha: refusing to build it"
      if [ "$(cat "$C$src/.unpacked" 2>/dev/null)" != "$sid" ]; then
        # tar keeps the files' times: unchanged files stay older than
        # their objects when a build directory is reused.
        rm -rf "$C$src" && mkdir -p "$C$src"
        tar -xJf "$tb" -C "$C$src" --strip-components=1
      fi
    else
      if [ "$(cat "$C$src/.unpacked" 2>/dev/null)" != "$sid" ]; then
        say "apt-get source nix=${kind#debian:} (in the chroot)"
        rm -rf "$C$src" "$C/build/deb-$ver" && mkdir -p "$C/build/deb-$ver"
        inchroot sh -c "cd /build/deb-$ver && apt-get source -q nix=${kind#debian:}" >/dev/null 2>&1 ||
          die "apt-get source nix=${kind#debian:} failed"
        mv "$C/build/deb-$ver"/nix-*/ "$C$src"
      fi
    fi
    if [ "$(cat "$C$src/.unpacked" 2>/dev/null)" != "$sid" ]; then
      for p in $(patches_of "$ver"); do
        say "Nix $ver: patch ${p##*/}"
        patch -d "$C$src" -p1 --quiet <"$p" || die "Nix $ver: ${p##*/} does not apply"
      done
      echo "$sid" >"$C$src/.unpacked"
    fi

    prefix=$CACHE/nix-$ver # the same path inside the chroot and on the host
    bdir=/build/build-$ver
    loader=$C/lib64/ld-linux-x86-64.so.2
    rpath=$prefix/lib:$C/usr/lib/x86_64-linux-gnu:$C/lib/x86_64-linux-gnu
    opts=(-Ddoc-gen=false -Dunit-tests=false -Dlibcmd:readline-flavor=readline
          -Dlibexpr:gc=enabled -Dlibstore:sandbox-shell=/bin/sh)
    case $ver in
      2.26.*) opts+=(-Dbindings=false) ;;
      2.33.*) opts+=(-Dbindings=false -Djson-schema-checks=false -Dkaitai-struct-checks=false) ;;
      *)      opts+=(-Dfunctional-tests=false -Djson-schema-checks=false) ;;
    esac
    # A build that stopped (a failure, an interrupt) goes on where it
    # stopped, if it was set up by this recipe from this source.
    if [ "$(cat "$C$bdir/.nri-stamp" 2>/dev/null)" != "$(stamp_text "$ver" "$sid")" ]; then
      rm -rf "$C$bdir"
      say "Nix $ver: meson setup ($OPT, shared libraries, prefix $prefix)"
      inchroot env CFLAGS="$OPT -g0" CXXFLAGS="$OPT -g0" \
        LDFLAGS="-Wl,--dynamic-linker=$loader -Wl,--disable-new-dtags -Wl,-rpath,$rpath" \
        meson setup "$bdir" "$src" --prefix="$prefix" --libdir=lib --sysconfdir=/etc --localstatedir=/nix/var \
        --buildtype=plain -Ddefault_library=shared "${opts[@]}" >"$CACHE/meson-setup-$ver.log" 2>&1 ||
        { tail -30 "$CACHE/meson-setup-$ver.log"; die "Nix $ver: meson setup failed ($CACHE/meson-setup-$ver.log)"; }
      stamp_text "$ver" "$sid" >"$C$bdir/.nri-stamp"
    fi
    rm -rf "$C$prefix"
    mkdir -p "$C$prefix"
    ln -sfn "trixie$prefix" "$CACHE/nix-$ver"
    say "Nix $ver: ninja -j$JOBS (the long step: 10 to 20 minutes)"
    # The time it took, wall and CPU, is kept with the build ($prefix/.time).
    start=$SECONDS
    child_cpu cpu0
    inchroot ninja -C "$bdir" -j"$JOBS" >"$CACHE/ninja-$ver.log" 2>&1 ||
      { tail -30 "$CACHE/ninja-$ver.log"; die "Nix $ver: build failed ($CACHE/ninja-$ver.log)"; }
    child_cpu cpu1
    took=$(awk -v w=$((SECONDS - start)) -v c0="$cpu0" -v c1="$cpu1" \
      'BEGIN { printf "%.1f min wall, %.1f min CPU", w / 60, (c1 - c0) / 60 }')
    inchroot ninja -C "$bdir" install >"$CACHE/ninja-install-$ver.log" 2>&1 ||
      { tail -30 "$CACHE/ninja-install-$ver.log"; die "Nix $ver: install failed"; }
    # Runs on the host, outside the chroot?
    "$prefix/bin/nix" --version >/dev/null || die "Nix $ver: $prefix/bin/nix does not run on the host"
    rm -rf "$C$bdir"
    stamp_text "$ver" "$sid" >"$C$prefix/.built"
    echo "$took" >"$C$prefix/.time"
    say "Nix $ver: ready in $prefix (ninja: $took)"
  done
fi

status=0
for v in "${wanted[@]}"; do
  read -r ver kind sha cpu_min <<<"$(spec_of "$v")"
  if ready "$ver" "$(source_id "$ver" "$kind" "$sha")"; then
    echo "$ver $CACHE/nix-$ver"
  else
    status=3
  fi
done
[ -z "${skipped:-}" ] || exit 3
exit $status
