//! A metric's history for `get-history`, read in chunks by a task of its own and handed over
//! through a small channel: memory stays at a few chunks whatever the history's length, and a
//! reader that goes away (the client hung up) stops the query.

use futures::TryStreamExt;
use tokio::sync::mpsc;
use twinloop_core::Result;
use twinloop_core::ids::is_run_id;
use twinloop_core::tracking::Metric;

use super::SqlStore;
use super::query::{Reader, Sql, decode_metric_value};
use crate::history::{HISTORY_CHUNK, HistoryPart, MetricHistory};
use crate::search::{decode_page_token, encode_page_token};
use crate::validation::{validate_key, validate_max_results};

/// Chunks read ahead of the reader.
const READ_AHEAD: usize = 2;

/// One page: `limit` points after `offset`, or all of them.
struct Window {
    limit: Option<u64>,
    offset: u64,
}

impl SqlStore {
    /// Starts reading; must be called inside the Tokio runtime, which runs the read.
    pub(super) fn metric_history(
        &self,
        run_id: &str,
        key: &str,
        max_results: Option<i64>,
        page_token: Option<&str>,
    ) -> Result<MetricHistory> {
        validate_key("metric", key)?;
        let window = Window {
            limit: max_results.map(validate_max_results).transpose()?,
            offset: decode_page_token(page_token)?,
        };
        let (parts, received) = mpsc::channel(READ_AHEAD);
        // The history of a run that does not exist is empty, as MLflow answers it.
        if !is_run_id(run_id) {
            return Ok(MetricHistory::new(received));
        }
        let mut sql =
            self.sql("SELECT value, is_nan, timestamp, step FROM metrics WHERE run_uuid = ");
        sql.arg(run_id)
            .push(" AND key = ")
            .arg(key)
            .push(" ORDER BY timestamp, step, value");
        // One row past the page tells whether there is a next one; LIMIT is needed before OFFSET.
        let sql_limit = window
            .limit
            .map_or(i64::MAX, |l| i64::try_from(l + 1).unwrap_or(i64::MAX));
        sql.push(" LIMIT ")
            .arg(sql_limit)
            .push(" OFFSET ")
            .arg(i64::try_from(window.offset).unwrap_or(i64::MAX));
        let reader = self.bulk_reader.clone();
        let key = key.to_string();
        tokio::spawn(async move {
            if let Err(e) = send_history(&sql, &reader, &key, &window, &parts).await {
                // The reader may be gone already; then nobody is left to tell.
                let _ = parts.send(Err(e)).await;
            }
        });
        Ok(MetricHistory::new(received))
    }
}

/// Why sending stopped early: the reader dropped its end.
struct Gone;

async fn send_history(
    sql: &Sql,
    reader: &Reader,
    key: &str,
    window: &Window,
    parts: &mpsc::Sender<Result<HistoryPart>>,
) -> Result<()> {
    let key = key.to_owned();
    let mut rows = sql.stream(reader, move |r| {
        Ok(Metric::new(
            &key,
            decode_metric_value(r.float(0)?, r.int(1)?),
            r.int(2)?,
            r.int(3)?,
        ))
    });
    let mut chunk = Vec::with_capacity(HISTORY_CHUNK);
    let mut sent: u64 = 0;
    while let Some(point) = rows.try_next().await? {
        if let Some(limit) = window.limit
            && sent == limit
        {
            let token = encode_page_token(window.offset + limit);
            let _ = send(parts, &mut chunk).await;
            let _ = parts.send(Ok(HistoryPart::NextPageToken(token))).await;
            return Ok(());
        }
        chunk.push(point);
        sent += 1;
        if chunk.len() == HISTORY_CHUNK && send(parts, &mut chunk).await.is_err() {
            return Ok(());
        }
    }
    let _ = send(parts, &mut chunk).await;
    Ok(())
}

/// Sends the points gathered so far, if any.
async fn send(
    parts: &mpsc::Sender<Result<HistoryPart>>,
    chunk: &mut Vec<Metric>,
) -> std::result::Result<(), Gone> {
    if chunk.is_empty() {
        return Ok(());
    }
    let points = std::mem::replace(chunk, Vec::with_capacity(HISTORY_CHUNK));
    parts
        .send(Ok(HistoryPart::Points(points)))
        .await
        .map_err(|_| Gone)
}
