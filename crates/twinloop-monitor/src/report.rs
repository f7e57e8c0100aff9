//! The drift report and its JSON form. The JSON shape is stable (documented in
//! docs/monitoring.md); fields are only ever added.

use std::collections::BTreeMap;

use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct Report {
    pub dataset_drift: bool,
    pub drift_share: f64,
    pub drifted_columns: usize,
    pub n_columns: usize,
    /// drifted_columns / n_columns (0 when nothing was tested).
    pub share_of_drifted_columns: f64,
    pub reference_rows: usize,
    pub current_rows: usize,
    pub columns: BTreeMap<String, ColumnDrift>,
    /// Columns present in both files but not tested, with the reason.
    pub skipped: BTreeMap<String, Skipped>,
    pub quality: BTreeMap<String, ColumnQuality>,
    pub findings: Vec<Finding>,
    /// Column order for the HTML view: most drifted first.
    #[serde(skip)]
    pub charts: BTreeMap<String, Chart>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ColumnDrift {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub test: &'static str,
    /// The p-value (ks, chisquare, z) or the distance (wasserstein, jensenshannon, psi).
    /// `null` when the test is undefined on the data (chi-square on a single category).
    pub score: f64,
    pub threshold: f64,
    pub drifted: bool,
    /// Non-missing, finite values each side contributed to the test.
    pub n_reference: u64,
    pub n_current: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub reason: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ColumnQuality {
    pub reference_dtype: String,
    pub current_dtype: String,
    /// Share of rows that are null or NaN.
    pub missing_share_reference: f64,
    pub missing_share_current: f64,
    pub infinite_reference: u64,
    pub infinite_current: u64,
    /// Current values outside the reference range (or the schema's min/max).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub out_of_range_current: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_range: Option<(f64, f64)>,
    /// Categories seen in current but never in the reference (or outside the schema's list).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unseen_categories: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unseen_share_current: Option<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unseen_examples: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distinct_reference: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distinct_current: Option<usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub column: String,
    /// missing_column, type_mismatch, empty_column, missing_share, infinite_values,
    /// out_of_range, unseen_categories, high_cardinality.
    pub kind: &'static str,
    pub message: String,
}

/// What the HTML view draws for one column: proportions per bin or category on each side.
#[derive(Debug, Clone, Default)]
pub struct Chart {
    pub labels: Vec<String>,
    pub reference: Vec<f64>,
    pub current: Vec<f64>,
    /// Numerical charts have bin edges; labels then name the bins.
    pub edges: Option<Vec<f64>>,
}

impl Report {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("report serialises")
    }

    /// Tested columns, most drifted first: drifted before not drifted, then by how far past
    /// (or short of) the threshold the score is, in the test's own direction.
    pub fn ranked(&self) -> Vec<(&String, &ColumnDrift)> {
        let mut v: Vec<_> = self.columns.iter().collect();
        v.sort_by(|a, b| {
            b.1.drifted
                .cmp(&a.1.drifted)
                .then(severity(b.1).total_cmp(&severity(a.1)))
                .then(a.0.cmp(b.0))
        });
        v
    }
}

/// Score relative to its threshold, larger meaning more drift, comparable across tests.
pub fn severity(c: &ColumnDrift) -> f64 {
    if c.score.is_nan() {
        return f64::NEG_INFINITY;
    }
    match c.test {
        "ks" | "chisquare" | "z" => c.threshold / c.score.max(1e-300),
        _ => c.score / c.threshold,
    }
}
