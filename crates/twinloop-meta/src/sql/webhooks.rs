//! Webhook subscriptions and their delivery log on SQL: twinloop's own (`protocol =
//! 'twinloop'`) and those made through MLflow's API (`'mlflow'`), in one table.

use async_trait::async_trait;
use twinloop_core::registry::{
    MlflowEvent, MlflowWebhook, MlflowWebhookUpdate, NewMlflowWebhook, NewWebhook,
    RegistryEventKind, Webhook, WebhookDelivery,
};
use twinloop_core::time::now_ms;
use twinloop_core::tracking::Page;
use twinloop_core::{Error, Result};

use super::query::{Arg, RowExt};
use super::{SqlStore, db_err};
use crate::search::{decode_page_token, encode_page_token};
use crate::store::WebhookStore;

const COLUMNS: &str = "id, url, secret, events, model_name, created_time";
const MLFLOW_COLUMNS: &str = "id, external_id, name, description, url, events, secret, active, created_time, last_updated_time";

/// The URL's form: http(s) with a host. Whether the host may be reached is the caller's policy.
fn validate_url(url: &str) -> Result<()> {
    let parsed = url::Url::parse(url)
        .map_err(|e| Error::invalid(format!("Invalid webhook URL {url:?}")).with_source(e))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(Error::invalid(format!(
            "Invalid webhook URL {url:?}: expected http://host/... or https://host/..."
        )));
    }
    Ok(())
}

/// MLflow's name rule: 1 to 63 letters, digits, `.`, `_` and `-`, starting and ending with a
/// letter or digit.
fn validate_mlflow_name(name: &str) -> Result<()> {
    let ok = (1..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .last()
            .is_some_and(|b| b.is_ascii_alphanumeric());
    if ok {
        return Ok(());
    }
    Err(Error::invalid(format!(
        "Webhook name {name:?} is invalid. It must start and end with a letter or digit, be less than 63 characters long, and contain only letters, digits, dots (.), underscores (_), and hyphens (-)."
    )))
}

fn validate_mlflow_events(events: &[MlflowEvent]) -> Result<()> {
    if events.is_empty() {
        return Err(Error::invalid(
            "Webhook events must be a non-empty list of WebhookEvent objects: [].",
        ));
    }
    Ok(())
}

fn mlflow_events(events: &[MlflowEvent]) -> String {
    let names: Vec<&str> = events.iter().map(|e| e.as_str()).collect();
    names.join(",")
}

fn mlflow_webhook_from_row(row: &dyn RowExt) -> Result<MlflowWebhook> {
    let created = row.int(8)?;
    Ok(MlflowWebhook {
        id: row.int(0)?,
        webhook_id: row.text(1)?,
        name: row.opt_text(2)?.unwrap_or_default(),
        description: row.opt_text(3)?,
        url: row.text(4)?,
        events: row
            .text(5)?
            .split(',')
            .filter_map(MlflowEvent::parse)
            .collect(),
        secret: Some(row.text(6)?).filter(|s| !s.is_empty()),
        active: row.int(7)? != 0,
        creation_timestamp: created,
        last_updated_timestamp: row.opt_int(9)?.unwrap_or(created),
    })
}

fn mlflow_not_found(webhook_id: &str) -> Error {
    Error::not_found(format!("Webhook with ID {webhook_id} not found."))
}

fn validate(new: &NewWebhook) -> Result<()> {
    validate_url(&new.url)?;
    if new.secret.len() < 8 {
        return Err(Error::invalid(
            "A webhook secret must be at least 8 characters: it signs every delivery",
        ));
    }
    Ok(())
}

fn webhook_from_row(row: &dyn RowExt) -> Result<Webhook> {
    let events = row
        .text(3)?
        .split(',')
        .filter(|k| !k.is_empty())
        .filter_map(RegistryEventKind::parse)
        .collect();
    Ok(Webhook {
        id: row.int(0)?,
        url: row.text(1)?,
        secret: row.text(2)?,
        events,
        model_name: row.opt_text(4)?,
        created_time: row.int(5)?,
    })
}

#[async_trait]
impl WebhookStore for SqlStore {
    async fn create_webhook(&self, new: NewWebhook) -> Result<Webhook> {
        validate(&new)?;
        let events: Vec<&str> = new.events.iter().map(|k| k.as_str()).collect();
        let mut sql = self
            .sql("INSERT INTO webhooks (url, secret, events, model_name, created_time) VALUES ");
        sql.tuple([
            Arg::from(&new.url),
            Arg::from(&new.secret),
            Arg::from(events.join(",")),
            Arg::from(new.model_name.clone()),
            Arg::from(now_ms()),
        ])
        .push(&format!(" RETURNING {COLUMNS}"));
        let row = sql.fetch_one(&self.writer).await?;
        webhook_from_row(&row)
    }

    async fn list_webhooks(&self) -> Result<Vec<Webhook>> {
        let sql = self.sql(&format!(
            "SELECT {COLUMNS} FROM webhooks WHERE protocol = 'twinloop' ORDER BY id"
        ));
        sql.fetch_all(&self.reader)
            .await?
            .iter()
            .map(|r| webhook_from_row(r))
            .collect()
    }

    /// The webhook goes with its delivery log, in one transaction.
    async fn delete_webhook(&self, id: i64) -> Result<()> {
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        let mut sql = self.sql("DELETE FROM webhooks WHERE protocol = 'twinloop' AND id = ");
        sql.arg(id);
        if sql.execute(&mut *tx).await? == 0 {
            return Err(Error::not_found(format!(
                "Webhook {id} not found (hint: `twinloop webhooks list` shows the ids)"
            )));
        }
        let mut sql = self.sql("DELETE FROM webhook_deliveries WHERE webhook_id = ");
        sql.arg(id);
        sql.execute(&mut *tx).await?;
        tx.commit().await.map_err(db_err)
    }

    async fn record_delivery(&self, d: &WebhookDelivery) -> Result<()> {
        let mut sql = self.sql(
            "INSERT INTO webhook_deliveries (webhook_id, event_id, attempt, status_code, error, delivered, time) VALUES ",
        );
        sql.tuple([
            Arg::from(d.webhook_id),
            Arg::from(d.event_id),
            Arg::from(d.attempt),
            Arg::from(d.status_code),
            Arg::from(d.error.clone()),
            Arg::from(i64::from(d.delivered)),
            Arg::from(d.time),
        ]);
        sql.execute(&self.writer).await?;
        Ok(())
    }

    async fn list_deliveries(&self, webhook_id: i64, limit: i64) -> Result<Vec<WebhookDelivery>> {
        let mut sql = self.sql(
            "SELECT id, webhook_id, event_id, attempt, status_code, error, delivered, time FROM webhook_deliveries WHERE webhook_id = ",
        );
        sql.arg(webhook_id)
            .push(" ORDER BY id DESC LIMIT ")
            .arg(limit.clamp(1, 10_000));
        sql.fetch_all(&self.reader)
            .await?
            .iter()
            .map(|r| {
                Ok(WebhookDelivery {
                    id: r.int(0)?,
                    webhook_id: r.int(1)?,
                    event_id: r.int(2)?,
                    attempt: r.int(3)?,
                    status_code: r.opt_int(4)?,
                    error: r.opt_text(5)?,
                    delivered: r.int(6)? != 0,
                    time: r.int(7)?,
                })
            })
            .collect()
    }

    async fn create_mlflow_webhook(&self, new: NewMlflowWebhook) -> Result<MlflowWebhook> {
        validate_mlflow_name(&new.name)?;
        validate_url(&new.url)?;
        validate_mlflow_events(&new.events)?;
        let now = now_ms();
        let mut sql = self.sql(
            "INSERT INTO webhooks (protocol, external_id, name, description, url, events, secret, active, created_time, last_updated_time) VALUES ",
        );
        sql.tuple([
            Arg::from("mlflow"),
            Arg::from(twinloop_core::ids::new_uuid()),
            Arg::from(&new.name),
            Arg::from(new.description.clone()),
            Arg::from(&new.url),
            Arg::from(mlflow_events(&new.events)),
            Arg::from(new.secret.clone().unwrap_or_default()),
            Arg::from(i64::from(new.active)),
            Arg::from(now),
            Arg::from(now),
        ])
        .push(&format!(" RETURNING {MLFLOW_COLUMNS}"));
        let row = sql.fetch_one(&self.writer).await?;
        mlflow_webhook_from_row(&row)
    }

    async fn get_mlflow_webhook(&self, webhook_id: &str) -> Result<MlflowWebhook> {
        let mut sql = self.sql(&format!(
            "SELECT {MLFLOW_COLUMNS} FROM webhooks WHERE protocol = 'mlflow' AND external_id = "
        ));
        sql.arg(webhook_id);
        match sql.fetch_optional(&self.reader).await? {
            Some(row) => mlflow_webhook_from_row(&row),
            None => Err(mlflow_not_found(webhook_id)),
        }
    }

    async fn list_mlflow_webhooks(
        &self,
        max_results: i64,
        page_token: Option<&str>,
    ) -> Result<Page<MlflowWebhook>> {
        if !(1..=1000).contains(&max_results) {
            return Err(Error::invalid("max_results must be between 1 and 1000."));
        }
        let offset = decode_page_token(page_token)?;
        let mut sql = self.sql(&format!(
            "SELECT {MLFLOW_COLUMNS} FROM webhooks WHERE protocol = 'mlflow' ORDER BY created_time DESC, id DESC LIMIT "
        ));
        sql.arg(max_results + 1)
            .push(" OFFSET ")
            .arg(i64::try_from(offset).unwrap_or(i64::MAX));
        let mut items = sql
            .fetch_all(&self.reader)
            .await?
            .iter()
            .map(|r| mlflow_webhook_from_row(r))
            .collect::<Result<Vec<_>>>()?;
        let next_page_token = (items.len() as i64 > max_results).then(|| {
            items.truncate(max_results as usize);
            encode_page_token(offset + max_results as u64)
        });
        Ok(Page {
            items,
            next_page_token,
        })
    }

    async fn update_mlflow_webhook(
        &self,
        webhook_id: &str,
        update: MlflowWebhookUpdate,
    ) -> Result<MlflowWebhook> {
        if let Some(name) = &update.name {
            validate_mlflow_name(name)?;
        }
        if let Some(url) = &update.url {
            validate_url(url)?;
        }
        if let Some(events) = &update.events {
            validate_mlflow_events(events)?;
        }
        let mut sql = self.sql("UPDATE webhooks SET last_updated_time = ");
        sql.arg(now_ms());
        if let Some(name) = update.name {
            sql.push(", name = ").arg(name);
        }
        if let Some(description) = update.description {
            sql.push(", description = ").arg(description);
        }
        if let Some(url) = update.url {
            sql.push(", url = ").arg(url);
        }
        if let Some(events) = update.events {
            sql.push(", events = ").arg(mlflow_events(&events));
        }
        if let Some(secret) = update.secret {
            sql.push(", secret = ").arg(secret);
        }
        if let Some(active) = update.active {
            sql.push(", active = ").arg(i64::from(active));
        }
        sql.push(" WHERE protocol = 'mlflow' AND external_id = ")
            .arg(webhook_id)
            .push(&format!(" RETURNING {MLFLOW_COLUMNS}"));
        match sql.fetch_optional(&self.writer).await? {
            Some(row) => mlflow_webhook_from_row(&row),
            None => Err(mlflow_not_found(webhook_id)),
        }
    }

    /// The webhook goes with its delivery log, in one transaction.
    async fn delete_mlflow_webhook(&self, webhook_id: &str) -> Result<()> {
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        let mut sql = self.sql("DELETE FROM webhooks WHERE protocol = 'mlflow' AND external_id = ");
        sql.arg(webhook_id).push(" RETURNING id");
        let Some(row) = sql.fetch_optional(&mut *tx).await? else {
            return Err(mlflow_not_found(webhook_id));
        };
        let mut sql = self.sql("DELETE FROM webhook_deliveries WHERE webhook_id = ");
        sql.arg(row.int(0)?);
        sql.execute(&mut *tx).await?;
        tx.commit().await.map_err(db_err)
    }
}
