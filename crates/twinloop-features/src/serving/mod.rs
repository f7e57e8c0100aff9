//! Online feature retrieval and pushes over typed values: [`OnlineService`] reads the latest
//! rows of entities (TTL checked at read time) and writes pushed rows. Protocol fronts (Feast's
//! JSON in the server, feature enrichment of V2 requests) decode their wire format into a
//! [`SentColumn`] per column and encode the typed answer themselves.

mod push;

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::DataType;
use twinloop_core::{Error, Result};

use crate::keys::{EncodedKeys, normalize};
use crate::online::{OnlineRow, OnlineStore, table_name};
use crate::repo::{DType, FeatureRef, FeatureRepo, FeatureView};
use crate::source;
use crate::time::now_micros;
use crate::value::{SentColumn, Value, array_from_values};

pub use push::{PushOutcome, PushRequest, PushTarget, PushTo};

/// Which features a read asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeatureSelection {
    /// `view:feature` references, or whole views.
    Refs(Vec<String>),
    /// A feature service of the repository.
    Service(String),
}

/// A read of online features for a list of entity rows.
#[derive(Debug, Clone)]
pub struct OnlineQuery<C> {
    pub features: FeatureSelection,
    /// Entity columns in the order sent; the requested views' join keys must be among them.
    pub entities: Vec<(String, C)>,
    /// Name feature columns `view__feature` instead of `feature`.
    pub full_feature_names: bool,
}

/// What a read found for one entity row and feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeatureStatus {
    Present,
    /// The entity has no stored row for the view.
    NotFound,
    /// The stored row holds null for the feature.
    NullValue,
    /// The stored row is older than the view's TTL.
    OutsideMaxAge,
}

/// One requested feature over every entity row.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureColumn {
    pub name: String,
    /// Null wherever the status is not [`FeatureStatus::Present`].
    pub values: Vec<Value>,
    pub statuses: Vec<FeatureStatus>,
    /// Event time (µs) of the stored row each value came from; 0 where none was found.
    pub event_ts: Vec<i64>,
}

/// The answer to an [`OnlineQuery`].
#[derive(Debug, Clone, PartialEq)]
pub struct OnlineFeatures {
    pub rows: usize,
    /// The entity columns that are join keys of a requested view, as the view reads them
    /// (`"1001"` sent for an integer key is 1001 here), in the order first used.
    pub keys: Vec<(String, Vec<Value>)>,
    /// In request order.
    pub features: Vec<FeatureColumn>,
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

/// The number of rows of equally long columns; errors name the first column that differs.
fn column_rows<C: SentColumn>(what: &str, columns: &[(String, C)]) -> Result<usize> {
    let rows = columns.first().map_or(0, |(_, v)| v.len());
    if let Some((name, values)) = columns.iter().find(|(_, v)| v.len() != rows) {
        return Err(Error::invalid(format!(
            "{what} column {name:?} has {} values, the first has {rows}",
            values.len()
        )));
    }
    Ok(rows)
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

    fn resolve(&self, selection: &FeatureSelection) -> Result<Vec<FeatureRef>> {
        match selection {
            FeatureSelection::Refs(features) => self.repo.resolve_refs(features),
            FeatureSelection::Service(service) => self.repo.service_refs(service),
        }
    }

    pub async fn get_online_features<C: SentColumn>(
        &self,
        query: &OnlineQuery<C>,
    ) -> Result<OnlineFeatures> {
        let refs = self.resolve(&query.features)?;
        let entities = &query.entities;
        let rows = entities.first().map_or(0, |(_, v)| v.len());
        if entities.is_empty() || rows == 0 {
            return Err(Error::invalid(
                "`entities` must hold at least one join key with at least one value",
            ));
        }
        column_rows("entity", entities)?;
        let mut names: Vec<String> = entities.iter().map(|(k, _)| k.clone()).collect();
        for r in &refs {
            let name = r.column_name(query.full_feature_names);
            if names.contains(&name) {
                return Err(Error::invalid(format!(
                    "feature name {name:?} appears twice; send full_feature_names: true"
                )));
            }
            names.push(name);
        }

        // Read each view once for all rows.
        let mut fetched: HashMap<&str, Vec<Option<OnlineRow>>> = HashMap::new();
        let mut keys: Vec<(String, Vec<Value>)> = Vec::new();
        for r in &refs {
            if fetched.contains_key(r.view.as_str()) {
                continue;
            }
            let info = &self.views[&r.view];
            let found = self.read_view(info, entities, rows, &mut keys).await?;
            fetched.insert(r.view.as_str(), found);
        }

        let now = now_micros();
        let features = refs
            .iter()
            .map(|r| {
                let info = &self.views[&r.view];
                feature_column(
                    r.column_name(query.full_feature_names),
                    &info.view,
                    &r.feature,
                    &fetched[r.view.as_str()],
                    now,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(OnlineFeatures {
            rows,
            keys,
            features,
        })
    }

    /// The stored rows of one view for every entity row; records the typed key columns it
    /// read in `keys` (the first view to use a key decides its type).
    async fn read_view<C: SentColumn>(
        &self,
        info: &ViewInfo,
        entities: &[(String, C)],
        rows: usize,
        keys: &mut Vec<(String, Vec<Value>)>,
    ) -> Result<Vec<Option<OnlineRow>>> {
        let mut key_columns = Vec::new();
        for ((key, dtype), want) in info
            .join_keys
            .iter()
            .zip(&info.key_dtypes)
            .zip(&info.key_types)
        {
            let sent = entities
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v)
                .ok_or_else(|| {
                    Error::invalid(format!(
                        "feature view {:?} needs join key {key:?} in `entities`",
                        info.view.name
                    ))
                })?;
            let column = array_from_values(key, *dtype, &sent.typed(key, *dtype)?)?;
            let column = normalize(key, &column, want)?;
            if !keys.iter().any(|(k, _)| k == key) {
                let values = (0..rows)
                    .map(|i| Value::from_array(&column, i, *dtype))
                    .collect();
                keys.push((key.clone(), values));
            }
            key_columns.push(column);
        }
        let encoded = EncodedKeys::encode(&key_columns);
        let lookup: Vec<Vec<u8>> = (0..rows)
            .map(|i| encoded.get(i).unwrap_or_default().to_vec())
            .collect();
        let mut found = self.store.read(&info.table, &lookup).await?;
        for (i, slot) in found.iter_mut().enumerate() {
            if encoded.get(i).is_none() {
                *slot = None;
            }
        }
        Ok(found)
    }
}

/// One feature's values and statuses from the rows read for its view, as of `now` (µs).
fn feature_column(
    name: String,
    view: &FeatureView,
    feature: &str,
    rows: &[Option<OnlineRow>],
    now: i64,
) -> Result<FeatureColumn> {
    let position = view
        .features
        .iter()
        .position(|f| f.name == feature)
        .ok_or_else(|| {
            Error::internal(format!(
                "feature view {:?} has no feature {feature:?}",
                view.name
            ))
        })?;
    let mut column = FeatureColumn {
        name,
        values: Vec::with_capacity(rows.len()),
        statuses: Vec::with_capacity(rows.len()),
        event_ts: Vec::with_capacity(rows.len()),
    };
    for row in rows {
        let (value, status, time) = match row {
            None => (Value::Null, FeatureStatus::NotFound, 0),
            Some(row) => {
                let stale = view.ttl_micros.is_some_and(|ttl| {
                    i128::from(now) - i128::from(row.event_ts) > i128::from(ttl)
                });
                let value = row.values.get(position).unwrap_or(&Value::Null);
                if stale {
                    (Value::Null, FeatureStatus::OutsideMaxAge, row.event_ts)
                } else if value.is_null() {
                    (Value::Null, FeatureStatus::NullValue, row.event_ts)
                } else {
                    (value.clone(), FeatureStatus::Present, row.event_ts)
                }
            }
        };
        column.values.push(value);
        column.statuses.push(status);
        column.event_ts.push(time);
    }
    Ok(column)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(ttl: Option<i64>) -> FeatureView {
        let yaml = "name: v\nentities: [e]\nsource: s\nfeatures:\n  - {name: x, dtype: int64}\n";
        let mut view: FeatureView = serde_norway::from_str(yaml).unwrap();
        view.ttl_micros = ttl;
        view
    }

    #[test]
    fn statuses_follow_the_stored_row_and_the_ttl() {
        let row = |ts: i64, value: Value| {
            Some(OnlineRow {
                event_ts: ts,
                created_ts: 0,
                values: vec![value],
            })
        };
        let rows = [
            None,
            row(90, Value::Int64(7)),
            row(10, Value::Int64(8)),
            row(95, Value::Null),
        ];
        let column = feature_column("x".into(), &view(Some(50)), "x", &rows, 100).unwrap();
        assert_eq!(
            column.statuses,
            [
                FeatureStatus::NotFound,
                FeatureStatus::Present,
                FeatureStatus::OutsideMaxAge,
                FeatureStatus::NullValue
            ]
        );
        assert_eq!(
            column.values,
            [Value::Null, Value::Int64(7), Value::Null, Value::Null]
        );
        assert_eq!(column.event_ts, [0, 90, 10, 95]);
        let forever = feature_column("x".into(), &view(None), "x", &rows, 100).unwrap();
        assert_eq!(forever.statuses[2], FeatureStatus::Present);
    }
}
