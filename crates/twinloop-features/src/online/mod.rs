//! The online store: the latest feature row per entity key and view, behind one trait with two
//! implementations, [`EmbeddedStore`] (redb files) and [`RedisStore`] (one Redis server or a
//! Redis Cluster).
//!
//! Every write is conditional: a row replaces the stored one only when its (event time,
//! created time) is not older, so materializing windows in any order, or re-running one, ends
//! with the newest row. Stored rows start with a fixed-width, order-preserving text header of
//! both times, which lets Redis compare them in a script without decoding the values.

mod embedded;
mod reconnect;
mod redis_store;

use std::sync::Arc;

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use twinloop_core::{Error, Result};

pub use embedded::EmbeddedStore;
pub use redis_store::{RedisStore, row_key};

use crate::repo::{FeatureRepo, FeatureView, OnlineStoreConfig};
use crate::value::Value;

/// One entity's row of one view, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct OnlineRow {
    pub event_ts: i64,
    pub created_ts: i64,
    /// In the view's feature order.
    pub values: Vec<Value>,
}

const HEADER: usize = 32;

impl OnlineRow {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER + 2 + 9 * self.values.len());
        push_hex(&mut out, ordered(self.event_ts));
        push_hex(&mut out, ordered(self.created_ts));
        postcard::to_io(&self.values, &mut out).expect("writing to a Vec cannot fail");
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<OnlineRow> {
        let bad = || Error::internal("an online store row is corrupt");
        if bytes.len() < HEADER {
            return Err(bad());
        }
        let header = std::str::from_utf8(&bytes[..HEADER]).map_err(|_| bad())?;
        let time = |s: &str| {
            u64::from_str_radix(s, 16)
                .map(|v| (v ^ SIGN) as i64)
                .map_err(|_| bad())
        };
        Ok(OnlineRow {
            event_ts: time(&header[..16])?,
            created_ts: time(&header[16..])?,
            values: postcard::from_bytes(&bytes[HEADER..]).map_err(|_| bad())?,
        })
    }
}

const SIGN: u64 = 1 << 63;

/// 16 lower-case hex digits, most significant first (materialization encodes millions).
fn push_hex(out: &mut Vec<u8>, value: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for shift in (0..16).rev() {
        out.push(DIGITS[((value >> (shift * 4)) & 0xf) as usize]);
    }
}

/// Flips the sign bit so that unsigned (and textual hex) order is signed order.
fn ordered(t: i64) -> u64 {
    (t as u64) ^ SIGN
}

/// Whether a new encoded row may replace `old`: its times are not older.
pub fn newer_or_same(new: &[u8], old: &[u8]) -> bool {
    new.get(..HEADER) >= old.get(..HEADER)
}

/// A row to write: the entity key and the encoded [`OnlineRow`].
#[derive(Debug, Clone)]
pub struct OnlineWrite {
    pub key: Vec<u8>,
    pub row: Vec<u8>,
}

#[async_trait]
pub trait OnlineStore: Send + Sync {
    /// Writes the rows of `table` that are not older than what is stored, as one atomic batch;
    /// returns how many were written.
    async fn write(&self, table: &str, rows: Vec<OnlineWrite>) -> Result<usize>;

    /// The stored rows for `keys`, in order; `None` where a key has none.
    async fn read(&self, table: &str, keys: &[Vec<u8>]) -> Result<Vec<Option<OnlineRow>>>;

    /// Number of entity rows stored for `table`.
    async fn count(&self, table: &str) -> Result<u64>;
}

/// The store's table for a view. The name carries a fingerprint of the feature list so that
/// rows written for another definition of the view are never read as this one's.
pub fn table_name(project: &str, view: &FeatureView) -> String {
    let mut hash = Sha256::new();
    for f in &view.features {
        hash.update(f.name.as_bytes());
        hash.update([0]);
        hash.update(f.dtype.name().as_bytes());
        hash.update([0]);
    }
    let digest = hash.finalize();
    let short: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    format!("{project}/{}/{short}", view.name)
}

/// Opens the repository's online store.
pub async fn open(repo: &FeatureRepo) -> Result<Arc<dyn OnlineStore>> {
    match &repo.config.online_store {
        OnlineStoreConfig::Embedded { path } => {
            let dir = match path {
                Some(p) if std::path::Path::new(p).is_absolute() => p.into(),
                Some(p) => repo.root.join(p),
                None => repo.state_dir().join("online"),
            };
            Ok(Arc::new(EmbeddedStore::open(&dir)?))
        }
        OnlineStoreConfig::Redis { url } => redis_store::connect(url).await,
        OnlineStoreConfig::RedisCluster { nodes } => redis_store::connect_cluster(nodes).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_and_compare_by_time() {
        let row = |e: i64, c: i64| OnlineRow {
            event_ts: e,
            created_ts: c,
            values: vec![Value::Int64(e), Value::Null],
        };
        for (e, c) in [
            (0, 0),
            (-5, 3),
            (1_700_000_000_000_000, i64::MIN),
            (i64::MAX, i64::MAX),
        ] {
            assert_eq!(OnlineRow::decode(&row(e, c).encode()).unwrap(), row(e, c));
        }
        assert!(newer_or_same(&row(-1, 0).encode(), &row(-2, 9).encode()));
        assert!(newer_or_same(&row(5, 2).encode(), &row(5, 1).encode()));
        assert!(newer_or_same(&row(5, 2).encode(), &row(5, 2).encode()));
        assert!(!newer_or_same(&row(5, 1).encode(), &row(5, 2).encode()));
        assert!(!newer_or_same(&row(4, 9).encode(), &row(5, 0).encode()));
    }
}
