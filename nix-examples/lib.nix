# Small packages for the examples, made without nixpkgs so that the examples
# build on a machine that has nothing but Nix and /bin/sh.
{
  # A store path holding `files` (name → text) under share/<name>/, with
  # references to `deps` (their closures go into the image too).
  mkPackage = { name, files ? { }, deps ? [ ] }: derivation {
    inherit name deps;
    system = builtins.currentSystem;
    builder = "/bin/sh";
    args = [ "-c" (''
      PATH=/usr/bin:/bin
      set -e
      mkdir -p $out/share/${name} $out/nix-support
      for d in $deps; do echo $d >> $out/nix-support/propagated-inputs; done
    '' + builtins.concatStringsSep "\n" (map (f:
      "cp ${builtins.toFile f files.${f}} $out/share/${name}/${f}") (builtins.attrNames files))) ];
  };
}
