"""builtins.repartImage in a flake with no inputs, under pure evaluation."""
import pytest

import uuids
from conftest import DEFAULT_SEED

pytestmark = pytest.mark.every_nix

FLAKE = """{
  description = "an image from builtins.repartImage";
  outputs = { self }: {
    packages.x86_64-linux.default = builtins.repartImage {
      name = "image";
      partitions.esp = {
        contents."/hello.txt".source = ./hello.txt;
        repartConfig = { Type = "esp"; Format = "vfat"; SizeMinBytes = "32M"; };
      };
    };
  };
}
"""


def write_flake(nix):
    nix.write("flake/flake.nix", FLAKE)
    nix.write("flake/hello.txt", "hello\n")
    return nix.dir / "flake"


def test_flake_output_evaluates_purely(nix):
    d = write_flake(nix)
    r = nix.run("nix", "eval", "--json", f"path:{d}#packages.x86_64-linux.default.image.diskUuid")
    assert r.returncode == 0, r.stderr
    assert r.json() == uuids.disk_uuid(DEFAULT_SEED)


def test_flake_output_is_a_derivation(nix):
    d = write_flake(nix)
    r = nix.run("nix", "eval", "--json", f"path:{d}#packages.x86_64-linux.default.drvPath")
    assert r.returncode == 0, r.stderr
    drv = r.json()
    assert drv.endswith("-image.drv")
    refs = nix.run("nix-store", "-q", "--references", drv)
    assert refs.returncode == 0, refs.stderr
    assert any(line.endswith("-hello.txt") for line in refs.stdout.split()), refs.stdout


def test_pure_eval_option(nix):
    expr = ('(builtins.repartImage { name = "x"; partitions.r.repartConfig.Type = "root"; })'
            '.image.partitions.r.uuid')
    r = nix.run("nix-instantiate", "--option", "pure-eval", "true", "--eval", "--json", "-E", expr)
    assert r.returncode == 0, r.stderr
    assert r.json() == "57bd1ad1-c688-450a-ba37-d1792ec72fbb"
