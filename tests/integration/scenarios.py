"""The three images of the NixOS manual's image.repart chapter, as
builtins.repartImage expressions.  Each evaluates to
{ img; top; efi; … } so tests can compare the derivation with the store
paths that must go into it."""
from conftest import HELPERS

ESP_AND_ROOT = HELPERS + """\
let
  dep = mk "dep" [ ];
  top = mk "toplevel" [ dep ];
  efi = ./bootx64.efi;
in {
  top = top.outPath;
  dep = dep.outPath;
  efi = "${efi}";
  img = builtins.repartImage {
    name = "image";
    partitions = {
      "esp" = {
        contents."/EFI/BOOT/BOOTX64.EFI".source = efi;
        repartConfig = { Type = "esp"; Format = "vfat"; SizeMinBytes = "96M"; };
      };
      "root" = {
        storePaths = [ top ];
        repartConfig = { Type = "root"; Format = "ext4"; Label = "nixos"; Minimize = "guess"; };
      };
    };
  };
}
"""

STORE_PARTITION = HELPERS + """\
let
  top = mk "toplevel" [ (mk "dep" [ ]) ];
in {
  top = top.outPath;
  img = builtins.repartImage {
    name = "store";
    version = "1.0";
    partitions."store" = {
      storePaths = [ top ];
      stripNixStorePrefix = true;
      repartConfig = { Type = "linux-generic"; Label = "nix-store"; Format = "ext4"; };
    };
  };
}
"""

APPLIANCE = HELPERS + """\
let
  top = mk "toplevel" [ ];
  uki = mk "uki" [ ];
in {
  top = top.outPath;
  uki = uki.outPath;
  img = builtins.repartImage {
    name = "appliance";
    partitions = {
      "esp" = {
        contents = {
          "/EFI/BOOT/BOOTX64.EFI".source = "${uki}";
          "/EFI/Linux/nixos.efi".source = uki;
        };
        repartConfig = { Type = "esp"; Format = "vfat"; SizeMinBytes = "96M"; };
      };
      "root" = {
        storePaths = [ top ];
        repartConfig = { Type = "root"; Format = "ext4"; Label = "nixos"; Minimize = "guess"; };
      };
    };
  };
}
"""


def write_inputs(nix):
    nix.write("bootx64.efi", "not really an EFI program\n")
