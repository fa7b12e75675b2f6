"""Read pip-audit's JSON report: exit 1 on any known vulnerability, say plainly what was not
audited (the advisory service had no answer for it), exit 0 otherwise."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(path: str) -> int:
    text = Path(path).read_text(encoding="utf-8") if Path(path).exists() else ""
    if not text.strip():
        print("audit: pip-audit produced no report (is it installed? bash scripts/dev.sh setup)")
        return 1
    deps = json.loads(text).get("dependencies", [])
    vulnerable = [d for d in deps if d.get("vulns")]
    skipped = [d for d in deps if d.get("skip_reason")]
    audited = len(deps) - len(skipped)
    for dep in vulnerable:
        for vuln in dep["vulns"]:
            fixed = ", ".join(vuln.get("fix_versions", [])) or "no fixed release"
            print(f"audit: {dep['name']} {dep['version']}: {vuln['id']} (fixed in {fixed})")
    if skipped:
        reason = skipped[0]["skip_reason"]
        print(
            f"audit: NOT AUDITED: {len(skipped)} of {len(deps)} locked packages: the advisory "
            f"service gave no answer for them (first: {reason})"
        )
    print(f"audit: {audited} of {len(deps)} locked packages audited, {len(vulnerable)} vulnerable")
    return 1 if vulnerable else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
