#!/usr/bin/env python3
"""Ride-hailing data for the feature-store benchmark (deterministic for a given seed and scale).

Writes into DIR:
  driver_hourly_stats.parquet  driver_id int64, event_timestamp ts[us, UTC], created ts[us, UTC],
                               conv_rate float32, acc_rate float32 (a few nulls), avg_daily_trips int64
  customer_profile.parquet     customer_id int64, event_timestamp, created, current_balance float32,
                               avg_passenger_count float32, lifetime_trip_count int64
  entities.parquet             row_id int64 (0..n-1, = the row's position), driver_id int64,
                               customer_id int64, event_timestamp ts[us, UTC], label int64
  cases.parquet                row_id, case (string): which edge case each special entity row tests
  meta.json                    sizes, seed, TTLs, generator version

Seven days of hourly rows from 2024-01-01T00:00Z; every entity (driver or customer) has its own
density, so some keys are dense and some sparse, and the gaps sometimes exceed the TTL. About 10%
of the rows are off the hour (random microseconds). Edge cases:
  * ties: ~0.2% of the (key, event_timestamp) pairs appear twice with a different `created`
    (the later-created copy, which may come first in the file, must win), with other values;
  * entity rows at exactly feature ts + TTL (inclusive lower bound: must match) and 1 µs past it
    (must not), taken where the next row of that key is further away than the TTL;
  * entity rows at exactly a feature row's ts (inclusive upper bound) and 1 µs before it;
  * entity rows at tied timestamps;
  * keys absent from the sources (driver, customer, or both), entity rows before the first
    feature row and past the end of the data (TTL expiry);
  * duplicate entity rows: identical, differing only in label, and same driver/ts with another
    customer.
Entity rows are shuffled (input order is not time order). The sources are generated in chunks of
keys, so memory stays bounded at the large scale (~10M + 2M rows).

  python gen_data.py --scale small|medium|large --out DIR [--seed 42]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

GEN_VERSION = 1
US = 1_000_000
HOUR = 3600 * US
DAY = 24 * HOUR
START = 1704067200 * US  # 2024-01-01T00:00:00Z
HOURS = 7 * 24
DRIVER_TTL_S = 86400  # 1d (keep in step with repo/twinloop.yaml and repo/feast_repo.py)
CUSTOMER_TTL_S = 2 * 86400  # 2d
DRIVER_BASE = 1001
CUSTOMER_BASE = 500001
UNKNOWN_DRIVER_BASE = 90_000_000
UNKNOWN_CUSTOMER_BASE = 99_000_000

SCALES = {
    #          drivers  customers  entity rows
    "small": (300, 100, 1_000),
    "medium": (30_000, 10_000, 100_000),
    "large": (300_000, 100_000, 1_000_000),
}
DRIVER_DENSITY = (0.02, 0.38)  # per-driver probability of a row in a given hour (mean 0.2)
CUSTOMER_DENSITY = (0.02, 0.22)  # mean 0.12
KEYS_PER_CHUNK = 20_000
TIE_FRACTION = 0.002
NULL_FRACTION = 0.002
SPECIAL_FRACTION = 0.10  # of the entity rows

TS = pa.timestamp("us", tz="UTC")
DRIVER_SCHEMA = pa.schema([
    ("driver_id", pa.int64()), ("event_timestamp", TS), ("created", TS),
    ("conv_rate", pa.float32()), ("acc_rate", pa.float32()), ("avg_daily_trips", pa.int64()),
])  # fmt: skip
CUSTOMER_SCHEMA = pa.schema([
    ("customer_id", pa.int64()), ("event_timestamp", TS), ("created", TS),
    ("current_balance", pa.float32()), ("avg_passenger_count", pa.float32()),
    ("lifetime_trip_count", pa.int64()),
])  # fmt: skip
ENTITY_SCHEMA = pa.schema([
    ("row_id", pa.int64()), ("driver_id", pa.int64()), ("customer_id", pa.int64()),
    ("event_timestamp", TS), ("label", pa.int64()),
])  # fmt: skip


def gen_view_chunk(rng, first_id, n_keys, density, values_fn):
    """Rows for keys first_id..first_id+n_keys-1: (key, ts, created, v1, v2, v3, v2_null)."""
    p = rng.uniform(density[0], density[1], size=n_keys)
    hit = rng.random((n_keys, HOURS)) < p[:, None]
    k_idx, h_idx = np.nonzero(hit)
    n = len(k_idx)
    key = first_id + k_idx.astype(np.int64)
    ts = START + h_idx.astype(np.int64) * HOUR
    off = rng.random(n) < 0.10
    ts[off] += rng.integers(1, HOUR, size=int(off.sum()))
    created = ts + rng.integers(0, 2 * HOUR, size=n)
    v1, v2, v3 = values_fn(rng, n)
    # ties: a second row for the same (key, ts), another created (earlier or later), other values
    n_tie = int(round(n * TIE_FRACTION))
    tie_src = rng.choice(n, size=n_tie, replace=False) if n_tie else np.empty(0, np.int64)
    delta = rng.integers(1, HOUR, size=n_tie) * np.where(rng.random(n_tie) < 0.5, -1, 1)
    t1, t2, t3 = values_fn(rng, n_tie)
    key = np.concatenate([key, key[tie_src]])
    ts = np.concatenate([ts, ts[tie_src]])
    created = np.concatenate([created, created[tie_src] + delta])
    v1, v2, v3 = np.concatenate([v1, t1]), np.concatenate([v2, t2]), np.concatenate([v3, t3])
    null2 = rng.random(len(key)) < NULL_FRACTION
    # file order: by event time within the chunk (ties in random order)
    perm = rng.permutation(len(key))
    order = perm[np.argsort(ts[perm], kind="stable")]
    return {
        "key": key[order], "ts": ts[order], "created": created[order],
        "v1": v1[order], "v2": v2[order], "v3": v3[order], "null2": null2[order],
        "tie_ts_keys": (key[tie_src], ts[tie_src]),
    }  # fmt: skip


def driver_values(rng, n):
    return (rng.random(n).astype(np.float32), rng.random(n).astype(np.float32),
            rng.integers(0, 1000, size=n, dtype=np.int64))  # fmt: skip


def customer_values(rng, n):
    return ((rng.random(n) * 1000).astype(np.float32), (rng.random(n) * 4).astype(np.float32),
            rng.integers(0, 10_000, size=n, dtype=np.int64))  # fmt: skip


def to_table(c, schema):
    n1, n2, n3 = schema.names[3:]
    return pa.table(
        {
            schema.names[0]: pa.array(c["key"], pa.int64()),
            "event_timestamp": pa.array(c["ts"], TS),
            "created": pa.array(c["created"], TS),
            n1: pa.array(c["v1"], pa.float32()),
            n2: pa.array(c["v2"], pa.float32(), mask=c["null2"]),
            n3: pa.array(c["v3"], pa.int64()),
        },
        schema=schema,
    )


def specials_from_chunk(rng, c, ttl_us, want):
    """Edge-case (key, ts, case) triples taken from one chunk of one view, ~`want` of each kind."""
    key, ts = c["key"], c["ts"]
    out = []
    # unique (key, ts) in (key, ts) order; the next row of the same key
    o = np.lexsort((ts, key))
    k, t = key[o], ts[o]
    keep = np.ones(len(k), bool)
    keep[1:] = (k[1:] != k[:-1]) | (t[1:] != t[:-1])
    k, t = k[keep], t[keep]
    same_next = np.zeros(len(k), bool)
    same_next[:-1] = k[1:] == k[:-1]
    gap = np.full(len(k), np.iinfo(np.int64).max)
    gap[:-1] = np.where(same_next[:-1], t[1:] - t[:-1], gap[:-1])
    cand = np.nonzero(gap > ttl_us)[0]
    if len(cand):
        pick = rng.choice(cand, size=min(want, len(cand)), replace=False)
        out += [(k[i], t[i] + ttl_us, "ttl_boundary") for i in pick]
        out += [(k[i], t[i] + ttl_us + 1, "ttl_past_1us") for i in pick]
    pick = rng.choice(len(k), size=min(want, len(k)), replace=False)
    out += [(k[i], t[i], "exact_ts") for i in pick]
    out += [(k[i], t[i] - 1, "ts_minus_1us") for i in pick]
    tk, tt = c["tie_ts_keys"]
    if len(tk):
        pick = rng.choice(len(tk), size=min(want, len(tk)), replace=False)
        out += [(tk[i], tt[i], "tie_exact") for i in pick]
        out += [(tk[i], tt[i] + rng.integers(1, HOUR), "tie_after") for i in pick]
    return out


def write_view(path, schema, n_keys, first_id, density, values_fn, ttl_us, rng_seed, want_total):
    writer = pq.ParquetWriter(path, schema)
    rows, specials = 0, []
    n_chunks = (n_keys + KEYS_PER_CHUNK - 1) // KEYS_PER_CHUNK
    try:
        for ci in range(n_chunks):
            rng = np.random.default_rng([rng_seed, ci])
            lo = ci * KEYS_PER_CHUNK
            nk = min(KEYS_PER_CHUNK, n_keys - lo)
            c = gen_view_chunk(rng, first_id + lo, nk, density, values_fn)
            writer.write_table(to_table(c, schema))
            rows += len(c["key"])
            want = max(1, int(round(want_total * nk / n_keys)))
            specials += specials_from_chunk(rng, c, ttl_us, want)
    finally:
        writer.close()
    return rows, specials


def generate(scale, out, seed=42, quiet=False):
    n_drivers, n_customers, n_ent = SCALES[scale]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    # specials per kind per view: 7 kinds x 2 views x want ~ 0.6 * SPECIAL_FRACTION * n_ent
    want = max(2, int(n_ent * SPECIAL_FRACTION * 0.6 / 14))
    d_rows, d_spec = write_view(out / "driver_hourly_stats.parquet", DRIVER_SCHEMA, n_drivers,
                                DRIVER_BASE, DRIVER_DENSITY, driver_values, DRIVER_TTL_S * US,
                                [seed, 1], want)  # fmt: skip
    c_rows, c_spec = write_view(out / "customer_profile.parquet", CUSTOMER_SCHEMA, n_customers,
                                CUSTOMER_BASE, CUSTOMER_DENSITY, customer_values,
                                CUSTOMER_TTL_S * US, [seed, 2], want)  # fmt: skip

    rng = np.random.default_rng([seed, 3])

    def rand_driver(n):
        d = DRIVER_BASE + rng.integers(0, n_drivers, size=n)
        unk = rng.random(n) < 0.03
        d[unk] = UNKNOWN_DRIVER_BASE + rng.integers(0, 1_000_000, size=int(unk.sum()))
        return d

    def rand_customer(n):
        c = CUSTOMER_BASE + rng.integers(0, n_customers, size=n)
        unk = rng.random(n) < 0.03
        c[unk] = UNKNOWN_CUSTOMER_BASE + rng.integers(0, 1_000_000, size=int(unk.sum()))
        return c

    drv, cus, ts, case = [], [], [], []
    for k, t, cs in d_spec:
        drv.append(k), cus.append(None), ts.append(t), case.append("driver_" + cs)
    for k, t, cs in c_spec:
        drv.append(None), cus.append(k), ts.append(t), case.append("customer_" + cs)
    n_sp = len(case)
    drv = np.array([rand_driver(1)[0] if v is None else v for v in drv], np.int64)
    cus = np.array([rand_customer(1)[0] if v is None else v for v in cus], np.int64)
    ts = np.array(ts, np.int64)
    case = list(case)
    # unknown keys on purpose
    n_unk = max(3, n_ent // 200)
    for which in ("unknown_driver", "unknown_customer", "unknown_both"):
        d = DRIVER_BASE + rng.integers(0, n_drivers, size=n_unk)
        c = CUSTOMER_BASE + rng.integers(0, n_customers, size=n_unk)
        if which != "unknown_customer":
            d = UNKNOWN_DRIVER_BASE + 1_000_000 + rng.integers(0, 1_000_000, size=n_unk)
        if which != "unknown_driver":
            c = UNKNOWN_CUSTOMER_BASE + 1_000_000 + rng.integers(0, 1_000_000, size=n_unk)
        drv = np.concatenate([drv, d])
        cus = np.concatenate([cus, c])
        ts = np.concatenate([ts, START + rng.integers(0, 7 * DAY, size=n_unk)])
        case += [which] * n_unk
    n_dup_each = max(3, n_ent // 200)
    n_plain = n_ent - len(case) - 3 * n_dup_each
    if n_plain < n_ent // 2:
        sys.exit("gen_data: too many special rows for this scale")
    # ordinary rows: from 12 h before the data to 2 days after it
    drv = np.concatenate([drv, rand_driver(n_plain)])
    cus = np.concatenate([cus, rand_customer(n_plain)])
    ts = np.concatenate([ts, START - 12 * HOUR + rng.integers(0, 9 * DAY + 12 * HOUR, size=n_plain)])
    case += [""] * n_plain
    label = rng.integers(0, 2, size=len(drv))
    # duplicates of existing rows: identical, label flipped, other customer at the same ts
    for which in ("dup_identical", "dup_label", "dup_other_customer"):
        src = rng.choice(len(drv), size=n_dup_each, replace=False)
        d, c, t, lab = drv[src], cus[src].copy(), ts[src], label[src].copy()
        if which == "dup_label":
            lab = 1 - lab
        if which == "dup_other_customer":
            c = CUSTOMER_BASE + rng.integers(0, n_customers, size=n_dup_each)
        drv, cus, ts, label = (np.concatenate([drv, d]), np.concatenate([cus, c]),
                               np.concatenate([ts, t]), np.concatenate([label, lab]))  # fmt: skip
        case += [which] * n_dup_each
    assert len(drv) == n_ent, (len(drv), n_ent)
    perm = rng.permutation(n_ent)
    drv, cus, ts, label = drv[perm], cus[perm], ts[perm], label[perm]
    case = [case[i] for i in perm]
    row_id = np.arange(n_ent, dtype=np.int64)
    ent = pa.table({"row_id": row_id, "driver_id": drv, "customer_id": cus,
                    "event_timestamp": pa.array(ts, TS), "label": label.astype(np.int64)},
                   schema=ENTITY_SCHEMA)  # fmt: skip
    pq.write_table(ent, out / "entities.parquet")
    sel = [i for i, c in enumerate(case) if c]
    pq.write_table(pa.table({"row_id": pa.array(sel, pa.int64()),
                             "case": pa.array([case[i] for i in sel], pa.string())}),
                   out / "cases.parquet")  # fmt: skip
    counts = {}
    for c in case:
        if c:
            counts[c] = counts.get(c, 0) + 1
    meta = {
        "generator_version": GEN_VERSION, "scale": scale, "seed": seed,
        "drivers": n_drivers, "customers": n_customers,
        "driver_rows": d_rows, "customer_rows": c_rows, "entity_rows": n_ent,
        "special_rows": n_sp, "cases": counts,
        "driver_ttl_s": DRIVER_TTL_S, "customer_ttl_s": CUSTOMER_TTL_S,
        "seconds": round(time.perf_counter() - t0, 2),
    }  # fmt: skip
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    if not quiet:
        print(f"gen_data {scale}: {d_rows:,} driver rows, {c_rows:,} customer rows, "
              f"{n_ent:,} entity rows ({sum(counts.values()):,} edge cases) in {meta['seconds']} s "
              f"-> {out}")  # fmt: skip
    return meta


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", choices=list(SCALES), required=True)
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--seed", type=int, default=42)
    a = ap.parse_args(argv)
    generate(a.scale, a.out, a.seed)


if __name__ == "__main__":
    main()
