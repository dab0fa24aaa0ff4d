"""Nothing reaches an image that its derivation does not depend on (issue 11,
items 1 and 2).

A Nix build reads only what its derivation depends on, and a derivation
depends on exactly the store paths in the context of its strings.  So a
source of the image (contents.*.source, a CopyFiles= source, a storePaths
element) must be a store path that the context of its own string makes
available.  Two ways round that were open:

- a set standing for a string ({ type = "derivation"; outPath = "/etc/passwd"; })
  skipped every check a string meets;
- a string with the context of store path A naming store path B
  (builtins.substring 0 0 "${a}" + "/nix/store/…-b").

Each hostile form below is tried the ways a user evaluates and builds:
nix-instantiate plain, in restricted mode and in pure evaluation, a flake
(`nix build`), and nix-build with the sandbox off (where the host's file
would be readable) and on.  Every one must stop at evaluation, naming the
attribute, with no output.  The forms Nix users rely on still work, and the
derivation depends on what they name.
"""
import json
import textwrap
import uuid

import pytest

import imagecheck
from conftest import assert_eval_error, error_position

# Every Nix of the suite: what a context holds is read through nix-api.hh,
# differently for each.
pytestmark = pytest.mark.every_nix

SANDBOX = ("--option", "sandbox", "true", "--option", "sandbox-paths", "/bin/sh=/bin/busybox")

# `a`: a derivation (system spelt out: pure evaluation has no currentSystem);
# `secret`: a store path the image's derivation has no reason to depend on,
# named by a string that carries a's context instead of its own.
PRELUDE = """\
let
  a = derivation {{
    name = "nri-escape-a";
    system = "x86_64-linux";
    builder = "/bin/sh";
    args = [ "-c" "echo a > $out" ];
  }};
  secret = builtins.unsafeDiscardStringContext (builtins.toFile "nri-escape-secret-{tag}" "secret\\n");
  launder = s: builtins.substring 0 0 "${{a}}" + s;
in
"""


def image(partition: str) -> str:
    return textwrap.dedent("""\
        builtins.repartImage {
          name = "escape";
          partitions.root = {
            repartConfig = { Type = "root"; Format = "ext4"; CONFIG };
            PARTITION
          };
        }""").replace("PARTITION", partition)


# (id, the partition's attributes (CONFIG: more repartConfig keys), the
# attribute the error names, words the message has)
HOSTILE = [
    ("fake-derivation-host-file",
     'contents."/x".source = { type = "derivation"; outPath = "/etc/passwd"; };',
     'partitions.root.contents."/x".source', ["without store context"]),
    ("fake-derivation-climbs-out-of-the-store",
     'contents."/x".source = { type = "derivation"; outPath = "/nix/store/../../etc/passwd"; };',
     'partitions.root.contents."/x".source', ['".."']),
    ("fake-derivation-climbs-out-of-a-store-path",
     'contents."/x".source = { type = "derivation"; outPath = "${a}/../../../etc/passwd"; };',
     'partitions.root.contents."/x".source', ['".."']),
    ("to-string-host-file",
     'contents."/x".source = { __toString = self: "/etc/passwd"; };',
     'partitions.root.contents."/x".source', ["without store context"]),
    ("nested-out-path-host-file",
     'contents."/x".source = { outPath = { outPath = "/etc/passwd"; }; };',
     'partitions.root.contents."/x".source', ["without store context"]),
    ("out-path-of-itself",
     'contents."/x".source = let s = { outPath = s; }; in s;',
     'partitions.root.contents."/x".source', ["64 steps"]),
    ("laundered-source",
     'contents."/x".source = launder secret;',
     'partitions.root.contents."/x".source', ["context", "nri-escape-a"]),
    ("laundered-fake-derivation",
     'contents."/x".source = { type = "derivation"; outPath = launder secret; };',
     'partitions.root.contents."/x".source', ["context", "nri-escape-a"]),
    ("laundered-copy-files",
     'CONFIG CopyFiles = [ "${launder secret}:/x" ];',
     "partitions.root.repartConfig.CopyFiles", ["context", "nri-escape-a"]),
    ("laundered-store-path",
     "storePaths = [ (launder secret) ];",
     "partitions.root.storePaths", ["context", "nri-escape-a"]),
    ("laundered-store-path-fake-derivation",
     'storePaths = [ { type = "derivation"; outPath = launder secret; } ];',
     "partitions.root.storePaths", ["context", "nri-escape-a"]),
    ("fake-derivation-store-path-host-dir",
     'storePaths = [ { type = "derivation"; outPath = "/etc"; } ];',
     "partitions.root.storePaths", ["not a store path"]),
]


def expr(partition: str, tag: str) -> str:
    config = ""
    if partition.startswith("CONFIG "):
        config, partition = partition[len("CONFIG "):], ""
    return PRELUDE.format(tag=tag) + image(partition).replace("CONFIG", config)


def assert_refused(r, path, words, where=None):
    assert_eval_error(r)
    assert f"builtins.repartImage: {path}: " in r.stderr, r.stderr
    for w in words:
        assert w in r.stderr, (w, r.stderr)
    assert not r.stdout.strip(), r.stdout
    if where is not None:
        pos = error_position(r.stderr)
        assert pos is not None and pos[0] == str(where), r.stderr


MODES = ["plain", "restrict-eval", "pure-eval", "flake", "build-no-sandbox", "build-sandbox"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("partition,path,words", [c[1:] for c in HOSTILE], ids=[c[0] for c in HOSTILE])
def test_escape_is_refused(nix, mode, partition, path, words):
    tag = uuid.uuid4().hex[:8]
    text = expr(partition, tag)
    if mode in ("plain", "restrict-eval", "pure-eval"):
        opts = () if mode == "plain" else ("--option", mode, "true")
        r = nix.run("nix-instantiate", *opts, "-E", text)
        assert_refused(r, path, words)
    elif mode == "flake":
        nix.write("flake/flake.nix", "{ outputs = { self }: {\n  packages.x86_64-linux.default =\n"
                  + textwrap.indent(text, "    ") + ";\n}; }\n")
        r = nix.run("nix", "build", "--no-link", "--json", *SANDBOX, f"path:{nix.dir / 'flake'}", timeout=300)
        assert_refused(r, path, words, where=None)
    else:
        f = nix.write("escape.nix", text)
        extra = SANDBOX if mode == "build-sandbox" else ("--option", "sandbox", "false")
        r = nix.build(f, *extra)
        assert_refused(r, path, words, where=f)


# ---- what must keep working --------------------------------------------

LEGIT = """\
let
  a = derivation {{
    name = "nri-legit-{tag}";
    system = "x86_64-linux";
    builder = "/bin/sh";
    args = [ "-c" "echo out > $out; echo dev > $dev" ];
    outputs = [ "out" "dev" ];
  }};
  b = derivation {{
    name = "nri-legit-b-{tag}";
    system = "x86_64-linux";
    builder = "/bin/sh";
    args = [ "-c" "mkdir -p $out/share; echo b > $out/share/b" ];
  }};
  file = builtins.toFile "nri-legit-file-{tag}" "file\\n";
in {{
  inherit a b file;
  img = builtins.repartImage {{
    name = "legit";
    partitions.root = {{
      repartConfig = {{
        Type = "root"; Format = "ext4";
        CopyFiles = [ "${{a.dev}}:/copy-dev" "${{b}}/share:/copy-share" ];
      }};
      contents = {{
        "/drv".source = a;
        "/dev".source = a.dev;
        "/out-path-set".source = {{ outPath = a; }};
        "/to-string".source = {{ __toString = self: "${{b}}/share/b"; }};
        "/path-out-path".source = {{ outPath = ./hello.txt; }};
        "/to-file".source = file;
        "/sub".source = "${{b}}/share";
      }};
      storePaths = [ a {{ outPath = b; }} "${{a.dev}}" ];
    }};
  }};
}}
"""


def test_what_a_source_may_be(nix, tmp_path):
    """Derivations, their other outputs, sets with outPath or __toString, a
    path under outPath, builtins.toFile and "${drv}/sub": each is accepted
    in every mode, the derivation depends on each, and the build copies
    each (checked with debugfs)."""
    tag = uuid.uuid4().hex[:8]
    nix.write("hello.txt", "hello\n")
    f = nix.write("legit.nix", LEGIT.format(tag=tag))
    for opts in ((), ("--option", "restrict-eval", "true", "-I", str(nix.dir))):
        r = nix.run("nix-instantiate", *opts, "-A", "img", str(f))
        assert r.returncode == 0, r.stderr
    r = nix.run("nix-instantiate", "--eval", "--read-write-mode", "--strict", "--json", "-E",
                f"let v = import {f}; in {{ img = v.img.drvPath; a = v.a.drvPath; b = v.b.drvPath; "
                f"file = v.file; }}")
    assert r.returncode == 0, r.stderr
    v = r.json()
    d = nix.show_derivation(v["img"])
    assert set(d["inputDrvs"]) == {v["a"], v["b"]}, d["inputDrvs"]
    assert set(d["inputDrvs"][v["a"]]) == {"out", "dev"}
    assert v["file"] in d["inputSrcs"]
    assert any(s.endswith("-hello.txt") for s in d["inputSrcs"]), d["inputSrcs"]

    b = nix.build(f, "-A", "img", *SANDBOX)
    assert b.returncode == 0, b.stderr
    out = b.stdout.strip()
    img = imagecheck.check_image(f"{out}/legit.raw", tmp_path)
    root = img.partitions[0]
    cat = lambda p: imagecheck.ext4_cat(f"{out}/legit.raw", root, p)
    assert cat("/drv") == b"out\n"
    assert cat("/dev") == b"dev\n"
    assert cat("/out-path-set") == b"out\n"
    assert cat("/to-string") == b"b\n"
    assert cat("/path-out-path") == b"hello\n"
    assert cat("/to-file") == b"file\n"
    assert cat("/sub/b") == b"b\n"
    assert cat("/copy-dev") == b"dev\n"
    assert cat("/copy-share/b") == b"b\n"


def test_read_only_evaluation_of_a_derivation_never_written(nix):
    """nix-instantiate --eval writes no .drv, so the outputs of a derivation
    evaluated there cannot be read: the image's attributes are still there
    (what a configuration reads), and the derivation it names is not in the
    store, so it cannot be built.  Written (read-write), the same expression
    is checked in full: a laundered source is refused."""
    tag = uuid.uuid4().hex[:8]
    text = expr('contents."/x".source = launder secret; storePaths = [ a ];', tag).replace(
        "nri-escape-a", f"nri-escape-a-{tag}")
    r = nix.run("nix-instantiate", "--eval", "--strict", "--json", "-E",
                f"let i = {text}; in {{ uuid = i.image.partitions.root.uuid; drv = i.drvPath; }}")
    assert r.returncode == 0, r.stderr
    v = r.json()
    assert v["uuid"] == "57bd1ad1-c688-450a-ba37-d1792ec72fbb"
    assert nix.run("nix-store", "--check-validity", v["drv"]).returncode != 0
    r = nix.run("nix-instantiate", "-E", text)
    assert_refused(r, 'partitions.root.contents."/x".source', ["context", f"nri-escape-a-{tag}"])
