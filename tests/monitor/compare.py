"""Compare `twinloop monitor drift --json` with Evidently's verdicts on the same pair.

usage: compare.py EVIDENTLY.json TWINLOOP.json [--tol 1e-9]
Exit status 0 when every column Evidently tested has the same test, a score within the
tolerance (absolute) and the same verdict, and the dataset verdict agrees. Prints the max abs
difference per test.
"""
import json
import math
import sys

NAMES = {"K-S p_value": "ks", "chi-square p_value": "chisquare", "Z-test p_value": "z",
         "Wasserstein distance (normed)": "wasserstein", "Jensen-Shannon distance": "jensenshannon",
         "PSI": "psi"}


def main():
    ev = json.load(open(sys.argv[1]))
    tw = json.load(open(sys.argv[2]))
    tol = float(sys.argv[sys.argv.index("--tol") + 1]) if "--tol" in sys.argv else 1e-9
    bad, maxdiff = [], {}
    for col, e in ev["columns"].items():
        t = tw["columns"].get(col)
        if t is None:
            bad.append(f"{col}: tested by Evidently, not by twinloop ({tw['skipped'].get(col)})")
            continue
        test = NAMES.get(e["method"], e["method"])
        if t["test"] != test:
            bad.append(f"{col}: test {t['test']} vs Evidently {test}")
            continue
        es, ts = e["score"], t["score"]
        diff = 0.0 if (es == ts or (math.isnan(es) and ts is None)) else abs(es - (ts if ts is not None else math.nan))
        maxdiff[test] = max(maxdiff.get(test, 0.0), diff)
        if not diff <= tol:
            bad.append(f"{col}: {test} score {ts!r} vs Evidently {es!r} (diff {diff:.3g})")
        if t["drifted"] != e["drifted"]:
            bad.append(f"{col}: drifted {t['drifted']} vs Evidently {e['drifted']} (score {es!r})")
    for col in tw["columns"]:
        if col not in ev["columns"]:
            bad.append(f"{col}: tested by twinloop, not by Evidently")
    # Evidently's dataset count comes from a different pass than its per-column verdicts, and
    # that pass does not clean +/-inf when a column has no NaN. Our count is over our verdicts,
    # which equal Evidently's per-column verdicts, so compare against those.
    ev_value_drift = sum(1 for e in ev["columns"].values() if e["drifted"])
    n = len(ev["columns"])
    ev_dataset = n > 0 and ev_value_drift / n >= tw["drift_share"]
    if tw["drifted_columns"] != ev_value_drift or tw["dataset_drift"] != ev_dataset:
        bad.append(f"dataset: {tw['drifted_columns']}/{tw['n_columns']} drift={tw['dataset_drift']} vs "
                   f"Evidently ValueDrift {ev_value_drift}/{n} drift={ev_dataset}")
    note = ""
    if ev["drifted_count"] is not None and int(ev["drifted_count"]) != ev_value_drift:
        note = (f" (Evidently's own DriftedColumnsCount says {int(ev['drifted_count'])}: its inconsistent "
                f"inf cleaning)")
    print(f"columns compared: {len(ev['columns'])}; dataset drift {tw['dataset_drift']} "
          f"({tw['drifted_columns']}/{tw['n_columns']}){note}")
    for test, d in sorted(maxdiff.items()):
        print(f"  max abs diff {test:<14} {d:.3g}")
    for b in bad:
        print("MISMATCH", b)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
