//! [`LeaseKeeper`]: holds a named lease for this process while it can, so that among replicas on
//! one database exactly one runs the loop the lease names.
//!
//! The keeper tries to take or renew the lease every [`RENEW`]; the lease lasts [`TTL`], so a
//! holder that dies (or loses the database) is replaced within `TTL + RENEW`. Locally the lease
//! counts as lost as soon as one attempt fails, two attempts before it can expire, so a replica
//! stops acting before another may start; the token checked when acting
//! ([`crate::LeaseStore::advance_lease`]) covers a replica paused past that.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::store::LeaseStore;

/// How long a lease lasts without renewal.
pub const TTL: Duration = Duration::from_secs(6);
/// How often the holder renews it, and others try to take it.
pub const RENEW: Duration = Duration::from_secs(2);

/// A new holder's name: unique per keeper, so a restarted replica (or a second server in one
/// process) is a new holder whose token is new.
fn new_holder() -> String {
    let uuid = twinloop_core::ids::new_uuid().replace('-', "");
    format!("pid{}-{}", std::process::id(), &uuid[..12])
}

pub struct LeaseKeeper {
    name: String,
    holder: String,
    store: Arc<dyn LeaseStore>,
    token: watch::Receiver<Option<i64>>,
    task: std::sync::Mutex<Option<JoinHandle<()>>>,
    released: AtomicBool,
}

impl LeaseKeeper {
    /// Starts keeping `name`; the first attempt is made at once.
    pub fn start(store: Arc<dyn LeaseStore>, name: &str) -> Arc<LeaseKeeper> {
        let (tx, rx) = watch::channel(None);
        let lease = name.to_string();
        let holder = new_holder();
        let (keeping, me) = (store.clone(), holder.clone());
        let task = tokio::spawn(async move {
            let (store, holder) = (keeping, me);
            let ttl = TTL.as_millis() as i64;
            // Taking a lease nobody held is every process's start (a local `twinloop run`
            // too): told at debug level; a lease lost or taken over is an operator's news.
            let mut held_before = false;
            loop {
                let attempt = store.acquire_lease(&lease, &holder, ttl);
                let token = match tokio::time::timeout(RENEW, attempt).await {
                    Ok(Ok(token)) => token,
                    Ok(Err(e)) => {
                        tracing::warn!(lease = %lease, error = %e, "cannot renew the lease");
                        None
                    }
                    Err(_) => None,
                };
                if *tx.borrow() != token {
                    if held_before {
                        tracing::info!(lease = %lease, %holder, ?token, "lease changed");
                    } else {
                        tracing::debug!(lease = %lease, %holder, ?token, "lease taken");
                    }
                    held_before |= token.is_some();
                }
                tx.send_replace(token);
                tokio::time::sleep(RENEW).await;
            }
        });
        Arc::new(LeaseKeeper {
            name: name.to_string(),
            holder,
            store,
            token: rx,
            task: std::sync::Mutex::new(Some(task)),
            released: AtomicBool::new(false),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The token while this process holds the lease.
    pub fn token(&self) -> Option<i64> {
        if self.released.load(Ordering::Acquire) {
            return None;
        }
        *self.token.borrow()
    }

    /// Waits until this process holds the lease, and answers its token.
    pub async fn acquired(&self) -> i64 {
        let mut rx = self.token.clone();
        loop {
            if let Some(token) = *rx.borrow_and_update() {
                return token;
            }
            if rx.changed().await.is_err() {
                // The keeper is gone: wait forever, as nothing will be held again.
                std::future::pending::<()>().await;
            }
        }
    }

    /// Stops renewing and gives the lease up, so that another replica takes it over at once
    /// instead of after [`TTL`]: for a graceful stop, once nothing acts under it any more.
    pub async fn release(&self) {
        self.released.store(true, Ordering::Release);
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(task) = task {
            task.abort();
            // An attempt in flight could otherwise renew the lease after it was given up.
            let _ = task.await;
        }
        if let Err(e) = self.store.release_lease(&self.name, &self.holder).await {
            tracing::warn!(lease = %self.name, error = %e, "cannot release the lease");
        }
    }
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        if let Some(task) = self.task.lock().unwrap_or_else(|p| p.into_inner()).take() {
            task.abort();
        }
    }
}
