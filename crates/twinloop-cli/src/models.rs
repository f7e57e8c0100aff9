//! `twinloop models …`: the registry from the command line.

use anyhow::Result;
use clap::Subcommand;
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

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

/// The parts of MLflow's answers these commands read. MLflow leaves empty fields out, hence
/// the defaults.
#[derive(Deserialize)]
struct ModelPage {
    #[serde(default)]
    registered_models: Vec<RegisteredModel>,
    #[serde(default)]
    next_page_token: String,
}

#[derive(Deserialize)]
struct RegisteredModel {
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    latest_versions: Vec<VersionNumber>,
    #[serde(default)]
    aliases: Vec<Alias>,
}

#[derive(Deserialize)]
struct VersionNumber {
    #[serde(default)]
    version: String,
}

#[derive(Deserialize)]
struct Alias {
    #[serde(default)]
    alias: String,
    #[serde(default)]
    version: String,
}

#[derive(Deserialize)]
struct VersionPage {
    #[serde(default)]
    model_versions: Vec<ModelVersion>,
}

#[derive(Deserialize)]
struct ModelVersion {
    #[serde(default)]
    version: String,
    #[serde(default)]
    current_stage: String,
    #[serde(default)]
    aliases: Vec<String>,
    #[serde(default)]
    run_id: String,
    #[serde(default)]
    source: String,
}

/// The body of MLflow's `registered-models/alias` (POST sets it, DELETE leaves out `version`).
#[derive(Serialize)]
struct AliasChange<'a> {
    name: &'a str,
    alias: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<&'a str>,
}

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
                let body = AliasChange {
                    name: &name,
                    alias: &alias,
                    version: Some(&version),
                };
                let _: IgnoredAny = api
                    .post_as(
                        &format!("{API}/registered-models/alias"),
                        &body,
                        "setting the alias",
                    )
                    .await?;
                outln!("{name}@{alias} -> version {version}");
                Ok(())
            }
            ModelsCommand::Alias(AliasCommand::Rm { name, alias }) => {
                let body = AliasChange {
                    name: &name,
                    alias: &alias,
                    version: None,
                };
                let _: IgnoredAny = api
                    .delete_as(
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
        let page: ModelPage = api
            .get_as(
                &format!("{API}/registered-models/search"),
                &query,
                "listing models",
            )
            .await?;
        for m in page.registered_models {
            let latest = m
                .latest_versions
                .iter()
                .filter_map(|v| v.version.parse::<i64>().ok())
                .max()
                .map(|v| v.to_string())
                .unwrap_or_else(|| "-".into());
            let aliases: Vec<String> = m
                .aliases
                .iter()
                .map(|a| format!("{}={}", a.alias, a.version))
                .collect();
            rows.push([
                m.name,
                latest,
                aliases.join(","),
                m.description.unwrap_or_default(),
            ]);
        }
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    print_table(&rows);
    Ok(())
}

async fn versions(api: &Api, name: &str) -> Result<()> {
    let filter = format!("name = '{}'", name.replace('\'', "''"));
    let page: VersionPage = api
        .get_as(
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
    for v in page.model_versions {
        rows.push([
            v.version,
            v.current_stage,
            v.aliases.join(","),
            v.run_id,
            v.source,
        ]);
    }
    if rows.len() == 1 {
        // Tell an unknown model apart from one without versions.
        let _: IgnoredAny = api
            .get_as(
                &format!("{API}/registered-models/get"),
                &[("name", name)],
                "looking up the model",
            )
            .await?;
    }
    print_table(&rows);
    Ok(())
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
