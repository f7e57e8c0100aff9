//! Materialization: the latest row per entity key within [start, end] of a view's source,
//! written to the online store in committed batches with the store's newer-wins rule. Running
//! a window twice, or windows in any order, leaves the newest rows; an interrupted run leaves
//! committed batches, and running it again completes it.

use std::collections::HashMap;
use std::time::Instant;

use arrow::array::Array;
use futures::StreamExt;
use twinloop_core::Result;

use crate::online::{OnlineRow, OnlineStore, OnlineWrite, table_name};
use crate::progress::{Progress, Stage};
use crate::repo::{FeatureRepo, FeatureView};
use crate::source;
use crate::value::Value;

/// Rows per online-store transaction.
const WRITE_BATCH: usize = 50_000;

#[derive(Debug, Clone, PartialEq)]
pub struct Materialized {
    pub view: String,
    pub start: i64,
    pub end: i64,
    /// Rows read from the source.
    pub source_rows: u64,
    /// Rows with an event time inside the window.
    pub window_rows: u64,
    /// Distinct entity keys found in the window.
    pub entities: u64,
    /// Rows that replaced an older (or no) stored row.
    pub written: u64,
    pub seconds: f64,
}

struct Best {
    event_ts: i64,
    created_ts: i64,
    row: Vec<u8>,
}

pub async fn materialize_view(
    repo: &FeatureRepo,
    store: &dyn OnlineStore,
    view: &FeatureView,
    start: i64,
    end: i64,
    progress: &Progress,
) -> Result<Materialized> {
    let began = Instant::now();
    let stage = Stage::Materialize {
        view: view.name.clone(),
    };
    progress.started(&stage, None);
    let (_, mut batches) = source::scan(repo, view).await?;
    let mut latest: HashMap<Box<[u8]>, Best> = HashMap::new();
    let (mut source_rows, mut window_rows) = (0u64, 0u64);
    let dtypes: Vec<_> = view.features.iter().map(|f| f.dtype).collect();
    while let Some(batch) = batches.next().await {
        let batch = batch?;
        source_rows += batch.len() as u64;
        progress.advanced(&stage, source_rows);
        let event = batch.event_ts.values();
        for i in 0..batch.len() {
            let Some(key) = batch.keys.get(i) else {
                continue;
            };
            if batch.event_ts.is_null(i) || event[i] < start || event[i] > end {
                continue;
            }
            window_rows += 1;
            let created = batch
                .created_ts
                .as_ref()
                .map_or(0, |c| if c.is_null(i) { i64::MIN } else { c.value(i) });
            let encode = || {
                OnlineRow {
                    event_ts: event[i],
                    created_ts: created,
                    values: batch
                        .features
                        .iter()
                        .zip(&dtypes)
                        .map(|(column, dtype)| Value::from_array(column, i, *dtype))
                        .collect(),
                }
                .encode()
            };
            match latest.get_mut(key) {
                Some(best) => {
                    if (event[i], created) >= (best.event_ts, best.created_ts) {
                        *best = Best {
                            event_ts: event[i],
                            created_ts: created,
                            row: encode(),
                        };
                    }
                }
                None => {
                    latest.insert(
                        key.into(),
                        Best {
                            event_ts: event[i],
                            created_ts: created,
                            row: encode(),
                        },
                    );
                }
            }
        }
    }
    progress.finished(&stage);
    let entities = latest.len() as u64;
    let table = table_name(&repo.config.project, view);
    let mut written = 0u64;
    let mut chunk = Vec::with_capacity(WRITE_BATCH.min(latest.len()));
    for (key, best) in latest {
        chunk.push(OnlineWrite {
            key: key.into_vec(),
            row: best.row,
        });
        if chunk.len() == WRITE_BATCH {
            written += store.write(&table, std::mem::take(&mut chunk)).await? as u64;
        }
    }
    if !chunk.is_empty() {
        written += store.write(&table, chunk).await? as u64;
    }
    Ok(Materialized {
        view: view.name.clone(),
        start,
        end,
        source_rows,
        window_rows,
        entities,
        written,
        seconds: began.elapsed().as_secs_f64(),
    })
}
