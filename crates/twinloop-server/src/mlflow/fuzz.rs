//! The fuzz entry over MLflow's request bodies (twinloop-fuzzing's `mlflow_json`): the request
//! types are this module's siblings', so the entry lives beside them.

use axum::response::IntoResponse;

use super::{datasets, experiments, logged_models, registry, runs, webhooks};
use crate::ApiError;
use crate::extract::parse_json;

/// One request type's decoder, as `JsonBody` runs it.
type Decoder = fn(&[u8]) -> Result<(), ApiError>;

fn decode<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<(), ApiError> {
    parse_json::<T>(body).map(drop)
}

/// Decodes `body` as the request type numbered `kind` (modulo their count), as a handler's
/// `JsonBody` would, and answers whether it was accepted. A refusal must be a client error: a
/// 5xx for a bad body is the bug this looks for.
pub fn decode_request_body(kind: u8, body: &[u8]) -> bool {
    let decoders: [Decoder; 34] = [
        decode::<datasets::SearchDatasets>,
        decode::<experiments::Create>,
        decode::<experiments::Update>,
        decode::<experiments::ById>,
        decode::<experiments::SetTag>,
        decode::<experiments::DeleteTag>,
        decode::<experiments::Search>,
        decode::<logged_models::Create>,
        decode::<logged_models::Finalize>,
        decode::<logged_models::Params>,
        decode::<logged_models::Tags>,
        decode::<logged_models::Search>,
        decode::<registry::CreateModel>,
        decode::<registry::RenameModel>,
        decode::<registry::UpdateModel>,
        decode::<registry::ByName>,
        decode::<registry::ModelTag>,
        decode::<registry::LatestVersions>,
        decode::<registry::Alias>,
        decode::<registry::CreateVersion>,
        decode::<registry::UpdateVersion>,
        decode::<registry::Transition>,
        decode::<runs::Create>,
        decode::<runs::Update>,
        decode::<runs::ById>,
        decode::<runs::Search>,
        decode::<runs::KeyValue>,
        decode::<runs::DeleteTag>,
        decode::<runs::LogBatch>,
        decode::<runs::LogInputs>,
        decode::<runs::LogOutputs>,
        decode::<webhooks::CreateWebhook>,
        decode::<webhooks::UpdateWebhook>,
        decode::<webhooks::TestWebhook>,
    ];
    match decoders[usize::from(kind) % decoders.len()](body) {
        Ok(()) => true,
        Err(e) => {
            let status = e.into_response().status();
            assert!(status.is_client_error(), "a bad body answered {status}");
            false
        }
    }
}
