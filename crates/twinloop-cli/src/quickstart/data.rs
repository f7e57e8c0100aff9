//! The quickstart's synthetic card transactions: seeded, a time axis of days, a fraud label.
//! From `SHIFT_DAY` on, a new fraud pattern appears (far-away transactions from low-risk
//! merchants) and long distances become common: the model trained before it misses those frauds
//! (its ROC AUC falls) and the inputs drift, which is what the monitor is there to see.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use arrow::array::{ArrayRef, Float64Array, Int64Array, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use twinloop_learn::bootstrap::SplitMix64;

/// Days of history; the last `DAYS - SHIFT_DAY` are the shifted ones.
pub const DAYS: i64 = 24;
pub const SHIFT_DAY: i64 = 16;
const PER_DAY: i64 = 500;
/// 2026-11-01T00:00:00Z: fixed, so every run of the quickstart sees the same data.
const START_US: i64 = 1_793_491_200_000_000;
const DAY_US: i64 = 86_400_000_000;

/// The model's inputs, in the order the trainer is told and requests send them.
pub const FEATURES: [&str; 5] = [
    "amount",
    "hour",
    "distance_km",
    "merchant_risk",
    "account_age_days",
];

#[derive(Debug, Clone, PartialEq)]
pub struct Transaction {
    pub id: i64,
    pub day: i64,
    pub time_us: i64,
    pub features: [f64; 5],
    pub is_fraud: bool,
}

/// The gate's seeded generator, so the same transactions come out on every machine.
struct Rng(SplitMix64);

impl Rng {
    fn uniform(&mut self) -> f64 {
        self.0.unit()
    }

    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform().max(1e-12), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Every transaction of the history, oldest first.
pub fn generate(seed: u64) -> Vec<Transaction> {
    let mut rng = Rng(SplitMix64::new(seed));
    let mut out = Vec::with_capacity((DAYS * PER_DAY) as usize);
    for day in 0..DAYS {
        let shifted = day >= SHIFT_DAY;
        for i in 0..PER_DAY {
            let id = day * PER_DAY + i;
            let time_us =
                START_US + day * DAY_US + rng.uniform().mul_add(DAY_US as f64, 0.0) as i64;
            let amount = (3.5 + 0.9 * rng.normal()).exp();
            let hour = (rng.uniform() * 24.0).floor();
            let far = shifted && rng.uniform() < 0.35;
            let distance_km = if far {
                200.0 + 300.0 * rng.uniform()
            } else {
                (2.0 + rng.normal()).exp()
            };
            let merchant_risk = rng.uniform();
            let account_age_days = (rng.uniform() * 2_000.0).floor();
            let night = f64::from(u8::from(!(6.0..22.0).contains(&hour)));
            let mut logit = -4.2 + 4.0 * merchant_risk + 0.9 * (amount.ln() - 3.5) + 0.8 * night
                - 0.0008 * account_age_days;
            if far {
                // The new pattern: far away, whatever the merchant.
                logit += 3.4 - 3.0 * merchant_risk;
            }
            let is_fraud = rng.uniform() < sigmoid(logit);
            out.push(Transaction {
                id,
                day,
                time_us,
                features: [amount, hour, distance_km, merchant_risk, account_age_days],
                is_fraud,
            });
        }
    }
    out
}

fn timestamp(values: Vec<i64>) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from(values).with_timezone("UTC"))
}

fn write(path: &Path, batch: &RecordBatch) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let file =
        std::fs::File::create(path).with_context(|| format!("cannot write {}", path.display()))?;
    let mut writer = ArrowWriter::try_new(file, batch.schema(), None)?;
    writer.write(batch)?;
    writer.close()?;
    Ok(())
}

fn time_field() -> Field {
    Field::new(
        "event_timestamp",
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        false,
    )
}

/// The feature source: one row per transaction, its features at its time.
pub fn write_transactions(path: &Path, rows: &[Transaction]) -> Result<()> {
    let mut fields = vec![Field::new("txn_id", DataType::Int64, false), time_field()];
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|t| t.id))),
        timestamp(rows.iter().map(|t| t.time_us).collect()),
    ];
    for (j, name) in FEATURES.iter().enumerate() {
        fields.push(Field::new(*name, DataType::Float64, false));
        columns.push(Arc::new(Float64Array::from_iter_values(
            rows.iter().map(|t| t.features[j]),
        )));
    }
    write(
        path,
        &RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?,
    )
}

/// The labels, which are also the training set's entity rows: which transaction, when, fraud.
pub fn write_labels(path: &Path, rows: &[Transaction]) -> Result<()> {
    let schema = Schema::new(vec![
        Field::new("txn_id", DataType::Int64, false),
        time_field(),
        Field::new("is_fraud", DataType::Int64, false),
    ]);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|t| t.id))),
        timestamp(rows.iter().map(|t| t.time_us).collect()),
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|t| i64::from(t.is_fraud)),
        )),
    ];
    write(path, &RecordBatch::try_new(Arc::new(schema), columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_and_shifted() {
        let a = generate(7);
        assert_eq!(a, generate(7), "the same seed gives the same history");
        assert_eq!(a.len() as i64, DAYS * PER_DAY);
        let far = |rows: &[&Transaction]| {
            rows.iter().filter(|t| t.features[2] > 150.0).count() as f64 / rows.len() as f64
        };
        let before: Vec<&Transaction> = a.iter().filter(|t| t.day < SHIFT_DAY).collect();
        let after: Vec<&Transaction> = a.iter().filter(|t| t.day >= SHIFT_DAY).collect();
        assert!(
            far(&before) < 0.02 && far(&after) > 0.25,
            "long distances appear"
        );
        let rate = |rows: &[&Transaction]| {
            rows.iter().filter(|t| t.is_fraud).count() as f64 / rows.len() as f64
        };
        assert!((0.03..0.3).contains(&rate(&before)), "{}", rate(&before));
        assert!(rate(&after) > rate(&before), "the new pattern adds frauds");
    }
}
