# Small packages for the examples, made without nixpkgs so that the examples
# build on a machine that has nothing but Nix and /bin/sh.  `system` is an
# argument because a flake evaluates purely, where builtins.currentSystem
# does not exist.
{ system ? builtins.currentSystem }:
{
  # A store path holding `files` (name → text) under share/<name>/, with
  # references to `deps` (their closures go into the image too).
  mkPackage = { name, files ? { }, deps ? [ ] }: derivation {
    inherit name system deps;
    builder = "/bin/sh";
    args = [ "-c" (''
      PATH=/usr/bin:/bin
      set -e
      mkdir -p $out/share/${name} $out/nix-support
      for d in $deps; do echo $d >> $out/nix-support/propagated-inputs; done
    '' + builtins.concatStringsSep "\n" (map (f:
      "cp ${builtins.toFile f files.${f}} $out/share/${name}/${f}") (builtins.attrNames files))) ];
  };

  # A store path holding bin/<name>, an executable script `text` run by
  # `interpreter` (a store path too, so that the script's closure runs on a
  # machine whose only programs are the ones in that closure).
  mkScript = { name, interpreter, text }: derivation {
    inherit name system;
    script = "#!${interpreter}\n" + text;
    builder = "/bin/sh";
    args = [ "-c" ''
      PATH=/usr/bin:/bin
      set -e
      mkdir -p $out/bin
      printf '%s' "$script" > $out/bin/${name}
      chmod 0555 $out/bin/${name}
    '' ];
  };
}
