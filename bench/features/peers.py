#!/usr/bin/env python3
"""The peers' side of the point-in-time join, run by bench.py as a child process each (so that
its wall time and peak memory are the tool's own). Each prints one JSON line with its inner
timings on stdout.

  python peers.py duckdb --data DIR --entities ENT.parquet --out OUT.parquet [--threads N]
  python peers.py feast  --repo FEAST_REPO --entities ENT.parquet --out OUT.parquet

duckdb: the `duckdb_asof` query of shared/reference/feast.md 1.3: one ASOF LEFT JOIN per view
on (key =, {t: ts, c: created} <=), the entity side with c = +infinity, so that ASOF itself picks
the latest event time and, among ties, the latest created; the TTL is applied afterwards
(`CASE WHEN f.ts >= e.ts - ttl`), which is right because the row ASOF picked is the latest one.
Parquet in, Parquet out (COPY ... TO), like twinloop's CLI. The output is not in input order.

feast: FeatureStore(repo).get_historical_features(entity_df, features).to_arrow() with the
`duckdb` offline store (ibis), the entity DataFrame read from the same Parquet file, the result
written to Parquet.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

FEATURES = [
    "driver_hourly_stats:conv_rate",
    "driver_hourly_stats:acc_rate",
    "driver_hourly_stats:avg_daily_trips",
    "customer_profile:current_balance",
    "customer_profile:avg_passenger_count",
    "customer_profile:lifetime_trip_count",
]
# view -> (source file, join key, ttl seconds, features); ttl in step with gen_data.py
VIEWS = {
    "driver_hourly_stats": ("driver_hourly_stats.parquet", "driver_id", 86400,
                            ["conv_rate", "acc_rate", "avg_daily_trips"]),
    "customer_profile": ("customer_profile.parquet", "customer_id", 2 * 86400,
                         ["current_balance", "avg_passenger_count", "lifetime_trip_count"]),
}  # fmt: skip


def sql_str(s):
    return "'" + str(s).replace("'", "''") + "'"


def duckdb_asof_sql(data_dir, entities, out, ttls=None):
    ttls = ttls or {}
    ctes = [f"e AS (SELECT *, {{'t': event_timestamp, 'c': 'infinity'::TIMESTAMPTZ}} AS __k "
            f"FROM read_parquet({sql_str(entities)}))"]  # fmt: skip
    joins, cols = [], []
    for i, (view, (fname, key, ttl, feats)) in enumerate(VIEWS.items()):
        ttl = ttls.get(view, ttl)
        a = f"f{i}"
        path = os.path.join(data_dir, fname)
        ctes.append(
            f"{a} AS (SELECT {key} AS __key, event_timestamp AS __ts, "
            f"{{'t': event_timestamp, 'c': created}} AS __k, {', '.join(feats)} "
            f"FROM read_parquet({sql_str(path)}))"
        )
        joins.append(f"ASOF LEFT JOIN {a} ON e.{key} = {a}.__key AND e.__k >= {a}.__k")
        for f in feats:
            cols.append(f"CASE WHEN {a}.__ts >= e.event_timestamp - INTERVAL {int(ttl)} SECOND "
                        f"THEN {a}.{f} END AS {f}")  # fmt: skip
    q = (f"WITH {', '.join(ctes)} SELECT e.* EXCLUDE (__k), {', '.join(cols)} FROM e "
         + " ".join(joins))
    return f"COPY ({q}) TO {sql_str(out)} (FORMAT parquet)"


def run_duckdb(a):
    t0 = time.perf_counter()
    import duckdb

    t_import = time.perf_counter() - t0
    con = duckdb.connect()
    if a.threads:
        con.execute(f"SET threads = {int(a.threads)}")
    con.execute("SET TimeZone = 'UTC'")
    sql = duckdb_asof_sql(a.data, a.entities, a.out)
    t1 = time.perf_counter()
    con.execute(sql)
    t_query = time.perf_counter() - t1
    print(json.dumps({"import_s": t_import, "query_s": t_query, "duckdb": duckdb.__version__,
                      "threads": con.execute("SELECT current_setting('threads')").fetchone()[0],
                      "sql": sql}))  # fmt: skip


def run_feast(a):
    os.environ.setdefault("FEAST_USAGE", "False")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    t0 = time.perf_counter()
    import pyarrow.parquet as pq
    from feast import FeatureStore

    t_import = time.perf_counter() - t0
    t1 = time.perf_counter()
    store = FeatureStore(repo_path=a.repo)
    entity_df = pq.read_table(a.entities).to_pandas()
    t_load = time.perf_counter() - t1
    t2 = time.perf_counter()
    job = store.get_historical_features(entity_df=entity_df, features=FEATURES)
    table = job.to_arrow()
    t_query = time.perf_counter() - t2
    t3 = time.perf_counter()
    pq.write_table(table, a.out)
    t_write = time.perf_counter() - t3
    print(json.dumps({"import_s": t_import, "load_s": t_load, "query_s": t_query,
                      "write_s": t_write, "rows": table.num_rows}))  # fmt: skip


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="tool", required=True)
    d = sub.add_parser("duckdb")
    d.add_argument("--data", required=True)
    d.add_argument("--entities", required=True)
    d.add_argument("--out", required=True)
    d.add_argument("--threads", type=int)
    f = sub.add_parser("feast")
    f.add_argument("--repo", required=True)
    f.add_argument("--entities", required=True)
    f.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    {"duckdb": run_duckdb, "feast": run_feast}[a.tool](a)


if __name__ == "__main__":
    sys.exit(main())
