# An appliance: no boot loader to install, a Unified Kernel Image on the ESP
# where the firmware looks (/EFI/BOOT/BOOTX64.EFI, and /EFI/Linux/ for a
# boot loader that looks there), an ext4 root labelled `nixos` holding the
# closure of the program the appliance runs: the NixOS manual's third image.
#
# The kernel, the EFI stub and busybox come from Debian's packages on the
# build machine (../boot.nix).
{ system ? builtins.currentSystem }:
let
  inherit (import ../lib.nix { inherit system; }) mkPackage;
  boot = import ../boot.nix { inherit system; };

  greeting = mkPackage { name = "greeting"; files.hello = "hello from the root partition"; };

  # What the appliance runs: a script in the root file system's closure, run
  # by busybox from the same closure.  It prints a line the boot test waits for.
  app = boot.mkBusyboxScript {
    name = "appliance";
    text = ''
      paths=$(ls /nix/store | grep -cE '^[0-9a-z]{32}-')
      echo "NRI-BOOT-OK appliance: $(cat ${greeting}/share/greeting/hello) ($paths store paths)"
    '';
  };

  # The initrd mounts the partition named `nixos` at /sysroot and runs the
  # program there (chroot), then powers off; panic=-1 turns a failure into a
  # reset, which `qemu -no-reboot` turns into an exit.
  uki = boot.mkUki {
    name = "appliance";
    cmdline = "console=ttyS0 panic=-1 root=PARTLABEL=nixos nri.run=${app}/bin/appliance";
  };
in
builtins.repartImage {
  name = "appliance";
  partitions = {
    "esp" = {
      contents = {
        "/EFI/BOOT/BOOTX64.EFI".source = "${uki}/appliance.efi";
        "/EFI/Linux/appliance.efi".source = "${uki}/appliance.efi";
      };
      repartConfig = { Type = "esp"; Format = "vfat"; SizeMinBytes = "96M"; };
    };
    "root" = {
      storePaths = [ app ];
      repartConfig = { Type = "root"; Format = "ext4"; Label = "nixos"; Minimize = "guess"; };
    };
  };
}
