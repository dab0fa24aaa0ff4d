"""What the integration tests that build images share: a small system of
store paths to put in them (SYSTEM), the expression around an image
(instantiate(), build()), the builder run by hand on a derivation's
attributes (builder_attrs(), run_builder()), a build that must fail and
leave nothing (assert_build_fails()), and the checks of what an image
holds against its spec, its JSON and its closure, with the check values of
DESIGN.md §5."""
import json
import os
import re
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

import imagecheck
from conftest import BUILD_FAILED, BUILDER
from imagecheck import MIB, ext4_cat, ext4_dump, ext4_stat


# The check values of DESIGN.md §5 (seed 0867da16-…).
ROOT_PARTITION_UUID = "57bd1ad1-c688-450a-ba37-d1792ec72fbb"
ROOT_EXT4_UUID = "7981aaf4-2a9a-4f86-9f1f-5b42c8f28bbf"
DISK_UUID = "b581fef7-24ed-4f31-990b-099ec86bba03"
ESP_PARTITION_UUID = "dac4058a-2fc0-4808-a7ef-b8b4501c00ce"
ESP_VFAT_ID = "793A-442B"

ESP_TYPE = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"
ROOT_X86_64 = "4f68bce3-e8cd-4db1-96e7-fbcaf984b709"
GENERIC = "0fc63daf-8483-4772-8e79-3d69d8477de4"

# The fields, in order, of systemd-repart 252's --json output.
REPART_252_FIELDS = ["type", "label", "uuid", "file", "node", "offset", "old_size", "raw_size",
                     "old_padding", "raw_padding", "activity"]


# A small system: store paths that refer to each other (toplevel → hello →
# libfoo, toplevel → a single-file store path), nested directories,
# executables, a file over 1 MiB, an empty file and an empty directory,
# relative, dangling and absolute symlinks, names with spaces and UTF-8.
# Derivation builders get no PATH, hence the one at the start of each script.
SYSTEM = r"""
let
  sh = name: script: derivation {
    inherit name;
    system = builtins.currentSystem;
    builder = "/bin/sh";
    args = [ "-c" ("PATH=/usr/bin:/bin; set -e; " + script) ];
  };
in rec {
  libfoo = sh "libfoo-1.0" ''
    mkdir -p $out/lib $out/share/doc/libfoo/deep/er/est $out/share/empty-dir
    seq 1 250000 > $out/lib/libfoo.so.1.0
    chmod 755 $out/lib/libfoo.so.1.0
    ln -s libfoo.so.1.0 $out/lib/libfoo.so.1
    ln -s ../../nonexistent/target $out/lib/dangling
    ln -s /etc/os-release $out/share/absolute-link
    : > $out/share/doc/libfoo/empty
    echo spaces > "$out/share/doc/libfoo/file with spaces.txt"
    echo utf8 > "$out/share/doc/libfoo/Grüße – ünïcödé ✓.txt"
    echo deep > $out/share/doc/libfoo/deep/er/est/file
  '';
  hello = sh "hello-2.12" ''
    mkdir -p $out/bin
    printf '#!/bin/sh\nexec cat ${libfoo}/share/doc/libfoo/deep/er/est/file\n' > $out/bin/hello
    chmod 555 $out/bin/hello
    ln -s hello "$out/bin/hello alias"
  '';
  config = sh "etc-config.conf" "echo 'hello=${hello}/bin/hello' > $out";
  toplevel = sh "nixos-system-test" ''
    mkdir -p $out/etc
    ln -s ${hello} $out/sw
    ln -s ${hello}/bin/hello $out/init
    ln -s ${config} $out/etc/config.conf
    echo ${libfoo} > $out/etc/libs
  '';
  # What goes on an ESP: no symlinks (FAT has none).
  espTree = sh "esp-tree" ''
    mkdir -p $out/loader/entries $out/loader/empty "$out/EFI/nixos/Grüße dir"
    echo "timeout 3" > $out/loader/loader.conf
    echo "title NixOS" > "$out/loader/entries/nixos generation 1.conf"
    seq 1 200000 > $out/EFI/nixos/kernel.efi
    : > $out/EFI/nixos/initrd-empty
    echo x > "$out/EFI/nixos/Grüße dir/Übung.txt"
  '';
  uki = sh "nixos-uki.efi" "seq 1 180000 > $out";
  espWithLink = sh "esp-with-link" ''
    mkdir -p $out/EFI
    echo x > $out/EFI/a.efi
    ln -s a.efi $out/EFI/link.efi
  '';
  big = sh "big-blob" ''
    mkdir $out
    yes 'nix-repart-image test data' | head -c 20971520 > $out/blob
  '';
}
"""


PRELUDE = "let sys = import ./system.nix; in\n"


def write(nix, name, text):
    p = nix.dir / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text, encoding="utf-8")
    return p


@dataclass
class Built:
    out: Path          # the output path
    file: Path         # the expression
    drv: str
    image: dict        # the derivation's `image` attribute
    spec: dict         # its repartSpec
    attrs: dict        # its structured attributes
    log: str

    @property
    def image_file(self):
        return self.out / self.spec["imageFile"]

    def spec_partition(self, name):
        [p] = [p for p in self.spec["partitions"] if p["id"] == name]
        return p


def instantiate(nix, name, body):
    """Writes PRELUDE + body to `name`; returns (file, drv, image attr, structured attrs)."""
    write(nix, "system.nix", SYSTEM)
    write(nix, "bootx64.efi", "not really an EFI program\n")
    f = write(nix, name, PRELUDE + body)
    r = nix.eval(f"let d = import {f}; in {{ drv = d.drvPath; image = d.image; }}")
    assert r.returncode == 0, r.stderr
    v = r.json()
    attrs = json.loads(nix.show_derivation(v["drv"])["env"]["__json"])
    return f, v["drv"], v["image"], attrs


def build(nix, body, name="image.nix", *extra, failure="nix-build failed") -> Built:
    f, drv, image, attrs = instantiate(nix, name, body)
    r = nix.build(f, *extra)
    assert r.returncode == 0, f"{failure}:\n{r.stderr}"
    out = Path(r.stdout.strip())
    return Built(out=out, file=f, drv=drv, image=image, spec=attrs["repartSpec"], attrs=attrs, log=r.stderr)


def sys_path(nix, attr):
    r = nix.eval(f"(import {nix.dir / 'system.nix'}).{attr}.outPath")
    assert r.returncode == 0, r.stderr
    return r.json()


def requisites(nix, *paths):
    r = nix.run("nix-store", "--query", "--requisites", *paths)
    assert r.returncode == 0, r.stderr
    return sorted(r.stdout.split())


def mangle_fat_label(label):
    """systemd-repart 252's mangle_fat_label(), as mkfs.vfat gets it."""
    s = "".join(c if ord(c) < 128 else "_" for c in label)[:11].upper()
    s = "".join("_" if c in '*?.,;:/\\|+=<>[]"' or ord(c) < 32 or ord(c) == 127 else c for c in s)
    return s


def assert_matches_spec(img: imagecheck.Image, b: Built):
    """The table and file systems are what the derivation's `image`
    attribute said at evaluation time, and repart-output.json agrees with
    the table."""
    names = sorted(b.image["partitions"], key=lambda n: b.image["partitions"][n]["partno"])
    assert img.disk_uuid == b.image["diskUuid"]
    assert len(img.partitions) == len(names), (img.partitions, names)
    for part, name in zip(img.partitions, names):
        a = b.image["partitions"][name]
        sp = b.spec_partition(name)
        assert part.index == a["partno"]
        assert part.type_uuid == a["typeUuid"], name
        assert part.uuid == a["uuid"], name
        assert part.label == a["label"], name
        assert part.flags == int(a["flags"], 16), (name, hex(part.flags), a["flags"])
        # blkid names a format as Format= does; what it shows of the UUID
        # and the label is each format's own (a new format adds its branch).
        assert part.fstype == sp["format"], (name, part.fstype, sp["format"])
        if sp["format"] == "ext4":
            assert part.fs_uuid == a["fsUuid"], name
            # ext4 holds 16 bytes of label: mkfs.ext4 cuts at a character.
            assert part.fs_label == a["label"].encode()[:16].decode("utf-8", "ignore"), name
        elif sp["format"] == "vfat":
            vid = a["vfatVolumeId"].upper()
            assert part.fs_uuid == f"{vid[:4]}-{vid[4:]}", name
            assert part.fs_label == mangle_fat_label(a["label"]), name
        elif sp["format"] in ("erofs", "swap"):
            assert part.fstype == sp["format"], name
            assert part.fs_uuid == a["fsUuid"], name
            # systemd-repart gives mkfs.erofs no label; mkswap the partition's.
            assert part.fs_label == (a["label"] if sp["format"] == "swap" else None), name
        elif sp["format"] == "squashfs":
            # SquashFS has neither a UUID nor a label.
            assert (part.fstype, part.fs_uuid, part.fs_label) == ("squashfs", None, None), name
        else:
            assert sp["format"] is None, f"{name}: no check of format {sp['format']} here"
    assert_output_json(img, b)


def assert_output_json(img: imagecheck.Image, b: Built):
    text = (b.out / "repart-output.json").read_text(encoding="utf-8")
    # systemd-repart 252's pretty printer: tabs, " : ", one member a line.
    assert text.startswith('[\n\t{\n\t\t"type" : "'), text[:80]
    assert text.endswith("\n\t}\n]\n"), text[-80:]
    entries = json.loads(text)
    names = sorted(b.image["partitions"], key=lambda n: b.image["partitions"][n]["partno"])
    assert len(entries) == len(img.partitions)
    end_of_disk = (img.last_lba + 1) * img.sector_size
    for i, (e, part, name) in enumerate(zip(entries, img.partitions, names)):
        assert list(e) == REPART_252_FIELDS, e
        nxt = img.partitions[i + 1].offset if i + 1 < len(img.partitions) else None
        padding = nxt - (part.offset + part.size) if nxt is not None else e["raw_padding"]
        assert e == {
            "type": b.image["partitions"][name]["type"],
            "label": part.label,
            "uuid": part.uuid,
            "file": f"{name}.conf",
            "node": f"{b.spec['imageFile']}{i + 1}",
            "offset": part.offset,
            "old_size": 0,
            "raw_size": part.size,
            "old_padding": 0,
            "raw_padding": padding,
            "activity": "create",
        }
        assert part.offset + part.size + e["raw_padding"] <= end_of_disk


def assert_small_system(closure):
    """The test closure really has what a small system has, so that the
    tests reading it back test those things."""
    assert len(closure) == 4, closure
    kinds = {"big": 0, "empty": 0, "exec": 0, "rel": 0, "dangling": 0, "abs": 0, "space": 0, "utf8": 0,
             "file-path": 0, "deep": 0}
    for top in closure:
        if os.path.isfile(top):
            kinds["file-path"] += 1
        for dirpath, dirs, files in os.walk(top):
            if len(Path(dirpath).relative_to(top).parts) >= 4:
                kinds["deep"] += 1
            for n in dirs + files:
                p = Path(dirpath, n)
                st = os.lstat(p)
                kinds["space"] += " " in n
                kinds["utf8"] += not n.isascii()
                if stat.S_ISLNK(st.st_mode):
                    t = os.readlink(p)
                    kinds["abs" if t.startswith("/") else "rel"] += 1
                    kinds["dangling"] += not os.path.exists(p)
                elif stat.S_ISREG(st.st_mode):
                    kinds["big"] += st.st_size > MIB
                    kinds["empty"] += st.st_size == 0
                    kinds["exec"] += bool(st.st_mode & 0o111)
    assert all(kinds.values()), kinds


def assert_closure_in_ext4(nix, img, part, dest, store_paths, strip=False):
    """Every file of the closure of store_paths is in the partition's ext4,
    at /nix/store/<hash-name> (or /<hash-name> with strip), with the bytes,
    modes, owner, mtime and symlink targets it has in the store — and
    nothing else is."""
    closure = requisites(nix, *store_paths)
    names = {os.path.basename(p) for p in closure}
    dump = ext4_dump(img.path, part, dest)
    if strip:
        assert set(os.listdir(dump)) == names | {"lost+found"}
        base = dump
    else:
        assert sorted(os.listdir(dump)) == ["lost+found", "nix"]
        assert sorted(os.listdir(dump / "nix")) == ["store"]
        base = dump / "nix" / "store"
        assert set(os.listdir(base)) == names
    for p in closure:
        imagecheck.assert_same_tree(p, base / os.path.basename(p))

    # The same, for a few files, through debugfs's own stat and cat rather
    # than rdump's copy.
    prefix = "" if strip else "/nix/store"
    libfoo = [p for p in closure if p.endswith("-libfoo-1.0")]
    if libfoo:
        lib = prefix + "/" + os.path.basename(libfoo[0])
        s = ext4_stat(img.path, part, f"{lib}/share/doc/libfoo/file with spaces.txt")
        assert re.search(r"Type: regular\s+Mode:\s+0444", s), s
        assert re.search(r"User:\s+0\s+Group:\s+0", s), s
        assert re.search(r"mtime: 0x00000001:", s), s
        s = ext4_stat(img.path, part, f"{lib}/lib/libfoo.so.1.0")
        assert re.search(r"Type: regular\s+Mode:\s+0555", s), s
        s = ext4_stat(img.path, part, f"{lib}/lib/dangling")
        assert "Type: symlink" in s and 'Fast link dest: "../../nonexistent/target"' in s, s
        data = ext4_cat(img.path, part, f"{lib}/lib/libfoo.so.1.0")
        assert data == Path(libfoo[0], "lib/libfoo.so.1.0").read_bytes()
    return closure


def esp_expected(b: Built, name="esp"):
    expected = {}
    for c in b.spec_partition(name)["contents"]:
        expected.update(imagecheck.store_tree_for_vfat(c["source"], c["target"]))
    return expected


def builder_attrs(nix, b: Built, out_dir):
    """.attrs.json as Nix 2.8 writes it for the derivation: its structured
    attributes, outputs.out, and each exportReferencesGraph key as a list of
    {path, narSize, narHash, closureSize, references}."""
    attrs = dict(b.attrs)
    for key, paths in attrs.get("exportReferencesGraph", {}).items():
        r = nix.run("nix", "path-info", "--json", "--recursive", "--closure-size", *paths)
        assert r.returncode == 0, r.stderr
        attrs[key] = [{k: i[k] for k in ("path", "narSize", "narHash", "closureSize", "references")}
                      for i in r.json()]
    attrs["outputs"] = {"out": str(out_dir)}
    return attrs


def run_builder(args, cwd, tmpdir, umask, env=None):
    tmpdir.mkdir(parents=True, exist_ok=True)
    e = {"TMPDIR": str(tmpdir), "HOME": "/homeless-shelter", "NIX_BUILD_TOP": str(cwd)}
    e.update(env or {})
    return subprocess.run([str(BUILDER), *args], cwd=cwd, env=e, capture_output=True, text=True,
                          timeout=300, preexec_fn=lambda: os.umask(umask))


def assert_build_fails(nix, body, name="image.nix"):
    """nix-build fails, and leaves no output path in the store; also the
    builder program itself, run by hand on the same attributes, leaves no
    image (no .raw, .partial or repart-output.json) in its output."""
    f, drv, image, attrs = instantiate(nix, name, body)
    out = nix.eval(f"(import {f}).outPath").json()
    r = nix.build(f)
    assert r.returncode != 0, r.stdout
    assert any(m in r.stderr for m in BUILD_FAILED), r.stderr
    # Not in the store: Nix 2.8 without a sandbox leaves the invalid output
    # directory until the next attempt, but the builder put nothing in it.
    assert nix.run("nix-store", "--check-validity", out).returncode != 0
    assert not os.path.lexists(out) or os.listdir(out) == [], os.listdir(out)
    # The failure is the builder's, with a message, not a crash.
    for crash in ("Segmentation fault", "Aborted", "core dumped", "signal"):
        assert crash not in r.stderr, r.stderr

    b = Built(out=Path(out), file=f, drv=drv, image=image, spec=attrs["repartSpec"], attrs=attrs, log="")
    d = nix.dir / "by-hand"
    d.mkdir()
    (d / ".attrs.json").write_text(json.dumps(builder_attrs(nix, b, d / "out")))
    p = run_builder([], d, nix.dir / "by-hand-tmp", 0o022)
    assert p.returncode == 1, p
    left = sorted(os.listdir(d / "out")) if (d / "out").exists() else []
    assert left == [], left
    return r.stderr
