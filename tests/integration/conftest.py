"""Integration tests: real Nix 2.8 with the plugin loaded.

Each test gets a fresh Nix configuration directory (NIX_CONF_DIR) so that
nothing on the machine decides whether the plugin is loaded; the store is the
machine's /nix/store, used single-user as root.

Every image a test builds is checked with imagecheck.check_image() (sfdisk,
sgdisk -v, e2fsck -fn, fsck.vfat -n, systemd-dissect): by the test where it
reads the image back, else by the autouse fixture every_image_is_checked
after the test passed (see imagecheck.py).
"""
import json
import os
import re
import subprocess
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("NRI_BUILD_DIR", ROOT / "build"))
PLUGIN = BUILD / "plugin" / "libnix-repart-image.so"
BUILDER = BUILD / "plugin" / "nix-repart-image-builder"
BUNDLE = BUILD / "plugin" / "nix-repart-image-bundle"
DEFAULT_SEED = "0867da16-f251-457d-a9e8-c31f9a3c220b"

BASE_CONF = f"""\
build-users-group =
sandbox = false
substituters =
experimental-features = nix-command flakes
"""

# A derivation that needs nothing but /bin/sh: enough to instantiate, and to
# stand for a package's closure.
HELPERS = textwrap.dedent("""\
    let
      mk = name: deps: derivation {
        inherit name;
        system = builtins.currentSystem;
        builder = "/bin/sh";
        args = [ "-c" "echo ${name} > $out" ];
        inherit deps;
      };
    in
""")


class NixResult:
    def __init__(self, proc):
        self.proc = proc
        self.returncode = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr

    def json(self):
        return json.loads(self.stdout)


class Nix:
    """Runs Nix commands with a private configuration."""

    def __init__(self, tmp_path: Path, plugin=True):
        self.dir = tmp_path
        self.conf_dir = tmp_path / "etc-nix"
        self.conf_dir.mkdir(exist_ok=True)
        # The builder comes from the bundle, as for users (README: "How the
        # builder reaches the sandbox"); repart-image-builder would override it.
        self.settings = {"repart-image-bundle": str(BUNDLE)}
        if plugin:
            self.settings["plugin-files"] = str(PLUGIN)
        self.configure()
        self.env = dict(os.environ)
        for var in ("NIX_CONFIG", "NIX_USER_CONF_FILES", "NIX_PATH"):
            self.env.pop(var, None)
        self.env["NIX_CONF_DIR"] = str(self.conf_dir)
        self.env["NIX_USER_CONF_FILES"] = str(tmp_path / "no-user-nix.conf")
        self.env["HOME"] = str(tmp_path / "home")
        self.env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
        # tests/run-sanitizers: the plugin in build-asan is linked with
        # AddressSanitizer, so the nix processes that load it need its runtime
        # first (Nix itself is not instrumented; its leaks are not ours).
        preload = os.environ.get("NRI_SANITIZER_PRELOAD")
        if preload:
            self.env["LD_PRELOAD"] = preload
            self.env["ASAN_OPTIONS"] = "detect_leaks=0:abort_on_error=1"

    def configure(self, **settings):
        """Rewrites nix.conf with these settings (underscores for dashes).
        Nix keeps the first value of a setting that a plugin registers, so a
        setting is replaced, never appended twice."""
        self.settings.update({k.replace("_", "-"): v for k, v in settings.items()})
        conf = BASE_CONF + "".join(f"{k} = {v}\n" for k, v in self.settings.items())
        (self.conf_dir / "nix.conf").write_text(conf)

    def write(self, name: str, text: str) -> Path:
        path = self.dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def run(self, *args, env=None, input=None, timeout=120) -> NixResult:
        e = dict(self.env)
        if env:
            e.update(env)
        proc = subprocess.run(list(args), env=e, input=input, capture_output=True,
                              text=True, timeout=timeout, cwd=self.dir)
        if "nix-build" in map(os.path.basename, map(str, args)) or "build" in args:
            BUILT_OUTPUTS.update(STORE_PATH.findall(proc.stdout or ""))
        return NixResult(proc)

    def eval(self, expr: str, *extra, strict=True, json_out=True) -> NixResult:
        args = ["nix-instantiate", "--eval", "--read-write-mode"]
        if strict:
            args.append("--strict")
        if json_out:
            args.append("--json")
        return self.run(*args, *extra, "-E", expr)

    def eval_file(self, path: Path, *extra) -> NixResult:
        return self.run("nix-instantiate", "--eval", "--read-write-mode", "--strict", "--json", *extra, str(path))

    def instantiate(self, path: Path, *extra) -> NixResult:
        return self.run("nix-instantiate", *extra, str(path))

    def build(self, path: Path, *extra, timeout=600) -> NixResult:
        """nix-build without a result link; stdout is the output path."""
        return self.run("nix-build", "--no-out-link", *extra, str(path), timeout=timeout)

    def show_derivation(self, drv: str) -> dict:
        r = self.run("nix", "show-derivation", drv)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)[drv]


# ---- every image a test builds is checked (imagecheck.py) -------------------

STORE_PATH = re.compile(r"/nix/store/[0-9a-z]{32}-[^\s\"',\]}]+")
# The store paths the build commands of the running test printed.
BUILT_OUTPUTS = set()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)


@pytest.fixture(autouse=True)
def every_image_is_checked(request, tmp_path):
    """After a test that passed: check_image() on every image of ours that it
    built (nix-build / nix build outputs, and the builder run by hand under
    tmp_path) and did not check itself.  sgdisk -v, e2fsck -fn, fsck.vfat -n
    and the rest must find nothing."""
    import imagecheck

    BUILT_OUTPUTS.clear()
    yield
    rep = getattr(request.node, "rep_call", None)
    if rep is None or not rep.passed:
        return
    outputs = sorted(p for p in BUILT_OUTPUTS if os.path.isdir(p))
    imagecheck.check_unchecked(outputs + [str(tmp_path)], tmp_path)


@pytest.fixture
def nix(tmp_path):
    assert PLUGIN.exists(), f"build the project first: {PLUGIN} is missing"
    return Nix(tmp_path)


@pytest.fixture
def nix_without_plugin(tmp_path):
    return Nix(tmp_path, plugin=False)


def assert_eval_error(result: NixResult):
    """Nix reported an evaluation error: exit status 1, no signal, no crash."""
    assert result.returncode == 1, (result.returncode, result.stderr)
    for crash in ("terminate called", "Aborted", "Segmentation fault", "core dumped",
                  "unexpected Nix daemon error", "std::"):
        assert crash not in result.stderr, result.stderr
    assert "error:" in result.stderr, result.stderr


def error_position(stderr: str):
    """The (file, line, column) Nix printed for the error, or None."""
    m = re.search(r"^\s*at (\S+):(\d+):(\d+):", stderr, re.M)
    if not m:
        return None
    return m.group(1), int(m.group(2)), int(m.group(3))
