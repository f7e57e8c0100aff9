//! Pushed rows: written to the online store (newer wins, as materialization) and/or appended
//! to the source's offline log, which training and materialization read with the source.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch};
use arrow::datatypes::{Field, Schema};
use twinloop_core::error::BoxError;
use twinloop_core::{Error, Result};

use super::{OnlineService, ViewInfo, column_rows};
use crate::keys::{EncodedKeys, normalize};
use crate::online::{OnlineRow, OnlineWrite};
use crate::repo::{DType, Source};
use crate::source::push_log_dir;
use crate::time::{micros_column, now_micros};
use crate::value::{SentColumn, Value, array_from_values};

/// The views a push writes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushTarget {
    /// One feature view.
    View(String),
    /// Every view that reads the source directly (views with `sql:` take no pushes).
    Source(String),
}

/// Where pushed rows go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushTo {
    Online,
    Offline,
    OnlineAndOffline,
}

#[derive(Debug, Clone)]
pub struct PushRequest<C> {
    pub target: PushTarget,
    pub to: PushTo,
    /// The rows as columns: the views' join keys, the source's timestamp fields and every
    /// feature of the target views.
    pub df: Vec<(String, C)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushOutcome {
    pub rows: usize,
    /// Rows that replaced an older (or no) online row.
    pub written: usize,
    /// The views written to, by name.
    pub views: Vec<String>,
}

impl OnlineService {
    fn push_targets(&self, target: &PushTarget) -> Result<(&Source, Vec<&ViewInfo>)> {
        let (source_name, targets): (&str, Vec<&ViewInfo>) = match target {
            PushTarget::View(view) => {
                let info = self
                    .views
                    .get(view)
                    .ok_or_else(|| Error::not_found(format!("unknown feature view {view:?}")))?;
                (info.view.source.as_str(), vec![info])
            }
            PushTarget::Source(source) => {
                if self.repo.source(source).is_none() {
                    return Err(Error::not_found(format!("unknown push source {source:?}")));
                }
                let mut targets: Vec<&ViewInfo> = self
                    .views
                    .values()
                    .filter(|v| &v.view.source == source && v.view.sql.is_none())
                    .collect();
                targets.sort_by(|a, b| a.view.name.cmp(&b.view.name));
                (source.as_str(), targets)
            }
        };
        if targets.is_empty() {
            return Err(Error::invalid(format!(
                "no feature view reads source {source_name:?} directly (views with sql: take no pushes)"
            )));
        }
        if let Some(info) = targets.iter().find(|t| t.view.sql.is_some()) {
            return Err(Error::invalid(format!(
                "feature view {:?} computes its features with sql: and takes no pushes",
                info.view.name
            )));
        }
        let source = self.repo.source(source_name).ok_or_else(|| {
            Error::internal(format!(
                "source {source_name:?} vanished from the repository"
            ))
        })?;
        Ok((source, targets))
    }

    pub async fn push<C: SentColumn>(&self, request: &PushRequest<C>) -> Result<PushOutcome> {
        let (source, targets) = self.push_targets(&request.target)?;
        if request.df.first().is_none_or(|(_, v)| v.is_empty()) {
            return Err(Error::invalid("`df` must hold at least one row"));
        }
        let rows = column_rows("df", &request.df)?;
        let batch = push_batch(&request.df, rows, source, &targets)?;
        let (online, offline) = match request.to {
            PushTo::Online => (true, false),
            PushTo::Offline => (false, true),
            PushTo::OnlineAndOffline => (true, true),
        };
        let mut written = 0;
        if online {
            for info in &targets {
                written += self.write_online(info, &batch, source).await?;
            }
        }
        if offline {
            let dir = push_log_dir(&self.repo, &source.name);
            // Creating, writing and fsyncing a file blocks; on the runtime's workers it would
            // stall every other request the server is answering meanwhile.
            tokio::task::spawn_blocking(move || write_log(&dir, &batch))
                .await
                .map_err(|e| Error::internal("push log").with_source(e))??;
        }
        Ok(PushOutcome {
            rows,
            written,
            views: targets.iter().map(|t| t.view.name.clone()).collect(),
        })
    }

    async fn write_online(
        &self,
        info: &ViewInfo,
        batch: &RecordBatch,
        source: &Source,
    ) -> Result<usize> {
        let key_columns = info
            .join_keys
            .iter()
            .zip(&info.key_types)
            .map(|(k, t)| normalize(k, pushed(batch, k)?, t))
            .collect::<Result<Vec<_>>>()?;
        let keys = EncodedKeys::encode(&key_columns);
        let event = micros_column(
            &source.timestamp_field,
            pushed(batch, &source.timestamp_field)?,
        )?;
        let created = match &source.created_timestamp_field {
            Some(c) => Some(micros_column(c, pushed(batch, c)?)?),
            None => None,
        };
        let mut latest: HashMap<Vec<u8>, (i64, i64, usize)> = HashMap::new();
        for i in 0..batch.num_rows() {
            let Some(key) = keys.get(i) else { continue };
            let Some(ts) = (!event.is_null(i)).then(|| event.value(i)) else {
                return Err(Error::invalid(format!(
                    "df row {i}: {:?} is null",
                    source.timestamp_field
                )));
            };
            let cr = created
                .as_ref()
                .map_or(0, |c| if c.is_null(i) { i64::MIN } else { c.value(i) });
            let entry = latest.entry(key.to_vec()).or_insert((ts, cr, i));
            if (ts, cr) >= (entry.0, entry.1) {
                *entry = (ts, cr, i);
            }
        }
        let features = info
            .view
            .features
            .iter()
            .map(|f| Ok((pushed(batch, &f.name)?, f.dtype)))
            .collect::<Result<Vec<_>>>()?;
        let writes = latest
            .into_iter()
            .map(|(key, (ts, cr, i))| OnlineWrite {
                key,
                row: OnlineRow {
                    event_ts: ts,
                    created_ts: cr,
                    values: features
                        .iter()
                        .map(|(column, dtype)| Value::from_array(column, i, *dtype))
                        .collect(),
                }
                .encode(),
            })
            .collect();
        self.store.write(&info.table, writes).await
    }
}

/// A column [`push_batch`] put into the batch.
fn pushed<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef> {
    batch
        .column_by_name(name)
        .ok_or_else(|| Error::internal(format!("push batch has no column {name:?}")))
}

/// The log's columns: keys, times, then every feature of the target views, typed as the views
/// declare them; a missing created-time column is all null.
fn push_batch<C: SentColumn>(
    df: &[(String, C)],
    rows: usize,
    source: &Source,
    targets: &[&ViewInfo],
) -> Result<RecordBatch> {
    let column = |name: &str| df.iter().find(|(k, _)| k == name).map(|(_, v)| v);
    let require = |name: &str| {
        column(name).ok_or_else(|| Error::invalid(format!("`df` has no column {name:?}")))
    };
    let mut fields: Vec<Field> = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    let mut add = |name: &str, dtype: DType, sent: Option<&C>| -> Result<()> {
        if fields.iter().any(|f| f.name() == name) {
            return Ok(());
        }
        let values = match sent {
            Some(sent) => sent.typed(name, dtype)?,
            None => vec![Value::Null; rows],
        };
        let array = array_from_values(name, dtype, &values)?;
        fields.push(Field::new(name, array.data_type().clone(), true));
        arrays.push(array);
        Ok(())
    };
    for info in targets {
        for (key, dtype) in info.join_keys.iter().zip(&info.key_dtypes) {
            add(key, *dtype, Some(require(key)?))?;
        }
    }
    add(
        &source.timestamp_field,
        DType::Timestamp,
        Some(require(&source.timestamp_field)?),
    )?;
    if let Some(created) = &source.created_timestamp_field {
        add(created, DType::Timestamp, column(created))?;
    }
    for info in targets {
        for f in &info.view.features {
            add(&f.name, f.dtype, Some(require(&f.name)?))?;
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
        .map_err(|e| Error::internal("push batch").with_source(e))
}

fn failed(e: impl Into<BoxError>) -> Error {
    Error::internal_from("push log", e)
}

/// Appends a batch to the offline log as its own Parquet file, written under a temporary
/// name and renamed, so readers never see half a file.
fn write_log(dir: &Path, batch: &RecordBatch) -> Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::internal(format!("push log {}", dir.display())).with_source(e))?;
    let name = format!("{}-{}.parquet", now_micros(), uuid::Uuid::new_v4().simple());
    let temp: PathBuf = dir.join(format!(".{name}.tmp"));
    let file = std::fs::File::create(&temp).map_err(failed)?;
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).map_err(failed)?;
    writer.write(batch).map_err(failed)?;
    let file = writer.into_inner().map_err(failed)?;
    file.sync_all().map_err(failed)?;
    std::fs::rename(&temp, dir.join(name)).map_err(failed)
}
