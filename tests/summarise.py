"""Adds up JUnit XML reports and prints "N passed, N failed" (skipped tests
follow as ", N skipped").  Before it: the Nix versions that were not tested
and why, and the time the integration tests spent with each Nix (a test
id ending in [nix-VERSION] or naming it; the rest is the machine's Nix).
Exits 1 when a test failed, when a report is missing, or when no test ran
at all."""
import re
import sys
import xml.etree.ElementTree as ET

passed = failed = skipped = 0
missing = []
not_tested = []
seconds_by_nix = {}
for path in sys.argv[1:]:
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        missing.append(path)
        continue
    for case in root.iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            failed += 1
        elif case.find("skipped") is not None:
            skipped += 1
            msg = case.find("skipped").get("message", "")
            if "NOT TESTED" in msg:
                not_tested.append(msg)
        else:
            passed += 1

        if path.endswith("integration.junit.xml"):
            m = re.search(r"nix-(\d+\.\d+\.\d+)\]$", case.get("name", ""))
            key = f"Nix {m.group(1)} (tests marked every_nix)" if m else "the machine's Nix (the other tests)"
            if "asan" in path:
                key += ", ASan/UBSan build"
            seconds_by_nix[key] = seconds_by_nix.get(key, 0.0) + float(case.get("time", 0) or 0)

for msg in not_tested:
    print(msg)
for key, secs in seconds_by_nix.items():
    print(f"integration tests with {key}: {secs:.0f} s")
for path in missing:
    print(f"missing test report: {path}", file=sys.stderr)
    failed += 1
line = f"{passed} passed, {failed} failed"
if skipped:
    line += f", {skipped} skipped"
print(line)
sys.exit(1 if failed or passed == 0 else 0)
