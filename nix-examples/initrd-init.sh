#!/bin/busybox sh
# /init of the examples' initrd (boot.nix): load the modules, mount the
# image's partitions by their GPT names, read-only, run one program from the
# image's closure, power off.  What to mount and run comes from the kernel
# command line (see boot.nix).

/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1

root_label= store_label= run= shell= fstype=ext4 usrhash= verity_label=
for arg in $(cat /proc/cmdline); do
  case $arg in
    root=PARTLABEL=*) root_label=${arg#root=PARTLABEL=} ;;
    nri.store=*) store_label=${arg#nri.store=} ;;
    nri.fstype=*) fstype=${arg#nri.fstype=} ;;
    usrhash=*) usrhash=${arg#usrhash=} ;;
    nri.verity=*) verity_label=${arg#nri.verity=} ;;
    nri.run=*) run=${arg#nri.run=} ;;
    nri.shell) shell=1 ;;
  esac
done

fail() {
  echo "nri-initrd: $*"
  if [ -n "$shell" ]; then sh; fi
  poweroff -f
}

kver=$(uname -r)
while read -r ko; do
  insmod "/lib/modules/$kver/$ko" || fail "cannot load $ko"
done <"/lib/modules/$kver/load-order"

# The block device whose GPT partition name (PARTNAME in its uevent) is $1;
# waits up to 10 s for the disk to appear.
partition() {
  tries=0
  while [ $tries -lt 100 ]; do
    for uevent in /sys/class/block/*/uevent; do
      if grep -qxF "PARTNAME=$1" "$uevent"; then
        echo "/dev/$(sed -n 's/^DEVNAME=//p' "$uevent")"
        return 0
      fi
    done
    usleep 100000
    tries=$((tries + 1))
  done
  return 1
}

# $1: GPT partition name, $2: mount point.  With usrhash= and nri.verity=,
# the partition is the data of a dm-verity pair: veritysetup (from the
# initrd's extra tree) checks the hash partition's superblock against the
# root hash and maps the data through dm-verity, and the mapped device is
# mounted: every block read is checked, a changed one reads as an I/O error.
mount_partition() {
  dev=$(partition "$1") || fail "no partition named $1"
  if [ -n "$usrhash" ]; then
    [ -n "$verity_label" ] || fail "usrhash= without nri.verity="
    hash=$(partition "$verity_label") || fail "no partition named $verity_label"
    mkdir -p /run/cryptsetup
    veritysetup open "$dev" nri-verity "$hash" "$usrhash" || fail "veritysetup open $dev $hash failed"
    echo "nri-initrd: opened $dev ($1) with dm-verity, hash tree on $hash ($verity_label)"
    dev=/dev/mapper/nri-verity
  fi
  mount -t "$fstype" -o ro "$dev" "$2" || fail "cannot mount $dev ($1) at $2"
  echo "nri-initrd: mounted $dev ($1) at $2, read-only"
}

[ -n "$run" ] || fail "no nri.run= on the kernel command line"
if [ -n "$root_label" ]; then
  mount_partition "$root_label" /sysroot
  chroot /sysroot "$run"
else
  [ -z "$store_label" ] || mount_partition "$store_label" /nix/store
  "$run"
fi
status=$?
echo "nri-initrd: $run exited with status $status"
[ -z "$root_label" ] || umount /sysroot
[ -z "$store_label" ] || umount /nix/store
poweroff -f
