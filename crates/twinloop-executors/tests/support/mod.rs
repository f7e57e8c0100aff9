//! What both mock API servers share: a request log and a server on a loopback port.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::{HeaderMap, Method, Uri};

/// One request as the mock saw it.
#[derive(Debug, Clone)]
#[allow(dead_code, reason = "each test binary reads the parts its API uses")]
pub struct Seen {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub authorization: Option<String>,
    pub body: Vec<u8>,
}

impl Seen {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    /// `GET /path`, for comparing sequences.
    pub fn line(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

#[derive(Clone, Default)]
pub struct Log(Arc<Mutex<Vec<Seen>>>);

impl Log {
    pub fn record(&self, method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) {
        self.0.lock().unwrap().push(Seen {
            method: method.clone(),
            path: uri.path().to_owned(),
            query: uri.query().map(str::to_owned),
            authorization: headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            body: body.to_vec(),
        });
    }

    pub fn all(&self) -> Vec<Seen> {
        self.0.lock().unwrap().clone()
    }

    pub fn lines(&self) -> Vec<String> {
        self.all().iter().map(Seen::line).collect()
    }

    pub fn clear(&self) {
        self.0.lock().unwrap().clear();
    }
}

/// Serves `router` on a loopback port and returns its base URL.
pub async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{address}")
}
