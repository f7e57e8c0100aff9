"""Regenerates the example's data files (deterministic). Needs pyarrow.

    python examples/feature_repo/make_data.py
"""
import datetime as dt
import pathlib
import random

import pyarrow as pa
import pyarrow.parquet as pq

here = pathlib.Path(__file__).parent
rng = random.Random(7)
utc = dt.timezone.utc
start = dt.datetime(2024, 1, 1, tzinfo=utc)
ts_type = pa.timestamp("us", tz="UTC")

rows = []
for driver in range(1001, 1006):
    for hour in range(72):
        t = start + dt.timedelta(hours=hour)
        rows.append((driver, t, t + dt.timedelta(minutes=5), rng.random(), rng.random(), rng.randint(0, 40)))
# A late correction: same event time, later created time; the later one must win.
rows.append((1001, start + dt.timedelta(hours=10), start + dt.timedelta(hours=30), 0.999, 0.5, 99))
rng.shuffle(rows)
cols = list(zip(*rows))
pq.write_table(
    pa.table(
        {
            "driver_id": pa.array(cols[0], pa.int64()),
            "event_timestamp": pa.array(cols[1], ts_type),
            "created": pa.array(cols[2], ts_type),
            "conv_rate": pa.array(cols[3], pa.float32()),
            "acc_rate": pa.array(cols[4], pa.float32()),
            "avg_daily_trips": pa.array(cols[5], pa.int64()),
        }
    ),
    here / "data" / "driver_hourly_stats.parquet",
)

rows = [
    (customer, start + dt.timedelta(days=day), round(rng.uniform(0, 500), 2), rng.randint(0, 300))
    for customer in range(2001, 2004)
    for day in range(3)
]
cols = list(zip(*rows))
pq.write_table(
    pa.table(
        {
            "customer_id": pa.array(cols[0], pa.int64()),
            "event_timestamp": pa.array(cols[1], ts_type),
            "current_balance": pa.array(cols[2], pa.float32()),
            "lifetime_trip_count": pa.array(cols[3], pa.int64()),
        }
    ),
    here / "data" / "customer_profile.parquet",
)
