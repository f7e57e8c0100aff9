"""Writes the example's data files. Needs pyarrow.

    python examples/feature_repo/make_data.py                        # the committed files (tests use them)
    python examples/feature_repo/make_data.py --until now --out DIR  # three days ending now, and an
                                                                     # entity table inside them

The committed data covers 2024-01-01..03, far outside the views' TTLs (1-2 days), so online reads
of it answer OUTSIDE_MAX_AGE; `--until now` gives data an online lookup finds.
"""
import argparse
import datetime as dt
import pathlib
import random

import pyarrow as pa
import pyarrow.parquet as pq

here = pathlib.Path(__file__).parent
parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--until", help="'now' or an ISO time: the data ends at this hour (default: the 2024 data)")
parser.add_argument("--out", type=pathlib.Path, default=here, help="the feature repository to write into")
args = parser.parse_args()

utc = dt.timezone.utc
if args.until is None:
    start = dt.datetime(2024, 1, 1, tzinfo=utc)
else:
    until = dt.datetime.now(utc) if args.until == "now" else dt.datetime.fromisoformat(args.until)
    until = until.astimezone(utc).replace(minute=0, second=0, microsecond=0)
    start = until - dt.timedelta(hours=71)

rng = random.Random(7)
ts_type = pa.timestamp("us", tz="UTC")
(args.out / "data").mkdir(parents=True, exist_ok=True)

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
    args.out / "data" / "driver_hourly_stats.parquet",
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
    args.out / "data" / "customer_profile.parquet",
)

if args.until is not None:
    # Training examples inside the data's span, so every feature is found within its TTL.
    with open(args.out / "entities.csv", "w") as f:
        f.write("driver_id,customer_id,event_timestamp,label\n")
        for i in range(20):
            t = start + dt.timedelta(hours=30 + 2 * i, minutes=rng.randint(0, 59))
            f.write(f"{1001 + i % 5},{2001 + i % 3},{t.strftime('%Y-%m-%dT%H:%M:%SZ')},{rng.randint(0, 1)}\n")
