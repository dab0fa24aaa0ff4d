"""Content the builder must handle (issue 7): file names with spaces,
newlines, UTF-8 and 255 bytes; 100,000 files in one directory; deep trees;
hard links; sparse files; a file over 4 GiB; empty files and directories;
symlinks that point outside the tree, at themselves or nowhere; and, for
vfat, the names FAT cannot hold.

Every case builds a real image through nix-build with the plugin, from
store paths that a derivation makes with /usr/bin/python3 (so that names
and holes are exactly what the test says), then reads the file system back
with debugfs (ext4) or mtools (vfat) and checks the whole image with
check_image (sfdisk, sgdisk -v, e2fsck -fn, fsck.vfat -n, systemd-dissect).
"""
import hashlib
import json
import os
import re
import shutil
import stat
import textwrap
from pathlib import Path

import pytest

import imagecheck
from imagecheck import MIB, check_image, ext4_cat, ext4_dump, ext4_stat, run, vfat_tree
from conftest import assert_eval_error, error_position
from builds import PRELUDE, assert_build_fails, build, instantiate, run_builder, write

GIB = 1024 * MIB

# Each tree is a derivation whose builder is Python, reading its script
# from the test's directory: $out is made exactly as the script says.
TREES_NIX = """\
let
  tree = name: script: derivation {
    inherit name;
    system = builtins.currentSystem;
    builder = "/usr/bin/python3";
    args = [ "-c" (builtins.readFile script) ];
  };
in {
%s}
"""

PY_PRELUDE = """\
import os
out = os.environ["out"]

def put(path, data=b"", mode=0o644):
    p = os.path.join(out, path)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "wb") as f:
        f.write(data)
    os.chmod(p, mode)
    return p

"""


def make_trees(nix, trees: dict):
    """Writes trees.nix with one derivation per {name: python script}."""
    for name, script in trees.items():
        write(nix, f"{name}.py", PY_PRELUDE + textwrap.dedent(script))
    write(nix, "trees.nix", TREES_NIX % "".join(f'  {n} = tree "{n}" ./{n}.py;\n' for n in trees))


def build_image(nix, trees: dict, partitions: str, name="image.nix"):
    """Builds an image whose `partitions` may name the trees as t.NAME."""
    make_trees(nix, trees)
    return build(nix, image_body(partitions), name)


def image_body(partitions: str):
    return ("let t = import ./trees.nix; in builtins.repartImage {\n  name = \"image\";\n"
            f"  partitions = {{\n{textwrap.indent(textwrap.dedent(partitions), '    ')}  }};\n}}\n")


def tree_path(nix, name) -> str:
    r = nix.eval(f"(import {nix.dir / 'trees.nix'}).{name}.outPath")
    assert r.returncode == 0, r.stderr
    return r.json()


def delete_store_paths(nix, *paths):
    """Drops what a large case put into the store (the image first: it
    refers to its sources)."""
    for p in paths:
        nix.run("nix-store", "--delete", p, timeout=300)


def in_store(path) -> str:
    return "/nix/store/" + os.path.basename(path)


def debugfs(img, part, request) -> str:
    p = run("debugfs", "-R", request, f"{img}?offset={part.offset}")
    err = p.stderr.decode("utf-8", "replace")
    assert not re.search(r"^\S+: .*(not found|Bad|error)", err, re.M), err
    return p.stdout.decode("utf-8", "surrogateescape")


def stat_field(s: str, field: str) -> int:
    m = re.search(rf"\b{field}:\s+(\d+)", s)
    assert m, (field, s)
    return int(m.group(1))


def inode_number(s: str) -> int:
    return stat_field(s, "Inode")


def physical_block(img, part, inside, lblk) -> int:
    """debugfs `bmap`: the block that logical block lblk of the file is
    in, 0 for a hole."""
    return int(debugfs(img, part, f'bmap "{inside}" {lblk}').split()[0])


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---- file names ------------------------------------------------------------------

# Names ext4 holds as they are: every byte but "/" and NUL, up to 255 bytes.
EXT4_NAMES = [
    "with spaces", " leading space", "trailing space ", "trailing dot.", "new\nline", "tab\tcr\rbell\a",
    "Grüße – ünïcödé ✓", "日本語のファイル名", "emoji 😀 four bytes", "a" * 255, "é" * 127 + "x",
    "€" * 85, "-starts-with-dash", "back\\slash", 'quote"s', "a:b", "x?", "star*", "<angle>", "pipe|",
    ".hidden", "..dots", "del\x7f", "percent %s %n", "$(echo no)", "`x`", "README", "readme", "CON",
]

NAMES_SCRIPT = """\
names = %r
for i, n in enumerate(names):
    put(n, (n + "\\n").encode())
    put(os.path.join("dir " + str(i) + " " + n[:60], n), b"in a directory\\n")
os.symlink("a" * 255, os.path.join(out, "link to " + "b" * 247))
"""


def test_names_in_ext4(nix, tmp_path):
    b = build_image(nix, {"names": NAMES_SCRIPT % (EXT4_NAMES,)}, """\
        "root" = {
          storePaths = [ t.names ];
          repartConfig = { Type = "root"; Format = "ext4"; Minimize = "guess"; };
        };
        """)
    img = check_image(b.image_file, tmp_path)
    [root] = img.partitions
    src = tree_path(nix, "names")
    assert len(os.listdir(src)) == 2 * len(EXT4_NAMES) + 1
    assert max(len(n.encode()) for n in os.listdir(src)) == 255
    dump = ext4_dump(b.image_file, root, tmp_path / "dump", in_store(src))
    imagecheck.assert_same_tree(src, dump / os.path.basename(src))
    # And through debugfs itself, not rdump's copy.
    assert ext4_cat(b.image_file, root, in_store(src) + "/with spaces") == b"with spaces\n"
    s = ext4_stat(b.image_file, root, in_store(src) + "/" + "a" * 255)
    assert "Type: regular" in s and stat_field(s, "Size") == 256, s


# Names FAT holds: long names (VFAT) up to 255 UTF-16 units, any case,
# characters of the Basic Multilingual Plane, "+,;=[]", leading dots and
# spaces.
VFAT_NAMES = [
    "with spaces", " leading space", "Grüße – ünïcödé ✓", "日本語のファイル名", "a" * 255, "é" * 127 + "x",
    "€" * 85, "-starts-with-dash", ".hidden", "..dots", "a+b,c;d=e[f]", "[x]", "a.b.c.d", "Mixed Case.Txt",
    "UPPER.TXT", "lower.txt", "percent %s %n", "$(echo no)", "`x`", "del\x7f", "CON.txt", "Über den Fluß",
    "Ωmega",
]


def assert_vfat_holds(nix, b, tmp_path, tree, target):
    """The image's one (vfat) partition holds the tree `tree` at `target`,
    file by file as mtools reads it back."""
    img = check_image(b.image_file, tmp_path)
    [esp] = img.partitions
    src = tree_path(nix, tree)
    assert vfat_tree(b.image_file, esp) == imagecheck.store_tree_for_vfat(src, target)


def test_names_in_vfat(nix, tmp_path):
    b = build_image(nix, {"vnames": """\
        names = %r
        for i, n in enumerate(names):
            put(n, (n + "\\n").encode())
        put("dir " + "d" * 240 + "/" + "f" * 250, b"deep\\n")
        """ % (VFAT_NAMES,)}, """\
        "esp" = {
          contents."/names".source = t.vnames;
          repartConfig = { Type = "esp"; Format = "vfat"; SizeMinBytes = "40M"; };
        };
        """)
    assert_vfat_holds(nix, b, tmp_path, "vnames", "/names")


# Each: (id, the names a tree holds, a pattern the builder's message must
# match).  The message always names the file.
VFAT_REFUSED = [
    ("colon", ["a:b"], r"FAT names cannot contain ':'"),
    ("question-mark", ["x?"], r"FAT names cannot contain '\?'"),
    ("star", ["*"], r"FAT names cannot contain '\*'"),
    ("backslash", ["back\\slash"], r"FAT names cannot contain '\\'"),
    ("newline", ["new\nline"], r"control characters"),
    ("only-case", ["README.md", "Readme.md"], r"differ only in case"),
    ("only-case-non-ascii", ["ÄRGER file", "ärger file"], r"differ only in case"),
    ("trailing-dot", ["name."], r"trailing dot"),
    ("trailing-space", ["name "], r"trailing space"),
    ("reserved", ["aux"], r"reserved DOS device name"),
    ("astral", ["emoji 😀 four bytes"], r"U\+1F600"),
    ("short-non-ascii", ["über"], r"8\.3"),
]


@pytest.mark.parametrize("names,pattern", [c[1:] for c in VFAT_REFUSED], ids=[c[0] for c in VFAT_REFUSED])
def test_vfat_refuses_names_it_cannot_hold(nix, names, pattern):
    make_trees(nix, {"bad": """\
        put("good file", b"x\\n")
        for n in %r:
            put("sub/" + n, b"x\\n")
        """ % (names,)})
    log = assert_build_fails(nix, image_body("""\
        "esp" = {
          contents."/EFI".source = t.bad;
          repartConfig = { Type = "esp"; Format = "vfat"; SizeMinBytes = "40M"; };
        };
        """))
    assert "partition esp" in log, log
    assert re.search(pattern, log), log
    # The message names the file, as its target in the file system.
    assert any(f"'/EFI/sub/{n}'" in log for n in names), log


@pytest.mark.parametrize("fmt", ["vfat", "ext4"])
def test_name_longer_than_the_file_system_holds(nix, tmp_path, fmt):
    """No store name is longer than 255 bytes, and a UTF-16 unit takes at
    least a byte, but a `contents` target's last component could be: the
    evaluator refuses it at its position, and the builder, given such a
    spec by hand, refuses it as the evaluator does, naming the field and
    the target."""
    make_trees(nix, {"one": 'put("x", b"x\\n")\n'})
    body = image_body(f"""\
        "data" = {{
          contents."/dir/TARGET".source = "${{t.one}}/x";
          repartConfig = {{ Type = "linux-generic"; Format = "{fmt}"; SizeMinBytes = "40M"; }};
        }};
        """)
    long = "n" * 256
    long_nix = write(nix, "long.nix", PRELUDE + body.replace("TARGET", long))
    r = nix.eval(f"(import {long_nix}).drvPath")
    assert_eval_error(r)
    assert "has a component longer than 255 bytes" in r.stderr, r.stderr
    assert error_position(r.stderr)[1:] == (6, 7), r.stderr

    assert nix.build(nix.dir / "trees.nix", "-A", "one").returncode == 0
    f, _, _, attrs = instantiate(nix, "image.nix", body.replace("TARGET", "short"))
    [c] = attrs["repartSpec"]["partitions"][0]["contents"]
    c["target"] = "/dir/" + long
    attrs["outputs"] = {"out": str(tmp_path / "out")}
    attrs_file = tmp_path / "attrs.json"
    attrs_file.write_text(json.dumps(attrs))
    p = run_builder(["--attrs", str(attrs_file)], tmp_path, tmp_path / "tmp", 0o022)
    assert p.returncode == 1, p
    assert "repartSpec.partitions[0].contents[0].target" in p.stderr, p.stderr
    assert f'"/dir/{long}" has a component longer than 255 bytes' in p.stderr, p.stderr
    assert not (tmp_path / "out").exists() or os.listdir(tmp_path / "out") == []


# ---- many files, deep trees ------------------------------------------------------

def test_100000_files_in_one_directory(nix, tmp_path):
    n = 100_000
    b = build_image(nix, {"many": """\
        d = os.path.join(out, "many")
        os.makedirs(d)
        for i in range(%d):
            with open(os.path.join(d, "file-%%06d" %% i), "wb") as f:
                if i %% 10000 == 0:
                    f.write(b"%%d\\n" %% i)
        """ % n}, """\
        "root" = {
          storePaths = [ t.many ];
          repartConfig = { Type = "root"; Format = "ext4"; Minimize = "guess"; };
        };
        """)
    src = tree_path(nix, "many")
    try:
        img = check_image(b.image_file, tmp_path)
        [root] = img.partitions
        listing = debugfs(b.image_file, root, f"ls -p {in_store(src)}/many")
        names = re.findall(r"^/\d+/\d+/\d+/\d+/(file-\d{6})/", listing, re.M)
        assert names == [f"file-{i:06d}" for i in range(n)], (len(names), names[:3], names[-3:])
        for i in (0, 10000, 90000):
            assert ext4_cat(b.image_file, root, f"{in_store(src)}/many/file-{i:06d}") == b"%d\n" % i
        s = ext4_stat(b.image_file, root, f"{in_store(src)}/many/file-099999")
        assert stat_field(s, "Size") == 0, s
    finally:
        delete_store_paths(nix, str(b.out), src)


@pytest.mark.parametrize("depth", [50, 200])
def test_deep_tree_in_ext4(nix, tmp_path, depth):
    """50 levels, and 200: deeper than the walk keeps directories open
    (plan.c: MAX_OPEN_DIRS), so it opens them again on the way up."""
    b = build_image(nix, {"deep": """\
        p = ""
        for i in range(%d):
            p = os.path.join(p, "level-%%03d" %% i)
            put(os.path.join(p, "file"), b"%%d\\n" %% i)
        put("after", b"after\\n")
        """ % depth}, """\
        "root" = {
          storePaths = [ t.deep ];
          repartConfig = { Type = "root"; Format = "ext4"; Minimize = "guess"; };
        };
        """)
    img = check_image(b.image_file, tmp_path)
    [root] = img.partitions
    src = tree_path(nix, "deep")
    dump = ext4_dump(b.image_file, root, tmp_path / "dump", in_store(src))
    imagecheck.assert_same_tree(src, dump / os.path.basename(src))
    deepest = "/".join(f"level-{i:03d}" for i in range(depth))
    assert ext4_cat(b.image_file, root, f"{in_store(src)}/{deepest}/file") == b"%d\n" % (depth - 1)


def test_deep_tree_in_vfat(nix, tmp_path):
    b = build_image(nix, {"vdeep": """\
        p = ""
        for i in range(50):
            p = os.path.join(p, "L%02d" % i)
            put(os.path.join(p, "f.txt"), b"%d\\n" % i)
        """}, """\
        "esp" = {
          contents."/deep".source = t.vdeep;
          repartConfig = { Type = "esp"; Format = "vfat"; SizeMinBytes = "40M"; };
        };
        """)
    img = check_image(b.image_file, tmp_path)
    [esp] = img.partitions
    src = tree_path(nix, "vdeep")
    tree = vfat_tree(b.image_file, esp)
    assert tree == imagecheck.store_tree_for_vfat(src, "/deep")
    assert len([n for n in tree if n.endswith("/f.txt")]) == 50


def test_2000_deep_and_20000_wide_in_vfat(nix, tmp_path):
    """A 2000-deep chain of directories (each named "a": the deepest path
    is still shorter than PATH_MAX, which Nix needs) and 20,000 files in one
    directory, in one ESP: mmd and mcopy took minutes for each (fat-fill.h).
    fsck.vfat checks it; mdir lists all of it."""
    depth, width = 2000, 20_000
    b = build_image(nix, {"vbig": """\
        p = out
        for _ in range(%d):   # one by one: os.makedirs() recurses as deep
            p = os.path.join(p, "a")
            os.makedirs(p) if not os.path.isdir(os.path.dirname(p)) else os.mkdir(p)
        with open(os.path.join(p, "f"), "wb") as f:
            f.write(b"bottom\\n")
        for i in range(%d):
            put("wide/file-%%06d.txt" %% i, b"%%d\\n" %% i if i %% 1000 == 0 else b"")
        """ % (depth, width)}, """\
        "esp" = {
          contents."/big".source = t.vbig;
          repartConfig = { Type = "esp"; Format = "vfat"; Minimize = "guess"; };
        };
        """)
    img = check_image(b.image_file, tmp_path)
    [esp] = img.partitions
    listing = imagecheck.vfat_listing(b.image_file, esp)
    assert sum(1 for n in listing if n.startswith("/big/wide/file-")) == width
    deepest = "/big" + "/a" * depth
    assert listing[deepest] == "dir" and listing[deepest + "/f"] == "file"
    for i in (0, 7000, 19000):
        assert imagecheck.vfat_read(b.image_file, esp, f"/big/wide/file-{i:06d}.txt") == b"%d\n" % i


# ---- hard links ----------------------------------------------------------------------

HARDLINKS = """\
data = bytes(range(256)) * 40
a = put("a", data)
os.link(a, os.path.join(out, "b"))
os.makedirs(os.path.join(out, "sub"))
os.link(a, os.path.join(out, "sub", "c"))
e = put("empty")
os.link(e, os.path.join(out, "empty-too"))
"""


@pytest.mark.parametrize("fmt", ["ext4", "vfat"])
def test_hard_links_become_separate_files(nix, tmp_path, fmt):
    """README: store hard links exist only where the store was optimised, so
    they are written as separate files with equal contents."""
    b = build_image(nix, {"links": HARDLINKS}, f"""\
        "data" = {{
          contents."/links".source = t.links;
          repartConfig = {{ Type = "linux-generic"; Format = "{fmt}"; SizeMinBytes = "40M"; }};
        }};
        """)
    img = check_image(b.image_file, tmp_path)
    [part] = img.partitions
    src = Path(tree_path(nix, "links"))
    # The source really has hard links (else the test tests nothing).
    assert os.stat(src / "a").st_ino == os.stat(src / "b").st_ino == os.stat(src / "sub" / "c").st_ino
    assert os.stat(src / "a").st_nlink == 3
    data = (src / "a").read_bytes()
    if fmt == "ext4":
        inodes = set()
        for name in ("a", "b", "sub/c"):
            s = ext4_stat(b.image_file, part, f"/links/{name}")
            assert stat_field(s, "Links") == 1, s
            assert stat_field(s, "Size") == len(data), s
            inodes.add(inode_number(s))
            assert ext4_cat(b.image_file, part, f"/links/{name}") == data
        assert len(inodes) == 3, inodes
        s1, s2 = (ext4_stat(b.image_file, part, f"/links/{n}") for n in ("empty", "empty-too"))
        assert inode_number(s1) != inode_number(s2)
        assert stat_field(s1, "Links") == stat_field(s2, "Links") == 1
    else:
        tree = vfat_tree(b.image_file, part)
        assert tree["/links/a"] == tree["/links/b"] == tree["/links/sub/c"] == data
        assert tree["/links/empty"] == tree["/links/empty-too"] == b""


# ---- sparse files, a file over 4 GiB -------------------------------------------------

SPARSE = """\
os.makedirs(out)
with open(os.path.join(out, "holes"), "wb") as f:   # data, hole, data, hole to the end
    f.write(b"A" * 4096)
    f.seek(1 * 1024 * 1024)
    f.write(b"B" * 8192)
    f.truncate(16 * 1024 * 1024)
with open(os.path.join(out, "all-hole"), "wb") as f:
    f.truncate(8 * 1024 * 1024)
with open(os.path.join(out, "tail"), "wb") as f:    # a hole, then a partial last block
    f.seek(3 * 1024 * 1024 + 100)
    f.write(b"tail")
put("zeros-written", bytes(64 * 1024))              # zeros that are data in the source
"""


def test_sparse_files_stay_sparse_in_ext4(nix, tmp_path):
    b = build_image(nix, {"sparse": SPARSE}, """\
        "root" = {
          contents."/s".source = t.sparse;
          repartConfig = { Type = "root"; Format = "ext4"; Minimize = "guess"; };
        };
        """)
    img = check_image(b.image_file, tmp_path)
    [root] = img.partitions
    src = Path(tree_path(nix, "sparse"))
    # name: (size, data blocks the image may allocate, logical blocks that must be holes)
    expect = {
        "holes": (16 * MIB, 3, [1, 100, 255, 258, 4095]),
        "all-hole": (8 * MIB, 0, [0, 2047]),
        "tail": (3 * MIB + 104, 1, [0, 767]),
        "zeros-written": (64 * 1024, 0, [0, 15]),
    }
    for name, (size, blocks, holes) in expect.items():
        s = ext4_stat(b.image_file, root, f"/s/{name}")
        assert stat_field(s, "Size") == size == os.path.getsize(src / name), s
        # Blockcount is in 512-byte units.
        assert stat_field(s, "Blockcount") == blocks * 8, (name, s)
        listed = debugfs(b.image_file, root, f'blocks "/s/{name}"').split()
        assert len(listed) == blocks, (name, listed)
        for lblk in holes:
            assert physical_block(b.image_file, root, f"/s/{name}", lblk) == 0, (name, lblk)
        assert sha(ext4_cat(b.image_file, root, f"/s/{name}")) == imagecheck.file_sha256(src / name), name
    assert physical_block(b.image_file, root, "/s/holes", 256) != 0


def test_sparse_files_read_back_from_vfat(nix, tmp_path):
    b = build_image(nix, {"sparse": SPARSE}, """\
        "esp" = {
          contents."/s".source = t.sparse;
          repartConfig = { Type = "esp"; Format = "vfat"; SizeMinBytes = "64M"; };
        };
        """)
    assert_vfat_holds(nix, b, tmp_path, "sparse", "/s")


BIG_SIZE = 4 * GIB + 4096 + 100
BIG = """\
os.makedirs(out)
with open(os.path.join(out, "big"), "wb") as f:
    f.write(b"HEAD" * 1024)          # block 0
    f.seek(2 * 1024 ** 3)
    f.write(b"MIDDLE")               # block 524288
    f.seek(4 * 1024 ** 3 + 4096)
    f.write(b"TAIL" * 25)            # block 1048577, the last, 100 bytes
put("small", b"small\\n")
"""


def test_file_over_4_gib(nix, tmp_path):
    """Sparse in the store (a few blocks, whatever its size), so this costs
    reading 4 GiB of holes, not writing them."""
    b = build_image(nix, {"big": BIG}, """\
        "root" = {
          contents."/big".source = t.big;
          repartConfig = { Type = "root"; Format = "ext4"; };
        };
        """)
    src = tree_path(nix, "big")
    try:
        assert os.path.getsize(Path(src, "big")) == BIG_SIZE
        img = check_image(b.image_file, tmp_path)
        [root] = img.partitions
        # A few blocks of data: the default 10 MiB holds it (Minimize=guess
        # would count its 4 GiB: it sizes from st_size, holes included).
        assert root.size == 10 * MIB, root.size
        s = ext4_stat(b.image_file, root, "/big/big")
        assert stat_field(s, "Size") == BIG_SIZE, s
        assert stat_field(s, "Blockcount") == 3 * 8, s
        with open(b.image_file, "rb") as f:
            for lblk, want in ((0, b"HEAD" * 1024), (524288, b"MIDDLE" + bytes(4090)),
                               (1048577, b"TAIL" * 25 + bytes(4096 - 100))):
                pblk = physical_block(b.image_file, root, "/big/big", lblk)
                assert pblk != 0, lblk
                f.seek(root.offset + pblk * 4096)
                assert f.read(4096) == want, lblk
        for lblk in (1, 524287, 524289, 1048576):
            assert physical_block(b.image_file, root, "/big/big", lblk) == 0, lblk
        assert ext4_cat(b.image_file, root, "/big/small") == b"small\n"

        # FAT cannot hold it: an error that names the file.
        log = assert_build_fails(nix, image_body("""\
            "esp" = {
              contents."/big".source = t.big;
              repartConfig = { Type = "esp"; Format = "vfat"; SizeMinBytes = "40M"; };
            };
            """), name="vfat.nix")
        assert re.search(r"'/big/big' \(from /nix/store/\S+-big/big\) is %d bytes; FAT files hold less than "
                         r"4 GiB" % BIG_SIZE, log), log
    finally:
        delete_store_paths(nix, str(b.out), src)


# ---- empty files and directories -------------------------------------------------------

EMPTY = """\
put("empty-file")
os.makedirs(os.path.join(out, "empty-dir"))
os.makedirs(os.path.join(out, "dir-of-empty-dirs", "a", "b"))
os.makedirs(os.path.join(out, "dir-of-empty-dirs", "c"))
put("dir/empty-in-dir")
"""
EMPTY_LEAVES = {
    "emptyDirPath": "os.makedirs(out)\n",
    "emptyFilePath": "open(out, 'wb').close()\n",
}


@pytest.mark.parametrize("fmt", ["ext4", "vfat"])
def test_empty_files_and_directories(nix, tmp_path, fmt):
    b = build_image(nix, {"empty": EMPTY, **EMPTY_LEAVES}, f"""\
        "data" = {{
          contents = {{
            "/e".source = t.empty;
            "/an-empty-dir".source = t.emptyDirPath;
            "/an-empty-file".source = t.emptyFilePath;
          }};
          repartConfig = {{ Type = "linux-generic"; Format = "{fmt}"; SizeMinBytes = "40M"; }};
        }};
        """)
    img = check_image(b.image_file, tmp_path)
    [part] = img.partitions
    src = tree_path(nix, "empty")
    if fmt == "ext4":
        dump = ext4_dump(b.image_file, part, tmp_path / "dump")
        imagecheck.assert_same_tree(src, dump / "e")
        assert os.listdir(dump / "an-empty-dir") == []
        assert (dump / "an-empty-file").is_file() and os.path.getsize(dump / "an-empty-file") == 0
        for inside in ("/e/empty-file", "/e/dir/empty-in-dir", "/an-empty-file"):
            s = ext4_stat(b.image_file, part, inside)
            assert "Type: regular" in s and stat_field(s, "Size") == 0, s
            assert stat_field(s, "Blockcount") == 0, s
        for inside in ("/e/empty-dir", "/an-empty-dir", "/e/dir-of-empty-dirs/a/b"):
            listing = debugfs(b.image_file, part, f"ls -p {inside}")
            assert re.findall(r"^/\d+/\d+/\d+/\d+/([^/]*)/", listing, re.M) == [".", ".."], listing
    else:
        tree = vfat_tree(b.image_file, part)
        want = imagecheck.store_tree_for_vfat(src, "/e")
        want.update({"/an-empty-dir": None, "/an-empty-file": b""})
        assert tree == want


# ---- symlinks ------------------------------------------------------------------------

LINK_TARGETS = {
    "to-etc-passwd": "/etc/passwd",
    "up-and-out": "../../..",
    "self": "self",
    "dangling": "nowhere/at/all",
    "to-root": "/",
    "to-parent": "..",
    "odd target": "with spaces\nand newline/Grüße ✓",
    "fast-59": "f" * 59,       # the longest target kept in the inode
    "slow-60": "s" * 60,       # the shortest kept in a block
    "longest": "/".join(["x" * 254] * 16)[:4095],   # PATH_MAX - 1
}

SYMLINKS = """\
os.makedirs(out)
for name, target in %r.items():
    os.symlink(target, os.path.join(out, name))
os.makedirs(os.path.join(out, "dir"))
os.symlink("../to-etc-passwd", os.path.join(out, "dir", "to-a-link"))
"""
LINK_LEAF = "os.symlink('/etc/passwd', out)\n"


def test_symlinks_are_kept_never_followed(nix, tmp_path):
    b = build_image(nix, {"links": SYMLINKS % (LINK_TARGETS,), "linkLeaf": LINK_LEAF}, """\
        "root" = {
          storePaths = [ t.links t.linkLeaf ];
          contents."/etc/passwd-link".source = t.linkLeaf;
          repartConfig = { Type = "root"; Format = "ext4"; Minimize = "guess"; };
        };
        """)
    img = check_image(b.image_file, tmp_path)
    [root] = img.partitions
    src, leaf = tree_path(nix, "links"), tree_path(nix, "linkLeaf")
    assert os.readlink(leaf) == "/etc/passwd"
    dump = ext4_dump(b.image_file, root, tmp_path / "dump", in_store(src))
    imagecheck.assert_same_tree(src, dump / os.path.basename(src))
    for name, target in LINK_TARGETS.items():
        s = ext4_stat(b.image_file, root, f"{in_store(src)}/{name}")
        assert "Type: symlink" in s, (name, s)
        assert stat_field(s, "Size") == len(target.encode()), (name, s)
        if len(target.encode()) < 60:
            assert stat_field(s, "Blockcount") == 0, (name, s)   # a fast symlink
    # A store path that is itself a symlink stays one: in the closure and as
    # a `contents` source.
    for inside in (in_store(leaf), "/etc/passwd-link"):
        s = ext4_stat(b.image_file, root, inside)
        assert "Type: symlink" in s and 'Fast link dest: "/etc/passwd"' in s, (inside, s)


# ---- source paths stay inside their store path (issue 11) -------------------------

# A symlink to "/" inside a store path, a relative one inside it, one out of
# it by "..", an absolute one (into itself), and a store path that is itself
# a symlink to "/".
LINKS = """\
put("real/sub/f", b"inner\\n")
os.symlink("/", os.path.join(out, "root"))
os.symlink("real", os.path.join(out, "rel"))
os.symlink("../..", os.path.join(out, "real", "up"))
os.symlink(os.path.join(out, "real"), os.path.join(out, "abs"))
"""
ROOT_LINK = 'os.symlink("/", out)\n'

ESCAPES = [
    ("symlink-to-root", 'contents."/x".source = "${t.links}/root/etc/hostname";', "leads out of its store path"),
    ("dot-dot", 'contents."/x".source = "${t.links}/real/up/etc/hostname";', "leads out of its store path"),
    ("absolute", 'contents."/x".source = "${t.links}/abs/sub/f";', "leads out of its store path"),
    ("store-path-is-a-symlink", 'contents."/x".source = "${t.rootLink}/etc/hostname";', "is not a directory"),
    ("copy-files", 'repartConfig.CopyFiles = [ "${t.links}/root/etc:/etc-copy" ];', "leads out of its store path"),
]


@pytest.mark.parametrize("line,message", [e[1:] for e in ESCAPES], ids=[e[0] for e in ESCAPES])
def test_source_leaving_its_store_path_is_refused(nix, line, message):
    """A source path is resolved inside its store path: a symlink on the way
    out of it (to "/", by "..", absolute) is an error naming the source,
    never a file of the machine that builds in the image (sandbox = false,
    where the host's /etc is there to be read)."""
    make_trees(nix, {"links": LINKS, "rootLink": ROOT_LINK})
    log = assert_build_fails(nix, image_body(f"""\
        "root" = {{
          {line}
          repartConfig.Type = "root";
          repartConfig.Format = "ext4";
          repartConfig.Minimize = "guess";
        }};
        """))
    assert "/nix/store/" in log and message in log, log


def test_source_symlink_inside_its_store_path_is_followed(nix, tmp_path):
    """A relative symlink on the way that stays inside the store path means
    what the store path makes it mean (README, beneath.h)."""
    b = build_image(nix, {"links": LINKS}, """\
        "root" = {
          contents."/y".source = "${t.links}/rel/sub/f";
          repartConfig = { Type = "root"; Format = "ext4"; Minimize = "guess"; };
        };
        """)
    img = check_image(b.image_file, tmp_path)
    [root] = img.partitions
    assert ext4_cat(b.image_file, root, "/y") == b"inner\n"


# ---- names the file systems make themselves (issue 11) ----------------------------

LOST = """\
put("file", b"x\\n")
put("dir/inner/g", b"g\\n")
"""


def test_lost_and_found_merges_into_ext4s_own(nix, tmp_path):
    """ext4 has /lost+found before anything is copied: a directory copied or
    made there merges into it (as `mke2fs -d` does), a file goes into it;
    e2fsck -fn finds one lost+found, mode 0700."""
    b = build_image(nix, {"lost": LOST}, """\
        "root" = {
          contents."/lost+found".source = "${t.lost}/dir";
          contents."/lost+found/x".source = "${t.lost}/file";
          repartConfig = { Type = "root"; Format = "ext4"; Minimize = "guess";
                           MakeDirectories = [ "/lost+found" "/lost+found/made" ]; };
        };
        """)
    img = check_image(b.image_file, tmp_path)
    [root] = img.partitions
    top = debugfs(b.image_file, root, "ls -p /")
    assert re.findall(r"/lost\+found/", top) == ["/lost+found/"], top
    inside = re.findall(r"^/\d+/(\d+)/\d+/\d+/([^/]+)/", debugfs(b.image_file, root, "ls -p /lost+found"), re.M)
    assert sorted(n for _, n in inside) == [".", "..", "inner", "made", "x"], inside
    assert ext4_cat(b.image_file, root, "/lost+found/x") == b"x\n"
    assert ext4_cat(b.image_file, root, "/lost+found/inner/g") == b"g\n"
    assert "Mode:  0700" in ext4_stat(b.image_file, root, "/lost+found")


def test_file_at_lost_and_found_is_refused(nix):
    make_trees(nix, {"lost": LOST})
    log = assert_build_fails(nix, image_body("""\
        "root" = {
          contents."/lost+found".source = "${t.lost}/file";
          repartConfig = { Type = "root"; Format = "ext4"; Minimize = "guess"; };
        };
        """))
    assert "/lost+found: cannot copy" in log and "a directory is there already" in log, log


def test_vfat_label_and_a_name_alike(nix, tmp_path):
    """The volume label is an entry of the root directory, but not a name:
    a file and a directory named like it are there beside it."""
    b = build_image(nix, {"lbl": """\
        put("ESP", b"file\\n")
        put("esp.txt", b"txt\\n")
        put("ESP2/x", b"x\\n")
        """}, """\
        "esp" = {
          contents."/".source = t.lbl;
          repartConfig = { Type = "esp"; Format = "vfat"; Label = "ESP"; SizeMinBytes = "40M"; };
        };
        """)
    assert_vfat_holds(nix, b, tmp_path, "lbl", "/")


def test_vfat_name_with_a_tilde_in_eighth_place(nix, tmp_path):
    """Shortened to eight characters ending in '~', a name got from mtools
    (mmd, mcopy) a short name with "~0" written a byte too long: a NUL in
    its extension, an entry fsck.vfat rejects, and exit 0.  The builder
    writes "~1"."""
    b = build_image(nix, {"tilde": """\
        for n in ["ca1_30a~YXY32", "abcdefg~xyz", "abcdefg~.text", "ab~", "a~b~c~d~e~f"]:
            put(n, (n + "\\n").encode())
        put("dir_abc~de/f", b"f\\n")
        """}, """\
        "esp" = {
          contents."/t".source = t.tilde;
          repartConfig = { Type = "esp"; Format = "vfat"; SizeMinBytes = "40M"; };
        };
        """)
    assert_vfat_holds(nix, b, tmp_path, "tilde", "/t")


# ---- vfat: the bytes mtools made --------------------------------------------------

# Names of every kind mtools gives short names to: 8.3 in one case, mixed
# case, long, outside ASCII, with characters a short name cannot hold, a
# device name as the base, leading dots, several dots, and 70 that share
# their first six characters (numbered tails past ~9, and past ~41, which
# mtools' hash bitmap skips).  No name needs more than the 16 slots of a
# 512-byte cluster: mtools grew a directory by one cluster at most, and
# failed ("No directory slots") where the builder grows it by two.
MTOOLS_NAMES = [
    "README.TXT", "readme2.txt", "Readme3.Txt", "a", "B", "c.d", "LongFileName.txt", "another long name.txt",
    "Über file.txt", "日本語 ファイル.txt", "a+b.txt", "x;y", "[br]", ".hidden", "with space", "a.b.c.txt",
    "con.txt", "nul.x", "COM1.txt", "12345678.123", "123456789.1234", "ÄÖÜ long name", "x" * 100,
    "Ωmega long", "€uro long name.txt", "Œuvre complète.txt", "tab~9.txt", "t~10", "file.TXT", "y" * 190,
]


def mtools_env():
    """What vfat.c ran mtools in (make_env())."""
    return {"HOME": "/nonexistent", "MTOOLSRC": "/dev/null", "MTOOLS_SKIP_CHECK": "1", "MTOOLS_NO_VFAT": "0",
            "MTOOLS_NAME_NUMERIC_TAIL": "1", "MTOOLS_LOWER_CASE": "0", "MTOOLS_DOTTED_DIR": "0",
            "MTOOLS_TWENTY_FOUR_HOUR_CLOCK": "1", "DEFAULT_CODEPAGE": "437", "TZ": "UTC0", "LC_ALL": "C.UTF-8",
            "SOURCE_DATE_EPOCH": "315532800", "PATH": os.environ["PATH"]}


def walk_order(top: str):
    """(directories, files) below `top` in the builder's walk order: depth
    first, each directory's names in byte order."""
    dirs, files = [], []

    def visit(d, rel):
        for n in sorted(os.listdir(d), key=os.fsencode):
            p = os.path.join(d, n)
            if os.path.isdir(p) and not os.path.islink(p):
                dirs.append(f"{rel}/{n}")
                visit(p, f"{rel}/{n}")
            else:
                files.append((f"{rel}/{n}", p))
    visit(top, "")
    return dirs, files


@pytest.mark.parametrize("size,sector", [("40M", 512), ("8M", 512), ("2M", 512), ("40M", 4096)],
                         ids=["fat32", "fat16", "fat12", "fat32-4k"])
def test_vfat_is_what_mmd_and_mcopy_make(nix, tmp_path, size, sector):
    """The builder puts directories and files into the FAT itself, byte for
    byte as mmd and mcopy put them when they did it (the images before
    stay the images after): the same image formatted with nothing in it,
    filled by real mmd and mcopy run as vfat.c ran them, is the same."""
    script = """\
        names = %r
        for i, n in enumerate(names):
            put(n, (n * (1 + i %% 7)).encode())
            put("dir-" + str(i %% 3) + "/" + n, b"")
        for i in range(70):
            put("many/file-%%06d.txt" %% i, b"x" * (i * 97))
        put("deep/a/b/c/d/e/f", b"deep\\n")
        """ % (MTOOLS_NAMES,)
    partition = f"""\
        "esp" = {{
          CONTENTS
          repartConfig = {{ Type = "esp"; Format = "vfat"; SizeMinBytes = "{size}"; SizeMaxBytes = "{size}"; }};
        }};
        """
    body = ("let t = import ./trees.nix; in builtins.repartImage {\n  name = \"image\";\n"
            f"  sectorSize = {sector};\n  partitions = {{\n"
            f"{textwrap.indent(textwrap.dedent(partition), '    ')}  }};\n}}\n")
    make_trees(nix, {"mt": script})
    full = build(nix, body.replace("CONTENTS", 'contents."/t".source = t.mt; '
                                   'contents."/EFI/BOOT/BOOTX64.EFI".source = "${t.mt}/LongFileName.txt";'), "full.nix")
    empty = build(nix, body.replace("CONTENTS", ""), "empty.nix")
    src = tree_path(nix, "mt")

    img = tmp_path / "reference.raw"
    shutil.copyfile(empty.image_file, img)
    [part] = check_image(img, tmp_path).partitions
    drive = f"{img}@@{part.offset}"
    dirs, files = walk_order(src)
    # The walk's order: the copies in the spec's order, the parents a copy
    # needs made before it.
    all_dirs = []
    for c in full.spec_partition("esp")["contents"]:
        all_dirs += ["/t"] + ["/t" + d for d in dirs] if c["target"] == "/t" else ["/EFI", "/EFI/BOOT"]
    # vfat.c: one mmd for every directory, parents first; then, directory by
    # directory, one mcopy for the files that keep their store name and one
    # for each renamed file.
    run("mmd", "-i", drive, "-D", "s", "-D", "A", *("::" + d for d in all_dirs), env=mtools_env())
    by_dir = {d: [] for d in all_dirs}
    for rel, path in files:
        by_dir[("/t" + os.path.dirname(rel)).rstrip("/")].append(path)
    for d in all_dirs:
        if by_dir[d]:
            run("mcopy", "-i", drive, "-D", "s", "-D", "A", "-Q", *by_dir[d], "::" + d + "/", env=mtools_env())
        if d == "/EFI/BOOT":
            run("mcopy", "-i", drive, "-D", "s", "-D", "A", "-Q", os.path.join(src, "LongFileName.txt"),
                "::/EFI/BOOT/BOOTX64.EFI", env=mtools_env())

    check_image(full.image_file, tmp_path)
    assert imagecheck.range_sha256(full.image_file, part.offset, part.size) == \
        imagecheck.range_sha256(img, part.offset, part.size)
