//! Who a request comes from: `Authorization: Basic user:password`, `Basic user:<token>` or
//! `Bearer <token>`; a cache of verified passwords so that a stream of log-batch requests does
//! not pay Argon2 on each; and a limit on failed logins per user and address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use twinloop_core::auth::{TOKEN_PREFIX, TokenScope, User, token_digest, verify_password};
use twinloop_core::{Error, Result};
use twinloop_meta::AuthStore;

/// How long a verified password is trusted without hashing it again. A password changed or a
/// user deleted through this server drops its entries at once; through another replica, within
/// this time.
const CACHE_TTL: Duration = Duration::from_secs(60);
const CACHE_MAX: usize = 10_000;
/// Failed logins allowed per (user, address) in [`FAILURE_WINDOW`] before further attempts are
/// refused unchecked until the window passes.
const MAX_FAILURES: u32 = 10;
const FAILURE_WINDOW: Duration = Duration::from_secs(300);

/// The signed-in user of a request, and the scope of the token it came with, if any.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: User,
    pub scope: Option<TokenScope>,
}

/// What the `Authorization` header says.
#[derive(Debug, PartialEq, Eq)]
pub enum Presented {
    Password {
        username: String,
        password: String,
    },
    Token {
        username: Option<String>,
        token: String,
    },
}

/// Reads an `Authorization` header value; `None` when it is absent or not one we read.
pub fn presented(header: Option<&str>) -> Option<Presented> {
    let header = header?.trim();
    let (scheme, value) = header.split_once(' ')?;
    let value = value.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(Presented::Token {
            username: None,
            token: value.to_owned(),
        });
    }
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(value)
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (username, password) = decoded.split_once(':')?;
    Some(if password.starts_with(TOKEN_PREFIX) {
        Presented::Token {
            username: Some(username.to_owned()),
            token: password.to_owned(),
        }
    } else {
        Presented::Password {
            username: username.to_owned(),
            password: password.to_owned(),
        }
    })
}

/// Verified (user, password) pairs, keyed by an HMAC of both under a key made at start, so the
/// cache holds no password and a memory dump gives nothing to replay elsewhere (MLflow keys its
/// cache the same way).
pub struct CredentialCache {
    key: [u8; 32],
    entries: Mutex<HashMap<[u8; 32], (User, Instant)>>,
}

impl CredentialCache {
    fn new() -> CredentialCache {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        CredentialCache {
            key,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn tag(&self, username: &str, password: &str) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("any key length");
        mac.update(username.as_bytes());
        mac.update(&[0]);
        mac.update(password.as_bytes());
        mac.finalize().into_bytes().into()
    }

    fn get(&self, tag: &[u8; 32]) -> Option<User> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(tag)
            .filter(|(_, expires)| *expires > Instant::now())
            .map(|(user, _)| user.clone())
    }

    fn put(&self, tag: [u8; 32], user: User) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= CACHE_MAX {
            let now = Instant::now();
            entries.retain(|_, (_, expires)| *expires > now);
            if entries.len() >= CACHE_MAX {
                entries.clear();
            }
        }
        entries.insert(tag, (user, Instant::now() + CACHE_TTL));
    }

    /// Forgets every verified password of `username` (changed, demoted or deleted).
    pub fn forget(&self, username: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.retain(|_, (user, _)| user.username != username);
    }
}

/// Whose logins are counted: a username from one address.
type LoginKey = (String, Option<IpAddr>);

/// Failed logins per (username, address): how many, since when.
struct FailedLogins {
    failures: Mutex<HashMap<LoginKey, (u32, Instant)>>,
}

impl FailedLogins {
    fn locked(&self, key: &LoginKey) -> bool {
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures
            .get(key)
            .is_some_and(|(n, since)| *n >= MAX_FAILURES && since.elapsed() < FAILURE_WINDOW)
    }

    fn failed(&self, key: LoginKey) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if failures.len() >= CACHE_MAX {
            failures.retain(|_, (_, since)| since.elapsed() < FAILURE_WINDOW);
        }
        let entry = failures.entry(key).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= FAILURE_WINDOW {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
    }

    fn succeeded(&self, key: &LoginKey) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures.remove(key);
    }
}

/// Checks credentials against a store.
pub struct Authenticator {
    pub cache: CredentialCache,
    failures: FailedLogins,
}

impl Default for Authenticator {
    fn default() -> Self {
        Authenticator {
            cache: CredentialCache::new(),
            failures: FailedLogins {
                failures: Mutex::new(HashMap::new()),
            },
        }
    }
}

impl Authenticator {
    /// The caller, `Ok(None)` for missing or wrong credentials, `Err` when the store fails.
    pub async fn authenticate(
        &self,
        store: &dyn AuthStore,
        presented: Presented,
        address: Option<IpAddr>,
    ) -> Result<Option<Caller>> {
        match presented {
            Presented::Token { username, token } => {
                let Some((token, user)) = store.token_by_digest(&token_digest(&token)).await?
                else {
                    return Ok(None);
                };
                if username.is_some_and(|name| name != user.username) {
                    return Ok(None);
                }
                Ok(Some(Caller {
                    user,
                    scope: Some(token.scope),
                }))
            }
            Presented::Password { username, password } => {
                let tag = self.cache.tag(&username, &password);
                if let Some(user) = self.cache.get(&tag) {
                    return Ok(Some(Caller { user, scope: None }));
                }
                let key = (username, address);
                if self.failures.locked(&key) {
                    tracing::warn!(user = %key.0, address = ?key.1, "login refused: too many failures");
                    return Ok(None);
                }
                let verified = match store.user_credentials(&key.0).await? {
                    Some(credentials) => {
                        let hash = credentials.password_hash;
                        // Argon2 takes tens of milliseconds of CPU: off the async workers.
                        let ok =
                            tokio::task::spawn_blocking(move || verify_password(&password, &hash))
                                .await
                                .map_err(|e| Error::internal_from("password check failed", e))?;
                        ok.then_some(credentials.user)
                    }
                    None => None,
                };
                match verified {
                    Some(user) => {
                        self.failures.succeeded(&key);
                        self.cache.put(tag, user.clone());
                        Ok(Some(Caller { user, scope: None }))
                    }
                    None => {
                        self.failures.failed(key);
                        Ok(None)
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(s: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(s)
        )
    }

    #[test]
    fn headers_are_read_as_passwords_or_tokens() {
        assert_eq!(
            presented(Some(&basic("alice:pw:with:colons"))),
            Some(Presented::Password {
                username: "alice".into(),
                password: "pw:with:colons".into()
            })
        );
        assert_eq!(
            presented(Some(&basic("alice:tlp_abc"))),
            Some(Presented::Token {
                username: Some("alice".into()),
                token: "tlp_abc".into()
            })
        );
        assert_eq!(
            presented(Some("bearer tlp_xyz")),
            Some(Presented::Token {
                username: None,
                token: "tlp_xyz".into()
            })
        );
        assert_eq!(presented(None), None);
        assert_eq!(presented(Some("Basic !!!")), None);
        assert_eq!(presented(Some(&basic("no-colon"))), None);
        assert_eq!(presented(Some("Digest x")), None);
    }

    #[test]
    fn the_cache_forgets_a_user_and_keys_by_password() {
        let cache = CredentialCache::new();
        let user = User {
            id: 1,
            username: "alice".into(),
            is_admin: false,
        };
        let tag = cache.tag("alice", "pw");
        assert_ne!(tag, cache.tag("alice", "pw2"));
        assert_ne!(cache.tag("alice", "bpw"), cache.tag("aliceb", "pw"));
        cache.put(tag, user.clone());
        assert_eq!(cache.get(&tag), Some(user));
        cache.forget("alice");
        assert_eq!(cache.get(&tag), None);
    }

    #[test]
    fn failures_lock_one_user_at_one_address() {
        let limits = FailedLogins {
            failures: Mutex::new(HashMap::new()),
        };
        let here = ("alice".to_string(), Some(IpAddr::from([10, 0, 0, 1])));
        let there = ("alice".to_string(), Some(IpAddr::from([10, 0, 0, 2])));
        for _ in 0..MAX_FAILURES {
            assert!(!limits.locked(&here));
            limits.failed(here.clone());
        }
        assert!(limits.locked(&here));
        assert!(!limits.locked(&there));
        limits.succeeded(&here);
        assert!(!limits.locked(&here));
    }
}
