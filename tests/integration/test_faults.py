"""Faults (issue 7): the builder program, run as Nix runs it (.attrs.json,
--out), when the output disk is full, when a source is missing, and when it
is killed part-way.  Each ends in a non-zero exit and a message naming what
failed, and never leaves a file named like the finished image (`image.raw`),
only at most the `image.raw.partial` the builder writes before renaming.
"""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

import imagecheck
from conftest import BUILDER
from test_build import instantiate, run_builder

BIG = 24 * 1024 * 1024

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
        secret = work / "secret"
        secret.write_text("x")
        secret.chmod(0)
        for p in attrs["repartSpec"]["partitions"]:
            for c in p["contents"]:
                if c["target"] == "/big":
                    c["source"] = str(secret)
        attrs_file = work / "attrs.json"
        attrs_file.write_text(json.dumps(attrs))
        attrs_file.chmod(0o644)
        cmd = [str(BUILDER), "--attrs", str(attrs_file), "--out", str(out)]
        if os.geteuid() == 0:
            cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=work,
                           env={"TMPDIR": str(work), "HOME": "/homeless-shelter"})
        assert r.returncode != 0, r.stderr
        assert str(secret) in r.stderr, r.stderr
        assert finished_looking(out) == [], r.stderr
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_killed_part_way(nix, tmp_path):
    """SIGKILL at growing delays.  The image is written as image.raw.partial,
    fsync'ed and renamed: whatever the moment of the kill, an image.raw that
    exists is the whole image (the same bytes as an uninterrupted run), and
    repart-output.json never appears without it.  (Under Nix a killed
    builder is a failed build, and Nix removes $out anyway.)"""
    attrs = attrs_for(nix, tmp_path / "unused")
    attrs_file = tmp_path / "attrs.json"
    attrs_file.write_text(json.dumps(attrs))

    def start(out):
        return subprocess.Popen([str(BUILDER), "--attrs", str(attrs_file), "--out", str(out)], cwd=tmp_path,
                                env={"TMPDIR": str(tmp_path), "HOME": "/homeless-shelter"},
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    ref = tmp_path / "reference"
    p = start(ref)
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    whole = imagecheck.file_sha256(ref / "image.raw")

    killed_mid_way = 0
    for i, delay in enumerate([0.0, 0.01, 0.03, 0.1, 0.2, 0.4, 0.8]):
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
