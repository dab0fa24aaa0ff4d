# An ESP (vfat) and a root file system (ext4) holding the closure of a
# package: the first image of the NixOS manual's image.repart chapter.
{ system ? builtins.currentSystem }:
let
  inherit (import ../lib.nix { inherit system; }) mkPackage;
  greeting = mkPackage { name = "greeting"; files.hello = "hello from the root partition\n"; };
  toplevel = mkPackage { name = "system"; files.motd = "an example system\n"; deps = [ greeting ]; };
in
builtins.repartImage {
  name = "basic";
  partitions = {
    "esp" = {
      contents."/EFI/BOOT/README.txt".source = ./esp-readme.txt;
      repartConfig = { Type = "esp"; Format = "vfat"; SizeMinBytes = "96M"; };
    };
    "root" = {
      storePaths = [ toplevel ];
      repartConfig = { Type = "root"; Format = "ext4"; Label = "nixos"; Minimize = "guess"; };
    };
  };
}
