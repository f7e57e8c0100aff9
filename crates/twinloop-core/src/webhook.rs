//! Signed webhooks: the one contract for everything twinloop POSTs to a user's URL (registry
//! events, monitor alerts). The JSON body is signed with HMAC-SHA256 under [`SIGNATURE_HEADER`],
//! tried at most [`ATTEMPTS`] times with doubling backoff, each attempt within [`TIMEOUT`] and
//! each reported to the caller's [`DeliveryLog`]. The HTTP itself is a [`WebhookTransport`] that
//! the server provides, so that domain crates send webhooks without speaking HTTP.

use std::time::Duration;

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// `sha256=<hex HMAC-SHA256 of the body, keyed by the secret>`.
pub const SIGNATURE_HEADER: &str = "x-twinloop-signature-256";
/// Attempts per delivery: a receiver that never answers costs this many, then one warning.
pub const ATTEMPTS: i64 = 5;
/// The wait before the second attempt; each later wait doubles it.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// How long one attempt may take, connection included; transports must apply it.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// The value of [`SIGNATURE_HEADER`] for `body` under `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        // HMAC takes keys of any length, so this is never taken; were it, receivers would
        // refuse the empty signature rather than trust an unsigned body.
        return String::new();
    };
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

/// The wait before attempt `attempt` (1 is the first, which does not wait).
pub fn backoff(attempt: i64) -> Duration {
    if attempt <= 1 {
        return Duration::ZERO;
    }
    let doublings = u32::try_from(attempt - 2).unwrap_or(u32::MAX).min(16);
    FIRST_BACKOFF.saturating_mul(1 << doublings)
}

/// Why a POST got no answer (refused, timed out, …): the transport's own error, whose text is
/// what the delivery log records.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct NoAnswer(#[from] pub Box<dyn std::error::Error + Send + Sync>);

/// Where a webhook's POST goes over the wire.
#[async_trait]
pub trait WebhookTransport: Send + Sync {
    /// POSTs `body` to `url` with `headers`, giving up after [`TIMEOUT`]: the answer's status
    /// code, or why there was none.
    async fn post(
        &self,
        url: &str,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> Result<u16, NoAnswer>;
}

/// One attempt, as every delivery log records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// 1 for the first.
    pub attempt: i64,
    /// The receiver's answer, if one came.
    pub status_code: Option<i64>,
    /// Why the attempt failed (no answer, or a non-2xx one); `None` when delivered.
    pub error: Option<String>,
    pub delivered: bool,
}

/// Where the caller keeps its attempts, and whether it still wants the delivery.
#[async_trait]
pub trait DeliveryLog: Send + Sync {
    async fn record(&self, attempt: &Attempt);

    /// Asked after each wait, before the next attempt; `false` stops the delivery (for
    /// instance, its subscription was removed during the wait).
    async fn still_wanted(&self) -> bool {
        true
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// Every attempt failed; the caller warns once, with the last error.
    Failed {
        last_error: String,
    },
    /// The log stopped wanting it between attempts.
    Withdrawn,
}

/// POSTs the JSON `body` to `url`, signed with `secret`, with `headers` besides the content type
/// and the signature; retries errors and non-2xx answers per [`backoff`], at most [`ATTEMPTS`]
/// times, recording every attempt in `log`.
pub async fn deliver(
    transport: &dyn WebhookTransport,
    log: &dyn DeliveryLog,
    url: &str,
    secret: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> Outcome {
    let mut all_headers = vec![
        ("content-type", "application/json".to_string()),
        (SIGNATURE_HEADER, signature(secret, body)),
    ];
    all_headers.extend(headers.iter().cloned());
    let mut last_error = String::new();
    for attempt in 1..=ATTEMPTS {
        if attempt > 1 {
            tokio::time::sleep(backoff(attempt)).await;
            if !log.still_wanted().await {
                return Outcome::Withdrawn;
            }
        }
        let (status_code, error) = match transport.post(url, &all_headers, body).await {
            Ok(status) if (200..300).contains(&status) => (Some(i64::from(status)), None),
            Ok(status) => (Some(i64::from(status)), Some(format!("HTTP {status}"))),
            Err(e) => (None, Some(e.to_string())),
        };
        let delivered = error.is_none();
        if let Some(e) = &error {
            last_error.clone_from(e);
        }
        log.record(&Attempt {
            attempt,
            status_code,
            error,
            delivered,
        })
        .await;
        if delivered {
            return Outcome::Delivered;
        }
    }
    Outcome::Failed { last_error }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[test]
    fn signature_matches_a_known_hmac() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn backoff_starts_at_the_first_wait_and_doubles() {
        let waits: Vec<u64> = (1..=ATTEMPTS)
            .map(|a| backoff(a).as_millis() as u64)
            .collect();
        assert_eq!(waits, [0, 500, 1000, 2000, 4000]);
        assert!(backoff(i64::MAX) >= backoff(ATTEMPTS));
    }

    /// Answers with `statuses` in turn (`None`: no answer), remembering what it was sent.
    struct Scripted {
        statuses: Mutex<Vec<Option<u16>>>,
        sent: Mutex<Vec<Vec<(String, String)>>>,
    }

    impl Scripted {
        fn new(statuses: &[Option<u16>]) -> Scripted {
            Scripted {
                statuses: Mutex::new(statuses.iter().rev().copied().collect()),
                sent: Mutex::default(),
            }
        }
    }

    #[async_trait]
    impl WebhookTransport for Scripted {
        async fn post(
            &self,
            _url: &str,
            headers: &[(&str, String)],
            _body: &[u8],
        ) -> Result<u16, NoAnswer> {
            self.sent.lock().unwrap().push(
                headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect(),
            );
            self.statuses
                .lock()
                .unwrap()
                .pop()
                .flatten()
                .ok_or_else(|| NoAnswer::from(Box::from("connection refused")))
        }
    }

    #[derive(Default)]
    struct Recorded {
        attempts: Mutex<Vec<Attempt>>,
        wanted_for: Option<usize>,
    }

    #[async_trait]
    impl DeliveryLog for Recorded {
        async fn record(&self, attempt: &Attempt) {
            self.attempts.lock().unwrap().push(attempt.clone());
        }

        async fn still_wanted(&self) -> bool {
            self.wanted_for
                .is_none_or(|n| self.attempts.lock().unwrap().len() < n)
        }
    }

    fn summary(log: &Recorded) -> Vec<(i64, Option<i64>, bool)> {
        log.attempts
            .lock()
            .unwrap()
            .iter()
            .map(|a| (a.attempt, a.status_code, a.delivered))
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_is_retried_until_delivered_and_every_attempt_is_logged() {
        let transport = Scripted::new(&[None, Some(503), Some(204)]);
        let log = Recorded::default();
        let extra = [("x-twinloop-event", "ALIAS_SET".to_string())];
        let outcome = deliver(&transport, &log, "http://hook", "secret", &extra, b"{}").await;
        assert_eq!(outcome, Outcome::Delivered);
        assert_eq!(
            summary(&log),
            [
                (1, None, false),
                (2, Some(503), false),
                (3, Some(204), true)
            ]
        );
        let attempts = log.attempts.lock().unwrap();
        assert_eq!(attempts[0].error.as_deref(), Some("connection refused"));
        assert_eq!(attempts[1].error.as_deref(), Some("HTTP 503"));
        assert_eq!(attempts[2].error, None);
        let sent = transport.sent.lock().unwrap();
        assert!(sent.iter().all(|headers| {
            headers.contains(&(SIGNATURE_HEADER.into(), signature("secret", b"{}")))
                && headers.contains(&("x-twinloop-event".into(), "ALIAS_SET".into()))
        }));
    }

    #[tokio::test(start_paused = true)]
    async fn attempts_are_bounded_and_the_last_error_is_kept() {
        let transport = Scripted::new(&[Some(500); 10]);
        let log = Recorded::default();
        let outcome = deliver(&transport, &log, "http://hook", "secret", &[], b"{}").await;
        assert_eq!(
            outcome,
            Outcome::Failed {
                last_error: "HTTP 500".into()
            }
        );
        assert_eq!(summary(&log).len(), ATTEMPTS as usize);
    }

    #[tokio::test(start_paused = true)]
    async fn a_delivery_no_longer_wanted_gets_no_further_attempt() {
        let transport = Scripted::new(&[Some(500); 10]);
        let log = Recorded {
            wanted_for: Some(2),
            ..Recorded::default()
        };
        let outcome = deliver(&transport, &log, "http://hook", "secret", &[], b"{}").await;
        assert_eq!(outcome, Outcome::Withdrawn);
        assert_eq!(summary(&log).len(), 2);
    }
}
