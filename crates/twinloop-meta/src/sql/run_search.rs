//! Translates a run search (filter, order and page) into SQL. Everything is evaluated in the
//! database; nothing loads all runs.

use twinloop_core::{Error, Result};

use super::Backend;
use super::experiments::parse_experiment_id;
use super::filter::{lookup, numeric_comparison, string_comparison};
use super::query::{Sql, Window};
use crate::search::{
    Clause, Comparator, Entity, OrderKey, Summary, SummaryRef, parse_filter, parse_order_by,
};
use crate::store::RunQuery;
use twinloop_core::run_columns::GroupQuery;

const STRING_ATTRIBUTES: &[(&str, &str)] = &[
    ("run_id", "r.run_uuid"),
    ("run_name", "r.name"),
    ("status", "r.status"),
    ("user_id", "r.user_id"),
    ("artifact_uri", "r.artifact_uri"),
    ("lifecycle_stage", "r.lifecycle_stage"),
];

const NUMERIC_ATTRIBUTES: &[(&str, &str)] = &[
    ("start_time", "r.start_time"),
    ("end_time", "r.end_time"),
    ("created", "r.start_time"),
    ("Created", "r.start_time"),
];

/// The column of `latest_metrics` (aliased `alias`) that holds `summary`.
fn summary_column(alias: &str, summary: Summary) -> String {
    let column = match summary {
        Summary::Min => "min_value",
        Summary::Max => "max_value",
        Summary::Count => "value_count",
        Summary::Last => "value",
    };
    format!("{alias}.{column}")
}

/// `EXISTS` a metric row of the run whose `summary` of `key` satisfies the clause. A NaN last
/// value matches no comparison, as MLflow's; min and max are NULL (matching nothing) only while
/// every point is NaN.
fn metric_exists(sql: &mut Sql, key: &str, summary: Summary, clause: &Clause) -> Result<()> {
    sql.push("EXISTS (SELECT 1 FROM latest_metrics m WHERE m.run_uuid = r.run_uuid AND m.key = ")
        .arg(key)
        .push(" AND ");
    if summary == Summary::Last {
        sql.push("m.is_nan = 0 AND ");
    }
    numeric_comparison(sql, &summary_column("m", summary), clause, false)?;
    sql.push(")");
    Ok(())
}

/// Whether a run of the searched experiments has logged the metric `key` (see
/// `search::summary` for why an unquoted `metrics.a.min` asks).
fn literal_key_exists(sql: &mut Sql, experiment_ids: &[i64], key: &str) {
    sql.push("EXISTS (SELECT 1 FROM experiment_keys ek WHERE ek.experiment_id IN ")
        .arg_list(experiment_ids)
        .push(" AND ek.kind = 'metric' AND ek.key = ")
        .arg(key)
        .push(" AND ek.runs > 0)");
}

fn metric_clause(sql: &mut Sql, clause: &Clause, experiment_ids: &[i64]) -> Result<()> {
    match &clause.summary {
        None => metric_exists(sql, &clause.key, Summary::Last, clause),
        Some(SummaryRef {
            summary,
            key,
            or_literal: None,
        }) => metric_exists(sql, key, *summary, clause),
        Some(SummaryRef {
            summary,
            key,
            or_literal: Some(literal),
        }) => {
            sql.push("((");
            literal_key_exists(sql, experiment_ids, literal);
            sql.push(" AND ");
            metric_exists(sql, literal, Summary::Last, clause)?;
            sql.push(") OR (NOT ");
            literal_key_exists(sql, experiment_ids, literal);
            sql.push(" AND ");
            metric_exists(sql, key, *summary, clause)?;
            sql.push("))");
            Ok(())
        }
    }
}

/// Joins what order key `i` sorts on and returns its terms: where a missing value (and a NaN or
/// all-NaN one) goes, then the value. NaN sorts after every number, a missing value after NaN.
fn metric_order(sql: &mut Sql, i: usize, order: &OrderKey, experiment_ids: &[i64]) -> Vec<String> {
    let join = |sql: &mut Sql, alias: &str, key: &str| {
        sql.push(&format!(
            " LEFT JOIN latest_metrics {alias} ON {alias}.run_uuid = r.run_uuid AND {alias}.key = "
        ))
        .arg(key);
    };
    // (column, its "not a number" test) of the summary read from `alias`.
    let target = |alias: &str, summary: Summary| match summary {
        Summary::Last => (format!("{alias}.value"), format!("{alias}.is_nan = 1")),
        other => {
            let column = summary_column(alias, other);
            let nan = format!("{column} IS NULL");
            (column, nan)
        }
    };
    let o = format!("o{i}");
    let (column, nan, present) = match &order.summary {
        None => {
            join(sql, &o, &order.key);
            let (column, nan) = target(&o, Summary::Last);
            (column, nan, format!("{o}.key IS NOT NULL"))
        }
        Some(SummaryRef {
            summary,
            key,
            or_literal: None,
        }) => {
            join(sql, &o, key);
            let (column, nan) = target(&o, *summary);
            (column, nan, format!("{o}.key IS NOT NULL"))
        }
        Some(SummaryRef {
            summary,
            key,
            or_literal: Some(literal),
        }) => {
            // Both readings are joined; a one-row flag says which one this search means.
            let (l, k) = (format!("l{i}"), format!("k{i}"));
            sql.push(" CROSS JOIN (SELECT CASE WHEN ");
            literal_key_exists(sql, experiment_ids, literal);
            sql.push(&format!(" THEN 1 ELSE 0 END AS literal) {k}"));
            join(sql, &l, literal);
            join(sql, &o, key);
            let (lit_column, lit_nan) = target(&l, Summary::Last);
            let (column, nan) = target(&o, *summary);
            (
                format!("CASE WHEN {k}.literal = 1 THEN {lit_column} ELSE {column} END"),
                format!("CASE WHEN {k}.literal = 1 THEN {lit_nan} ELSE {nan} END"),
                format!(
                    "CASE WHEN {k}.literal = 1 THEN {l}.key IS NOT NULL ELSE {o}.key IS NOT NULL END"
                ),
            )
        }
    };
    let dir = if order.ascending { "ASC" } else { "DESC" };
    vec![
        format!("CASE WHEN NOT ({present}) THEN 2 WHEN {nan} THEN 1 ELSE 0 END ASC"),
        format!("{column} {dir}"),
    ]
}

fn run_clause(sql: &mut Sql, clause: &Clause, experiment_ids: &[i64]) -> Result<()> {
    match clause.entity {
        Entity::Metric => metric_clause(sql, clause, experiment_ids)?,
        Entity::Param | Entity::Tag => {
            if matches!(clause.comparator, Comparator::In | Comparator::NotIn) {
                return Err(clause.invalid("IN and NOT IN are only supported on string attributes such as attributes.run_id"));
            }
            let table = if clause.entity == Entity::Param {
                "params"
            } else {
                "tags"
            };
            sql.push("EXISTS (SELECT 1 FROM ")
                .push(table)
                .push(" p WHERE p.run_uuid = r.run_uuid AND p.key = ")
                .arg(&clause.key)
                .push(" AND ");
            string_comparison(sql, "p.value", clause)?;
            sql.push(")");
        }
        Entity::Attribute => {
            if let Some(column) = lookup(STRING_ATTRIBUTES, &clause.key) {
                if matches!(clause.comparator, Comparator::In | Comparator::NotIn)
                    && clause.key != "run_id"
                {
                    return Err(
                        clause.invalid("only attributes.run_id can be compared with IN or NOT IN")
                    );
                }
                string_comparison(sql, column, clause)?;
            } else if let Some(column) = lookup(NUMERIC_ATTRIBUTES, &clause.key) {
                numeric_comparison(sql, column, clause, true)?;
            } else {
                return Err(clause.invalid(&format!(
                    "invalid attribute key {:?}; valid keys are run_id, run_name, status, user_id, artifact_uri, start_time, end_time",
                    clause.key
                )));
            }
        }
        Entity::Dataset => {
            let column = match clause.key.as_str() {
                "name" => "d.name",
                "digest" => "d.digest",
                "context" => "ri.context",
                other => {
                    return Err(clause.invalid(&format!(
                        "invalid dataset key {other:?}; valid keys are name, digest and context"
                    )));
                }
            };
            sql.push("EXISTS (SELECT 1 FROM run_inputs ri JOIN datasets d ON d.dataset_uuid = ri.dataset_uuid WHERE ri.run_uuid = r.run_uuid AND ");
            string_comparison(sql, column, clause)?;
            sql.push(")");
        }
    }
    Ok(())
}

/// The experiments and filter clauses of a search; `None` when it names no experiment.
fn scope(q: &RunQuery) -> Result<Option<(Vec<i64>, Vec<Clause>)>> {
    // Like MLflow, a key without an entity prefix names an attribute (`status = 'FAILED'`).
    let clauses = parse_filter(q.filter.as_deref().unwrap_or(""), true)?;
    let experiment_ids = q
        .experiment_ids
        .iter()
        .map(|id| parse_experiment_id(id))
        .collect::<Result<Vec<_>>>()?;
    Ok((!experiment_ids.is_empty()).then_some((experiment_ids, clauses)))
}

/// ` WHERE …`: the runs of the searched experiments and stages that satisfy every clause.
fn push_where(
    sql: &mut Sql,
    q: &RunQuery,
    experiment_ids: &[i64],
    clauses: &[Clause],
) -> Result<()> {
    // A search for given run ids (a window of the UI's snapshot of an order) is driven by the
    // ids. SQLite, without statistics, would rather walk the experiment's runs in start-time
    // order to spare a sort of the few it returns, reading every run of the experiment (0.6 s
    // at 1,000,000 runs); a unary `+` leaves it no index on the experiment's columns.
    let by_ids = sql.backend() == Backend::Sqlite
        && clauses.iter().any(|c| {
            c.entity == Entity::Attribute && c.key == "run_id" && c.comparator == Comparator::In
        });
    let plus = if by_ids { "+" } else { "" };
    sql.push(" WHERE ")
        .push(plus)
        .push("r.experiment_id IN ")
        .arg_list(experiment_ids)
        .push(" AND ")
        .push(plus)
        .push("r.lifecycle_stage IN ")
        .arg_list(q.view_type.stages());
    for clause in clauses {
        sql.push(" AND ");
        run_clause(sql, clause, experiment_ids)?;
    }
    Ok(())
}

/// How many runs `q` matches (`SELECT COUNT(*) FROM runs r` given as `sql`); `None` when it
/// names no experiment.
pub(super) fn count_query(mut sql: Sql, q: &RunQuery) -> Result<Option<Sql>> {
    let Some((experiment_ids, clauses)) = scope(q)? else {
        return Ok(None);
    };
    push_where(&mut sql, q, &experiment_ids, &clauses)?;
    Ok(Some(sql))
}

/// `q`'s runs grouped by a param's value, `sql` being the backend's empty statement: value, runs,
/// runs with the metric, and the metric's mean, min and max (of last values, NaN left out).
pub(super) fn group_query(mut sql: Sql, q: &RunQuery, group: &GroupQuery) -> Result<Option<Sql>> {
    let Some((experiment_ids, clauses)) = scope(q)? else {
        return Ok(None);
    };
    sql.push("SELECT g.value, COUNT(*), ");
    match &group.metric {
        Some(metric) => {
            sql.push(
                "COUNT(gm.value), AVG(gm.value), MIN(gm.value), MAX(gm.value) FROM runs r \
                 LEFT JOIN params g ON g.run_uuid = r.run_uuid AND g.key = ",
            )
            .arg(&group.param)
            .push(" LEFT JOIN latest_metrics gm ON gm.run_uuid = r.run_uuid AND gm.is_nan = 0 AND gm.key = ")
            .arg(metric);
        }
        None => {
            sql.push(
                "CAST(0 AS BIGINT), CAST(NULL AS DOUBLE PRECISION), CAST(NULL AS DOUBLE PRECISION), \
                 CAST(NULL AS DOUBLE PRECISION) FROM runs r LEFT JOIN params g ON g.run_uuid = r.run_uuid AND g.key = ",
            )
            .arg(&group.param);
        }
    }
    push_where(&mut sql, q, &experiment_ids, &clauses)?;
    sql.push(" GROUP BY g.value ORDER BY COUNT(*) DESC, g.value ASC LIMIT ")
        .arg(i64::from(group.limit));
    Ok(Some(sql))
}

/// Whether a window deep in `q` can be sought instead of skipped: the default order (newest
/// first), no filter, one experiment and one lifecycle stage, so `runs_by_experiment` yields the
/// start times in order without reading a row. Skipping 90,000 rows in the full order (start
/// time, then run id) reads every one of them into a sort; seeking reads the index only.
pub(super) fn seekable(q: &RunQuery) -> bool {
    q.order_by.is_empty()
        && q.filter.as_deref().is_none_or(|f| f.trim().is_empty())
        && q.experiment_ids.len() == 1
        && q.view_type.stages().len() == 1
}

/// The start time of the run at `offset` in the default order (`sql`: `SELECT r.start_time FROM
/// runs r`), read from the index alone; NULL start times sort last, as SQLite orders them.
pub(super) fn start_time_at(mut sql: Sql, q: &RunQuery, offset: u64) -> Result<Option<Sql>> {
    let Some((experiment_ids, clauses)) = scope(q)? else {
        return Ok(None);
    };
    push_where(&mut sql, q, &experiment_ids, &clauses)?;
    sql.push(" ORDER BY r.start_time DESC LIMIT 1 OFFSET ")
        .arg(offset as i64);
    Ok(Some(sql))
}

/// How many of `q`'s runs started after `start_time` (`sql`: `SELECT COUNT(*) FROM runs r`).
pub(super) fn started_after(mut sql: Sql, q: &RunQuery, start_time: i64) -> Result<Option<Sql>> {
    let Some((experiment_ids, clauses)) = scope(q)? else {
        return Ok(None);
    };
    push_where(&mut sql, q, &experiment_ids, &clauses)?;
    sql.push(" AND r.start_time > ").arg(start_time);
    Ok(Some(sql))
}

/// Where a sought window starts: the runs that started at or before `start_time`, from the
/// `skip`-th on (the runs of that same start time that come first by run id).
pub(super) struct Seek {
    pub start_time: i64,
    pub skip: u64,
}

/// The runs `q` asks for, in its order, within its page, the window starting at `seek` when
/// given (see [`seekable`]); `None` when it names no experiment.
pub(super) fn runs_query_from(
    sql: Sql,
    q: &RunQuery,
    seek: Option<Seek>,
) -> Result<Option<(Sql, Window)>> {
    build_runs_query(sql, q, seek, false, true)
}

/// Every run `q` matches, in its order, with no page (`sql`: `SELECT r.run_uuid FROM runs r`):
/// one sort read once, from which a runs table takes any window by position.
pub(super) fn run_order_query(sql: Sql, q: &RunQuery) -> Result<Option<Sql>> {
    Ok(build_runs_query(sql, q, None, false, false)?.map(|(sql, _)| sql))
}

/// The key of `q`'s first order when it is a metric's last value (`metrics.loss DESC`), with
/// the searched experiments: the searches [`finite_lead_query`] can answer.
pub(super) fn lead_metric(q: &RunQuery) -> Result<Option<(String, Vec<i64>)>> {
    let Some(first) = q.order_by.first() else {
        return Ok(None);
    };
    let order = parse_order_by(first, true)?;
    if order.entity != Entity::Metric || order.summary.is_some() {
        return Ok(None);
    }
    Ok(scope(q)?.map(|(experiment_ids, _)| (order.key, experiment_ids)))
}

/// [`runs_query_from`] over the runs whose first order key, a metric's last value (see
/// [`lead_metric`]), is a number: those sort before the runs where it is NaN or missing, so
/// when this query fills the page (a row past it included) its rows are exactly the page's.
/// Joined rather than left-joined and ordered by the plain value, the metric's
/// `(key, value)` index yields the runs in order and the read stops at the page, instead of
/// reading every run of the experiment into a sort. `sql` ends with `runs r` and
/// `latest_metrics o0` joined, their condition left to this function (see
/// `SqlStore::finite_lead_page` for why the order of the two differs by backend).
pub(super) fn finite_lead_query(sql: Sql, q: &RunQuery) -> Result<Option<(Sql, Window)>> {
    build_runs_query(sql, q, None, true, true)
}

fn build_runs_query(
    mut sql: Sql,
    q: &RunQuery,
    seek: Option<Seek>,
    finite_lead: bool,
    paged: bool,
) -> Result<Option<(Sql, Window)>> {
    let window = Window::parse(q.max_results, q.page_token.as_deref())?;
    let orders = q
        .order_by
        .iter()
        .map(|o| parse_order_by(o, true))
        .collect::<Result<Vec<_>>>()?;
    let Some((experiment_ids, clauses)) = scope(q)? else {
        return Ok(None);
    };

    let mut order_terms = Vec::new();
    for (i, order) in orders.iter().enumerate() {
        let dir = if order.ascending { "ASC" } else { "DESC" };
        let column = match order.entity {
            Entity::Metric if finite_lead && i == 0 => {
                sql.push(" ON o0.run_uuid = r.run_uuid AND o0.is_nan = 0 AND o0.key = ")
                    .arg(&order.key);
                "o0.value".to_string()
            }
            Entity::Metric => {
                order_terms.extend(metric_order(&mut sql, i, order, &experiment_ids));
                continue;
            }
            Entity::Param | Entity::Tag => {
                let table = if order.entity == Entity::Param {
                    "params"
                } else {
                    "tags"
                };
                sql.push(&format!(
                    " LEFT JOIN {table} o{i} ON o{i}.run_uuid = r.run_uuid AND o{i}.key = "
                ))
                .arg(&order.key);
                order_terms.push(format!(
                    "CASE WHEN o{i}.value IS NULL THEN 1 ELSE 0 END ASC"
                ));
                format!("o{i}.value")
            }
            Entity::Attribute => {
                let column = lookup(STRING_ATTRIBUTES, &order.key)
                        .or_else(|| lookup(NUMERIC_ATTRIBUTES, &order.key))
                        .or(if order.key == "experiment_id" { Some("r.experiment_id") } else { None })
                        .ok_or_else(|| {
                            Error::invalid(format!(
                                "Invalid order_by key attributes.{}; valid attributes are run_id, run_name, status, user_id, artifact_uri, start_time, end_time, experiment_id",
                                order.key
                            ))
                        })?;
                order_terms.push(format!("CASE WHEN {column} IS NULL THEN 1 ELSE 0 END ASC"));
                column.to_string()
            }
            Entity::Dataset => return Err(Error::invalid("datasets cannot be ordered by")),
        };
        order_terms.push(format!("{column} {dir}"));
    }
    push_where(&mut sql, q, &experiment_ids, &clauses)?;
    if let Some(seek) = &seek {
        sql.push(" AND r.start_time <= ").arg(seek.start_time);
    }
    order_terms.push("r.start_time DESC".into());
    order_terms.push("r.run_uuid ASC".into());
    sql.push(" ORDER BY ").push(&order_terms.join(", "));
    match seek {
        _ if !paged => {}
        Some(seek) => window.apply_from(&mut sql, seek.skip),
        None => window.apply(&mut sql),
    }
    Ok(Some((sql, window)))
}

#[cfg(test)]
mod tests {
    use twinloop_core::tracking::ViewType;

    use super::*;

    fn counted(backend: Backend, filter: &str) -> String {
        let q = RunQuery {
            experiment_ids: vec!["1".into()],
            filter: Some(filter.into()),
            order_by: Vec::new(),
            view_type: ViewType::ActiveOnly,
            max_results: 50,
            page_token: None,
        };
        let sql = count_query(Sql::new(backend, "SELECT COUNT(*) FROM runs r"), &q)
            .unwrap()
            .unwrap();
        format!("{sql:?}")
    }

    #[test]
    fn a_search_for_given_run_ids_on_sqlite_is_driven_by_the_ids() {
        let ids = "attributes.run_id IN ('a', 'b')";
        let sqlite = counted(Backend::Sqlite, ids);
        assert!(sqlite.contains("+r.experiment_id IN"), "{sqlite}");
        assert!(sqlite.contains("+r.lifecycle_stage IN"), "{sqlite}");
        // PostgreSQL plans from its statistics; other searches keep the experiment's index.
        assert!(!counted(Backend::Postgres, ids).contains('+'));
        for other in ["attributes.run_id NOT IN ('a')", "metrics.m > 1"] {
            assert!(!counted(Backend::Sqlite, other).contains("+r."), "{other}");
        }
    }
}
