# The examples as one flake with no inputs: nothing but Nix, the plugin (in
# nix.conf) and, for the images that boot, Debian's packages (boot.nix).
#
#   nix build path:nix-examples#appliance      (or #basic, #store-partition,
#                                              #verity-appliance)
#
# One flake for the three, because a `path:` flake is copied to the store
# alone: a flake in appliance/ could not read ../boot.nix.
{
  description = "nix-repart-image examples: disk images from builtins.repartImage";

  outputs = { self }:
    let
      system = "x86_64-linux";
    in
    {
      packages.${system} = {
        basic = import ./basic { inherit system; };
        store-partition = import ./store-partition { inherit system; };
        appliance = import ./appliance { inherit system; };
        verity-appliance = import ./verity-appliance { inherit system; };
        default = self.packages.${system}.appliance;
      };
    };
}
