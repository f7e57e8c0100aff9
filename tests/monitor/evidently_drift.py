"""Run Evidently 0.7.23's DataDriftPreset on a reference/current pair and write the per-column
verdicts as JSON: {"columns": {col: {"test", "score", "drifted"}}, "drifted_count", "dataset_drift"}.

usage: evidently_drift.py REF.parquet CUR.parquet OUT.json [METHOD | num_method=METHOD ...]
Prints "report_run_s=…" so bench/monitoring can time Report.run alone.
"""
import json
import sys
import time

import pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset

TESTS = {"K-S p_value": "ks", "chi-square p_value": "chisquare", "Z-test p_value": "z",
         "Wasserstein distance (normed)": "wasserstein", "Jensen-Shannon distance": "jensenshannon",
         "PSI": "psi"}


def main():
    ref = pd.read_parquet(sys.argv[1])
    cur = pd.read_parquet(sys.argv[2])
    kw = {}
    for a in sys.argv[4:]:  # "psi" or "num_method=ks"
        k, _, v = a.rpartition("=")
        kw[k or "method"] = v
    t = time.perf_counter()
    snap = Report([DataDriftPreset(**kw)], include_tests=True).run(cur, ref)
    d = snap.dict()
    print(f"report_run_s={time.perf_counter() - t:.3f}", flush=True)
    out = {"columns": {}, "drifted_count": None, "dataset_drift": None}
    for m in d["metrics"]:
        cfg = m["config"]
        if cfg["type"].endswith("ValueDrift"):
            col = cfg["column"]
            out["columns"][col] = {"score": float(m["value"]), "method": cfg.get("method")}
        elif cfg["type"].endswith("DriftedColumnsCount"):
            out["drifted_count"] = m["value"]["count"]
            out["drifted_share"] = m["value"]["share"]
    for t in d.get("tests", []):
        params = t.get("metric_config", {}).get("params", {})
        if params.get("type", "").endswith("DriftedColumnsCount"):
            out["dataset_drift"] = t["status"] == "FAIL"
        elif params.get("column") in out["columns"]:
            out["columns"][params["column"]]["drifted"] = t["status"] == "FAIL"
    json.dump(out, open(sys.argv[3], "w"), indent=1, default=str)


if __name__ == "__main__":
    main()
