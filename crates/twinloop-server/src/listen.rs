//! The one HTTP accept loop of every twinloop listener (`twinloop server`, `twinloop serve`'s
//! REST port, `twinloop features serve`), so that each gets the same connection bounds.
//!
//! Our own loop rather than `axum::serve`, which sets no timer and so cannot time out a request
//! head: without one, a client that sends half a request (or opens a connection and says
//! nothing) holds its connection, task and file descriptor forever (slowloris). A body is timed
//! the same way between its pieces, since a handler waiting for a trickled body holds its
//! concurrency permit as long as the client likes.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use axum::response::IntoResponse;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;

use crate::limits::Shape;

/// The default of every listener's `--header-read-timeout`, in seconds.
pub const DEFAULT_HEADER_READ_TIMEOUT_SECS: u64 = 30;

/// How long a graceful stop waits for responses in flight.
const DRAIN: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` until `shutdown` resolves, then lets requests in flight finish
/// (for at most ten seconds). A client gets `read_timeout` to send each request's head, and as
/// long between two pieces of its body; a kept-alive connection may sit idle that long between
/// requests. A stalled body is answered 408 in `shape` and the connection closed. Handlers see
/// the peer's address as `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    read_timeout: Duration,
    shape: Shape,
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
        .header_read_timeout(read_timeout);
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
        let app = app.clone();
        let service = hyper_util::service::TowerToHyperService::new(tower::service_fn(
            move |req: Request<_>| {
                let app = app.clone();
                async move {
                    let stalled = Arc::new(AtomicBool::new(false));
                    let inference = req.uri().path().starts_with("/v2");
                    let mut req = req.map(|body| {
                        Body::new(Timed {
                            inner: body,
                            gap: read_timeout,
                            sleep: None,
                            stalled: stalled.clone(),
                        })
                    });
                    // The peer's address keys the failed-login limit of --auth.
                    req.extensions_mut()
                        .insert(axum::extract::ConnectInfo(peer));
                    let response = tower::ServiceExt::oneshot(app, req).await?;
                    // The handler saw the timeout as a failed read and answered in its own
                    // words; the client is told what happened instead, so it can retry.
                    Ok::<_, std::convert::Infallible>(if stalled.load(Ordering::Relaxed) {
                        let shape = match shape {
                            Shape::Mlflow if inference => Shape::OpenInference,
                            shape => shape,
                        };
                        timed_out(shape, read_timeout)
                    } else {
                        response
                    })
                }
            },
        ));
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

/// A request body that fails once `gap` passes with nothing new from the client, and marks
/// `stalled` when it does. The clock starts when the handler waits for data and restarts with
/// every piece, so a slow but steady upload is never cut.
struct Timed<B> {
    inner: B,
    gap: Duration,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    stalled: Arc<AtomicBool>,
}

/// The error a handler reads from a stalled body.
#[derive(Debug)]
struct Stalled;

impl std::fmt::Display for Stalled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the client stopped sending the request body")
    }
}

impl std::error::Error for Stalled {}

impl<B> http_body::Body for Timed<B>
where
    B: http_body::Body<Data = axum::body::Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = axum::body::Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            this.sleep = None;
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let gap = this.gap;
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(gap)));
        if sleep.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        this.stalled.store(true, Ordering::Relaxed);
        Poll::Ready(Some(Err(Stalled.into())))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// 408 in the listener's error shape, closing the connection: what is left of the body would
/// otherwise be read as the next request. MLflow's client retries a 408.
fn timed_out(shape: Shape, gap: Duration) -> Response<Body> {
    let message = format!(
        "Request body timed out: nothing arrived for {} s",
        gap.as_secs()
    );
    let body = match shape {
        Shape::Mlflow => {
            serde_json::json!({"error_code": "DEADLINE_EXCEEDED", "message": message})
        }
        Shape::OpenInference => serde_json::json!({"error": message}),
        Shape::Feast => serde_json::json!({"error": message, "code": "DEADLINE_EXCEEDED"}),
    };
    let mut response = (StatusCode::REQUEST_TIMEOUT, axum::Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}
