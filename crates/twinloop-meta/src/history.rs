//! A metric's history read as it is sent, so that serving a million points never holds them all:
//! [`MetricHistory`] hands out chunks of points while the store reads the next ones.

use tokio::sync::mpsc;
use twinloop_core::Result;
use twinloop_core::tracking::{Metric, Page};

/// The most points in one [`HistoryPart::Points`].
pub const HISTORY_CHUNK: usize = 1024;

/// What a [`MetricHistory`] yields: points in history order, then, when `max_results` cut the
/// history short, the token of the next page.
#[derive(Debug, Clone, PartialEq)]
pub enum HistoryPart {
    Points(Vec<Metric>),
    NextPageToken(String),
}

/// The parts of one page of a metric's history, read ahead by at most a few chunks. Dropping it
/// stops the read.
pub struct MetricHistory {
    parts: mpsc::Receiver<Result<HistoryPart>>,
}

impl MetricHistory {
    /// A history fed through `parts`, for a store implementation to hand out.
    pub fn new(parts: mpsc::Receiver<Result<HistoryPart>>) -> MetricHistory {
        MetricHistory { parts }
    }

    /// The next part; `None` once the page is complete. An error ends the history.
    pub async fn next(&mut self) -> Option<Result<HistoryPart>> {
        self.parts.recv().await
    }

    /// The whole page in memory, for callers that want it at once.
    pub async fn collect(mut self) -> Result<Page<Metric>> {
        let mut page = Page {
            items: Vec::new(),
            next_page_token: None,
        };
        while let Some(part) = self.next().await {
            match part? {
                HistoryPart::Points(points) => page.items.extend(points),
                HistoryPart::NextPageToken(token) => page.next_page_token = Some(token),
            }
        }
        Ok(page)
    }
}
