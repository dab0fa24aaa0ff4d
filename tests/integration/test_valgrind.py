"""The builder program under valgrind (memcheck): no invalid read or write,
no use of uninitialised memory, no definite leak, on the DESIGN scenarios.

Only the builder itself runs under valgrind: the mtools programs it starts
for vfat (mformat, mmd, mcopy) run natively (no --trace-children), since
they are not our code.  valgrind.supp names the one leak glibc's newlocale()
makes.  Skipped with the sanitizer build (tests/run-sanitizers):
an ASan-linked program cannot run under valgrind.
"""
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import imagecheck
import scenarios
from conftest import BUILDER
from imagecheck import check_image
from builds import builder_attrs

# The one leak that is glibc's, not ours (see the file).
SUPPRESSIONS = Path(__file__).with_name("valgrind.supp")


def asan_linked(program) -> bool:
    p = subprocess.run(["ldd", str(program)], capture_output=True, text=True)
    return "libasan" in p.stdout


pytestmark = [
    pytest.mark.skipif(shutil.which("valgrind") is None, reason="needs valgrind"),
    pytest.mark.skipif(bool(os.environ.get("NRI_SANITIZER_PRELOAD")) or asan_linked(BUILDER),
                       reason="the builder is built with AddressSanitizer, which valgrind cannot run"),
]


class Attrs:
    """What builder_attrs() needs of a build: the structured attributes."""

    def __init__(self, attrs):
        self.attrs = attrs


@pytest.mark.parametrize("scenario", ["ESP_AND_ROOT", "STORE_PARTITION", "APPLIANCE"])
def test_builder_under_valgrind(nix, tmp_path, scenario):
    scenarios.write_inputs(nix)
    f = nix.write("image.nix", getattr(scenarios, scenario))
    # nix-build makes the inputs valid (and the image, to compare with).
    r = nix.build(f, "-A", "img")
    assert r.returncode == 0, r.stderr
    store_image_dir = r.stdout.strip()
    drv = nix.eval(f"(import {f}).img.drvPath").json()
    attrs = json.loads(nix.show_derivation(drv)["env"]["__json"])
    out = tmp_path / "out"
    attrs_file = tmp_path / "attrs.json"
    attrs_file.write_text(json.dumps(builder_attrs(nix, Attrs(attrs), out)))
    log = tmp_path / "valgrind.log"
    (tmp_path / "tmp").mkdir()

    p = subprocess.run(
        [shutil.which("valgrind"), "--error-exitcode=99", "--leak-check=full", "--errors-for-leak-kinds=definite",
         "--show-leak-kinds=definite", "--track-origins=yes", f"--suppressions={SUPPRESSIONS}",
         f"--log-file={log}",
         str(BUILDER), "--attrs", str(attrs_file), "--out", str(out)],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
        env={"TMPDIR": str(tmp_path / "tmp"), "HOME": "/homeless-shelter", "NIX_BUILD_TOP": str(tmp_path)})
    report = log.read_text(errors="replace")
    assert p.returncode == 0, f"exit {p.returncode}\n{p.stderr[-3000:]}\n{report[-6000:]}"
    assert re.search(r"ERROR SUMMARY: 0 errors from 0 contexts", report), report[-6000:]
    assert "definitely lost" not in report or re.search(r"definitely lost: 0 bytes", report), report[-6000:]

    image = out / attrs["repartSpec"]["imageFile"]
    check_image(image, tmp_path)
    # Under valgrind the same bytes as under nix-build.
    assert imagecheck.file_sha256(image) == imagecheck.file_sha256(os.path.join(store_image_dir,
                                                                                attrs["repartSpec"]["imageFile"]))
