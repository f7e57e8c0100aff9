"""Compare the junit XML of the control run (mlflow) with twinloop's, per test, as Markdown.

    python compare.py OUT_DIR     (reads junit-mlflow.xml, junit-twinloop.xml, deselected-*.json)

Each in-scope test is one of: passes on both; fails on both (the harness or the snapshot: the
test does not pass against MLflow itself either); ours to fix (passes on MLflow, fails on
twinloop); or passes only on twinloop. Skips are counted by reason. A run that is missing is
shown as such. out_of_scope.txt is applied again here (so it also covers runs recorded before a
line was added), and known_causes.txt names the cause of each known failure in the lists.
"""

from __future__ import annotations

import fnmatch
import json
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

TARGETS = ("mlflow", "twinloop")
HERE = Path(__file__).resolve().parent


def outcomes(junit: Path) -> dict[str, tuple[str, str]]:
    """node id -> (outcome, first line of the failure message)."""
    result = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        module = case.get("classname", "").replace(".", "/")
        nodeid = f"{module}.py::{case.get('name')}"
        outcome, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error"):
                outcome = "failed"
                message = (child.get("message") or child.text or "").strip().splitlines()
                message = message[0][:200] if message else ""
                break
            if child.tag == "skipped":
                outcome = "skipped"
                message = (child.get("message") or "").strip().splitlines()[0][:200] if child.get("message") else ""
        result[nodeid] = (outcome, message)
    return result


def rules(name: str) -> list[tuple[str, str]]:
    """``pattern | text`` lines of a file beside this script (out_of_scope.txt, known_causes.txt)."""
    found = []
    for raw in (HERE / name).read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            pattern, _, text = line.partition(" | ")
            found.append((pattern.strip(), text.strip()))
    return found


def first_match(nodeid: str, found: list[tuple[str, str]]) -> str | None:
    return next((text for pattern, text in found if fnmatch.fnmatchcase(nodeid, pattern)), None)


def main(out: Path) -> None:
    runs = {t: outcomes(out / f"junit-{t}.xml") for t in TARGETS if (out / f"junit-{t}.xml").exists()}
    deselected: dict[str, str] = {}
    for t in TARGETS:
        path = out / f"deselected-{t}.json"
        if path.exists():
            deselected.update(json.loads(path.read_text()))
    # The list as it is now also applies to runs recorded before a line was added to it.
    scope = rules("out_of_scope.txt")
    for run in runs.values():
        for nodeid in list(run):
            reason = first_match(nodeid, scope)
            if reason:
                deselected[nodeid] = reason
                del run[nodeid]
    causes = rules("known_causes.txt")

    print("# MLflow's own tracking tests: mlflow (control) vs twinloop\n")
    for t in TARGETS:
        if t in runs:
            c = Counter(o for o, _ in runs[t].values())
            print(f"- **{t}**: {c['passed']} passed, {c['failed']} failed, {c['skipped']} skipped")
        else:
            print(f"- **{t}**: not run")
    print(f"- out of scope (deselected): {len(deselected)}\n")

    ids = sorted(set().union(*[r.keys() for r in runs.values()]) if runs else set())
    classes: dict[str, list[str]] = {
        "passes on both": [], "ours to fix (passes on mlflow, fails on twinloop)": [],
        "fails on both (harness or snapshot)": [], "passes only on twinloop": [],
        "skipped (on either)": [], "unpaired (one run only)": [],
    }
    per_file: dict[str, Counter] = {}
    for nodeid in ids:
        m = runs.get("mlflow", {}).get(nodeid, ("absent", ""))[0]
        w = runs.get("twinloop", {}).get(nodeid, ("absent", ""))[0]
        if "absent" in (m, w):
            key = "unpaired (one run only)"
        elif "skipped" in (m, w):
            key = "skipped (on either)"
        elif m == w == "passed":
            key = "passes on both"
        elif m == "passed":
            key = "ours to fix (passes on mlflow, fails on twinloop)"
        elif w == "passed":
            key = "passes only on twinloop"
        else:
            key = "fails on both (harness or snapshot)"
        classes[key].append(nodeid)
        per_file.setdefault(nodeid.split("::")[0], Counter())[key] += 1

    print("| class | tests |\n|---|---|")
    for key, members in classes.items():
        print(f"| {key} | {len(members)} |")
    print("\n## Per file\n")
    short = ["passes on both", "ours to fix", "fails on both", "only twinloop", "skipped", "unpaired"]
    print("| file | " + " | ".join(short) + " |\n|---|" + "---|" * len(short))
    for f, c in sorted(per_file.items()):
        print(f"| {f} | " + " | ".join(str(c[k]) for k in classes) + " |")

    for key in list(classes)[1:]:
        if not classes[key]:
            continue
        print(f"\n## {key}\n")
        if key.startswith("skipped"):
            reasons = Counter(
                next((runs[t][n][1] for t in TARGETS if runs.get(t, {}).get(n, ("", ""))[0] == "skipped"), "")
                for n in classes[key]
            )
            for reason, n in reasons.most_common():
                print(f"- {n} × {reason or '(no reason given)'}")
            continue
        for nodeid in classes[key]:
            cause = first_match(nodeid, causes)
            notes = [f"{t}: {runs[t][nodeid][1]}" for t in TARGETS
                     if t in runs and nodeid in runs[t] and runs[t][nodeid][1]]
            line = f"- `{nodeid}`"
            if cause:
                line += f" — **{cause}**"
            if notes:
                line += " — " + " / ".join(notes)
            print(line)

    if deselected:
        print("\n## Out of scope (deselected)\n")
        for reason, n in Counter(deselected.values()).most_common():
            print(f"- {n} × {reason}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
