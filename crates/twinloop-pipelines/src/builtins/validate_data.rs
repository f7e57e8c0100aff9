//! `data.validate@1`: the data against a schema, basic quality checks, and drift against a
//! reference with the monitoring engine (Evidently's tests and dataset-drift share). Each check
//! family fails the step, warns, or is only reported, as `fail_on` and `warn_on` say; the JSON
//! report is written either way.

mod quality;
mod schema;
pub(super) mod table;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use twinloop_monitor::io::Table;

use super::{Ctx, Values};
use schema::Schema;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    data: PathBuf,
    #[serde(default)]
    schema: Option<PathBuf>,
    #[serde(default)]
    reference: Option<String>,
    #[serde(default = "fail_default")]
    fail_on: Vec<Check>,
    #[serde(default = "warn_default")]
    warn_on: Vec<Check>,
    #[serde(default)]
    columns: Option<Vec<String>>,
    #[serde(default = "half")]
    drift_share: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
enum Check {
    Schema,
    Quality,
    Drift,
}

fn fail_default() -> Vec<Check> {
    vec![Check::Schema, Check::Quality]
}

fn warn_default() -> Vec<Check> {
    vec![Check::Drift]
}

/// Evidently's default: the dataset drifts when half of its tested columns do.
fn half() -> f64 {
    0.5
}

/// What the checks found, before `fail_on`/`warn_on` decide what it means.
#[derive(Debug, Serialize)]
struct Findings {
    data: String,
    rows: usize,
    schema: Option<Vec<String>>,
    quality: quality::Quality,
    drift: Option<twinloop_monitor::Report>,
}

impl Findings {
    fn problems(&self, check: Check) -> Vec<String> {
        match check {
            Check::Schema => self.schema.clone().unwrap_or_default(),
            Check::Quality => self.quality.problems.clone(),
            Check::Drift => self
                .drift
                .as_ref()
                .filter(|d| d.dataset_drift)
                .map(|d| {
                    let mut drifted: Vec<&str> = d
                        .ranked()
                        .into_iter()
                        .filter(|(_, c)| c.drifted)
                        .map(|(n, _)| n.as_str())
                        .collect();
                    drifted.truncate(10);
                    vec![format!(
                        "dataset drift: {} of {} columns drifted (share {:.2} ≥ {}): {}",
                        d.drifted_columns,
                        d.n_columns,
                        d.share_of_drifted_columns,
                        d.drift_share,
                        drifted.join(", ")
                    )]
                })
                .unwrap_or_default(),
        }
    }

    fn drift_value(&self) -> Value {
        match &self.drift {
            Some(d) => json!({
                "share": d.share_of_drifted_columns,
                "dataset_drift": d.dataset_drift,
                "columns": d.drifted_columns,
            }),
            None => json!({"share": 0.0, "dataset_drift": false, "columns": 0}),
        }
    }
}

/// Which check families failed and which only warned, each with its messages.
#[derive(Debug, Default, PartialEq)]
struct Verdict {
    failures: Vec<String>,
    warnings: Vec<String>,
}

fn verdict(findings: &Findings, fail_on: &[Check], warn_on: &[Check]) -> Verdict {
    let mut verdict = Verdict::default();
    for check in [Check::Schema, Check::Quality, Check::Drift] {
        let problems = findings.problems(check);
        if fail_on.contains(&check) {
            verdict.failures.extend(problems);
        } else if warn_on.contains(&check) {
            verdict.warnings.extend(problems);
        }
    }
    verdict.warnings.extend(findings.quality.warnings.clone());
    verdict
}

pub(crate) async fn run(ctx: &Ctx<'_>) -> Result<Values, String> {
    let args: Args = ctx.args()?;
    if !(args.drift_share > 0.0 && args.drift_share <= 1.0) {
        return Err(format!(
            "with.drift_share {} must be within (0, 1]",
            args.drift_share
        ));
    }
    let reference = match &args.reference {
        Some(r) if super::with::is_uri(r) => {
            return Err(format!(
                "with.reference {r:?}: a reference found through lineage (models:/…) or a remote location is not supported yet; name a data file or an upstream output"
            ));
        }
        Some(r) => Some(PathBuf::from(r)),
        None => None,
    };
    let report_path = ctx.output_path("report");
    // Reading the files and the drift engine's column threads are blocking work.
    let findings = tokio::task::spawn_blocking(move || {
        examine(
            &args.data,
            args.schema.as_deref(),
            reference.as_deref(),
            args.columns.as_deref(),
            args.drift_share,
        )
        .map(|f| (f, args.fail_on, args.warn_on))
    })
    .await
    .map_err(|e| format!("the validation's worker stopped: {e}"))?;
    let (findings, fail_on, warn_on) = findings?;
    let verdict = verdict(&findings, &fail_on, &warn_on);
    let report = json!({
        "findings": &findings,
        "failed": &verdict.failures,
        "warnings": &verdict.warnings,
        "fail_on": fail_on,
        "warn_on": warn_on,
    });
    let text = serde_json::to_vec_pretty(&report).map_err(|e| format!("report: {e}"))?;
    std::fs::write(&report_path, text)
        .map_err(|e| format!("cannot write {}: {e}", report_path.display()))?;
    ctx.log.line(summary(&findings));
    for warning in &verdict.warnings {
        ctx.log.line(format!("warning: {warning}"));
    }
    if !verdict.failures.is_empty() {
        for failure in &verdict.failures {
            ctx.log.line(format!("failed: {failure}"));
        }
        return Err(format!(
            "data.validate failed: {} (report: {})",
            verdict.failures.join("; "),
            report_path.display()
        ));
    }
    Ok(Values::from([("drift".to_owned(), findings.drift_value())]))
}

fn summary(findings: &Findings) -> String {
    let drift = findings.drift.as_ref().map_or_else(
        || "no reference, no drift check".to_owned(),
        |d| {
            format!(
                "{} of {} columns drifted (dataset drift: {})",
                d.drifted_columns, d.n_columns, d.dataset_drift
            )
        },
    );
    format!(
        "validated {} ({} rows): schema {}, quality {}, {drift}",
        findings.data,
        findings.rows,
        match &findings.schema {
            None => "not given".to_owned(),
            Some(p) if p.is_empty() => "ok".to_owned(),
            Some(p) => format!("{} problems", p.len()),
        },
        if findings.quality.problems.is_empty() {
            "ok".to_owned()
        } else {
            format!("{} problems", findings.quality.problems.len())
        }
    )
}

/// Runs every check the arguments ask for; an `Err` is input that cannot be examined at all.
fn examine(
    data: &Path,
    schema: Option<&Path>,
    reference: Option<&Path>,
    columns: Option<&[String]>,
    drift_share: f64,
) -> Result<Findings, String> {
    let schema = schema.map(Schema::load).transpose()?;
    let current = table::read(data).map_err(|e| format!("with.data: {e}"))?;
    let schema_problems = schema.map(|s| s.check(&current));
    let selected = select(&current, columns).map_err(|e| format!("with.columns: {e}"))?;
    let quality = quality::check(&selected);
    let drift = match reference {
        Some(path) => {
            let reference = table::read(path).map_err(|e| format!("with.reference: {e}"))?;
            let reference =
                select(&reference, columns).map_err(|e| format!("with.reference: {e}"))?;
            let options = twinloop_monitor::Options {
                drift_share,
                ..twinloop_monitor::Options::default()
            };
            Some(
                twinloop_monitor::run_drift(&reference, &selected, &options)
                    .map_err(|e| format!("drift: {e}"))?,
            )
        }
        None => None,
    };
    Ok(Findings {
        data: data.display().to_string(),
        rows: current.rows,
        schema: schema_problems,
        quality,
        drift,
    })
}

/// The named columns, in that order; every column without `columns`.
pub(super) fn select(table: &Table, columns: Option<&[String]>) -> Result<Table, String> {
    let Some(names) = columns else {
        return Ok(Table {
            columns: table.columns.clone(),
            rows: table.rows,
        });
    };
    let picked = names
        .iter()
        .map(|name| {
            table
                .columns
                .iter()
                .find(|(n, _)| n == name)
                .cloned()
                .ok_or_else(|| {
                    let have: Vec<&str> = table.columns.iter().map(|(n, _)| n.as_str()).collect();
                    format!("no column {name:?} (the data has: {})", have.join(", "))
                })
        })
        .collect::<Result<_, _>>()?;
    Ok(Table {
        columns: picked,
        rows: table.rows,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Float64Array};

    use super::*;

    fn findings(schema: Vec<&str>, drifted: bool) -> Findings {
        let current = Table {
            columns: vec![(
                "x".into(),
                Arc::new(Float64Array::from_iter_values(
                    (0..200).map(|i| f64::from(i) + if drifted { 500.0 } else { 0.0 }),
                )) as ArrayRef,
            )],
            rows: 200,
        };
        let reference = Table {
            columns: vec![(
                "x".into(),
                Arc::new(Float64Array::from_iter_values((0..200).map(f64::from))) as ArrayRef,
            )],
            rows: 200,
        };
        Findings {
            data: "d".into(),
            rows: 200,
            schema: Some(schema.into_iter().map(str::to_owned).collect()),
            quality: quality::check(&current),
            drift: Some(
                twinloop_monitor::run_drift(&reference, &current, &Default::default()).unwrap(),
            ),
        }
    }

    #[test]
    fn fail_on_and_warn_on_decide_what_a_problem_means() {
        let f = findings(vec!["column x is missing"], true);
        let v = verdict(&f, &fail_default(), &warn_default());
        assert_eq!(v.failures, ["column x is missing"]);
        assert_eq!(v.warnings.len(), 1);
        assert!(v.warnings[0].starts_with("dataset drift: 1 of 1"), "{v:?}");
        let v = verdict(&f, &[Check::Drift], &[]);
        assert_eq!(v.failures.len(), 1);
        assert!(v.failures[0].contains("x"));
        assert!(v.warnings.is_empty(), "schema is neither failed nor warned");
        assert_eq!(f.drift_value()["dataset_drift"], json!(true));
        let clean = findings(vec![], false);
        assert_eq!(
            verdict(&clean, &[Check::Schema, Check::Quality, Check::Drift], &[]),
            Verdict::default()
        );
        assert_eq!(clean.drift_value()["columns"], json!(0));
    }

    #[test]
    fn columns_select_and_unknown_ones_are_named() {
        let table = Table {
            columns: vec![
                (
                    "a".into(),
                    Arc::new(Float64Array::from(vec![1.0])) as ArrayRef,
                ),
                (
                    "b".into(),
                    Arc::new(Float64Array::from(vec![2.0])) as ArrayRef,
                ),
            ],
            rows: 1,
        };
        let picked = select(&table, Some(&["b".into()])).unwrap();
        assert_eq!(picked.columns.len(), 1);
        assert_eq!(picked.columns[0].0, "b");
        let err = select(&table, Some(&["c".into()])).unwrap_err();
        assert_eq!(err, "no column \"c\" (the data has: a, b)");
    }
}
