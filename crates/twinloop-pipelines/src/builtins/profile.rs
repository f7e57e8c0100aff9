//! `data.profile@1`: a dataset's profile (per column its type, counts, missing values, distinct
//! values, numeric statistics and top values; per dataset the totals), computed by the
//! monitoring crate's profiler over the same reader `data.validate@1` uses. The profile is a
//! JSON file, the summary a Markdown table, and the dataset-level numbers `metrics`.

use std::path::PathBuf;

use serde::Deserialize;
use serde_json::{Value, json};
use twinloop_monitor::{ProfileOptions, TableProfile, profile_table};

use super::validate_data::{select, table};
use super::{Ctx, Values};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    data: PathBuf,
    /// Only these columns, in this order.
    #[serde(default)]
    columns: Option<Vec<String>>,
    /// Most frequent values listed per non-numerical column.
    #[serde(default)]
    top: Option<usize>,
    /// Quantiles of numerical columns, each within [0, 1].
    #[serde(default)]
    quantiles: Option<Vec<f64>>,
}

impl Args {
    fn options(&self) -> ProfileOptions {
        let defaults = ProfileOptions::default();
        ProfileOptions {
            top: self.top.unwrap_or(defaults.top),
            quantiles: self.quantiles.clone().unwrap_or(defaults.quantiles),
        }
    }

    fn problems(&self) -> Vec<String> {
        self.quantiles
            .iter()
            .flatten()
            .filter(|q| !(0.0..=1.0).contains(*q))
            .map(|q| format!("with.quantiles: {q} is not within [0, 1] (the median is 0.5)"))
            .collect()
    }
}

/// What is wrong with `with:` as written; arguments with expressions are checked when it runs.
pub(crate) fn check(with: &Value) -> Vec<String> {
    if with.to_string().contains("${{") {
        return Vec::new();
    }
    match serde_json::from_value::<Args>(with.clone()) {
        Ok(args) => args.problems(),
        Err(e) => vec![format!("data.profile@1 with: {e}")],
    }
}

pub(crate) async fn run(ctx: &Ctx<'_>) -> Result<Values, String> {
    let args: Args = ctx.args()?;
    if let Some(problem) = args.problems().into_iter().next() {
        return Err(problem);
    }
    let options = args.options();
    // Reading the file and profiling its columns are blocking work.
    let profile = tokio::task::spawn_blocking(move || {
        let read = table::read(&args.data).map_err(|e| format!("with.data: {e}"))?;
        let read =
            select(&read, args.columns.as_deref()).map_err(|e| format!("with.columns: {e}"))?;
        let profile = profile_table(&read, &options).map_err(|e| e.to_string())?;
        Ok::<_, String>((profile, args.data))
    })
    .await
    .map_err(|e| format!("the profile's worker stopped: {e}"))?;
    let (profile, data) = profile?;
    let name = data.file_name().map_or_else(
        || data.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    write(
        ctx,
        "profile",
        &serde_json::to_vec_pretty(&profile).map_err(|e| e.to_string())?,
    )?;
    write(
        ctx,
        "summary",
        profile
            .to_markdown(&format!("Profile of {name}"))
            .as_bytes(),
    )?;
    ctx.log.line(summary_line(&name, &profile));
    Ok(Values::from([("metrics".to_owned(), metrics(&profile))]))
}

fn write(ctx: &Ctx<'_>, output: &str, bytes: &[u8]) -> Result<(), String> {
    let path = ctx.output_path(output);
    std::fs::write(&path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The dataset-level numbers, which the engine also logs on the step's tracking run.
fn metrics(profile: &TableProfile) -> Value {
    json!({
        "rows": profile.rows,
        "columns": profile.columns,
        "missing_cells": profile.missing_cells,
        "missing_share": profile.missing_share,
        "constant_columns": profile.constant_columns.len(),
        "empty_columns": profile.empty_columns.len(),
    })
}

fn summary_line(name: &str, profile: &TableProfile) -> String {
    let types: Vec<String> = profile
        .types
        .iter()
        .map(|(kind, n)| format!("{n} {kind}"))
        .collect();
    format!(
        "profiled {name}: {} rows, {} columns ({}), {:.2}% of cells missing",
        profile.rows,
        profile.columns,
        types.join(", "),
        100.0 * profile.missing_share
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_and_unknown_arguments_are_checked_when_the_file_loads() {
        assert_eq!(
            check(&json!({"data": "d.csv", "top": 5})),
            Vec::<String>::new()
        );
        assert_eq!(
            check(&json!({"data": "d.csv", "quantiles": [0.5, 50]})),
            ["with.quantiles: 50 is not within [0, 1] (the median is 0.5)"]
        );
        let wrong_type = check(&json!({"data": "d.csv", "top": -1}));
        assert!(
            wrong_type[0].starts_with("data.profile@1 with:"),
            "{wrong_type:?}"
        );
        assert_eq!(
            check(&json!({"data": "d.csv", "top": "${{ params.top }}"})),
            Vec::<String>::new(),
            "an expression is checked when it runs"
        );
    }

    #[test]
    fn defaults_fill_what_is_not_given() {
        let args: Args = serde_json::from_value(json!({"data": "d.csv", "top": 3})).unwrap();
        let options = args.options();
        assert_eq!(options.top, 3);
        assert_eq!(options.quantiles, ProfileOptions::default().quantiles);
    }
}
