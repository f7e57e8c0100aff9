//! Bodies the HTTP server decodes: MLflow's REST requests and Feast's JSON.

use twinloop_features::repo::DType;
use twinloop_features::value::{SentColumn, Value};
use twinloop_server::features::feast::{self, JsonColumn, OnlineRequest, PushRequest};

use crate::split_selector;

/// An MLflow REST request body, as the request type the first byte chooses. Refusals are
/// client errors in MLflow's shape (the server's function asserts it).
pub fn mlflow_json(data: &[u8]) {
    if let Some((kind, body)) = split_selector(data) {
        twinloop_server::fuzz_mlflow_request_body(kind, body);
    }
}

const DTYPES: [DType; 8] = [
    DType::Bool,
    DType::Int32,
    DType::Int64,
    DType::Float32,
    DType::Float64,
    DType::String,
    DType::Bytes,
    DType::Timestamp,
];

/// Compares typed values with NaN equal to itself: a NaN sent is a NaN answered.
fn same(a: &[Value], b: &[Value]) -> bool {
    format!("{a:?}") == format!("{b:?}")
}

/// Each column typed as each dtype; values accepted are answered as JSON that types back to
/// the same values, so what a client pushes is what it reads.
fn check_columns(columns: &[(String, JsonColumn)]) {
    for (name, column) in columns {
        for dtype in DTYPES {
            let Ok(values) = column.typed(name, dtype) else {
                continue;
            };
            assert_eq!(values.len(), column.len());
            let answered = JsonColumn(values.iter().map(feast::value_json).collect());
            let again = answered.typed(name, dtype).unwrap_or_else(|e| {
                panic!("{name:?} as {dtype:?}: {values:?} answered as {answered:?}: {e}")
            });
            assert!(
                same(&values, &again),
                "{name:?} as {dtype:?}: {values:?} read back as {again:?}"
            );
        }
    }
}

/// A `/get-online-features` body.
pub fn feast_online(body: &[u8]) {
    let Ok(request) = serde_json::from_slice::<OnlineRequest>(body) else {
        return;
    };
    let rows = request.rows();
    check_columns(&request.entities.0);
    if let Ok(query) = request.into_query() {
        assert_eq!(query.entities.first().map_or(0, |(_, c)| c.len()), rows);
    }
}

/// A `/push` body.
pub fn feast_push(body: &[u8]) {
    let Ok(request) = serde_json::from_slice::<PushRequest>(body) else {
        return;
    };
    check_columns(&request.df.0);
    let _ = request.into_request();
}
