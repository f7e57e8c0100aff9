//! A connection to one Redis server that outlives the server's restarts. A multiplexed
//! connection whose server went away fails every later command and never connects again, and
//! without a response timeout a server that stopped answering (paused, partitioned) holds every
//! read forever. This one bounds each command by [`RESPONSE_TIMEOUT`], forgets a connection that
//! failed, and connects again on the next command, one attempt at a time, each bounded by
//! [`CONNECT_TIMEOUT`]: while the server is down reads fail at once, and they succeed again as
//! soon as it is back.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Client, Cmd, Pipeline, RedisError, RedisFuture, Value};
use tokio::sync::Mutex;

/// A server on the same host that is down refuses at once; one on an unreachable host must not
/// hold a request longer than this.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Far above any one command's time (a script writes a thousand rows in milliseconds), far
/// below what a client of the feature server waits. The cluster client takes it too.
pub(super) const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub struct Reconnecting(Arc<Inner>);

struct Inner {
    client: Client,
    current: Mutex<Option<MultiplexedConnection>>,
    db: i64,
}

impl Reconnecting {
    /// Connects once, so that a server that is not there fails the start as before.
    pub async fn connect(client: Client) -> redis::RedisResult<Reconnecting> {
        let db = client.get_connection_info().redis.db;
        let connection = Reconnecting(Arc::new(Inner {
            client,
            current: Mutex::new(None),
            db,
        }));
        connection.current().await?;
        Ok(connection)
    }

    async fn current(&self) -> redis::RedisResult<MultiplexedConnection> {
        let mut current = self.0.current.lock().await;
        if let Some(connection) = current.as_ref() {
            return Ok(connection.clone());
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(CONNECT_TIMEOUT)
            .set_response_timeout(RESPONSE_TIMEOUT);
        let connection = self
            .0
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        *current = Some(connection.clone());
        Ok(connection)
    }

    /// After an error that may mean the connection is gone, the next command connects anew. A
    /// reply error (a wrong type, NOSCRIPT) leaves the connection alone.
    async fn forget_if_broken(&self, error: &RedisError) {
        if error.is_io_error()
            || error.is_connection_dropped()
            || error.is_connection_refusal()
            || error.is_timeout()
        {
            *self.0.current.lock().await = None;
        }
    }
}

impl ConnectionLike for Reconnecting {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let mut connection = self.current().await?;
            let answer = connection.req_packed_command(cmd).await;
            if let Err(e) = &answer {
                self.forget_if_broken(e).await;
            }
            answer
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let mut connection = self.current().await?;
            let answer = connection.req_packed_commands(cmd, offset, count).await;
            if let Err(e) = &answer {
                self.forget_if_broken(e).await;
            }
            answer
        })
    }

    fn get_db(&self) -> i64 {
        self.0.db
    }
}
