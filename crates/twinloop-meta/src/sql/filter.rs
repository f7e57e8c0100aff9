//! The comparisons of MLflow's search language (`=`, `LIKE`, `IN`, `<`, …) as SQL, shared by
//! every search: runs, experiments, logged models, registered models and versions.

use twinloop_core::Result;

use super::query::Sql;
use crate::search::{Clause, Comparator, Literal};

/// `column <op> value` for string-valued columns.
pub(super) fn string_comparison(sql: &mut Sql, column: &str, clause: &Clause) -> Result<()> {
    match (&clause.value, clause.comparator) {
        (Literal::Str(v), Comparator::Eq) => sql.push(column).push(" = ").arg(v),
        (Literal::Str(v), Comparator::Ne) => sql.push(column).push(" <> ").arg(v),
        (Literal::Str(v), Comparator::Like) => sql.push(column).push(" LIKE ").arg(v),
        (Literal::Str(v), Comparator::ILike) => sql
            .push("LOWER(")
            .push(column)
            .push(") LIKE LOWER(")
            .arg(v)
            .push(")"),
        (Literal::List(items), Comparator::In | Comparator::NotIn) => {
            if items.is_empty() {
                // `IN ()` is not SQL; an empty set matches nothing, its complement everything.
                sql.push(if clause.comparator == Comparator::In {
                    "1 = 0"
                } else {
                    "1 = 1"
                })
            } else {
                sql.push(column)
                    .push(if clause.comparator == Comparator::In {
                        " IN "
                    } else {
                        " NOT IN "
                    })
                    .arg_list(items)
            }
        }
        (Literal::Num(_), _) => {
            return Err(clause.invalid("expected a quoted string value, e.g. 'value'"));
        }
        _ => {
            return Err(clause.invalid(&format!(
                "comparator {} is not supported here; use =, !=, LIKE or ILIKE",
                clause.comparator.as_str()
            )));
        }
    };
    Ok(())
}

/// `column <op> number` for numeric columns. `integral` columns (timestamps) take whole numbers.
pub(super) fn numeric_comparison(
    sql: &mut Sql,
    column: &str,
    clause: &Clause,
    integral: bool,
) -> Result<()> {
    let Literal::Num(v) = clause.value else {
        return Err(clause.invalid("expected a numeric value, e.g. 0.5"));
    };
    if !clause.comparator.is_numeric() {
        return Err(clause.invalid(&format!(
            "comparator {} is not supported for numbers; use =, !=, <, <=, > or >=",
            clause.comparator.as_str()
        )));
    }
    let op = match clause.comparator {
        Comparator::Ne => "<>",
        other => other.as_str(),
    };
    sql.push(column).push(" ").push(op).push(" ");
    if integral {
        if v.fract() != 0.0 {
            return Err(clause.invalid("expected a whole number of milliseconds"));
        }
        sql.arg(v as i64);
    } else {
        sql.arg(v);
    }
    Ok(())
}

/// The SQL column of a searchable key, from a table of `(key, column)`.
pub(super) fn lookup(table: &[(&str, &'static str)], key: &str) -> Option<&'static str> {
    table.iter().find(|(k, _)| *k == key).map(|(_, c)| *c)
}
