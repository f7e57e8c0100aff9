//! The point-in-time join as Spark SQL, written from the plan.
//!
//! The job registers the staged entity rows as `twinloop_entities` (`entity_row`, `entity_ts`
//! in µs, and each view's join keys already normalized as `v{j}_k{i}`) and view j's source as
//! `twinloop_source_{j}`. Per view, every source row with the entity row's keys, at or before
//! its time and within the TTL is a candidate (times compared as µs, so both bounds are exact and
//! inclusive), and the greatest `struct(event µs, created µs, features…)` wins: the latest event
//! time, then the latest created time, a null created time losing to any other, as in
//! [`super::super::asof`]. Each view's winners are left-joined to every entity row, so rows with
//! no match, no key or no time come back with nulls, and `matched_{j}` says whether a row was
//! found. The result is in no order: twinloop puts it back in input order by `entity_row`.

use arrow::datatypes::DataType;
use std::fmt::Write;

use crate::repo::DType;

/// What the SQL needs of one view.
pub(super) struct ViewSql<'a> {
    pub join_keys: &'a [String],
    pub key_types: &'a [DataType],
    pub timestamp_field: &'a str,
    pub created_field: Option<&'a str>,
    /// The requested features, in the order of the view's result columns.
    pub features: Vec<(&'a str, DType)>,
    pub ttl_micros: Option<i64>,
}

/// The query. `slots` places each output feature column: (view, its place among the view's
/// features); column i of the result is `c{i}`.
pub(super) fn training_set_sql(views: &[ViewSql<'_>], slots: &[(usize, usize)]) -> String {
    let mut sql = String::from("WITH\n");
    for (j, view) in views.iter().enumerate() {
        let mut select = Vec::new();
        for (i, (key, key_type)) in view.join_keys.iter().zip(view.key_types).enumerate() {
            select.push(format!(
                "CAST({} AS {}) AS k{i}",
                ident(key),
                key_sql(key_type)
            ));
        }
        select.push(format!(
            "unix_micros(CAST({} AS TIMESTAMP)) AS event_us",
            ident(view.timestamp_field)
        ));
        if let Some(created) = view.created_field {
            select.push(format!(
                "unix_micros(CAST({} AS TIMESTAMP)) AS created_us",
                ident(created)
            ));
        }
        for (i, (feature, dtype)) in view.features.iter().enumerate() {
            select.push(format!(
                "CAST({} AS {}) AS f{i}",
                ident(feature),
                dtype_sql(*dtype)
            ));
        }
        let _ = write!(
            sql,
            "source_{j} AS (\n  SELECT {}\n  FROM twinloop_source_{j}\n),\n",
            select.join(",\n    ")
        );
        let mut on: Vec<String> = (0..view.join_keys.len())
            .map(|i| format!("s.k{i} = e.v{j}_k{i}"))
            .collect();
        on.push("s.event_us <= e.entity_ts".into());
        if let Some(ttl) = view.ttl_micros {
            // The difference of two times within years 0001..9999 fits in a BIGINT.
            on.push(format!("e.entity_ts - s.event_us <= {ttl}"));
        }
        let mut order = vec!["s.event_us".to_string()];
        if view.created_field.is_some() {
            order.push("s.created_us".into());
        }
        order.extend((0..view.features.len()).map(|i| format!("s.f{i}")));
        let _ = write!(
            sql,
            "view_{j} AS (\n  SELECT e.entity_row, max(struct({})) AS best\n  \
             FROM twinloop_entities e\n  JOIN source_{j} s ON {}\n  GROUP BY e.entity_row\n),\n",
            order.join(", "),
            on.join(" AND ")
        );
    }
    // The last CTE's trailing comma.
    sql.truncate(sql.len() - 2);
    sql.push('\n');
    let mut columns = vec!["e.entity_row".to_string()];
    columns.extend(
        (0..views.len()).map(|j| format!("view_{j}.entity_row IS NOT NULL AS matched_{j}")),
    );
    columns.extend(
        slots
            .iter()
            .enumerate()
            .map(|(i, (j, f))| format!("view_{j}.best.f{f} AS c{i}")),
    );
    let _ = write!(
        sql,
        "SELECT {}\nFROM twinloop_entities e",
        columns.join(",\n  ")
    );
    for j in 0..views.len() {
        let _ = write!(
            sql,
            "\nLEFT JOIN view_{j} ON view_{j}.entity_row = e.entity_row"
        );
    }
    sql
}

/// A Spark SQL identifier: back-quoted, back-quotes doubled.
fn ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// The Spark type a normalized key column is compared as (see `keys::key_type`).
fn key_sql(t: &DataType) -> &'static str {
    match t {
        DataType::Int64 => "BIGINT",
        DataType::Utf8 => "STRING",
        _ => "BINARY",
    }
}

fn dtype_sql(d: DType) -> &'static str {
    match d {
        DType::Bool => "BOOLEAN",
        DType::Int32 => "INT",
        DType::Int64 => "BIGINT",
        DType::Float32 => "FLOAT",
        DType::Float64 => "DOUBLE",
        DType::String => "STRING",
        DType::Bytes => "BINARY",
        DType::Timestamp => "TIMESTAMP",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_views_one_with_created_and_ttl_one_with_a_composite_key() {
        let driver_keys = ["driver_id".to_string()];
        let pair_keys = ["driver_id".to_string(), "zone".to_string()];
        let views = [
            ViewSql {
                join_keys: &driver_keys,
                key_types: &[DataType::Int64],
                timestamp_field: "event_timestamp",
                created_field: Some("created"),
                features: vec![("conv_rate", DType::Float32), ("trips", DType::Int64)],
                ttl_micros: Some(86_400_000_000),
            },
            ViewSql {
                join_keys: &pair_keys,
                key_types: &[DataType::Int64, DataType::Utf8],
                timestamp_field: "ts",
                created_field: None,
                features: vec![("surge", DType::Float64)],
                ttl_micros: None,
            },
        ];
        let sql = training_set_sql(&views, &[(0, 1), (1, 0), (0, 0)]);
        assert_eq!(
            sql,
            "WITH
source_0 AS (
  SELECT CAST(`driver_id` AS BIGINT) AS k0,
    unix_micros(CAST(`event_timestamp` AS TIMESTAMP)) AS event_us,
    unix_micros(CAST(`created` AS TIMESTAMP)) AS created_us,
    CAST(`conv_rate` AS FLOAT) AS f0,
    CAST(`trips` AS BIGINT) AS f1
  FROM twinloop_source_0
),
view_0 AS (
  SELECT e.entity_row, max(struct(s.event_us, s.created_us, s.f0, s.f1)) AS best
  FROM twinloop_entities e
  JOIN source_0 s ON s.k0 = e.v0_k0 AND s.event_us <= e.entity_ts AND e.entity_ts - s.event_us <= 86400000000
  GROUP BY e.entity_row
),
source_1 AS (
  SELECT CAST(`driver_id` AS BIGINT) AS k0,
    CAST(`zone` AS STRING) AS k1,
    unix_micros(CAST(`ts` AS TIMESTAMP)) AS event_us,
    CAST(`surge` AS DOUBLE) AS f0
  FROM twinloop_source_1
),
view_1 AS (
  SELECT e.entity_row, max(struct(s.event_us, s.f0)) AS best
  FROM twinloop_entities e
  JOIN source_1 s ON s.k0 = e.v1_k0 AND s.k1 = e.v1_k1 AND s.event_us <= e.entity_ts
  GROUP BY e.entity_row
)
SELECT e.entity_row,
  view_0.entity_row IS NOT NULL AS matched_0,
  view_1.entity_row IS NOT NULL AS matched_1,
  view_0.best.f1 AS c0,
  view_1.best.f0 AS c1,
  view_0.best.f0 AS c2
FROM twinloop_entities e
LEFT JOIN view_0 ON view_0.entity_row = e.entity_row
LEFT JOIN view_1 ON view_1.entity_row = e.entity_row"
        );
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(ident("weird`name"), "`weird``name`");
        assert_eq!(ident("a b"), "`a b`");
    }
}
