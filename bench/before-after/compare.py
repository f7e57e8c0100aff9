"""After/before table from bench/before-after/run.sh's JSON files: for each workload the median
over rounds of each side, and after/before oriented so that > 1 is better."""

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path


def tracking_like(doc):
    for row in doc["rows"]:
        value = row.get("twinloop")
        if isinstance(value, (int, float)):
            yield f"{row['workload']} [{row['mode']}]", row["unit"], value, row["higher_is_better"]


def serving(doc):
    for run in doc["runs"]:
        name = f"{run['server']} {run['model']} batch {run['batch']} conc {run['conc']}"
        yield f"{name} req/s", "req/s", run["rps"], True
        yield f"{name} p99", "ms", run["p99_ms"], False


READERS = {"tracking": tracking_like, "registry": tracking_like, "serving": serving}


def main(out):
    values = defaultdict(lambda: {"before": [], "after": []})
    meta = {}
    for path in sorted(Path(out).glob("*.json")):
        bench, side, _round = path.stem.split("-")
        for name, unit, value, higher in READERS[bench](json.loads(path.read_text())):
            key = (bench, name, unit)
            values[key][side].append(value)
            meta[key] = higher
    print(f"{'benchmark':9}  {'workload':60}  {'unit':9}  {'before':>10}  {'after':>10}  after/before (>1 better)")
    for key in sorted(values):
        bench, name, unit = key
        before, after = values[key]["before"], values[key]["after"]
        if not before or not after:
            continue
        b, a = statistics.median(before), statistics.median(after)
        better = (a / b if meta[key] else b / a) if a and b else float("nan")
        print(f"{bench:9}  {name[:60]:60}  {unit:9}  {b:10.3f}  {a:10.3f}  {better:6.2f}")


if __name__ == "__main__":
    main(sys.argv[1])
