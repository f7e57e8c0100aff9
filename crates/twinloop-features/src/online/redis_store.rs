//! The Redis online store: one Redis string per (view table, entity key), written through a
//! script that keeps the newer row.

use async_trait::async_trait;
use redis::aio::MultiplexedConnection;
use twinloop_core::{Error, Result};

use super::{OnlineRow, OnlineStore, OnlineWrite};

/// Compares the fixed-width time headers (32 hex characters) as strings: hex of the
/// sign-flipped times sorts like the times.
const WRITE_NEWER: &str = r"
local written = 0
for i = 1, #KEYS do
  local new = ARGV[i]
  local old = redis.call('GET', KEYS[i])
  if (not old) or string.sub(new, 1, 32) >= string.sub(old, 1, 32) then
    redis.call('SET', KEYS[i], new)
    redis.call('SADD', ARGV[#KEYS + 1], KEYS[i])
    written = written + 1
  end
end
return written
";

/// Rows per script call: big enough to amortise the round trip, small enough not to stall
/// Redis for other clients.
const CHUNK: usize = 1_000;

pub struct RedisStore {
    connection: MultiplexedConnection,
    script: redis::Script,
}

fn store_error(e: impl Into<twinloop_core::error::BoxError>) -> Error {
    Error::internal("redis online store").with_source(e)
}

fn redis_key(table: &str, key: &[u8]) -> Vec<u8> {
    let mut out = format!("twinloop:{table}:").into_bytes();
    out.extend_from_slice(key);
    out
}

fn members_key(table: &str) -> String {
    format!("twinloop:{table}")
}

impl RedisStore {
    pub async fn connect(url: &str) -> Result<RedisStore> {
        let client = redis::Client::open(url)
            .map_err(|e| Error::invalid(format!("redis url {url:?}")).with_source(e))?;
        let connection = client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| {
                Error::invalid(format!("cannot connect to redis at {url}")).with_source(e)
            })?;
        Ok(RedisStore {
            connection,
            script: redis::Script::new(WRITE_NEWER),
        })
    }
}

#[async_trait]
impl OnlineStore for RedisStore {
    async fn write(&self, table: &str, rows: Vec<OnlineWrite>) -> Result<usize> {
        let mut connection = self.connection.clone();
        let mut written = 0usize;
        for chunk in rows.chunks(CHUNK) {
            let mut invocation = self.script.prepare_invoke();
            for row in chunk {
                invocation.key(redis_key(table, &row.key));
                invocation.arg(row.row.as_slice());
            }
            invocation.arg(members_key(table));
            let n: usize = invocation
                .invoke_async(&mut connection)
                .await
                .map_err(store_error)?;
            written += n;
        }
        Ok(written)
    }

    async fn read(&self, table: &str, keys: &[Vec<u8>]) -> Result<Vec<Option<OnlineRow>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut connection = self.connection.clone();
        let mut cmd = redis::cmd("MGET");
        for key in keys {
            cmd.arg(redis_key(table, key));
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
        let mut connection = self.connection.clone();
        redis::cmd("SCARD")
            .arg(members_key(table))
            .query_async(&mut connection)
            .await
            .map_err(store_error)
    }
}
