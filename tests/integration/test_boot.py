"""The examples in nix-examples/, built through real Nix with the plugin, as
plain expressions and as the flake; the two that boot, booted.

A boot is QEMU (q35) with Debian's OVMF: the firmware must find the image's
ESP and run /EFI/BOOT/BOOTX64.EFI — the UKI itself in `appliance`,
systemd-boot in `store-partition`, which must find the UKI in /EFI/Linux/ —
and the kernel and initrd from Debian's packages must find the partition by
its GPT name, mount it, run the example's program from the closure copied
into it and power off.  The program prints a line naming something read from
the closure and how many store paths it sees; the test compares that with
the closure Nix knows.

QEMU emulates the CPU (TCG): a /dev/kvm that exists does not always work
(here it hangs in nested virtualisation).  NRI_QEMU_ACCEL=kvm uses it;
NRI_BOOT_TIMEOUT (seconds, default 180) bounds each boot.
"""
import glob
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import BUILD, ROOT

EXAMPLES = ROOT / "nix-examples"
OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS.fd")
BOOT_TIMEOUT = int(os.environ.get("NRI_BOOT_TIMEOUT", "180"))
ACCEL = os.environ.get("NRI_QEMU_ACCEL", "tcg")
FLAKE_FEATURES = ["--extra-experimental-features", "nix-command flakes"]


def missing_debian_packages(boot=False):
    """The Debian packages whose files the bootable examples need (to build,
    and with boot=True to boot) that are not installed."""
    need = {
        "linux-image-amd64": glob.glob("/boot/vmlinuz-*") and glob.glob("/lib/modules/*/modules.dep"),
        "busybox-static": Path("/bin/busybox").exists(),
        "systemd-boot-efi": Path("/usr/lib/systemd/boot/efi/linuxx64.efi.stub").exists(),
        "binutils": shutil.which("objcopy", path="/usr/bin:/bin"),
        "cpio": shutil.which("cpio", path="/usr/bin:/bin"),
    }
    if boot:
        need["qemu-system-x86"] = shutil.which("qemu-system-x86_64")
        need["ovmf"] = OVMF_CODE.exists() and OVMF_VARS.exists()
    return sorted(p for p, present in need.items() if not present)


def require_debian_packages(boot=False):
    missing = missing_debian_packages(boot)
    if missing:
        pytest.skip("needs Debian packages: apt-get install " + " ".join(missing))


def build_example(nix, name):
    """nix-build nix-examples/<name>; returns the output directory."""
    r = nix.build(EXAMPLES / name)
    assert r.returncode == 0, r.stderr
    out = Path(r.stdout.strip())
    assert (out / f"{name}.raw").is_file(), list(out.iterdir())
    return out


def partitions(out):
    """repart-output.json, by label."""
    return {p["label"]: p for p in json.loads((out / "repart-output.json").read_text())}


def esp_file(nix, image, esp, path):
    """The bytes of a file on the ESP, through mtools."""
    dest = nix.dir / "esp-file"
    dest.unlink(missing_ok=True)
    r = subprocess.run(["mcopy", "-n", "-i", f"{image}@@{esp['offset']}", "::" + path, str(dest)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return dest.read_bytes()


def pe_sections(nix, data):
    """The section names of a PE file (an EFI program), through objdump."""
    path = nix.dir / "program.efi"
    path.write_bytes(data)
    r = subprocess.run(["objdump", "-h", str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return {line.split()[1] for line in r.stdout.splitlines() if line.strip()[:1].isdigit()}


class Boot:
    def __init__(self, console, returncode, seconds):
        self.console = console
        self.returncode = returncode
        self.seconds = seconds

    def kernel_command_line(self):
        m = re.search(r"Kernel command line: (.*?)\r?$", self.console, re.M)
        assert m, self.tail()
        return m.group(1).split()

    def tail(self, n=4000):
        return "console output (last part):\n" + self.console[-n:]


def boot(tmp_path, image):
    """Boots a copy of `image` under QEMU with OVMF until it powers off, or
    fails the test at BOOT_TIMEOUT."""
    vars_fd = tmp_path / "OVMF_VARS.fd"
    disk = tmp_path / "disk.raw"
    shutil.copyfile(OVMF_VARS, vars_fd)
    shutil.copyfile(image, disk)
    cmd = ["qemu-system-x86_64", "-machine", "q35", "-accel", ACCEL, "-m", "512",
           "-display", "none", "-serial", "stdio", "-no-reboot",
           "-drive", f"if=pflash,format=raw,readonly=on,file={OVMF_CODE}",
           "-drive", f"if=pflash,format=raw,file={vars_fd}",
           "-drive", f"file={disk},format=raw,if=virtio"]
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    timed_out = False
    try:
        out, _ = proc.communicate(timeout=BOOT_TIMEOUT)
    except subprocess.TimeoutExpired:
        timed_out = True
        proc.kill()
        out, _ = proc.communicate()
    b = Boot(out.decode(errors="replace"), proc.returncode, time.monotonic() - start)
    if timed_out:
        pytest.fail(f"no power-off within {BOOT_TIMEOUT} s "
                    f"(marker seen: {'NRI-BOOT-OK' in b.console})\n" + b.tail())
    return b


def report_boot_time(name, b):
    """Prints the boot's duration (pytest -s) and adds it to
    test-logs/boot-seconds.txt when tests/run made that directory."""
    line = f"{name}: booted and powered off in {b.seconds:.1f} s ({ACCEL})"
    print(line)
    logs = BUILD / "test-logs"
    if logs.is_dir():
        with open(logs / "boot-seconds.txt", "a") as f:
            f.write(line + "\n")


def closure_size(nix, path):
    r = nix.run("nix-store", "--query", "--requisites", path)
    assert r.returncode == 0, r.stderr
    return len(r.stdout.split())


def assert_booted(nix, b, marker):
    """The example's program ran from the image and saw its whole closure;
    then the machine powered off (not a panic, not a reset)."""
    m = re.search(rf"^{re.escape(marker)} \((\d+) store paths\)\r?$", b.console, re.M)
    assert m, b.tail()
    program = next(a for a in b.kernel_command_line() if a.startswith("nri.run="))
    package = re.match(r"nri\.run=(/nix/store/[^/]+)/", program).group(1)
    assert int(m.group(1)) == closure_size(nix, package), b.tail()
    assert "Kernel panic" not in b.console, b.tail()
    assert "reboot: Power down" in b.console, b.tail()
    assert b.returncode == 0, b.tail()


def test_basic_builds(nix):
    out = build_example(nix, "basic")
    parts = partitions(out)
    assert sorted(parts) == ["esp", "nixos"]
    assert parts["nixos"]["type"] == "root-x86-64"


def test_appliance_esp_holds_the_uki(nix):
    require_debian_packages()
    out = build_example(nix, "appliance")
    image = out / "appliance.raw"
    parts = partitions(out)
    assert parts["nixos"]["type"] == "root-x86-64"
    uki = esp_file(nix, image, parts["esp"], "/EFI/BOOT/BOOTX64.EFI")
    assert uki == esp_file(nix, image, parts["esp"], "/EFI/Linux/appliance.efi")
    assert {".linux", ".initrd", ".cmdline", ".osrel"} <= pe_sections(nix, uki)


def test_appliance_boots(nix, tmp_path):
    require_debian_packages(boot=True)
    out = build_example(nix, "appliance")
    b = boot(tmp_path, out / "appliance.raw")
    report_boot_time("appliance", b)
    assert "root=PARTLABEL=nixos" in b.kernel_command_line()
    assert re.search(r"^nri-initrd: mounted /dev/vda\d+ \(nixos\) at /sysroot, read-only",
                     b.console, re.M), b.tail()
    assert_booted(nix, b, "NRI-BOOT-OK appliance: hello from the root partition")


def test_store_partition_boots(nix, tmp_path):
    require_debian_packages(boot=True)
    out = build_example(nix, "store-partition")
    parts = partitions(out)
    assert parts["nix-store"]["type"] == "linux-generic"
    # The firmware runs systemd-boot; only systemd-boot knows /EFI/Linux/.
    image = out / "store-partition.raw"
    boot_loader = esp_file(nix, image, parts["esp"], "/EFI/BOOT/BOOTX64.EFI")
    assert ".linux" not in pe_sections(nix, boot_loader)
    uki = esp_file(nix, image, parts["esp"], "/EFI/Linux/store-partition.efi")
    assert ".linux" in pe_sections(nix, uki)
    b = boot(tmp_path, image)
    report_boot_time("store-partition", b)
    assert re.search(r"^nri-initrd: mounted /dev/vda\d+ \(nix-store\) at /nix/store, read-only",
                     b.console, re.M), b.tail()
    assert_booted(nix, b, "NRI-BOOT-OK store-partition: hello from the nix-store partition")


@pytest.mark.parametrize("name", ["basic", "store-partition", "appliance", "verity-appliance"])
def test_flake_builds_the_same_image(nix, name):
    """nix build path:nix-examples#<name> gives the store path nix-build gives."""
    if name != "basic":
        require_debian_packages()
    r = nix.run("nix", *FLAKE_FEATURES, "build", "--json", "--no-link",
                f"path:{EXAMPLES}#{name}", timeout=600)
    assert r.returncode == 0, r.stderr
    flake_out = r.json()[0]["outputs"]["out"]
    assert Path(flake_out, f"{name}.raw").is_file()
    assert str(build_example(nix, name)) == flake_out


# ---- the verity appliance (issue 14) -----------------------------------------

def verity_appliance(nix):
    """Builds nix-examples/verity-appliance; returns (image, its JSON by label,
    the intermediate image's directory)."""
    out = build_example(nix, "verity-appliance")
    r = nix.build(EXAMPLES / "verity-appliance", "-A", "intermediate")
    assert r.returncode == 0, r.stderr
    return out / "verity-appliance.raw", partitions(out), Path(r.stdout.strip())


def test_verity_appliance_is_the_intermediate_image_plus_an_esp(nix):
    """The store and hash partitions are the intermediate image's byte for
    byte, and the UKI's usrhash= is their root hash."""
    require_debian_packages()
    image, parts, inter = verity_appliance(nix)
    inter_parts = partitions(inter)
    import imagecheck
    for label in ("nix-store", "nix-store-verity"):
        a, b = parts[label], inter_parts[label]
        assert a["uuid"] == b["uuid"] and a["raw_size"] == b["raw_size"], (a, b)
        assert imagecheck.range_sha256(image, a["offset"], a["raw_size"]) == \
            imagecheck.range_sha256(inter / "verity-store.raw", b["offset"], b["raw_size"])
    rh = parts["nix-store-verity"]["roothash"]
    assert rh == inter_parts["nix-store-verity"]["roothash"] and parts["nix-store"]["roothash"] is None
    uki = esp_file(nix, image, parts["10-esp"] if "10-esp" in parts else parts["esp"], "/EFI/BOOT/BOOTX64.EFI")
    path = nix.dir / "uki.efi"
    path.write_bytes(uki)
    r = subprocess.run(["objcopy", "-O", "binary", "--only-section=.cmdline", str(path), str(nix.dir / "cmdline")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert f"usrhash={rh}" in (nix.dir / "cmdline").read_text().split()


def flip_store_byte(image, parts, marker, dest):
    """A copy of `image` with one byte of `marker` (text of a store file) in
    the store partition inverted; returns its path."""
    store = parts["nix-store"]
    with open(image, "rb") as f:
        f.seek(store["offset"])
        data = f.read(store["raw_size"])
    i = data.find(marker)
    assert i >= 0 and data.find(marker, i + 1) < 0, "the marker is not in the store partition exactly once"
    shutil.copyfile(image, dest)
    with open(dest, "r+b") as f:
        f.seek(store["offset"] + i + 5)
        b = f.read(1)
        f.seek(store["offset"] + i + 5)
        f.write(bytes([b[0] ^ 0x01]))
    return dest


def test_verity_appliance_boots(nix, tmp_path):
    """It boots, the initrd opens the store with dm-verity and the root hash
    from the UKI's command line, and the program runs from the verified
    store; a copy with one byte of a store file flipped boots too, but
    reading that file fails (dm-verity: I/O error)."""
    require_debian_packages(boot=True)
    if not shutil.which("veritysetup"):
        pytest.skip("needs Debian packages: apt-get install cryptsetup-bin")
    image, parts, _ = verity_appliance(nix)
    b = boot(tmp_path, image)
    report_boot_time("verity-appliance", b)
    rh = parts["nix-store-verity"]["roothash"]
    assert f"usrhash={rh}" in b.kernel_command_line()
    assert re.search(r"^nri-initrd: opened /dev/vda\d+ \(nix-store\) with dm-verity", b.console, re.M), b.tail()
    assert re.search(r"^nri-initrd: mounted /dev/mapper/nri-verity \(nix-store\) at /nix/store, read-only",
                     b.console, re.M), b.tail()
    assert_booted(nix, b, "NRI-BOOT-OK verity-appliance: hello from the verified store, "
                          "line 5000 of the verified store")

    bad = flip_store_byte(image, parts, b"line 2500 of the verified store", tmp_path / "flipped.raw")
    b = boot(tmp_path, bad)
    (tmp_path / "flipped-console.txt").write_text(b.console)
    assert re.search(r"^nri-initrd: mounted /dev/mapper/nri-verity", b.console, re.M), b.tail()
    assert "NRI-VERITY-READ-FAILED" in b.console and "NRI-BOOT-OK" not in b.console, b.tail()
    assert re.search(r"I/O error|Input/output error", b.console), b.tail()
    assert re.search(r"device-mapper: verity: .*data block \d+ is corrupted", b.console), b.tail()
