"""The pipeline engine's benchmark: engine overhead on a 50-step no-op chain, the same 5-step
chain and 20-wide fan-out side by side with Metaflow, kfp.local, ZenML and Dagster, and the
quickstart's wall time. Standard library only; bench/pipelines/run.sh makes the peers' venvs and
passes their interpreters with --peer NAME=PYTHON (or --missing NAME=REASON).

Every figure is the median of several runs of a fresh process, timed from here: what a user
waits for, interpreter and binary start-up included."""

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
PEERS = ("metaflow", "kfp", "zenml", "dagster")
SHAPES = ("chain5", "fanout20")
CHAIN = 50


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", required=True, help="the twinloop release binary")
    ap.add_argument("--quick", action="store_true", help="one or two repetitions of everything")
    ap.add_argument("--peer", action="append", default=[], metavar="NAME=PYTHON")
    ap.add_argument("--missing", action="append", default=[], metavar="NAME=REASON")
    ap.add_argument("--no-quickstart", action="store_true")
    ap.add_argument("--json", type=Path, help="write every measurement here")
    ap.add_argument("--markdown", type=Path, help="write the tables here too")
    return ap.parse_args()


class Failed(Exception):
    """A measured command did not succeed; its message says how."""


def timed(cmd, cwd, env=None, timeout=600):
    """Runs cmd once; returns (wall seconds, stdout). Raises Failed on a non-zero exit."""
    start = time.perf_counter()
    proc = subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        tail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-3:]
        raise Failed(f"exit {proc.returncode}: {' | '.join(tail)}")
    return wall, proc.stdout


def median(xs):
    return statistics.median(xs) if xs else None


def tw_run(binary, yaml, repo, extra, reps, want):
    """Runs `twinloop pipeline run --json` reps times; checks every step ended in state want.
    Returns the walls and the engine's own run times (ended_ms - started_ms)."""
    walls, engine = [], []
    for _ in range(reps):
        wall, out = timed(
            [binary, "pipeline", "run", str(yaml), "--repo", str(repo), "--json", *extra], repo
        )
        report = json.loads(out)
        states = {s["state"] for s in report["steps"]}
        if report["status"] != "SUCCEEDED" or states != {want}:
            raise Failed(f"{yaml.name}: run {report['status']}, steps {sorted(states)}")
        walls.append(wall)
        engine.append((report["ended_ms"] - report["started_ms"]) / 1000)
    return walls, engine


def store_args(root):
    return [
        "--backend-store-uri",
        f"sqlite:///{root}/store/twinloop.db",
        "--artifacts-destination",
        f"{root}/store/artifacts",
    ]


def write_chains(repo):
    """chain50.yaml: `run: 'true'`, each step needing the previous, no inputs (source steps are
    never cached). chain50-cached.yaml: each step also reads seed.txt and names itself in its
    command, so every step has its own cache key."""
    (repo / "seed.txt").write_text("seed\n")
    plain = ["pipeline: chain50", "steps:"]
    cached = ["pipeline: chain50-cached", "steps:"]
    for i in range(CHAIN):
        needs = [f"    needs: [s{i - 1:02d}]"] if i else []
        plain += [f"  s{i:02d}:", "    run: 'true'", *needs]
        cached += [f"  s{i:02d}:", f"    run: 'true s{i:02d}'", "    inputs: {seed: seed.txt}", *needs]
    (repo / "chain50.yaml").write_text("\n".join(plain) + "\n")
    (repo / "chain50-cached.yaml").write_text("\n".join(cached) + "\n")


def spawn_baseline(reps):
    """The 50 `sh -c true` processes alone, one after the other: what the steps themselves cost."""
    walls = []
    for _ in range(reps):
        start = time.perf_counter()
        for _ in range(CHAIN):
            subprocess.run(["sh", "-c", "true"], check=True)
        walls.append(time.perf_counter() - start)
    return walls


def engine_overhead(binary, work, reps):
    repo = work / "chain"
    repo.mkdir()
    write_chains(repo)
    home = ["--home", str(repo / ".twinloop")]
    out = {"spawns": spawn_baseline(reps)}
    chain, cached = repo / "chain50.yaml", repo / "chain50-cached.yaml"
    tw_run(binary, chain, repo, [*home, "--no-store"], 1, "SUCCEEDED")
    out["no_store"] = tw_run(binary, chain, repo, [*home, "--no-store"], reps, "SUCCEEDED")
    tw_run(binary, chain, repo, [*home, *store_args(work)], 1, "SUCCEEDED")
    out["store"] = tw_run(binary, chain, repo, [*home, *store_args(work)], reps, "SUCCEEDED")
    out["cached_first"] = tw_run(binary, cached, repo, [*home, "--no-store"], 1, "SUCCEEDED")
    out["cached_no_store"] = tw_run(binary, cached, repo, [*home, "--no-store"], reps, "CACHED")
    out["cached_store"] = tw_run(binary, cached, repo, [*home, *store_args(work)], reps, "CACHED")
    return out


def peer_env(name, work):
    env = dict(os.environ, DO_NOT_TRACK="true")
    if name == "metaflow":
        env.update(
            USERNAME="bench",
            METAFLOW_HOME=str(work / "metaflow-home"),
            METAFLOW_DEFAULT_DATASTORE="local",
            METAFLOW_DEFAULT_METADATA="local",
            METAFLOW_DATASTORE_SYSROOT_LOCAL=str(work),
        )
    if name == "zenml":
        env.update(
            ZENML_CONFIG_PATH=str(work / "zenml-config"),
            ZENML_ANALYTICS_OPT_IN="false",
            ZENML_LOGGING_VERBOSITY="WARN",
        )
    if name == "dagster":
        env["DAGSTER_HOME"] = str(work / "dagster-home")
        (work / "dagster-home").mkdir(exist_ok=True)
        (work / "dagster-home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return env


def peer_cmd(name, python, shape, work):
    """The peer's scripts are copied into its working directory first: ZenML refuses a pipeline
    whose file lies outside its source root (the directory of `zenml init`)."""
    if name == "metaflow":
        return [python, f"metaflow_{shape}.py", "--no-pylint", "--quiet", "run"]
    if name == "kfp":
        return [python, "kfp_local.py", shape, str(work / "kfp-root")]
    if name == "zenml":
        return [python, "zenml_local.py", shape]
    return [python, "dagster_inprocess.py", shape]


def isolated(cmd):
    """The peers run in a network namespace of their own (no route anywhere) where unshare works."""
    if shutil.which("unshare") and subprocess.run(["unshare", "-n", "true"], check=False).returncode == 0:
        return ["unshare", "-n", *cmd]
    return cmd


def inner_seconds(stdout):
    for line in stdout.splitlines():
        if line.startswith("inner_s="):
            return float(line.split("=", 1)[1])
    return None


def peer_version(name, python):
    code = f"import importlib.metadata as m; print(m.version({name!r}))"
    proc = subprocess.run([python, "-c", code], capture_output=True, text=True, check=False)
    return proc.stdout.strip() or "unknown"


def run_peer(name, python, work, reps):
    work.mkdir()
    for script in (HERE / "peers").glob(f"{name}_*.py"):
        shutil.copy(script, work)
    env = peer_env(name, work)
    if name == "zenml":
        zenml = str(Path(python).parent / "zenml")
        try:
            timed(isolated([zenml, "init"]), work, env)
        except (Failed, subprocess.TimeoutExpired) as e:
            return {shape: {"error": f"zenml init: {e}"} for shape in SHAPES}
    result = {}
    for shape in SHAPES:
        cmd = isolated(peer_cmd(name, python, shape, work))
        try:
            timed(cmd, work, env)  # warm-up: first-run set-up (databases, bytecode) is not counted
            walls, inner = [], []
            for _ in range(reps):
                wall, out = timed(cmd, work, env)
                walls.append(wall)
                if (s := inner_seconds(out)) is not None:
                    inner.append(s)
            result[shape] = {"walls": walls, "inner": inner}
        except (Failed, subprocess.TimeoutExpired) as e:
            result[shape] = {"error": str(e)}
    return result


def side_by_side(binary, work, peers, reps, peer_reps):
    repo = work / "side"
    repo.mkdir()
    out = {"twinloop": {}, "twinloop --no-store": {}}
    for shape in SHAPES:
        yaml = HERE / f"{shape}.yaml"
        home = ["--home", str(repo / ".twinloop")]
        for label, extra in (("twinloop", store_args(work)), ("twinloop --no-store", ["--no-store"])):
            tw_run(binary, yaml, repo, [*home, *extra], 1, "SUCCEEDED")
            walls, engine = tw_run(binary, yaml, repo, [*home, *extra], reps, "SUCCEEDED")
            out[label][shape] = {"walls": walls, "inner": engine}
    for name, python in peers.items():
        print(f"  {name} …", file=sys.stderr, flush=True)
        out[name] = run_peer(name, python, work / name, peer_reps)
    return out


def quickstart(binary, work, reps):
    out = {}
    for scenario, n in (("good", reps), ("bad-model", 1)):
        walls = []
        for i in range(n):
            target = work / f"quickstart-{scenario}-{i}"
            wall, _ = timed(
                [binary, "quickstart", "--dir", str(target), "--scenario", scenario], work, timeout=300
            )
            walls.append(wall)
            shutil.rmtree(target, ignore_errors=True)
        out[scenario] = walls
    return out


def ms(x):
    return "—" if x is None else f"{x * 1000:,.1f}"


def machine():
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {mem:.1f} GiB, Linux {platform.release()}, Python {platform.python_version()}"


def report(res):
    lines = []
    e = res.get("engine")
    if e:
        spawn = median(e["spawns"])
        lines += [
            f"Engine overhead, {CHAIN}-step no-op chain (median of {len(e['spawns'])}; "
            f"{CHAIN} × `sh -c true` alone: {ms(spawn)} ms):",
            "",
            "| run | wall ms | engine's own run time ms | per step ms: executed (wall − spawns) / 50, cached wall / 50 |",
            "|---|---:|---:|---:|",
        ]
        rows = (
            ("`--no-store`, every step executed", "no_store", True),
            ("with the store (MLflow runs + lineage recorded)", "store", True),
            ("cacheable chain, first run (cache filled), `--no-store`", "cached_first", True),
            ("fully cached rerun, `--no-store`", "cached_no_store", False),
            ("fully cached rerun, with the store", "cached_store", False),
        )
        for label, key, spawned in rows:
            walls, engine = e[key]
            wall = median(walls)
            per = (wall - (spawn if spawned else 0)) / CHAIN
            lines.append(f"| {label} | {ms(wall)} | {ms(median(engine))} | {ms(per)} |")
        lines.append("")
    s = res.get("side")
    if s:
        base = s["twinloop"]
        lines += [
            "Side by side (median wall of a fresh process per run; ratio = peer ÷ twinloop with its "
            "store, > 1 means twinloop is faster; in-process = the time inside the run call, without "
            "interpreter start-up and imports):",
            "",
            "| system | 5-step chain wall ms | ratio | in-process ms | 20-wide fan-out wall ms | ratio | in-process ms |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for name, shapes in s.items():
            cells = []
            for shape in SHAPES:
                r = shapes.get(shape, {})
                if "error" in r:
                    cells += [f"failed: {r['error'][:80]}", "", ""]
                    continue
                wall = median(r["walls"])
                ratio = wall / median(base[shape]["walls"])
                cells += [ms(wall), f"{ratio:.1f}×", ms(median(r["inner"]))]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        for name, reason in res.get("missing", {}).items():
            lines.append(f"| {name} | not measured: {reason} | | | | | |")
        lines.append("")
    q = res.get("quickstart")
    if q:
        lines += [
            "| quickstart | runs | median wall s | all walls s |",
            "|---|---:|---:|---|",
        ]
        for scenario, walls in q.items():
            all_walls = ", ".join(f"{w:.1f}" for w in walls)
            lines.append(f"| `--scenario {scenario}` | {len(walls)} | {median(walls):.1f} | {all_walls} |")
        lines.append("")
    return "\n".join(lines)


def main():
    args = parse_args()
    peers = dict(p.split("=", 1) for p in args.peer)
    missing = dict(m.split("=", 1) for m in args.missing)
    reps, peer_reps, qs_reps = (3, 1, 1) if args.quick else (10, 3, 3)
    binary = str(Path(args.bin).resolve())
    res = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "versions": {name: peer_version(name, python) for name, python in peers.items()},
        "load_before": Path("/proc/loadavg").read_text().split()[0],
        "missing": missing,
    }
    with tempfile.TemporaryDirectory(prefix="bench-pipelines-") as tmp:
        work = Path(tmp)
        print("engine overhead …", file=sys.stderr, flush=True)
        res["engine"] = engine_overhead(binary, work, reps)
        print("side by side …", file=sys.stderr, flush=True)
        res["side"] = side_by_side(binary, work, peers, reps, peer_reps)
        if not args.no_quickstart:
            print("quickstart …", file=sys.stderr, flush=True)
            res["quickstart"] = quickstart(binary, work, qs_reps)
    res["load_after"] = Path("/proc/loadavg").read_text().split()[0]
    text = report(res)
    header = (
        f"Run of {res['date']} on {res['machine']}; 1-minute load average "
        f"{res['load_before']} before, {res['load_after']} after. Peers: "
        + ", ".join(f"{name} {v}" for name, v in res["versions"].items())
        + ".\n"
    )
    print(header + "\n" + text)
    if args.markdown:
        args.markdown.write_text(header + "\n" + text + "\n")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
