"""The plugin loads by every mechanism Nix offers, and documents itself,
in every Nix version of the suite."""
import re
from pathlib import Path

import pytest

from conftest import assert_eval_error

pytestmark = pytest.mark.every_nix

FILE_SYSTEMS_H = Path(__file__).parents[2] / "include" / "nix-repart-image" / "file-systems.h"

HAS = "builtins ? repartImage"


def test_not_there_without_the_plugin(nix_without_plugin):
    r = nix_without_plugin.eval(HAS)
    assert r.returncode == 0, r.stderr
    assert r.json() is False


def test_nix_conf_plugin_files(nix):
    # The fixture's nix.conf has the `plugin-files =` line.
    r = nix.eval(HAS)
    assert r.returncode == 0, r.stderr
    assert r.json() is True
    # The plugin was built for this Nix: load.cc has nothing to say.
    assert "nix-repart-image plugin" not in r.stderr, r.stderr


def assert_extra_plugin_files(version, r):
    """extra-plugin-files loaded the plugin, or (Nix 2.33 on, conftest's
    NixVersion.extra_plugin_files) Nix said it does not know the setting."""
    assert r.returncode == 0, r.stderr
    if version.extra_plugin_files:
        assert r.stdout.strip() == "true", r.stderr
    else:
        assert r.stdout.strip() == "false", r.stderr
        assert "unknown setting 'extra-plugin-files'" in r.stderr, r.stderr


def test_nix_conf_extra_plugin_files(nix_without_plugin):
    n = nix_without_plugin
    n.configure(extra_plugin_files=str(n.plugin))
    assert_extra_plugin_files(n.version, n.eval(HAS))


def test_option_on_the_command_line(nix_without_plugin):
    # Nix 2.8 loads plugins when it reads the first positional argument, so
    # --option must come before -E.
    r = nix_without_plugin.run("nix-instantiate", "--option", "plugin-files", str(nix_without_plugin.plugin),
                               "--eval", "--json", "-E", HAS)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "true"


@pytest.mark.parametrize("setting", ["plugin-files", "extra-plugin-files"])
def test_nix_config_environment(nix_without_plugin, setting):
    r = nix_without_plugin.run("nix-instantiate", "--eval", "--json", "-E", HAS,
                               env={"NIX_CONFIG": f"{setting} = {nix_without_plugin.plugin}"})
    if setting == "extra-plugin-files":
        assert_extra_plugin_files(nix_without_plugin.version, r)
    else:
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == "true"


def test_new_cli_nix_eval(nix):
    r = nix.run("nix", "eval", "--json", "--expr", "builtins.isFunction builtins.repartImage")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "true"


def test_builder_setting_is_known(nix):
    # An unknown setting would draw "warning: unknown setting".
    nix.configure(repart_image_builder="/opt/elsewhere/builder")
    r = nix.config_show()
    assert r.returncode == 0, r.stderr
    assert r.json()["repart-image-builder"]["value"] == "/opt/elsewhere/builder"
    assert "unknown setting" not in r.stderr


def test_repl_doc(nix):
    r = nix.run("nix", "repl", input=":doc builtins.repartImage\n")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "repartImage" in out
    # Every argument is described.
    for arg in ("name", "version", "seed", "sectorSize", "imageSize", "split", "compression",
                "architecture", "partitions", "repartConfig", "contents", "storePaths",
                "nixStorePrefix", "stripNixStorePrefix"):
        assert arg in out, f"{arg} missing from :doc"
    assert "0867da16-f251-457d-a9e8-c31f9a3c220b" in out
    # The formats are the file-system table's, in its order (file-systems.h).
    formats = re.findall(r"^\s*FS\(\w+, (\w+),", FILE_SYSTEMS_H.read_text(), re.M)
    assert formats[:2] == ["ext4", "vfat"], formats
    listed = re.search(r"Format\s+\(([^)]*)\)", out)
    assert listed, out
    assert re.split(r"[`,\s]+", listed[1].strip("` ")) == formats, listed[0]


def test_missing_plugin_file_is_an_error(nix_without_plugin):
    r = nix_without_plugin.run("nix-instantiate", "--option", "plugin-files", "/nonexistent/plugin.so",
                               "--eval", "-E", "1")
    assert r.returncode != 0
    assert "/nonexistent/plugin.so" in r.stderr


def test_wrong_argument_type(nix):
    r = nix.eval("builtins.repartImage 42")
    assert_eval_error(r)
    assert "builtins.repartImage" in r.stderr
    assert "attribute set" in r.stderr
