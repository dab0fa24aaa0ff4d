"""Pure builds: images build with the sandbox on (issue 5).

The derivation's builder is the bundle's loader running the bundle's builder
(scripts/make-bundle.sh), which the plugin adds to the store at evaluation
time.  Debian's Nix 2.8 has no built-in sandbox shell: the test packages of
HELPERS are built by /bin/sh, so these tests give the sandbox
`sandbox-paths = /bin/sh=/bin/busybox` (busybox-static).  The image build
itself needs no shell.

The tests marked every_nix run against each Nix of the suite (conftest.py):
its evaluation gives the derivation, and its builds run it in its sandbox.
"""
import hashlib
import json
import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

import scenarios
from conftest import BUNDLE, assert_eval_error, one_error_report

BUSYBOX = Path("/bin/busybox")
SANDBOX = ("--option", "sandbox", "true", "--option", "sandbox-paths", f"/bin/sh={BUSYBOX}")
NO_SANDBOX = ("--option", "sandbox", "false")

SCENARIOS = {
    "esp-and-root": (scenarios.ESP_AND_ROOT, 'name = "image";'),
    "store-partition": (scenarios.STORE_PARTITION, 'name = "store";'),
    "appliance": (scenarios.APPLIANCE, 'name = "appliance";'),
}


@pytest.fixture(autouse=True)
def _busybox():
    if not BUSYBOX.exists():
        pytest.skip("needs /bin/busybox (busybox-static) as the sandbox's /bin/sh")


def unique(nix, which):
    """The scenario under a name no other test uses: its derivation and
    output are this test's own, so it can delete and rebuild the output."""
    text, name = SCENARIOS[which]
    assert name in text
    tag = uuid.uuid4().hex[:10]
    scenarios.write_inputs(nix)
    return nix.write(f"{which}.nix", text.replace(name, name[:-2] + f'-sbx-{tag}";', 1))


def digests(out):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(Path(out).iterdir())}


def bundle_store_path(nix):
    """What `nix-store --add` makes of the build tree's bundle: the path the
    plugin must name (content-addressed, named after the directory)."""
    r = nix.run("nix-store", "--add", str(BUNDLE))
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


@pytest.mark.every_nix
@pytest.mark.parametrize("which", sorted(SCENARIOS))
def test_sandboxed_build_equals_unsandboxed(nix, which):
    file = unique(nix, which)
    on = nix.build(file, "-A", "img", *SANDBOX)
    assert on.returncode == 0, on.stderr
    out = on.stdout.strip()
    sandboxed = digests(out)
    assert any(n.endswith(".raw") for n in sandboxed), sandboxed

    # The same derivation again with the sandbox off: same bytes.
    r = nix.run("nix-store", "--delete", out)
    assert r.returncode == 0, r.stderr
    off = nix.build(file, "-A", "img", *NO_SANDBOX)
    assert off.returncode == 0, off.stderr
    assert off.stdout.strip() == out
    assert digests(out) == sandboxed

    # And Nix's own determinism check, rebuilding in the sandbox.
    check = nix.build(file, "-A", "img", "--check", *SANDBOX)
    assert check.returncode == 0, check.stderr


@pytest.mark.every_nix
def test_sandbox_is_real(nix):
    """The control: a builder outside the store (repart-image-builder) fails
    in the same sandbox."""
    file = unique(nix, "esp-and-root")
    nix.configure(repart_image_builder=str(BUNDLE.parent / "nix-repart-image-builder"))
    r = nix.build(file, "-A", "img", *SANDBOX)
    assert r.returncode != 0
    assert "nix-repart-image-builder': No such file or directory" in r.stderr, r.stderr


@pytest.mark.every_nix
def test_derivation_names_the_bundle(nix):
    scenarios.write_inputs(nix)
    file = nix.write("image.nix", scenarios.ESP_AND_ROOT)
    drv = nix.eval(f"(import {file}).img.drvPath").json()
    bundle = bundle_store_path(nix)
    d = nix.show_derivation(drv)
    assert d["builder"] == f"{bundle}/lib/ld.so"
    assert d["args"] == ["--library-path", f"{bundle}/lib", f"{bundle}/bin/nix-repart-image-builder"]
    assert bundle in d["inputSrcs"]
    attrs = json.loads(d["env"]["__json"])
    assert attrs["repartBundle"] == bundle
    refs = nix.run("nix-store", "-q", "--references", drv)
    assert refs.returncode == 0, refs.stderr
    assert bundle in refs.stdout.split()
    # Self-contained: the builder and mformat, the loader, every library.
    for f in ("bin/nix-repart-image-builder", "bin/mformat", "lib/ld.so",
              "lib/libc.so.6", "lib/libfdisk.so.1", "lib/libext2fs.so.2", "lib/locale/C.utf8/LC_CTYPE",
              "lib/gconv/IBM437.so"):
        assert (Path(bundle) / f).exists(), f
    # mmd and mcopy: the builder writes directories and files itself.
    for f in ("bin/mmd", "bin/mcopy"):
        assert not (Path(bundle) / f).exists(), f


@pytest.mark.every_nix
def test_bundle_path_follows_content(nix, tmp_path):
    """Content-addressed: a copy elsewhere with the same content is the same
    store path; a changed copy is another."""
    scenarios.write_inputs(nix)
    file = nix.write("image.nix", scenarios.ESP_AND_ROOT)
    expr = f"(import {file}).img.drvPath"
    copy = tmp_path / "copy" / BUNDLE.name
    shutil.copytree(BUNDLE, copy, symlinks=True)
    nix.configure(repart_image_bundle=str(copy))
    same = nix.show_derivation(nix.eval(expr).json())["builder"]
    assert same == f"{bundle_store_path(nix)}/lib/ld.so"
    (copy / "lib" / "extra").write_text("changed\n")
    other = nix.show_derivation(nix.eval(expr).json())["builder"]
    assert other != same and other.endswith("/lib/ld.so")


@pytest.mark.every_nix
def test_builder_setting_overrides_the_bundle(nix):
    scenarios.write_inputs(nix)
    file = nix.write("image.nix", scenarios.ESP_AND_ROOT)
    nix.configure(repart_image_builder="/opt/other/builder")
    d = nix.show_derivation(nix.eval(f"(import {file}).img.drvPath").json())
    assert d["builder"] == "/opt/other/builder"
    assert d["args"] == []
    assert "repartBundle" not in json.loads(d["env"]["__json"])


@pytest.mark.every_nix
def test_missing_bundle_is_an_error_only_for_the_derivation(nix):
    scenarios.write_inputs(nix)
    file = nix.write("image.nix", scenarios.ESP_AND_ROOT)
    nix.configure(repart_image_bundle="/nonexistent/nix-repart-image-bundle")
    r = nix.eval(f"(import {file}).img.image.partitions.root.uuid")
    assert r.returncode == 0, r.stderr
    r = nix.eval(f"(import {file}).img.drvPath")
    assert_eval_error(r)
    assert "/nonexistent/nix-repart-image-bundle" in r.stderr
    assert "repart-image-bundle" in r.stderr
    assert one_error_report(r.stderr), r.stderr


@pytest.mark.every_nix
def test_store_refusing_the_import(nix):
    """A store that takes no files (here `dummy://`): a clean error saying how
    to pre-import the bundle."""
    expr = '(builtins.repartImage { name = "x"; partitions.r.repartConfig.Type = "root"; }).drvPath'
    r = nix.run("nix", "eval", "--store", "dummy://", "--json", "--expr", expr)
    assert_eval_error(r)
    assert "cannot add the builder bundle" in r.stderr
    assert f"nix-store --add {BUNDLE}" in r.stderr
    # Nix's reason, quoted in ours without its own "error:" (c9e27fd said
    # "builtins.repartImage: error: cannot add … (error: operation …)").
    assert one_error_report(r.stderr), r.stderr


@pytest.mark.every_nix
@pytest.mark.parametrize("mode", [("--option", "pure-eval", "true"),
                                  ("--option", "restrict-eval", "true")])
def test_pure_and_restricted_instantiation(nix, mode):
    expr = '(builtins.repartImage { name = "x"; partitions.r.repartConfig.Type = "root"; }).drvPath'
    r = nix.run("nix-instantiate", *mode, "--eval", "--read-write-mode", "--json", "-E", expr)
    assert r.returncode == 0, r.stderr
    d = nix.show_derivation(r.json())
    assert d["builder"] == f"{bundle_store_path(nix)}/lib/ld.so"


@pytest.mark.every_nix
def test_read_only_evaluation_computes_the_same_path(nix):
    expr = ('(builtins.unsafeDiscardStringContext (builtins.repartImage '
            '{ name = "x"; partitions.r.repartConfig.Type = "root"; }).drvAttrs.builder)')
    r = nix.run("nix-instantiate", "--eval", "--json", "-E", expr)
    assert r.returncode == 0, r.stderr
    assert r.json() == f"{bundle_store_path(nix)}/lib/ld.so"


# Files outside the store that the bundle's programs may open on a host with
# the sandbox off, none of them code: configuration whose absence (in the
# sandbox) changes nothing, as the byte-for-byte comparisons above show.
HOST_CONFIG = {
    "/etc/mtools.conf",                # always read by mtools; the environment vfat.c sets wins
    "/usr/lib/ssl/openssl.cnf",        # OpenSSL's default configuration
    "/usr/share/locale/locale.alias",  # glibc's setlocale()
}


def outside(path, build_dirs):
    # The store directory itself: the builder opens it to read each source
    # inside its store path (README, "Sources").
    return not (path.startswith("/nix/store/") or path in ("/nix/store", "/dev/null", "/dev/urandom")
                or path.startswith("/proc/") or any(path.startswith(d) for d in build_dirs)
                or not path.startswith("/"))


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")
@pytest.mark.skipif(bool(os.environ.get("NRI_SANITIZER_PRELOAD")),
                    reason="tests/run-sanitizers: LeakSanitizer cannot run under ptrace, and the "
                           "ASan runtime reads /proc itself")
def test_builder_opens_nothing_outside_the_store(nix, tmp_path):
    """The whole nix-build under `strace -ff` with the sandbox off: every
    process started from the bundle's loader (the builder and mformat)
    executes and loads only store files, and opens nothing else outside the
    store and its build directory but HOST_CONFIG."""
    file = unique(nix, "esp-and-root")
    trace = tmp_path / "trace"
    trace.mkdir()
    r = nix.run("strace", "-ff", "-e", "trace=%file,execve", "-o", str(trace / "t"),
                "nix-build", "--no-out-link", "-A", "img", *NO_SANDBOX, str(file), timeout=600)
    assert r.returncode == 0, r.stderr
    bundle = bundle_store_path(nix)
    ran = []
    for t in sorted(trace.iterdir()):
        lines = t.read_text().splitlines()
        start = next((i for i, l in enumerate(lines)
                      if l.startswith(f'execve("{bundle}/lib/ld.so"') and l.endswith("= 0")), None)
        if start is None:
            continue
        ran.append(lines[start])
        build_dirs = set()
        for line in lines[start + 1:]:
            m = re.match(r'(\w+)\((?:AT_FDCWD|-?\d+), "([^"]*)"|(\w+)\("([^"]*)"', line)
            if not m:
                continue
            call, path = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
            ok = not re.search(r"= -1 E", line)
            if call == "chdir" or "nix-build-" in path:
                build_dirs.add(path.split("/nix-build-")[0] + "/nix-build-")
            if call == "execve":
                assert path.startswith(bundle + "/"), line
            if path.endswith(".so") or ".so." in path:
                assert not ok or path.startswith("/nix/store/"), line
            if ok and outside(path, build_dirs):
                assert path in HOST_CONFIG or path.startswith("/usr/lib/x86_64-linux-gnu/gconv/gconv-modules"), line
    # The builder and mformat (the builder fills the FAT itself).
    assert len(ran) >= 2, ran


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")
def test_bundle_is_read_once_per_process(nix, tmp_path):
    """Three images in one evaluation: the bundle is read (hashed, added) once."""
    expr = ("map (n: (builtins.repartImage { name = n; partitions.r.repartConfig.Type = \"root\"; }).drvPath)"
            " [ \"a\" \"b\" \"c\" ]")
    log = tmp_path / "open.trace"
    r = nix.run("strace", "-f", "-e", "trace=openat", "-o", str(log),
                "nix-instantiate", "--eval", "--strict", "--read-write-mode", "--json", "-E", expr)
    assert r.returncode == 0, r.stderr
    assert len(set(r.json())) == 3
    opens = [l for l in log.read_text().splitlines() if f'"{BUNDLE}/bin/nix-repart-image-builder"' in l]
    assert len(opens) == 1, opens


@pytest.mark.every_nix
def test_flake_builds_in_the_sandbox(nix):
    """Pure evaluation and a sandboxed build: the flake of test_flake.py."""
    from test_flake import write_flake
    d = write_flake(nix)
    # --print-out-paths where Nix has it (2.19 on), --json before.
    out_flag = "--print-out-paths" if nix.version.new_cli else "--json"
    r = nix.run("nix", "build", "--no-link", out_flag, *SANDBOX, f"path:{d}#packages.x86_64-linux.default",
                timeout=600)
    assert r.returncode == 0, r.stderr
    out = Path(r.stdout.strip() if nix.version.new_cli else r.json()[0]["outputs"]["out"])
    assert (out / "image.raw").stat().st_size > 32 * 1024 * 1024
    # Built before (by this or another run): built again in the sandbox, and
    # the same bytes.
    r = nix.run("nix", "build", "--no-link", "--rebuild", *SANDBOX, f"path:{d}#packages.x86_64-linux.default",
                timeout=600)
    assert r.returncode == 0, r.stderr
