"""Reading a built GPT image back with tools we did not write, never by
mounting it (DESIGN.md §6):

- check_image(path): the whole image is clean for sfdisk --verify, sgdisk -v,
  systemd-dissect, e2fsck -fn (ext4), fsck.vfat -n (vfat), fsck.erofs
  (erofs), unsquashfs -stat/-lls (squashfs), swaplabel (swap); returns what
  sfdisk and blkid say about it, for the tests to compare with the spec.
  Strict: a tool that prints anything but what it prints for a clean image
  fails it, whatever its exit status.
- Every image the suite builds is checked: tests call check_image() where
  they read an image back, and after every test that passed, conftest.py
  (the autouse fixture every_image_is_checked) runs check_unchecked() over
  the outputs of the nix-build / nix build commands the test ran and over
  its tmp_path (where the builder run by hand writes), for every image of
  ours (a GPT *.raw beside repart-output.json) not yet checked.
- ext4_dump(): the file system's tree, through `debugfs -R 'rdump …'`.
- vfat_tree(): the file system's files, through `mdir -/ -b` and `mtype`.
- erofs_extract(), squashfs_extract(): the file system's tree, through
  `fsck.erofs --extract` and `unsquashfs -d`.
- assert_same_tree(): a dumped tree has the bytes, modes, owners, times and
  symlink targets of the store paths it was made from.
"""
import hashlib
import json
import os
import re
import stat
import struct
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

MIB = 1024 * 1024

# Partition types that systemd-dissect gives a designator (the Discoverable
# Partitions Specification), by the canonical names the spec uses.
DISSECT_TYPES = {
    "c12a7328-f81f-11d2-ba4b-00a0c93ec93b": "esp",
    "bc13c2ff-59e6-4262-a352-b275fd6f7172": "xbootldr",
    "4f68bce3-e8cd-4db1-96e7-fbcaf984b709": "root",
    "8484680c-9521-48c6-9c11-b0720656f69e": "usr",
    "933ac7e1-2eb4-4f13-b844-0e14e2aef915": "home",
    "3b8f8425-20e0-4f3b-907f-1a25a76f98e8": "srv",
    "4d21b016-b534-45c2-a9fb-5c16e091fd2d": "var",
    "7ec6f557-3bc5-4aca-b293-16ef5df639d1": "tmp",
    "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f": "swap",
}
GENERIC = "0fc63daf-8483-4772-8e79-3d69d8477de4"


def run(*args, check=True, env=None, **kw):
    e = dict(os.environ)
    e.update({"LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "MTOOLS_SKIP_CHECK": "1", "SYSTEMD_PAGER": "",
              "SYSTEMD_LOG_COLOR": "0"})
    if env:
        e.update(env)
    p = subprocess.run([str(a) for a in args], capture_output=True, env=e, timeout=120, **kw)
    if check:
        assert p.returncode == 0, (args, p.returncode, p.stdout[-3000:], p.stderr[-3000:])
    return p


def text(p):
    return p.stdout.decode("utf-8", "replace") + p.stderr.decode("utf-8", "replace")


@dataclass
class Partition:
    index: int            # 0-based position in the table
    node: str
    start: int            # sectors
    sectors: int
    type_uuid: str        # lower case
    uuid: str             # lower case
    label: str
    flags: int            # GPT attribute bits
    offset: int           # bytes
    size: int             # bytes
    fstype: Optional[str] = None
    fs_uuid: Optional[str] = None
    fs_label: Optional[str] = None
    blkid: dict = field(default_factory=dict)


@dataclass
class Image:
    path: Path
    sector_size: int
    disk_uuid: str
    first_lba: int
    last_lba: int
    partitions: list
    sfdisk: dict
    dissect: dict

    def by_label(self, label):
        [p] = [p for p in self.partitions if p.label == label]
        return p


def gpt_sector_size(path) -> int:
    """The sector size the GPT header was written for: "EFI PART" at LBA 1."""
    with open(path, "rb") as f:
        for ss in (512, 1024, 2048, 4096):
            f.seek(ss)
            if f.read(8) == b"EFI PART":
                return ss
    raise AssertionError(f"{path}: no GPT header at LBA 1 for any sector size")


@contextmanager
def block_device(path, sector_size):
    """The image itself for 512-byte sectors; for others a read-only loop
    device with that logical sector size (sfdisk, sgdisk and
    systemd-dissect take the sector size from the device, 512 for a file)."""
    if sector_size == 512:
        yield str(path)
        return
    dev = run("losetup", "--sector-size", sector_size, "--read-only", "--partscan", "--find", "--show",
              path).stdout.decode().strip()
    try:
        yield dev
    finally:
        run("losetup", "--detach", dev, check=False)


def parse_sfdisk_attrs(s: str) -> int:
    """sfdisk's "attrs" string ("RequiredPartition GUID:59,60") as bits."""
    bits = 0
    names = {"RequiredPartition": 0, "NoBlockIOProtocol": 1, "LegacyBIOSBootable": 2}
    for tok in (s or "").split():
        if tok in names:
            bits |= 1 << names[tok]
        elif tok.startswith("GUID:"):
            for b in tok[5:].split(","):
                bits |= 1 << int(b)
        else:
            raise AssertionError(f"unknown sfdisk attribute {tok!r} in {s!r}")
    return bits


def extract(image, offset, size, dest):
    """Copies bytes [offset, offset+size) of image to dest, keeping holes."""
    with open(image, "rb") as src, open(dest, "wb") as dst:
        dst.truncate(size)
        fd, pos, end = src.fileno(), offset, offset + size
        while pos < end:
            try:
                data = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:
                break
            if data >= end:
                break
            hole = min(os.lseek(fd, data, os.SEEK_HOLE), end)
            src.seek(data)
            dst.seek(data - offset)
            left = hole - data
            while left:
                chunk = src.read(min(left, 4 * MIB))
                assert chunk, "short read"
                dst.write(chunk)
                left -= len(chunk)
            pos = hole
    return Path(dest)


def range_sha256(path, offset, size):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        f.seek(offset)
        left = size
        while left:
            chunk = f.read(min(left, 4 * MIB))
            assert chunk, f"{path} ends before {offset + size}"
            h.update(chunk)
            left -= len(chunk)
    return h.hexdigest()


def file_sha256(path):
    return range_sha256(path, 0, os.path.getsize(path))


def _unescape(s: str) -> str:
    b = s.encode("utf-8", "surrogateescape")
    b = re.sub(rb"\\x([0-9a-fA-F]{2})", lambda m: bytes([int(m.group(1), 16)]), b)
    return b.decode("utf-8", "replace")


def blkid(path, offset, size) -> dict:
    """What `blkid -p -O offset -S size` finds there: {"TYPE", "UUID",
    "LABEL", "BLOCK_SIZE", …}; {} when nothing."""
    p = run("blkid", "-p", "-o", "udev", "-O", offset, "-S", size, path, check=False)
    # 2: nothing found (a partition without a file system).
    assert p.returncode in (0, 2), text(p)
    raw = {}
    for line in p.stdout.decode("utf-8", "surrogateescape").splitlines():
        k, _, v = line.partition("=")
        raw[k] = v
    out = {}
    for k, v in raw.items():
        if not k.startswith("ID_FS_") or k.endswith("_ENC"):
            continue
        key = k[len("ID_FS_"):]
        out[key] = _unescape(raw[k + "_ENC"]) if k + "_ENC" in raw else v
    return out


# All that e2fsck -fn prints for a clean file system: its version, the five
# passes, the summary.  Anything else is a problem it found (or a question
# it answered "no" to), whatever its exit status.
E2FSCK_CLEAN = re.compile(r"e2fsck \d[\d.]* \(.*\)|Pass [1-5]: Checking [a-z ,]+|"
                          r".*: \d+/\d+ files \(\d+\.\d% non-contiguous\), \d+/\d+ blocks")
# The same for fsck.vfat -n (without -v): its version and the summary.
FSCK_VFAT_CLEAN = re.compile(r"fsck\.fat \d[\d.]* \(.*\)|.*: \d+ files?, \d+/\d+ clusters")


def assert_only(pattern, output: str, what: str):
    lines = [line for line in output.splitlines() if line.strip()]
    unexpected = [line for line in lines if not pattern.fullmatch(line)]
    assert lines and not unexpected, f"{what} reported:\n" + "\n".join(unexpected) + f"\n\n(all of it:)\n{output}"


def check_ext4(path, part: Partition):
    spec = f"{path}?offset={part.offset}"
    p = run("e2fsck", "-fn", spec, check=False)
    assert p.returncode == 0, f"e2fsck -fn {spec}: exit {p.returncode}\n{text(p)}"
    assert_only(E2FSCK_CLEAN, text(p), f"e2fsck -fn {spec}")
    sb = run("dumpe2fs", "-h", spec).stdout.decode()
    blocks = int(re.search(r"^Block count:\s+(\d+)", sb, re.M).group(1))
    bsize = int(re.search(r"^Block size:\s+(\d+)", sb, re.M).group(1))
    # The file system fills its partition, not more.
    assert blocks * bsize == part.size, (blocks, bsize, part.size)
    assert re.search(r"^Filesystem state:\s+clean$", sb, re.M), sb


def check_vfat(path, part: Partition, scratch: Path):
    f = extract(path, part.offset, part.size, scratch / f"partition-{part.index + 1}.vfat")
    try:
        p = run("fsck.vfat", "-n", f, check=False)
        assert p.returncode == 0, f"fsck.vfat -n on partition {part.index + 1}: exit {p.returncode}\n{text(p)}"
        assert_only(FSCK_VFAT_CLEAN, text(p), f"fsck.vfat -n on partition {part.index + 1}")
        with open(f, "rb") as fh:
            boot = fh.read(512)
        bytes_per_sector = struct.unpack_from("<H", boot, 11)[0]
        total = struct.unpack_from("<H", boot, 19)[0] or struct.unpack_from("<I", boot, 32)[0]
        assert total * bytes_per_sector <= part.size, (total, bytes_per_sector, part.size)
        assert total * bytes_per_sector > part.size - MIB, (total, bytes_per_sector, part.size)
        assert boot[510:512] == b"\x55\xaa"
    finally:
        f.unlink()


def check_erofs(path, part: Partition, scratch: Path):
    """fsck.erofs finds the partition's EROFS clean (erofs-utils 1.5 exits 0
    after a bad superblock checksum: its <E>/<W> lines count), and the file
    system fits its partition."""
    f = extract(path, part.offset, part.size, scratch / f"partition-{part.index + 1}.erofs")
    try:
        p = run("fsck.erofs", f, check=False)
        out = text(p)
        assert p.returncode == 0 and "<E>" not in out and "<W>" not in out, \
            f"fsck.erofs on partition {part.index + 1}: exit {p.returncode}\n{out}"
        sb = run("dump.erofs", "-s", f).stdout.decode()
        blocks = int(re.search(r"^Filesystem blocks:\s+(\d+)", sb, re.M).group(1))
        assert 0 < blocks * 4096 <= part.size, (blocks, part.size)
    finally:
        f.unlink()


def check_squashfs(path, part: Partition, scratch: Path):
    """unsquashfs reads the superblock and every directory (-lls), and the
    file system fits its partition."""
    f = extract(path, part.offset, part.size, scratch / f"partition-{part.index + 1}.squashfs")
    try:
        p = run("unsquashfs", "-stat", f, check=False)
        assert p.returncode == 0, f"unsquashfs -stat on partition {part.index + 1}: {text(p)}"
        used = int(re.search(r"^Filesystem size (\d+) bytes", text(p), re.M).group(1))
        assert used <= part.size, (used, part.size)
        p = run("unsquashfs", "-lls", f, check=False)
        assert p.returncode == 0 and "FATAL" not in text(p), text(p)
    finally:
        f.unlink()


def check_swap(path, part: Partition, scratch: Path):
    """swaplabel reads the swap header (its label and UUID, which blkid
    showed too); the area is the whole partition, in 4096-byte pages."""
    f = extract(path, part.offset, part.size, scratch / f"partition-{part.index + 1}.swap")
    try:
        out = run("swaplabel", f).stdout.decode()
        m = dict(re.findall(r"^(LABEL|UUID):\s*(.*)$", out, re.M))
        assert m.get("UUID") == part.blkid.get("UUID"), (out, part.blkid)
        assert m.get("LABEL", "") == part.blkid.get("LABEL", ""), (out, part.blkid)
        with open(f, "rb") as fh:
            page = fh.read(4096)
        assert page[4086:4096] == b"SWAPSPACE2", page[4086:]
        last_page = struct.unpack_from("<I", page, 1024 + 4)[0]
        assert last_page == part.size // 4096 - 1, (last_page, part.size)
    finally:
        f.unlink()


def verity_verify(path, data: Partition, hashp: Partition, roothash: str, scratch: Path, flip=None):
    """`veritysetup verify` of the data partition against the hash
    partition's tree and `roothash`; returns the CompletedProcess.  flip:
    an offset in the data partition whose byte is inverted first (in the
    copy)."""
    d = extract(path, data.offset, data.size, scratch / f"partition-{data.index + 1}.verity-data")
    h = extract(path, hashp.offset, hashp.size, scratch / f"partition-{hashp.index + 1}.verity-hash")
    try:
        if flip is not None:
            with open(d, "r+b") as f:
                f.seek(flip)
                b = f.read(1)
                f.seek(flip)
                f.write(bytes([b[0] ^ 0xff]))
        return run("veritysetup", "verify", d, h, roothash, check=False)
    finally:
        d.unlink()
        h.unlink()


def check_verity(path, parts, scratch: Path):
    """Each dm-verity hash partition verifies its data partition with the
    root hash repart-output.json gives both of them, whose halves are their
    partition UUIDs unless UUID= set them (then the test checks)."""
    hashes = [p for p in parts if p.fstype == "DM_verity_hash"]
    if not hashes:
        return
    out = json.loads((Path(path).parent / "repart-output.json").read_text())
    by_uuid = {e["uuid"]: e for e in out}
    for h in hashes:
        rh = by_uuid[h.uuid].get("roothash")
        assert rh and re.fullmatch(r"[0-9a-f]{64}", rh), by_uuid[h.uuid]
        # The data partition: the one whose UUID is the root hash's first
        # half (unless UUID= set it: then the only other Verity partition
        # type... the test knows; here the halves rule).
        cands = [p for p in parts if p is not h and p.uuid.replace("-", "") == rh[:32]]
        if not cands:
            continue  # UUID= given to the data partition; the test checks it
        [data] = cands
        p = verity_verify(path, data, h, rh, scratch)
        assert p.returncode == 0, f"veritysetup verify {data} {h} {rh}: {text(p)}"


def check_dissect(dev, parts):
    """systemd-dissect lists the partitions it knows, with their file systems."""
    p = run("systemd-dissect", "--read-only", "--json=short", dev, check=False)
    assert p.returncode == 0, f"systemd-dissect {dev}: {text(p)}"
    dissect = json.loads(p.stdout)
    mounts = {m["partition_uuid"]: m for m in dissect["mounts"]}
    by_uuid = {part.uuid: part for part in parts}
    assert set(mounts) <= set(by_uuid), (mounts, by_uuid)
    # systemd-dissect takes /usr of the root's architecture only: beside a
    # root-arm64 (the only root here), a usr-x86-64 is left out.
    foreign_root = any(m["designator"] == "root" and m.get("architecture") not in (None, "x86-64")
                       for m in dissect["mounts"])
    for part in parts:
        if foreign_root and DISSECT_TYPES.get(part.type_uuid) in ("root", "usr"):
            continue
        # NoAuto (bit 63) asks systemd-dissect to leave a partition out.
        if part.type_uuid in DISSECT_TYPES and not part.flags & (1 << 63):
            assert part.uuid in mounts, f"systemd-dissect does not list {part}: {dissect}"
            m = mounts[part.uuid]
            assert m["designator"] == DISSECT_TYPES[part.type_uuid], m
    for u, m in mounts.items():
        # An ESP without a file system (nothing to put in it): systemd-dissect
        # takes FAT for granted there (dissect-image.c sets fstype "vfat" for
        # the ESP type; for XBOOTLDR it probes, and finds nothing).
        implied = m["designator"] == "esp" and by_uuid[u].fstype is None
        assert m["fstype"] == ("vfat" if implied else by_uuid[u].fstype), (m, by_uuid[u])
        assert m["partno"] == by_uuid[u].index + 1, m
    return dissect


def check_image(path, scratch: Path) -> Image:
    """Every tool agrees that the image at `path` is clean; returns what
    they read from it.  `scratch` is a directory for a partition extracted
    for fsck.vfat (removed again)."""
    path = Path(path)
    scratch = Path(scratch)
    ss = gpt_sector_size(path)
    assert path.stat().st_size % ss == 0
    with block_device(path, ss) as dev:
        p = run("sfdisk", "--verify", dev, check=False)
        out = text(p)
        assert p.returncode == 0 and "No errors detected" in out, out
        assert "mismatch" not in out.lower(), out

        p = run("sgdisk", "-v", dev, check=False)
        out = text(p)
        assert p.returncode == 0, out
        assert "No problems found" in out, out
        # sgdisk invents an empty table when it finds none and then "verifies" it.
        assert "Creating new GPT entries" not in out, out
        assert not re.search(r"Problem:|Invalid|corrupt|damaged|mismatch", out), out
        # Cautions other than sgdisk's advice to end partitions on 8 KiB
        # (systemd-repart's grain is 4 KiB, so its images get it too).
        cautions = re.findall(r"Caution: (.*)", out)
        assert all(re.match(r"Partition \d+ doesn't end on a \d+-sector boundary", c) for c in cautions), out

        table = run("sfdisk", "--json", dev).stdout.decode()
        table = json.loads(table)["partitiontable"]
        assert table["label"] == "gpt", table
        assert table["sectorsize"] == ss, table

        parts = []
        for i, e in enumerate(table.get("partitions", [])):
            parts.append(Partition(
                index=i, node=e["node"], start=e["start"], sectors=e["size"],
                type_uuid=e["type"].lower(), uuid=e["uuid"].lower(), label=e.get("name", ""),
                flags=parse_sfdisk_attrs(e.get("attrs", "")),
                offset=e["start"] * ss, size=e["size"] * ss))
        # Partitions inside the usable area, in order, not overlapping.
        end = table["firstlba"]
        for part in parts:
            assert part.start >= end, (part, end)
            end = part.start + part.sectors
        assert end <= table["lastlba"] + 1, (end, table["lastlba"])

        for part in parts:
            part.blkid = blkid(path, part.offset, part.size)
            part.fstype = part.blkid.get("TYPE")
            part.fs_uuid = part.blkid.get("UUID")
            part.fs_label = part.blkid.get("LABEL")
            if part.fstype == "ext4":
                check_ext4(path, part)
            elif part.fstype == "vfat":
                check_vfat(path, part, scratch)
            elif part.fstype == "erofs":
                check_erofs(path, part, scratch)
            elif part.fstype == "squashfs":
                check_squashfs(path, part, scratch)
            elif part.fstype == "swap":
                check_swap(path, part, scratch)
            elif part.fstype == "DM_verity_hash":
                pass  # check_verity() below, with its data partition
            else:
                assert part.fstype is None, f"partition {part.index + 1}: unexpected {part.fstype}"

        check_verity(path, parts, scratch)

        # systemd-dissect 252 takes only images with a root or /usr partition,
        # and one that has a file system it can mount (it mounts it to read
        # os-release; a root formatted vfat it cannot mount where the kernel
        # has no vfat, as here: "Failed to acquire image metadata: No such
        # device").
        dissect = None
        roots = [part for part in parts
                 if DISSECT_TYPES.get(part.type_uuid) in ("root", "usr") and not part.flags & (1 << 63)]
        if roots and all(part.fstype and part.fstype != "vfat" for part in roots):
            dissect = check_dissect(dev, parts)

    CHECKED.add(os.path.realpath(path))
    return Image(path=path, sector_size=ss, disk_uuid=table["id"].lower(), first_lba=table["firstlba"],
                 last_lba=table["lastlba"], partitions=parts, sfdisk=table, dissect=dissect)


# ---- every image a test builds is checked ----------------------------------

# The images check_image() found clean in this session (real paths).
CHECKED = set()


def has_gpt(path) -> bool:
    try:
        gpt_sector_size(path)
        return True
    except (AssertionError, OSError):
        return False


def our_images(directory):
    """The images our builder left under `directory`: *.raw files with a
    GPT beside a repart-output.json (split files have no GPT; systemd-repart,
    the peer, writes no repart-output.json)."""
    for dirpath, dirs, files in os.walk(directory):
        if "repart-output.json" in files:
            for f in sorted(files):
                p = os.path.join(dirpath, f)
                if f.endswith(".raw") and os.path.isfile(p) and has_gpt(p):
                    yield p


def check_unchecked(directories, scratch: Path):
    """check_image() on every image of ours under `directories` that no test
    has checked yet (conftest.py calls this after each test that passed)."""
    for d in directories:
        for image in our_images(d):
            if os.path.realpath(image) not in CHECKED:
                check_image(image, scratch)


# ---- reading the files back ------------------------------------------------

def ext4_dump(path, part: Partition, dest: Path, inside="/") -> Path:
    """`debugfs -R 'rdump INSIDE DEST'`: the directory `inside` of the
    partition's ext4, with modes, owners and times, written under dest."""
    dest.mkdir(parents=True, exist_ok=True)
    p = run("debugfs", "-R", f'rdump "{inside}" "{dest}"', f"{path}?offset={part.offset}")
    assert "rdump:" not in p.stderr.decode(), p.stderr.decode()
    return dest


def ext4_stat(path, part: Partition, inside: str) -> str:
    return run("debugfs", "-R", f'stat "{inside}"', f"{path}?offset={part.offset}").stdout.decode()


def ext4_cat(path, part: Partition, inside: str) -> bytes:
    return run("debugfs", "-R", f'cat "{inside}"', f"{path}?offset={part.offset}").stdout


def vfat_listing(path, part: Partition) -> dict:
    """{"/EFI/BOOT/BOOTX64.EFI": "file", "/EFI": "dir", …}: `mdir -/ -b` of
    the partition's FAT, through `image@@offset`."""
    listing = run("mdir", "-/", "-b", "-i", f"{path}@@{part.offset}", "::/").stdout.decode("utf-8")
    out = {}
    for line in listing.splitlines():
        assert line.startswith("::/"), line
        name = line[2:]
        out[name.rstrip("/")] = "dir" if name.endswith("/") else "file"
    return out


def vfat_read(path, part: Partition, name: str) -> bytes:
    # mtools reads each component as a pattern, where "[" opens a range and
    # "\\" quotes ("*", "?" and "\\" are not in FAT names).
    quoted = re.sub(r"([\[\]])", r"\\\1", name)
    return run("mtype", "-i", f"{path}@@{part.offset}", "::" + quoted).stdout


def vfat_tree(path, part: Partition) -> dict:
    """{"/EFI/BOOT/BOOTX64.EFI": bytes, "/EFI": None, …} of the partition's
    FAT, through mdir and mtype on `image@@offset`."""
    return {name: (vfat_read(path, part, name) if kind == "file" else None)
            for name, kind in vfat_listing(path, part).items()}


def store_tree_for_vfat(source: str, target: str) -> dict:
    """What vfat_tree() must read for `contents.<target>.source = source`."""
    tree = {}
    parts = target.strip("/").split("/")
    for i in range(1, len(parts)):
        tree["/" + "/".join(parts[:i])] = None
    if os.path.isdir(source) and not os.path.islink(source):
        if target.rstrip("/"):  # "/" itself is the root, not an entry
            tree[target.rstrip("/")] = None
        for dirpath, dirs, files in os.walk(source):
            rel = os.path.relpath(dirpath, source)
            base = target.rstrip("/") + ("" if rel == "." else "/" + rel)
            for d in dirs:
                tree[f"{base}/{d}"] = None
            for f in files:
                tree[f"{base}/{f}"] = Path(dirpath, f).read_bytes()
    else:
        tree[target] = Path(source).read_bytes()
    return tree


def assert_same_tree(store_path: str, dumped: Path, times=True):
    """The dump of store_path has the same entries, bytes, modes, owner
    root:root, mtimes (unless not `times`) and symlink targets as the store
    has."""
    store_path = Path(store_path)

    def check(a: Path, b: Path):
        sa, sb = os.lstat(a), os.lstat(b)
        assert stat.S_IFMT(sa.st_mode) == stat.S_IFMT(sb.st_mode), (a, b, oct(sa.st_mode), oct(sb.st_mode))
        assert (sb.st_uid, sb.st_gid) == (0, 0), (b, sb.st_uid, sb.st_gid)
        if stat.S_ISLNK(sa.st_mode):
            # rdump leaves a symlink's own mode and times to the host.
            assert os.readlink(a) == os.readlink(b), (a, os.readlink(a), os.readlink(b))
            return
        assert stat.S_IMODE(sa.st_mode) == stat.S_IMODE(sb.st_mode), (b, oct(sa.st_mode), oct(sb.st_mode))
        if times:
            assert sa.st_mtime == sb.st_mtime, (b, sa.st_mtime, sb.st_mtime)
        if stat.S_ISREG(sa.st_mode):
            assert sa.st_size == sb.st_size, (b, sa.st_size, sb.st_size)
            assert file_sha256(a) == file_sha256(b), b
        elif stat.S_ISDIR(sa.st_mode):
            na, nb = sorted(os.listdir(a)), sorted(os.listdir(b))
            assert na == nb, (b, na, nb)
            for n in na:
                check(a / n, b / n)
        else:
            raise AssertionError(f"{a}: unexpected file type")

    check(store_path, dumped)


def erofs_extract(path, part: Partition, dest: Path, scratch: Path) -> Path:
    """`fsck.erofs --extract=DEST --preserve`: the partition's EROFS, with
    modes, owners and times, written at dest (which must not exist)."""
    f = extract(path, part.offset, part.size, scratch / f"partition-{part.index + 1}.erofs-x")
    try:
        p = run("fsck.erofs", f"--extract={dest}", "--preserve", f, check=False)
        out = text(p)
        assert p.returncode == 0 and "<E>" not in out and "<W>" not in out, out
    finally:
        f.unlink()
    return dest


def squashfs_extract(path, part: Partition, dest: Path, scratch: Path) -> Path:
    """`unsquashfs -d DEST`: the partition's SquashFS, with modes, owners
    and times, written at dest (which must not exist)."""
    f = extract(path, part.offset, part.size, scratch / f"partition-{part.index + 1}.squashfs-x")
    try:
        p = run("unsquashfs", "-q", "-n", "-d", dest, f, check=False)
        assert p.returncode == 0, text(p)
    finally:
        f.unlink()
    return dest
