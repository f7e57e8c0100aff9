//! `twinloop models …`: the registry from the command line.

use anyhow::Result;
use clap::Subcommand;
use serde_json::{Value, json};

use crate::client::{Api, ServerConnection, block_on};
use crate::output::outln;

#[derive(Subcommand)]
pub enum ModelsCommand {
    /// List registered models with their aliases and latest version.
    List {
        /// An MLflow filter, e.g. "name LIKE 'fraud%'".
        #[arg(long)]
        filter: Option<String>,
    },
    /// List the versions of one model, newest first.
    Versions {
        /// The registered model.
        name: String,
    },
    /// Move or remove an alias such as `champion` (a deployment event serving follows).
    #[command(subcommand)]
    Alias(AliasCommand),
}

#[derive(Subcommand)]
pub enum AliasCommand {
    /// Point ALIAS of model NAME at VERSION.
    Set {
        /// The registered model.
        name: String,
        /// The alias, e.g. champion or challenger.
        alias: String,
        /// The version number it points at.
        version: String,
    },
    /// Remove ALIAS from model NAME.
    Rm {
        /// The registered model.
        name: String,
        /// The alias to remove.
        alias: String,
    },
}

const API: &str = "/api/2.0/mlflow";

pub fn run(conn: &ServerConnection, command: ModelsCommand) -> Result<()> {
    let api = Api::new(conn)?;
    block_on(async move {
        match command {
            ModelsCommand::List { filter } => list(&api, filter).await,
            ModelsCommand::Versions { name } => versions(&api, &name).await,
            ModelsCommand::Alias(AliasCommand::Set {
                name,
                alias,
                version,
            }) => {
                let body = json!({"name": name, "alias": alias, "version": version});
                api.post(
                    &format!("{API}/registered-models/alias"),
                    &body,
                    "setting the alias",
                )
                .await?;
                outln!("{name}@{alias} -> version {version}");
                Ok(())
            }
            ModelsCommand::Alias(AliasCommand::Rm { name, alias }) => {
                let body = json!({"name": name, "alias": alias});
                api.delete(
                    &format!("{API}/registered-models/alias"),
                    &body,
                    "removing the alias",
                )
                .await?;
                outln!("removed {name}@{alias}");
                Ok(())
            }
        }
    })
}

async fn list(api: &Api, filter: Option<String>) -> Result<()> {
    let mut token = String::new();
    let mut rows = vec![[
        "NAME".to_string(),
        "LATEST".to_string(),
        "ALIASES".to_string(),
        "DESCRIPTION".to_string(),
    ]];
    loop {
        let mut query = vec![("max_results", "1000")];
        if let Some(f) = &filter {
            query.push(("filter", f));
        }
        if !token.is_empty() {
            query.push(("page_token", &token));
        }
        let page = api
            .get(
                &format!("{API}/registered-models/search"),
                &query,
                "listing models",
            )
            .await?;
        for m in page["registered_models"].as_array().into_iter().flatten() {
            let latest = m["latest_versions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v["version"].as_str()?.parse::<i64>().ok())
                .max()
                .map(|v| v.to_string())
                .unwrap_or_else(|| "-".into());
            let aliases: Vec<String> = m["aliases"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|a| format!("{}={}", text(&a["alias"]), text(&a["version"])))
                .collect();
            rows.push([
                text(&m["name"]),
                latest,
                aliases.join(","),
                text(&m["description"]),
            ]);
        }
        match page["next_page_token"].as_str() {
            Some(t) if !t.is_empty() => token = t.to_string(),
            _ => break,
        }
    }
    print_table(&rows);
    Ok(())
}

async fn versions(api: &Api, name: &str) -> Result<()> {
    let filter = format!("name = '{}'", name.replace('\'', "''"));
    let page = api
        .get(
            &format!("{API}/model-versions/search"),
            &[
                ("filter", &filter),
                ("max_results", "10000"),
                ("order_by", "version_number DESC"),
            ],
            "listing versions",
        )
        .await?;
    let mut rows = vec![["VERSION", "STAGE", "ALIASES", "RUN", "SOURCE"].map(String::from)];
    for v in page["model_versions"].as_array().into_iter().flatten() {
        let aliases: Vec<String> = v["aliases"]
            .as_array()
            .into_iter()
            .flatten()
            .map(text)
            .collect();
        rows.push([
            text(&v["version"]),
            text(&v["current_stage"]),
            aliases.join(","),
            text(&v["run_id"]),
            text(&v["source"]),
        ]);
    }
    if rows.len() == 1 {
        // Tell an unknown model apart from one without versions.
        api.get(
            &format!("{API}/registered-models/get"),
            &[("name", name)],
            "looking up the model",
        )
        .await?;
    }
    print_table(&rows);
    Ok(())
}

fn text(v: &Value) -> String {
    v.as_str().map(String::from).unwrap_or_else(|| {
        if v.is_null() {
            String::new()
        } else {
            v.to_string()
        }
    })
}

pub fn print_table<const N: usize>(rows: &[[String; N]]) {
    let widths: Vec<usize> = (0..N)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        outln!("{}", cells.join("  ").trim_end());
    }
}
