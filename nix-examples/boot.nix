# What the bootable examples need to boot, made from Debian's packages on the
# build machine — nothing is downloaded:
#
#   linux-image-amd64   /boot/vmlinuz-<version>, /lib/modules/<version>/
#   busybox-static      /bin/busybox
#   systemd-boot-efi    /usr/lib/systemd/boot/efi/linuxx64.efi.stub
#                       /usr/lib/systemd/boot/efi/systemd-bootx64.efi
#   binutils, cpio, gzip   objcopy, cpio and gzip to put them together
#
# `debianBootFiles` is the only derivation that reads these files; everything
# else here builds from it.  It reads them when it is built (which needs
# `sandbox = false`, Debian's default), not when it is evaluated: a flake is
# evaluated purely and cannot name /boot.  So its store path does not change
# when Debian's kernel does; pass `kernelVersion` (a name under /lib/modules)
# to choose a kernel, or delete the store path to take the newest again.
{ system ? builtins.currentSystem
, kernelVersion ? ""
  # Module names the initrd loads, with what they depend on (modules.dep).
  # Modules built into the kernel (modules.builtin) are skipped.
, modules ? [
    "virtio_pci" "virtio_blk"             # the disk: qemu -drive if=virtio
    "crc32c_generic" "ext4"               # ext4 with metadata checksums
  ]
}:
let
  inherit (import ./lib.nix { inherit system; }) mkScript;

  # `self.initrd` where mkUki's argument `initrd` hides it.
  self = rec {
    # $out/vmlinuz, $out/kernel-version, $out/lib/modules/<version>/ (the
    # modules asked for and their dependencies, and load-order: their paths in
    # the order to load them), $out/bin/busybox, $out/efi/*.efi{,.stub}, and
    # $out/debian-packages: which packages and versions they came from.
    debianBootFiles = derivation {
      name = "debian-boot-files";
      inherit system kernelVersion modules;
      builder = "/bin/sh";
      args = [ "-c" ''
        PATH=/usr/bin:/bin
        set -eu
        need() {
          [ -e "$1" ] || { echo "debian-boot-files: no $1: apt-get install $2 (and build with sandbox = false)" >&2; exit 1; }
        }
        if [ -z "$kernelVersion" ]; then
          kernelVersion=$(ls /boot | sed -n 's/^vmlinuz-//p' | sort -V | tail -n 1)
          [ -n "$kernelVersion" ] || need /boot/vmlinuz-VERSION linux-image-amd64
        fi
        mods=/lib/modules/$kernelVersion
        stubs=/usr/lib/systemd/boot/efi
        need /boot/vmlinuz-$kernelVersion linux-image-amd64
        need $mods/modules.dep linux-image-amd64
        need /bin/busybox busybox-static
        need $stubs/linuxx64.efi.stub systemd-boot-efi
        need $stubs/systemd-bootx64.efi systemd-boot-efi
        # Debian's `busybox` package has a /bin/busybox too, which needs libc:
        # in an image whose closure is busybox alone, it would not run.
        if LC_ALL=C readelf -l /bin/busybox | grep -q INTERP; then
          echo "debian-boot-files: /bin/busybox is linked dynamically: apt-get install busybox-static" >&2
          exit 1
        fi

        mkdir -p $out/bin $out/efi $out/lib/modules/$kernelVersion
        echo "$kernelVersion" > $out/kernel-version
        cp /boot/vmlinuz-$kernelVersion $out/vmlinuz
        cp /bin/busybox $out/bin/busybox
        cp $stubs/linuxx64.efi.stub $stubs/systemd-bootx64.efi $out/efi/

        # modules.dep: "kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko …", each
        # module's dependencies, the ones to load first last.
        path_of() {
          awk -F: -v m="$1" '{
            n = $1; sub(/.*\//, "", n); sub(/\.ko.*$/, "", n); gsub(/-/, "_", n)
            if (n == m) { print $1; exit }
          }' $mods/modules.dep
        }
        add() {
          grep -qxF "$1" order 2>/dev/null && return 0
          echo "$1" >> order
          mkdir -p $out/lib/modules/$kernelVersion/$(dirname "$1")
          cp $mods/$1 $out/lib/modules/$kernelVersion/$1
        }
        for m in $modules; do
          m=$(echo "$m" | tr - _)
          p=$(path_of "$m")
          if [ -z "$p" ]; then
            if tr - _ < $mods/modules.builtin | grep -q "/$m\.ko$"; then continue; fi
            echo "debian-boot-files: no module $m in $mods" >&2; exit 1
          fi
          for d in $(awk -F: -v p="$p" '$1 == p { print $2 }' $mods/modules.dep | tr ' ' '\n' | sed '/^$/d' | tac); do
            add "$d"
          done
          add "$p"
        done
        cp order $out/lib/modules/$kernelVersion/load-order

        if command -v dpkg-query >/dev/null; then
          for f in /boot/vmlinuz-$kernelVersion /bin/busybox $stubs/linuxx64.efi.stub; do
            pkg=$(dpkg-query -S "$f" | sed 's/:.*//')
            dpkg-query -W "$pkg"
          done > $out/debian-packages
        fi
      '' ];
    };

    # veritysetup (Debian's cryptsetup-bin) with the shared libraries it
    # needs and their dynamic loader, at the paths it finds them by
    # (bin/veritysetup, lib/x86_64-linux-gnu/…, lib64/ld-linux-x86-64.so.2):
    # what the initrd of an image whose store is protected by dm-verity adds
    # (Debian's kernel has no CONFIG_DM_INIT, so the device is set up from
    # user space).  Read from the host when built, as debianBootFiles.
    debianVeritysetup = derivation {
      name = "debian-veritysetup";
      inherit system;
      builder = "/bin/sh";
      args = [ "-c" ''
        PATH=/usr/bin:/bin:/usr/sbin:/sbin
        set -eu
        v=$(command -v veritysetup) || { echo "debian-veritysetup: no veritysetup: apt-get install cryptsetup-bin (and build with sandbox = false)" >&2; exit 1; }
        mkdir -p $out/bin
        cp "$v" $out/bin/veritysetup
        # Each library ldd resolves (and the loader), under the same path.
        for lib in $(ldd "$v" | sed -n 's/.*=> \(\/[^ ]*\) .*/\1/p; s/^[[:space:]]*\(\/[^ ]*\) .*/\1/p' | sort -u); do
          real=$(readlink -f "$lib")
          mkdir -p $out$(dirname "$lib")
          cp "$real" $out$lib
        done
        if command -v dpkg-query >/dev/null; then
          dpkg-query -W cryptsetup-bin > $out/debian-packages
        fi
      '' ];
    };

    # busybox alone in a store path, with its applets (bin/sh, bin/cat, …) as
    # symbolic links: the only program an image's closure needs.
    busybox = derivation {
      name = "busybox";
      inherit system;
      boot = debianBootFiles;
      builder = "/bin/sh";
      args = [ "-c" ''
        PATH=/usr/bin:/bin
        set -e
        mkdir -p $out/bin
        cp $boot/bin/busybox $out/bin/busybox
        for applet in $($out/bin/busybox --list); do
          [ "$applet" = busybox ] || ln -s busybox $out/bin/$applet
        done
      '' ];
    };

    # A script run by busybox's sh, with busybox's applets on its PATH.
    mkBusyboxScript = { name, text }: mkScript {
      inherit name;
      interpreter = "${busybox}/bin/sh";
      text = "PATH=${busybox}/bin\n" + text;
    };

    # A gzip-compressed cpio: busybox, the modules in their load order and
    # ./initrd-init.sh as /init, which reads the kernel command line:
    #
    #   root=PARTLABEL=<name>   mount the partition with this GPT name at /sysroot
    #   nri.store=<name>        mount the partition with this GPT name at /nix/store
    #   nri.fstype=<type>       their file system (default ext4)
    #   usrhash=<hex>           the store partition is the data of a dm-verity
    #   nri.verity=<name>       pair, this the hash partition's GPT name, and
    #                           the hex its root hash: veritysetup opens it and
    #                           the verified device is mounted instead
    #   nri.run=<program>       run it (chrooted into /sysroot when there is a
    #                           root), then power off
    #   nri.shell               on failure, start a shell instead of powering off
    #
    # Everything is mounted read-only.  `extra`: a store path whose tree is
    # added to the initrd's (debianVeritysetup).
    initrd = mkInitrd { };
    mkInitrd = { extra ? null }: derivation {
      name = "initrd";
      inherit system;
      extra = if extra == null then "" else extra;
      boot = debianBootFiles;
      init = ./initrd-init.sh;
      builder = "/bin/sh";
      args = [ "-c" ''
        PATH=/usr/bin:/bin
        set -eu
        kver=$(cat $boot/kernel-version)
        root=$PWD/root
        mkdir -p $root/bin $root/etc $root/dev $root/proc $root/sys $root/run $root/tmp \
          $root/sysroot $root/nix/store $root/lib/modules/$kver
        cp $boot/bin/busybox $root/bin/busybox
        cp $init $root/init
        chmod 0755 $root/init
        (cd $boot/lib/modules/$kver && cp -r --no-preserve=mode . $root/lib/modules/$kver/)
        if [ -n "$extra" ]; then
          (cd $extra && cp -r --no-preserve=ownership . $root/)
          chmod -R u+w $root
        fi
        find $root -exec touch -h -d @1 {} +
        mkdir -p $out
        (cd $root && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --reproducible --quiet) \
          | gzip -9n > $out/initrd
      '' ];
    };

    # A Unified Kernel Image: systemd-boot's linuxx64.efi.stub with the kernel,
    # the initrd, the command line and an os-release added as PE sections,
    # each at the next page after the one before (systemd-stub(7), "objcopy"
    # in systemd 252's documentation; Debian 12 has no ukify).
    #
    # usrhashFrom: a repart-output.json (an earlier image's) whose Verity=hash
    # partition's root hash is added to the command line as usrhash=, when
    # this derivation is built: no import from derivation.
    mkUki = { name, cmdline, initrd ? null, osRelease ? "", usrhashFrom ? null }: derivation {
      name = "${name}-uki";
      inherit system cmdline;
      usrhashFrom = if usrhashFrom == null then "" else usrhashFrom;
      initrd = if initrd != null then initrd else self.initrd;
      boot = debianBootFiles;
      osRelease = if osRelease != "" then osRelease else ''
        NAME="${name}"
        ID=${name}
        PRETTY_NAME="${name} (a nix-repart-image example)"
      '';
      builder = "/bin/sh";
      args = [ "-c" ''
        PATH=/usr/bin:/bin
        set -eu
        stub=$boot/efi/linuxx64.efi.stub
        mkdir -p $out
        if [ -n "$usrhashFrom" ]; then
          # 252's JSON: "roothash" : "<hex>" on the hash partition, null elsewhere.
          rh=$(grep -o '"roothash" : "[0-9a-f]*"' "$usrhashFrom" | cut -d '"' -f 4)
          [ "$(printf '%s\n' "$rh" | wc -l)" = 1 ] && [ ''${#rh} = 64 ] \
            || { echo "mkUki: no single root hash in $usrhashFrom" >&2; exit 1; }
          cmdline="$cmdline usrhash=$rh"
        fi
        printf '%s' "$cmdline" > $out/cmdline
        printf '%s' "$osRelease" > $out/os-release
        # The stub's sections end at the largest VMA + size.
        next=0
        for end in $(objdump -h $stub | awk 'NF == 7 && $1 ~ /^[0-9]+$/ { print "0x" $4 "+0x" $3 }'); do
          end=$(( $end ))
          if [ $end -gt $next ]; then next=$end; fi
        done
        sections=""
        place() {
          next=$(( (next + 4095) / 4096 * 4096 ))
          sections="$sections --add-section $1=$2 --change-section-vma $1=$(printf 0x%x $next)"
          next=$(( next + $(stat -L -c %s $2) ))
        }
        place .osrel $out/os-release
        place .cmdline $out/cmdline
        place .initrd $initrd/initrd
        place .linux $boot/vmlinuz
        # objcopy stamps the PE header with the time unless told a date.
        SOURCE_DATE_EPOCH=1 objcopy $sections $stub $out/${name}.efi
      '' ];
    };

    # systemd-boot, which starts the UKIs it finds in /EFI/Linux/ of the ESP.
    systemdBoot = "${debianBootFiles}/efi/systemd-bootx64.efi";
  };
in
self
