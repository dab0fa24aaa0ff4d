# A partition holding only a Nix store closure, meant to be mounted at
# /nix/store: `stripNixStorePrefix = true` puts /nix/store/<hash>-<name> at
# /<hash>-<name>, and its GPT name `nix-store` is what NixOS finds it by
# (fileSystems."/nix/store".device = "/dev/disk/by-partlabel/nix-store").
# The NixOS manual's second image.
#
# To show that it works, the image also gets an ESP with systemd-boot, which
# finds a Unified Kernel Image in /EFI/Linux/; the UKI's initrd mounts the
# `nix-store` partition at /nix/store and runs a program from it by its store
# path.  The kernel, systemd-boot and busybox come from Debian's packages on
# the build machine (../boot.nix).  The store is mounted read-only, so its
# ext4 is the least that holds the closure (Minimize = "best", an extension
# of systemd-repart's semantics for ext4).
{ system ? builtins.currentSystem }:
let
  inherit (import ../lib.nix { inherit system; }) mkPackage;
  boot = import ../boot.nix { inherit system; };

  greeting = mkPackage { name = "greeting"; files.hello = "hello from the nix-store partition"; };

  app = boot.mkBusyboxScript {
    name = "store-app";
    text = ''
      paths=$(ls /nix/store | grep -cE '^[0-9a-z]{32}-')
      echo "NRI-BOOT-OK store-partition: $(cat ${greeting}/share/greeting/hello) ($paths store paths)"
    '';
  };

  uki = boot.mkUki {
    name = "store-partition";
    cmdline = "console=ttyS0 panic=-1 nri.store=nix-store nri.run=${app}/bin/store-app";
  };
in
builtins.repartImage {
  name = "store-partition";
  partitions = {
    "esp" = {
      contents = {
        "/EFI/BOOT/BOOTX64.EFI".source = boot.systemdBoot;
        "/EFI/Linux/store-partition.efi".source = "${uki}/store-partition.efi";
      };
      repartConfig = { Type = "esp"; Format = "vfat"; SizeMinBytes = "96M"; };
    };
    "store" = {
      storePaths = [ app ];
      stripNixStorePrefix = true;
      repartConfig = { Type = "linux-generic"; Format = "ext4"; Label = "nix-store"; Minimize = "best"; };
    };
  };
}
