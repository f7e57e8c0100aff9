//! `twinloop webhooks …`: the registry's webhooks on a running server, through its native API.

use anyhow::{Result, bail};
use clap::Subcommand;
use twinloop_api::Empty;
use twinloop_api::webhooks::{NewWebhook, Webhook, WebhookCreated, WebhookList};

use crate::client::{Api, ServerConnection, block_on};
use crate::monitor::utc;
use crate::output::outln;

const BASE: &str = "/api/twinloop/v1/registry/webhooks";

#[derive(Subcommand)]
pub enum WebhooksCommand {
    /// The webhooks: id, URL, the events they get, when they were added.
    List,
    /// Send registry events to URL, each POSTed as JSON and signed with the secret
    /// (X-Twinloop-Signature-256: sha256=<hex HMAC-SHA256 of the body>).
    Add {
        /// Where events are POSTed (http:// or https://).
        url: String,
        /// The key each body is signed with (8 characters or more); the server never shows it
        /// again.
        #[arg(long, env = "TWINLOOP_WEBHOOK_SECRET", hide_env_values = true)]
        secret: String,
        /// Only these event kinds, comma-separated (default: all): MODEL_CREATED, MODEL_RENAMED,
        /// MODEL_DELETED, VERSION_CREATED, VERSION_DELETED, STAGE_CHANGED, ALIAS_SET,
        /// ALIAS_DELETED.
        #[arg(long, value_delimiter = ',')]
        events: Vec<String>,
        /// Only events of this registered model (default: every model).
        #[arg(long)]
        model: Option<String>,
    },
    /// Remove a webhook and its delivery log; deliveries still being retried stop.
    Rm {
        /// The webhook's id (see `twinloop webhooks list`).
        id: i64,
    },
}

pub fn run(conn: &ServerConnection, command: WebhooksCommand) -> Result<()> {
    block_on(async move {
        let api = Api::new(conn)?;
        match command {
            WebhooksCommand::List => {
                let all: WebhookList = api.get_as(BASE, &[], "list webhooks").await?;
                let hooks = all.webhooks;
                if hooks.is_empty() {
                    outln!("no webhooks (add one with `twinloop webhooks add URL --secret S`)");
                }
                for line in table(&hooks) {
                    outln!("{line}");
                }
            }
            WebhooksCommand::Add {
                url,
                secret,
                events,
                model,
            } => {
                if events.iter().any(String::is_empty) {
                    bail!("--events has an empty kind (hint: --events ALIAS_SET,VERSION_CREATED)");
                }
                let new = NewWebhook {
                    events,
                    model_name: model,
                    secret: Some(secret),
                    url: Some(url),
                };
                let created: WebhookCreated = api.post_as(BASE, &new, "add webhook").await?;
                let hook = &created.webhook;
                outln!("webhook {} → {} ({})", hook.id, hook.url, scope(hook));
            }
            WebhooksCommand::Rm { id } => {
                let _: Empty = api
                    .delete_as(&format!("{BASE}/{id}"), &Empty {}, "remove webhook")
                    .await?;
                outln!("removed webhook {id}");
            }
        }
        Ok(())
    })
}

/// Which events a webhook gets: its kinds (or all) and its model filter.
fn scope(hook: &Webhook) -> String {
    let kinds = if hook.events.is_empty() {
        "all events".to_string()
    } else {
        hook.events.join(",")
    };
    match &hook.model_name {
        Some(m) => format!("{kinds} of model {m}"),
        None => kinds,
    }
}

fn table(hooks: &[Webhook]) -> Vec<String> {
    if hooks.is_empty() {
        return Vec::new();
    }
    let url_width = hooks.iter().map(|h| h.url.len()).max().unwrap_or(0).max(3);
    let mut lines = vec![format!(
        "{:>4}  {:<url_width$}  {:<19}  events",
        "id", "url", "created (UTC)"
    )];
    for h in hooks {
        lines.push(format!(
            "{:>4}  {:<url_width$}  {:<19}  {}",
            h.id,
            h.url,
            utc(h.created_time),
            scope(h)
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_webhooks_command_and_argument_is_described() {
        let command = WebhooksCommand::augment_subcommands(clap::Command::new("webhooks"));
        assert_eq!(crate::undescribed(&command), Vec::<String>::new());
    }

    #[test]
    fn the_list_shows_id_url_created_and_events() {
        let hooks = [
            json!({"id": 1, "url": "http://ci.local/hook", "events": [], "created_time": 1_764_300_000_000i64}),
            json!({"id": 12, "url": "http://127.0.0.1:8000/", "events": ["ALIAS_SET", "VERSION_CREATED"],
                   "model_name": "fraud", "created_time": 1_764_300_060_000i64}),
        ]
        .map(|h| serde_json::from_value::<Webhook>(h).unwrap());
        assert_eq!(
            table(&hooks),
            [
                "  id  url                     created (UTC)        events",
                "   1  http://ci.local/hook    2025-11-28 03:20:00  all events",
                "  12  http://127.0.0.1:8000/  2025-11-28 03:21:00  ALIAS_SET,VERSION_CREATED of model fraud",
            ]
        );
    }
}
