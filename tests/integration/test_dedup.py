"""deduplicateStore = true: identical regular files of the closure are one
inode with several names in the image's ext4, decided from their content
(size, executable bit, SHA-256) and never from the links the building
machine's store happens to have; read back with debugfs and e2fsck."""
import re

from conftest import assert_eval_error, error_position
from imagecheck import check_image, ext4_cat, ext4_stat
from builds import build, write

# `one` and `two` hold the same bytes under several names: data (not
# executable) and tool (executable) have the same 3.4 MB, two/share/data
# and two/bin/tool copy them; one/a and one/b are hard links in this
# store (as nix-store --optimise would leave them), two/y a copy of them.
# m/ holds 300 files of one size and distinct bytes (the maps grow), and
# zdata, after them in the walk, is data again.  Empty files and a unique
# file stay alone; /etc/data (contents, outside
# the store) is never linked.
DUPLICATES = """\
let
  mk = name: script: derivation {
    inherit name;
    system = builtins.currentSystem;
    builder = "/bin/sh";
    args = [ "-c" "PATH=/usr/bin:/bin; set -e; mkdir $out; cd $out; ${script}" ];
  };
  one = mk "dedup-one" ''
    seq 1 500000 > data; cp data tool; chmod +x tool
    echo linked > a; ln a b; : > empty; echo lonely > lonely
    mkdir m; for i in $(seq 100 399); do echo "file $i" > m/$i; done; cp data zdata
  '';
  two = mk "dedup-two" ''
    mkdir share bin; cp ${one}/data share/data; cp ${one}/data bin/tool; chmod +x bin/tool
    echo linked > y; : > empty
  '';
in builtins.repartImage {
  name = "image";
  partitions."root" = {
    storePaths = [ one two ];
    contents."/etc/data".source = "${one}/data";
    DEDUP
    repartConfig = { Type = "root"; Format = "ext4"; Minimize = "guess"; };
  };
}
"""

NAMES = {
    "data": ("dedup-one", "data"), "tool": ("dedup-one", "tool"), "a": ("dedup-one", "a"),
    "b": ("dedup-one", "b"), "zdata": ("dedup-one", "zdata"), "m100": ("dedup-one", "m/100"), "empty1": ("dedup-one", "empty"), "lonely": ("dedup-one", "lonely"),
    "data2": ("dedup-two", "share/data"), "tool2": ("dedup-two", "bin/tool"), "y": ("dedup-two", "y"),
    "empty2": ("dedup-two", "empty"),
}


def inodes(b, img, root):
    """name -> (inode, links, mode) for NAMES and /etc/data, from debugfs stat."""
    store = {}
    for sp in b.spec_partition("root")["storePaths"]:
        store[sp.split("-", 1)[1]] = sp
    out = {}
    targets = {k: f"{store[d]}/{f}" for k, (d, f) in NAMES.items()}
    targets["etc"] = "/etc/data"
    for k, t in targets.items():
        s = ext4_stat(b.image_file, root, t)
        m = re.search(r"Inode: (\d+)\s+Type: regular\s+Mode:\s+(\d+)", s)
        n = re.search(r"Links: (\d+)", s)
        assert m and n, s
        out[k] = (int(m.group(1)), int(n.group(1)), m.group(2))
    return out, targets


def test_deduplicate_store(nix, tmp_path):
    b = build(nix, DUPLICATES.replace("DEDUP", "deduplicateStore = true;"), "dedup.nix")
    img = check_image(b.image_file, tmp_path / "c1")
    [root] = img.partitions
    ino, targets = inodes(b, img, root)

    # The same bytes and executable bit: one inode, one name per copy.
    assert ino["data"][0] == ino["data2"][0] == ino["zdata"][0] and ino["data"][1] == 3, ino
    assert ino["tool"][0] == ino["tool2"][0] and ino["tool"][1] == 2, ino
    # The same bytes, executable or not: two inodes.
    assert ino["data"][0] != ino["tool"][0], ino
    assert ino["data"][2] == "0444" and ino["tool"][2] == "0555", ino
    # Linked in this store or not, the content decides: a, b and y are one.
    assert ino["a"][0] == ino["b"][0] == ino["y"][0] and ino["a"][1] == 3, ino
    # Empty files, a unique file, and a file outside the store stay alone.
    for k in ("empty1", "empty2", "lonely", "etc", "m100"):
        assert ino[k][1] == 1, (k, ino)
    assert ino["empty1"][0] != ino["empty2"][0]
    assert ino["etc"][0] not in (ino["data"][0], ino["data2"][0]), ino
    # Every name reads its store file's bytes.
    for k, t in targets.items():
        src = t if k != "etc" else targets["data"]
        assert ext4_cat(b.image_file, root, t) == open(src, "rb").read(), k

    # Minimize = "guess" counts a linked file once: the 3.4 MB that are
    # not copied three times more (data2, zdata, tool2) make the partition smaller.
    plain = build(nix, DUPLICATES.replace("DEDUP", ""), "plain.nix")
    pimg = check_image(plain.image_file, tmp_path / "c2")
    [proot] = pimg.partitions
    pino, _ = inodes(plain, pimg, proot)
    assert all(links == 1 for _, links, _ in pino.values()), pino  # off: every name a copy
    assert root.size + 2 * 3 * 1024 * 1024 < proot.size, (root.size, proot.size)

    # Reproducible: rebuilt, the image is the same bytes.
    r = nix.build(b.file, "--check")
    assert r.returncode == 0, r.stderr


def test_deduplicate_store_only_on_ext4(nix, tmp_path):
    text = DUPLICATES.replace("DEDUP", "deduplicateStore = true;").replace('Format = "ext4"', 'Format = "vfat"')
    f = write(nix, "vfat.nix", text)
    r = nix.eval(f"(import {f}).drvPath")
    assert_eval_error(r)
    assert "partitions.root.deduplicateStore: true, but the partition's format is vfat" in r.stderr, r.stderr
    line = text.splitlines().index("    deduplicateStore = true;") + 1
    pos = error_position(r.stderr)
    assert pos and pos[0].endswith("vfat.nix") and pos[1] == line, r.stderr
