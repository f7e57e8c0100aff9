"""Feast definitions equivalent to twinloop.yaml (bench/features). The bench copies this file
into the Feast repo directory; FEAST_BENCH_DATA points at the generated Parquet files."""

import os
from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, FileSource
from feast.types import Float32, Int64
from feast.value_type import ValueType

DATA = os.environ.get("FEAST_BENCH_DATA") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")

driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)
customer = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.INT64)

driver_stats = FileSource(
    name="driver_stats",
    path=os.path.join(DATA, "driver_hourly_stats.parquet"),
    timestamp_field="event_timestamp",
    created_timestamp_column="created",
)
customer_stats = FileSource(
    name="customer_stats",
    path=os.path.join(DATA, "customer_profile.parquet"),
    timestamp_field="event_timestamp",
    created_timestamp_column="created",
)

driver_hourly_stats = FeatureView(
    name="driver_hourly_stats",
    entities=[driver],
    ttl=timedelta(days=1),
    schema=[
        Field(name="conv_rate", dtype=Float32),
        Field(name="acc_rate", dtype=Float32),
        Field(name="avg_daily_trips", dtype=Int64),
    ],
    source=driver_stats,
    online=True,
)
customer_profile = FeatureView(
    name="customer_profile",
    entities=[customer],
    ttl=timedelta(days=2),
    schema=[
        Field(name="current_balance", dtype=Float32),
        Field(name="avg_passenger_count", dtype=Float32),
        Field(name="lifetime_trip_count", dtype=Int64),
    ],
    source=customer_stats,
    online=True,
)

ride_model_v1 = FeatureService(name="ride_model_v1", features=[driver_hourly_stats, customer_profile])
