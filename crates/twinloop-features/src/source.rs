//! Reading a feature view's rows from its source through DataFusion: Parquet or CSV files
//! (a file, a directory or a glob, local or `s3://`), the pushed-rows log, and the view's
//! optional `sql:` transformation. Every batch comes out normalized into a [`ViewBatch`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Schema};
use datafusion::common::Column;
use datafusion::common::ScalarValue;
use datafusion::dataframe::DataFrame;
use datafusion::execution::context::SessionContext;
use datafusion::logical_expr::{Expr, cast, lit};
use datafusion::prelude::{CsvReadOptions, ParquetReadOptions};
use futures::{Stream, StreamExt};
use twinloop_core::{Error, Result};

use crate::keys::{EncodedKeys, key_type, normalize};
use crate::repo::{FeatureRepo, FeatureView, Origin};
use crate::time::micros_column;

/// How a view's rows look once read: which columns, and the key types used to encode them.
#[derive(Debug, Clone)]
pub struct ViewLayout {
    pub view: FeatureView,
    pub join_keys: Vec<String>,
    pub key_types: Vec<DataType>,
    pub timestamp_field: String,
    pub created_field: Option<String>,
}

/// A batch of a view's rows: encoded keys, event and created times in µs, and the features
/// cast to their declared types (in the view's feature order).
pub struct ViewBatch {
    pub keys: EncodedKeys,
    /// The key columns as read (normalized), kept for writers that need the values.
    pub key_columns: Vec<ArrayRef>,
    pub event_ts: Int64Array,
    pub created_ts: Option<Int64Array>,
    pub features: Vec<ArrayRef>,
}

impl ViewBatch {
    pub fn len(&self) -> usize {
        self.event_ts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The directory of rows pushed to a source, read by training and materialization alongside
/// the source itself.
pub fn push_log_dir(repo: &FeatureRepo, source: &str) -> PathBuf {
    repo.state_dir().join("push_log").join(source)
}

pub fn new_context() -> SessionContext {
    SessionContext::new()
}

/// The source's rows as a DataFrame (source files plus pushed rows).
async fn source_frame(
    ctx: &SessionContext,
    repo: &FeatureRepo,
    source_name: &str,
) -> Result<DataFrame> {
    let source = repo
        .source(source_name)
        .ok_or_else(|| Error::invalid(format!("unknown source {source_name:?}")))?;
    let location = resolve_location(&repo.root, &source.path);
    register_store_for(ctx, &location)?;
    let frame = read_files(ctx, &location).await.map_err(|e| {
        Error::invalid(format!(
            "{}: sources[{}].path: {}",
            source.origin, source.name, e.message
        ))
    })?;
    let log = push_log_dir(repo, source_name);
    let has_log = std::fs::read_dir(&log)
        .map(|mut d| {
            d.any(|e| e.is_ok_and(|e| e.path().extension().is_some_and(|x| x == "parquet")))
        })
        .unwrap_or(false);
    if !has_log {
        return Ok(frame);
    }
    let pushed = read_files(ctx, &format!("{}/", log.display())).await?;
    // The log holds the columns of the pushes; the source's other columns read as nulls.
    let pushed_names: Vec<String> = pushed
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let aligned: Vec<Expr> = frame
        .schema()
        .fields()
        .iter()
        .map(|f| {
            let value = if pushed_names.contains(f.name()) {
                Expr::Column(Column::new_unqualified(f.name().clone()))
            } else {
                lit(ScalarValue::Null)
            };
            cast(value, f.data_type().clone()).alias(f.name())
        })
        .collect();
    let pushed = pushed.select(aligned).map_err(df_error)?;
    frame.union(pushed).map_err(df_error)
}

fn columns(names: &[String]) -> Vec<Expr> {
    names
        .iter()
        .map(|n| Expr::Column(Column::new_unqualified(n.clone())))
        .collect()
}

pub(crate) fn df_error(e: datafusion::error::DataFusionError) -> Error {
    Error::invalid(e.to_string())
}

fn resolve_location(root: &Path, path: &str) -> String {
    if path.contains("://") || Path::new(path).is_absolute() {
        path.to_string()
    } else {
        root.join(path).display().to_string()
    }
}

fn register_store_for(ctx: &SessionContext, location: &str) -> Result<()> {
    let Some(rest) = location.strip_prefix("s3://") else {
        return Ok(());
    };
    let bucket = rest.split('/').next().unwrap_or_default();
    let store = twinloop_artifacts::s3_bucket(bucket)
        .map_err(|e| Error::invalid(format!("S3 bucket {bucket:?}")).with_source(e))?;
    let url = url::Url::parse(&format!("s3://{bucket}"))
        .map_err(|e| Error::invalid(format!("S3 bucket {bucket:?}")).with_source(e))?;
    ctx.register_object_store(&url, Arc::new(store));
    Ok(())
}

async fn read_files(ctx: &SessionContext, location: &str) -> Result<DataFrame> {
    let is_csv = location.ends_with(".csv") || location.ends_with(".csv*");
    if !location.contains("://") && !has_glob(location) && !Path::new(location).exists() {
        return Err(Error::invalid(format!("{location} does not exist")));
    }
    if is_csv {
        let ext = if location.ends_with(".csv") {
            ".csv"
        } else {
            ""
        };
        ctx.read_csv(location, CsvReadOptions::new().file_extension(ext))
            .await
            .map_err(df_error)
    } else {
        let ext = Path::new(location)
            .extension()
            .filter(|_| !has_glob(location) && Path::new(location).is_file())
            .map(|e| format!(".{}", e.to_string_lossy()))
            .unwrap_or_else(|| ".parquet".into());
        ctx.read_parquet(location, ParquetReadOptions::default().file_extension(&ext))
            .await
            .map_err(df_error)
    }
}

fn has_glob(location: &str) -> bool {
    location.contains(['*', '?', '['])
}

/// The view's rows before projection: the source, or the view's `sql:` over it.
pub(crate) async fn view_frame(
    repo: &FeatureRepo,
    view: &FeatureView,
) -> Result<(SessionContext, DataFrame)> {
    let ctx = new_context();
    let frame = source_frame(&ctx, repo, &view.source).await?;
    let Some(sql) = &view.sql else {
        return Ok((ctx, frame));
    };
    ctx.register_table("source", frame.into_view())
        .map_err(df_error)?;
    let frame = ctx.sql(sql).await.map_err(|e| {
        Error::invalid(format!("{}: feature_views[{}].sql", view.origin, view.name)).with_source(e)
    })?;
    Ok((ctx, frame))
}

/// Checks the view against its source's columns and returns how to read it. Errors name the
/// definition's file and line and the field: a missing column, a type that does not fit.
pub async fn layout(repo: &FeatureRepo, view: &FeatureView) -> Result<ViewLayout> {
    let (_, frame) = view_frame(repo, view).await?;
    let schema: Schema = frame.schema().as_arrow().clone();
    check_layout(repo, view, &schema)
}

fn check_layout(repo: &FeatureRepo, view: &FeatureView, schema: &Schema) -> Result<ViewLayout> {
    let source = repo
        .source(&view.source)
        .expect("checked when the repository was loaded");
    let what = if view.sql.is_some() {
        format!("the result of feature view {:?}'s sql", view.name)
    } else {
        format!("source {:?}", source.name)
    };
    let available = || {
        schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let missing = |origin: &Origin, field: &str, column: &str| {
        Error::invalid(format!(
            "{origin}: {field}: {what} has no column {column:?} (it has: {})",
            available()
        ))
    };
    let join_keys = repo.join_keys(view);
    let mut key_types = Vec::new();
    for key in &join_keys {
        let field = schema.field_with_name(key).map_err(|_| {
            missing(
                &view.origin,
                &format!("feature_views[{}].entities", view.name),
                key,
            )
        })?;
        key_types.push(key_type(field.data_type()).map_err(|e| {
            Error::invalid(format!(
                "{}: join key {key:?} of {what}: {}",
                view.origin, e.message
            ))
        })?);
    }
    for (field_name, column) in [
        ("timestamp_field", Some(&source.timestamp_field)),
        (
            "created_timestamp_field",
            source.created_timestamp_field.as_ref(),
        ),
    ] {
        let Some(column) = column else { continue };
        let field = schema.field_with_name(column).map_err(|_| {
            missing(
                &source.origin,
                &format!("sources[{}].{field_name}", source.name),
                column,
            )
        })?;
        if !matches!(
            field.data_type(),
            DataType::Timestamp(_, _)
                | DataType::Date32
                | DataType::Date64
                | DataType::Utf8
                | DataType::LargeUtf8
                | DataType::Utf8View
        ) {
            return Err(Error::invalid(format!(
                "{}: sources[{}].{field_name}: column {column:?} holds {}, not timestamps",
                source.origin,
                source.name,
                field.data_type()
            )));
        }
    }
    for feature in &view.features {
        let field = schema.field_with_name(&feature.name).map_err(|_| {
            missing(
                &feature.origin,
                &format!("feature_views[{}].features", view.name),
                &feature.name,
            )
        })?;
        if !feature.dtype.accepts(field.data_type()) {
            return Err(Error::invalid(format!(
                "{}: feature_views[{}].features[{}].dtype: declared {} but {what} holds {}",
                feature.origin,
                view.name,
                feature.name,
                feature.dtype,
                field.data_type()
            )));
        }
    }
    Ok(ViewLayout {
        view: view.clone(),
        join_keys,
        key_types,
        timestamp_field: source.timestamp_field.clone(),
        created_field: source.created_timestamp_field.clone(),
    })
}

/// Streams the view's rows as [`ViewBatch`]es (in no particular order).
pub async fn scan(
    repo: &FeatureRepo,
    view: &FeatureView,
) -> Result<(
    ViewLayout,
    impl Stream<Item = Result<ViewBatch>> + Send + use<>,
)> {
    let (ctx, layout, frame) = projected(repo, view).await?;
    let stream = frame.execute_stream().await.map_err(df_error)?;
    Ok((layout.clone(), view_batches(ctx, layout, stream)))
}

/// Like [`scan`], as one stream per DataFusion partition, so that callers can convert and
/// route batches on several cores.
pub async fn scan_partitioned(
    repo: &FeatureRepo,
    view: &FeatureView,
) -> Result<(ViewLayout, Vec<ViewBatchStream>)> {
    let (ctx, layout, frame) = projected(repo, view).await?;
    let streams = frame.execute_stream_partitioned().await.map_err(df_error)?;
    let streams = streams
        .into_iter()
        .map(|s| view_batches(ctx.clone(), layout.clone(), s).boxed())
        .collect();
    Ok((layout, streams))
}

pub type ViewBatchStream = futures::stream::BoxStream<'static, Result<ViewBatch>>;

async fn projected(
    repo: &FeatureRepo,
    view: &FeatureView,
) -> Result<(SessionContext, ViewLayout, DataFrame)> {
    let (ctx, frame) = view_frame(repo, view).await?;
    let layout = check_layout(repo, view, frame.schema().as_arrow())?;
    let mut wanted = layout.join_keys.clone();
    wanted.push(layout.timestamp_field.clone());
    wanted.extend(layout.created_field.clone());
    wanted.extend(view.features.iter().map(|f| f.name.clone()));
    let frame = frame.select(columns(&wanted)).map_err(df_error)?;
    Ok((ctx, layout, frame))
}

fn view_batches(
    ctx: SessionContext,
    layout: ViewLayout,
    stream: datafusion::execution::SendableRecordBatchStream,
) -> impl Stream<Item = Result<ViewBatch>> + Send + use<> {
    stream.map(move |batch| {
        let _keep_context_alive = &ctx;
        let batch = batch.map_err(df_error)?;
        view_batch(&layout, &batch)
    })
}

fn view_batch(layout: &ViewLayout, batch: &RecordBatch) -> Result<ViewBatch> {
    let keys = layout.join_keys.len();
    let key_columns = layout
        .join_keys
        .iter()
        .zip(&layout.key_types)
        .enumerate()
        .map(|(i, (name, want))| normalize(name, batch.column(i), want))
        .collect::<Result<Vec<_>>>()?;
    let event_ts = micros_column(&layout.timestamp_field, batch.column(keys))?;
    let (created_ts, first_feature) = match &layout.created_field {
        Some(name) => (Some(micros_column(name, batch.column(keys + 1))?), keys + 2),
        None => (None, keys + 1),
    };
    let features = layout
        .view
        .features
        .iter()
        .enumerate()
        .map(|(i, f)| crate::keys::cast_to(batch.column(first_feature + i), &f.dtype.arrow()))
        .collect::<Result<Vec<_>>>()?;
    Ok(ViewBatch {
        keys: EncodedKeys::encode(&key_columns),
        key_columns,
        event_ts,
        created_ts,
        features,
    })
}
