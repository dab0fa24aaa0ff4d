"""Integration tests: real Nix with the plugin loaded.

Each test gets a fresh Nix configuration directory (NIX_CONF_DIR) so that
nothing on the machine decides whether the plugin is loaded; the store is the
machine's /nix/store, used single-user as root.

Which Nix: the machine's (Debian's 2.8, on PATH) for every test, and for the
tests marked `every_nix` (the evaluator tests in full, and a representative
set of image builds) also each newer Nix of NRI_NIX_VERSIONS ("2.26.3
2.33.6 …"): its programs from $NRI_NIX_CACHE/nix-VERSION/bin (made by
scripts/newer-nix.sh), the plugin built for it from
$NRI_BUILD_DIR/nix-VERSION/ (scripts/plugin-for-nix.sh).  Such a test runs
once per version, its id ending in [nix-VERSION].  Without NRI_NIX_VERSIONS,
every version whose Nix and plugin are both there; NRI_NIX_VERSIONS=host
tests the machine's Nix alone.  The builder bundle is the host build's for
every version, so that their images can be compared byte for byte.

Every image a test builds is checked with imagecheck.check_image() (sfdisk,
sgdisk -v, e2fsck -fn, fsck.vfat -n, systemd-dissect): by the test where it
reads the image back, else by the autouse fixture every_image_is_checked
after the test passed (see imagecheck.py).
"""
import json
import os
import re
import shutil
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
# A builder that refused its input and exited 1, as each Nix reports it: up
# to 2.26 "error: builder for '….drv' failed with exit code 1", from 2.33
# "error: Cannot build '….drv'." and "Reason: builder failed with exit code 1".
BUILD_FAILED = ("error: builder for", "Reason: builder failed with exit code")
NIX_CACHE = Path(os.environ.get("NRI_NIX_CACHE", "/var/cache/nix-repart-image"))


class NixVersion:
    """One Nix the suite runs against: where its programs are, and the
    plugin built for it."""

    def __init__(self, name: str, bin_dir: Path, plugin: Path, host: bool):
        self.name = name
        self.bin_dir = bin_dir
        self.plugin = plugin
        self.host = host
        self.number = tuple(int(x) for x in re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", name).groups("0"))

    def __repr__(self):
        return f"Nix {self.name}"

    def at_least(self, version: str) -> bool:
        return self.number >= tuple(int(x) for x in version.split("."))

    @property
    def extra_plugin_files(self) -> bool:
        """Whether `extra-plugin-files` adds to plugin-files.  Nix 2.33 and
        2.35 make plugin-files a list of std::filesystem::path, for which
        their Config has no appending: `extra-plugin-files` is then an
        unknown setting (upstream Nix; plugin-files itself must list every
        plugin)."""
        return not self.at_least("2.33")

    @property
    def new_cli(self) -> bool:
        """`nix config show`, `nix derivation show`, `nix build
        --print-out-paths` (2.8 has show-config, show-derivation, --json)."""
        return self.at_least("2.19")


def _host_nix() -> NixVersion:
    path = shutil.which("nix-instantiate")
    assert path, "nix-instantiate is not on PATH (scripts/setup-debian.sh installs Debian's nix-bin)"
    out = subprocess.run([path, "--version"], capture_output=True, text=True, check=True).stdout
    return NixVersion(out.split()[-1], Path(path).parent, PLUGIN, host=True)


def _nix_versions():
    host = _host_nix()
    wanted = os.environ.get("NRI_NIX_VERSIONS")
    if wanted is None:
        names = sorted((p.name[len("nix-"):] for p in NIX_CACHE.glob("nix-*")
                        if (p / "bin" / "nix").exists() and (BUILD / p.name / PLUGIN.name).exists()),
                       key=lambda n: tuple(map(int, n.split("."))))
    else:
        names = [n for n in wanted.split() if n not in ("host", host.name)]
    versions = [host]
    for name in names:
        v = NixVersion(name, NIX_CACHE / f"nix-{name}" / "bin", BUILD / f"nix-{name}" / PLUGIN.name, host=False)
        missing = [str(p) for p in (v.bin_dir / "nix", v.plugin) if not p.exists()]
        if missing:
            raise pytest.UsageError(f"NRI_NIX_VERSIONS names Nix {name}, but {', '.join(missing)} "
                                    "is missing: run scripts/newer-nix.sh and scripts/plugin-for-nix.sh")
        versions.append(v)
    return versions


NIX_VERSIONS = _nix_versions()
HOST_NIX = NIX_VERSIONS[0]


def pytest_configure(config):
    config.addinivalue_line("markers", "every_nix: run once for each Nix version of the suite")


def pytest_report_header(config):
    return "Nix versions: " + ", ".join(
        f"{v.name} ({'host' if v.host else v.bin_dir.parent})" for v in NIX_VERSIONS)


def pytest_generate_tests(metafunc):
    if "nix_version" in metafunc.fixturenames and metafunc.definition.get_closest_marker("every_nix"):
        metafunc.parametrize("nix_version", NIX_VERSIONS, ids=[f"nix-{v.name}" for v in NIX_VERSIONS],
                             indirect=True)

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

    def __init__(self, tmp_path: Path, plugin=True, version: NixVersion = None):
        self.dir = tmp_path
        self.version = version or HOST_NIX
        self.plugin = self.version.plugin
        self.conf_dir = tmp_path / "etc-nix"
        self.conf_dir.mkdir(exist_ok=True)
        # For the machine's Nix reading what this one wrote (show_derivation):
        # no plugin, which may be built for another Nix.
        self.plain_conf_dir = tmp_path / "etc-nix-plain"
        self.plain_conf_dir.mkdir(exist_ok=True)
        (self.plain_conf_dir / "nix.conf").write_text(BASE_CONF)
        # The builder comes from the bundle, as for users (README: "How the
        # builder reaches the sandbox"); repart-image-builder would override it.
        self.settings = {"repart-image-bundle": str(BUNDLE)}
        if plugin:
            self.settings["plugin-files"] = str(self.plugin)
        self.configure()
        self.env = dict(os.environ)
        for var in ("NIX_CONFIG", "NIX_USER_CONF_FILES", "NIX_PATH"):
            self.env.pop(var, None)
        # This version's nix, nix-instantiate, nix-build, nix-store first.
        self.env["PATH"] = f"{self.version.bin_dir}:{self.env.get('PATH', '/usr/bin:/bin')}"
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

    def run_host(self, program, *args, **kw) -> NixResult:
        """A program of the machine's Nix, without the plugin (which may be
        built for this object's Nix, another one)."""
        env = dict(kw.pop("env", None) or {}, NIX_CONF_DIR=str(self.plain_conf_dir))
        return self.run(str(HOST_NIX.bin_dir / program), *args, env=env, **kw)

    def show_derivation(self, drv: str) -> dict:
        """The .drv file as Nix 2.8's `nix show-derivation` shows it.  The
        file is the same for every Nix (ATerm, in the shared store), but the
        JSON of `nix derivation show` changed shape in 2.32; reading it
        with one Nix keeps the tests' expectations one."""
        r = self.run_host("nix", "show-derivation", drv)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)[drv]

    def config_show(self) -> NixResult:
        """`nix config show --json` (`nix show-config --json` before 2.19)."""
        return self.run("nix", *(["config", "show"] if self.version.new_cli else ["show-config"]), "--json")


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
def nix_version(request) -> NixVersion:
    """The Nix a test runs against: each of NIX_VERSIONS for tests marked
    every_nix (pytest_generate_tests), else the machine's."""
    return getattr(request, "param", HOST_NIX)


@pytest.fixture
def nix(tmp_path, nix_version):
    assert nix_version.plugin.exists(), f"build the project first: {nix_version.plugin} is missing"
    return Nix(tmp_path, version=nix_version)


@pytest.fixture
def nix_without_plugin(tmp_path, nix_version):
    return Nix(tmp_path, plugin=False, version=nix_version)


def assert_eval_error(result: NixResult):
    """Nix reported an evaluation error: exit status 1, no signal, no crash."""
    assert result.returncode == 1, (result.returncode, result.stderr)
    for crash in ("terminate called", "Aborted", "Segmentation fault", "core dumped",
                  "unexpected Nix daemon error", "std::"):
        assert crash not in result.stderr, result.stderr
    assert "error:" in result.stderr, result.stderr


def one_error_report(stderr: str) -> bool:
    """One error report, not a report quoted in another ("…: error: …").
    Nix 2.8 prints "error: <message>"; later versions, when they show a
    trace, print "error:" alone, the trace, then "error: <message>"."""
    heads = re.findall(r"^\s*error:(.*)$", stderr, re.M)
    if stderr.count("error:") != len(heads):
        return False  # "error:" inside a line: a quoted report
    return len(heads) == 1 or (len(heads) == 2 and heads[0].strip() == "")


def error_position(stderr: str):
    """The (file, line, column) Nix printed for the error itself, or None:
    the first "at FILE:LINE:COLUMN:" after the last "error:" line.  Nix 2.8
    prints the message and then its position; later versions print the
    trace first ("… while calling the 'repartImage' builtin", at the call),
    then "error: <message>" and its position (call_position())."""
    starts = [m.end() for m in re.finditer(r"^\s*error:", stderr, re.M)]
    m = re.compile(r"^\s*at (\S+):(\d+):(\d+):", re.M).search(stderr, starts[-1] if starts else 0)
    if not m:
        return None
    return m.group(1), int(m.group(2)), int(m.group(3))


def call_position(stderr: str):
    """The (file, line, column) of the "… while calling the 'repartImage'
    builtin" trace that Nix after 2.8 prints before the error, or None."""
    m = re.search(r"… while calling the 'repartImage' builtin\s*\n\s*at (\S+):(\d+):(\d+):", stderr)
    if not m:
        return None
    return m.group(1), int(m.group(2)), int(m.group(3))
