"""The plugin across Nix versions (conftest.py: NIX_VERSIONS).

- The same expression evaluated by every Nix gives the same derivation, and
  each Nix builds the same image from it, byte for byte.
- A plugin built for one Nix and loaded into another registers nothing and
  says so in one line (load.cc), or the dynamic linker refuses it first:
  either way a message, never a crash.
- meson refuses to build the plugin against a Nix outside the supported
  range (plugin/eval/meson.build), and says which versions it supports.
"""
import hashlib
import itertools
import os
import subprocess
import uuid
from pathlib import Path

import pytest

import imagecheck
import scenarios
from conftest import NIX_VERSIONS, ROOT, Nix

CRASH = ("Segmentation fault", "Aborted", "core dumped", "terminate called", "SIGSEGV", "std::")


def digests(out):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(Path(out).iterdir())}


@pytest.mark.skipif(len(NIX_VERSIONS) < 2, reason="needs a second Nix (scripts/newer-nix.sh)")
def test_every_nix_builds_the_same_image(tmp_path):
    tag = uuid.uuid4().hex[:10]
    text = scenarios.ESP_AND_ROOT.replace('name = "image";', f'name = "image-nv-{tag}";', 1)
    nixes = []
    for v in NIX_VERSIONS:
        (tmp_path / v.name).mkdir()
        nixes.append(Nix(tmp_path / v.name, version=v))
    drvs = {}
    for n in nixes:
        scenarios.write_inputs(n)
        file = n.write("image.nix", text)
        r = n.run("nix-instantiate", "-A", "img", str(file))
        assert r.returncode == 0, (n.version, r.stderr)
        drvs[n.version.name] = r.stdout.strip()
    # One derivation: the same inputs (the bundle, the closure, the ESP
    # file), the same spec, the same builder.
    assert len(set(drvs.values())) == 1, drvs
    drv = next(iter(drvs.values()))

    images = {}
    out = None
    for n in nixes:
        # Each Nix builds it itself: the output of the one before is deleted.
        if out is not None:
            r = n.run_host("nix-store", "--delete", out)
            assert r.returncode == 0, r.stderr
        r = n.run("nix-store", "--realise", drv, timeout=600)
        assert r.returncode == 0, (n.version, r.stderr)
        out = r.stdout.strip()
        images[n.version.name] = digests(out)
        assert f"image-nv-{tag}.raw" in images[n.version.name], images
    first = images[NIX_VERSIONS[0].name]
    for name, d in images.items():
        assert d == first, f"Nix {name} built another image than Nix {NIX_VERSIONS[0].name}"
    img = imagecheck.check_image(Path(out) / f"image-nv-{tag}.raw", tmp_path)
    assert [p.label for p in img.partitions] == ["esp", "nixos"]


PAIRS = [(a, b) for a, b in itertools.permutations(NIX_VERSIONS, 2)]


@pytest.mark.skipif(not PAIRS, reason="needs a second Nix (scripts/newer-nix.sh)")
@pytest.mark.parametrize("built_for,running", PAIRS,
                         ids=[f"plugin-{a.name}-in-nix-{b.name}" for a, b in PAIRS])
def test_plugin_for_another_nix_is_refused_with_a_message(tmp_path, built_for, running):
    n = Nix(tmp_path, plugin=False, version=running)
    r = n.run("nix-instantiate", "--option", "plugin-files", str(built_for.plugin),
              "--eval", "--json", "-E", "builtins ? repartImage")
    for c in CRASH:
        assert c not in r.stderr, r.stderr
    # A signal shows as a negative status (or 128+N from a shell).
    assert r.returncode in (0, 1), (r.returncode, r.stderr)
    if r.returncode == 0:
        # Loaded: it registered nothing and said why, in one line.
        assert r.stdout.strip() == "false", r.stdout
        lines = [l for l in r.stderr.splitlines() if "nix-repart-image" in l]
        assert len(lines) == 1, r.stderr
        assert (f"was built for Nix {built_for.name} but this is Nix {running.name}" in lines[0]
                and "rebuild the plugin against this Nix" in lines[0]), r.stderr
    else:
        # The dynamic linker refused it (another C++ library, a missing
        # symbol): Nix says so and names the file.
        assert "could not dynamically open plugin file" in r.stderr, r.stderr
        assert str(built_for.plugin) in r.stderr, r.stderr


# ---- meson: the supported range ----------------------------------------

def fake_nix_pc(tmp_path, version):
    """A nix-expr.pc and nix-store.pc saying `version`: enough for meson to
    decide, before it looks at any header."""
    d = tmp_path / f"pc-{version}"
    d.mkdir()
    for name in ("nix-expr", "nix-store"):
        (d / f"{name}.pc").write_text(f"prefix=/opt/nix-{version}\nincludedir=${{prefix}}/include\n\n"
                                      f"Name: Nix\nDescription: Nix\nVersion: {version}\n"
                                      f"Cflags: -I${{includedir}}\n")
    return d


@pytest.mark.parametrize("version", ["2.20.0", "2.36.0", "3.0.0", None])
def test_meson_refuses_a_nix_outside_the_range(tmp_path, version):
    # Debian's nix-expr.pc is not on pkg-config's default path (setup-debian.sh
    # passes -Dpkg_config_path): without a PKG_CONFIG_PATH, there is none.
    env = dict(os.environ, PKG_CONFIG_PATH=str(fake_nix_pc(tmp_path, version)) if version else "")
    r = subprocess.run(["meson", "setup", str(tmp_path / "build"), str(ROOT), "-Dbuilder=false"],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0, r.stdout
    out = r.stdout + r.stderr
    if version:
        assert f"pkg-config found Nix {version}" in out and "which this plugin does not support" in out, out
    else:
        assert "nix-expr.pc was not found" in out and "PKG_CONFIG_PATH" in out, out
    # The range, as plugin/eval/meson.build writes it once.
    assert "Supported: 2.8, 2.26–2.27, 2.28–2.35" in out or "Supported Nix versions: 2.8, 2.26–2.27, 2.28–2.35" in out, out


def test_meson_warns_about_an_untested_nix_in_the_range(tmp_path):
    env = dict(os.environ, PKG_CONFIG_PATH=str(fake_nix_pc(tmp_path, "2.30.1")))
    r = subprocess.run(["meson", "setup", str(tmp_path / "build"), str(ROOT), "-Dbuilder=false"],
                       env=env, capture_output=True, text=True, timeout=120)
    out = r.stdout + r.stderr
    assert "Nix 2.30.1 is in the supported range" in out and "not one the test suite runs against" in out, out
