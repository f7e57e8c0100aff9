//! MLflow's proto3-JSON reply shapes, serialised straight from the domain types. Nothing goes
//! through a `serde_json::Value` tree: a 1,000-run search reply would otherwise allocate a map
//! per run, per metric and per tag before writing a byte. Empty lists and unset optional fields
//! are left out, as the real server's proto3 encoder does.

use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use twinloop_core::registry::{ModelVersion, RegisteredModel};
use twinloop_core::tracking::{
    DatasetInput, Experiment, LoggedModel, Metric, ModelInput, ModelOutput, Page, Run, RunInfo, Tag,
};

/// A domain value that has an MLflow wire shape.
pub trait ToWire {
    fn wire<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error>;
}

/// Serialises a borrowed [`ToWire`] value.
struct Ref<'a, T: ?Sized>(&'a T);

impl<T: ToWire> Serialize for Ref<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.wire(s)
    }
}

/// A list of wire values.
struct List<'a, T>(&'a [T]);

impl<T: ToWire> Serialize for List<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for item in self.0 {
            seq.serialize_element(&Ref(item))?;
        }
        seq.end()
    }
}

/// `{field: value}`: the reply of every call that answers one object (`{"run": …}`).
pub struct One<T> {
    field: &'static str,
    value: T,
}

pub fn one<T: ToWire>(field: &'static str, value: T) -> axum::Json<One<T>> {
    axum::Json(One { field, value })
}

impl<T: ToWire> Serialize for One<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(1))?;
        map.serialize_entry(self.field, &Ref(&self.value))?;
        map.end()
    }
}

/// `{field: [...]}` with the list written even when empty: the reply of the handlers that MLflow
/// answers with a plain dict instead of a proto (`get-history-bulk`).
pub struct Plain<T> {
    field: &'static str,
    items: Vec<T>,
}

pub fn plain_list<T: ToWire>(field: &'static str, items: Vec<T>) -> axum::Json<Plain<T>> {
    axum::Json(Plain { field, items })
}

impl<T: ToWire> Serialize for Plain<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(1))?;
        map.serialize_entry(self.field, &List(&self.items))?;
        map.end()
    }
}

/// A listing reply: `{field: [...], next_page_token}` with both left out when empty.
pub struct Listing<T> {
    field: &'static str,
    page: Page<T>,
}

pub fn listing<T: ToWire>(field: &'static str, page: Page<T>) -> axum::Json<Listing<T>> {
    axum::Json(Listing { field, page })
}

/// `{field: [...]}` for a reply that has no paging, the list left out when empty.
pub fn list<T: ToWire>(field: &'static str, items: Vec<T>) -> axum::Json<Listing<T>> {
    listing(
        field,
        Page {
            items,
            next_page_token: None,
        },
    )
}

impl<T: ToWire> Serialize for Listing<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        put_list(&mut map, self.field, &self.page.items)?;
        if let Some(token) = self.page.next_page_token.as_ref().filter(|t| !t.is_empty()) {
            map.serialize_entry("next_page_token", token)?;
        }
        map.end()
    }
}

fn put_list<M: SerializeMap, T: ToWire>(
    map: &mut M,
    field: &'static str,
    items: &[T],
) -> Result<(), M::Error> {
    if items.is_empty() {
        return Ok(());
    }
    map.serialize_entry(field, &List(items))
}

fn put_some<M: SerializeMap, V: Serialize>(
    map: &mut M,
    field: &'static str,
    value: &Option<V>,
) -> Result<(), M::Error> {
    match value {
        Some(v) => map.serialize_entry(field, v),
        None => Ok(()),
    }
}

fn put_non_empty<M: SerializeMap>(
    map: &mut M,
    field: &'static str,
    value: &str,
) -> Result<(), M::Error> {
    if value.is_empty() {
        return Ok(());
    }
    map.serialize_entry(field, value)
}

/// A metric value: numbers as numbers, non-finite values as the strings proto3 JSON uses.
struct MetricValue(f64);

impl Serialize for MetricValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let v = self.0;
        if v.is_nan() {
            s.serialize_str("NaN")
        } else if v == f64::INFINITY {
            s.serialize_str("Infinity")
        } else if v == f64::NEG_INFINITY {
            s.serialize_str("-Infinity")
        } else {
            s.serialize_f64(v)
        }
    }
}

impl<T: ToWire> ToWire for &T {
    fn wire<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (**self).wire(s)
    }
}

impl ToWire for Tag {
    fn wire<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(2))?;
        map.serialize_entry("key", &self.key)?;
        map.serialize_entry("value", &self.value)?;
        map.end()
    }
}

impl ToWire for Metric {
    fn wire<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("key", &self.key)?;
        map.serialize_entry("value", &MetricValue(self.value))?;
        map.serialize_entry("timestamp", &self.timestamp)?;
        map.serialize_entry("step", &self.step)?;
        put_some(&mut map, "model_id", &self.model_id)?;
        put_some(&mut map, "run_id", &self.run_id)?;
        put_some(&mut map, "dataset_name", &self.dataset_name)?;
        put_some(&mut map, "dataset_digest", &self.dataset_digest)?;
        map.end()
    }
}

impl ToWire for Experiment {
    fn wire<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("experiment_id", &self.experiment_id)?;
        map.serialize_entry("name", &self.name)?;
        map.serialize_entry("artifact_location", &self.artifact_location)?;
        map.serialize_entry("lifecycle_stage", self.lifecycle_stage.as_str())?;
        map.serialize_entry("last_update_time", &self.last_update_time)?;
        map.serialize_entry("creation_time", &self.creation_time)?;
        put_list(&mut map, "tags", &self.tags)?;
        map.end()
    }
}

impl ToWire for RunInfo {
    fn wire<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("run_uuid", &self.run_id)?;
        map.serialize_entry("run_id", &self.run_id)?;
        map.serialize_entry("experiment_id", &self.experiment_id)?;
        map.serialize_entry("run_name", &self.run_name)?;
        map.serialize_entry("user_id", &self.user_id)?;
        map.serialize_entry("status", self.status.as_str())?;
        put_some(&mut map, "start_time", &self.start_time)?;
        put_some(&mut map, "end_time", &self.end_time)?;
        map.serialize_entry("artifact_uri", &self.artifact_uri)?;
        map.serialize_entry("lifecycle_stage", self.lifecycle_stage.as_str())?;
        map.end()
    }
}

impl ToWire for DatasetInput {
    fn wire<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct DatasetJson<'a>(&'a DatasetInput);
        impl Serialize for DatasetJson<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let d = &self.0.dataset;
                let mut map = s.serialize_map(None)?;
                map.serialize_entry("name", &d.name)?;
                map.serialize_entry("digest", &d.digest)?;
                map.serialize_entry("source_type", &d.source_type)?;
                map.serialize_entry("source", &d.source)?;
                put_some(&mut map, "schema", &d.schema)?;
                put_some(&mut map, "profile", &d.profile)?;
                map.end()
            }
        }
        let mut map = s.serialize_map(None)?;
        put_list(&mut map, "tags", &self.tags)?;
        map.serialize_entry("dataset", &DatasetJson(self))?;
        map.end()
    }
}

impl ToWire for ModelOutput {
    fn wire<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(2))?;
        map.serialize_entry("model_id", &self.model_id)?;
        map.serialize_entry("step", &self.step)?;
        map.end()
    }
}

impl ToWire for ModelInput {
    fn wire<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(1))?;
        map.serialize_entry("model_id", &self.model_id)?;
        map.end()
    }
}

impl ToWire for Run {
    fn wire<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        /// `{field: [...]}`, the list left out when empty (the object itself always present).
        struct Section<'a, T>(&'static str, &'a [T]);
        impl<T: ToWire> Serialize for Section<'_, T> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut map = s.serialize_map(None)?;
                put_list(&mut map, self.0, self.1)?;
                map.end()
            }
        }
        struct Inputs<'a>(&'a Run);
        impl Serialize for Inputs<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut map = s.serialize_map(None)?;
                put_list(&mut map, "dataset_inputs", &self.0.inputs)?;
                put_list(&mut map, "model_inputs", &self.0.model_inputs)?;
                map.end()
            }
        }
        struct Data<'a>(&'a Run);
        impl Serialize for Data<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let data = &self.0.data;
                let mut map = s.serialize_map(None)?;
                put_list(&mut map, "metrics", &data.metrics)?;
                put_list(&mut map, "params", &data.params)?;
                put_list(&mut map, "tags", &data.tags)?;
                map.end()
            }
        }
        let mut map = s.serialize_map(Some(4))?;
        map.serialize_entry("info", &Ref(&self.info))?;
        map.serialize_entry("data", &Data(self))?;
        map.serialize_entry("inputs", &Inputs(self))?;
        map.serialize_entry("outputs", &Section("model_outputs", &self.outputs))?;
        map.end()
    }
}

impl ToWire for LoggedModel {
    fn wire<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Info<'a>(&'a LoggedModel);
        impl Serialize for Info<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let m = self.0;
                let mut map = s.serialize_map(None)?;
                map.serialize_entry("model_id", &m.model_id)?;
                map.serialize_entry("experiment_id", &m.experiment_id)?;
                map.serialize_entry("name", &m.name)?;
                map.serialize_entry("creation_timestamp_ms", &m.creation_timestamp_ms)?;
                map.serialize_entry("last_updated_timestamp_ms", &m.last_updated_timestamp_ms)?;
                map.serialize_entry("artifact_uri", &m.artifact_uri)?;
                map.serialize_entry("status", m.status.as_str())?;
                map.serialize_entry("model_type", &m.model_type)?;
                map.serialize_entry("source_run_id", &m.source_run_id)?;
                put_list(&mut map, "tags", &m.tags)?;
                map.end()
            }
        }
        struct Data<'a>(&'a LoggedModel);
        impl Serialize for Data<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut map = s.serialize_map(None)?;
                put_list(&mut map, "params", &self.0.params)?;
                put_list(&mut map, "metrics", &self.0.metrics)?;
                map.end()
            }
        }
        let mut map = s.serialize_map(Some(2))?;
        map.serialize_entry("info", &Info(self))?;
        map.serialize_entry("data", &Data(self))?;
        map.end()
    }
}

impl ToWire for ModelVersion {
    fn wire<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("name", &self.name)?;
        map.serialize_entry("version", &self.version.to_string())?;
        map.serialize_entry("creation_timestamp", &self.creation_timestamp)?;
        map.serialize_entry("last_updated_timestamp", &self.last_updated_timestamp)?;
        map.serialize_entry("current_stage", &self.current_stage)?;
        map.serialize_entry("description", &self.description)?;
        put_non_empty(&mut map, "user_id", &self.user_id)?;
        map.serialize_entry("source", &self.source)?;
        put_non_empty(&mut map, "run_id", &self.run_id)?;
        map.serialize_entry("status", &self.status)?;
        map.serialize_entry("run_link", &self.run_link)?;
        put_list(&mut map, "tags", &self.tags)?;
        if !self.aliases.is_empty() {
            map.serialize_entry("aliases", &self.aliases)?;
        }
        map.end()
    }
}

impl ToWire for RegisteredModel {
    fn wire<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Aliases<'a>(&'a RegisteredModel);
        impl Serialize for Aliases<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut seq = s.serialize_seq(Some(self.0.aliases.len()))?;
                for a in &self.0.aliases {
                    seq.serialize_element(&serde_json::json!({
                        "alias": a.alias,
                        "version": a.version.to_string(),
                    }))?;
                }
                seq.end()
            }
        }
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("name", &self.name)?;
        map.serialize_entry("creation_timestamp", &self.creation_timestamp)?;
        map.serialize_entry("last_updated_timestamp", &self.last_updated_timestamp)?;
        if let Some(d) = self.description.as_ref().filter(|d| !d.is_empty()) {
            map.serialize_entry("description", d)?;
        }
        put_list(&mut map, "latest_versions", &self.latest_versions)?;
        put_list(&mut map, "tags", &self.tags)?;
        if !self.aliases.is_empty() {
            map.serialize_entry("aliases", &Aliases(self))?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};
    use twinloop_core::tracking::{Dataset, LifecycleStage, RunData, RunStatus};

    use super::*;

    fn to_value<T: ToWire>(v: T) -> Value {
        serde_json::to_value(Ref(&v)).unwrap()
    }

    fn run() -> Run {
        Run {
            info: RunInfo {
                run_id: "r1".into(),
                experiment_id: "0".into(),
                run_name: "n".into(),
                user_id: "u".into(),
                status: RunStatus::Running,
                start_time: Some(5),
                end_time: None,
                artifact_uri: "a".into(),
                lifecycle_stage: LifecycleStage::Active,
            },
            data: RunData {
                metrics: vec![Metric::new("m", f64::NAN, 1, 2)],
                params: vec![Tag::new("p", "1")],
                tags: Vec::new(),
            },
            inputs: vec![DatasetInput {
                tags: Vec::new(),
                dataset: Dataset {
                    name: "d".into(),
                    digest: "x".into(),
                    source_type: "local".into(),
                    source: "s".into(),
                    schema: None,
                    profile: Some("{}".into()),
                },
            }],
            model_inputs: vec![ModelInput {
                model_id: "m-1".into(),
            }],
            outputs: Vec::new(),
        }
    }

    #[test]
    fn a_run_leaves_empty_fields_out_and_spells_non_finite_values_as_strings() {
        assert_eq!(
            to_value(run()),
            json!({
                "info": {"run_uuid": "r1", "run_id": "r1", "experiment_id": "0", "run_name": "n",
                         "user_id": "u", "status": "RUNNING", "start_time": 5,
                         "artifact_uri": "a", "lifecycle_stage": "active"},
                "data": {"metrics": [{"key": "m", "value": "NaN", "timestamp": 1, "step": 2}],
                         "params": [{"key": "p", "value": "1"}]},
                "inputs": {"dataset_inputs": [{"dataset": {"name": "d", "digest": "x",
                    "source_type": "local", "source": "s", "profile": "{}"}}],
                           "model_inputs": [{"model_id": "m-1"}]},
                "outputs": {},
            })
        );
    }

    #[test]
    fn infinities_and_numbers() {
        let m = |v| to_value(Metric::new("k", v, 0, 0))["value"].clone();
        assert_eq!(m(f64::INFINITY), json!("Infinity"));
        assert_eq!(m(f64::NEG_INFINITY), json!("-Infinity"));
        assert_eq!(m(0.25), json!(0.25));
    }

    #[test]
    fn a_listing_leaves_out_an_empty_list_and_an_empty_token() {
        let empty = Page::<Tag> {
            items: Vec::new(),
            next_page_token: Some(String::new()),
        };
        assert_eq!(
            serde_json::to_value(listing("tags", empty).0).unwrap(),
            json!({})
        );
        let page = Page {
            items: vec![Tag::new("k", "v")],
            next_page_token: Some("t".into()),
        };
        assert_eq!(
            serde_json::to_value(listing("tags", page).0).unwrap(),
            json!({"tags": [{"key": "k", "value": "v"}], "next_page_token": "t"})
        );
    }

    #[test]
    fn a_plain_list_is_written_even_when_empty() {
        assert_eq!(
            serde_json::to_string(&plain_list::<Metric>("metrics", Vec::new()).0).unwrap(),
            r#"{"metrics":[]}"#
        );
        let point = Metric {
            run_id: Some("r".into()),
            ..Metric::new("m", 1.5, 10, 2)
        };
        assert_eq!(
            serde_json::to_string(&plain_list("metrics", vec![point]).0).unwrap(),
            r#"{"metrics":[{"key":"m","value":1.5,"timestamp":10,"step":2,"run_id":"r"}]}"#
        );
    }

    #[test]
    fn a_version_number_is_a_string_and_empty_ids_are_left_out() {
        let v = ModelVersion {
            name: "m".into(),
            version: 3,
            creation_timestamp: 1,
            last_updated_timestamp: 2,
            description: String::new(),
            user_id: String::new(),
            current_stage: "None".into(),
            source: "s".into(),
            run_id: String::new(),
            run_link: String::new(),
            status: "READY".into(),
            model_id: None,
            tags: Vec::new(),
            aliases: vec!["champion".into()],
        };
        let json = to_value(v);
        assert_eq!(json["version"], json!("3"));
        assert!(json.get("user_id").is_none() && json.get("run_id").is_none());
        assert_eq!(json["aliases"], json!(["champion"]));
    }
}
