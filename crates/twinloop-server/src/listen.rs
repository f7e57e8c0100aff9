//! The one HTTP accept loop of every twinloop listener (`twinloop server`, `twinloop serve`'s
//! REST port, `twinloop features serve`), so that each gets the same connection bounds.
//!
//! Our own loop rather than `axum::serve`, which sets no timer and so cannot time out a request
//! head: without one, a client that sends half a request (or opens a connection and says
//! nothing) holds its connection, task and file descriptor forever (slowloris).

use std::future::Future;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;

/// The default of every listener's `--header-read-timeout`, in seconds.
pub const DEFAULT_HEADER_READ_TIMEOUT_SECS: u64 = 30;

/// How long a graceful stop waits for responses in flight.
const DRAIN: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` until `shutdown` resolves, then lets requests in flight finish
/// (for at most ten seconds). A client gets `header_read_timeout` to send each request's head,
/// and a kept-alive connection may sit idle that long between requests; handlers see the
/// peer's address as `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    header_read_timeout: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // HTTP/1 only (gRPC has its own port), so the connection starts as HTTP/1 at once: the
    // version sniffing of a dual builder would wait for a silent client's first bytes forever.
    let mut builder = Builder::new(TokioExecutor::new()).http1_only();
    // The head's clock also runs while a kept-alive connection waits for its next request, so
    // this bounds idle connections too.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before accept: the
                    // listener itself is fine, so wait a little rather than spin or stop.
                    tracing::warn!("accepting a connection failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Small JSON replies must not wait for the peer's delayed ACK (Nagle).
        let _ = tcp.set_nodelay(true);
        // The peer's address keys the failed-login limit of --auth.
        let service = hyper_util::service::TowerToHyperService::new(
            tower::ServiceExt::map_request(app.clone(), move |mut req: axum::http::Request<_>| {
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                req
            }),
        );
        let connection = builder
            .serve_connection(TokioIo::new(tcp), service)
            .into_owned();
        tokio::spawn(graceful.watch(connection));
    }
    drop(listener);
    // Streams (server-sent events) never end by themselves: once stopping, requests in flight
    // get DRAIN to finish, then the rest are dropped rather than holding the stop forever.
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "stopped with responses still open after {}s (event streams)",
            DRAIN.as_secs()
        );
    }
    Ok(())
}
