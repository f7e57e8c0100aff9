//! One drift-and-quality pass over every column present on both sides, in parallel.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use arrow::array::{Array, ArrayRef};

use crate::categorical::{self, CatCounts};
use crate::column::{self, NumCounts, Phys};
use crate::io::Table;
use crate::report::{Chart, ColumnDrift, ColumnQuality, Finding, Report, Skipped};
use crate::schema::{ColumnSchema, Schema};
use crate::stats::{self, Test, binning};

/// Evidently's auto-selection switches from p-value tests to distances above this many
/// non-missing reference values.
const SMALL_REFERENCE: u64 = 1000;
/// Integer columns with at most this many distinct values are categorical (Evidently's
/// `INTEGER_CARDINALITY_LIMIT`).
const INTEGER_CARDINALITY_LIMIT: usize = 10;
/// A missing share that grows by at least this much is reported (Evidently cannot see it: it
/// drops missing values before testing).
const MISSING_SHARE_JUMP: f64 = 0.05;
/// Categorical columns with more distinct values than this are flagged; they still get tested.
const HIGH_CARDINALITY: usize = 10_000;
/// Bars per categorical chart; the rest are summed into "(other)".
const CHART_CATEGORIES: usize = 20;
const CHART_BINS: usize = 24;

#[derive(Debug, Clone)]
pub struct Options {
    /// Test for every column it fits (Evidently's `method=`); `None` is auto-selection.
    pub method: Option<Test>,
    pub threshold: Option<f64>,
    pub drift_share: f64,
    pub schema: Schema,
    /// Worker threads; 0 means one per core.
    pub threads: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            method: None,
            threshold: None,
            drift_share: 0.5,
            schema: Schema::default(),
            threads: 0,
        }
    }
}

enum Outcome {
    Tested(ColumnDrift, Chart),
    Skipped(Skipped),
}

struct ColumnResult {
    name: String,
    outcome: Outcome,
    quality: ColumnQuality,
    findings: Vec<Finding>,
}

/// Compares `current` against `reference`. Fails only on input that cannot be compared at all
/// (no shared column); everything else becomes a finding.
pub fn run_drift(
    reference: &Table,
    current: &Table,
    options: &Options,
) -> Result<Report, crate::Error> {
    let drift_share = options.schema.drift_share.unwrap_or(options.drift_share);
    let ref_names: HashSet<&str> = reference.columns.iter().map(|(n, _)| n.as_str()).collect();
    let cur_names: HashSet<&str> = current.columns.iter().map(|(n, _)| n.as_str()).collect();
    let mut findings = Vec::new();
    for (n, _) in &reference.columns {
        if !cur_names.contains(n.as_str()) {
            findings.push(finding(
                n,
                "missing_column",
                "in the reference but not in current; not compared",
            ));
        }
    }
    for (n, _) in &current.columns {
        if !ref_names.contains(n.as_str()) {
            findings.push(finding(
                n,
                "missing_column",
                "in current but not in the reference; not compared",
            ));
        }
    }
    // Pairs in current's column order (Evidently types columns from current).
    let pairs: Vec<(&str, &ArrayRef, &ArrayRef)> = current
        .columns
        .iter()
        .filter_map(|(n, c)| {
            reference
                .columns
                .iter()
                .find(|(r, _)| r == n)
                .map(|(_, r)| (n.as_str(), r, c))
        })
        .collect();
    if pairs.is_empty() {
        return Err(crate::Error::input(
            "the reference and current datasets share no column name (hint: compare files with the same columns)",
        ));
    }
    if reference.rows == 0 || current.rows == 0 {
        let which = if reference.rows == 0 {
            "reference"
        } else {
            "current"
        };
        return Err(crate::Error::input(format!(
            "the {which} dataset has no rows"
        )));
    }

    let threads = if options.threads == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    } else {
        options.threads
    };
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<ColumnResult>> = Mutex::new(Vec::with_capacity(pairs.len()));
    std::thread::scope(|s| {
        for _ in 0..threads.min(pairs.len()) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((name, r, c)) = pairs.get(i) else {
                        break;
                    };
                    let res = analyse(name, r, c, options);
                    results
                        .lock()
                        .expect("no worker panics while holding the lock")
                        .push(res);
                }
            });
        }
    });
    let mut results = results.into_inner().expect("workers done");
    results.sort_by_key(|r| pairs.iter().position(|p| p.0 == r.name));

    let mut report = Report {
        dataset_drift: false,
        drift_share,
        drifted_columns: 0,
        n_columns: 0,
        share_of_drifted_columns: 0.0,
        reference_rows: reference.rows,
        current_rows: current.rows,
        columns: BTreeMap::new(),
        skipped: BTreeMap::new(),
        quality: BTreeMap::new(),
        findings,
        charts: BTreeMap::new(),
    };
    for r in results {
        match r.outcome {
            Outcome::Tested(d, chart) => {
                report.charts.insert(r.name.clone(), chart);
                report.columns.insert(r.name.clone(), d);
            }
            Outcome::Skipped(s) => {
                report.skipped.insert(r.name.clone(), s);
            }
        }
        report.quality.insert(r.name, r.quality);
        report.findings.extend(r.findings);
    }
    report.n_columns = report.columns.len();
    report.drifted_columns = report.columns.values().filter(|c| c.drifted).count();
    if report.n_columns > 0 {
        report.share_of_drifted_columns = report.drifted_columns as f64 / report.n_columns as f64;
        report.dataset_drift = report.share_of_drifted_columns >= drift_share;
    }
    Ok(report)
}

fn finding(column: &str, kind: &'static str, message: impl Into<String>) -> Finding {
    Finding {
        column: column.to_string(),
        kind,
        message: message.into(),
    }
}

/// The column kind Evidently would infer from the current side (or the schema's choice).
enum Kind {
    Num,
    Cat,
    Text,
    Skip(&'static str, String),
}

/// The column type Evidently would infer from these values alone: `num`, `cat`, `text`, or
/// `unknown` for what it does not type (dates, unsigned integers, booleans with nulls, …).
pub fn column_type(values: &ArrayRef) -> &'static str {
    match infer_kind(values, None) {
        Kind::Num => "num",
        Kind::Cat => "cat",
        Kind::Text => "text",
        Kind::Skip(kind, _) => kind,
    }
}

fn infer_kind(current: &ArrayRef, schema: Option<&ColumnSchema>) -> Kind {
    if let Some(k) = schema.and_then(|s| s.kind.as_deref()) {
        return match k {
            "num" => Kind::Num,
            "cat" => Kind::Cat,
            "text" => Kind::Text,
            _ => Kind::Skip("skip", "skipped by the schema".into()),
        };
    }
    match Phys::of(current) {
        Phys::Float => Kind::Num,
        Phys::Int => {
            if column::distinct_ints(current, INTEGER_CARDINALITY_LIMIT + 1) <= INTEGER_CARDINALITY_LIMIT {
                Kind::Cat
            } else {
                Kind::Num
            }
        }
        Phys::Bool | Phys::Category => Kind::Cat,
        Phys::Str => {
            let (distinct, non_null) = categorical::distinct_strings(current, usize::MAX);
            if non_null == 0 {
                Kind::Skip("unknown", "no non-null value in current, so no type can be inferred".into())
            } else if distinct as f64 > 0.5 * non_null as f64 {
                Kind::Text
            } else {
                Kind::Cat
            }
        }
        Phys::UInt => Kind::Skip(
            "unknown",
            "unsigned integers: Evidently 0.7 does not type pandas uint columns (hint: declare the type in --schema)"
                .into(),
        ),
        Phys::BoolWithNulls => Kind::Skip(
            "unknown",
            "booleans with nulls: Evidently 0.7 does not type them (hint: declare the type in --schema)".into(),
        ),
        Phys::Other => Kind::Skip("unknown", format!("{} columns are not tested", current.data_type())),
    }
}

fn analyse(
    name: &str,
    reference: &ArrayRef,
    current: &ArrayRef,
    options: &Options,
) -> ColumnResult {
    let schema = options.schema.columns.get(name);
    let (pr, pc) = (Phys::of(reference), Phys::of(current));
    let mut quality = ColumnQuality {
        reference_dtype: reference.data_type().to_string(),
        current_dtype: current.data_type().to_string(),
        ..Default::default()
    };
    let mut findings = Vec::new();
    let skip = |kind: &'static str,
                reason: String,
                quality: ColumnQuality,
                findings: Vec<Finding>| ColumnResult {
        name: name.to_string(),
        outcome: Outcome::Skipped(Skipped { kind, reason }),
        quality,
        findings,
    };
    // logical_null_count: a NullArray (an all-empty CSV column) has no null buffer.
    let null_share = |a: &ArrayRef| {
        if a.is_empty() {
            0.0
        } else {
            a.logical_null_count() as f64 / a.len() as f64
        }
    };
    quality.missing_share_reference = null_share(reference);
    quality.missing_share_current = null_share(current);
    for (side, a) in [("reference", reference), ("current", current)] {
        if !a.is_empty() && a.logical_null_count() == a.len() {
            findings.push(finding(
                name,
                "empty_column",
                format!("every value is null in {side}"),
            ));
        }
    }
    // Null-typed columns (all-null CSV columns) carry no type of their own.
    let typed = |a: &ArrayRef| *a.data_type() != arrow::datatypes::DataType::Null;
    if typed(reference)
        && typed(current)
        && pr.family() != pc.family()
        && schema.and_then(|s| s.kind.as_ref()).is_none()
    {
        let msg = format!(
            "reference is {} ({}), current is {} ({}); not compared",
            pr.family(),
            reference.data_type(),
            pc.family(),
            current.data_type()
        );
        findings.push(finding(name, "type_mismatch", msg.clone()));
        return skip(
            "unknown",
            format!("type mismatch: {msg}"),
            quality,
            findings,
        );
    }
    let kind = infer_kind(current, schema);
    let method = schema
        .and_then(|s| s.method.as_deref())
        .and_then(Test::parse)
        .or(options.method);
    let threshold = schema.and_then(|s| s.threshold).or(options.threshold);
    match kind {
        Kind::Skip(k, reason) => skip(k, reason, quality, findings),
        Kind::Text => skip(
            "text",
            "text column: Evidently tests text with a domain classifier (TF-IDF + SGD), which is not computed here".into(),
            quality,
            findings,
        ),
        Kind::Num if !pc.is_numeric() || (!pr.is_numeric() && typed(reference)) => skip(
            "num",
            "declared numerical but the values are not numbers".into(),
            quality,
            findings,
        ),
        Kind::Num => numerical(name, reference, current, method, threshold, schema, quality, findings),
        Kind::Cat => categorical(name, reference, current, method, threshold, schema, quality, findings),
    }
}

fn missing_finding(name: &str, q: &ColumnQuality, findings: &mut Vec<Finding>) {
    if q.missing_share_current - q.missing_share_reference >= MISSING_SHARE_JUMP {
        findings.push(finding(
            name,
            "missing_share",
            format!(
                "missing share rose from {:.1}% to {:.1}% (the drift test ignores missing values)",
                100.0 * q.missing_share_reference,
                100.0 * q.missing_share_current
            ),
        ));
    }
}

#[allow(clippy::too_many_arguments)]
fn numerical(
    name: &str,
    reference: &ArrayRef,
    current: &ArrayRef,
    method: Option<Test>,
    threshold: Option<f64>,
    schema: Option<&ColumnSchema>,
    mut quality: ColumnQuality,
    mut findings: Vec<Finding>,
) -> ColumnResult {
    let (r, rc) = column::finite_sorted(reference);
    let (c, cc) = column::finite_sorted(current);
    let share = |n: &NumCounts| {
        if n.len == 0 {
            0.0
        } else {
            n.missing as f64 / n.len as f64
        }
    };
    quality.missing_share_reference = share(&rc);
    quality.missing_share_current = share(&cc);
    quality.infinite_reference = rc.pos_inf + rc.neg_inf;
    quality.infinite_current = cc.pos_inf + cc.neg_inf;
    missing_finding(name, &quality, &mut findings);
    if quality.infinite_reference + quality.infinite_current > 0 {
        findings.push(finding(
            name,
            "infinite_values",
            format!(
                "{} infinite values in the reference, {} in current; dropped before testing on every path \
                 (Evidently drops them only in some passes)",
                quality.infinite_reference, quality.infinite_current
            ),
        ));
    }
    if r.is_empty() || c.is_empty() {
        let which = if r.is_empty() { "reference" } else { "current" };
        findings.push(finding(
            name,
            "empty_column",
            format!("no finite value left in {which}"),
        ));
        return ColumnResult {
            name: name.to_string(),
            outcome: Outcome::Skipped(Skipped {
                kind: "num",
                reason: format!(
                    "no finite value in {which} (Evidently fails the whole report here)"
                ),
            }),
            quality,
            findings,
        };
    }
    // Out of range against the schema, else against the reference's observed range.
    let lo = schema.and_then(|s| s.min).unwrap_or(r[0]);
    let hi = schema.and_then(|s| s.max).unwrap_or(r[r.len() - 1]);
    let below = c.partition_point(|v| *v < lo);
    let above = c.len() - c.partition_point(|v| *v <= hi);
    let out = (below + above) as u64
        + if schema.and_then(|s| s.max).is_some() {
            cc.pos_inf
        } else {
            0
        };
    quality.out_of_range_current = Some(out);
    quality.expected_range = Some((lo, hi));
    if out > 0 {
        findings.push(finding(
            name,
            "out_of_range",
            format!(
                "{out} current values ({:.2}%) outside [{lo}, {hi}]",
                100.0 * out as f64 / cc.len.max(1) as f64
            ),
        ));
    }

    let (n_ref, n_cur) = (r.len() as u64, c.len() as u64);
    let n_uniq = column::distinct_merged(&r, &c, 6);
    let auto = if n_ref <= SMALL_REFERENCE {
        match n_uniq {
            0..=2 => Test::Z,
            3..=5 => Test::Chisquare,
            _ => Test::Ks,
        }
    } else if n_uniq <= 5 {
        Test::Jensenshannon
    } else {
        Test::Wasserstein
    };
    let test = method.filter(|m| m.allows(true)).unwrap_or(auto);
    let per_value = || {
        let (keys, a, b) = column::value_counts_merged(&r, &c);
        (keys, a, b)
    };
    let score = match test {
        Test::Ks => stats::ks::ks_2samp(&r, &c).1,
        Test::Wasserstein => stats::wasserstein(&r, &c) / stats::std_pop(&r).max(0.001),
        Test::Chisquare => {
            let (_, a, b) = per_value();
            chisquare_counts(&a, &b)
        }
        Test::Z => {
            let (_, a, b) = per_value();
            z_counts(&a, &b)
        }
        Test::Jensenshannon | Test::Psi => {
            let (p, q) = if column::distinct_sorted(&r, 21) > 20 {
                let edges = binning::sturges_edges(
                    r[0].min(c[0]),
                    r[r.len() - 1].max(c[c.len() - 1]),
                    r.len() + c.len(),
                );
                (
                    binning::proportions(&binning::histogram_sorted(&r, &edges), n_ref),
                    binning::proportions(&binning::histogram_sorted(&c, &edges), n_cur),
                )
            } else {
                let (_, a, b) = per_value();
                (
                    binning::proportions(&a, n_ref),
                    binning::proportions(&b, n_cur),
                )
            };
            distance(test, p, q)
        }
    };
    let threshold = threshold.unwrap_or(test.default_threshold());
    let chart = numeric_chart(&r, &c);
    ColumnResult {
        name: name.to_string(),
        outcome: Outcome::Tested(verdict("num", test, score, threshold, n_ref, n_cur), chart),
        quality,
        findings,
    }
}

/// The column's verdict: its test's score against the threshold, in the test's direction.
fn verdict(
    kind: &'static str,
    test: Test,
    score: f64,
    threshold: f64,
    n_reference: u64,
    n_current: u64,
) -> ColumnDrift {
    ColumnDrift {
        kind,
        test: test.name(),
        score,
        threshold,
        drifted: test.is_drift(score, threshold),
        n_reference,
        n_current,
    }
}

fn distance(test: Test, mut p: Vec<f64>, mut q: Vec<f64>) -> f64 {
    if test == Test::Psi {
        binning::fill_zeroes(&mut p);
        binning::fill_zeroes(&mut q);
        stats::psi(&p, &q)
    } else {
        stats::jensenshannon(&p, &q)
    }
}

/// Evidently's chi-square: observed = current counts, expected = reference counts scaled to
/// the current total.
fn chisquare_counts(reference: &[u64], current: &[u64]) -> f64 {
    let n_ref: u64 = reference.iter().sum();
    let n_cur: u64 = current.iter().sum();
    let k = n_cur as f64 / n_ref as f64;
    let f_exp: Vec<f64> = reference.iter().map(|c| *c as f64 * k).collect();
    let f_obs: Vec<f64> = current.iter().map(|c| *c as f64).collect();
    stats::chisquare(&f_obs, &f_exp)
}

/// Evidently's Z-test over counts whose first entry is the smallest key.
fn z_counts(reference: &[u64], current: &[u64]) -> f64 {
    if reference.len() <= 1 {
        // One value on both sides: Evidently returns p = 1 without testing.
        return 1.0;
    }
    stats::z_test(
        reference[0],
        reference.iter().sum(),
        current[0],
        current.iter().sum(),
    )
}

#[allow(clippy::too_many_arguments)]
fn categorical(
    name: &str,
    reference: &ArrayRef,
    current: &ArrayRef,
    method: Option<Test>,
    threshold: Option<f64>,
    schema: Option<&ColumnSchema>,
    mut quality: ColumnQuality,
    mut findings: Vec<Finding>,
) -> ColumnResult {
    let counts: CatCounts = categorical::count(reference, current);
    quality.missing_share_reference = counts.ref_missing as f64 / reference.len().max(1) as f64;
    quality.missing_share_current = counts.cur_missing as f64 / current.len().max(1) as f64;
    missing_finding(name, &quality, &mut findings);
    let (n_ref, n_cur) = (counts.n_ref(), counts.n_cur());
    quality.distinct_reference = Some(counts.reference.iter().filter(|c| **c > 0).count());
    quality.distinct_current = Some(counts.cur_distinct());
    // Unseen categories: against the schema's list when there is one, else the reference.
    let allowed: Option<HashSet<&str>> = schema
        .and_then(|s| s.categories.as_ref())
        .map(|v| v.iter().map(String::as_str).collect());
    let mut unseen = 0usize;
    let mut unseen_rows = 0u64;
    let mut examples = Vec::new();
    for (i, key) in counts.keys.iter().enumerate() {
        let cur = counts.current[i];
        if cur == 0 {
            continue;
        }
        let new = match &allowed {
            Some(set) => !set.contains(key.to_string().as_str()),
            None => counts.reference[i] == 0,
        };
        if new {
            unseen += 1;
            unseen_rows += cur;
            if examples.len() < 5 {
                examples.push(key.to_string());
            }
        }
    }
    quality.unseen_categories = Some(unseen);
    quality.unseen_share_current = Some(if n_cur == 0 {
        0.0
    } else {
        unseen_rows as f64 / n_cur as f64
    });
    quality.unseen_examples = examples.clone();
    if unseen > 0 {
        findings.push(finding(
            name,
            "unseen_categories",
            format!(
                "{unseen} categories in current never seen in the {} ({:.2}% of current rows), e.g. {}",
                if allowed.is_some() { "schema" } else { "reference" },
                100.0 * unseen_rows as f64 / n_cur.max(1) as f64,
                examples.join(", ")
            ),
        ));
    }
    if counts.keys.len() > HIGH_CARDINALITY {
        findings.push(finding(
            name,
            "high_cardinality",
            format!(
                "{} distinct categories; consider declaring it text or skipping it in --schema",
                counts.keys.len()
            ),
        ));
    }
    if n_ref == 0 || n_cur == 0 {
        let which = if n_ref == 0 { "reference" } else { "current" };
        if !findings.iter().any(|f| f.kind == "empty_column") {
            findings.push(finding(
                name,
                "empty_column",
                format!("no non-missing value in {which}"),
            ));
        }
        return ColumnResult {
            name: name.to_string(),
            outcome: Outcome::Skipped(Skipped {
                kind: "cat",
                reason: format!(
                    "no non-missing value in {which} (Evidently fails the whole report here)"
                ),
            }),
            quality,
            findings,
        };
    }
    let auto = if n_ref <= SMALL_REFERENCE {
        if counts.keys.len() <= 2 {
            Test::Z
        } else {
            Test::Chisquare
        }
    } else {
        Test::Jensenshannon
    };
    let test = method.filter(|m| m.allows(false)).unwrap_or(auto);
    let score = match test {
        Test::Chisquare => chisquare_counts(&counts.reference, &counts.current),
        Test::Z => z_counts(&counts.reference, &counts.current),
        _ => distance(
            test,
            binning::proportions(&counts.reference, n_ref),
            binning::proportions(&counts.current, n_cur),
        ),
    };
    let threshold = threshold.unwrap_or(test.default_threshold());
    let chart = category_chart(&counts, n_ref, n_cur);
    ColumnResult {
        name: name.to_string(),
        outcome: Outcome::Tested(verdict("cat", test, score, threshold, n_ref, n_cur), chart),
        quality,
        findings,
    }
}

fn numeric_chart(r: &[f64], c: &[f64]) -> Chart {
    let lo = r[0].min(c[0]);
    let hi = r[r.len() - 1].max(c[c.len() - 1]);
    let k = if lo == hi { 1 } else { CHART_BINS };
    let step = if lo == hi { 1.0 } else { (hi - lo) / k as f64 };
    let mut edges: Vec<f64> = (0..=k).map(|i| lo + i as f64 * step).collect();
    edges[k] = if lo == hi { hi + 1.0 } else { hi };
    let rp = binning::proportions(&binning::histogram_sorted(r, &edges), r.len() as u64);
    let cp = binning::proportions(&binning::histogram_sorted(c, &edges), c.len() as u64);
    let labels = edges
        .windows(2)
        .map(|w| format!("[{:.4}, {:.4})", w[0], w[1]))
        .collect();
    Chart {
        labels,
        reference: rp,
        current: cp,
        edges: Some(edges),
    }
}

fn category_chart(counts: &CatCounts, n_ref: u64, n_cur: u64) -> Chart {
    let mut idx: Vec<usize> = (0..counts.keys.len()).collect();
    idx.sort_by_key(|&i| std::cmp::Reverse(counts.reference[i] + counts.current[i]));
    let mut chart = Chart::default();
    let (mut other_r, mut other_c) = (0u64, 0u64);
    for (rank, &i) in idx.iter().enumerate() {
        if rank < CHART_CATEGORIES {
            chart.labels.push(counts.keys[i].to_string());
            chart
                .reference
                .push(counts.reference[i] as f64 / n_ref as f64);
            chart.current.push(counts.current[i] as f64 / n_cur as f64);
        } else {
            other_r += counts.reference[i];
            other_c += counts.current[i];
        }
    }
    if idx.len() > CHART_CATEGORIES {
        chart
            .labels
            .push(format!("(other {})", idx.len() - CHART_CATEGORIES));
        chart.reference.push(other_r as f64 / n_ref as f64);
        chart.current.push(other_c as f64 / n_cur as f64);
    }
    chart
}
