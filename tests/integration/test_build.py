"""Building images: real nix-build runs the derivation builtins.repartImage
returns, and the image is read back with tools we did not write (sfdisk,
sgdisk, blkid, e2fsck, debugfs, fsck.vfat, mtools, systemd-dissect,
systemd-repart 252 as the peer), never by mounting it."""
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

import imagecheck
import uuids
from conftest import BUILDER, DEFAULT_SEED
from imagecheck import MIB, check_image, ext4_cat, ext4_dump, ext4_stat, vfat_tree
from builds import (ROOT_PARTITION_UUID, ROOT_EXT4_UUID, DISK_UUID, ESP_PARTITION_UUID, ESP_VFAT_ID,
                    ESP_TYPE, ROOT_X86_64, GENERIC, write, Built, build, sys_path, assert_matches_spec,
                    assert_small_system, assert_closure_in_ext4, esp_expected, builder_attrs, run_builder,
                    assert_build_fails)


# ---- the three images of DESIGN.md §1 ---------------------------------------

ESP_AND_ROOT = """\
builtins.repartImage {
  name = "image";
  partitions = {
    "esp" = {
      contents = {
        "/EFI/BOOT/BOOTX64.EFI".source = ./bootx64.efi;
        "/EFI/nixos".source = "${sys.espTree}/EFI/nixos";
        "/loader".source = "${sys.espTree}/loader";
      };
      repartConfig = { Type = "esp"; Format = "vfat"; SizeMinBytes = "96M"; };
    };
    "root" = {
      storePaths = [ sys.toplevel ];
      repartConfig = { Type = "root"; Format = "ext4"; Label = "nixos"; Minimize = "guess"; };
    };
  };
}
"""


def test_esp_and_root(nix, tmp_path):
    b = build(nix, ESP_AND_ROOT)
    assert sorted(os.listdir(b.out)) == ["image.raw", "repart-output.json"]
    img = check_image(b.image_file, tmp_path)
    assert_matches_spec(img, b)

    # The check values of DESIGN.md §5, in the built image.
    esp, root = img.partitions
    assert img.disk_uuid == DISK_UUID
    assert (root.type_uuid, root.uuid, root.fs_uuid, root.label) == (ROOT_X86_64, ROOT_PARTITION_UUID,
                                                                     ROOT_EXT4_UUID, "nixos")
    assert (esp.type_uuid, esp.uuid, esp.fs_uuid) == (ESP_TYPE, ESP_PARTITION_UUID, ESP_VFAT_ID)
    assert root.flags == 1 << 59               # GrowFileSystem, as for root by default
    assert esp.size == 96 * MIB
    assert esp.offset == MIB and root.offset == esp.offset + esp.size

    # The ESP holds the file, both trees and the directories above them.
    tree = vfat_tree(b.image_file, esp)
    assert tree == esp_expected(b)
    assert tree["/EFI/BOOT/BOOTX64.EFI"] == b"not really an EFI program\n"
    assert len(tree["/EFI/nixos/kernel.efi"]) > MIB and tree["/EFI/nixos/initrd-empty"] == b""

    closure = assert_closure_in_ext4(nix, img, root, tmp_path / "root", [sys_path(nix, "toplevel")])
    assert_small_system(closure)


STORE_PARTITION = """\
builtins.repartImage {
  name = "store";
  version = "1.0";
  partitions."store" = {
    storePaths = [ sys.toplevel ];
    stripNixStorePrefix = true;
    repartConfig = { Type = "linux-generic"; Label = "nix-store"; Format = "ext4"; };
  };
}
"""


def test_store_partition(nix, tmp_path):
    b = build(nix, STORE_PARTITION)
    assert sorted(os.listdir(b.out)) == ["repart-output.json", "store_1.0.raw"]
    img = check_image(b.image_file, tmp_path)
    assert_matches_spec(img, b)
    [part] = img.partitions
    assert (part.type_uuid, part.label, part.fs_label) == (GENERIC, "nix-store", "nix-store")
    assert part.uuid == uuids.partition_uuid(DEFAULT_SEED, GENERIC)
    # Mounted at /nix/store: the paths are at /<hash-name>, no /nix in it.
    assert_closure_in_ext4(nix, img, part, tmp_path / "store", [sys_path(nix, "toplevel")], strip=True)


APPLIANCE = """\
builtins.repartImage {
  name = "appliance";
  partitions = {
    "esp" = {
      contents = {
        "/EFI/BOOT/BOOTX64.EFI".source = "${sys.uki}";
        "/EFI/Linux/nixos-uki.efi".source = sys.uki;
      };
      repartConfig = { Type = "esp"; Format = "vfat"; SizeMinBytes = "96M"; };
    };
    "root" = {
      storePaths = [ sys.toplevel ];
      repartConfig = { Type = "root"; Format = "ext4"; Label = "nixos"; Minimize = "guess"; };
    };
  };
}
"""


def test_appliance(nix, tmp_path):
    b = build(nix, APPLIANCE)
    assert sorted(os.listdir(b.out)) == ["appliance.raw", "repart-output.json"]
    img = check_image(b.image_file, tmp_path)
    assert_matches_spec(img, b)
    esp, root = img.partitions
    uki = Path(sys_path(nix, "uki")).read_bytes()
    assert len(uki) > MIB
    assert vfat_tree(b.image_file, esp) == {
        "/EFI": None, "/EFI/BOOT": None, "/EFI/Linux": None,
        "/EFI/BOOT/BOOTX64.EFI": uki, "/EFI/Linux/nixos-uki.efi": uki,
    }
    # fileSystems."/".device = "/dev/disk/by-label/nixos" finds it.
    assert (root.fstype, root.fs_label) == ("ext4", "nixos")
    assert_closure_in_ext4(nix, img, root, tmp_path / "root", [sys_path(nix, "toplevel")])


# ---- side by side with systemd-repart 252 -------------------------------------

def nix_value(v):
    if isinstance(v, list):
        return "[ " + " ".join(nix_value(x) for x in v) + " ]"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    return json.dumps(v, ensure_ascii=False)


def ini_value(v):
    if isinstance(v, bool):
        return "yes" if v else "no"
    return str(v)


def repart_peer(tmp_path, definitions, size="auto"):
    """systemd-repart 252 on the same definitions (one <name>.conf each),
    writing image.raw in its own directory; returns (image, json text)."""
    d = tmp_path / "peer"
    (d / "repart.d").mkdir(parents=True)
    for name, cfg in definitions.items():
        body = "".join(f"{k}={ini_value(x)}\n" for k, v in cfg.items()
                       for x in (v if isinstance(v, list) else [v]))
        (d / "repart.d" / f"{name}.conf").write_text("[Partition]\n" + body, encoding="utf-8")
    p = subprocess.run(["systemd-repart", "--empty=create", f"--size={size}", "--dry-run=no", "--json=pretty",
                        f"--seed={DEFAULT_SEED}", f"--definitions={d / 'repart.d'}", "image.raw"],
                       cwd=d, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return d / "image.raw", p.stdout


def image_body(definitions, extra=""):
    parts = "\n".join(
        f'    "{n}".repartConfig = {{ ' + " ".join(f"{k} = {nix_value(v)};" for k, v in cfg.items()) + " };"
        for n, cfg in definitions.items())
    return f'builtins.repartImage {{\n  name = "image";\n{extra}  partitions = {{\n{parts}\n  }};\n}}\n'


def sfdisk_dump(path):
    """sfdisk --dump without the lines that name the file."""
    out = imagecheck.run("sfdisk", "--dump", path).stdout.decode()
    out = re.sub(r"^device: .*\n", "", out, flags=re.M)
    return re.sub(r"^\S+(\d+) :", r"part\1 :", out, flags=re.M)


def assert_same_as_peer(tmp_path, b: Built, img, definitions, size="auto"):
    peer_image, peer_json = repart_peer(tmp_path, definitions, size)
    assert os.path.getsize(b.image_file) == os.path.getsize(peer_image)
    assert sfdisk_dump(b.image_file) == sfdisk_dump(peer_image)
    # repart-output.json is what `systemd-repart --json=pretty` prints,
    # byte for byte, when its definition files are named <name>.conf.
    assert (b.out / "repart-output.json").read_text(encoding="utf-8") == peer_json
    for part in img.partitions:
        theirs = imagecheck.blkid(peer_image, part.offset, part.size)
        assert (part.fstype, part.fs_uuid, part.fs_label) == (theirs.get("TYPE"), theirs.get("UUID"),
                                                            theirs.get("LABEL")), part


def test_same_table_as_systemd_repart(nix, tmp_path):
    definitions = {
        "10-esp": {"Type": "esp", "Format": "vfat", "SizeMinBytes": "96M"},
        "20-root": {"Type": "root", "Format": "ext4", "Label": "nixos"},
        "30-home": {"Type": "home", "NoAuto": True, "SizeMinBytes": "5M", "PaddingMinBytes": "1M"},
        "35-srv": {"Type": "srv", "Format": "ext4", "Label": "aÄÖÜäöüßé-srv"},
        "36-xbootldr": {"Type": "xbootldr", "Format": "vfat", "Label": "boot ü.x-long-name"},
        "40-data": {"Type": "linux-generic", "Label": "data ü", "Flags": "0x1000000000000000"},
        "50-data": {"Type": "linux-generic", "UUID": "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"},
    }
    b = build(nix, image_body(definitions))
    img = check_image(b.image_file, tmp_path)
    assert_matches_spec(img, b)
    # A default label gets -2 only when another partition has it already.
    assert [p.label for p in img.partitions] == ["esp", "nixos", "home", "aÄÖÜäöüßé-srv", "boot ü.x-long-name",
                                                 "data ü", "linux-generic"]
    assert img.partitions[2].flags == (1 << 63) | (1 << 59)
    assert img.partitions[5].flags == 1 << 60
    # File-system labels as mkfs.ext4 and systemd-repart's mkfs.vfat call make them.
    assert img.partitions[3].fs_label == "aÄÖÜäöüß"
    assert img.partitions[4].fs_label == "BOOT __X-LO"
    assert_same_as_peer(tmp_path, b, img, definitions)


def test_image_size_shared_by_weight(nix, tmp_path):
    definitions = {
        "10-root": {"Type": "root", "Format": "ext4", "SizeMinBytes": "20M", "SizeMaxBytes": "20M"},
        "20-a": {"Type": "linux-generic", "Weight": 1000},
        "30-b": {"Type": "linux-generic", "Weight": 3000},
    }
    b = build(nix, image_body(definitions, '  imageSize = "200M";\n'))
    assert os.path.getsize(b.image_file) == 200 * MIB
    img = check_image(b.image_file, tmp_path)
    assert_matches_spec(img, b)
    root, a, bb = img.partitions
    assert root.size == 20 * MIB
    # The free space after root goes 1:3 to a and b, to the grain, and all
    # of it is used.
    free = (img.last_lba + 1) * 512 - a.offset
    assert abs(bb.size - 3 * a.size) <= 4 * 4096, (a.size, bb.size)
    assert free - (a.size + bb.size) < 4 * 4096, (free, a.size, bb.size)
    assert a.size % 4096 == 0 and bb.size % 4096 == 0
    assert_same_as_peer(tmp_path, b, img, definitions, size="200M")


def test_priority_drops_partitions_as_systemd_repart(nix, tmp_path):
    # What does not fit a fixed size is dropped, highest Priority first.
    definitions = {
        "a": {"Type": "root", "Format": "ext4", "SizeMinBytes": "20M", "SizeMaxBytes": "20M"},
        "b": {"Type": "linux-generic", "SizeMinBytes": "150M", "Priority": 10},
        "c": {"Type": "linux-generic"},
    }
    b = build(nix, image_body(definitions, '  imageSize = "100M";\n'))
    img = check_image(b.image_file, tmp_path)
    assert [p.uuid for p in img.partitions] == [b.image["partitions"]["a"]["uuid"],
                                                b.image["partitions"]["c"]["uuid"]]
    assert [e["file"] for e in json.loads((b.out / "repart-output.json").read_text())] == ["a.conf", "c.conf"]
    assert_same_as_peer(tmp_path, b, img, definitions, size="100M")


def test_copy_files_and_make_directories_as_systemd_repart(nix, tmp_path):
    b = build(nix, """\
builtins.repartImage {
  name = "image";
  partitions."root".repartConfig = {
    Type = "root"; Format = "ext4";
    CopyFiles = [ "${sys.libfoo}/share:/usr/share" "${sys.hello}/bin/hello:/usr/bin/hello" "${sys.libfoo}/lib" ];
    MakeDirectories = [ "/var/lib/x" "/home" ];
  };
}
""")
    img = check_image(b.image_file, tmp_path)
    assert_matches_spec(img, b)
    libfoo, hello = sys_path(nix, "libfoo"), sys_path(nix, "hello")
    definitions = {"root": {"Type": "root", "Format": "ext4",
                            "CopyFiles": [f"{libfoo}/share:/usr/share", f"{hello}/bin/hello:/usr/bin/hello",
                                          f"{libfoo}/lib"],
                            "MakeDirectories": ["/var/lib/x", "/home"]}}
    assert_same_as_peer(tmp_path, b, img, definitions)
    [part] = img.partitions
    ours = ext4_dump(b.image_file, part, tmp_path / "ours")
    theirs = ext4_dump(tmp_path / "peer" / "image.raw", part, tmp_path / "theirs")
    # The same tree as systemd-repart's copy (its directories get the time
    # of the build, so times are not compared).
    imagecheck.assert_same_tree(theirs, ours, times=False)
    imagecheck.assert_same_tree(f"{libfoo}/share", ours / "usr" / "share")
    imagecheck.assert_same_tree(f"{libfoo}/lib", ours / "nix" / "store" / os.path.basename(libfoo) / "lib")
    assert (ours / "usr" / "bin" / "hello").read_bytes() == Path(hello, "bin", "hello").read_bytes()
    assert stat.S_IMODE(os.lstat(ours / "var" / "lib" / "x").st_mode) == 0o755


# ---- reproducibility ------------------------------------------------------------

def test_nix_build_check_rebuilds_identically(nix):
    b = build(nix, ESP_AND_ROOT)
    check_image(b.image_file, nix.dir)
    before = imagecheck.file_sha256(b.image_file)
    r = nix.build(b.file, "--check")
    # nix-build --check fails when the rebuilt output differs in any byte.
    assert r.returncode == 0, r.stderr
    assert "checking outputs of" in r.stderr, r.stderr
    assert imagecheck.file_sha256(b.image_file) == before

    # And --check does notice a difference (the check above is not vacuous).
    f = write(nix, "nondeterministic.nix", """\
      derivation { name = "nondeterministic"; system = builtins.currentSystem; builder = "/bin/sh";
                   args = [ "-c" "PATH=/usr/bin:/bin; date +%s%N > $out" ]; }""")
    assert nix.build(f).returncode == 0
    r = nix.build(f, "--check")
    assert r.returncode != 0 and "may not be deterministic" in r.stderr, r.stderr


def test_builder_program_is_reproducible(nix, tmp_path):
    b = build(nix, ESP_AND_ROOT)
    store_sha = imagecheck.file_sha256(b.image_file)

    # One .attrs.json, as Nix 2.8 would write it, with outputs.out = one/out.
    one = tmp_path / "one"
    one.mkdir()
    attrs_text = json.dumps(builder_attrs(nix, b, one / "out"))
    attrs_file = tmp_path / "attrs.json"
    attrs_file.write_text(attrs_text)

    # By hand: --attrs FILE --out DIR from another directory; --out wins
    # over outputs.out.
    (tmp_path / "two").mkdir()
    r2 = run_builder(["--attrs", str(attrs_file), "--out", str(tmp_path / "two-out")], tmp_path / "two",
                     tmp_path / "other" / "tmp-two", 0o002)
    assert r2.returncode == 0, r2.stderr
    assert not (one / "out").exists()

    # As Nix runs it: the same .attrs.json in the working directory, the
    # output where outputs.out says; another TMPDIR and umask.
    (one / ".attrs.json").write_text(attrs_text)
    r1 = run_builder([], one, tmp_path / "tmp-one", 0o077)
    assert r1.returncode == 0, r1.stderr

    a, c = one / "out", tmp_path / "two-out"
    assert sorted(os.listdir(a)) == sorted(os.listdir(c)) == ["image.raw", "repart-output.json"]
    # Byte-identical to each other and to what nix-build made.
    assert imagecheck.file_sha256(a / "image.raw") == imagecheck.file_sha256(c / "image.raw") == store_sha

    # As an unprivileged build user (a Nix daemon's nixbld): the same bytes,
    # files still owned by root in the image.
    if os.geteuid() == 0:
        # Outside tmp_path, whose parents only root may enter.
        three = Path(tempfile.mkdtemp(prefix="nri-build-user-"))
        try:
            (three / ".attrs.json").write_text(json.dumps(builder_attrs(nix, b, three / "out")))
            (three / "tmp").mkdir()
            for p in (three, three / "tmp", three / ".attrs.json"):
                os.chown(p, 65534, 65534)
            p = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", str(BUILDER)],
                               cwd=three, env={"TMPDIR": str(three / "tmp")}, capture_output=True, text=True,
                               timeout=300)
            assert p.returncode == 0, p.stderr
            assert imagecheck.file_sha256(three / "out" / "image.raw") == store_sha
        finally:
            shutil.rmtree(three)
    assert (a / "repart-output.json").read_bytes() == (c / "repart-output.json").read_bytes() \
        == (b.out / "repart-output.json").read_bytes()
    check_image(c / "image.raw", tmp_path)


def test_builder_program_usage(tmp_path):
    r = subprocess.run([str(BUILDER), "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--attrs FILE" in r.stdout and "--out DIR" in r.stdout, r
    r = subprocess.run([str(BUILDER), "--no-such-option"], capture_output=True, text=True)
    assert r.returncode == 2 and "usage:" in r.stderr, r
    r = subprocess.run([str(BUILDER), "--attrs", str(tmp_path / "missing.json"), "--out", str(tmp_path / "o")],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "missing.json" in r.stderr, r
    assert not (tmp_path / "o").exists()


# ---- split files, compression, sector size --------------------------------------

SPLIT = """\
builtins.repartImage {
  name = "image";
  split = true;
  partitions = {
    "esp" = {
      contents."/EFI/BOOT/BOOTX64.EFI".source = ./bootx64.efi;
      repartConfig = { Type = "esp"; Format = "vfat"; SizeMinBytes = "40M"; };
    };
    "root" = {
      storePaths = [ sys.hello ];
      repartConfig = { Type = "root"; Format = "ext4"; Label = "nixos"; };
    };
    "scratch" = {
      repartConfig = { Type = "linux-generic"; SplitName = "-"; };
    };
  };
}
"""


def test_split_files(nix, tmp_path):
    b = build(nix, SPLIT)
    # %t names them after the type; SplitName = "-" gives none.
    assert sorted(os.listdir(b.out)) == ["image.esp.raw", "image.raw", "image.root-x86-64.raw",
                                         "repart-output.json"]
    img = check_image(b.image_file, tmp_path)
    assert_matches_spec(img, b)
    esp, root, scratch = img.partitions
    for part, name in ((esp, "image.esp.raw"), (root, "image.root-x86-64.raw")):
        f = b.out / name
        assert f.stat().st_size == part.size, name
        assert imagecheck.file_sha256(f) == imagecheck.range_sha256(b.image_file, part.offset, part.size), name
    # A split file is a file system of its own.
    p = imagecheck.run("e2fsck", "-fn", b.out / "image.root-x86-64.raw", check=False)
    assert p.returncode == 0, imagecheck.text(p)


COMPRESSED = """\
builtins.repartImage {
  name = "image";
  COMPRESSION
  partitions = {
    "esp" = {
      contents."/EFI/BOOT/BOOTX64.EFI".source = ./bootx64.efi;
      repartConfig = { Type = "esp"; Format = "vfat"; SizeMinBytes = "40M"; };
    };
    "root" = {
      storePaths = [ sys.toplevel ];
      repartConfig = { Type = "root"; Format = "ext4"; Label = "nixos"; Minimize = "guess"; };
    };
  };
}
"""


@pytest.mark.parametrize("algorithm,suffix,magic,decompress", [
    ("zstd", ".zst", b"\x28\xb5\x2f\xfd", ["zstd", "-q", "-d", "-c"]),
    ("xz", ".xz", b"\xfd7zXZ\x00", ["xz", "-d", "-c"]),
], ids=["zstd", "xz"])
def test_compression(nix, tmp_path, algorithm, suffix, magic, decompress):
    plain = build(nix, COMPRESSED.replace("COMPRESSION", ""), "plain.nix")
    b = build(nix, COMPRESSED.replace(
        "COMPRESSION", f'compression = {{ enable = true; algorithm = "{algorithm}"; level = 3; }};'))
    assert sorted(os.listdir(b.out)) == ["image.raw" + suffix, "repart-output.json"]
    packed = b.out / ("image.raw" + suffix)
    assert packed.read_bytes()[:len(magic)] == magic
    assert packed.stat().st_size < plain.image_file.stat().st_size // 10
    raw = tmp_path / "image.raw"
    with open(raw, "wb") as f:
        p = subprocess.run([*decompress, str(packed)], stdout=f, stderr=subprocess.PIPE, timeout=120)
    assert p.returncode == 0, p.stderr
    # The same image as without compression, and a clean one.
    assert imagecheck.file_sha256(raw) == imagecheck.file_sha256(plain.image_file)
    img = check_image(raw, tmp_path)
    assert (b.out / "repart-output.json").read_bytes() == (plain.out / "repart-output.json").read_bytes()
    assert [p.uuid for p in img.partitions] == [ESP_PARTITION_UUID, ROOT_PARTITION_UUID]


SECTOR_4096 = """\
builtins.repartImage {
  name = "image";
  sectorSize = 4096;
  partitions = {
    "esp" = {
      contents."/EFI/BOOT/BOOTX64.EFI".source = ./bootx64.efi;
      repartConfig = { Type = "esp"; Format = "vfat"; SizeMinBytes = "64M"; };
    };
    "root" = {
      storePaths = [ sys.toplevel ];
      repartConfig = { Type = "root"; Format = "ext4"; Label = "nixos"; Minimize = "guess"; };
    };
  };
}
"""


def test_sector_size_4096(nix, tmp_path):
    b = build(nix, SECTOR_4096)
    img = check_image(b.image_file, tmp_path)
    assert img.sector_size == 4096 and img.sfdisk["sectorsize"] == 4096
    assert_matches_spec(img, b)
    esp, root = img.partitions
    # The first partition at 1 MiB as with 512-byte sectors, the next right
    # after it; every boundary on the 4096-byte grain.
    assert esp.start == 256 and root.start == esp.start + esp.sectors
    for part in img.partitions:
        assert part.offset % 4096 == 0 and part.size % 4096 == 0
    # The backup GPT header in the image's last 4096-byte sector.
    with open(b.image_file, "rb") as f:
        f.seek(-4096, os.SEEK_END)
        assert f.read(8) == b"EFI PART"
    # The FAT's sectors are the disk's.
    assert esp.blkid.get("BLOCK_SIZE") == "4096", esp.blkid
    assert vfat_tree(b.image_file, esp)["/EFI/BOOT/BOOTX64.EFI"] == b"not really an EFI program\n"
    assert_closure_in_ext4(nix, img, root, tmp_path / "root", [sys_path(nix, "toplevel")])


SPARSE_OR_DENSE = """\
let
  file = derivation {
    name = "NAME-file";
    system = builtins.currentSystem;
    builder = "/bin/sh";
    args = [ "-c" "PATH=/usr/bin:/bin; set -e; mkdir $out; MAKE; printf data | dd of=$out/disk.img bs=1 seek=1000000 conv=notrunc; echo hi > $out/small" ];
  };
in builtins.repartImage {
  name = "image";
  partitions."root" = {
    storePaths = [ file ];
    repartConfig = { Type = "root"; Format = "ext4"; Minimize = "guess"; };
  };
}
"""


def test_sparse_file_and_minimize_guess(nix, tmp_path):
    # A 48 MiB file that is all hole but 4 bytes: it takes 4 KiB in the store
    # and must take as little in the image.
    b = build(nix, SPARSE_OR_DENSE.replace("NAME", "sparse").replace("MAKE", "truncate -s 48M $out/disk.img"),
              "sparse.nix")
    img = check_image(b.image_file, tmp_path)
    assert_matches_spec(img, b)
    [root] = img.partitions
    [path] = b.attrs["exportReferencesGraph"]["closure-0"]
    inside = "/nix/store/" + os.path.basename(path) + "/disk.img"
    s = ext4_stat(b.image_file, root, inside)
    # Still sparse: one data block (8 × 512 bytes), the right bytes.
    assert re.search(r"Size: 50331648\b", s) and re.search(r"Blockcount: 8\b", s), s
    assert hashlib.sha256(ext4_cat(b.image_file, root, inside)).hexdigest() == \
        imagecheck.file_sha256(Path(path, "disk.img"))
    # Minimize=guess sizes the file system from the files' sizes (st_size),
    # without reading them and whatever holes the store's file system keeps:
    # the same file written out in full gets the same partition, and the
    # guess holds it (48 MiB and a half).
    dense = build(nix, SPARSE_OR_DENSE.replace("NAME", "dense").replace(
        "MAKE", "head -c 48M /dev/zero | tr -c x x > $out/disk.img"), "dense.nix")
    dimg = check_image(dense.image_file, tmp_path / "dense")
    [droot] = dimg.partitions
    [dpath] = dense.attrs["exportReferencesGraph"]["closure-0"]
    assert os.stat(Path(dpath, "disk.img")).st_blocks * 512 >= 48 * MIB
    assert root.size == droot.size >= 72 * MIB, (root.size, droot.size)


MANY_FILES = """\
let
  many = derivation {
    name = "many-files";
    system = builtins.currentSystem;
    builder = "/bin/sh";
    args = [ "-c" "PATH=/usr/bin:/bin; set -e; mkdir $out; i=0; while [ $i -lt 1500 ]; do mkdir -p $out/d$((i / 100)); yes abcdefgh-$i | head -c $((i * 7919 % 60000)) > $out/d$((i / 100))/file-$i; i=$((i + 1)); done" ];
  };
in builtins.repartImage {
  name = "image";
  partitions."root" = {
    storePaths = [ many ];
    repartConfig = { Type = "root"; Format = "ext4"; Minimize = "MINIMIZE"; };
  };
}
"""


def test_ext4_minimize_best(nix, tmp_path):
    """Minimize = "best" on ext4 (our extension; systemd-repart allows it for
    read-only file systems only): the least ext4 the closure fits in, far
    less than the guess, checked by e2fsck, holding the whole closure; with
    SizeMinBytes the partition is that large and the file system fills it
    (free space for the running system)."""
    body = MANY_FILES.replace("MINIMIZE", "best")
    b = build(nix, body, "best.nix")
    # 1500 files written in well under the first progress line's 2 s: no
    # progress line in the log of a small image.
    assert not re.search(r"partition root: \d+ (of \d+ )?files", b.log), b.log
    img = check_image(b.image_file, tmp_path)
    assert_matches_spec(img, b)
    [root] = img.partitions
    [path] = b.attrs["exportReferencesGraph"]["closure-0"]
    assert_closure_in_ext4(nix, img, root, tmp_path / "root", [path])
    g = build(nix, MANY_FILES.replace("MINIMIZE", "guess"), "guess.nix")
    for d in ("guess", "roomy", "less"):
        (tmp_path / d).mkdir()
    [groot] = check_image(g.image_file, tmp_path / "guess").partitions
    assert root.size < groot.size * 3 // 4, (root.size, groot.size)
    # Full: a partition 64 KiB smaller does not hold the same content.
    less = body.replace('Minimize = "best";', f'SizeMinBytes = "{root.size - 65536}"; '
                        f'SizeMaxBytes = "{root.size - 65536}";')
    log = assert_build_fails(nix, less, "less.nix")
    assert "does not fit" in log, log
    roomy = build(nix, body.replace('Minimize = "best";', 'Minimize = "best"; SizeMinBytes = "96M";'),
                  "best-roomy.nix")
    [rroot] = check_image(roomy.image_file, tmp_path / "roomy").partitions
    assert rroot.size == 96 * MIB > root.size, rroot.size


REGISTERED = """\
builtins.repartImage {
  name = "image";
  partitions."root" = {
    storePaths = [ sys.toplevel ];
    nixPathRegistration = true;
    repartConfig = { Type = "root"; Format = "ext4"; Minimize = "guess"; };
  };
}
"""


def dump_db_records(text):
    """nix-store --dump-db's text as (path, hash, size, deriver, refs) records."""
    lines, out, i = text.split("\n"), [], 0
    while i < len(lines) and lines[i]:
        n = int(lines[i + 4])
        out.append((lines[i], lines[i + 1], lines[i + 2], lines[i + 3], lines[i + 5:i + 5 + n]))
        i += 5 + n
    assert lines[i:] == [""], lines[i:]
    return out


def test_nix_path_registration(nix, tmp_path):
    """nixPathRegistration = true: /nix-path-registration holds what
    nix-store --dump-db says of the closure on this machine (but the
    derivers, which Nix 2.8 does not give the builder); loaded into an empty
    store made of the partition's own files, nix-store --verify
    --check-contents finds every path intact."""
    b = build(nix, REGISTERED, "registered.nix")
    img = check_image(b.image_file, tmp_path)
    [root] = img.partitions
    reg = ext4_cat(b.image_file, root, "/nix-path-registration").decode()
    r = nix.run("nix-store", "--query", "--requisites", sys_path(nix, "toplevel"))
    assert r.returncode == 0, r.stderr
    closure = sorted(r.stdout.split())
    r = nix.run("nix-store", "--dump-db", *closure)
    assert r.returncode == 0, r.stderr
    want = [(p, h, n, "", refs) for p, h, n, _, refs in dump_db_records(r.stdout)]
    assert dump_db_records(reg) == want
    assert [p for p, *_ in want] == closure

    # A store of the partition's files alone, registered from the file.
    scratch = tmp_path / "scratch"
    ext4_dump(b.image_file, root, scratch, "/nix")
    r = nix.run("nix-store", "--store", str(scratch), "--load-db", input=reg)
    assert r.returncode == 0, r.stderr
    r = nix.run("nix-store", "--store", str(scratch), "--verify", "--check-contents")
    assert r.returncode == 0 and "modified" not in r.stderr and "error" not in r.stderr, r.stderr
    r = nix.run("nix-store", "--store", str(scratch), "--query", "--requisites", sys_path(nix, "toplevel"))
    assert r.returncode == 0 and sorted(r.stdout.split()) == closure, r.stderr

    # Without storePaths there is nothing to register: an evaluation error.
    r = nix.eval(f"(import {write(nix, 'noreg.nix', PRELUDE_FOR_ERRORS)}).drvPath")
    assert r.returncode != 0 and "nixPathRegistration" in r.stderr and "storePaths" in r.stderr, r.stderr


PRELUDE_FOR_ERRORS = """\
builtins.repartImage {
  name = "image";
  partitions."root" = {
    nixPathRegistration = true;
    repartConfig = { Type = "root"; Format = "ext4"; };
  };
}
"""


def test_vfat_minimize_guess_with_a_wide_root_directory(nix, tmp_path):
    # 150 long names at the root of an ESP: 751 directory entries, more
    # than the 512 a FAT16 root directory holds.
    b = build(nix, """\
let
  wide = derivation {
    name = "wide-root";
    system = builtins.currentSystem;
    builder = "/bin/sh";
    args = [ "-c" "PATH=/usr/bin:/bin; set -e; mkdir $out; i=0; while [ $i -lt 150 ]; do echo $i > \\"$out/a file with a rather long name number $i.txt\\"; i=$((i+1)); done" ];
  };
in builtins.repartImage {
  name = "image";
  partitions."esp" = {
    contents."/".source = wide;
    repartConfig = { Type = "esp"; Format = "vfat"; Minimize = "guess"; };
  };
}
""", "wide.nix", failure="Minimize=guess chose a vfat size that the builder then cannot write")
    img = check_image(b.image_file, tmp_path)
    [esp] = img.partitions
    assert vfat_tree(b.image_file, esp) == esp_expected(b)


def test_vfat_minimize_guess_with_4096_byte_sectors(nix, tmp_path):
    # 1000 small files: with 4096-byte sectors each takes a whole cluster of
    # the FAT the builder makes.
    b = build(nix, """\
let
  small = derivation {
    name = "small-files";
    system = builtins.currentSystem;
    builder = "/bin/sh";
    args = [ "-c" "PATH=/usr/bin:/bin; set -e; mkdir $out; i=0; while [ $i -lt 1000 ]; do echo $i > $out/f$i; i=$((i+1)); done" ];
  };
in builtins.repartImage {
  name = "image";
  sectorSize = 4096;
  partitions."esp" = {
    contents."/x".source = small;
    repartConfig = { Type = "esp"; Format = "vfat"; Minimize = "guess"; };
  };
}
""", "small4k.nix", failure="Minimize=guess with sectorSize = 4096 chose a vfat size that the builder then cannot write")
    img = check_image(b.image_file, tmp_path)
    [esp] = img.partitions
    listing = imagecheck.vfat_listing(b.image_file, esp)
    assert listing == {"/x": "dir", **{f"/x/f{i}": "file" for i in range(1000)}}
    for i in (0, 1, 500, 999):
        assert imagecheck.vfat_read(b.image_file, esp, f"/x/f{i}") == f"{i}\n".encode()


# ---- failures -------------------------------------------------------------------


def test_content_larger_than_size_max(nix):
    log = assert_build_fails(nix, """\
builtins.repartImage {
  name = "image";
  partitions."big-data" = {
    storePaths = [ sys.big ];
    repartConfig = { Type = "linux-generic"; Format = "ext4"; SizeMaxBytes = "16M"; Minimize = "guess"; };
  };
}
""")
    # Names the partition, what it needs (more than the 20 MiB of content)
    # and what it may have.
    m = re.search(r"partition big-data: needs (\d+) bytes", log)
    assert m, log
    assert int(m.group(1)) > 20 * MIB
    assert "16777216" in log and "SizeMaxBytes" in log, log


@pytest.mark.parametrize("minimize", ["guess", "off"])
def test_closure_too_big_for_image_size(nix, minimize):
    log = assert_build_fails(nix, """\
builtins.repartImage {
  name = "image";
  imageSize = "16M";
  partitions."root" = {
    storePaths = [ sys.big ];
    repartConfig = { Type = "root"; Format = "ext4"; Minimize = "MINIMIZE"; };
  };
}
""".replace("MINIMIZE", minimize))
    if minimize == "guess":
        # Known before writing anything: the guess does not fit the image.
        m = re.search(r"partition root: needs (\d+) bytes", log)
        assert m and int(m.group(1)) > 20 * MIB, log
    else:
        # Found while copying: names the file that did not fit.
        assert re.search(r"partition root: .*big-blob/blob", log), log
        assert "does not fit" in log, log


def test_symlink_into_vfat(nix):
    log = assert_build_fails(nix, """\
builtins.repartImage {
  name = "image";
  partitions."esp" = {
    contents."/boot".source = sys.espWithLink;
    repartConfig = { Type = "esp"; Format = "vfat"; SizeMinBytes = "40M"; };
  };
}
""")
    assert "partition esp" in log, log
    assert "'/boot/EFI/link.efi' is a symbolic link" in log, log
