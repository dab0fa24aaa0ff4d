"""Adds up JUnit XML reports and prints "N passed, N failed" (skipped tests
follow as ", N skipped").  Exits 1 when a test failed, when a report is
missing, or when no test ran at all."""
import sys
import xml.etree.ElementTree as ET

passed = failed = skipped = 0
missing = []
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
        else:
            passed += 1

for path in missing:
    print(f"missing test report: {path}", file=sys.stderr)
    failed += 1
line = f"{passed} passed, {failed} failed"
if skipped:
    line += f", {skipped} skipped"
print(line)
sys.exit(1 if failed or passed == 0 else 0)
