//! The log's columns, their Arrow types and the row they hold (docs/serving.md): the one place
//! that names them, for the writer and the reader alike.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, TimeUnit};

pub const TIME: &str = "time";
pub const REQUEST_ID: &str = "request_id";
pub const DEPLOYMENT: &str = "deployment";
pub const MODEL_NAME: &str = "model_name";
pub const MODEL_VERSION: &str = "model_version";
pub const ROLE: &str = "role";
pub const STATUS: &str = "status";
pub const LATENCY_US: &str = "latency_us";
pub const INPUTS: &str = "inputs";
pub const OUTPUTS: &str = "outputs";
pub const ERROR: &str = "error";

/// The columns in file order.
pub fn schema() -> Arc<Schema> {
    let text = |name: &str, nullable| Field::new(name, DataType::Utf8, nullable);
    Arc::new(Schema::new(vec![
        Field::new(
            TIME,
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        text(REQUEST_ID, false),
        text(DEPLOYMENT, false),
        text(MODEL_NAME, false),
        text(MODEL_VERSION, false),
        text(ROLE, false),
        text(STATUS, false),
        Field::new(LATENCY_US, DataType::Int64, false),
        text(INPUTS, false),
        text(OUTPUTS, true),
        text(ERROR, true),
    ]))
}

/// Which answer a row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The answer returned to the client.
    Primary,
    /// A mirrored copy's answer, never returned.
    Shadow,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Shadow => "shadow",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        [Role::Primary, Role::Shadow]
            .into_iter()
            .find(|r| r.as_str() == text)
    }
}

/// Whether the model answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    Error,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Error => "error",
        }
    }

    pub fn parse(text: &str) -> Option<Status> {
        [Status::Ok, Status::Error]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// One logged answer. Tensors are kept as the JSON text the column holds,
/// `{"<name>": {"datatype", "shape", "data"}}`: serving writes it from its tensors, readers parse
/// what they need.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub time_us: i64,
    pub request_id: String,
    pub deployment: String,
    pub model_name: String,
    pub model_version: String,
    pub role: Role,
    pub status: Status,
    pub latency_us: i64,
    pub inputs: String,
    /// `None` when the model failed.
    pub outputs: Option<String>,
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_and_statuses_read_back_what_they_write() {
        for r in [Role::Primary, Role::Shadow] {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        for s in [Status::Ok, Status::Error] {
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
        assert_eq!(Role::parse("canary"), None);
        assert_eq!(Status::parse("OK"), None);
    }
}
