//! What `twinloop features describe` shows of a view: its source's freshness and per-feature
//! statistics, computed by DataFusion over the source.

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::common::Column;
use datafusion::functions_aggregate::expr_fn::{avg, count, max, min};
use datafusion::logical_expr::{Expr, cast};
use twinloop_core::Result;

use crate::repo::{FeatureRepo, FeatureView};
use crate::source::{df_error, view_frame};
use crate::time::micros_column;

#[derive(Debug, Clone, PartialEq)]
pub struct FeatureStatistics {
    pub name: String,
    pub non_null: i64,
    pub min: Option<String>,
    pub max: Option<String>,
    /// For numeric features.
    pub mean: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ViewStatistics {
    pub rows: i64,
    pub oldest_event: Option<i64>,
    pub newest_event: Option<i64>,
    pub features: Vec<FeatureStatistics>,
}

fn column(name: &str) -> Expr {
    Expr::Column(Column::new_unqualified(name))
}

pub async fn view_statistics(repo: &FeatureRepo, view: &FeatureView) -> Result<ViewStatistics> {
    let (_, frame) = view_frame(repo, view).await?;
    let source = repo.source(&view.source).expect("checked when loaded");
    let ts = &source.timestamp_field;
    let mut aggregates = vec![
        count(datafusion::logical_expr::lit(1)),
        min(column(ts)),
        max(column(ts)),
    ];
    for f in &view.features {
        let numeric = f.dtype.arrow().is_numeric();
        aggregates.push(count(column(&f.name)));
        let printable = |e: Expr| if numeric { e } else { cast(e, DataType::Utf8) };
        aggregates.push(cast(min(printable(column(&f.name))), DataType::Utf8));
        aggregates.push(cast(max(printable(column(&f.name))), DataType::Utf8));
        if numeric {
            aggregates.push(cast(
                avg(cast(column(&f.name), DataType::Float64)),
                DataType::Float64,
            ));
        }
    }
    let batches = frame
        .aggregate(vec![], aggregates)
        .map_err(df_error)?
        .collect()
        .await
        .map_err(df_error)?;
    let batch = &batches[0];
    let int = |i: usize| cast_int(batch.column(i));
    let text = |i: usize| {
        let c = arrow::compute::cast(batch.column(i), &DataType::Utf8).ok()?;
        let c = c.as_string::<i32>();
        (!c.is_null(0)).then(|| c.value(0).to_string())
    };
    let times = |i: usize| {
        micros_column(ts, batch.column(i))
            .ok()
            .and_then(|c| (!c.is_null(0)).then(|| c.value(0)))
    };
    let mut stats = ViewStatistics {
        rows: int(0),
        oldest_event: times(1),
        newest_event: times(2),
        features: Vec::new(),
    };
    let mut i = 3;
    for f in &view.features {
        let numeric = f.dtype.arrow().is_numeric();
        let mean = if numeric {
            let c = batch.column(i + 3).as_primitive::<Float64Type>();
            (!c.is_null(0)).then(|| c.value(0))
        } else {
            None
        };
        stats.features.push(FeatureStatistics {
            name: f.name.clone(),
            non_null: int(i),
            min: text(i + 1),
            max: text(i + 2),
            mean,
        });
        i += if numeric { 4 } else { 3 };
    }
    Ok(stats)
}

fn cast_int(column: &arrow::array::ArrayRef) -> i64 {
    arrow::compute::cast(column, &DataType::Int64)
        .ok()
        .map(|c| c.as_primitive::<Int64Type>().value(0))
        .unwrap_or(0)
}
