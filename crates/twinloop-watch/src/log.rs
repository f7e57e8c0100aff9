//! What monitors read of the prediction log (`twinloop-predlog`): the primary, successful rows
//! of one deployment after a point in time, with their tensors parsed.

use serde_json::{Map, Value};
use twinloop_artifacts::ArtifactStore;
use twinloop_predlog::{PredlogError, Role, Row, Status};

#[derive(Debug, Clone, PartialEq)]
pub struct Logged {
    pub time_us: i64,
    pub request_id: String,
    pub model_version: String,
    pub latency_us: i64,
    pub inputs: Map<String, Value>,
    pub outputs: Map<String, Value>,
}

impl Logged {
    /// The row as monitors see it; `None` for shadow copies and failed requests, which neither
    /// drift nor performance counts.
    pub fn from_row(row: Row) -> Option<Logged> {
        if row.role != Role::Primary || row.status != Status::Ok {
            return None;
        }
        let outputs = row.outputs?;
        let object = |s: &str| match serde_json::from_str(s) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        };
        Some(Logged {
            time_us: row.time_us,
            inputs: object(&row.inputs),
            outputs: object(&outputs),
            request_id: row.request_id,
            model_version: row.model_version,
            latency_us: row.latency_us,
        })
    }
}

/// Rows of `deployment` with `time > after_us` that monitors count, in time order.
pub async fn read_after(
    store: &ArtifactStore,
    deployment: &str,
    after_us: i64,
) -> Result<Vec<Logged>, PredlogError> {
    let rows = twinloop_predlog::read_after(store, deployment, after_us).await?;
    Ok(rows.into_iter().filter_map(Logged::from_row).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(role: Role, status: Status, outputs: Option<&str>) -> Row {
        Row {
            time_us: 5,
            request_id: "r".into(),
            deployment: "d".into(),
            model_name: "m".into(),
            model_version: "2".into(),
            role,
            status,
            latency_us: 7,
            inputs: r#"{"X":{"shape":[1],"data":[1]}}"#.into(),
            outputs: outputs.map(str::to_string),
            error: None,
        }
    }

    #[test]
    fn only_primary_answers_with_outputs_count() {
        let out = Some(r#"{"y":{"shape":[1],"data":[0]}}"#);
        let logged = Logged::from_row(row(Role::Primary, Status::Ok, out)).unwrap();
        assert_eq!(logged.inputs["X"]["data"], serde_json::json!([1]));
        assert_eq!(logged.outputs["y"]["shape"], serde_json::json!([1]));
        assert_eq!(Logged::from_row(row(Role::Shadow, Status::Ok, out)), None);
        assert_eq!(
            Logged::from_row(row(Role::Primary, Status::Error, None)),
            None
        );
        assert_eq!(Logged::from_row(row(Role::Primary, Status::Ok, None)), None);
    }
}
