//! Signed webhooks: the one contract for everything twinloop POSTs to a user's URL (registry
//! events, monitor alerts). The JSON body is signed with HMAC-SHA256 under [`SIGNATURE_HEADER`],
//! tried at most [`ATTEMPTS`] times with doubling backoff, each attempt within [`TIMEOUT`] and
//! each reported to the caller's [`DeliveryLog`]. The HTTP itself is a [`WebhookTransport`] that
//! the server provides, so that domain crates send webhooks without speaking HTTP.
//!
//! Webhooks made through MLflow's API are signed by MLflow's scheme instead ([`mlflow_signature`],
//! over the delivery id, the timestamp and the body), so that MLflow's documented verification
//! recipe accepts them; they go through the same [`deliver_signed`] retries and delivery log.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
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

/// MLflow's signature header: `v1,<base64 HMAC-SHA256 of "{delivery id}.{timestamp}.{body}">`.
pub const MLFLOW_SIGNATURE_HEADER: &str = "X-MLflow-Signature";
/// The delivery's id (a UUID), part of what MLflow's signature covers.
pub const MLFLOW_DELIVERY_ID_HEADER: &str = "X-MLflow-Delivery-Id";
/// Unix seconds when the delivery was signed, part of what MLflow's signature covers.
pub const MLFLOW_TIMESTAMP_HEADER: &str = "X-MLflow-Timestamp";

/// The value of [`MLFLOW_SIGNATURE_HEADER`] for `body` sent as delivery `delivery_id` at
/// `timestamp` (Unix seconds, as sent in [`MLFLOW_TIMESTAMP_HEADER`]).
pub fn mlflow_signature(secret: &str, delivery_id: &str, timestamp: &str, body: &[u8]) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(delivery_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// The headers of one MLflow-style delivery of `body`: content type, delivery id, timestamp,
/// and the signature when there is a secret (MLflow sends an unsecured webhook unsigned).
pub fn mlflow_headers(
    secret: Option<&str>,
    delivery_id: &str,
    unix_seconds: i64,
    body: &[u8],
) -> Vec<(&'static str, String)> {
    let timestamp = unix_seconds.to_string();
    let mut headers = vec![
        ("content-type", "application/json".to_string()),
        (MLFLOW_DELIVERY_ID_HEADER, delivery_id.to_string()),
        (MLFLOW_TIMESTAMP_HEADER, timestamp.clone()),
    ];
    if let Some(secret) = secret.filter(|s| !s.is_empty()) {
        headers.push((
            MLFLOW_SIGNATURE_HEADER,
            mlflow_signature(secret, delivery_id, &timestamp, body),
        ));
    }
    headers
}

/// Whether a webhook may be sent to `ip` when private targets are not allowed: not loopback,
/// private, link-local (cloud metadata), shared, documentation, benchmarking, reserved,
/// multicast or unspecified, also when wrapped in an IPv6 transition address (IPv4-mapped,
/// 6to4, NAT64), as MLflow's `_is_public_ip` judges.
pub fn is_public_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let s = v6.segments();
            let embedded = |hi: u16, lo: u16| {
                Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8)
            };
            if s[0] == 0x2002 {
                return is_public_v4(embedded(s[1], s[2]));
            }
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                return is_public_v4(embedded(s[6], s[7]));
            }
            let non_global = v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                || s[..6] == [0; 6] // IPv4-compatible (deprecated)
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || (s[0] == 0x2001 && s[1] < 0x0200) // IETF protocol assignments
                || s[..4] == [0x100, 0, 0, 0]; // discard-only
            !non_global
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let non_global = a == 0
        || a == 10
        || a == 127
        || a >= 224 // multicast and reserved, broadcast included
        || (a == 100 && (64..128).contains(&b)) // shared address space
        || (a == 169 && b == 254)
        || (a == 172 && (16..32).contains(&b))
        || (a == 192 && b == 168)
        || (a == 192 && b == 0 && c == 0)
        || (a == 192 && b == 0 && c == 2)
        || (a == 198 && (18..20).contains(&b))
        || (a == 198 && b == 51 && c == 100)
        || (a == 203 && b == 0 && c == 113);
    !non_global
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

    /// Like [`WebhookTransport::post`], also returning the answer's body (at most a few
    /// kilobytes are worth keeping); a transport that cannot read it answers an empty one.
    async fn post_with_reply(
        &self,
        url: &str,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> Result<(u16, String), NoAnswer> {
        Ok((self.post(url, headers, body).await?, String::new()))
    }
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
    deliver_signed(transport, log, url, &all_headers, body).await
}

/// [`deliver`] with every header given, the signature among them: how a webhook signed by
/// another scheme ([`mlflow_headers`]) gets the same retries and delivery log.
pub async fn deliver_signed(
    transport: &dyn WebhookTransport,
    log: &dyn DeliveryLog,
    url: &str,
    all_headers: &[(&str, String)],
    body: &[u8],
) -> Outcome {
    let mut last_error = String::new();
    for attempt in 1..=ATTEMPTS {
        if attempt > 1 {
            tokio::time::sleep(backoff(attempt)).await;
            if !log.still_wanted().await {
                return Outcome::Withdrawn;
            }
        }
        let (status_code, error) = match transport.post(url, all_headers, body).await {
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
    fn mlflow_signature_is_what_mlflows_recipe_computes() {
        // base64(hmac.new(b"s3cret", b"d-1.1700000000.{}", sha256).digest()), by Python.
        assert_eq!(
            mlflow_signature("s3cret", "d-1", "1700000000", b"{}"),
            "v1,ffAlUwnIkZyROfdeDakYdx/QELuJ1gjEmzbfJrcVam0="
        );
        let headers = mlflow_headers(Some("s3cret"), "d-1", 1_700_000_000, b"{}");
        assert!(headers.contains(&(
            MLFLOW_SIGNATURE_HEADER,
            mlflow_signature("s3cret", "d-1", "1700000000", b"{}")
        )));
        assert!(headers.contains(&(MLFLOW_TIMESTAMP_HEADER, "1700000000".into())));
        assert!(headers.contains(&(MLFLOW_DELIVERY_ID_HEADER, "d-1".into())));
        let unsigned = mlflow_headers(None, "d-1", 1_700_000_000, b"{}");
        assert!(unsigned.iter().all(|(k, _)| *k != MLFLOW_SIGNATURE_HEADER));
    }

    #[test]
    fn only_public_addresses_are_public() {
        let public = [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ];
        let private = [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "2002:7f00:1::",
            "64:ff9b::a00:1",
        ];
        for ip in public {
            assert!(is_public_ip(ip.parse().unwrap()), "{ip} is public");
        }
        for ip in private {
            assert!(!is_public_ip(ip.parse().unwrap()), "{ip} is not public");
        }
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
