"""dm-verity through real Nix (issue 14): a Verity=data partition and its
Verity=hash partition, paired by VerityMatchKey.  The hash partition must
verify the data partition with `veritysetup verify` and the root hash of
repart-output.json, fail to once a byte of the data is flipped, and the
pair's partition UUIDs must be the root hash's halves, which the `image`
attribute shows as null at evaluation time."""
import json
import os
import re
import uuid

import pytest

import imagecheck
from conftest import assert_eval_error
from imagecheck import check_image, erofs_extract
from builds import SYSTEM, assert_output_json, build, requisites, sys_path

VERITY = """\
builtins.repartImage {{
  name = "verity";
  partitions = {{
    "10-usr" = {{
      storePaths = [ sys.toplevel ];
      repartConfig = {{ Type = "usr"; Format = "erofs"; Label = "usr"; Minimize = "best";
                        Verity = "data"; VerityMatchKey = "usr"; }};
    }};
    "20-usr-verity" = {{
      repartConfig = {{ Type = "usr-verity"; Label = "usr-verity"; Minimize = "best";
                        Verity = "hash"; VerityMatchKey = "usr"; {hash_extra} }};
    }};
  }};
}}
"""


def as_uuid(hex32):
    return str(uuid.UUID(hex=hex32))


def test_verity_pair(nix, tmp_path):
    b = build(nix, VERITY.format(hash_extra=""))
    img = check_image(b.image_file, tmp_path)  # runs veritysetup verify (imagecheck.check_verity)
    data, hashp = img.partitions
    assert (data.fstype, hashp.fstype) == ("erofs", "DM_verity_hash")

    out = json.loads((b.out / "repart-output.json").read_text())
    # As 252 prints it: the hash partition's root hash, null on the others.
    assert out[0]["roothash"] is None
    rh = out[1]["roothash"]
    assert re.fullmatch(r"[0-9a-f]{64}", rh)
    # systemd-repart: the data partition's UUID is the root hash's first
    # half, the hash partition's its second, as they are (not marked v4).
    assert data.uuid == as_uuid(rh[:32]) and hashp.uuid == as_uuid(rh[32:]), (data, hashp, rh)
    assert [e["uuid"] for e in out] == [data.uuid, hashp.uuid]
    # "roothash" follows systemd 252's fields.
    assert list(out[0])[-1] == "roothash", out[0]

    # Evaluation could not know them: null, and the file system's UUID is
    # still the seed-derived partition UUID's.
    parts = b.image["partitions"]
    assert parts["10-usr"]["uuid"] is None and parts["20-usr-verity"]["uuid"] is None
    assert data.fs_uuid == parts["10-usr"]["fsUuid"]

    # The hash partition is the tree in 512-byte blocks (the image's sector
    # size, as systemd-repart takes it when given), nothing more.
    dump = imagecheck.run("veritysetup", "dump", imagecheck.extract(
        b.image_file, hashp.offset, hashp.size, tmp_path / "h")).stdout.decode()
    assert re.search(r"Data block size:\s+512\b", dump) and re.search(r"Hash block size:\s+512\b", dump), dump
    assert re.search(r"Data blocks:\s+%d\b" % (data.size // 512), dump), dump

    # A flipped byte of the data fails verification (the check is not vacuous).
    p = imagecheck.verity_verify(b.image_file, data, hashp, rh, tmp_path, flip=data.size // 2 + 17)
    assert p.returncode != 0, imagecheck.text(p)
    p = imagecheck.verity_verify(b.image_file, data, hashp, "0" * 64, tmp_path)
    assert p.returncode != 0, imagecheck.text(p)

    # The data partition holds the closure.
    tree = erofs_extract(b.image_file, data, tmp_path / "tree", tmp_path)
    closure = requisites(nix, sys_path(nix, "toplevel"))
    assert sorted(os.listdir(tree / "nix" / "store")) == sorted(os.path.basename(p) for p in closure)
    for p in closure:
        imagecheck.assert_same_tree(p, tree / "nix" / "store" / os.path.basename(p))

    # Reproducible, root hash included.
    r = nix.build(b.file, "--check")
    assert r.returncode == 0, r.stderr


def test_verity_block_sizes_and_explicit_uuid(nix, tmp_path):
    """VerityDataBlockSizeBytes/VerityHashBlockSizeBytes shape the tree; a
    UUID= on the hash partition is kept (and shown at evaluation)."""
    explicit = "6a0ba3e4-3e8c-4f0e-9b9e-5d3b7a0a1c22"
    b = build(nix, VERITY.format(hash_extra=f'VerityDataBlockSizeBytes = "4K"; VerityHashBlockSizeBytes = 4096; '
                                            f'UUID = "{explicit}";'))
    img = check_image(b.image_file, tmp_path)
    data, hashp = img.partitions
    out = json.loads((b.out / "repart-output.json").read_text())
    assert hashp.uuid == explicit and data.uuid == as_uuid(out[1]["roothash"][:32])
    assert b.image["partitions"]["20-usr-verity"]["uuid"] == explicit
    assert b.image["partitions"]["10-usr"]["uuid"] is None
    dump = imagecheck.run("veritysetup", "dump", imagecheck.extract(
        b.image_file, hashp.offset, hashp.size, tmp_path / "h")).stdout.decode()
    assert re.search(r"Data block size:\s+4096\b", dump), dump
    assert re.search(r"Data blocks:\s+%d\b" % (data.size // 4096), dump), dump
    # Minimize=best: at least the superblock's block and the tree (a
    # 4096-byte block holds 128 hashes); with --size=auto the layout shares
    # the GPT's slack by weight, as systemd-repart does, so it may be more.
    n, tree = data.size // 4096, 0
    while True:
        n = -(-n // 128)
        tree += n
        if n == 1:
            break
    assert 4096 * (1 + tree) <= hashp.size < 4096 * (1 + tree) + 1044 * 1024, (hashp.size, tree)


@pytest.mark.parametrize("parts, message", [
    ('"a" = { repartConfig = { Type = "usr"; Verity = "data"; VerityMatchKey = "k"; }; };',
     r'partitions\.a\.repartConfig\.VerityMatchKey: no Verity=hash partition has VerityMatchKey "k"'),
    ('"a" = { repartConfig = { Type = "usr"; Verity = "data"; VerityMatchKey = "k"; }; };'
     '"b" = { repartConfig = { Type = "usr"; Verity = "data"; VerityMatchKey = "k"; }; };'
     '"c" = { repartConfig = { Type = "usr-verity"; Verity = "hash"; VerityMatchKey = "k"; }; };',
     r'partitions\.a\.repartConfig\.VerityMatchKey: "k" is also that of partitions\.b, another Verity=data'),
    ('"a" = { repartConfig = { Type = "usr"; Verity = "data"; VerityMatchKey = "k"; }; };'
     '"b" = { repartConfig = { Type = "usr-verity"; Verity = "hash"; VerityMatchKey = "k"; Format = "ext4"; }; };',
     r'partitions\.b\.repartConfig\.Verity: a Verity=hash partition holds the hash tree'),
    ('"a" = { repartConfig = { Type = "usr"; Verity = "signature"; VerityMatchKey = "k"; }; };',
     r'partitions\.a\.repartConfig\.Verity: "signature" is not supported: systemd-repart signs the root hash '
     r'with a private key at build time'),
    ('"a" = { repartConfig = { Type = "usr"; VerityMatchKey = "k"; }; };',
     r'partitions\.a\.repartConfig\.VerityMatchKey: only with Verity=data or Verity=hash'),
    ('"a" = { repartConfig = { Type = "usr"; Verity = "data"; VerityMatchKey = "k"; SplitName = "%U"; }; };'
     '"b" = { repartConfig = { Type = "usr-verity"; Verity = "hash"; VerityMatchKey = "k"; }; };',
     r'partitions\.a\.repartConfig\.SplitName: %U names the file after the partition UUID'),
    ('"a" = { repartConfig = { Type = "usr"; Verity = "data"; VerityMatchKey = "k"; Priority = 1; }; };'
     '"b" = { repartConfig = { Type = "usr-verity"; Verity = "hash"; VerityMatchKey = "k"; }; };',
     r'the partitions of a Verity= pair need the same Priority'),
])
def test_verity_refusals(nix, parts, message):
    nix.write("system.nix", SYSTEM)
    f = nix.write("bad.nix", f'builtins.repartImage {{ name = "bad"; split = true; partitions = {{ {parts} }}; }}\n')
    r = nix.eval(f"(import {f}).drvPath")
    assert_eval_error(r)
    assert re.search(message, r.stderr), r.stderr


def test_hash_partition_too_small_fails(nix):
    """A fixed-size hash partition that cannot hold the tree: the build
    fails naming both partitions, and leaves nothing."""
    from builds import assert_build_fails
    err = assert_build_fails(nix, VERITY.format(hash_extra='SizeMinBytes = "4K"; SizeMaxBytes = "4K"; Minimize = "off";')
                             .replace('Minimize = "best";\n                        Verity = "hash"',
                                      'Verity = "hash"'))
    assert re.search(r"partition 20-usr-verity: the hash tree of partition 10-usr \(\d+ bytes\) needs \d+ bytes",
                     err), err


# ---- CopyBlocks: a later image takes an earlier one's partition ------------

STAGE1 = """\
builtins.repartImage {
  name = "stage1";
  split = true;
  partitions = {
    "10-usr" = {
      storePaths = [ sys.toplevel ];
      repartConfig = { Type = "usr"; Format = "erofs"; Minimize = "best"; Weight = 0;
                       Verity = "data"; VerityMatchKey = "usr"; SplitName = "store"; };
    };
    "20-usr-verity" = {
      repartConfig = { Type = "usr-verity"; Minimize = "best"; Weight = 0;
                       Verity = "hash"; VerityMatchKey = "usr"; SplitName = "-"; };
    };
  };
}
"""

STAGE2 = """\
let stage1 = import ./stage1.nix; in
builtins.repartImage {
  name = "stage2";
  partitions = {
    "00-esp" = { contents."/hello".source = sys.config;
                 repartConfig = { Type = "esp"; Format = "vfat"; SizeMinBytes = "40M"; }; };
    "10-usr" = {
      repartConfig = { Type = "usr"; CopyBlocks = "${stage1}/stage1.store.raw"; Weight = 0;
                       Verity = "data"; VerityMatchKey = "usr"; };
    };
    "20-usr-verity" = {
      repartConfig = { Type = "usr-verity"; Minimize = "best"; Weight = 0;
                       Verity = "hash"; VerityMatchKey = "usr"; };
    };
  };
}
"""


def test_copy_blocks_continues_an_earlier_image(nix, tmp_path):
    """An image whose store partition is CopyBlocks= of an earlier image's
    split file: the same bytes, hence the same hash tree, root hash and
    partition UUIDs (the salt derives from the same seed)."""
    from builds import write
    write(nix, "stage1.nix", "let sys = import ./system.nix; in\n" + STAGE1)
    one = build(nix, STAGE1, "stage1-top.nix")
    assert sorted(os.listdir(one.out)) == ["repart-output.json", "stage1.raw", "stage1.store.raw"]
    two = build(nix, STAGE2, "stage2.nix")
    i1, i2 = check_image(one.image_file, tmp_path), check_image(two.image_file, tmp_path)
    j1 = json.loads((one.out / "repart-output.json").read_text())
    j2 = json.loads((two.out / "repart-output.json").read_text())
    assert j1[1]["roothash"] == j2[2]["roothash"]
    assert [p.uuid for p in i1.partitions] == [p.uuid for p in i2.partitions[1:]]
    for a, b in zip(i1.partitions, i2.partitions[1:]):
        assert a.size == b.size, (a, b)
        assert imagecheck.range_sha256(one.image_file, a.offset, a.size) == \
            imagecheck.range_sha256(two.image_file, b.offset, b.size), (a, b)
    # The split file is the partition.
    assert imagecheck.file_sha256(one.out / "stage1.store.raw") == \
        imagecheck.range_sha256(one.image_file, i1.partitions[0].offset, i1.partitions[0].size)
    # The earlier image is an input of the later derivation (its context).
    drv = nix.show_derivation(two.drv)
    assert any(str(one.drv) == d for d in drv["inputDrvs"]), drv["inputDrvs"]


@pytest.mark.parametrize("config, message", [
    ('CopyBlocks = "auto";', r'CopyBlocks: "auto" copies the running system\'s partition'),
    ('CopyBlocks = "/etc/passwd";', r'CopyBlocks: the source "/etc/passwd" is a string without store context'),
    ('CopyBlocks = "${sys.config}"; Format = "ext4";',
     r'CopyBlocks: the partition\'s bytes are the file\'s; Format'),
])
def test_copy_blocks_refusals(nix, config, message):
    nix.write("system.nix", SYSTEM)
    f = nix.write("bad.nix", 'let sys = import ./system.nix; in builtins.repartImage { name = "bad"; '
                  f'partitions.a.repartConfig = {{ Type = "linux-generic"; {config} }}; }}\n')
    r = nix.eval(f"(import {f}).drvPath")
    assert_eval_error(r)
    assert re.search(message, r.stderr), r.stderr
