//! The Redis online store, on one server or a Redis Cluster: one Redis string per (view table,
//! entity key), written through a script that keeps the newer row.
//!
//! Keys carry a hash tag of the entity key's bucket, so that everything one script touches sits
//! in one cluster slot, and one entity's rows of every view sit together:
//!
//! ```text
//! twinloop:{B}:TABLE:KEY   the row (KEY: the entity key's bytes, keys.rs)
//! twinloop:{B}:TABLE       the set of TABLE's row keys in bucket B, for count
//! ```
//!
//! B is [`bucket`] of the entity key, in decimal. The bucket, not the key, is the tag so that a
//! table's membership set can share the slot of the rows a script writes, and `count` is
//! [`BUCKETS`] set sizes rather than a scan of every node. Both numbers are part of the stored
//! format: changing them orphans every row. Rows written before the tag (`twinloop:TABLE:KEY`,
//! members in `twinloop:TABLE`) are moved into this layout the first time a process touches
//! their table (single server only: that layout never ran on a cluster).

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::{FutureExt, StreamExt, TryStreamExt};
use redis::aio::ConnectionLike;
use twinloop_core::{Error, ErrorKind, Result};

use super::reconnect::{RESPONSE_TIMEOUT, Reconnecting};
use super::{OnlineRow, OnlineStore, OnlineWrite};

/// KEYS[1] is the members set, KEYS[2..] the rows, ARGV[i] the row for KEYS[i + 1]. Compares
/// the fixed-width time headers (32 hex characters) as strings: hex of the sign-flipped times
/// sorts like the times.
const WRITE_NEWER: &str = r"
local written = 0
for i = 2, #KEYS do
  local new = ARGV[i - 1]
  local old = redis.call('GET', KEYS[i])
  if (not old) or string.sub(new, 1, 32) >= string.sub(old, 1, 32) then
    redis.call('SET', KEYS[i], new)
    redis.call('SADD', KEYS[1], KEYS[i])
    written = written + 1
  end
end
return written
";

/// Rows per script call: big enough to amortise the round trip, small enough not to stall
/// Redis for other clients.
const CHUNK: usize = 1_000;

/// Hash-tag buckets: enough to spread a table over any cluster's nodes evenly, few enough that
/// `count` asks a thousand small questions rather than scanning every key.
const BUCKETS: u32 = 1_024;

/// Commands in flight at once per call; a multiplexed connection pipelines them.
const CONCURRENCY: usize = 32;

/// The hash-tag bucket of an entity key: FNV-1a (stable across releases and platforms), reduced
/// by its high bits, which mix every input byte.
fn bucket(key: &[u8]) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for &b in key {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    ((u64::from(hash) * u64::from(BUCKETS)) >> 32) as u32
}

/// `twinloop:{B}:TABLE:KEY`.
pub fn row_key(table: &str, key: &[u8]) -> Vec<u8> {
    let mut out = format!("{}:", members_key(table, bucket(key))).into_bytes();
    out.extend_from_slice(key);
    out
}

fn members_key(table: &str, bucket: u32) -> String {
    format!("twinloop:{{{bucket}}}:{table}")
}

/// A Redis that cannot be reached, restarts or stopped answering may be back on a retry, so
/// its clients hear 503, not 500; anything else (a reply error, a script that failed) is ours.
fn store_error(e: redis::RedisError) -> Error {
    let kind = if unreachable(&e) {
        ErrorKind::Unavailable
    } else {
        ErrorKind::Internal
    };
    Error::new(kind, "redis online store").with_source(e)
}

fn unreachable(e: &redis::RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout()
}

/// Over one server's multiplexed connection or a cluster connection, which routes each
/// command to the node that owns its slot.
pub struct RedisStore<C> {
    connection: C,
    script: redis::Script,
    /// Whether rows of the untagged layout may exist (one server), and the tables already
    /// checked for them by this process.
    legacy: Option<Mutex<HashSet<String>>>,
}

/// Connects to one Redis server (`redis://` URL), again after it restarts ([`Reconnecting`]).
pub async fn connect(url: &str) -> Result<Arc<dyn OnlineStore>> {
    let client = redis::Client::open(url)
        .map_err(|e| Error::invalid(format!("redis url {url:?}")).with_source(e))?;
    let connection = Reconnecting::connect(client)
        .await
        .map_err(|e| Error::invalid(format!("cannot connect to redis at {url}")).with_source(e))?;
    Ok(Arc::new(RedisStore::new(
        connection,
        Some(Mutex::new(HashSet::new())),
    )))
}

/// Connects to a Redis Cluster through any of `nodes` (`redis://` URLs); the client learns
/// the slot map and follows its changes.
pub async fn connect_cluster(nodes: &[String]) -> Result<Arc<dyn OnlineStore>> {
    let shown = nodes.join(",");
    // The cluster client connects again by itself, and bounds connecting (1 s) but not waiting
    // for an answer: a node that stopped answering would hold every read on it.
    let client = redis::cluster::ClusterClient::builder(nodes.to_vec())
        .response_timeout(RESPONSE_TIMEOUT)
        .build()
        .map_err(|e| Error::invalid(format!("redis cluster nodes {shown}")).with_source(e))?;
    let connection = client.get_async_connection().await.map_err(|e| {
        Error::invalid(format!("cannot connect to the redis cluster at {shown}")).with_source(e)
    })?;
    Ok(Arc::new(RedisStore::new(connection, None)))
}

impl<C> RedisStore<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    fn new(connection: C, legacy: Option<Mutex<HashSet<String>>>) -> Self {
        RedisStore {
            connection,
            script: redis::Script::new(WRITE_NEWER),
            legacy,
        }
    }

    /// Writes rows of one bucket (one slot) through the script, a chunk per call.
    async fn write_bucket(
        &self,
        table: &str,
        bucket: u32,
        rows: Vec<OnlineWrite>,
    ) -> Result<usize> {
        let mut connection = self.connection.clone();
        let mut written = 0;
        for chunk in rows.chunks(CHUNK) {
            let mut invocation = self.script.prepare_invoke();
            invocation.key(members_key(table, bucket));
            for row in chunk {
                invocation.key(row_key(table, &row.key));
                invocation.arg(row.row.as_slice());
            }
            let n: usize = invocation
                .invoke_async(&mut connection)
                .await
                .map_err(store_error)?;
            written += n;
        }
        Ok(written)
    }

    async fn write_tagged(&self, table: &str, rows: Vec<OnlineWrite>) -> Result<usize> {
        let mut by_bucket: BTreeMap<u32, Vec<OnlineWrite>> = BTreeMap::new();
        for row in rows {
            by_bucket.entry(bucket(&row.key)).or_default().push(row);
        }
        // Boxed: the unboxed futures trip rustc's higher-ranked lifetime check inside
        // async_trait's Send bound.
        futures::stream::iter(by_bucket)
            .map(|(b, rows)| self.write_bucket(table, b, rows).boxed())
            .buffer_unordered(CONCURRENCY)
            .try_fold(0, |sum, n| async move { Ok(sum + n) })
            .await
    }

    /// Moves `table`'s rows of the untagged layout into the tagged one, once per process and
    /// table: each through the newer-wins write, then deleted, so a crash or a second process
    /// doing the same midway loses nothing.
    async fn adopt_legacy(&self, table: &str) -> Result<()> {
        let Some(checked) = &self.legacy else {
            return Ok(());
        };
        if checked.lock().expect("poisoned").contains(table) {
            return Ok(());
        }
        let mut connection = self.connection.clone();
        let members = format!("twinloop:{table}");
        let prefix = format!("twinloop:{table}:").into_bytes();
        loop {
            let keys: Vec<Vec<u8>> = redis::cmd("SRANDMEMBER")
                .arg(&members)
                .arg(CHUNK)
                .query_async(&mut connection)
                .await
                .map_err(store_error)?;
            if keys.is_empty() {
                break;
            }
            let values: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
                .arg(&keys)
                .query_async(&mut connection)
                .await
                .map_err(store_error)?;
            let rows: Vec<OnlineWrite> = keys
                .iter()
                .zip(values)
                .filter_map(|(key, row)| {
                    Some(OnlineWrite {
                        key: key.strip_prefix(prefix.as_slice())?.to_vec(),
                        row: row?,
                    })
                })
                .collect();
            self.write_tagged(table, rows).await?;
            redis::pipe()
                .atomic()
                .del(&keys)
                .ignore()
                .srem(&members, &keys)
                .ignore()
                .query_async::<()>(&mut connection)
                .await
                .map_err(store_error)?;
        }
        checked.lock().expect("poisoned").insert(table.to_string());
        Ok(())
    }
}

#[async_trait]
impl<C> OnlineStore for RedisStore<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    async fn write(&self, table: &str, rows: Vec<OnlineWrite>) -> Result<usize> {
        self.adopt_legacy(table).await?;
        self.write_tagged(table, rows).await
    }

    async fn read(&self, table: &str, keys: &[Vec<u8>]) -> Result<Vec<Option<OnlineRow>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        self.adopt_legacy(table).await?;
        // On a cluster, the client splits an MGET by slot, asks the nodes concurrently and
        // puts the answers back in order.
        let mut connection = self.connection.clone();
        let mut cmd = redis::cmd("MGET");
        for key in keys {
            cmd.arg(row_key(table, key));
        }
        let values: Vec<Option<Vec<u8>>> = cmd
            .query_async(&mut connection)
            .await
            .map_err(store_error)?;
        values
            .into_iter()
            .map(|v| v.map(|bytes| OnlineRow::decode(&bytes)).transpose())
            .collect()
    }

    async fn count(&self, table: &str) -> Result<u64> {
        self.adopt_legacy(table).await?;
        futures::stream::iter(0..BUCKETS)
            .map(|b| {
                let mut connection = self.connection.clone();
                let mut cmd = redis::cmd("SCARD");
                cmd.arg(members_key(table, b));
                async move {
                    cmd.query_async::<u64>(&mut connection)
                        .await
                        .map_err(store_error)
                }
                .boxed()
            })
            .buffer_unordered(CONCURRENCY * 4)
            .try_fold(0, |sum, n| async move { Ok(sum + n) })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_tagged_with_a_stable_bucket() {
        // Stored format: these values may never change.
        assert_eq!(bucket(b""), 516);
        assert_eq!(bucket(b"k"), 952);
        assert_eq!(bucket(b"i\0\0\0\0\0\0\0\x01"), 551);
        assert_eq!(row_key("p/v/ab", b"k"), b"twinloop:{952}:p/v/ab:k");
        let spread: HashSet<u32> = (0..10_000i64)
            .map(|i| bucket(&[b"i".as_slice(), &i.to_be_bytes()].concat()))
            .collect();
        assert_eq!(spread.len(), BUCKETS as usize);
    }

    #[test]
    fn an_unreachable_redis_is_unavailable_and_a_refused_command_internal() {
        for cause in [
            std::io::ErrorKind::ConnectionRefused,
            std::io::ErrorKind::ConnectionReset,
            std::io::ErrorKind::BrokenPipe,
            std::io::ErrorKind::TimedOut,
        ] {
            let e = store_error(redis::RedisError::from(std::io::Error::from(cause)));
            assert_eq!(e.kind, ErrorKind::Unavailable, "{cause:?}");
            assert!(e.message.starts_with("redis online store"), "{}", e.message);
        }
        let refused = redis::RedisError::from((redis::ErrorKind::ResponseError, "WRONGTYPE"));
        assert_eq!(store_error(refused).kind, ErrorKind::Internal);
    }
}
