//! MLflow's search language for registered models and model versions, evaluated in SQL.

use twinloop_core::registry::DELETED_STAGE;
use twinloop_core::{Error, Result};

use crate::search::{Comparator, Entity, parse_filter, parse_order_by};
use crate::sql::filter::{numeric_comparison, string_comparison};
use crate::sql::query::{Sql, Window};
use crate::store::RegistryQuery;

/// The tag that marks a registered model as a prompt. The MLflow client appends
/// ``tag.`mlflow.prompt.is_prompt` != 'true'`` to every model search; like MLflow's server we
/// drop that clause and leave prompts out unless the filter asks for them.
const PROMPT_TAG: &str = "mlflow.prompt.is_prompt";

fn tag_clause(
    sql: &mut Sql,
    table: &str,
    owner_match: &str,
    clause: &crate::search::Clause,
) -> Result<()> {
    sql.push(&format!(
        "EXISTS (SELECT 1 FROM {table} t WHERE {owner_match} AND t.key = "
    ))
    .arg(&clause.key)
    .push(" AND ");
    string_comparison(sql, "t.value", clause)?;
    sql.push(")");
    Ok(())
}

/// The models `q` asks for, in its order, within its page: `select` chooses the columns.
pub(super) fn models_query(mut sql: Sql, q: &RegistryQuery) -> Result<(Sql, Window)> {
    let window = Window::parse(q.max_results, q.page_token.as_deref())?;
    let mut wants_prompts = false;
    for clause in parse_filter(q.filter.as_deref().unwrap_or(""), true)? {
        match clause.entity {
            Entity::Tag if clause.key == PROMPT_TAG => {
                wants_prompts |= clause.comparator == Comparator::Eq
                    && clause.value == crate::search::Literal::Str("true".into());
                if wants_prompts {
                    sql.push(" AND ");
                    tag_clause(
                        &mut sql,
                        "registered_model_tags",
                        "t.name = rm.name",
                        &clause,
                    )?;
                }
            }
            Entity::Tag => {
                sql.push(" AND ");
                tag_clause(
                    &mut sql,
                    "registered_model_tags",
                    "t.name = rm.name",
                    &clause,
                )?;
            }
            Entity::Attribute if clause.key == "name" => {
                sql.push(" AND ");
                string_comparison(&mut sql, "rm.name", &clause)?;
            }
            _ => {
                return Err(
                    clause.invalid("registered models can be filtered by name and tags.<key> only")
                );
            }
        }
    }
    if !wants_prompts {
        sql.push(" AND NOT EXISTS (SELECT 1 FROM registered_model_tags p WHERE p.name = rm.name AND p.key = ")
                .arg(PROMPT_TAG)
                .push(" AND p.value = 'true')");
    }
    let mut terms = Vec::new();
    for text in &q.order_by {
        let key = parse_order_by(text, true)?;
        let column = match (key.entity, key.key.as_str()) {
            (Entity::Attribute, "name") => "rm.name",
            (Entity::Attribute, "timestamp" | "last_updated_timestamp") => "rm.last_updated_time",
            (Entity::Attribute, "creation_timestamp") => "rm.creation_time",
            _ => {
                return Err(Error::invalid(format!(
                    "Invalid order_by clause {text:?}: registered models can be ordered by name, creation_timestamp or last_updated_timestamp"
                )));
            }
        };
        terms.push(format!(
            "{column} {}",
            if key.ascending { "ASC" } else { "DESC" }
        ));
    }
    terms.push("rm.name ASC".into());
    sql.push(" ORDER BY ").push(&terms.join(", "));
    window.apply(&mut sql);
    Ok((sql, window))
}

/// The live versions `q` asks for, in its order, within its page.
pub(super) fn versions_query(mut sql: Sql, q: &RegistryQuery) -> Result<(Sql, Window)> {
    let window = Window::parse(q.max_results, q.page_token.as_deref())?;
    sql.arg(DELETED_STAGE);
    for clause in parse_filter(q.filter.as_deref().unwrap_or(""), true)? {
        sql.push(" AND ");
        match (clause.entity, clause.key.as_str()) {
            (Entity::Tag, _) => tag_clause(
                &mut sql,
                "model_version_tags",
                "t.name = mv.name AND t.version = mv.version",
                &clause,
            )?,
            (Entity::Attribute, "name") => string_comparison(&mut sql, "mv.name", &clause)?,
            (Entity::Attribute, "run_id") => string_comparison(&mut sql, "mv.run_id", &clause)?,
            (Entity::Attribute, "source_path") => {
                string_comparison(&mut sql, "mv.source", &clause)?
            }
            (Entity::Attribute, "version_number") => {
                numeric_comparison(&mut sql, "mv.version", &clause, true)?
            }
            _ => {
                return Err(clause.invalid(
                        "model versions can be filtered by name, run_id, source_path, version_number and tags.<key>",
                    ));
            }
        }
    }
    let mut terms = Vec::new();
    for text in &q.order_by {
        let key = parse_order_by(text, true)?;
        let column = match (key.entity, key.key.as_str()) {
            (Entity::Attribute, "name") => "mv.name",
            (Entity::Attribute, "version_number") => "mv.version",
            (Entity::Attribute, "creation_timestamp") => "mv.creation_time",
            (Entity::Attribute, "timestamp" | "last_updated_timestamp") => "mv.last_updated_time",
            _ => {
                return Err(Error::invalid(format!(
                    "Invalid order_by clause {text:?}: model versions can be ordered by name, version_number, creation_timestamp or last_updated_timestamp"
                )));
            }
        };
        terms.push(format!(
            "{column} {}",
            if key.ascending { "ASC" } else { "DESC" }
        ));
    }
    if q.order_by.is_empty() {
        terms.push("mv.last_updated_time DESC".into());
    }
    terms.push("mv.name ASC".into());
    terms.push("mv.version DESC".into());
    sql.push(" ORDER BY ").push(&terms.join(", "));
    window.apply(&mut sql);
    Ok((sql, window))
}
