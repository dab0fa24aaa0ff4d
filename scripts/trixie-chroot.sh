# trixie-chroot.sh: sourced by scripts/newer-nix.sh and
# scripts/plugin-for-nix.sh.  The Debian trixie chroot the newer Nix versions
# are built in, and the plugin against them: where it is, how to run a
# command in it, its mounts, and the lock that keeps two runs (two checkouts'
# tests/run, say) from building or unmounting under each other.
#
#   NRI_NIX_CACHE=/var/cache/nix-repart-image   the cache (chroot: trixie/)
# shellcheck shell=bash

CACHE=${NRI_NIX_CACHE:-/var/cache/nix-repart-image}
C=$CACHE/trixie

say() { printf '== [%s] %s: %s\n' "$(date +%T)" "${0##*/}" "$*" >&2; }
die() { printf '%s: %s\n' "${0##*/}" "$*" >&2; exit 1; }
inchroot() {
  chroot "$C" env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"
}

# Waits for any other run that holds the cache, then holds it until exit.
chroot_lock() {
  mkdir -p "$CACHE"
  exec 9>"$CACHE/.lock"
  if ! flock -n 9; then
    say "waiting for another run that uses $CACHE"
    flock 9
  fi
}

# proc, dev, dev/pts and sys in the chroot, unmounted at exit (only those
# this run mounted).
chroot_mounts=()
chroot_mount() {
  local spec
  for spec in "proc proc proc" "bind /dev dev" "bind /dev/pts dev/pts" "sysfs sysfs sys"; do
    set -- $spec
    mountpoint -q "$C/$3" && continue
    if [ "$1" = bind ]; then mount --bind "$2" "$C/$3"; else mount -t "$1" "$2" "$C/$3"; fi
    chroot_mounts=("$C/$3" "${chroot_mounts[@]}")
  done
  trap chroot_umount EXIT
}
chroot_umount() {
  local m
  for m in "${chroot_mounts[@]}"; do umount "$m" 2>/dev/null || umount -l "$m"; done
  chroot_mounts=()
}
