//! Webhook subscriptions and their delivery log on SQL.

use async_trait::async_trait;
use twinloop_core::registry::{NewWebhook, RegistryEventKind, Webhook, WebhookDelivery};
use twinloop_core::time::now_ms;
use twinloop_core::{Error, Result};

use super::query::{Arg, RowExt};
use super::{SqlStore, db_err};
use crate::store::WebhookStore;

const COLUMNS: &str = "id, url, secret, events, model_name, created_time";

fn validate(new: &NewWebhook) -> Result<()> {
    let url = url::Url::parse(&new.url)
        .map_err(|e| Error::invalid(format!("Invalid webhook url {:?}", new.url)).with_source(e))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(Error::invalid(format!(
            "Invalid webhook url {:?}: expected http://host/... or https://host/...",
            new.url
        )));
    }
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
        let sql = self.sql(&format!("SELECT {COLUMNS} FROM webhooks ORDER BY id"));
        sql.fetch_all(&self.reader)
            .await?
            .iter()
            .map(|r| webhook_from_row(r))
            .collect()
    }

    /// The webhook goes with its delivery log, in one transaction.
    async fn delete_webhook(&self, id: i64) -> Result<()> {
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        let mut sql = self.sql("DELETE FROM webhooks WHERE id = ");
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
}
