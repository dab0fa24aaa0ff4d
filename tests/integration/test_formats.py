"""Issue 14's formats through real Nix: Format = "erofs", "squashfs" and
"swap", each a row of the file-system table.  Every image is read back with
tools we did not write (fsck.erofs --extract, unsquashfs, swaplabel, blkid:
imagecheck.py), the trees compared with the store paths they were made
from, Minimize=best checked to give the partition exactly the file
system's size, and the build checked to be reproducible (nix-build
--check)."""
import os
import re

import pytest

import imagecheck
from conftest import assert_eval_error
from imagecheck import check_image, erofs_extract, squashfs_extract
from builds import assert_build_fails, assert_matches_spec, build, instantiate, requisites, sys_path

READ_ONLY = """\
builtins.repartImage {
  name = "ro";
  partitions = {
    "10-erofs" = {
      storePaths = [ sys.toplevel ];
      contents."/etc/motd".source = sys.config;
      repartConfig = { Type = "usr"; Format = "erofs"; Label = "store-erofs"; Minimize = "best";
                       SizeMinBytes = "4K"; };
    };
    "20-squashfs" = {
      storePaths = [ sys.toplevel ];
      contents."/etc/motd".source = sys.config;
      repartConfig = { Type = "linux-generic"; Format = "squashfs"; Minimize = "best";
                       SizeMinBytes = "4K"; };
    };
    "30-swap" = {
      repartConfig = { Type = "swap"; Format = "swap"; SizeMinBytes = "1M"; SizeMaxBytes = "1M"; };
    };
  };
}
"""


def assert_closure_in_tree(nix, tree, store_paths, extra=()):
    """tree holds exactly nix/store/<closure> (and `extra` top-level names),
    each store path with its bytes, modes, owners, times and symlinks."""
    closure = requisites(nix, *store_paths)
    assert sorted(os.listdir(tree)) == sorted(["nix", *extra])
    assert sorted(os.listdir(tree / "nix" / "store")) == sorted(os.path.basename(p) for p in closure)
    for p in closure:
        imagecheck.assert_same_tree(p, tree / "nix" / "store" / os.path.basename(p))
    return closure


def test_read_only_formats_hold_the_closure(nix, tmp_path):
    b = build(nix, READ_ONLY)
    assert sorted(os.listdir(b.out)) == ["repart-output.json", "ro.raw"]
    img = check_image(b.image_file, tmp_path)
    assert_matches_spec(img, b)
    ero, sq, swap = img.partitions
    assert [p.fstype for p in img.partitions] == ["erofs", "squashfs", "swap"]
    toplevel, config = sys_path(nix, "toplevel"), sys_path(nix, "config")

    for part, extract in ((ero, erofs_extract), (sq, squashfs_extract)):
        tree = extract(b.image_file, part, tmp_path / f"tree-{part.index}", tmp_path)
        assert_closure_in_tree(nix, tree, [toplevel], extra=["etc"])
        assert (tree / "etc" / "motd").read_bytes() == open(config, "rb").read()

    # Minimize=best: the partition is exactly the file system, whose size
    # (4096-byte blocks) dump.erofs and unsquashfs read from the superblock.
    f = imagecheck.extract(b.image_file, ero.offset, ero.size, tmp_path / "e")
    blocks = int(re.search(r"Filesystem blocks:\s+(\d+)", imagecheck.run("dump.erofs", "-s", f)
                           .stdout.decode()).group(1))
    assert blocks * 4096 == ero.size, (blocks, ero.size)
    f = imagecheck.extract(b.image_file, sq.offset, sq.size, tmp_path / "s")
    stat = imagecheck.text(imagecheck.run("unsquashfs", "-stat", f))
    m = re.search(r"^Filesystem size (\d+) bytes", stat, re.M)
    assert m, stat
    # The partition is the file system's bytes_used padded to 4096, as
    # mksquashfs pads it.
    used = int(m.group(1))
    assert ero.size % 4096 == 0 and sq.size % 4096 == 0
    assert sq.size - 4096 < used <= sq.size, (used, sq.size)
    assert "Compression gzip" in stat and "Block size 131072" in stat, stat

    # The swap area: UUID from the partition's (as for ext4), the label the
    # partition's, the whole 1 MiB partition.
    assert swap.size == 1024 * 1024
    assert swap.fs_label == "swap" and swap.fs_uuid == b.image["partitions"]["30-swap"]["fsUuid"]

    # Reproducible: the same bytes again.
    before = imagecheck.file_sha256(b.image_file)
    r = nix.build(b.file, "--check")
    assert r.returncode == 0, r.stderr
    assert "checking outputs of" in r.stderr, r.stderr
    assert imagecheck.file_sha256(b.image_file) == before


def test_fixed_size_read_only_partitions(nix, tmp_path):
    """Without Minimize=, a read-only file system takes the start of a
    partition of the configured size and the rest stays zeros."""
    b = build(nix, """\
builtins.repartImage {
  name = "fixed";
  partitions = {
    "a" = { storePaths = [ sys.hello ]; repartConfig = { Type = "linux-generic"; Format = "squashfs"; }; };
    "b" = { storePaths = [ sys.hello ]; repartConfig = { Type = "linux-generic"; Format = "erofs"; }; };
  };
}
""")
    img = check_image(b.image_file, tmp_path)
    assert_matches_spec(img, b)
    for part, extract in zip(img.partitions, (squashfs_extract, erofs_extract)):
        assert part.size == 10 * 1024 * 1024  # systemd-repart's default minimum
        tree = extract(b.image_file, part, tmp_path / f"t{part.index}", tmp_path)
        assert_closure_in_tree(nix, tree, [sys_path(nix, "hello")])


def test_guess_on_read_only_is_exact(nix, tmp_path):
    """Minimize=guess on a read-only format sizes it exactly, as best does
    (systemd-repart makes it once, at its final size)."""
    body = """\
builtins.repartImage {{
  name = "g";
  partitions."a" = {{ storePaths = [ sys.toplevel ];
                      repartConfig = {{ Type = "linux-generic"; Format = "erofs"; Minimize = "{m}";
                                        SizeMinBytes = "4K"; }}; }};
}}
"""
    sizes = []
    for m in ("guess", "best"):
        b = build(nix, body.format(m=m), f"{m}.nix")
        [part] = check_image(b.image_file, tmp_path).partitions
        sizes.append(part.size)
    assert sizes[0] == sizes[1] and sizes[0] < 10 * 1024 * 1024, sizes


@pytest.mark.parametrize("config, contents, message", [
    ('Format = "swap"; CopyFiles = "${sys.hello}:/x";', "",
     r'repartConfig\.Format: swap holds no files; contents, storePaths, CopyFiles and MakeDirectories'),
    ('Format = "swap";', 'storePaths = [ sys.hello ];',
     r'repartConfig\.Format: swap holds no files'),
    ('Format = "swap"; MakeDirectories = "/x";', "",
     r'repartConfig\.Format: swap holds no files'),
    ('Format = "swap"; Label = "a-swap-label-of-16";', "",
     r'repartConfig\.Label: "a-swap-label-of-16" has 18 bytes and a swap area\'s label holds at most 15'),
    # ext4 takes best (issue 15's extension); vfat does not, as in systemd-repart.
    ('Format = "vfat"; Minimize = "best";', 'storePaths = [ sys.hello ];',
     r'repartConfig\.Minimize: "best" only works with read-only file systems \(squashfs, erofs\) '
     r'and ext4, and Format=vfat is neither'),
    ('Format = "btrfs";', "",
     r'repartConfig\.Format: file system "btrfs" is not supported by repartImage yet '
     r'\(supported: ext4, vfat, erofs, squashfs, swap\)'),
])
def test_format_refusals(nix, config, contents, message):
    f = nix.write("bad.nix", f"""\
let sys = import ./system.nix; in
builtins.repartImage {{
  name = "bad";
  partitions."p" = {{ {contents} repartConfig = {{ Type = "linux-generic"; {config} }}; }};
}}
""")
    from builds import SYSTEM
    nix.write("system.nix", SYSTEM)
    r = nix.eval(f"(import {f}).drvPath")
    assert_eval_error(r)
    assert re.search(message, r.stderr), r.stderr
    assert "bad.nix:3:" in r.stderr or "bad.nix:" in r.stderr, r.stderr


def test_read_only_too_small_fails_cleanly(nix):
    """A read-only file system that does not fit a fixed size: the build
    fails with the partition's name and leaves nothing."""
    err = assert_build_fails(nix, """\
builtins.repartImage {
  name = "small";
  partitions."small" = { storePaths = [ sys.big ];
    repartConfig = { Type = "linux-generic"; Format = "erofs"; SizeMinBytes = "1M"; SizeMaxBytes = "1M"; }; };
}
""")
    assert "partition small" in err, err
