"""Read pip-audit's JSON report: exit 1 on any known vulnerability, say plainly what was not
audited, exit 0 otherwise.

pip-audit asks PyPI about each exact release (`/pypi/<name>/<version>/json`). Where that
answer is missing (some registry proxies serve only the project page), a locked version that
is the project's current release is audited from the project page instead: PyPI lists the
current release's known vulnerabilities there, from the same advisory database. Anything else
pip-audit could not ask about is reported as NOT AUDITED, which is never shown as a pass.
"""

from __future__ import annotations

import json
import re
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

Fetch = Callable[[str], "dict[str, Any] | None"]
PROJECT_PAGE = "https://pypi.org/pypi/{name}/json"


def fetch_project(name: str) -> dict[str, Any] | None:
    """PyPI's JSON page of a project, or None if it can't be had."""
    try:
        with urllib.request.urlopen(PROJECT_PAGE.format(name=name), timeout=20) as reply:  # noqa: S310
            page: dict[str, Any] = json.load(reply)
            return page
    except (OSError, ValueError):
        return None


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked_versions(lock: str) -> dict[str, str]:
    """`name==version` lines of the lock file, by canonical name (pip-audit's JSON gives no
    version for a package it skipped)."""
    found: dict[str, str] = {}
    for line in Path(lock).read_text(encoding="utf-8").splitlines():
        name, sep, version = line.split("#", 1)[0].strip().partition("==")
        if sep:
            found[canonical(name)] = version.split(";", 1)[0].strip()
    return found


def from_project_page(dep: dict[str, Any], fetch: Fetch) -> list[dict[str, Any]] | None:
    """The known vulnerabilities of `dep` if its version is the project's current release;
    None if the project page can't tell (unreachable, or a newer release exists)."""
    page = fetch(dep["name"])
    if page is None or page.get("info", {}).get("version") != dep["version"]:
        return None
    vulns = page.get("vulnerabilities")
    if not isinstance(vulns, list):
        return None
    return [
        {"id": v.get("id", "?"), "fix_versions": list(v.get("fixed_in") or [])}
        for v in vulns
        if not v.get("withdrawn")
    ]


def main(path: str, lock: str, fetch: Fetch = fetch_project) -> int:
    text = Path(path).read_text(encoding="utf-8") if Path(path).exists() else ""
    if not text.strip():
        print("audit: pip-audit produced no report (is it installed? bash scripts/dev.sh setup)")
        return 1
    deps: list[dict[str, Any]] = json.loads(text).get("dependencies", [])
    versions = locked_versions(lock)
    for dep in deps:
        dep.setdefault("version", versions.get(canonical(dep["name"]), "?"))
    skipped: list[dict[str, Any]] = []
    from_pages = 0
    for dep in deps:
        if dep.get("skip_reason"):
            vulns = from_project_page(dep, fetch)
            if vulns is None:
                skipped.append(dep)
                continue
            dep["vulns"] = vulns
            from_pages += 1
    vulnerable = [d for d in deps if d.get("vulns")]
    for dep in vulnerable:
        for vuln in dep["vulns"]:
            fixed = ", ".join(vuln.get("fix_versions", [])) or "no fixed release"
            print(f"audit: {dep['name']} {dep['version']}: {vuln['id']} (fixed in {fixed})")
    if from_pages:
        print(
            f"audit: {from_pages} locked packages audited from PyPI's project page (their "
            "release pages gave no answer; each is the project's current release)"
        )
    if skipped:
        names = ", ".join(f"{d['name']} {d['version']}" for d in skipped[:5])
        print(
            f"audit: NOT AUDITED: {len(skipped)} of {len(deps)} locked packages: no advisory "
            f"answer for them ({names}{', ...' if len(skipped) > 5 else ''}; first reason: "
            f"{skipped[0]['skip_reason']})"
        )
    audited = len(deps) - len(skipped)
    print(f"audit: {audited} of {len(deps)} locked packages audited, {len(vulnerable)} vulnerable")
    return 1 if vulnerable else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
