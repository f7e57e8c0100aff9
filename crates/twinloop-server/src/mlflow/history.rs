//! `GET /metrics/get-history`, written as it is read: the store hands over chunks of points and
//! each is encoded and sent before the next is asked for, so a million-step history costs the
//! server a few chunks of memory rather than the whole reply. The bytes are a listing reply's:
//! `{"metrics": [...], "next_page_token": "..."}`, each left out when empty.

use std::io;

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures::stream;
use serde::{Serialize, Serializer};
use twinloop_core::tracking::Metric;
use twinloop_meta::history::{HistoryPart, MetricHistory};

use super::json::ToWire;
use crate::error::ApiResult;

/// The reply to a history request. Its first part is awaited before answering, so a failure
/// before any byte is sent is an ordinary error reply; a later one cuts the body short, which
/// the client sees as a broken response rather than a shorter history.
pub async fn reply(mut history: MetricHistory) -> ApiResult<Response> {
    let first = history.next().await.transpose()?;
    let encoder = Encoder {
        history,
        pending: first,
        opened: false,
        in_list: false,
        done: false,
    };
    let body = stream::unfold(encoder, Encoder::next_bytes);
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(body),
    )
        .into_response())
}

/// Writes the listing object piece by piece: `{` with the first field, the list's elements,
/// then the closing brackets once the history has ended.
struct Encoder {
    history: MetricHistory,
    pending: Option<HistoryPart>,
    /// `{` is written.
    opened: bool,
    /// `"metrics":[` is written and not yet closed.
    in_list: bool,
    done: bool,
}

impl Encoder {
    async fn next_bytes(mut self) -> Option<(io::Result<Bytes>, Encoder)> {
        if self.done {
            return None;
        }
        let part = match self.pending.take() {
            Some(part) => Some(Ok(part)),
            None => self.history.next().await,
        };
        let mut out = Vec::new();
        let written = match part {
            Some(Ok(HistoryPart::Points(points))) => self.points(&mut out, &points),
            Some(Ok(HistoryPart::NextPageToken(token))) => self.token(&mut out, &token),
            Some(Err(e)) => {
                tracing::error!(error = %e, "metric history failed after its reply began");
                Err(io::Error::other(e))
            }
            None => {
                self.close(&mut out);
                self.done = true;
                Ok(())
            }
        };
        match written {
            Ok(()) => Some((Ok(Bytes::from(out)), self)),
            Err(e) => {
                self.done = true;
                Some((Err(e), self))
            }
        }
    }

    fn points(&mut self, out: &mut Vec<u8>, points: &[Metric]) -> io::Result<()> {
        for point in points {
            if self.in_list {
                out.push(b',');
            } else {
                self.open(out);
                out.extend_from_slice(b"\"metrics\":[");
                self.in_list = true;
            }
            serde_json::to_writer(&mut *out, &Wire(point))?;
        }
        Ok(())
    }

    fn token(&mut self, out: &mut Vec<u8>, token: &str) -> io::Result<()> {
        if self.in_list {
            out.extend_from_slice(b"],");
            self.in_list = false;
        } else {
            self.open(out);
        }
        out.extend_from_slice(b"\"next_page_token\":");
        serde_json::to_writer(&mut *out, token)?;
        Ok(())
    }

    fn open(&mut self, out: &mut Vec<u8>) {
        if !self.opened {
            out.push(b'{');
            self.opened = true;
        }
    }

    fn close(&mut self, out: &mut Vec<u8>) {
        self.open(out);
        if self.in_list {
            out.push(b']');
        }
        out.push(b'}');
    }
}

/// A metric in MLflow's wire shape.
struct Wire<'a>(&'a Metric);

impl Serialize for Wire<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.wire(s)
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;
    use tokio::sync::mpsc;
    use twinloop_core::Error;
    use twinloop_core::tracking::Page;

    use super::*;
    use crate::mlflow::json::listing;

    /// The body streamed for `parts`, and whether it ended with an error.
    async fn body_of(parts: Vec<twinloop_core::Result<HistoryPart>>) -> (String, bool) {
        let (tx, rx) = mpsc::channel(parts.len().max(1));
        for part in parts {
            tx.send(part).await.unwrap();
        }
        drop(tx);
        let Ok(response) = reply(MetricHistory::new(rx)).await else {
            return (String::new(), true);
        };
        let mut stream = response.into_body().into_data_stream();
        let mut body = Vec::new();
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(bytes) => body.extend_from_slice(&bytes),
                Err(_) => return (String::from_utf8(body).unwrap(), true),
            }
        }
        (String::from_utf8(body).unwrap(), false)
    }

    fn points(steps: std::ops::Range<i64>) -> Vec<Metric> {
        steps
            .map(|s| Metric::new("m", if s == 2 { f64::NAN } else { s as f64 }, 10 + s, s))
            .collect()
    }

    /// What the listing reply of the whole page would have been.
    fn listed(items: Vec<Metric>, next_page_token: Option<&str>) -> String {
        let page = Page {
            items,
            next_page_token: next_page_token.map(String::from),
        };
        serde_json::to_string(&listing("metrics", page).0).unwrap()
    }

    #[tokio::test]
    async fn the_streamed_body_is_the_listing_reply_byte_for_byte() {
        let parts = vec![
            Ok(HistoryPart::Points(points(0..3))),
            Ok(HistoryPart::Points(points(3..5))),
            Ok(HistoryPart::NextPageToken("tok".into())),
        ];
        assert_eq!(
            body_of(parts).await,
            (listed(points(0..5), Some("tok")), false)
        );
        let parts = vec![Ok(HistoryPart::Points(points(0..1)))];
        assert_eq!(body_of(parts).await, (listed(points(0..1), None), false));
        assert_eq!(body_of(vec![]).await, ("{}".to_string(), false));
    }

    #[tokio::test]
    async fn a_failure_before_the_first_byte_is_an_error_reply_and_later_one_cuts_the_body() {
        assert!(body_of(vec![Err(Error::internal("disk"))]).await.1);
        let (body, failed) = body_of(vec![
            Ok(HistoryPart::Points(points(0..2))),
            Err(Error::internal("disk")),
        ])
        .await;
        assert!(failed);
        assert!(
            serde_json::from_str::<serde_json::Value>(&body).is_err(),
            "{body}"
        );
    }
}
