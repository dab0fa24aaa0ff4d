"""Side by side with systemd-repart 252: the same definitions, built once by
`nix-build` on a builtins.repartImage expression and once by the real
systemd-repart (Debian's, /usr/bin/systemd-repart) from repart.d files, must
give the same image.

What is compared, for every case:
- `sfdisk --json`: label id, first/last usable LBA, sector size, and per
  partition type, UUID, name, start, size and attribute bits;
- the bytes of the whole image outside the file systems (protective MBR, both
  GPT headers and entry arrays, padding, Format-less partitions), and its size;
- `blkid -p` of every partition (file-system type, UUID, label, block size);
- repart-output.json against systemd-repart's `--json=pretty`, field by field;
- for ext4: the superblock as `dumpe2fs -h` prints it (all but the fields that
  say when and how often the file system was mounted, see EXT4_VOLATILE) and
  the file tree read back with `debugfs` (never mounted): names, types, modes,
  owners, sizes, bytes, symlink targets, hard links, and the times of
  everything copied from the store.

systemd-repart 252 quirks this file knows about (and works around, or asserts):
- it has no `Minimize=` (it warns and ignores the key): Minimize=off only, and
  the key is left out of its definitions;
- it ignores an explicit `GrowFileSystem=no` for the types whose default is on
  (fixed in 253): test_growfs_no_differs_as_documented asserts that the
  difference is exactly that bit;
- it mangles `Flags=` with any of bits 0-47 set: only bits 48-63 are used;
- it has no `--sector-size` (253 has): the 4096-byte case runs it on a loop
  device with 4096-byte logical sectors instead;
- it ignores (with a warning) NoAuto=/ReadOnly=/GrowFileSystem= on types that
  do not define them; we refuse them at evaluation (test_errors), so no case
  here has them.

Differences that are ours by design, taken out of the comparison where they
show (and only there; see known_differences and EXT4_VOLATILE): holes of
sparse files (252 writes them out), hard links (252 keeps them, we write a
copy per name), the times of directories the tools make rather than copy
(252: the present, we: SOURCE_DATE_EPOCH), the ext4 directory hash seed (252:
random) and the traces of 252 mounting the file system to fill it.
"""
import contextlib
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import DEFAULT_SEED

SYSTEMD_REPART = shutil.which("systemd-repart") or "/usr/bin/systemd-repart"
OTHER_SEED = "6a5b3c8e-1f2d-4e7a-9b0c-d4e5f6a7b8c9"


def _repart_version():
    try:
        out = subprocess.run([SYSTEMD_REPART, "--version"], capture_output=True, text=True).stdout
    except OSError:
        return None
    m = re.match(r"systemd (\d+)", out)
    return int(m.group(1)) if m else None


REPART_VERSION = _repart_version()

pytestmark = [
    pytest.mark.skipif(REPART_VERSION is None, reason="systemd-repart is not installed"),
    pytest.mark.skipif(REPART_VERSION not in (None, 252),
                       reason=f"the quirks handled here are systemd-repart 252's, this is {REPART_VERSION}"),
    pytest.mark.skipif(os.geteuid() != 0, reason="systemd-repart needs root"),
    pytest.mark.skipif(not all(shutil.which(t) for t in ("sfdisk", "blkid", "debugfs", "dumpe2fs")),
                       reason="needs sfdisk, blkid, debugfs and dumpe2fs"),
]

# Small store objects with the things a copy can get wrong: a directory tree,
# an executable, an empty file, a file with a hole, a hard link, a relative
# symlink, and symlinks to (hence references to) other store paths.
PACKAGES = r"""
  pkg = name: deps: derivation {
    inherit name;
    system = builtins.currentSystem;
    builder = "/bin/sh";
    args = [ "-c" ''
      set -e
      /bin/mkdir -p $out/bin $out/share/doc
      echo ${name} > $out/share/doc/README
      /bin/ln $out/share/doc/README $out/share/doc/README.hardlink
      printf '#!/bin/sh\necho %s\n' ${name} > $out/bin/${name}
      /bin/chmod 0755 $out/bin/${name}
      : > $out/share/empty
      /bin/dd if=/dev/zero of=$out/share/sparse bs=1 count=0 seek=1048576 2>/dev/null
      printf end >> $out/share/sparse
      /bin/ln -s ../share/doc/README $out/bin/readme
      ${builtins.concatStringsSep "\n" (map (d: "/bin/ln -s ${d} $out/share/${d.name}") deps)}
    '' ];
  };
  dep = pkg "vsr-dep" [ ];
  top = pkg "vsr-top" [ dep ];
  other = pkg "vsr-other" [ ];
  motd = builtins.toFile "vsr-motd" "Welcome.\n";
"""


@dataclass
class Part:
    """One partition: a repart.d file <name>.conf and partitions.<name>.

    config values are str, int, bool or lists of str; "${x}" in a string is
    the store path of the let-bound x (Nix interpolates it; for the repart.d
    file the test substitutes the path)."""
    name: str
    config: dict
    store_paths: list = field(default_factory=list)   # let-bound names
    contents: dict = field(default_factory=dict)      # target -> let-bound name


@dataclass
class Case:
    parts: list
    seed: str = DEFAULT_SEED
    image_size: str = "auto"
    sector_size: int = 512
    split: bool = False


# --- the expression for our side -------------------------------------------

def nix_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)   # "${x}" stays an interpolation
    if isinstance(v, list):
        return "[ " + " ".join(nix_value(x) for x in v) + " ]"
    raise TypeError(v)


def nix_expression(case: Case) -> str:
    parts = []
    for p in case.parts:
        body = ["repartConfig = { " + " ".join(f"{k} = {nix_value(v)};" for k, v in p.config.items()) + " };"]
        if p.store_paths:
            body.append("storePaths = [ " + " ".join(p.store_paths) + " ];")
        for target, src in p.contents.items():
            body.append(f"contents.{json.dumps(target)}.source = {src};")
        parts.append(f'"{p.name}" = {{ ' + " ".join(body) + " };")
    image_size = "" if case.image_size == "auto" else f"imageSize = {json.dumps(case.image_size)};"
    return ("let\n" + PACKAGES + "in {\n"
            "  paths = { top = \"${top}\"; dep = \"${dep}\"; other = \"${other}\"; motd = \"${motd}\"; };\n"
            "  img = builtins.repartImage {\n"
            "    name = \"image\";\n"
            f"    seed = \"{case.seed}\";\n"
            f"    sectorSize = {case.sector_size};\n"
            f"    {image_size}\n"
            f"    split = {nix_value(case.split)};\n"
            "    partitions = {\n      " + "\n      ".join(parts) + "\n    };\n"
            "  };\n}\n")


# --- the same definitions for systemd-repart ---------------------------------

def conf_value(v, paths) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return str(v)
    return re.sub(r"\$\{(\w+)\}", lambda m: paths[m.group(1)], v)


def closure(nix, path):
    r = nix.run("nix-store", "--query", "--requisites", path)
    assert r.returncode == 0, r.stderr
    return sorted(r.stdout.split())


def write_definitions(nix, case: Case, paths: dict, directory: Path):
    directory.mkdir(parents=True)
    for p in case.parts:
        lines = ["[Partition]"]
        for k, v in p.config.items():
            if k == "Minimize":
                # 252 has no Minimize= (it would warn and ignore it); every
                # case here is Minimize=off, which is 252's only behaviour.
                assert v in ("off", False), "252 can only be compared with Minimize=off"
                continue
            for item in (v if isinstance(v, list) else [v]):
                lines.append(f"{k}={conf_value(item, paths)}")
        # storePaths: each closure path copied to the same place, as the
        # NixOS module's staging tree would hold it.
        for sp in p.store_paths:
            for c in closure(nix, paths[sp]):
                lines.append(f"CopyFiles={c}:{c}")
        for target, src in p.contents.items():
            lines.append(f"CopyFiles={paths[src]}:{target}")
        (directory / f"{p.name}.conf").write_text("\n".join(lines) + "\n")


def run_repart(workdir: Path, defs: Path, seed: str, target: str, *extra) -> list:
    cmd = [SYSTEMD_REPART, f"--seed={seed}", f"--definitions={defs}", "--dry-run=no",
           "--json=pretty", "--no-pager", *extra, target]
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, (cmd, proc.stderr)
    return json.loads(proc.stdout)


@contextlib.contextmanager
def loop_device(path: Path, sector_size: int, read_only: bool):
    args = ["losetup", "--find", "--show", f"--sector-size={sector_size}"]
    if read_only:
        args.append("--read-only")
    proc = subprocess.run(args + [str(path)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"no loop device with {sector_size}-byte sectors here: {proc.stderr.strip()}")
    dev = proc.stdout.strip()
    try:
        yield dev
    finally:
        subprocess.run(["losetup", "--detach", dev], check=True)


# --- reading images ----------------------------------------------------------

def sfdisk_json(target: str) -> dict:
    proc = subprocess.run(["sfdisk", "--json", target], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    table = json.loads(proc.stdout)["partitiontable"]
    device = table.pop("device")
    for part in table["partitions"]:
        # image.raw1, /dev/loop3p1: only the partition number is the image's
        part["node"] = re.sub(r"^p", "", part["node"][len(device):])
    return table


def blkid(image: Path, offset: int, size: int) -> dict:
    proc = subprocess.run(["blkid", "-p", "-o", "export", "-O", str(offset), "-S", str(size), str(image)],
                          capture_output=True, text=True)
    assert proc.returncode in (0, 2), proc.stderr   # 2: nothing found
    tags = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
    tags.pop("DEVNAME", None)
    return tags


def outside_file_systems(image: Path, ranges) -> str:
    """sha256 of the image with the given (offset, size) ranges left out."""
    h = hashlib.sha256()
    pos = 0
    with open(image, "rb") as f:
        for off, size in sorted(ranges) + [(os.path.getsize(image), 0)]:
            f.seek(pos)
            left = off - pos
            while left > 0:
                chunk = f.read(min(left, 1 << 20))
                assert chunk, "image shorter than its partition table says"
                h.update(chunk)
                left -= len(chunk)
            pos = off + size
    return h.hexdigest()


def extract(image: Path, offset: int, size: int, dest: Path) -> Path:
    with open(image, "rb") as src, open(dest, "wb") as out:
        src.seek(offset)
        left = size
        while left:
            chunk = src.read(min(left, 1 << 20))
            assert chunk
            out.write(chunk)
            left -= len(chunk)
    return dest


# When and how often a file system was mounted and written: systemd-repart 252
# formats with mkfs.ext4 at the present time and then mounts it to copy the
# files (so its journal has been used and carries the journal checksum
# features the kernel sets); we write it unmounted with the fixed
# SOURCE_DATE_EPOCH time.  The directory hash seed is random in 252 (mkfs.ext4
# draws it; 252 passes no hash_seed=), ours is derived from the seed.
# The checksum covers all of these.
EXT4_VOLATILE = {
    "Last mounted on", "Filesystem created", "Last mount time", "Last write time",
    "Mount count", "Last checked", "Lifetime writes", "Directory Hash Seed",
    "Checksum", "Journal features", "Journal sequence", "Journal start",
    "Journal checksum type", "Journal checksum",
}


def superblock(fs: Path) -> dict:
    proc = subprocess.run(["dumpe2fs", "-h", str(fs)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    fields = {}
    for line in proc.stdout.splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            fields[k.strip()] = v.strip()
    return fields


def ext4_tree(fs: Path, dest: Path):
    """Every entry of the file system, read with debugfs: path -> properties
    ('links': the other names of the same inode; 'blocks': allocated
    512-byte units), and path -> inode number."""
    dest.mkdir()
    proc = subprocess.run(["debugfs", "-R", f"rdump / {dest}", str(fs)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    entries = {}
    dirs = []
    for root, dnames, fnames in os.walk(dest):
        rel = "/" + os.path.relpath(root, dest) if root != str(dest) else "/"
        dirs.append(rel)
        for n in sorted(dnames + fnames):
            p = os.path.join(root, n)
            st = os.lstat(p)
            path = os.path.normpath(os.path.join(rel, n))
            e = {"mode": oct(st.st_mode), "uid": st.st_uid, "gid": st.st_gid}
            if stat.S_ISLNK(st.st_mode):
                e["target"] = os.readlink(p)
            elif stat.S_ISREG(st.st_mode):
                e["size"] = st.st_size
                e["sha256"] = hashlib.sha256(Path(p).read_bytes()).hexdigest()
            entries[path] = e
    st = os.lstat(dest)
    entries["/"] = {"mode": oct(st.st_mode), "uid": st.st_uid, "gid": st.st_gid}
    # Inode numbers (rdump turns hard links into copies), then block counts.
    script = "".join(f'ls -p "{d}"\n' for d in dirs)
    proc = subprocess.run(["debugfs", "-f", "-", str(fs)], input=script, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    inode_of = {}
    current = None
    for line in proc.stdout.splitlines():
        m = re.match(r'debugfs:\s+ls -p "(.*)"$', line)
        if m:
            current = m.group(1)
            continue
        m = re.match(r"^/(\d+)/(\d+)/\d+/\d+/(.*)/\d*/$", line)
        if m and current is not None and m.group(3) != ".." and m.group(1) != "0":
            inode_of[os.path.normpath(os.path.join(current, m.group(3)))] = int(m.group(1))
    assert set(inode_of) == set(entries), "debugfs ls and rdump disagree"
    script = "".join(f"stat <{i}>\n" for i in sorted(set(inode_of.values())))
    proc = subprocess.run(["debugfs", "-f", "-", str(fs)], input=script, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    blocks, mtime = {}, {}
    ino = None
    for line in proc.stdout.splitlines():
        m = re.match(r"Inode: (\d+)", line)
        if m:
            ino = int(m.group(1))
        m = re.search(r"Blockcount: (\d+)", line)
        if m:
            blocks[ino] = int(m.group(1))
        m = re.match(r"\s*mtime: (\S+)", line)
        if m:
            mtime[ino] = m.group(1)   # seconds:extra (nanoseconds), raw
    for path, i in inode_of.items():
        entries[path]["blocks"] = blocks[i]
        entries[path]["mtime"] = mtime[i]
        if not entries[path]["mode"].startswith("0o4"):
            entries[path]["links"] = sorted(p for p, j in inode_of.items() if j == i and p != path)
    return entries, inode_of


def known_differences(ours: dict, theirs: dict, theirs_inodes: dict):
    """The two documented differences in what the files take, removed from
    both trees; returns (512-byte units, inodes) that ours saves on them.

    - Holes: systemd-repart 252 copies a sparse file's bytes, holes written
      out as zeros; we keep the holes (issue 3: sparse files stay sparse).
      Where a file is the same but fully allocated on their side and less on
      ours, 'blocks' is dropped.
    - Hard links: systemd-repart copies with COPY_HARDLINKS and keeps them; we
      write every name as a file of its own (build.c, plan.h
      ignore_hardlinks: the NAR format has none, so in a store they come only
      from optimisation, and the image would depend on that).  Where their
      names share an inode and ours have none, 'links' is dropped.
    Every other block count and link must agree."""
    saved_units, saved_inodes, seen = 0, 0, set()
    for path, a in ours.items():
        b = theirs.get(path)
        if not b or "links" not in a or any(a.get(k) != b.get(k) for k in ("mode", "sha256", "target")):
            continue
        ino = theirs_inodes[path]
        if b.get("links") and a["links"] == [] and a["blocks"] == b["blocks"]:
            if ino in seen:          # a further name: a copy of its own on our side
                saved_units -= a["blocks"]
                saved_inodes -= 1
            del a["links"], b["links"]
        if "size" in a and a["blocks"] < b["blocks"] == -(-a["size"] // 4096) * 8:
            if ino not in seen:
                saved_units += b["blocks"] - a["blocks"]
            del a["blocks"], b["blocks"]
        seen.add(ino)
    return saved_units, saved_inodes


def copied_trees(case: Case, paths: dict, nix) -> list:
    """Where the definitions copy something from the store to: inside these,
    times come from the store; around them, the tools make directories."""
    out = []
    for p in case.parts:
        for sp in p.store_paths:
            out += closure(nix, paths[sp])
        out += list(p.contents)
        for cf in p.config.get("CopyFiles", []):
            src = conf_value(cf, paths)
            out.append(src.split(":", 1)[1] if ":" in src else src)
    return out


# --- the comparison ----------------------------------------------------------

def differences(ours, theirs, where=""):
    """Each differing leaf as 'where: ours X, systemd-repart Y'."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        out = []
        for k in sorted(set(ours) | set(theirs), key=str):
            if k not in ours or k not in theirs:
                out.append(f"{where}{'' if str(k).startswith('/') else '.'}{k}: ours {ours.get(k, '(none)')!r}, systemd-repart {theirs.get(k, '(none)')!r}")
            else:
                out += differences(ours[k], theirs[k], f"{where}{'' if str(k).startswith('/') else '.'}{k}")
        return out
    if isinstance(ours, list) and isinstance(theirs, list) and len(ours) == len(theirs):
        return [d for i, (a, b) in enumerate(zip(ours, theirs)) for d in differences(a, b, f"{where}[{i}]")]
    return [] if ours == theirs else [f"{where}: ours {ours!r}, systemd-repart {theirs!r}"]


def assert_same(ours, theirs, what):
    diffs = differences(ours, theirs)
    assert not diffs, f"{what} differs:\n  " + "\n  ".join(diffs)


def build_both(nix, case: Case, tmp_path: Path):
    expr = nix.write("image.nix", nix_expression(case))
    r = nix.eval_file(expr, "-A", "paths")
    assert r.returncode == 0, r.stderr
    paths = r.json()
    r = nix.build(expr, "-A", "img")
    assert r.returncode == 0, r.stderr
    ours_dir = Path(r.stdout.strip())
    defs = tmp_path / "repart.d"
    write_definitions(nix, case, paths, defs)
    return ours_dir, defs, paths


def compare_images(nix, case, paths, ours_img, theirs_img, ours_table, theirs_table,
                   ours_json, theirs_json, tmp_path, same_gpt=True):
    assert_same(ours_table, theirs_table, "sfdisk --json")
    assert os.path.getsize(ours_img) == os.path.getsize(theirs_img), "image size"
    assert_same(ours_json, theirs_json, "repart-output.json (vs systemd-repart --json)")

    ss = ours_table["sectorsize"]
    formats = {p.name: p.config.get("Format") for p in case.parts}
    fs_ranges = []
    trees = copied_trees(case, paths, nix)
    for part, entry in zip(ours_table["partitions"], ours_json):
        offset, size = part["start"] * ss, part["size"] * ss
        assert (offset, size) == (entry["offset"], entry["raw_size"]), entry
        name = entry["file"][:-len(".conf")]
        assert_same(blkid(ours_img, offset, size), blkid(theirs_img, offset, size), f"blkid -p of {name}")
        if formats[name] is None:
            continue
        fs_ranges.append((offset, size))
        a = extract(ours_img, offset, size, tmp_path / f"ours-{name}.fs")
        b = extract(theirs_img, offset, size, tmp_path / f"theirs-{name}.fs")
        ta, ours_inodes = ext4_tree(a, tmp_path / f"ours-{name}")
        tb, theirs_inodes = ext4_tree(b, tmp_path / f"theirs-{name}")
        for t in (ta, tb):
            for path, e in t.items():
                inside = any(path == c or path.startswith(c.rstrip("/") + "/") for c in trees)
                if not inside:
                    # made by the tool, not copied: systemd-repart stamps the
                    # present time, we SOURCE_DATE_EPOCH.
                    e.pop("mtime")
        saved_units, saved_inodes = known_differences(ta, tb, theirs_inodes)
        assert_same(ta, tb, f"the files in {name}")
        sa, sb = superblock(a), superblock(b)
        for k in EXT4_VOLATILE:
            sa.pop(k, None)
            sb.pop(k, None)
        free = {k: (int(sa.pop(k)), int(sb.pop(k))) for k in ("Free blocks", "Free inodes")}
        assert_same(sa, sb, f"the ext4 superblock of {name}")
        assert free == {"Free blocks": (free["Free blocks"][1] + saved_units // 8, free["Free blocks"][1]),
                        "Free inodes": (free["Free inodes"][1] + saved_inodes, free["Free inodes"][1])}, \
            f"free blocks and inodes of {name} (ours, systemd-repart): more than holes and hard links explain"
    if not same_gpt:
        # Leave out the MBR and both GPT headers and entry arrays.
        end = os.path.getsize(ours_img)
        fs_ranges += [(0, ours_table["firstlba"] * ss),
                      ((ours_table["lastlba"] + 1) * ss, end - (ours_table["lastlba"] + 1) * ss)]
    assert outside_file_systems(ours_img, fs_ranges) == outside_file_systems(theirs_img, fs_ranges), \
        "bytes outside the file systems (MBR, GPT, padding, Format-less partitions)"


def side_by_side(nix, case: Case, tmp_path: Path):
    ours_dir, defs, paths = build_both(nix, case, tmp_path)
    ours_img = ours_dir / "image.raw"
    ours_json = json.loads((ours_dir / "repart-output.json").read_text())
    work = tmp_path / "theirs"
    work.mkdir()
    theirs_img = work / "image.raw"
    # Same relative file name, so that "node" ("image.raw1") is the same.
    theirs_json = run_repart(work, defs, case.seed, "image.raw", "--empty=create", f"--size={case.image_size}")
    compare_images(nix, case, paths, ours_img, theirs_img, sfdisk_json(str(ours_img)),
                   sfdisk_json(str(theirs_img)), ours_json, theirs_json, tmp_path)
    return ours_json, sfdisk_json(str(ours_img))


# --- the cases ---------------------------------------------------------------

def test_esp_and_root_with_store_paths(nix, tmp_path):
    """(a) an ESP-like partition with no file system, and an ext4 root holding
    a closure and a file, Minimize=off; --size=auto."""
    case = Case(parts=[
        Part("00-esp", {"Type": "esp", "SizeMinBytes": "20M"}),
        Part("10-root", {"Type": "root", "Format": "ext4", "Label": "nixos", "Minimize": "off"},
             store_paths=["top"], contents={"/etc/motd": "motd"}),
    ])
    out, table = side_by_side(nix, case, tmp_path)
    # The DESIGN.md §5 check values hold on both sides.
    assert table["id"] == "B581FEF7-24ED-4F31-990B-099EC86BBA03"
    assert out[1]["uuid"] == "57bd1ad1-c688-450a-ba37-d1792ec72fbb"
    assert blkid(Path(tmp_path / "theirs" / "image.raw"), out[1]["offset"], out[1]["raw_size"])["UUID"] \
        == "7981aaf4-2a9a-4f86-9f1f-5b42c8f28bbf"


WEIGHTED = [
    # SizeMin rounds down, SizeMax up to 4096; the cap on 10-a makes the
    # second round of the weight distribution happen.
    Part("10-a", {"Type": "linux-generic", "Weight": 1000, "SizeMinBytes": "3000001",
                  "SizeMaxBytes": "10000001", "PaddingMinBytes": "1M"}),
    Part("20-b", {"Type": "swap", "Weight": 2500, "PaddingWeight": 500,
                  "PaddingMinBytes": "100001", "PaddingMaxBytes": "9000001"}),
    Part("30-c", {"Type": "home", "Format": "ext4", "Weight": 700, "PaddingWeight": 1000,
                  "SizeMinBytes": "12M", "Minimize": "off"},
         contents={"/motd": "motd"}),
]


@pytest.mark.parametrize("image_size", ["100000001", "auto"])
def test_weights_padding_and_bounds(nix, tmp_path, image_size):
    """(b) three partitions sharing a fixed size (not a multiple of 4096) by
    Weight and PaddingWeight within their minimums and maximums; and the
    same definitions with --size=auto."""
    out, table = side_by_side(nix, Case(parts=WEIGHTED, seed=OTHER_SEED, image_size=image_size), tmp_path)
    if image_size != "auto":
        # Free space really was shared out (not just the minimums).
        assert sum(e["raw_padding"] for e in out) > 0
        assert out[0]["raw_size"] == 10002432   # SizeMaxBytes rounded up
    else:
        assert [e["raw_size"] for e in out] == [2998272, 10485760, 12582912]


def test_repeated_types_labels_uuids_and_flags(nix, tmp_path):
    """(c) repeated linux-generic partitions (default labels with -2, -3; the
    k-th UUID of a type counts earlier partitions with an explicit UUID too),
    an explicit Label (not ASCII) and UUID, and the flag settings."""
    case = Case(seed=OTHER_SEED, parts=[
        Part("00-root", {"Type": "root", "Format": "ext4", "ReadOnly": True, "Minimize": "off"},
             store_paths=["other"]),
        Part("10-gen", {"Type": "linux-generic"}),
        Part("20-gen", {"Type": "linux-generic"}),
        Part("30-gen", {"Type": "linux-generic", "Label": "données-été",
                        "UUID": "0A1B2C3D-4E5F-4A6B-8C7D-8E9FA0B1C2D3"}),
        Part("40-gen", {"Type": "linux-generic"}),
        Part("50-home", {"Type": "home", "NoAuto": True}),
        Part("60-srv", {"Type": "srv", "Format": "ext4", "GrowFileSystem": True, "NoAuto": True,
                        "Flags": "0x1004000000000000", "Minimize": "off",
                        "CopyFiles": ["${dep}:/data", "${motd}:/etc/motd"],
                        "MakeDirectories": ["/var/empty", "/srv/www"]}),
        # Flags= sets 63, NoAuto=no clears it again; 50 stays.
        Part("70-var", {"Type": "var", "Flags": "0x8004000000000000", "NoAuto": False}),
        Part("80-tmp", {"Type": "tmp", "ReadOnly": True, "NoAuto": True}),
    ])
    out, table = side_by_side(nix, case, tmp_path)
    names = [p["name"] for p in table["partitions"]]
    assert names == ["root-x86-64", "linux-generic", "linux-generic-2", "données-été",
                     "linux-generic-3", "home", "srv", "var", "tmp"]
    attrs = [p.get("attrs") for p in table["partitions"]]
    assert attrs == ["GUID:60", None, None, None, None, "GUID:59,63", "GUID:50,59,60,63",
                     "GUID:50,59", "GUID:60,63"]


def test_growfs_no_differs_as_documented(nix, tmp_path):
    """GrowFileSystem=no on types where it defaults on: systemd-repart 252
    sets bit 59 anyway (fixed in 253); we honour the setting.  Everything
    else must still agree."""
    case = Case(parts=[
        Part("10-root", {"Type": "root", "Format": "ext4", "GrowFileSystem": False, "Minimize": "off"}),
        Part("20-home", {"Type": "home", "GrowFileSystem": False}),
        Part("30-srv", {"Type": "srv"}),
    ])
    ours_dir, defs, paths = build_both(nix, case, tmp_path)
    work = tmp_path / "theirs"
    work.mkdir()
    theirs_json = run_repart(work, defs, case.seed, "image.raw", "--empty=create", "--size=auto")
    ours = sfdisk_json(str(ours_dir / "image.raw"))
    theirs = sfdisk_json(str(work / "image.raw"))
    assert [p.get("attrs") for p in ours["partitions"]] == [None, None, "GUID:59"]
    assert [p.get("attrs") for p in theirs["partitions"]] == ["GUID:59", "GUID:59", "GUID:59"]
    for p in theirs["partitions"][:2]:
        del p["attrs"]
    compare_images(nix, case, paths, ours_dir / "image.raw", work / "image.raw", ours, theirs,
                   json.loads((ours_dir / "repart-output.json").read_text()), theirs_json, tmp_path,
                   same_gpt=False)


def test_sector_size_4096(nix, tmp_path):
    """(d) 4096-byte sectors.  systemd-repart 252 has no --sector-size; it
    takes the sector size of a block device, so it runs on a loop device
    with 4096-byte logical sectors over a file of the image's size (a fixed
    size: --size only grows regular files)."""
    case = Case(seed=OTHER_SEED, sector_size=4096, image_size="48M", parts=[
        Part("00-esp", {"Type": "esp", "SizeMinBytes": "8M", "SizeMaxBytes": "9M"}),
        Part("10-root", {"Type": "root", "Format": "ext4", "Minimize": "off"},
             store_paths=["top"], contents={"/etc/motd": "motd"}),
        Part("20-gen", {"Type": "linux-generic", "PaddingWeight": 300, "Weight": 100}),
    ])
    help_text = subprocess.run([SYSTEMD_REPART, "--help"], capture_output=True, text=True).stdout
    assert "--sector-size" not in help_text, "this systemd-repart has --sector-size: use it here"
    ours_dir, defs, paths = build_both(nix, case, tmp_path)
    ours_img = ours_dir / "image.raw"
    assert os.path.getsize(ours_img) == 48 << 20
    work = tmp_path / "theirs"
    work.mkdir()
    theirs_img = work / "image.raw"
    with open(theirs_img, "wb") as f:
        f.truncate(os.path.getsize(ours_img))
    with loop_device(theirs_img, 4096, read_only=False) as dev:
        theirs_json = run_repart(work, defs, case.seed, dev, "--empty=force")
        theirs_table = sfdisk_json(dev)
    with loop_device(ours_img, 4096, read_only=True) as dev:
        ours_table = sfdisk_json(dev)
    assert ours_table["sectorsize"] == 4096 and ours_table["firstlba"] == 256
    ours_json = json.loads((ours_dir / "repart-output.json").read_text())
    # "node" names the loop device's partition (/dev/loop0p1) on their side;
    # ours names the image file's (image.raw1).  Compare the partition number.
    for entries in (ours_json, theirs_json):
        for e in entries:
            e["node"] = re.search(r"(\d+)$", e["node"]).group(1)
    compare_images(nix, case, paths, ours_img, theirs_img, ours_table, theirs_table,
                   ours_json, theirs_json, tmp_path)


@pytest.mark.parametrize("case,partitions", [
    # An explicit label takes a default's place: the repeats skip it.
    (Case(parts=[
        Part("10-gen", {"Type": "linux-generic", "Label": "linux-generic-2"}),
        Part("20-gen", {"Type": "linux-generic"}),
        Part("30-gen", {"Type": "linux-generic"}),
        Part("40-swap", {"Type": "swap", "Label": "linux-generic-4"}),
        Part("50-gen", {"Type": "linux-generic"}),
    ]), 5),
    # The image is too small for all three: the highest Priority= goes.
    (Case(image_size="25M", parts=[
        Part("10-gen", {"Type": "linux-generic", "SizeMinBytes": "12M"}),
        Part("20-gen", {"Type": "linux-generic", "SizeMinBytes": "12M", "Priority": 10}),
        Part("30-gen", {"Type": "linux-generic", "SizeMinBytes": "5M"}),
    ]), 2),
    # Fractional sizes, Weight=0, a small weight against a large one.
    (Case(image_size="77.7M", parts=[
        Part("10-gen", {"Type": "linux-generic", "SizeMinBytes": "10.5M", "PaddingMinBytes": "0.3M"}),
        Part("20-gen", {"Type": "linux-generic", "SizeMaxBytes": "20.1M", "Weight": 0}),
        Part("30-x", {"Type": "xbootldr", "Format": "ext4", "Weight": 10, "PaddingWeight": 1,
                      "Minimize": "off"}),
    ]), 3),
    # usr, an architecture-specific name, a literal GUID, a 36-unit label.
    (Case(seed=OTHER_SEED, parts=[
        Part("10-usr", {"Type": "usr", "Format": "ext4", "Minimize": "off"}),
        Part("20-root", {"Type": "root-x86-64", "Label": "x" * 36}),
        Part("30-esp", {"Type": "esp", "UUID": "12345678-1234-4234-9234-123456789abc"}),
        Part("40-var", {"Type": "4d21b016-b534-45c2-a9fb-5c16e091fd2d"}),
    ]), 4),
], ids=["label-collisions", "priority-drop", "fractions-and-weights", "types"])
def test_more_layout_rules(nix, tmp_path, case, partitions):
    out, table = side_by_side(nix, case, tmp_path)
    assert len(table["partitions"]) == partitions


def test_split_names_count_the_partitions_in_the_table(nix, tmp_path):
    """SplitName= with --split=yes when Priority= drops a partition: the
    dropped one has no split file and no number, %n counts the partitions
    left in the table, and only their names must differ (the evaluator
    refused "%t" twice here, counting the dropped one, and numbered %n by
    the definitions)."""
    ext4 = {"Type": "linux-generic", "Format": "ext4", "SizeMinBytes": "10M"}
    case = Case(image_size="40M", split=True, parts=[
        Part("10-a", {**ext4, "SizeMinBytes": "30M", "Priority": 10, "SplitName": "%t"}),
        Part("20-b", {**ext4, "SplitName": "%t"}),
        Part("30-c", {**ext4, "SplitName": "c-%n"}),
        Part("40-d", {**ext4, "SplitName": "d%n"}),
    ])
    ours_dir, defs, paths = build_both(nix, case, tmp_path)
    work = tmp_path / "theirs"
    work.mkdir()
    theirs_json = run_repart(work, defs, case.seed, "image.raw", "--empty=create", f"--size={case.image_size}",
                             "--split=yes")
    ours_json = json.loads((ours_dir / "repart-output.json").read_text())
    compare_images(nix, case, paths, ours_dir / "image.raw", work / "image.raw", sfdisk_json(str(ours_dir / "image.raw")),
                   sfdisk_json(str(work / "image.raw")), ours_json, theirs_json, tmp_path)
    split = ["image.c-1.raw", "image.d2.raw", "image.linux-generic.raw"]
    ours = sorted(p.name for p in ours_dir.iterdir() if p.name not in ("image.raw", "repart-output.json"))
    theirs = sorted(p.name for p in work.iterdir() if p.name != "image.raw")
    assert ours == split and theirs == split, (ours, theirs)
    for name, e in zip(split, [ours_json[1], ours_json[2], ours_json[0]]):
        assert os.path.getsize(ours_dir / name) == os.path.getsize(work / name) == e["raw_size"], name


# --- issue 14: what systemd-repart's own test suite accepts, and the formats
# 252 can make: squashfs (mksquashfs), swap (mkswap) and dm-verity
# (libcryptsetup).  erofs cannot be compared: 252 refuses it ("Don't know
# how to create read-only file system 'erofs'"). ---------------------------

def test_no_partitions_is_an_empty_gpt(nix, tmp_path):
    """No partitions: 252 writes an empty GPT in a 1044 KiB image and prints
    "[]"; so do we, byte for byte."""
    case = Case(parts=[])
    ours_dir, defs, _ = build_both(nix, case, tmp_path)
    work = tmp_path / "theirs"
    work.mkdir()
    theirs_json = run_repart(work, defs, case.seed, "image.raw", "--empty=create", "--size=auto")
    assert theirs_json == [] and (ours_dir / "repart-output.json").read_text() == "[]\n"
    ours, theirs = ours_dir / "image.raw", work / "image.raw"
    assert os.path.getsize(ours) == os.path.getsize(theirs) == 1044 * 1024
    assert ours.read_bytes() == theirs.read_bytes()
    assert "partitions" not in json.loads(subprocess.run(["sfdisk", "--json", ours], capture_output=True,
                                                         check=True).stdout)["partitiontable"]


def test_null_partition_uuid(nix, tmp_path):
    """UUID=null: the all-zero partition UUID, as 252 writes it."""
    case = Case(parts=[
        Part("10-a", {"Type": "linux-generic", "UUID": "null", "SizeMinBytes": "1M"}),
        Part("20-b", {"Type": "linux-generic", "SizeMinBytes": "1M"}),
    ])
    ours_json, table = side_by_side(nix, case, tmp_path)
    assert ours_json[0]["uuid"] == "00000000-0000-0000-0000-000000000000"
    assert table["partitions"][0]["uuid"] == "00000000-0000-0000-0000-000000000000"


def test_squashfs_swap_and_verity(nix, tmp_path):
    """A Verity= pair whose data partition is squashfs, and a swap area, made
    by 252 (mksquashfs, mkswap, libcryptsetup) and by us: the same table but
    for the pair's UUIDs (each side's root hash halves: the squashfs bytes
    differ, their files do not), the same swap area byte for byte, the same
    files in the squashfs (sqfsdiff), and hash trees of the same shape, salt
    and superblock UUID (both derived from the seed)."""
    case = Case(parts=[
        Part("10-usr", {"Type": "usr", "Format": "squashfs", "Verity": "data", "VerityMatchKey": "usr"},
             store_paths=["top"]),
        Part("20-usr-verity", {"Type": "usr-verity", "Verity": "hash", "VerityMatchKey": "usr"}),
        Part("30-swap", {"Type": "swap", "Format": "swap", "Label": "swap-label"}),
    ])
    ours_dir, defs, paths = build_both(nix, case, tmp_path)
    work = tmp_path / "theirs"
    work.mkdir()
    theirs_json = run_repart(work, defs, case.seed, "image.raw", "--empty=create", "--size=auto")
    ours_json = json.loads((ours_dir / "repart-output.json").read_text())
    ours_img, theirs_img = ours_dir / "image.raw", work / "image.raw"
    ot, tt = sfdisk_json(str(ours_img)), sfdisk_json(str(theirs_img))

    def root_halves(j):
        rh = j[1]["roothash"]
        return [str(uuid.UUID(hex=rh[:32])), str(uuid.UUID(hex=rh[32:]))]

    for j in (ours_json, theirs_json):
        # 252: the hash partition's root hash, null on the other rows.
        assert j[0]["roothash"] is None and j[1]["roothash"] and j[2]["roothash"] is None, j
        assert [e["uuid"] for e in j[:2]] == root_halves(j), j
    strip = lambda j: [{k: v for k, v in e.items() if k not in ("uuid", "roothash")} for e in j]
    assert_same(strip(ours_json), strip(theirs_json), "repart-output.json but the pair's UUIDs")
    for t in (ot, tt):
        for p in t["partitions"][:2]:
            p.pop("uuid")
    assert_same(ot, tt, "sfdisk --json but the pair's UUIDs")

    ss = ot["sectorsize"]
    parts = [(p["start"] * ss, p["size"] * ss) for p in ot["partitions"]]
    # The swap area: mkswap's bytes.
    o, t = (extract(img, *parts[2], tmp_path / f"{n}.swap") for n, img in (("o", ours_img), ("t", theirs_img)))
    assert o.read_bytes() == t.read_bytes(), "the swap areas differ"
    # The squashfs: the same files (sqfsdiff compares names, types, owners,
    # contents and link targets; -P: 252's root directory is its staging
    # directory, mode 0700).  Its only reports may be the inode kinds the
    # known differences explain: 252 keeps the hard link (an extended inode
    # with two links) and writes the sparse file's holes as data.
    o, t = (extract(img, *parts[0], tmp_path / f"{n}.sqfs") for n, img in (("o", ours_img), ("t", theirs_img)))
    p = subprocess.run(["sqfsdiff", "-P", "-a", o, "-b", t], capture_output=True, text=True)
    assert p.returncode in (0, 1) and not p.stderr, p.stdout + p.stderr
    unexplained = [line for line in p.stdout.splitlines()
                   if not re.fullmatch(r"/nix/store/[^/]+/share/(doc/README(\.hardlink)?|sparse) has an? "
                                       r"(extended|basic) type", line)]
    assert not unexplained, p.stdout
    # Modes, owners and sizes, as unsquashfs lists them (without times, and
    # without the root's mode).
    listings = [subprocess.run(["unsquashfs", "-lls", f], capture_output=True, text=True).stdout for f in (o, t)]
    listings = [[re.sub(r" \d{4}-\d\d-\d\d \d\d:\d\d ", " ", line) for line in s.splitlines()
                 if "squashfs-root/" in line] for s in listings]
    assert listings[0] == listings[1] and len(listings[0]) > 10, listings
    stats = [subprocess.run(["unsquashfs", "-stat", f], capture_output=True, text=True).stdout for f in (o, t)]
    # (Not "Xattrs": mksquashfs writes an empty xattr table, "Xattrs are
    # compressed"; we set the superblock's no-xattrs flag, "not stored".)
    def options(s):
        return [line for line in s.splitlines()
                if line.startswith(("Compression", "Block size", "Filesystem is exportable", "Duplicates",
                                    "Always-use-fragments", "Data is", "Fragments are", "Inodes are"))]

    assert options(stats[0]) == options(stats[1]) and options(stats[0]), stats
    # The hash trees: the same shape (hash type, algorithm, 512-byte blocks
    # as the sector size, block counts, size).  Not the superblock UUID and
    # salt: 252 draws them at random on every run (checked: two runs, two
    # root hashes), newer systemd-repart derives them from the seed, as we
    # do, so that the image is reproducible.
    dumps = []
    for n, img in (("o", ours_img), ("t", theirs_img)):
        h = extract(img, *parts[1], tmp_path / f"{n}.hash")
        out = subprocess.run(["veritysetup", "dump", h], capture_output=True, text=True, check=True).stdout
        dumps.append([line for line in out.splitlines()[1:] if not line.startswith(("UUID:", "Salt:"))])
    assert dumps[0] == dumps[1] and any("Data block size" in line for line in dumps[0]), dumps
