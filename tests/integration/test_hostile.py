"""Hostile arguments (issue 7): random and malformed builtins.repartImage
arguments through real nix-instantiate, one process per case, in parallel.
Every case must end in a result (exit 0) or a clean evaluation error (exit 1
with "error:"): no signal, no abort, no "terminate called", no hang.

The generator mutates a valid argument set: at every level it swaps in values
of the wrong type, huge and negative numbers, empty and enormous strings, odd
Unicode, derivations, functions, paths, thousands of partitions and deep
`contents`; sets that stand for strings (fake derivations, outPath and
__toString, a set that is its own outPath), strings whose context names
another store path than they do, and the names file systems make themselves
(/lost+found).  A case that evaluates is instantiated; a few of those are
built too (NRI_HOSTILE_BUILDS), and each image that builds is checked
(conftest.every_image_is_checked).  The seed is fixed and printed; set

  NRI_HOSTILE_SEED=<int>     another seed
  NRI_HOSTILE_CASES=<int>    how many cases (default 200; thousands for a long run)
  NRI_HOSTILE_JOBS=<int>     parallel nix processes (default: CPUs)
  NRI_HOSTILE_BUILDS=<int>   how many of the cases that evaluate to build (default 6)

A failing case is written to <tmp>/case-<n>.nix and printed.
"""
import os
import random
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import BUILD_FAILED, HELPERS, one_error_report

# Every Nix of the suite: the evaluator half is what differs between them.
pytestmark = pytest.mark.every_nix

SEED = int(os.environ.get("NRI_HOSTILE_SEED", "20261126"))
CASES = int(os.environ.get("NRI_HOSTILE_CASES", "200"))
JOBS = int(os.environ.get("NRI_HOSTILE_JOBS", str(os.cpu_count() or 2)))
BUILDS = int(os.environ.get("NRI_HOSTILE_BUILDS", "6"))
# Cases not built yet, with why ({"text in the argument": "reason"}): none
# (/lost+found targets are built since the builder merges them into ext4's
# own, issue 11 item 5).
NOT_BUILT = {}
TIMEOUT = 120

CRASH_MARKERS = ("terminate called", "Aborted", "Segmentation fault", "core dumped", "AddressSanitizer",
                 "LeakSanitizer", "runtime error:", "std::bad_alloc", "stack overflow", "SIGSEGV")


def nix_str(s: str) -> str:
    out = ['"']
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "$":
            out.append("\\$")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def nix_attr_name(s: str) -> str:
    return nix_str(s)


ODD_STRINGS = [
    "", " ", "-", "/", "//", "/.", "/..", "/../../etc/passwd", ".", "..", "a/b", "\n", "\t",
    "é", "日本語", "\u202e\u202d", "\ufeff", "\u0301", "😀" * 40, "\udbff".encode("utf-8", "surrogatepass").decode("utf-8", "replace"),
    "x" * 37, "x" * 255, "x" * 256, "x" * 4097, "%", "%%", "%t%T%U%n%", "%z", "${x}", "\\", "\"",
    "0", "-1", "1e999", "0x", "0xffffffffffffffffff", "18446744073709551616", "9223372036854775808",
    "-9223372036854775808", "1.5G", "1.5", "4096", "96M", "1T", "16E", "17E", "99999999999999999999G",
    " 1M", "1M ", "1 M", "1MM", "1m", "-1M", "0M", "NaN", "inf", "auto", "AUTO",
    "esp", "root", "root-arm64", "swap", "usr-verity-sig", "linux-generic", "ROOT",
    "c12a7328-f81f-11d2-ba4b-00a0c93ec93b", "00000000-0000-0000-0000-000000000000",
    "ffffffff-ffff-ffff-ffff-ffffffffffff", "c12a7328f81f11d2ba4b00a0c93ec93b", "c12a7328-f81f-11d2-ba4b-00a0c93ec93",
    "ext4", "vfat", "xfs", "btrfs", "squashfs", "off", "guess", "best", "yes", "no", "true", "1",
    "/nix/store", "/nix/store/", "/nix/store/eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee-x", "/nix/store/x:/y", ":", "a:b:c",
    "/nix/store/../../etc", "zstd", "xz", "gzip", "x86-64", "arm64", "riscv64",
    "/lost+found", "lost+found", "/lost+found/x", ".", "/EFI/BOOT", "/efi/boot",
]

# Sets that stand for strings, and strings that name another store path than
# their context: each must meet the rules of the string it gives.
LAUNDERED = ('(builtins.substring 0 0 "${mk "ctx" []}" + '
             'builtins.unsafeDiscardStringContext "${mk "other" []}")')
STRING_LIKE = [
    '{ type = "derivation"; outPath = "/etc/passwd"; }',
    '{ type = "derivation"; outPath = "/nix/store/../../etc/passwd"; }',
    '{ type = "derivation"; outPath = "${mk "up" []}/../../etc"; }',
    '{ outPath = "/etc"; }',
    '{ outPath = ./case.nix; }',
    '{ outPath = mk "o" []; }',
    '{ outPath = { outPath = mk "oo" []; }; }',
    '{ __toString = self: "${mk "ts" []}"; }',
    '{ __toString = self: "/etc/passwd"; }',
    '{ __toString = self: 42; }',
    '{ __toString = 42; }',
    '{ outPath = throw "thrown by outPath"; }',
    '(let s = { outPath = s; }; in s)',
    LAUNDERED,
    '{ type = "derivation"; outPath = ' + LAUNDERED + '; }',
    '(builtins.appendContext "/nix/store/eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee-x" { })',
    '(builtins.appendContext "/nix/store/eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee-x" '
    '{ "/nix/store/eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee-x".path = true; })',
]


class Gen:
    def __init__(self, rng: random.Random):
        self.rng = rng
        self.hostility = 0.25

    def string(self) -> str:
        r = self.rng.random()
        if r < 0.6:
            return nix_str(self.rng.choice(ODD_STRINGS))
        if r < 0.7:
            n = self.rng.choice([1000, 65536, 1 << 20])
            return f'(builtins.concatStringsSep "" (builtins.genList (_: "x") {n}))'
        if r < 0.85:
            cps = [self.rng.choice([0x41, 0xe9, 0x3b1, 0x4e2d, 0x1f600, 0x202e, 0xfeff, 0x7f, 0x1, 0x10ffff])
                   for _ in range(self.rng.randint(1, 60))]
            return nix_str("".join(map(chr, cps)))
        return nix_str("".join(self.rng.choice("/.-_ :%aZ09é") for _ in range(self.rng.randint(0, 40))))

    def number(self) -> str:
        return self.rng.choice([
            "0", "1", "-1", "512", "4096", "4095", "1000000", "1000001", "2147483647", "-2147483648",
            "2147483648", "4294967296", "9223372036854775807", "(-9223372036854775807 - 1)",
            "9007199254740993", "1.5", "-0.0", "1.0e308", "(-1.0e308)", "0.1", str(self.rng.randint(-10**18, 10**18)),
            "(1.0e308 * 10)", "(0 - (1.0e308 * 10))",
        ])

    def odd_value(self, depth=0) -> str:
        k = self.rng.randrange(14)
        if k == 0:
            return "null"
        if k == 1:
            return self.rng.choice(["true", "false"])
        if k == 2:
            return self.number()
        if k in (3, 4):
            return self.string()
        if k == 5:
            return self.rng.choice(["./.", "/nonexistent", "/.", "/etc/hostname", "./case.nix"])
        if k == 6:
            return f'(mk "d{self.rng.randrange(1000)}" [])'
        if k == 7:
            return self.rng.choice(["(x: x)", "builtins.add", "({ a }: a)"])
        if k == 8 and depth < 3:
            return "[ " + " ".join(self.odd_value(depth + 1) for _ in range(self.rng.randint(0, 4))) + " ]"
        if k == 9 and depth < 3:
            return "{ " + "".join(f"{nix_attr_name(self.rng.choice(ODD_STRINGS) or 'e')} = "
                                  f"{self.odd_value(depth + 1)}; " for _ in range(self.rng.randint(0, 3))) + "}"
        if k == 10:
            return '{ type = "derivation"; }'
        if k == 11:
            return '{ outPath = "/nix/store/eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee-x"; type = "derivation"; }'
        if k == 12:
            return self.rng.choice(STRING_LIKE)
        return self.rng.choice(['"1M"', '"96M"', '"esp"', '"ext4"', '"vfat"', "1000", '"auto"'])

    def pick(self, good, bad):
        """One of the good choices, or (with the case's hostility) a bad one."""
        return self.rng.choice(bad if self.rng.random() < self.hostility else good)

    def maybe(self, good: str) -> str:
        """The good value, or (with the case's hostility) an odd one."""
        return good if self.rng.random() >= self.hostility else self.odd_value()

    def repart_config(self) -> str:
        keys = {
            "Type": lambda: nix_str(self.rng.choice(["esp", "root", "swap", "linux-generic", "home", "usr",
                                                    "xbootldr", "root-arm64", "var"])),
            "Format": lambda: nix_str(self.rng.choice(["ext4", "vfat"])),
            "Label": lambda: nix_str(self.pick(["x", "nixos", "ESP", "é" * 36], ["é" * 37, "", "a\nb"])),
            "UUID": lambda: nix_str("c12a7328-f81f-11d2-ba4b-00a0c93ec93b"),
            "Priority": lambda: self.number(),
            "Weight": lambda: self.number(),
            "PaddingWeight": lambda: self.number(),
            "SizeMinBytes": lambda: nix_str(self.rng.choice(["1M", "96M", "4096", "10M"])),
            "SizeMaxBytes": lambda: nix_str(self.rng.choice(["1M", "1G", "4096", "10M"])),
            "PaddingMinBytes": lambda: nix_str(self.rng.choice(["0", "1M"])),
            "PaddingMaxBytes": lambda: nix_str(self.rng.choice(["0", "1M"])),
            "CopyFiles": lambda: self.pick(['"${mk "cf" []}:/cf"', '"${mk "cf" []}:/lost+found/cf"'],
                                           [nix_str("/nix/store/eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee-x:/a"),
                                            nix_str("/etc:/a"), '"${mk "cf" []}:relative"',
                                            '"${' + LAUNDERED + '}:/a"', '"${mk "cf" []}:/a:b"']),
            "MakeDirectories": lambda: nix_str(self.rng.choice(["/a /b", "/lost+found", "/lost+found/a /b",
                                                                "/EFI/BOOT /efi/x", "/con"])),
            "Minimize": lambda: nix_str(self.pick(["off", "guess"], ["best", "on"])),
            "Flags": lambda: nix_str(self.pick(["0x1", "1", "0xffffffffffffffff"], ["0x10000000000000000", "-1", "0x"])),
            "NoAuto": lambda: self.rng.choice(["true", "false", '"yes"']),
            "ReadOnly": lambda: self.rng.choice(["true", "false", '"no"']),
            "GrowFileSystem": lambda: self.rng.choice(["true", "false"]),
            "SplitName": lambda: nix_str(self.pick(["%t", "%T", "%U", "%n", "-", "%%"], ["%z", "", "%", "a/b"])),
        }
        chosen = self.rng.sample(sorted(keys), self.rng.randint(0, 6))
        if "Type" not in chosen and self.rng.random() < 0.8:
            chosen.append("Type")
        body = "".join(f"{k} = {self.maybe(keys[k]())}; " for k in chosen)
        if self.rng.random() < 0.1:
            body += f"{nix_attr_name(self.rng.choice(ODD_STRINGS) or 'x')} = {self.odd_value()}; "
        return "{ " + body + "}"

    def contents(self) -> str:
        r = self.rng.random()
        if r < 0.1:
            depth = self.rng.choice([50, 200, 1000])
            target = "/" + "/".join("d" for _ in range(depth))
            return "{ " + f"{nix_str(target)}.source = ./case.nix; " + "}"
        if r < 0.15:
            # deep attribute nesting where a { source } is expected
            depth = self.rng.choice([50, 500])
            v = "{ source = ./case.nix; }"
            for _ in range(depth):
                v = "{ a = " + v + "; }"
            return "{ \"/x\" = " + v + "; }"
        n = self.rng.randint(0, 4)
        items = []
        seen = set()
        for _ in range(n):
            target = self.pick(["/a", "/EFI/BOOT/BOOTX64.EFI", "/a b", "/é", "/" + "n" * 255, "/lost+found",
                                "/lost+found/x", "/efi/boot/x"],
                               ["/", "", "a", "/a\nb", "/" + "n" * 256, "/a/../b", "/a//b", "/./a", "/a:b", "/über",
                                "/aux"])
            source = self.pick(["./case.nix", '(mk "c" [])', '"${mk "s" []}"', '{ outPath = ./case.nix; }',
                                '{ __toString = self: "${mk "t" []}"; }', '{ outPath = mk "o" []; }'],
                               ['"/nix/store/eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee-x"', '"/etc/passwd"', "/nonexistent",
                                '"${mk "s" []}/missing"'] + STRING_LIKE)
            if target in seen:
                continue
            seen.add(target)
            items.append(f"{nix_str(target)} = {self.maybe('{ source = ' + source + '; }')}; ")
        return "{ " + "".join(items) + "}"

    def partition(self) -> str:
        fields = {
            "repartConfig": self.repart_config,
            "contents": self.contents,
            "storePaths": lambda: self.pick(["[ ]", '[ (mk "p" []) ]', '[ (mk "q" [ (mk "r" []) ]) ]', '[ "${mk "p" []}" ]',
                                             '[ { outPath = mk "p" []; } ]'],
                                            ['[ "/nix/store/eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee-x" ]', '[ "/etc" ]',
                                             "[ ./case.nix ]", "[ null ]", '(mk "p" [])']
                                            + [f"[ {v} ]" for v in STRING_LIKE]),
            "nixStorePrefix": lambda: nix_str(self.pick(["/nix/store", "/", "/store"], ["relative", "/a/../b", ""])),
            "stripNixStorePrefix": lambda: self.rng.choice(["true", "false"]),
        }
        chosen = [k for k in fields if k == "repartConfig" or self.rng.random() < 0.3]
        body = "".join(f"{k} = {self.maybe(fields[k]())}; " for k in chosen if self.rng.random() < 0.95)
        return "{ " + body + "}"

    def partitions(self) -> str:
        r = self.rng.random()
        if r < 0.03:
            n = self.rng.choice([129, 1000, 3000])
            return (f'builtins.listToAttrs (builtins.genList (i: {{ name = "p${{toString i}}"; '
                    f'value.repartConfig = {{ Type = "linux-generic"; SizeMinBytes = "4096"; }}; }}) {n})')
        n = self.pick([1, 1, 2, 2, 3, 5], [0])
        names = [self.pick(["esp", "root", "10-root", "a.b", "swap", "p", "x" * 250],
                           ["", " ", "é", "x" * 300, "${x}", "a\nb", ".hidden"]) for _ in range(n)]
        return "{ " + "".join(f"{nix_attr_name(nm)} = {self.maybe(self.partition())}; "
                              for nm in dict.fromkeys(names)) + "}"

    def top(self) -> str:
        # Some cases nearly valid, some hostile all over.
        self.hostility = self.rng.choice([0.0, 0.02, 0.05, 0.1, 0.2, 0.4])
        fields = {
            "name": lambda: nix_str(self.rng.choice(["image", "x", "img-1.0_a+b", "-"]) if self.rng.random() > self.hostility
                                    else self.rng.choice(["a b", "é", ".", "a/b", "x" * 300, ""])),
            "version": lambda: self.pick(['"1.0"', "null"], ['"a/b"', '""']),
            "seed": lambda: self.pick(['"0867da16-f251-457d-a9e8-c31f9a3c220b"', "null"], ['"nope"', '""']),
            "sectorSize": lambda: self.pick(["512", "4096", "1024", "2048"], ["8192", "0", "513", "-512"]),
            "imageSize": lambda: self.pick(['"auto"', '"1G"', "1073741824"], ['"16E"', '"4096"', '"1M"', '"-1"', '"17E"']),
            "split": lambda: self.rng.choice(["true", "false"]),
            "compression": lambda: "{ " + self.rng.choice(["enable = true; ", ""]) +
            self.pick(['algorithm = "zstd"; ', 'algorithm = "xz"; ', ""], ['algorithm = "lz4"; ']) +
            self.pick(["level = 3; ", ""], ["level = 19; ", "level = 0; ", "level = 23; ", "level = -1; "]) + "}",
            "architecture": lambda: nix_str(self.pick(["x86-64", "arm64"], ["mips", ""])),
            "partitions": self.partitions,
        }
        chosen = [k for k in fields if k in ("name", "partitions") or self.rng.random() < 0.3]
        body = "".join(f"{k} = {self.maybe(fields[k]())}; " for k in chosen if self.rng.random() < 0.97)
        if self.rng.random() < 0.05:
            body += f"{nix_attr_name(self.rng.choice(ODD_STRINGS) or 'x')} = {self.odd_value()}; "
        arg = "{ " + body + "}"
        if self.rng.random() < 0.05:
            arg = self.odd_value()  # not an attribute set at all
        return arg


def case_expr(arg: str) -> str:
    # drvPath makes the derivation (store writes, the bundle); image is what the
    # evaluator exposes; both forced, strictly, as JSON.
    return HELPERS + f"let r = builtins.repartImage ({arg}); in {{ drv = r.drvPath; image = r.image or null; }}\n"


def image_expr(arg: str) -> str:
    return HELPERS + f"builtins.repartImage ({arg})\n"


def run_case(nix, n: int, expr: str, image: str = None):
    path = nix.dir / f"case-{n}" / "case.nix"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(expr)
    if image:
        (path.parent / "image.nix").write_text(image)
    try:
        r = subprocess.run(["nix-instantiate", "--eval", "--strict", "--json", "--read-write-mode", str(path)],
                           env=nix.env, cwd=path.parent, capture_output=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return n, path, "hang", f"no result after {TIMEOUT}s"
    # Bytes: a message must be text, but a broken one is a finding, not a
    # reason for the harness to stop.
    try:
        stderr = r.stderr.decode("utf-8")
    except UnicodeDecodeError:
        return n, path, "crash", "the message is not UTF-8: " + r.stderr.decode("utf-8", "replace")[-4000:]
    crash = [m for m in CRASH_MARKERS if m in stderr]
    if r.returncode == 0 and not crash:
        return n, path, "ok", ""
    # One report: a message of ours that quotes Nix's whole report would say
    # "error:" twice.
    if r.returncode == 1 and one_error_report(stderr) and not crash:
        return n, path, "error", stderr
    return n, path, "crash", f"exit {r.returncode}: {stderr[-4000:]}"


def build_case(nix, n: int, path):
    """nix-build of a case that evaluated, in the sandbox: an image (which
    every_image_is_checked then checks) or a clean build failure."""
    opts = ("--option", "sandbox", "true", "--option", "sandbox-paths", "/bin/sh=/bin/busybox")
    try:
        r = nix.run("nix-build", "--no-out-link", *opts, str(path.parent / "image.nix"), timeout=TIMEOUT * 5)
    except subprocess.TimeoutExpired:
        return n, path, "hang", f"no build after {TIMEOUT * 5}s"
    crash = [m for m in CRASH_MARKERS if m in r.stderr]
    if r.returncode == 0 and not crash and r.stdout.strip():
        return n, path, "built", r.stdout.strip()
    if r.returncode in (1, 100) and any(m in r.stderr for m in BUILD_FAILED) and not crash:
        return n, path, "build-failed", r.stderr
    return n, path, "crash", f"nix-build exit {r.returncode}: {r.stderr[-4000:]}"


def test_hostile_arguments(nix):
    rng = random.Random(SEED)
    gen = Gen(rng)
    args = [gen.top() for _ in range(CASES)]
    print(f"\nhostile: seed {SEED}, {CASES} cases, {JOBS} parallel nix-instantiate")
    with ThreadPoolExecutor(max_workers=JOBS) as pool:
        results = list(pool.map(lambda a: run_case(nix, a[0], case_expr(a[1]), image_expr(a[1])),
                                enumerate(args)))
    # A few of those that evaluate, built: exit 0 must mean a correct image.
    if os.path.exists("/bin/busybox"):
        chosen = [(n, p) for n, p, kind, _ in results
                  if kind == "ok" and not any(k in args[n] for k in NOT_BUILT)][:BUILDS]
        with ThreadPoolExecutor(max_workers=JOBS) as pool:
            results += list(pool.map(lambda a: build_case(nix, *a), chosen))

    counts = {}
    for _, _, kind, _ in results:
        counts[kind] = counts.get(kind, 0) + 1
    errors = [(n, err) for n, _, kind, err in results if kind == "error"]
    naming = sum(1 for _, err in errors if "repartImage" in err)
    print(f"hostile: {counts.get('ok', 0)} results, {len(errors)} evaluation errors "
          f"({naming} from builtins.repartImage), {counts.get('crash', 0)} crashes, {counts.get('hang', 0)} hangs; "
          f"{counts.get('built', 0)} built, {counts.get('build-failed', 0)} failed to build")
    bad = [(n, p, kind, msg) for n, p, kind, msg in results if kind in ("crash", "hang")]
    assert not bad, "\n\n".join(f"case {n} ({kind}, seed {SEED}): {p}\n{msg}" for n, p, kind, msg in bad[:5])
    # The generator must reach the primop's own checks, not just Nix's.
    assert naming > len(errors) // 2, (naming, len(errors))


@pytest.mark.parametrize("arg", [
    # The big ones, each once, whatever the seed.
    '{ name = "x"; partitions = builtins.listToAttrs (builtins.genList (i: { name = "p${toString i}"; '
    'value.repartConfig = { Type = "linux-generic"; SizeMinBytes = "4096"; }; }) 5000); }',
    '{ name = builtins.concatStringsSep "" (builtins.genList (_: "x") 1048576); '
    'partitions.r.repartConfig.Type = "root"; }',
    '{ name = "x"; partitions.r = { repartConfig.Type = "root"; contents = builtins.listToAttrs '
    '(builtins.genList (i: { name = "/f${toString i}"; value.source = ./case.nix; }) 10000); }; }',
    '{ name = "x"; partitions.r = { repartConfig.Type = "root"; contents."/' + "/".join(["d"] * 2000) +
    '".source = ./case.nix; }; }',
    '{ name = "x"; partitions.r = { repartConfig = { Type = "root"; Label = "' + "é" * 10000 + '"; }; }; }',
], ids=["5000-partitions", "1MiB-name", "10000-contents", "2000-deep-target", "10000-char-label"])
def test_hostile_big(nix, arg):
    # 5000 partitions of one type took 90 s (default labels were found in
    # cubic time); now well under a second.
    n, path, kind, msg = run_case(nix, 0, case_expr(arg))
    assert kind in ("ok", "error"), f"{path}: {msg}"
