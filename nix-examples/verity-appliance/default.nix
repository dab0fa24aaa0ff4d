# An appliance whose Nix store is read-only and verified: an EROFS store
# partition with a dm-verity hash partition beside it, and a Unified Kernel
# Image whose command line carries the root hash (usrhash=), as NixOS's
# image.repart.verityStore builds one — in two stages, with no import from
# derivation:
#
#   1. `intermediate`: the store partition (EROFS, Verity=data) and its hash
#      partition (Verity=hash), split = true so that the store partition is
#      a file of its own; no ESP yet.  Its repart-output.json has the root
#      hash.
#   2. `uki`: a derivation that reads the root hash from that JSON when it is
#      built and puts `usrhash=<root hash>` on the kernel command line.
#   3. the image: an ESP holding the UKI, the store partition copied block for
#      block from the intermediate image (CopyBlocks=) and its hash partition
#      made again — the same bytes, because the data and the salt (derived
#      from the seed) are the same, so the root hash in the UKI is the image's.
#
# NixOS does step 3 differently: its first systemd-repart run defers the ESP
# (--defer-partitions=esp), the second runs on a copy of the first image with
# createEmpty = false and adds it.  A derivation here cannot take an earlier
# output and change it in place, so the image is made anew and the store
# partition comes in by CopyBlocks=.
#
# The initrd (../boot.nix) gets veritysetup and the dm_verity and erofs
# modules from Debian, opens the store partition with the root hash from the
# command line, mounts the verified device at /nix/store and runs the program.
{ system ? builtins.currentSystem }:
let
  inherit (import ../lib.nix { inherit system; }) mkPackage;
  boot = import ../boot.nix {
    inherit system;
    modules = [ "virtio_pci" "virtio_blk" "crc32c_generic" "ext4" "dm_verity" "erofs" ];
  };

  # A file large enough to have data blocks of its own (the boot test flips a
  # byte of line 2500 in a copy of the image).
  greeting = mkPackage {
    name = "greeting";
    files.hello = "hello from the verified store";
    files.lines = builtins.concatStringsSep "" (map (n: "line ${toString n} of the verified store\n")
      (builtins.genList (n: n + 1) 5000));
  };

  app = boot.mkBusyboxScript {
    name = "verity-app";
    text = ''
      paths=$(ls /nix/store | grep -cE '^[0-9a-z]{32}-')
      if lines=$(cat ${greeting}/share/greeting/lines); then
        last=$(echo "$lines" | tail -n 1)
        echo "NRI-BOOT-OK verity-appliance: $(cat ${greeting}/share/greeting/hello), $last ($paths store paths)"
      else
        echo "NRI-VERITY-READ-FAILED"
      fi
    '';
  };

  # Stage 1: the store and its hash tree.  Weight = 0: no share of free
  # space by weight; what the GPT's rounding leaves goes to the first
  # partition that can grow (systemd-repart's rule): the store partition here
  # (it is zeros after the file system, and CopyBlocks= carries them over),
  # the ESP in the image, so that the hash partition has the same size in both.
  intermediate = builtins.repartImage {
    name = "verity-store";
    split = true;
    partitions = {
      "20-store" = {
        storePaths = [ app ];
        stripNixStorePrefix = true;
        repartConfig = {
          Type = "usr"; Label = "nix-store"; Format = "erofs"; Minimize = "best"; Weight = 0;
          Verity = "data"; VerityMatchKey = "store"; SplitName = "store";
        };
      };
      "30-store-verity" = {
        repartConfig = {
          Type = "usr-verity"; Label = "nix-store-verity"; Minimize = "best"; Weight = 0;
          Verity = "hash"; VerityMatchKey = "store"; SplitName = "-";
        };
      };
    };
  };

  # Stage 2: the UKI, with the intermediate image's root hash.
  uki = boot.mkUki {
    name = "verity-appliance";
    cmdline = "console=ttyS0 panic=-1 nri.store=nix-store nri.verity=nix-store-verity nri.fstype=erofs "
      + "nri.run=${app}/bin/verity-app";
    initrd = boot.mkInitrd { extra = boot.debianVeritysetup; };
    usrhashFrom = "${intermediate}/repart-output.json";
  };

  # Stage 3: the image.
  image = builtins.repartImage {
    name = "verity-appliance";
    partitions = {
      "10-esp" = {
        contents = {
          "/EFI/BOOT/BOOTX64.EFI".source = "${uki}/verity-appliance.efi";
          "/EFI/Linux/verity-appliance.efi".source = "${uki}/verity-appliance.efi";
        };
        repartConfig = { Type = "esp"; Format = "vfat"; SizeMinBytes = "96M"; };
      };
      "20-store" = {
        repartConfig = {
          Type = "usr"; Label = "nix-store"; Weight = 0;
          CopyBlocks = "${intermediate}/verity-store.store.raw";
          Verity = "data"; VerityMatchKey = "store";
        };
      };
      "30-store-verity" = {
        repartConfig = {
          Type = "usr-verity"; Label = "nix-store-verity"; Minimize = "best"; Weight = 0;
          Verity = "hash"; VerityMatchKey = "store";
        };
      };
    };
  };
in
image // { inherit intermediate uki app; }
