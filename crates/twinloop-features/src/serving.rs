//! Online feature retrieval and pushes, in Feast's JSON shapes (`POST /get-online-features`,
//! `POST /push`); the HTTP server only parses and forwards to [`OnlineService`].

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use serde::Deserialize;
use serde::de::{MapAccess, Visitor};
use serde_json::{Value as Json, json};
use twinloop_core::{Error, Result};

use crate::keys::{EncodedKeys, normalize};
use crate::online::{OnlineRow, OnlineStore, OnlineWrite, table_name};
use crate::repo::{DType, FeatureRepo, FeatureView};
use crate::source::{self, push_log_dir};
use crate::time::{format_micros, micros_column, now_micros};
use crate::value::{Value, array_from_json};

/// JSON object fields in the order they were sent (Feast answers join keys in request order).
#[derive(Debug, Default)]
pub struct OrderedColumns(pub Vec<(String, Vec<Json>)>);

impl<'de> Deserialize<'de> for OrderedColumns {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Columns;
        impl<'de> Visitor<'de> for Columns {
            type Value = OrderedColumns;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of column name → list of values")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<OrderedColumns, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Vec<Json>>()? {
                    out.push((k, v));
                }
                Ok(OrderedColumns(out))
            }
        }
        d.deserialize_map(Columns)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnlineRequest {
    #[serde(default)]
    pub features: Option<Vec<String>>,
    #[serde(default)]
    pub feature_service: Option<String>,
    pub entities: OrderedColumns,
    #[serde(default)]
    pub full_feature_names: bool,
    /// Accepted for Feast compatibility; versions are not reported per row.
    #[serde(default)]
    pub include_feature_view_version_metadata: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushRequest {
    #[serde(default)]
    pub push_source_name: Option<String>,
    /// twinloop's extension: push to one view instead of every view of a source.
    #[serde(default)]
    pub feature_view: Option<String>,
    pub df: OrderedColumns,
    #[serde(default)]
    pub to: Option<String>,
    #[serde(default)]
    pub allow_registry_cache: Option<bool>,
}

/// What the online service knows of a view.
struct ViewInfo {
    view: FeatureView,
    table: String,
    join_keys: Vec<String>,
    key_dtypes: Vec<DType>,
    key_types: Vec<DataType>,
}

pub struct OnlineService {
    repo: FeatureRepo,
    store: Arc<dyn OnlineStore>,
    views: HashMap<String, ViewInfo>,
}

fn key_dtype(t: &DataType) -> DType {
    match t {
        DataType::Int64 => DType::Int64,
        DataType::Binary => DType::Bytes,
        _ => DType::String,
    }
}

pub struct PushOutcome {
    pub rows: usize,
    pub written: usize,
    pub views: Vec<String>,
}

impl OnlineService {
    /// Reads each view's source schema once, for its key types.
    pub async fn new(repo: FeatureRepo, store: Arc<dyn OnlineStore>) -> Result<OnlineService> {
        let mut views = HashMap::new();
        for view in &repo.views {
            let layout = source::layout(&repo, view).await?;
            views.insert(
                view.name.clone(),
                ViewInfo {
                    view: view.clone(),
                    table: table_name(&repo.config.project, view),
                    key_dtypes: layout.key_types.iter().map(key_dtype).collect(),
                    key_types: layout.key_types,
                    join_keys: layout.join_keys,
                },
            );
        }
        Ok(OnlineService { repo, store, views })
    }

    pub fn repo(&self) -> &FeatureRepo {
        &self.repo
    }

    pub fn store(&self) -> &Arc<dyn OnlineStore> {
        &self.store
    }

    pub async fn get_online_features(&self, request: OnlineRequest) -> Result<Json> {
        let refs = match (&request.features, &request.feature_service) {
            (Some(features), None) => self.repo.resolve_refs(features)?,
            (None, Some(service)) => self.repo.service_refs(service)?,
            (Some(_), Some(_)) => {
                return Err(Error::invalid(
                    "send either `features` or `feature_service`, not both",
                ));
            }
            (None, None) => return Err(Error::invalid("send `features` or `feature_service`")),
        };
        let entities = &request.entities.0;
        let rows = entities.first().map_or(0, |(_, v)| v.len());
        if entities.is_empty() || rows == 0 {
            return Err(Error::invalid(
                "`entities` must hold at least one join key with at least one value",
            ));
        }
        if let Some((name, values)) = entities.iter().find(|(_, v)| v.len() != rows) {
            return Err(Error::invalid(format!(
                "entity column {name:?} has {} values, the first has {rows}",
                values.len()
            )));
        }
        let mut names: Vec<String> = entities.iter().map(|(k, _)| k.clone()).collect();
        for r in &refs {
            let name = r.column_name(request.full_feature_names);
            if names.contains(&name) {
                return Err(Error::invalid(format!(
                    "feature name {name:?} appears twice; send full_feature_names: true"
                )));
            }
            names.push(name);
        }

        // Read each view once for all rows.
        let mut fetched: HashMap<&str, Vec<Option<OnlineRow>>> = HashMap::new();
        let mut echoed: HashMap<&str, Vec<Json>> = HashMap::new();
        for r in &refs {
            if fetched.contains_key(r.view.as_str()) {
                continue;
            }
            let info = &self.views[&r.view];
            let mut key_columns = Vec::new();
            for ((key, dtype), want) in info
                .join_keys
                .iter()
                .zip(&info.key_dtypes)
                .zip(&info.key_types)
            {
                let values = entities
                    .iter()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| v)
                    .ok_or_else(|| {
                        Error::invalid(format!(
                            "feature view {:?} needs join key {key:?} in `entities`",
                            info.view.name
                        ))
                    })?;
                let column = array_from_json(key, *dtype, values)?;
                let column = normalize(key, &column, want)?;
                echoed.entry(key.as_str()).or_insert_with(|| {
                    (0..rows)
                        .map(|i| Value::from_array(&column, i, *dtype).to_json())
                        .collect()
                });
                key_columns.push(column);
            }
            let keys = EncodedKeys::encode(&key_columns);
            let lookup: Vec<Vec<u8>> = (0..rows)
                .map(|i| keys.get(i).unwrap_or_default().to_vec())
                .collect();
            let mut found = self.store.read(&info.table, &lookup).await?;
            for (i, slot) in found.iter_mut().enumerate() {
                if keys.get(i).is_none() {
                    *slot = None;
                }
            }
            fetched.insert(r.view.as_str(), found);
        }

        let epoch = format_micros(0);
        let mut results = Vec::with_capacity(names.len());
        for (key, values) in entities {
            let values = echoed
                .remove(key.as_str())
                .unwrap_or_else(|| values.clone());
            results.push(json!({
                "values": values,
                "statuses": vec!["PRESENT"; rows],
                "event_timestamps": vec![epoch.as_str(); rows],
            }));
        }
        let now = now_micros();
        for r in &refs {
            let info = &self.views[&r.view];
            let position = info
                .view
                .features
                .iter()
                .position(|f| f.name == r.feature)
                .expect("resolved");
            let (mut values, mut statuses, mut times) = (
                Vec::with_capacity(rows),
                Vec::with_capacity(rows),
                Vec::with_capacity(rows),
            );
            for row in &fetched[r.view.as_str()] {
                let (value, status, time) = match row {
                    None => (Json::Null, "NOT_FOUND", epoch.clone()),
                    Some(row) => {
                        let stale = info.view.ttl_micros.is_some_and(|ttl| {
                            i128::from(now) - i128::from(row.event_ts) > i128::from(ttl)
                        });
                        let value = row.values.get(position).unwrap_or(&Value::Null);
                        if stale {
                            (Json::Null, "OUTSIDE_MAX_AGE", format_micros(row.event_ts))
                        } else if value.is_null() {
                            (Json::Null, "NULL_VALUE", format_micros(row.event_ts))
                        } else {
                            (value.to_json(), "PRESENT", format_micros(row.event_ts))
                        }
                    }
                };
                values.push(value);
                statuses.push(status);
                times.push(time);
            }
            results
                .push(json!({"values": values, "statuses": statuses, "event_timestamps": times}));
        }
        Ok(json!({"metadata": {"feature_names": names}, "results": results}))
    }

    /// Writes pushed rows to the online store (newer wins, as materialization) and/or to the
    /// source's offline log, which training and materialization read with the source.
    pub async fn push(&self, request: PushRequest) -> Result<PushOutcome> {
        let (online, offline) = match request.to.as_deref().unwrap_or("online") {
            "online" => (true, false),
            "offline" => (false, true),
            "online_and_offline" => (true, true),
            other => {
                return Err(Error::invalid(format!(
                    "`to` must be online, offline or online_and_offline, not {other:?}"
                )));
            }
        };
        let (source_name, targets): (String, Vec<&ViewInfo>) =
            match (&request.feature_view, &request.push_source_name) {
                (Some(view), _) => {
                    let info = self.views.get(view).ok_or_else(|| {
                        Error::not_found(format!("unknown feature view {view:?}"))
                    })?;
                    (info.view.source.clone(), vec![info])
                }
                (None, Some(source)) => {
                    if self.repo.source(source).is_none() {
                        return Err(Error::not_found(format!("unknown push source {source:?}")));
                    }
                    let mut targets: Vec<&ViewInfo> = self
                        .views
                        .values()
                        .filter(|v| &v.view.source == source && v.view.sql.is_none())
                        .collect();
                    targets.sort_by(|a, b| a.view.name.cmp(&b.view.name));
                    (source.clone(), targets)
                }
                (None, None) => {
                    return Err(Error::invalid(
                        "send `push_source_name` (a source) or `feature_view`",
                    ));
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
        let source = self.repo.source(&source_name).expect("checked");
        let columns = &request.df.0;
        let rows = columns.first().map_or(0, |(_, v)| v.len());
        if rows == 0 {
            return Err(Error::invalid("`df` must hold at least one row"));
        }
        if let Some((name, values)) = columns.iter().find(|(_, v)| v.len() != rows) {
            return Err(Error::invalid(format!(
                "df column {name:?} has {} values, the first has {rows}",
                values.len()
            )));
        }
        let column = |name: &str| columns.iter().find(|(k, _)| k == name).map(|(_, v)| v);
        let require = |name: &str| {
            column(name).ok_or_else(|| Error::invalid(format!("`df` has no column {name:?}")))
        };

        // The log's columns: keys, times, then every feature of the target views.
        let mut fields: Vec<Field> = Vec::new();
        let mut arrays: Vec<ArrayRef> = Vec::new();
        let mut add = |name: &str, dtype: DType, values: Option<&Vec<Json>>| -> Result<()> {
            if fields.iter().any(|f| f.name() == name) {
                return Ok(());
            }
            let nulls = vec![Json::Null; rows];
            let array = array_from_json(name, dtype, values.unwrap_or(&nulls))?;
            fields.push(Field::new(name, array.data_type().clone(), true));
            arrays.push(array);
            Ok(())
        };
        for info in &targets {
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
        for info in &targets {
            for f in &info.view.features {
                add(&f.name, f.dtype, Some(require(&f.name)?))?;
            }
        }
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
            .map_err(|e| Error::internal(format!("push batch: {e}")))?;

        let mut written = 0;
        if online {
            for info in &targets {
                written += self.write_online(info, &batch, source).await?;
            }
        }
        if offline {
            write_log(&push_log_dir(&self.repo, &source_name), &batch)?;
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
        source: &crate::repo::Source,
    ) -> Result<usize> {
        let key_columns = info
            .join_keys
            .iter()
            .zip(&info.key_types)
            .map(|(k, t)| normalize(k, batch.column_by_name(k).expect("added"), t))
            .collect::<Result<Vec<_>>>()?;
        let keys = EncodedKeys::encode(&key_columns);
        let event = micros_column(
            &source.timestamp_field,
            batch
                .column_by_name(&source.timestamp_field)
                .expect("added"),
        )?;
        let created = match &source.created_timestamp_field {
            Some(c) => Some(micros_column(c, batch.column_by_name(c).expect("added"))?),
            None => None,
        };
        let mut latest: HashMap<Vec<u8>, (i64, i64, usize)> = HashMap::new();
        for i in 0..batch.num_rows() {
            let Some(key) = keys.get(i) else { continue };
            let Some(ts) = (!arrow::array::Array::is_null(&event, i)).then(|| event.value(i))
            else {
                return Err(Error::invalid(format!(
                    "df row {i}: {:?} is null",
                    source.timestamp_field
                )));
            };
            let cr = created.as_ref().map_or(0, |c| {
                if arrow::array::Array::is_null(c, i) {
                    i64::MIN
                } else {
                    c.value(i)
                }
            });
            let entry = latest.entry(key.to_vec()).or_insert((ts, cr, i));
            if (ts, cr) >= (entry.0, entry.1) {
                *entry = (ts, cr, i);
            }
        }
        let writes = latest
            .into_iter()
            .map(|(key, (ts, cr, i))| OnlineWrite {
                key,
                row: OnlineRow {
                    event_ts: ts,
                    created_ts: cr,
                    values: info
                        .view
                        .features
                        .iter()
                        .map(|f| {
                            Value::from_array(
                                batch.column_by_name(&f.name).expect("added"),
                                i,
                                f.dtype,
                            )
                        })
                        .collect(),
                }
                .encode(),
            })
            .collect();
        self.store.write(&info.table, writes).await
    }
}

/// Appends a batch to the offline log as its own Parquet file, written under a temporary
/// name and renamed, so readers never see half a file.
fn write_log(dir: &std::path::Path, batch: &RecordBatch) -> Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::internal(format!("push log {}: {e}", dir.display())))?;
    let name = format!("{}-{}.parquet", now_micros(), uuid::Uuid::new_v4().simple());
    let temp = dir.join(format!(".{name}.tmp"));
    let file =
        std::fs::File::create(&temp).map_err(|e| Error::internal(format!("push log: {e}")))?;
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None)
        .map_err(|e| Error::internal(format!("push log: {e}")))?;
    writer
        .write(batch)
        .map_err(|e| Error::internal(format!("push log: {e}")))?;
    let file = writer
        .into_inner()
        .map_err(|e| Error::internal(format!("push log: {e}")))?;
    file.sync_all()
        .map_err(|e| Error::internal(format!("push log: {e}")))?;
    std::fs::rename(&temp, dir.join(name)).map_err(|e| Error::internal(format!("push log: {e}")))
}
