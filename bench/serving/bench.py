#!/usr/bin/env python3
"""Model-serving benchmark: twinloop (ONNX) against `mlflow models serve` and MLServer, in one run.

  1. Trains a RandomForest (100 trees) and an MLP on the same synthetic data (models.py) and saves
     each for every server: an MLflow ONNX model (twinloop), an MLflow sklearn model whose pyfunc
     calls predict_proba (mlflow), a joblib file with MLServer's sklearn runtime (mlserver).
  2. For each server and model, one at a time: starts the server on free loopback ports, checks
     that its class probabilities match sklearn's predict_proba (the load's own payloads, then
     64 requests of 1–32 rows from 8 threads at once, which also exercises dynamic batching),
     then loads it with wrk (load.py) at each batch size (rows per request) and concurrency.
     twinloop runs twice: as is, and with dynamic batching (--max-batch-size/--max-queue-delay-us).
  3. Reports req/s, rows/s, p50/p99 per cell; per cell the better twinloop variant against the
     best peer (the issue's target: >= 5x the throughput at an equal or lower p99) and the
     throughput gain of dynamic batching.

Nothing here asserts on a time; the report says where the target was met. See README.md.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
# As if the venv were activated: `mlflow models serve` execs `uvicorn` from PATH.
os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")

import argparse
import datetime
import json
import platform
import shlex
import shutil
import signal
import subprocess
import tempfile
import traceback
import warnings
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import version
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))
import load  # noqa: E402
import models  # noqa: E402
from servers import (ALL_KINDS, MLFLOW, MLSERVER, PEER_KINDS, TWINLOOP, TWINLOOP_BATCHING,  # noqa: E402
                     TWINLOOP_KINDS, Server, kinds)

TOLERANCE = 1e-5  # max |probability difference| from sklearn's predict_proba
PACKAGES = ("mlflow", "mlserver", "mlserver-sklearn", "scikit-learn", "skl2onnx", "onnx", "onnxruntime", "numpy",
            "pandas")  # fmt: skip


# --------------------------------------------------------------------------------------------
# Agreement with sklearn
# --------------------------------------------------------------------------------------------
def agreement(server: Server, X, ref, batches, seed):
    """Every reply's probabilities against sklearn's for the same rows: the load's payloads
    (the first rows of X), then 64 requests of random rows from 8 threads at once, so that a
    server that batches requests together must hand each its own rows back."""
    rng = np.random.default_rng(seed)
    picks = [np.arange(b) for b in batches]
    picks += [rng.choice(len(X), size=rng.integers(1, 33), replace=False) for _ in range(64)]

    def diff(idx):
        """(max |Δp| of the reply, rows beyond the tolerance)."""
        got = server.infer(X[idx])
        if got.shape != ref[idx].shape:
            return np.inf, len(idx)
        per_row = np.abs(got - ref[idx]).max(axis=1)
        return float(per_row.max()), int((per_row > TOLERANCE).sum())

    results = [diff(p) for p in picks[: len(batches)]]
    with ThreadPoolExecutor(8) as pool:
        results += list(pool.map(diff, picks[len(batches):]))
    worst = max(d for d, _ in results)
    bad = sum(n for _, n in results)
    return {"requests": len(picks), "rows": int(sum(len(p) for p in picks)), "max_abs_diff": worst,
            "bad_rows": bad, "ok": bad == 0}  # fmt: skip


def export_check(m, X, ref):
    """ONNX Runtime on the exported graph, in-process: separates an export difference from a
    serving one when twinloop disagrees."""
    d = float(np.abs(models.onnx_runtime_proba(m, X) - ref).max())
    return {"max_abs_diff": d, "ok": d <= TOLERANCE}


# --------------------------------------------------------------------------------------------
# One server, one model: agreement, warm-up, the load matrix
# --------------------------------------------------------------------------------------------
def bench_server(kind, m, X, ref, args, work: Path):
    out = {"server": kind.name, "model": m.name, "runs": []}
    server = Server(kind, m, work / f"{kind.name}-{m.name}.log", args.start_timeout)
    try:
        out.update(argv=server.argv, env=kind.env, start_s=server.start_s)
        a = agreement(server, X, ref, args.batches, args.seed)
        out["agreement"] = a
        print(f"   {kind.name} {m.name}: up in {server.start_s:.1f} s; agreement {'ok' if a['ok'] else 'FAILED'} "
              f"(max |Δp| {a['max_abs_diff']:.2g} over {a['rows']} rows)", flush=True)  # fmt: skip
        path = kind.infer_path(m)
        # One unrecorded run at the largest batch, so that lazy first-call work is not measured.
        load.wrk(server.port, path, kind.body(X[: max(args.batches)]), 8, args.warmup, work,
                 f"{kind.name}-{m.name}-warmup")  # fmt: skip
        for b in args.batches:
            body = kind.body(X[:b])
            for c in args.concurrency:
                r = load.wrk(server.port, path, body, c, args.duration, work, f"{kind.name}-{m.name}-b{b}-c{c}")
                r.update(server=kind.name, model=m.name, batch=b, conc=c, rows_per_s=r["rps"] * b)
                out["runs"].append(r)
                print(f"   {kind.name} {m.name} batch {b:>2} conc {c:>2}: {r['rps']:>9,.0f} req/s  p50 "
                      f"{r['p50_ms']:7.2f} ms  p99 {r['p99_ms']:7.2f} ms"
                      + (f"  {r['errors']} ERRORS" if r["errors"] else ""), flush=True)  # fmt: skip
    finally:
        server.stop()
    return out


# --------------------------------------------------------------------------------------------
# Comparison
# --------------------------------------------------------------------------------------------
def cells(runs):
    """{(model, batch, conc): {server: run}}, in the order of the first server's runs."""
    out = {}
    for r in runs:
        out.setdefault((r["model"], r["batch"], r["conc"]), {})[r["server"]] = r
    return out


def best(by_server, names):
    """The run with the most req/s among names; a run with errors does not count."""
    ok = [by_server[n] for n in names if n in by_server and not by_server[n]["errors"]]
    return max(ok, key=lambda r: r["rps"], default=None)


def compare(runs, target):
    rows = []
    for (model, batch, conc), by_server in cells(runs).items():
        tl, peer = best(by_server, TWINLOOP_KINDS), best(by_server, PEER_KINDS)
        plain, batched = by_server.get(TWINLOOP), by_server.get(TWINLOOP_BATCHING)
        row = {"model": model, "batch": batch, "conc": conc,
               "twinloop": tl and tl["server"], "peer": peer and peer["server"]}  # fmt: skip
        if tl and peer:
            row["ratio"] = tl["rps"] / peer["rps"]
            row["p99_ok"] = tl["p99_ms"] <= peer["p99_ms"]
            row["met"] = row["ratio"] >= target and row["p99_ok"]
        if plain and batched and not plain["errors"] and not batched["errors"]:
            row["batching_gain"] = batched["rps"] / plain["rps"]
        rows.append(row)
    return rows


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------
def render(head, body, md, right=()):
    if md:
        lines = ["| " + " | ".join(head) + " |"]
        lines.append("|" + "|".join("---:" if i in right else "---" for i in range(len(head))) + "|")
        return lines + ["| " + " | ".join(row) + " |" for row in body]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]

    def line(row):
        return "  ".join(str(c).rjust(w) if i in right else str(c).ljust(w)
                         for i, (c, w) in enumerate(zip(row, widths)))  # fmt: skip

    return [line(head), "  ".join("-" * w for w in widths)] + [line(r) for r in body]


def f_ms(v):
    return f"{v:.2f}" if v < 100 else f"{v:,.0f}"


def f_ratio(r):
    return "—" if r is None else (f"{r:.2f}×" if r < 10 else f"{r:.1f}×")


def run_lines(runs, md):
    head = ["model", "batch", "conc", "server", "req/s", "rows/s", "p50 ms", "p99 ms", "errors"]
    body = [[r["model"], str(r["batch"]), str(r["conc"]), r["server"], f"{r['rps']:,.0f}", f"{r['rows_per_s']:,.0f}",
             f_ms(r["p50_ms"]), f_ms(r["p99_ms"]), f"**{r['errors']}**" if md and r["errors"] else str(r["errors"])]
            for cell in cells(runs).values()
            for r in sorted(cell.values(), key=lambda r: ALL_KINDS.index(r["server"]))]  # fmt: skip
    return render(head, body, md, right=(1, 2, 4, 5, 6, 7, 8))


def compare_lines(rows, runs, target, md):
    by = cells(runs)
    head = ["model", "batch", "conc", "twinloop (best)", "best peer", "throughput ratio",
            "p99 twinloop / peer ms", f"≥ {target:g}× at ≤ p99", "batching gain"]  # fmt: skip
    body = []
    for c in rows:
        k = (c["model"], c["batch"], c["conc"])
        tl, peer = by[k].get(c["twinloop"]), by[k].get(c["peer"])
        met = "—" if "met" not in c else ("yes" if c["met"] else ("**no**" if md else "NO"))
        body.append([c["model"], str(c["batch"]), str(c["conc"]),
                     f"{c['twinloop']} {tl['rps']:,.0f}/s" if tl else "—",
                     f"{c['peer']} {peer['rps']:,.0f}/s" if peer else "—",
                     f_ratio(c.get("ratio")),
                     f"{f_ms(tl['p99_ms'])} / {f_ms(peer['p99_ms'])}" if tl and peer else "—", met,
                     f_ratio(c.get("batching_gain"))])  # fmt: skip
    return render(head, body, md, right=(1, 2, 5, 6, 8))


def agreement_line(results, exports):
    parts = [f"{name} ONNX export (onnxruntime) {e['max_abs_diff']:.1g}" + ("" if e["ok"] else " FAILED")
             for name, e in exports.items()]  # fmt: skip
    for s in results:
        a = s.get("agreement")
        if a:
            parts.append(f"{s['model']} {s['server']} {a['max_abs_diff']:.1g}"
                         + ("" if a["ok"] else f" FAILED ({a['bad_rows']} of {a['rows']} rows)"))  # fmt: skip
    return f"agreement with sklearn predict_proba (max |Δp|, tolerance {TOLERANCE:g}): " + "; ".join(parts)


def machine_info():
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), None)  # fmt: skip
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {"nproc": os.cpu_count(), "cpu": cpu, "memory_gib": round(mem / 2**30, 1),
            "kernel": platform.release(), "python": platform.python_version()}  # fmt: skip


def command_output(argv):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=20)
        return (r.stdout + r.stderr).strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def versions(tl_bin):
    v = {p: version(p) for p in PACKAGES}
    v["wrk"] = command_output([load.WRK, "-v"]).split(" [")[0].removeprefix("wrk ") or "unknown"
    v["twinloop"] = (command_output([str(tl_bin), "--version"]) or "unknown") if tl_bin else "—"
    rev = command_output(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]) or "no commit"
    dirty = command_output(["git", "-C", str(REPO), "status", "--porcelain", "crates"])
    v["git"] = rev + (" (crates/ modified)" if dirty else "")
    return v


def notes(meta):
    out = []
    if "/debug/" in (meta["twinloop_bin"] or ""):
        out.append("twinloop is a debug build: its figures do not count.")
    n = meta["machine"]["nproc"] or 1
    worst = max(meta["loadavg_before"][0], meta["loadavg_after"][0])
    if worst > max(1.5, 0.75 * n):
        out.append(f"the 1-minute load average reached {worst:.1f} on {n} cores around the run, so other work "
                   "shared the machine: the figures are noisy; rerun on a quiet machine.")  # fmt: skip
    return out


def markdown_report(meta, doc):
    m, v, a = meta["machine"], meta["versions"], meta["args"]
    accuracy = ", ".join(f"{k} = `{models.DESCRIPTION[k]}` (test accuracy {x:.3f})"
                         for k, x in meta["accuracy"].items())  # fmt: skip
    out = [
        f"### Serving: twinloop vs `mlflow models serve` and MLServer — {meta['date']}",
        "",
        f"Machine: {m['nproc']} cores ({m['cpu'] or 'unknown CPU'}), {m['memory_gib']} GiB, Linux {m['kernel']}; "
        f"Python {m['python']}, " + ", ".join(f"{p} {v[p]}" for p in PACKAGES) + f", wrk {v['wrk']}; "
        f"twinloop {v['twinloop']} (git {v['git']}, binary `{meta['twinloop_bin'] or '—'}`).",
        "",
        f"Command: `{meta['command']}`",
        "",
        f"Models: `make_classification` ({a['rows']:,} rows, {models.N_FEATURES} float32 features, "
        f"{models.N_CLASSES} classes, seed {a['seed']}, 80/20 split): {accuracy}. Every server returns the class "
        "probabilities: twinloop the ONNX graph's `probabilities` (skl2onnx, zipmap off, saved with "
        "`mlflow.onnx.save_model`), mlflow an `mlflow.sklearn` model with `pyfunc_predict_fn=\"predict_proba\"`, "
        "MLServer the sklearn runtime's `predict_proba` output.",
        "",
        f"Load: wrk from its own process on loopback, one fixed body per model and batch (batch = rows per "
        f"request; V2 JSON for twinloop and MLServer, `{{\"inputs\": [[…]]}}` for mlflow), conc keep-alive "
        f"connections, min(conc, 2) threads, {a['duration']:g} s per cell after a {a['warmup']:g} s warm-up per "
        f"server and model. req/s counts 2xx replies; p50/p99 are wrk's per-request latencies. One server "
        f"runs at a time and shares the {m['nproc']} cores with wrk. twinloop+batching = "
        f"`--max-batch-size {a['max_batch_size']} --max-queue-delay-us {a['max_queue_delay_us']}`; the peers "
        f"run with their defaults" + (f" and {a['peer_workers']} workers" if a["peer_workers"] else "")
        + ", access logs off.",
        "",
        doc["agreement_line"][0].upper() + doc["agreement_line"][1:] + ".",
        "",
    ]
    out += run_lines(doc["runs"], True)
    out += ["", f"Target (from the issue): twinloop ≥ {a['target']:g}× the best peer's throughput at an equal or "
            "lower p99; the better twinloop variant against the peer with the most req/s, per cell. Batching "
            "gain = twinloop+batching req/s ÷ twinloop req/s.", ""]
    out += compare_lines(doc["comparison"], doc["runs"], a["target"], True)
    servers = [s for s in doc["servers"] if s.get("argv")]
    out += ["", "Servers: " + "; ".join(
        f"`{' '.join(f'{k}={x}' for k, x in s['env'].items())}{' ' if s['env'] else ''}{shlex.join(s['argv'])}`"
        for s in servers), ""]  # fmt: skip
    out += [f"**Note:** {n}\n" for n in notes(meta)]
    if doc["errors"]:
        out += ["Errors:", ""] + [f"- {e['server']} / {e['model']}: `{e['error'][:500]}`"
                                  for e in doc["errors"]] + [""]  # fmt: skip
    return "\n".join(out)


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------
def int_list(s):
    return [int(x) for x in s.split(",") if x]


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="twinloop,mlflow,mlserver",
                    help="servers, comma-separated: twinloop (both variants), mlflow, mlserver")  # fmt: skip
    ap.add_argument("--models", default="rf,mlp", help="comma-separated: rf, mlp")
    ap.add_argument("--batches", type=int_list, default=[1, 32], help="rows per request, comma-separated")
    ap.add_argument("--concurrency", type=int_list, default=[1, 8, 64], help="wrk connections, comma-separated")
    ap.add_argument("--duration", type=int, help="seconds of load per cell (default 10; --quick: 3)")
    ap.add_argument("--warmup", type=int,
                    help="seconds of unrecorded load per server and model (default 2; --quick: 1)")  # fmt: skip
    ap.add_argument("--quick", action="store_true", help="short cells, for a smoke run")
    ap.add_argument("--twinloop-bin", help="twinloop binary (default $TWINLOOP_BIN, else "
                    "$CARGO_TARGET_DIR/release/twinloop)")  # fmt: skip
    ap.add_argument("--no-batching", action="store_true", help="skip the twinloop+batching variant")
    ap.add_argument("--max-batch-size", type=int, default=64, help="twinloop+batching's --max-batch-size")
    ap.add_argument("--max-queue-delay-us", type=int, default=500, help="twinloop+batching's --max-queue-delay-us")
    ap.add_argument("--peer-workers", type=int,
                    help="worker processes for mlflow (--workers) and MLServer (parallel_workers); "
                    "default: theirs (1)")  # fmt: skip
    ap.add_argument("--target", type=float, default=5.0, help="throughput ratio the issue asks for")
    ap.add_argument("--rows", type=int, default=20_000, help="synthetic rows (80%% train)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--start-timeout", type=float, default=120.0, help="seconds for a server to become ready")
    ap.add_argument("--json", metavar="FILE")
    ap.add_argument("--markdown", metavar="FILE", help="the report as a section for docs/benchmarks.md")
    ap.add_argument("--workdir",
                    help="models, wrk scripts and server logs are kept here (default: a temporary directory)")
    a = ap.parse_args(argv)
    a.duration = a.duration or (3 if a.quick else 10)
    a.warmup = a.warmup or (1 if a.quick else 2)
    a.only = [x for x in a.only.split(",") if x]
    a.models = [x for x in a.models.split(",") if x]
    for what, got, known in (("server", a.only, (TWINLOOP, MLFLOW, MLSERVER)),
                             ("model", a.models, models.ESTIMATORS)):  # fmt: skip
        bad = [x for x in got if x not in known]
        if bad:
            ap.error(f"unknown {what}(s) {bad}; known: {', '.join(known)}")
    return a


def twinloop_binary(args):
    target = os.environ.get("CARGO_TARGET_DIR") or str(Path.home() / ".cache/twinloop/target")
    tl_bin = Path(args.twinloop_bin or os.environ.get("TWINLOOP_BIN") or Path(target) / "release/twinloop")
    if not (tl_bin.is_file() and os.access(tl_bin, os.X_OK)):
        sys.exit(f"twinloop binary not found at {tl_bin} (build it, pass --twinloop-bin, or --only mlflow,mlserver)")
    return tl_bin.resolve()


def run_all(args, selected, tl_bin, batching, meta, work: Path):
    """Trains and saves the models, then benchmarks each server and model in turn; a server
    that fails is recorded and the run goes on. Returns (export checks, per-server results,
    errors)."""
    print(f"training and saving {args.models} into {work} …", flush=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MLflow's and sklearn's advice is noise in a benchmark log
        X, trained = models.train_and_save(args.models, args.rows, args.seed, work / "models")
    refs = {name: m.estimator.predict_proba(X) for name, m in trained.items()}
    meta["accuracy"] = {name: m.accuracy for name, m in trained.items()}
    exports = {name: export_check(m, X, refs[name]) for name, m in trained.items()}
    servers, errors = [], []
    for kind in kinds(selected, tl_bin, batching, args.peer_workers):
        for name, m in trained.items():
            print(f"{kind.name} serving {name} …", flush=True)
            try:
                servers.append(bench_server(kind, m, X, refs[name], args, work))
            except Exception as e:
                traceback.print_exc()
                servers.append({"server": kind.name, "model": name, "runs": []})
                errors.append({"server": kind.name, "model": name, "error": f"{type(e).__name__}: {e}"})
    return exports, servers, errors


def failures(exports, servers, runs):
    """What makes the run's figures doubtful: failed requests, disagreement with sklearn."""
    out = [{"server": r["server"], "model": r["model"],
            "error": f"batch {r['batch']} conc {r['conc']}: {r['errors']} failed requests ("
                     + ", ".join(f"{k} {r[k]}" for k in load.ERROR_KEYS if r[k]) + ")"}
           for r in runs if r["errors"]]  # fmt: skip
    out += [{"server": s["server"], "model": s["model"], "error": f"disagrees with sklearn: {s['agreement']}"}
            for s in servers if s.get("agreement") and not s["agreement"]["ok"]]  # fmt: skip
    out += [{"server": "onnx export", "model": k, "error": f"onnxruntime disagrees with sklearn: {e}"}
            for k, e in exports.items() if not e["ok"]]  # fmt: skip
    return out


def main(argv=None):
    args = parse_args(argv)
    selected = set(args.only)
    if TWINLOOP in selected and not args.no_batching:
        selected.add(TWINLOOP_BATCHING)
    tl_bin = twinloop_binary(args) if TWINLOOP in selected else None
    if not Path(load.WRK).is_file():
        sys.exit(f"wrk not found at {load.WRK} (apt-get install wrk)")
    batching = ("--max-batch-size", str(args.max_batch_size), "--max-queue-delay-us", str(args.max_queue_delay_us))
    command = os.environ.get("TWINLOOP_BENCH_CMD") or shlex.join(
        ["python", os.path.relpath(__file__, REPO)] + (sys.argv[1:] if argv is None else argv))
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": command, "servers": [k for k in ALL_KINDS if k in selected],
        "args": {k: v for k, v in vars(args).items() if k not in ("json", "markdown", "workdir", "twinloop_bin")},
        "machine": machine_info(), "versions": versions(tl_bin), "twinloop_bin": str(tl_bin) if tl_bin else None,
        "loadavg_before": os.getloadavg(),
    }  # fmt: skip
    print(f"twinloop serving benchmark — {meta['date']}; servers {meta['servers']}; models {args.models}")
    print(f"machine: {meta['machine']}\nversions: {meta['versions']}", flush=True)

    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-serving-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        exports, servers, errors = run_all(args, selected, tl_bin, batching, meta, work)
    finally:
        if args.workdir:
            print(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    meta["loadavg_after"] = os.getloadavg()
    runs = [r for s in servers for r in s["runs"]]
    errors += failures(exports, servers, runs)
    doc = {"meta": meta, "exports": exports, "servers": servers, "runs": runs,
           "comparison": compare(runs, args.target), "errors": errors}  # fmt: skip
    doc["agreement_line"] = agreement_line(servers, exports)
    print("\n" + doc["agreement_line"] + "\n")
    print("\n".join(run_lines(runs, False)) + "\n")
    print("\n".join(compare_lines(doc["comparison"], runs, args.target, False)))
    for e in errors:
        print(f"ERROR {e['server']} / {e['model']}: {e['error'][:800]}")
    for n in notes(meta):
        print(f"NOTE: {n}")
    outputs = ((args.json, json.dumps(doc, indent=2, default=str) + "\n"), (args.markdown, markdown_report(meta, doc)))
    for path, text in outputs:
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(text)
            print(f"wrote {path}")
    return 1 if errors else 0


if __name__ == "__main__":
    # A TERM or HUP unwinds through the finally blocks, so that no server outlives the run.
    for _sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(_sig, lambda signum, frame: sys.exit(128 + signum))
    sys.exit(main())
