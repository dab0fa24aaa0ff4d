"""Faults (issue 7): the builder program, run as Nix runs it (.attrs.json,
--out), when the output disk is full, when a source is missing, and when it
is killed part-way.  Each ends in a non-zero exit and a message naming what
failed, and never leaves a file named like the finished image (`image.raw`),
only at most the `image.raw.partial` the builder writes before renaming.

And (issue 11) what the builder must not trust or leave: an .attrs.json the
evaluator could not have made (refused, naming the field, nothing written
inside or outside $out), a name already in the output directory, sources
that change while they are copied, processes that would outlive a builder
that is killed or timed out.
"""
import copy
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid as uuidlib
from pathlib import Path

import pytest

import imagecheck
import uuids
from conftest import BUILDER
from builds import Built, builder_attrs, instantiate, run_builder

BIG = 24 * 1024 * 1024
# A store path name in a store of a test's own ($NIX_STORE): Nix's base32
# has no e, o, u, t.
SCRATCH_HASH = "0123456789abcdfghijklmnpqrsvwxyz"

BODY = """\
builtins.repartImage {
  name = "image";
  partitions = {
    "esp" = {
      contents."/EFI/BOOT/BOOTX64.EFI".source = ./bootx64.efi;
      repartConfig = { Type = "esp"; Format = "vfat"; SizeMinBytes = "96M"; };
    };
    "root" = {
      contents."/big".source = ./big;
      repartConfig = { Type = "root"; Format = "ext4"; Minimize = "guess"; };
    };
  };
}
"""


def attrs_for(nix, out_dir: Path) -> dict:
    """The .attrs.json of BODY (no storePaths: no closures to export)."""
    with open(nix.dir / "big", "wb") as f:
        f.write(os.urandom(BIG))   # incompressible, really written
    _, _, _, attrs = instantiate(nix, "image.nix", BODY)
    attrs = dict(attrs)
    attrs["outputs"] = {"out": str(out_dir)}
    return attrs


def builder(attrs: dict, tmp_path: Path, out: Path):
    attrs_file = tmp_path / "attrs.json"
    attrs_file.write_text(json.dumps(attrs))
    return run_builder(["--attrs", str(attrs_file), "--out", str(out)], tmp_path, tmp_path / "tmp", 0o022)


def finished_looking(out: Path):
    """Files in out that a user would take for a result."""
    if not out.exists():
        return []
    return sorted(n for n in os.listdir(out) if not n.endswith(".partial"))


@pytest.fixture
def small_tmpfs(tmp_path):
    mnt = tmp_path / "full"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (needs root): {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_no_space_left(nix, tmp_path, small_tmpfs):
    out = small_tmpfs / "out"
    r = builder(attrs_for(nix, out), tmp_path, out)
    assert r.returncode != 0, r.stderr
    assert "No space left on device" in r.stderr or "space" in r.stderr.lower(), r.stderr
    assert finished_looking(out) == [], r.stderr
    for crash in ("AddressSanitizer", "runtime error", "Segmentation fault", "Aborted"):
        assert crash not in r.stderr, r.stderr


def test_missing_source(nix, tmp_path):
    out = tmp_path / "out"
    attrs = attrs_for(nix, out)
    missing = "/nix/store/eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee-gone"
    for p in attrs["repartSpec"]["partitions"]:
        for c in p["contents"]:
            c["source"] = missing
    r = builder(attrs, tmp_path, out)
    assert r.returncode != 0, r.stderr
    assert missing in r.stderr, r.stderr
    assert finished_looking(out) == [], r.stderr


def test_unreadable_source(nix, tmp_path):
    """A source the builder may not read (it runs as a build user, never
    root, under a Nix daemon): as nobody, outside tmp_path, whose parents only
    root may enter; as another user, the check is the file mode."""
    work = Path(tempfile.mkdtemp(prefix="nri-unreadable-"))
    try:
        work.chmod(0o777)
        out = work / "out"
        attrs = attrs_for(nix, out)
        # A store of the test's own (the builder's is $NIX_STORE), where a
        # file may be unreadable.
        store = work / "store"
        store.mkdir()
        store.chmod(0o755)
        secret = store / f"{SCRATCH_HASH}-secret"
        secret.write_text("x")
        secret.chmod(0)
        efi = store / f"{SCRATCH_HASH}-bootx64.efi"
        efi.write_text("not really an EFI program\n")
        efi.chmod(0o444)
        attrs.pop("repartBundle", None)
        attrs["repartSpec"]["storeDir"] = str(store)
        for p in attrs["repartSpec"]["partitions"]:
            for c in p["contents"]:
                c["source"] = str(secret if c["target"] == "/big" else efi)
        attrs_file = work / "attrs.json"
        attrs_file.write_text(json.dumps(attrs))
        attrs_file.chmod(0o644)
        cmd = [str(BUILDER), "--attrs", str(attrs_file), "--out", str(out)]
        if os.geteuid() == 0:
            cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=work,
                           env={"TMPDIR": str(work), "HOME": "/homeless-shelter", "NIX_STORE": str(store)})
        assert r.returncode != 0, r.stderr
        assert str(secret) in r.stderr and "Permission denied" in r.stderr, r.stderr
        assert finished_looking(out) == [], r.stderr
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_killed_part_way(nix, tmp_path):
    """SIGKILL at delays spread over the time an uninterrupted run takes
    (fixed delays missed a builder that got faster).  The image is written
    as image.raw.partial and renamed: whatever the moment of the kill, an
    image.raw that exists is the whole image (the same bytes as an
    uninterrupted run), and repart-output.json never appears without it.
    (Under Nix a killed builder is a failed build, and Nix removes $out
    anyway.)"""
    attrs = attrs_for(nix, tmp_path / "unused")
    attrs_file = tmp_path / "attrs.json"
    attrs_file.write_text(json.dumps(attrs))

    def start(out):
        return subprocess.Popen([str(BUILDER), "--attrs", str(attrs_file), "--out", str(out)], cwd=tmp_path,
                                env={"TMPDIR": str(tmp_path), "HOME": "/homeless-shelter"},
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    ref = tmp_path / "reference"
    started = time.monotonic()
    p = start(ref)
    _, err = p.communicate(timeout=300)
    took = time.monotonic() - started
    assert p.returncode == 0, err
    whole = imagecheck.file_sha256(ref / "image.raw")

    killed_mid_way = 0
    for i, delay in enumerate([0.0, 0.01] + [took * k / 16 for k in range(1, 20)]):
        out = tmp_path / f"out-{i}"
        p = start(out)
        time.sleep(delay)
        p.send_signal(signal.SIGKILL)
        _, err = p.communicate(timeout=300)
        names = finished_looking(out)
        if "image.raw" in names:
            assert imagecheck.file_sha256(out / "image.raw") == whole, (delay, "a truncated image.raw")
        else:
            assert "repart-output.json" not in names, (delay, names)
            assert p.returncode == -signal.SIGKILL, err
            if out.exists() and any(n.endswith(".partial") for n in os.listdir(out)):
                killed_mid_way += 1
    assert killed_mid_way > 0, "the builder was never caught writing the image"


# ---- the builder refuses what the evaluator refuses (issue 11) -----------------

HAND_BODY = """\
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
      repartConfig = { Type = "root"; Format = "ext4"; Minimize = "guess"; CopyFiles = [ "${sys.hello}/bin:/usr/bin" ];
                       MakeDirectories = [ "/var" ]; };
    };
  };
}
"""


@pytest.fixture
def hand_attrs(nix, tmp_path):
    """The .attrs.json of HAND_BODY, as Nix would write it (closures and
    outputs.out = tmp_path/out), and a function running the builder on a
    changed copy of it as Nix runs it (from .attrs.json, no --out)."""
    f, drv, image, attrs = instantiate(nix, "image.nix", HAND_BODY)
    r = nix.build(nix.dir / "system.nix", "-A", "hello")
    assert r.returncode == 0, r.stderr
    b = Built(out=tmp_path / "unused", file=f, drv=drv, image=image, spec=attrs["repartSpec"], attrs=attrs, log="")
    base = builder_attrs(nix, b, tmp_path / "work" / "out")

    def run(change=None, env=None):
        a = copy.deepcopy(base)
        if change:
            change(a)
        work = tmp_path / "work"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        (work / ".attrs.json").write_text(json.dumps(a))
        return run_builder([], work, tmp_path / "tmp", 0o022, env=env)
    return base, run


def part(a, i):
    return a["repartSpec"]["partitions"][i]


def more_partitions(a, n):
    """n partitions like the ESP, each a valid one on its own."""
    esp = part(a, 0)
    parts = []
    for i in range(n):
        p = copy.deepcopy(esp)
        p["id"] = f"p{i:03d}"
        p["label"] = f"p{i:03d}"
        p["partno"] = i
        p["uuid"] = str(uuidlib.UUID(int=i + 1, version=4))
        p["fsUuid"] = uuids.fs_uuid(p["uuid"])
        p["vfatVolumeId"] = p["fsUuid"][:8]
        p["splitName"] = None
        parts.append(p)
    a["repartSpec"]["partitions"] = parts
    a["repartSpec"]["split"] = False


def setp(i, **kv):
    return lambda a: part(a, i).update(kv)


def sets(**kv):
    return lambda a: a["repartSpec"].update(kv)


STORE_FILE = f"/nix/store/{SCRATCH_HASH}-x"

# (id, change, what the message names)
REFUSED_SPECS = [
    ("name-escapes", sets(name="../../escaped", imageFile="../../escaped.raw"), "repartSpec.name"),
    ("version-escapes", sets(version="1/../../../escaped", imageFile="image_1/../../../escaped.raw"),
     "repartSpec.version"),
    ("image-file", sets(imageFile="other.raw"), "repartSpec.imageFile"),
    ("split-name", setp(0, splitName="/../../escaped"), "partitions[0].splitName"),
    ("target-not-normal", lambda a: part(a, 0)["contents"][0].update(target="/EFI/../../x"),
     "partitions[0].contents[0].target"),
    ("source-outside-store", lambda a: part(a, 0)["contents"][0].update(source="/etc/hostname"),
     "partitions[0].contents[0].source"),
    ("source-dot-dot", lambda a: part(a, 0)["contents"][0].update(source=STORE_FILE + "/../../../etc/hostname"),
     "partitions[0].contents[0].source"),
    ("copy-files-source", lambda a: part(a, 1)["copyFiles"][0].update(source="/etc"),
     "partitions[1].copyFiles[0].source"),
    ("make-directories", setp(1, makeDirectories=["/var/../.."]), "partitions[1].makeDirectories[0]"),
    ("store-path-inside", lambda a: part(a, 1).update(storePaths=[part(a, 1)["storePaths"][0] + "/bin"]),
     "partitions[1].storePaths[0]"),
    ("store-prefix", setp(1, nixStorePrefix="/nix/../.."), "partitions[1].nixStorePrefix"),
    ("format-null-with-contents", setp(0, format=None), "partitions[0].format"),
    ("size-min-above-max", setp(0, sizeMinBytes=100 * 1024 * 1024, sizeMaxBytes=50 * 1024 * 1024),
     "partitions[0].sizeMinBytes"),
    ("size-not-rounded", setp(0, sizeMinBytes=40 * 1024 * 1024 + 1), "partitions[0].sizeMinBytes"),
    ("minimize-best", setp(0, minimize="best"), "partitions[0].minimize"),
    ("flags-disagree", setp(1, flags="0x1000000000000000"), "partitions[1].flags"),
    ("fs-uuid", setp(0, fsUuid="11111111-2222-4333-8444-555555555555"), "partitions[0].fsUuid"),
    ("label-twice", lambda a: part(a, 1).update(label=part(a, 0)["label"]), "partitions[1].label"),
    ("uuid-twice", lambda a: part(a, 1).update(uuid=part(a, 0)["uuid"], fsUuid=part(a, 0)["fsUuid"]),
     "partitions[1].uuid"),
    ("zstd-level", sets(compression={"algorithm": "zstd", "level": 22}), "repartSpec.compression.level"),
    ("store-dir-root", sets(storeDir="/"), "repartSpec.storeDir"),
    ("store-dir-other", sets(storeDir="/tmp"), "is not in the Nix store (/tmp)"),
    ("129-partitions", lambda a: more_partitions(a, 129), "repartSpec.partitions"),
    # What the builder reads besides the spec.
    ("out-inside-store-path", lambda a: a["outputs"].update(out=STORE_FILE + "/sub"), "output path"),
    ("out-not-normal", lambda a: a["outputs"].update(out=a["outputs"]["out"] + "/../../escaped"), "output path"),
    ("bundle", lambda a: a.update(repartBundle="/tmp"), "repartBundle"),
    ("closure-entry", lambda a: a["closure-1"].append({"path": "/etc", "references": []}), "closure-1"),
    ("closure-without-its-store-path",
     lambda a: a.update({"closure-1": [e for e in a["closure-1"] if e["path"] != part(a, 1)["storePaths"][0]]}),
     "does not hold its store path"),
]


def test_builder_builds_the_unchanged_attrs(hand_attrs, tmp_path):
    """What REFUSED_SPECS changes is all that makes the builder refuse."""
    _, run = hand_attrs
    p = run()
    assert p.returncode == 0, p.stderr
    imagecheck.check_image(tmp_path / "work" / "out" / "image.raw", tmp_path)


@pytest.mark.parametrize("change,names", [c[1:] for c in REFUSED_SPECS], ids=[c[0] for c in REFUSED_SPECS])
def test_builder_refuses_what_the_evaluator_refuses(hand_attrs, tmp_path, change, names):
    """A builder run on an .attrs.json the evaluator could not have made
    (by hand, or by someone else) refuses it, naming the field, and writes
    nothing: not outside $out, not in it."""
    _, run = hand_attrs
    p = run(change)
    escaped = [tmp_path / "escaped.raw", tmp_path / "escaped", tmp_path.parent / "escaped.raw"]
    try:
        assert p.returncode == 1, p.stderr
        assert names in p.stderr, p.stderr
        for crash in ("AddressSanitizer", "runtime error", "Segmentation fault", "Aborted"):
            assert crash not in p.stderr, p.stderr
        assert finished_looking(tmp_path / "work" / "out") == [], p.stderr
        assert not any(os.path.lexists(e) for e in escaped), p.stderr
    finally:
        for e in escaped:
            shutil.rmtree(e, ignore_errors=True) if e.is_dir() else e.unlink(missing_ok=True)


def test_no_file_is_written_through_a_name_already_there(hand_attrs, tmp_path):
    """The partial image is created, never opened: a symlink named like it
    in the output directory (by hand, a directory used before) is not
    written through."""
    base, run = hand_attrs
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep me\n")
    out = tmp_path / "work-out"
    out.mkdir()
    (out / "image.raw.partial").symlink_to(victim)
    p = run(lambda a: a["outputs"].update(out=str(out)))
    assert p.returncode == 1, p.stderr
    assert "image.raw.partial" in p.stderr and "File exists" in p.stderr, p.stderr
    assert victim.read_bytes() == b"keep me\n"
    assert os.path.islink(out / "image.raw.partial")


# ---- sources changing while they are copied (issue 11) ---------------------------



def scratch_store_attrs(nix, tmp_path, fmt):
    """The .attrs.json of a partition of `fmt` whose one file comes from a
    store of the test's own ($NIX_STORE, where the test may change it),
    and the path of that file."""
    (nix.dir / "big").write_bytes(b"x")
    _, _, _, attrs = instantiate(nix, "image.nix", f"""\
builtins.repartImage {{
  name = "image";
  partitions."data" = {{
    contents."/big".source = ./big;
    repartConfig = {{ Type = "linux-generic"; Format = "{fmt}"; SizeMinBytes = "200M"; }};
  }};
}}
""")
    store = tmp_path / "store"
    store.mkdir()
    src = store / f"{SCRATCH_HASH}-big"
    with open(src, "wb") as f:
        for _ in range(64):
            f.write(os.urandom(1024 * 1024))
    attrs = dict(attrs)
    attrs.pop("repartBundle", None)   # mformat from the host
    attrs["repartSpec"]["storeDir"] = str(store)
    attrs["repartSpec"]["partitions"][0]["contents"][0]["source"] = str(src)
    attrs["outputs"] = {"out": str(tmp_path / "out")}
    return attrs, store, src


CHANGER = """\
import os, random, sys
path, how = sys.argv[1], sys.argv[2]
fd = os.open(path, os.O_RDWR)
size = os.fstat(fd).st_size
while True:
    if how == "write":   # in place: the same size, a new modification time
        off = random.randrange(size)
        os.pwrite(fd, os.pread(fd, 1, off), off)
    else:                # shorter, then as long again
        os.ftruncate(fd, size // 2)
        os.ftruncate(fd, size)
"""


def versions_of(original: bytes, how: str):
    """Every content the file has while CHANGER runs on it: "write" rewrites
    bytes with themselves (only the times change); "truncate" cuts it to half
    and lengthens it again with zeros."""
    if how == "write":
        return [original]
    half = original[:len(original) // 2]
    return [original, half, half + bytes(len(original) - len(half))]


@pytest.mark.parametrize("how", ["write", "truncate"])
@pytest.mark.parametrize("fmt", ["ext4", "vfat"])
def test_source_changing_while_copied_fails(nix, tmp_path, fmt, how):
    """A file written to (or truncated) all the time the builder copies it:
    the copy cannot be the file as it was, so the build fails with
    "changed while being read" and leaves no image, for either format (vfat
    through mcopy used to copy what it found and exit 0).

    The builder compares the file's size, modification and change time
    before and after it copies it.  A change within the same clock tick as
    its first look (a few ms) shows no new time, and a changer that gets no
    CPU during the copy changes nothing: an attempt may then succeed, and the
    image must hold a content the file really had, never a mix.  The test
    needs one attempt of five in which the builder saw the change."""
    attrs, store, src = scratch_store_attrs(nix, tmp_path, fmt)
    versions = versions_of(src.read_bytes(), how)
    out = tmp_path / "out"
    for attempt in range(5):
        changer = subprocess.Popen([sys.executable, "-c", CHANGER, str(src), how])
        try:
            time.sleep(0.2)
            r = run_builder(["--attrs", str(write_attrs(tmp_path, attrs))], tmp_path, tmp_path / "tmp", 0o022,
                            env={"NIX_STORE": str(store)})
        finally:
            changer.kill()
            changer.wait()
        if r.returncode != 0:
            assert r.returncode == 1, r.stderr
            assert "changed while being read" in r.stderr and str(src) in r.stderr, r.stderr
            assert finished_looking(out) == [], r.stderr
            return
        image = imagecheck.check_image(out / "image.raw", tmp_path)
        [part] = image.partitions
        got = (imagecheck.ext4_cat if fmt == "ext4" else imagecheck.vfat_read)(out / "image.raw", part, "/big")
        assert got in versions, f"attempt {attempt}: the image holds a mix of the file's contents"
        shutil.rmtree(out)
    pytest.fail("in five attempts the builder never saw the file change while it copied it")


def write_attrs(tmp_path, attrs) -> Path:
    f = tmp_path / "attrs.json"
    f.write_text(json.dumps(attrs))
    return f


# ---- no process outlives the builder (issue 11) ---------------------------------

SLOW_MFORMAT = """\
#!/usr/bin/python3
# A stand-in for mformat that takes its time.
import time
time.sleep(300)
"""


def processes_running(marker: str):
    """The processes whose command line holds `marker`."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if marker.encode() in f.read():
                    found.append(int(pid))
        except OSError:
            pass
    return found


def wait_for(cond, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


@pytest.fixture
def slow_mformat(tmp_path):
    """A directory holding a slow `mformat` (and mtools' mmd and mcopy), for
    NRI_MTOOLS_DIR; whatever runs it and is left is killed after the
    test."""
    d = tmp_path / "slow-mtools"
    d.mkdir()
    (d / "mformat").write_text(SLOW_MFORMAT)
    (d / "mformat").chmod(0o755)
    for prog in ("mmd", "mcopy"):   # what builders before ran after mformat
        (d / prog).symlink_to(shutil.which(prog))
    yield d
    for pid in processes_running(str(d)):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


VFAT_BODY = """\
builtins.repartImage {
  name = "image";
  partitions."esp" = {
    contents."/EFI/BOOT/BOOTX64.EFI".source = ./bootx64.efi;
    repartConfig = { Type = "esp"; Format = "vfat"; SizeMinBytes = "40M"; };
  };
}
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_no_child_outlives_the_killed_builder(nix, tmp_path, slow_mformat, sig):
    """The builder killed while mformat runs (as a user stops it, or as
    anything kills it): mformat dies with it, not left behind reparented
    to init, still writing the image."""
    _, _, _, attrs = instantiate(nix, "image.nix", VFAT_BODY)
    attrs = dict(attrs)
    attrs["outputs"] = {"out": str(tmp_path / "out")}
    env = {"TMPDIR": str(tmp_path), "HOME": "/homeless-shelter", "NRI_MTOOLS_DIR": str(slow_mformat),
           "NRI_MTOOLS_LOADER": ""}
    p = subprocess.Popen([str(BUILDER), "--attrs", str(write_attrs(tmp_path, attrs))], cwd=tmp_path, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        assert wait_for(lambda: processes_running(str(slow_mformat)), 60), "mformat never started"
        p.send_signal(sig)
        p.wait(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == -sig
    assert wait_for(lambda: not processes_running(str(slow_mformat)), 10), \
        ("left behind", processes_running(str(slow_mformat)))


def test_no_child_outlives_a_build_nix_timed_out(nix, tmp_path, slow_mformat):
    """nix-build --timeout kills the builder (and its process group) while
    mformat runs: nothing of the build is left running."""
    wrapper = tmp_path / "builder-wrapper"
    wrapper.write_text(f"#!/bin/sh\nexport NRI_MTOOLS_DIR={slow_mformat} NRI_MTOOLS_LOADER=\nexec {BUILDER} \"$@\"\n")
    wrapper.chmod(0o755)
    nix.configure(repart_image_builder=str(wrapper))
    f, _, _, _ = instantiate(nix, "image.nix", VFAT_BODY)
    r = nix.build(f, "--timeout", "10")
    assert r.returncode != 0, r.stdout
    assert "timed out" in r.stderr, r.stderr
    assert wait_for(lambda: not processes_running(str(slow_mformat)), 10), \
        ("left behind", processes_running(str(slow_mformat)))
