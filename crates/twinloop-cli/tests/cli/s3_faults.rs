//! S3 faults between the server and its bucket (issue 17 part 5; docs/reliability.md, "S3 and
//! Redis faults"): the server's artifact store talks to moto through a fault proxy that answers a
//! share of requests with 503 SlowDown or 500 InternalError, resets connections while the
//! request arrives or after it was applied, cuts answers mid-body and stalls. Clients upload and
//! download through the server meanwhile. Every upload the server acknowledged must then be in
//! the bucket whole (sha256), every download that completed must be right, an upload that failed
//! must have left nothing or the whole object (never a part visible as complete), and with the
//! bucket unreachable a client gets an MLflow-shaped error in bounded time.
//!
//! Needs moto (`TWINLOOP_TEST_S3_ENDPOINT`, started by scripts/test.sh).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::serve::IncomingStream;
use futures::StreamExt;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::support::TestServer;

/// What the proxy does to traffic.
const PASS: u8 = 0;
const FAULTY: u8 = 1;
const DOWN: u8 = 2;

/// What the proxy does to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    None,
    SlowDown,
    InternalError,
    /// The connection is reset while the request body arrives: nothing reaches the bucket.
    ResetRequest,
    /// The request reaches the bucket, then the connection is reset before the answer.
    ResetAfterApplied,
    /// The answer's body is cut halfway and the connection reset.
    Truncate,
    /// A second's pause before the request is passed on.
    Stall,
}

/// The server side of one proxied connection: a second handle on its socket, so that a
/// handler can cut the connection it is answering on.
#[derive(Debug, Clone)]
struct Conn(Option<Arc<std::net::TcpStream>>);

impl Conn {
    /// Shuts the socket down; with zero linger its close then sends RST.
    fn reset(&self) {
        if let Some(socket) = &self.0 {
            let _ = socket.shutdown(std::net::Shutdown::Both);
        }
    }
}

impl Connected<IncomingStream<'_, FaultListener>> for Conn {
    fn connect_info(stream: IncomingStream<'_, FaultListener>) -> Self {
        stream.remote_addr().clone()
    }
}

struct FaultListener(tokio::net::TcpListener);

impl axum::serve::Listener for FaultListener {
    type Io = tokio::net::TcpStream;
    type Addr = Conn;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, _)) = self.0.accept().await else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let _ = tcp.set_zero_linger();
            let Ok(std) = tcp.into_std() else { continue };
            let second = std.try_clone().ok().map(Arc::new);
            let Ok(tcp) = tokio::net::TcpStream::from_std(std) else {
                continue;
            };
            return (tcp, Conn(second));
        }
    }

    fn local_addr(&self) -> std::io::Result<Conn> {
        Ok(Conn(None))
    }
}

struct Proxy {
    upstream: String,
    http: reqwest::Client,
    mode: AtomicU8,
    rng: Mutex<u64>,
    seen: Mutex<BTreeMap<Fault, u64>>,
}

impl Proxy {
    /// Starts a proxy in front of `upstream`; returns it and its address.
    async fn start(upstream: &str) -> (Arc<Proxy>, SocketAddr) {
        let proxy = Arc::new(Proxy {
            upstream: upstream.trim_end_matches('/').to_string(),
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
            mode: AtomicU8::new(PASS),
            rng: Mutex::new(0x5EED_F00D),
            seen: Mutex::default(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(proxy.clone())
            .into_make_service_with_connect_info::<Conn>();
        tokio::spawn(async move {
            let _ = axum::serve(FaultListener(listener), app).await;
        });
        (proxy, addr)
    }

    fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
    }

    /// The next request's fault, from a fixed seed: 15 % SlowDown, 5 % InternalError, 3 %
    /// reset while sending, 2 % reset after applying, 2 % cut answers, 1 % stalls.
    fn pick(&self) -> Fault {
        let fault = match self.mode.load(Ordering::SeqCst) {
            PASS => Fault::None,
            DOWN => Fault::SlowDown,
            _ => {
                let mut state = self.rng.lock().unwrap();
                *state ^= *state << 13;
                *state ^= *state >> 7;
                *state ^= *state << 17;
                match *state % 100 {
                    0..15 => Fault::SlowDown,
                    15..20 => Fault::InternalError,
                    20..23 => Fault::ResetRequest,
                    23..25 => Fault::ResetAfterApplied,
                    25..27 => Fault::Truncate,
                    27 => Fault::Stall,
                    _ => Fault::None,
                }
            }
        };
        *self.seen.lock().unwrap().entry(fault).or_default() += 1;
        fault
    }
}

fn s3_error(status: StatusCode, code: &str) -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>\
         <Message>injected by the test's fault proxy</Message><RequestId>fault</RequestId></Error>"
    );
    (status, [(header::CONTENT_TYPE, "application/xml")], body).into_response()
}

/// What a handler returns once it has cut its connection: hyper drops the connection (and this
/// future) first, so the answer is never sent.
async fn after_reset() -> Response {
    tokio::time::sleep(Duration::from_secs(5)).await;
    StatusCode::INTERNAL_SERVER_ERROR.into_response()
}

async fn handle(
    State(proxy): State<Arc<Proxy>>,
    ConnectInfo(conn): ConnectInfo<Conn>,
    req: Request,
) -> Response {
    let fault = proxy.pick();
    match fault {
        Fault::SlowDown => return s3_error(StatusCode::SERVICE_UNAVAILABLE, "SlowDown"),
        Fault::InternalError => {
            return s3_error(StatusCode::INTERNAL_SERVER_ERROR, "InternalError");
        }
        Fault::Stall => tokio::time::sleep(Duration::from_secs(1)).await,
        _ => {}
    }
    let (parts, body) = req.into_parts();
    if fault == Fault::ResetRequest {
        let _ = body.into_data_stream().next().await;
        conn.reset();
        return after_reset().await;
    }
    let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let target = format!(
        "{}{}",
        proxy.upstream,
        parts.uri.path_and_query().map_or("/", |p| p.as_str())
    );
    // The Host header goes along unchanged: it is part of what SigV4 signed.
    let mut request = proxy.http.request(parts.method.clone(), target).body(body);
    for (name, value) in &parts.headers {
        if ![
            header::CONTENT_LENGTH,
            header::TRANSFER_ENCODING,
            header::CONNECTION,
        ]
        .contains(name)
        {
            request = request.header(name, value);
        }
    }
    let Ok(upstream) = request.send().await else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    if fault == Fault::ResetAfterApplied {
        conn.reset();
        return after_reset().await;
    }
    let mut response = Response::builder().status(upstream.status().as_u16());
    for (name, value) in upstream.headers() {
        if name != header::TRANSFER_ENCODING && name != header::CONNECTION {
            response = response.header(name, value);
        }
    }
    let cut_at = match (fault, upstream.content_length()) {
        (Fault::Truncate, Some(n)) if n > 1 => n / 2,
        _ => u64::MAX,
    };
    let body = futures::stream::unfold(
        (upstream, 0u64, conn, false),
        move |(mut upstream, sent, conn, done)| async move {
            if done {
                return None;
            }
            if sent >= cut_at {
                conn.reset();
                let cut = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "cut");
                return Some((Err(cut), (upstream, sent, conn, true)));
            }
            match upstream.chunk().await {
                Ok(Some(mut chunk)) => {
                    let room = cut_at - sent;
                    if chunk.len() as u64 > room {
                        chunk.truncate(room as usize);
                    }
                    let sent = sent + chunk.len() as u64;
                    Some((
                        Ok::<Bytes, std::io::Error>(chunk),
                        (upstream, sent, conn, false),
                    ))
                }
                Ok(None) => None,
                Err(e) => Some((Err(std::io::Error::other(e)), (upstream, sent, conn, true))),
            }
        },
    );
    response.body(Body::from_stream(body)).unwrap()
}

/// Deterministic content for upload `i` of `size` bytes.
fn content(i: u64, size: usize) -> Vec<u8> {
    let mut state = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..size)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Sizes from 1 KiB to 8 MiB, and 12 MiB now and then, which the store sends as a multipart
/// upload.
fn size_of(i: u64) -> usize {
    match i {
        i if i % 60 == 59 => 12 << 20,
        i if i % 30 == 29 => 8 << 20,
        i => [1 << 10, 3 << 10, 16 << 10, 64 << 10, 200 << 10, 1 << 20][(i % 6) as usize],
    }
}

const UPLOADS: u64 = 120;
const WRITERS: u64 = 6;

/// An upload the client sent: its path, digest and size, and whether the server acknowledged it.
#[derive(Debug, Clone)]
struct Upload {
    path: String,
    sha256: String,
    size: usize,
}

/// Whether an answer is MLflow's error shape.
fn mlflow_error(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body)
        .is_ok_and(|v| v["error_code"].is_string() && v["message"].is_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_uploads_survive_s3_faults_whole() {
    let Ok(moto) = std::env::var("TWINLOOP_TEST_S3_ENDPOINT") else {
        assert_ne!(
            std::env::var("TWINLOOP_REQUIRE_ALL_BACKENDS").as_deref(),
            Ok("1"),
            "TWINLOOP_REQUIRE_ALL_BACKENDS=1 but TWINLOOP_TEST_S3_ENDPOINT is not set"
        );
        eprintln!("TWINLOOP_TEST_S3_ENDPOINT not set: S3 faults test skipped");
        return;
    };
    let moto = moto.trim_end_matches('/').to_string();
    let direct = reqwest::Client::builder().no_proxy().build().unwrap();
    let bucket = format!("tl-faults-{}", std::process::id());
    // moto makes a bucket on an unsigned PUT.
    let made = direct.put(format!("{moto}/{bucket}")).send().await.unwrap();
    assert!(
        made.status().is_success(),
        "create bucket: {}",
        made.status()
    );

    let (proxy, addr) = Proxy::start(&moto).await;
    let endpoint = format!("http://{addr}");
    let dir = tempfile::tempdir().unwrap();
    let uri = format!("sqlite:///{}", dir.path().join("twinloop.db").display());
    let destination = format!("s3://{bucket}/store");
    let server = TestServer::start_full(
        dir.path(),
        &uri,
        &["--artifacts-destination", &destination],
        &[
            ("MLFLOW_S3_ENDPOINT_URL", endpoint.as_str()),
            ("AWS_ENDPOINT_URL", endpoint.as_str()),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_DEFAULT_REGION", "us-east-1"),
            ("AWS_ALLOW_HTTP", "true"),
        ],
    );
    let artifacts = format!("{}/api/2.0/mlflow-artifacts/artifacts", server.url);
    // The MLflow client's own request timeout.
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();

    proxy.set(FAULTY);
    let acked: Arc<Mutex<Vec<Upload>>> = Arc::default();
    let failed: Arc<Mutex<Vec<(Upload, String)>>> = Arc::default();
    let writing = Arc::new(AtomicU64::new(WRITERS));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let (http, artifacts, acked, failed, writing) = (
            http.clone(),
            artifacts.clone(),
            acked.clone(),
            failed.clone(),
            writing.clone(),
        );
        tasks.push(tokio::spawn(async move {
            for i in (w..UPLOADS).step_by(WRITERS as usize) {
                let bytes = content(i, size_of(i));
                let upload = Upload {
                    path: format!("faults/{i}.bin"),
                    sha256: sha256(&bytes),
                    size: bytes.len(),
                };
                let sent = http
                    .put(format!("{artifacts}/{}", upload.path))
                    .body(bytes)
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status().is_success() => acked.lock().unwrap().push(upload),
                    Ok(r) => {
                        let status = r.status();
                        let body = r.bytes().await.unwrap_or_default();
                        assert!(
                            status.is_server_error() && mlflow_error(&body),
                            "a failed upload answers an MLflow error: {status} {}",
                            String::from_utf8_lossy(&body)
                        );
                        failed.lock().unwrap().push((upload, status.to_string()));
                    }
                    Err(e) => failed.lock().unwrap().push((upload, e.to_string())),
                }
            }
            writing.fetch_sub(1, Ordering::SeqCst);
        }));
    }
    // Readers download acknowledged files while the faults go on.
    let (read_ok, read_failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    for r in 0..2u64 {
        let (http, artifacts, acked, writing, read_ok, read_failed) = (
            http.clone(),
            artifacts.clone(),
            acked.clone(),
            writing.clone(),
            read_ok.clone(),
            read_failed.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut n = r;
            while writing.load(Ordering::SeqCst) > 0 {
                let pick = {
                    let acked = acked.lock().unwrap();
                    (!acked.is_empty()).then(|| acked[(n as usize * 7) % acked.len()].clone())
                };
                n += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
                let Some(upload) = pick else {
                    continue;
                };
                let Ok(r) = http
                    .get(format!("{artifacts}/{}", upload.path))
                    .send()
                    .await
                else {
                    read_failed.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                let status = r.status();
                match r.bytes().await {
                    Ok(body) if status.is_success() => {
                        assert_eq!(
                            sha256(&body),
                            upload.sha256,
                            "a download of {} completed with the wrong bytes",
                            upload.path
                        );
                        read_ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(body) => {
                        assert!(
                            mlflow_error(&body),
                            "a failed download answers an MLflow error: {status}"
                        );
                        read_failed.fetch_add(1, Ordering::Relaxed);
                    }
                    // Cut mid-body: the client sees the failure.
                    Err(_) => {
                        read_failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let faulty_for = started.elapsed();

    // The bucket unreachable: an upload and a download fail with MLflow's error shape, in
    // bounded time (the store's retries give up after 30 s).
    proxy.set(DOWN);
    let down = Instant::now();
    let one = acked.lock().unwrap().first().cloned();
    let upload = http
        .put(format!("{artifacts}/faults/while-down.bin"))
        .body(vec![7u8; 4096])
        .send();
    let download = async {
        match &one {
            Some(u) => Some(http.get(format!("{artifacts}/{}", u.path)).send().await),
            None => None,
        }
    };
    let (upload, download) = tokio::join!(upload, download);
    let down_for = down.elapsed();
    let upload = upload.expect("an answer, not a client timeout");
    let status = upload.status();
    let body = upload.bytes().await.unwrap();
    assert!(
        status.is_server_error() && mlflow_error(&body),
        "upload with the bucket down: {status} {}",
        String::from_utf8_lossy(&body)
    );
    if let Some(download) = download {
        let download = download.expect("an answer, not a client timeout");
        let status = download.status();
        let body = download.bytes().await.unwrap();
        assert!(
            status.is_server_error() && mlflow_error(&body),
            "download with the bucket down: {status}"
        );
    }
    assert!(
        down_for < Duration::from_secs(90),
        "with the bucket down the client waited {down_for:?}"
    );

    // Faults off: every acknowledged upload reads back whole; a failed one left nothing or the
    // whole object.
    proxy.set(PASS);
    let acked = acked.lock().unwrap().clone();
    let failed = failed.lock().unwrap().clone();
    for upload in &acked {
        let r = http
            .get(format!("{artifacts}/{}", upload.path))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}: {}", upload.path, r.status());
        assert_eq!(
            sha256(&r.bytes().await.unwrap()),
            upload.sha256,
            "acknowledged {} read back wrong",
            upload.path
        );
    }
    let mut left_whole = 0;
    for (upload, why) in &failed {
        let r = http
            .get(format!("{artifacts}/{}", upload.path))
            .send()
            .await
            .unwrap();
        if r.status().is_success() {
            assert_eq!(
                sha256(&r.bytes().await.unwrap()),
                upload.sha256,
                "failed upload {} ({why}) left a partial object",
                upload.path
            );
            left_whole += 1;
        } else {
            assert_eq!(r.status().as_u16(), 404, "{}", upload.path);
        }
    }
    // The bucket itself, listed without the server: no object under another size than sent.
    let sizes: BTreeMap<String, usize> = acked
        .iter()
        .chain(failed.iter().map(|(u, _)| u))
        .map(|u| (format!("store/{}", u.path), u.size))
        .collect();
    let listing = direct
        .get(format!("{moto}/{bucket}?list-type=2&prefix=store/faults/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!listing.contains("<IsTruncated>true"), "{listing}");
    let tag = |item: &str, name: &str| -> String {
        let open = format!("<{name}>");
        let from = item.find(&open).unwrap() + open.len();
        item[from..from + item[from..].find('<').unwrap()].to_string()
    };
    let mut listed = 0;
    for item in listing.split("<Contents>").skip(1) {
        let key = tag(item, "Key");
        if let Some(&sent) = sizes.get(&key) {
            let size: usize = tag(item, "Size").parse().unwrap();
            assert_eq!(
                size, sent,
                "{key} is in the bucket with {size} of {sent} bytes"
            );
            listed += 1;
        }
    }
    assert_eq!(listed, acked.len() + left_whole, "{listing}");
    let seen = proxy.seen.lock().unwrap().clone();
    println!(
        "s3 faults: {} uploads in {:.1} s, {} acknowledged (all read back whole), {} failed \
         ({left_whole} of them left the whole object, none a part); downloads under faults: {} \
         whole, {} failed cleanly; bucket down: errors after {:.1} s; proxy: {seen:?}",
        UPLOADS,
        faulty_for.as_secs_f64(),
        acked.len(),
        failed.len(),
        read_ok.load(Ordering::Relaxed),
        read_failed.load(Ordering::Relaxed),
        down_for.as_secs_f64(),
    );
    assert!(
        acked.len() as u64 >= UPLOADS * 9 / 10,
        "the store's retries should carry most uploads through these faults: {} of {UPLOADS}",
        acked.len()
    );
}
