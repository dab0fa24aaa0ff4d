"""What builtins.repartImage returns: a derivation whose structured
attributes carry the normalised spec, whose inputs are exactly what goes into
the image, and whose `image` attribute tells the UUIDs at evaluation time."""
import json

import pytest

import scenarios
import uuids
from conftest import DEFAULT_SEED, HELPERS

pytestmark = pytest.mark.every_nix

ESP_TYPE = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"
ROOT_X86_64 = "4f68bce3-e8cd-4db1-96e7-fbcaf984b709"
GENERIC = "0fc63daf-8483-4772-8e79-3d69d8477de4"
GROWFS = 1 << 59


def evaluate(nix, text):
    scenarios.write_inputs(nix)
    file = nix.write("image.nix", text)
    r = nix.run("nix-instantiate", "--eval", "--read-write-mode", "--strict", "--json", "-E",
                f"let s = import {file}; in s // {{ img = s.img.drvPath; }}")
    assert r.returncode == 0, r.stderr
    values = r.json()
    drv = nix.show_derivation(values["img"])
    attrs = json.loads(drv["env"]["__json"])
    return values, drv, attrs


def partition(**fields):
    """A partition of the spec with systemd-repart's defaults."""
    p = {
        "priority": 0, "weight": 1000, "paddingWeight": 0,
        "sizeMinBytes": None, "sizeMaxBytes": None,
        "paddingMinBytes": None, "paddingMaxBytes": None,
        "format": None, "minimize": "off",
        "readOnly": False, "noAuto": False, "growFileSystem": False, "flags": "0x0",
        "splitName": "%t", "contents": [], "copyFiles": [], "makeDirectories": [],
        "storePaths": [], "closure": None, "nixStorePrefix": "/nix/store", "nixPathRegistration": False,
        "deduplicateStore": False,
        "verity": "off", "verityMatchKey": None, "verityDataBlockSize": None, "verityHashBlockSize": None,
        "uuidFromRootHash": False, "copyBlocks": None,
    }
    p.update(fields)
    return p


def spec(**fields):
    s = {
        "specVersion": 2, "version": None, "seed": DEFAULT_SEED, "architecture": "x86-64",
        "sectorSize": 512, "imageSize": None, "split": False, "compression": None,
        "storeDir": "/nix/store", "diskUuid": uuids.disk_uuid(DEFAULT_SEED),
    }
    s.update(fields)
    return s


def test_esp_and_root(nix):
    values, drv, attrs = evaluate(nix, scenarios.ESP_AND_ROOT)
    esp_uuid = uuids.partition_uuid(DEFAULT_SEED, ESP_TYPE)
    esp_fs = uuids.fs_uuid(esp_uuid)
    assert attrs["repartSpec"] == spec(
        name="image", imageFile="image.raw",
        partitions=[
            partition(id="esp", partno=0, type="esp", typeUuid=ESP_TYPE, label="esp",
                      uuid=esp_uuid, fsUuid=esp_fs, vfatVolumeId=esp_fs[:8],
                      sizeMinBytes=96 * 1024 * 1024, format="vfat",
                      contents=[{"source": values["efi"], "target": "/EFI/BOOT/BOOTX64.EFI"}]),
            partition(id="root", partno=1, type="root-x86-64", typeUuid=ROOT_X86_64, label="nixos",
                      uuid=uuids.partition_uuid(DEFAULT_SEED, ROOT_X86_64),
                      fsUuid=uuids.fs_uuid(uuids.partition_uuid(DEFAULT_SEED, ROOT_X86_64)),
                      format="ext4", minimize="guess", growFileSystem=True, flags=hex(GROWFS),
                      storePaths=[values["top"]], closure="closure-1"),
        ])
    assert attrs["exportReferencesGraph"] == {"closure-1": [values["top"]]}
    # The builder comes from the bundle in the store (test_sandbox.py).
    assert attrs["builder"] == drv["builder"]
    assert drv["builder"].startswith("/nix/store/") and drv["builder"].endswith("-nix-repart-image-bundle/lib/ld.so")
    assert drv["system"] == "x86_64-linux"
    assert attrs["__structuredAttrs"] if "__structuredAttrs" in attrs else True
    # The DESIGN.md §5 check values, in the derivation itself.
    assert attrs["repartSpec"]["diskUuid"] == "b581fef7-24ed-4f31-990b-099ec86bba03"
    assert esp_uuid == "dac4058a-2fc0-4808-a7ef-b8b4501c00ce"
    assert esp_fs[:8] == "793a442b"


def test_store_partition(nix):
    values, drv, attrs = evaluate(nix, scenarios.STORE_PARTITION)
    u = uuids.partition_uuid(DEFAULT_SEED, GENERIC)
    assert attrs["repartSpec"] == spec(
        name="store", version="1.0", imageFile="store_1.0.raw",
        partitions=[
            partition(id="store", partno=0, type="linux-generic", typeUuid=GENERIC, label="nix-store",
                      uuid=u, fsUuid=uuids.fs_uuid(u), format="ext4",
                      storePaths=[values["top"]], closure="closure-0", nixStorePrefix="/"),
        ])
    assert attrs["exportReferencesGraph"] == {"closure-0": [values["top"]]}


def test_appliance(nix):
    values, drv, attrs = evaluate(nix, scenarios.APPLIANCE)
    parts = attrs["repartSpec"]["partitions"]
    assert [p["id"] for p in parts] == ["esp", "root"]
    assert parts[0]["contents"] == [
        {"source": values["uki"], "target": "/EFI/BOOT/BOOTX64.EFI"},
        {"source": values["uki"], "target": "/EFI/Linux/nixos.efi"},
    ]
    assert parts[1]["label"] == "nixos" and parts[1]["minimize"] == "guess"
    assert parts[0]["sizeMinBytes"] == 100663296


def test_inputs_are_what_goes_into_the_image(nix):
    values, drv, attrs = evaluate(nix, scenarios.ESP_AND_ROOT)
    refs = nix.run("nix-store", "-q", "--references", nix.eval(
        f"(import {nix.dir / 'image.nix'}).img.drvPath").json())
    assert refs.returncode == 0, refs.stderr
    got = set(refs.stdout.split())
    top_drv = nix.eval(f"(import {nix.dir / 'image.nix'}).img.drvPath")
    # The toplevel's derivation (which brings its closure) and the EFI file.
    toplevel_drv = [r for r in got if r.endswith("-toplevel.drv")]
    assert len(toplevel_drv) == 1, got
    assert values["efi"] in got
    # Nothing else: the dependency of toplevel comes through it, not directly.
    assert not [r for r in got if r.endswith("-dep.drv")], got
    assert top_drv.returncode == 0


def test_copy_files_source_with_a_target_is_an_input(nix):
    """CopyFiles = "SOURCE:TARGET": the derivation depends on SOURCE's store
    path.  The context used to be kept under the whole value
    ("/nix/store/…-b/share:/x"), which named no store path, so a source named
    only there was no input: built in the sandbox it was missing, built
    without, it was read from whatever the store held."""
    text = HELPERS + """let b = mk "copy-files-only" [ ]; in {
      b = b.drvPath;
      img = builtins.repartImage {
        name = "x";
        partitions.r.repartConfig = { Type = "root"; Format = "ext4"; CopyFiles = [ "${b}:/x" ]; };
      };
    }"""
    file = nix.write("image.nix", text)
    r = nix.eval(f"let v = import {file}; in {{ b = v.b; img = v.img.drvPath; }}")
    assert r.returncode == 0, r.stderr
    v = r.json()
    assert nix.show_derivation(v["img"])["inputDrvs"] == {v["b"]: ["out"]}


def test_image_attribute_at_evaluation_time(nix):
    scenarios.write_inputs(nix)
    file = nix.write("image.nix", scenarios.ESP_AND_ROOT)
    r = nix.eval(f"(import {file}).img.image")
    assert r.returncode == 0, r.stderr
    image = r.json()
    assert image["diskUuid"] == "b581fef7-24ed-4f31-990b-099ec86bba03"
    root = image["partitions"]["root"]
    assert root["uuid"] == "57bd1ad1-c688-450a-ba37-d1792ec72fbb"
    assert root["fsUuid"] == "7981aaf4-2a9a-4f86-9f1f-5b42c8f28bbf"
    assert root["type"] == "root-x86-64"
    assert root["typeUuid"] == ROOT_X86_64
    assert root["label"] == "nixos"
    esp = image["partitions"]["esp"]
    assert esp["uuid"] == "dac4058a-2fc0-4808-a7ef-b8b4501c00ce"
    assert esp["vfatVolumeId"] == "793a442b"
    assert esp["label"] == "esp"
    # Reading the UUIDs does not need the image to be built (no IFD): the
    # builder named here does not even exist in this test's configuration.
    nix.configure(repart_image_builder="/nonexistent/builder")
    r2 = nix.eval(f"(import {file}).img.image.partitions.root.uuid")
    assert r2.returncode == 0 and r2.json() == root["uuid"], r2.stderr


def test_derivation_shape(nix):
    scenarios.write_inputs(nix)
    file = nix.write("image.nix", scenarios.ESP_AND_ROOT)
    r = nix.eval(f"let i = (import {file}).img; in {{ inherit (i) type name; d = i.drvPath; o = i.outPath; }}")
    assert r.returncode == 0, r.stderr
    v = r.json()
    assert v["type"] == "derivation"
    assert v["name"] == "image"
    assert v["d"].endswith("-image.drv") and v["o"].startswith("/nix/store/")


def test_builder_setting(nix):
    scenarios.write_inputs(nix)
    file = nix.write("image.nix", scenarios.ESP_AND_ROOT)
    nix.configure(repart_image_builder="/opt/other/builder")
    drv = nix.eval(f"(import {file}).img.drvPath").json()
    assert nix.show_derivation(drv)["builder"] == "/opt/other/builder"


def test_default_labels_and_uuids_of_repeated_types(nix):
    text = HELPERS + """builtins.repartImage {
      name = "x";
      partitions = {
        a.repartConfig.Type = "linux-generic";
        b.repartConfig.Type = "linux-generic";
        c.repartConfig = { Type = "linux-generic"; Label = "mine"; };
        d.repartConfig.Type = "linux-generic";
      };
    }"""
    file = nix.write("image.nix", text)
    r = nix.eval(f"(import {file}).image.partitions")
    assert r.returncode == 0, r.stderr
    p = r.json()
    assert [p[k]["label"] for k in "abcd"] == ["linux-generic", "linux-generic-2", "mine", "linux-generic-3"]
    assert [p[k]["uuid"] for k in "abcd"] == [uuids.partition_uuid(DEFAULT_SEED, GENERIC, k) for k in range(4)]


def test_partitions_are_ordered_by_name(nix):
    # Attribute sets iterate in symbol order; systemd-repart orders by name.
    text = HELPERS + """let zz = "zz"; in builtins.repartImage {
      name = "x";
      partitions = {
        ${zz}.repartConfig.Type = "swap";
        "10-b".repartConfig.Type = "var";
        "01-a".repartConfig.Type = "home";
      };
    }"""
    file = nix.write("image.nix", text)
    r = nix.eval(f"(import {file}).image.partitions")
    assert r.returncode == 0, r.stderr
    p = r.json()
    assert {k: v["partno"] for k, v in p.items()} == {"01-a": 0, "10-b": 1, "zz": 2}


@pytest.mark.parametrize("arch,type_uuid", [("x86-64", ROOT_X86_64),
                                            ("arm64", "b921b045-1df0-41c3-af44-4c6f280d3fae")])
def test_architecture(nix, arch, type_uuid):
    text = f'builtins.repartImage {{ name = "x"; architecture = "{arch}"; partitions.r.repartConfig.Type = "root"; }}'
    r = nix.eval(f"({text}).image.partitions.r")
    assert r.returncode == 0, r.stderr
    assert r.json()["typeUuid"] == type_uuid
    assert r.json()["uuid"] == uuids.partition_uuid(DEFAULT_SEED, type_uuid)


def test_null_seed_is_random(nix):
    text = 'builtins.repartImage { name = "x"; seed = null; partitions.r.repartConfig.Type = "root"; }'
    a = nix.eval(f"({text}).image.partitions.r.uuid")
    b = nix.eval(f"({text}).image.partitions.r.uuid")
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    assert a.json() != b.json()
    assert a.json() != uuids.partition_uuid(DEFAULT_SEED, ROOT_X86_64)


def test_explicit_seed_and_uuid(nix):
    seed = "11111111-2222-4333-8444-555555555555"
    explicit = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
    text = (f'builtins.repartImage {{ name = "x"; seed = "{seed}"; partitions = {{'
            f' a.repartConfig = {{ Type = "home"; UUID = "{explicit}"; }};'
            f' b.repartConfig.Type = "srv"; }}; }}')
    r = nix.eval(f"({text}).image")
    assert r.returncode == 0, r.stderr
    img = r.json()
    assert img["diskUuid"] == uuids.disk_uuid(seed)
    assert img["partitions"]["a"]["uuid"] == explicit
    assert img["partitions"]["a"]["fsUuid"] == uuids.fs_uuid(explicit)
    assert img["partitions"]["b"]["uuid"] == uuids.partition_uuid(seed, "3b8f8425-20e0-4f3b-907f-1a25a76f98e8")


def test_repart_config_value_forms(nix):
    # Integers, Booleans and lists are written the way NixOS writes them into
    # repart.d files, and parsed as systemd-repart parses those.
    text = """builtins.repartImage { name = "x"; partitions.r = { repartConfig = {
      Type = "srv"; Format = "ext4";
      SizeMinBytes = 10000000; SizeMaxBytes = "1.5G"; PaddingMinBytes = "1M";
      Weight = 500; PaddingWeight = "10"; Priority = -5;
      ReadOnly = true; NoAuto = "yes"; GrowFileSystem = false; Flags = "0x4";
      MakeDirectories = [ "/var/lib" "/srv//data/" ];
      SplitName = "%t-%U";
    }; }; }"""
    r = nix.run("nix-instantiate", "-E", text)
    assert r.returncode == 0, r.stderr
    drv = nix.show_derivation(r.stdout.strip())
    p = json.loads(drv["env"]["__json"])["repartSpec"]["partitions"][0]
    assert p["sizeMinBytes"] == 10000000 // 4096 * 4096          # rounded down
    assert p["sizeMaxBytes"] == 1610612736                        # 1.5 × 1024³, a multiple of 4096
    assert p["paddingMinBytes"] == 1048576
    assert (p["weight"], p["paddingWeight"], p["priority"]) == (500, 10, -5)
    assert (p["readOnly"], p["noAuto"], p["growFileSystem"]) == (True, True, False)
    assert p["makeDirectories"] == ["/var/lib", "/srv/data"]
    assert p["splitName"] == "%t-%U"
    # Flags= first, then the bits srv gives a meaning to.
    assert int(p["flags"], 16) == 0x4 | (1 << 60) | (1 << 63)
