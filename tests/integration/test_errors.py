"""Bad input: a Nix evaluation error that names the attribute and points at
where it was written; never a crash.

Each case is a whole Nix file.  `«` marks the place the error must point at
(it is removed before Nix reads the file); a case without it is about the
argument as a whole, and the error must point into the file.
"""
import re
import textwrap

import pytest

from conftest import HELPERS, assert_eval_error, call_position, error_position, one_error_report

pytestmark = pytest.mark.every_nix

MARK = "«"


def image(partitions: str, top: str = "", helpers: str = "") -> str:
    return HELPERS + helpers + textwrap.dedent("""\
        builtins.repartImage {
          name = "image";
        {top}
          partitions = {
        {partitions}
          };
        }
        """).replace("{top}", textwrap.indent(textwrap.dedent(top), "  ")) \
            .replace("{partitions}", textwrap.indent(textwrap.dedent(partitions), "    "))


def root(config: str, extra: str = "") -> str:
    """A partition `root` with the given repartConfig body and other attributes."""
    return ("root = {\n" + textwrap.indent(textwrap.dedent(extra), "  ")
            + "  repartConfig = {\n" + textwrap.indent(textwrap.dedent(config), "    ")
            + "  };\n};\n")


EXT4 = 'Type = "root";\nFormat = "ext4";\n'

CASES = [
    # (id, file text, attribute path, words the message must contain)
    ("name-missing", HELPERS + 'builtins.repartImage { partitions.root.repartConfig.Type = "root"; }',
     "name", ["name"]),
    ("name-not-string", image(root(EXT4)).replace('name = "image";', f'{MARK}name = 42;'),
     "name", ["string", "integer"]),
    ("name-empty", image(root(EXT4)).replace('name = "image";', f'{MARK}name = "";'),
     "name", ["empty"]),
    ("name-slash", image(root(EXT4)).replace('name = "image";', f'{MARK}name = "a/b";'),
     "name", ["/"]),
    ("seed-malformed", image(root(EXT4), top=f'{MARK}seed = "not-a-uuid";'),
     "seed", ["UUID"]),
    ("sector-size-odd", image(root(EXT4), top=f'{MARK}sectorSize = 1000;'),
     "sectorSize", ["512", "4096"]),
    ("sector-size-string", image(root(EXT4), top=f'{MARK}sectorSize = "512";'),
     "sectorSize", ["integer"]),
    ("image-size-suffix", image(root(EXT4), top=f'{MARK}imageSize = "12Q";'),
     "imageSize", ["12Q"]),
    ("split-not-bool", image(root(EXT4), top=f'{MARK}split = "yes";'),
     "split", ["Boolean"]),
    ("compression-algorithm", image(root(EXT4), top=f'compression = {{ enable = true; {MARK}algorithm = "gzip"; }};'),
     "compression.algorithm", ["gzip", "zstd", "xz"]),
    ("compression-level", image(root(EXT4), top=f'compression = {{ enable = true; {MARK}level = 99; }};'),
     "compression.level", ["99"]),
    ("architecture-unknown", image(root(EXT4), top=f'{MARK}architecture = "mips";'),
     "architecture", ["mips"]),
    ("top-level-typo", image(root(EXT4), top=f'{MARK}sectorsize = 512;'),
     "sectorsize", ["sectorSize"]),
    ("partitions-missing", HELPERS + 'builtins.repartImage { name = "x"; }',
     "partitions", ["partitions"]),
    ("partitions-string", HELPERS + f'builtins.repartImage {{ name = "x"; {MARK}partitions = "esp"; }}',
     "partitions", ["attribute set", "string"]),
    ("partitions-list", HELPERS + f'builtins.repartImage {{ name = "x"; {MARK}partitions = [ ]; }}',
     "partitions", ["attribute set", "list"]),
    ("partition-name-chars", image(f'{MARK}"bad name" = {{ repartConfig.Type = "root"; }};'),
     "bad name", ["bad name"]),
    ("repart-config-missing", image(f'{MARK}root = {{ storePaths = [ ]; }};'),
     "partitions.root.repartConfig", ["repartConfig"]),
    ("type-missing", image(f'root = {{ {MARK}repartConfig = {{ Format = "ext4"; }}; }};'),
     "partitions.root.repartConfig.Type", ["Type"]),
    ("type-unknown", image(root(f'{MARK}Type = "rot";')),
     "partitions.root.repartConfig.Type", ["rot", "root"]),
    ("key-typo", image(root(EXT4 + f'{MARK}Lable = "nixos";')),
     "partitions.root.repartConfig.Lable", ["Label"]),
    ("key-not-implemented", image(root(EXT4 + f'{MARK}Encrypt = "key-file";')),
     "partitions.root.repartConfig.Encrypt", ["not implement"]),
    ("verity-without-match-key", image(root(EXT4 + f'{MARK}Verity = "data";')),
     "partitions.root.repartConfig.VerityMatchKey", ["required with Verity=data"]),
    ("format-not-supported", image(root(f'Type = "root";\n{MARK}Format = "btrfs";')),
     "partitions.root.repartConfig.Format", ["btrfs", "not"]),
    ("format-invalid", image(root(f'Type = "root";\n{MARK}Format = "ext5";')),
     "partitions.root.repartConfig.Format", ["ext5"]),
    ("size-malformed", image(root(EXT4 + f'{MARK}SizeMinBytes = "96Q";')),
     "partitions.root.repartConfig.SizeMinBytes", ["96Q"]),
    ("size-min-over-max", image(root(EXT4 + f'{MARK}SizeMinBytes = "2G";\nSizeMaxBytes = "1G";')),
     "partitions.root.repartConfig.SizeMinBytes", ["SizeMaxBytes"]),
    ("padding-min-over-max", image(root(EXT4 + f'{MARK}PaddingMinBytes = "2M";\nPaddingMaxBytes = "1M";')),
     "partitions.root.repartConfig.PaddingMinBytes", ["PaddingMaxBytes"]),
    ("label-too-long", image(root(EXT4 + f'{MARK}Label = "{"x" * 37}";')),
     "partitions.root.repartConfig.Label", ["36"]),
    ("label-too-long-utf16", image(root(EXT4 + f'{MARK}Label = "{"😀" * 19}";')),
     "partitions.root.repartConfig.Label", ["36"]),
    ("uuid-malformed", image(root(EXT4 + f'{MARK}UUID = "xyz";')),
     "partitions.root.repartConfig.UUID", ["xyz"]),
    ("uuid-duplicate", image(
        'a = { repartConfig = { Type = "linux-generic"; UUID = "11111111-2222-4333-8444-555555555555"; }; };\n'
        f'b = {{ repartConfig = {{ Type = "linux-generic"; {MARK}UUID = "11111111-2222-4333-8444-555555555555"; }}; }};\n'),
     "partitions.b.repartConfig.UUID", ["partitions.a"]),
    ("label-duplicate", image(
        'a = { repartConfig = { Type = "linux-generic"; Label = "data"; }; };\n'
        f'b = {{ repartConfig = {{ Type = "linux-generic"; {MARK}Label = "data"; }}; }};\n'),
     "partitions.b.repartConfig.Label", ["partitions.a"]),
    ("contents-relative", image(root(EXT4, extra=f'contents = {{ {MARK}"etc/hostname" = {{ source = ./hostname; }}; }};')),
     "contents", ["absolute"]),
    ("contents-climbs", image(root(EXT4, extra=f'contents = {{ {MARK}"/etc/../../x" = {{ source = ./hostname; }}; }};')),
     "contents", [".."]),
    ("contents-source-missing", image(root(EXT4, extra=f'contents = {{ {MARK}"/etc/hostname" = {{ }}; }};')),
     "source", ["source"]),
    ("contents-source-type", image(root(EXT4, extra=f'contents = {{ "/etc/hostname" = {{ {MARK}source = 42; }}; }};')),
     "source", ["integer"]),
    ("contents-source-typo", image(root(EXT4, extra=f'contents = {{ "/etc/hostname" = {{ {MARK}src = ./hostname; }}; }};')),
     "src", ["source"]),
    ("contents-source-no-context", image(root(EXT4, extra=f'contents = {{ "/etc/hostname" = {{ {MARK}source = "/etc/hostname"; }}; }};')),
     "source", ["context"]),
    ("contents-source-absent-file", image(root(EXT4, extra=f'contents = {{ "/etc/motd" = {{ {MARK}source = ./no-such-file; }}; }};')),
     "source", ["no-such-file"]),
    ("store-paths-not-store", image(root(EXT4, extra=f'{MARK}storePaths = [ "/tmp/foo" ];')),
     "storePaths", ["/tmp/foo"]),
    ("store-paths-subpath", image(root(EXT4, extra=f'{MARK}storePaths = [ "${{mk "pkg" [ ]}}/bin" ];')),
     "storePaths", ["/bin"]),
    ("store-paths-not-list", image(root(EXT4, extra=f'{MARK}storePaths = mk "pkg" [ ];')),
     "storePaths", ["list"]),
    ("minimize-best-writable", image(root('Type = "root";\nFormat = "vfat";\n' + f'{MARK}Minimize = "best";')),
     "partitions.root.repartConfig.Minimize", ["read-only", "ext4", "vfat"]),
    ("minimize-unknown", image(root(EXT4 + f'{MARK}Minimize = "sometimes";')),
     "partitions.root.repartConfig.Minimize", ["sometimes"]),
    ("weight-negative", image(root(EXT4 + f'{MARK}Weight = -1;')),
     "partitions.root.repartConfig.Weight", ["-1"]),
    ("weight-huge", image(root(EXT4 + f'{MARK}Weight = 2000000;')),
     "partitions.root.repartConfig.Weight", ["2000000"]),
    ("boolean-malformed", image(root(EXT4 + f'{MARK}NoAuto = "maybe";')),
     "partitions.root.repartConfig.NoAuto", ["maybe"]),
    ("flags-malformed", image(root(EXT4 + f'{MARK}Flags = "0xZZ";')),
     "partitions.root.repartConfig.Flags", ["0xZZ"]),
    ("priority-malformed", image(root(EXT4 + f'{MARK}Priority = "high";')),
     "partitions.root.repartConfig.Priority", ["high"]),
    ("copy-files-relative", image(root(EXT4 + f'{MARK}CopyFiles = "relative";')),
     "partitions.root.repartConfig.CopyFiles", ["relative"]),
    ("make-directories-relative", image(root(EXT4 + f'{MARK}MakeDirectories = [ "var" ];')),
     "partitions.root.repartConfig.MakeDirectories", ["var"]),
    ("list-for-scalar-key", image(root(f'{MARK}Type = [ "root" ];')),
     "partitions.root.repartConfig.Type", ["list"]),
    ("attrs-for-scalar-key", image(root(EXT4 + f'{MARK}Label = {{ }};')),
     "partitions.root.repartConfig.Label", ["attribute set"]),
    ("function-for-key", image(root(f'{MARK}Type = x: x;')),
     "partitions.root.repartConfig.Type", ["function"]),
    ("store-prefix-relative", image(root(EXT4, extra=f'{MARK}nixStorePrefix = "nix/store";')),
     "partitions.root.nixStorePrefix", ["absolute"]),
    ("strip-prefix-not-bool", image(root(EXT4, extra=f'{MARK}stripNixStorePrefix = "yes";')),
     "partitions.root.stripNixStorePrefix", ["Boolean"]),
    ("split-name-specifier", image(root(EXT4 + f'{MARK}SplitName = "%x";')),
     "partitions.root.repartConfig.SplitName", ["%x"]),
    ("partition-attr-typo", image(f'root = {{ repartConfig.Type = "root"; {MARK}storePath = [ ]; }};'),
     "partitions.root.storePath", ["storePaths"]),
    # Issue 11: what the builder refused with reasons known here.
    ("partitions-too-many", HELPERS + 'builtins.repartImage { name = "x"; ' + MARK +
     'partitions = builtins.listToAttrs (builtins.genList (i: { name = "p${toString i}"; '
     'value.repartConfig.Type = "linux-generic"; }) 129); }',
     "partitions", ["129 partitions", "128 entries"]),
    ("label-outside-bmp", image(root(EXT4 + f'{MARK}Label = "nix😀";')),
     "partitions.root.repartConfig.Label", ["Basic Multilingual Plane"]),
    ("vfat-label-space", image(f'esp.repartConfig = {{ Type = "esp"; Format = "vfat"; {MARK}Label = " boot"; }};'),
     "partitions.esp.repartConfig.Label", ["FAT label", "starts with a space"]),
    ("image-size-too-small", image(root(EXT4), top=f'{MARK}imageSize = "8M";'),
     "imageSize", ["partitions.root needs", "the image needs at least"]),
    ("image-size-no-room-for-gpt", image(root(EXT4), top=f'{MARK}imageSize = 4096;'),
     "imageSize", ["cannot hold two GPTs"]),
    ("size-max-below-ext4", image(root(EXT4 + f'SizeMinBytes = "4K";\n{MARK}SizeMaxBytes = "512K";')),
     "partitions.root.repartConfig.SizeMaxBytes", ["1048576", "SizeMaxBytes=524288"]),
    ("vfat-target-colon", image(f'esp = {{ repartConfig = {{ Type = "esp"; Format = "vfat"; }}; '
                                f'contents = {{ {MARK}"/a:b".source = ./hostname; }}; }};'),
     'partitions.esp.contents."/a:b"', ["cannot contain ':'", "vfat"]),
    ("vfat-target-reserved", image(f'esp = {{ repartConfig = {{ Type = "esp"; Format = "vfat"; '
                                   f'{MARK}MakeDirectories = [ "/EFI/con" ]; }}; }};'),
     "partitions.esp.repartConfig.MakeDirectories", ["CON is a reserved DOS device name"]),
    ("vfat-target-case", image(f'esp = {{ repartConfig = {{ Type = "esp"; Format = "vfat"; }}; contents = {{ '
                               f'"/EFI/BOOT/BOOTX64.EFI".source = ./hostname; {MARK}"/efi/x".source = ./hostname; }}; }};'),
     'partitions.esp.contents."/efi/x"', ["differ only in case"]),
    ("vfat-target-short-non-ascii", image(f'esp = {{ repartConfig = {{ Type = "esp"; Format = "vfat"; '
                                          f'{MARK}CopyFiles = "${{./hostname}}:/über"; }}; }};'),
     "partitions.esp.repartConfig.CopyFiles", ["8.3"]),
    ("source-set-out-path-itself", image(root(EXT4, extra=f'contents."/x" = {{ {MARK}source = let s = {{ outPath = s; }}; in s; }};')),
     'partitions.root.contents."/x".source', ["64 steps"]),
    ("source-set-out-path-throws", image(root(EXT4, extra=f'contents."/x" = {{ {MARK}source = {{ outPath = throw "no output"; }}; }};')),
     'partitions.root.contents."/x".source', ["cannot coerce the set to a string", "no output"]),
    ("store-path-set-to-string-int", image(root(EXT4, extra=f'{MARK}storePaths = [ {{ __toString = self: 42; }} ];')),
     "partitions.root.storePaths", ["cannot coerce"]),
]


@pytest.mark.parametrize("text,path,words", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input(nix, text, path, words):
    nix.write("hostname", "machine\n")
    mark = text.find(MARK)
    file = nix.write("bad.nix", text.replace(MARK, ""))
    r = nix.instantiate(file)
    assert_eval_error(r)
    msg = r.stderr
    # One report, not a report quoted in another ("…: error: …").
    assert one_error_report(msg), msg
    assert "builtins.repartImage: " + path in msg or f"builtins.repartImage: {path}" in msg \
        or re.search(r"builtins\.repartImage: [^\n]*" + re.escape(path), msg), msg
    for w in words:
        assert w.lower() in msg.lower(), f"{w!r} not in: {msg}"
    pos = error_position(msg)
    if pos is None and mark < 0 and not nix.version.host:
        # About the argument as a whole: its position is the call's, which
        # Nix after 2.8 prints once, as the trace (call_position()).
        pos = call_position(msg)
    assert pos is not None, msg
    assert pos[0] == str(file), msg
    if mark >= 0:
        before = text[:mark]
        line = before.count("\n") + 1
        column = mark - (before.rfind("\n") + 1) + 1
        assert (pos[1], pos[2]) == (line, column), msg
    # Nix after 2.8 also shows where the builtin was called, first.
    call = call_position(msg)
    if nix.version.host:
        assert call is None, msg
    else:
        assert call is not None, msg
        call_line = text.replace(MARK, "")[:text.replace(MARK, "").index("builtins.repartImage")].count("\n") + 1
        assert (call[0], call[1]) == (str(file), call_line), msg


