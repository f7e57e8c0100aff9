"""Runs written straight into a SQLite store, for the UI's scale tests and bench/ui: 100,000 runs
through the client would take minutes, and what is measured is reading them.

``seed_twinloop`` writes what twinloop's store writes for a run with params and one point per
metric: the run row, its params, the metric point, the metric's summary (``latest_metrics`` with
min, max and count) and the experiment's key counts. ``seed_mlflow`` writes MLflow's tables for the
same runs, so both servers serve the same data.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable

Params = Callable[[int], dict[str, str]]
Metrics = Callable[[int], dict[str, float]]

BASE_TIME = 1_767_225_600_000


def _connect(db: str) -> sqlite3.Connection:
    con = sqlite3.connect(db, timeout=120)
    con.execute("PRAGMA busy_timeout = 120000")
    return con


def _runs(n: int, params: Params, metrics: Metrics, prefix: str):
    for i in range(n):
        yield i, uuid.uuid4().hex, f"{prefix}-{i}", params(i), metrics(i)


def seed_twinloop(
    db: str, experiment_id: str, n: int, params: Params, metrics: Metrics, prefix: str = "run"
) -> list[str]:
    """Writes `n` finished runs into twinloop's SQLite store; run i starts at BASE_TIME + i, so the
    default order (newest first) puts run n-1-p at position p. Returns the run ids by i."""
    exp = int(experiment_id)
    ids: list[str] = []
    run_rows, param_rows, metric_rows, latest_rows = [], [], [], []
    key_counts: dict[tuple[str, str], int] = {}
    for i, run_id, name, ps, ms in _runs(n, params, metrics, prefix):
        ids.append(run_id)
        t = BASE_TIME + i
        run_rows.append(
            (run_id, exp, name, "bench", "FINISHED", t, t + 1000, f"mlflow-artifacts:/{exp}/{run_id}/artifacts", "active")
        )
        for k, v in ps.items():
            param_rows.append((run_id, k, v))
            key_counts[("param", k)] = key_counts.get(("param", k), 0) + 1
        for k, v in ms.items():
            metric_rows.append((run_id, k, 0, t, v, 0))
            latest_rows.append((run_id, k, 0, t, v, 0, v, v, 1))
            key_counts[("metric", k)] = key_counts.get(("metric", k), 0) + 1
    con = _connect(db)
    with con:
        con.executemany(
            "INSERT INTO runs (run_uuid, experiment_id, name, user_id, status, start_time, end_time,"
            " artifact_uri, lifecycle_stage, deleted_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)",
            run_rows,
        )
        con.executemany("INSERT INTO params (run_uuid, key, value) VALUES (?, ?, ?)", param_rows)
        con.executemany(
            "INSERT INTO metrics (run_uuid, key, step, timestamp, value, is_nan) VALUES (?, ?, ?, ?, ?, ?)",
            metric_rows,
        )
        con.executemany(
            "INSERT INTO latest_metrics (run_uuid, key, step, timestamp, value, is_nan, min_value,"
            " max_value, value_count) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            latest_rows,
        )
        con.executemany(
            "INSERT INTO experiment_keys (experiment_id, kind, key, runs) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (experiment_id, kind, key) DO UPDATE SET runs = runs + excluded.runs",
            [(exp, kind, key, count) for (kind, key), count in key_counts.items()],
        )
    con.close()
    return ids


def seed_mlflow(
    db: str, experiment_id: str, n: int, params: Params, metrics: Metrics, prefix: str = "run"
) -> list[str]:
    """The same runs in MLflow's SQLite schema (mlflow server 3.x)."""
    exp = int(experiment_id)
    ids: list[str] = []
    run_rows, param_rows, metric_rows, latest_rows, tag_rows = [], [], [], [], []
    for i, run_id, name, ps, ms in _runs(n, params, metrics, prefix):
        ids.append(run_id)
        t = BASE_TIME + i
        run_rows.append(
            (run_id, name, "LOCAL", "", "", "bench", "FINISHED", t, t + 1000, None, "", "active",
             f"mlflow-artifacts:/{exp}/{run_id}/artifacts", exp)
        )  # fmt: skip
        tag_rows.append(("mlflow.runName", name, run_id))
        for k, v in ps.items():
            param_rows.append((k, v, run_id))
        for k, v in ms.items():
            metric_rows.append((k, v, t, run_id, 0, False))
            latest_rows.append((k, v, t, 0, False, run_id))
    con = _connect(db)
    with con:
        con.executemany(
            "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, user_id,"
            " status, start_time, end_time, deleted_time, source_version, lifecycle_stage,"
            " artifact_uri, experiment_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            run_rows,
        )
        con.executemany("INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?)", tag_rows)
        con.executemany("INSERT INTO params (key, value, run_uuid) VALUES (?, ?, ?)", param_rows)
        con.executemany(
            "INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) VALUES (?, ?, ?, ?, ?, ?)",
            metric_rows,
        )
        con.executemany(
            "INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) VALUES (?, ?, ?, ?, ?, ?)",
            latest_rows,
        )
    con.close()
    return ids


def seed_metric_keys(db: str, experiment_id: str, run_id: str, keys: int, prefix: str = "key") -> None:
    """Gives one run of twinloop's store `keys` metrics of one point each (an experiment with
    12,000 metric keys)."""
    exp = int(experiment_id)
    names = [f"{prefix}-{i:05d}" for i in range(keys)]
    con = _connect(db)
    with con:
        con.executemany(
            "INSERT INTO metrics (run_uuid, key, step, timestamp, value, is_nan) VALUES (?, ?, 0, ?, ?, 0)",
            [(run_id, k, BASE_TIME, float(i)) for i, k in enumerate(names)],
        )
        con.executemany(
            "INSERT INTO latest_metrics (run_uuid, key, step, timestamp, value, is_nan, min_value,"
            " max_value, value_count) VALUES (?, ?, 0, ?, ?, 0, ?, ?, 1)",
            [(run_id, k, BASE_TIME, float(i), float(i), float(i)) for i, k in enumerate(names)],
        )
        con.executemany(
            "INSERT INTO experiment_keys (experiment_id, kind, key, runs) VALUES (?, 'metric', ?, 1)"
            " ON CONFLICT (experiment_id, kind, key) DO UPDATE SET runs = runs + 1",
            [(exp, k) for k in names],
        )
    con.close()
