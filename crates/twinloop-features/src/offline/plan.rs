//! Planning a training set: which views the request reads, which of their features, where each
//! lands in the output, and each view's source layout and entity partitions.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use twinloop_core::{Error, Result};

use super::PARTITIONS;
use super::spill::Partitions;
use crate::repo::{FeatureRef, FeatureRepo, FeatureView};
use crate::source::{self, ViewLayout};

/// One view's part of the request.
pub(super) struct ViewJob {
    pub layout: ViewLayout,
    /// Positions in the view's feature list of the requested features, in request order.
    pub features: Vec<usize>,
    pub entity_parts: Partitions,
}

pub(super) struct Plan {
    pub jobs: Vec<ViewJob>,
    /// Per requested feature: its view's job and its place among the job's features.
    pub slots: Vec<(usize, usize)>,
    /// The entity file's columns, then the requested features.
    pub out_schema: SchemaRef,
    pub feature_columns: Vec<String>,
}

/// The output columns of the request, without reading any source.
#[derive(Debug)]
struct Columns<'a> {
    /// The views read, in order of first use, with the positions of their requested features.
    views: Vec<(&'a FeatureView, Vec<usize>)>,
    slots: Vec<(usize, usize)>,
    fields: Vec<Field>,
}

/// Checks every reference and assigns it a view and an output column; a column may not take
/// the name of an entity-file column or of another feature.
fn columns<'a>(
    repo: &'a FeatureRepo,
    refs: &[FeatureRef],
    full_feature_names: bool,
    entity_schema: &Schema,
) -> Result<Columns<'a>> {
    let mut names: HashMap<String, String> = entity_schema
        .fields()
        .iter()
        .map(|f| (f.name().clone(), "the entity file".to_string()))
        .collect();
    let mut out = Columns {
        views: Vec::new(),
        slots: Vec::new(),
        fields: Vec::new(),
    };
    for r in refs {
        let view = repo
            .view(&r.view)
            .ok_or_else(|| Error::invalid(format!("unknown feature view {:?}", r.view)))?;
        let position = view
            .features
            .iter()
            .position(|f| f.name == r.feature)
            .ok_or_else(|| {
                Error::invalid(format!(
                    "feature view {:?} has no feature {:?}",
                    r.view, r.feature
                ))
            })?;
        let name = r.column_name(full_feature_names);
        if let Some(owner) = names.insert(name.clone(), format!("feature view {:?}", r.view)) {
            return Err(Error::invalid(format!(
                "feature column {name:?} from {r} clashes with a column of {owner}; use --full-feature-names"
            )));
        }
        let job = match out.views.iter().position(|(v, _)| v.name == r.view) {
            Some(j) => j,
            None => {
                out.views.push((view, Vec::new()));
                out.views.len() - 1
            }
        };
        out.slots.push((job, out.views[job].1.len()));
        out.views[job].1.push(position);
        out.fields.push(Field::new(
            &name,
            view.features[position].dtype.arrow(),
            true,
        ));
    }
    Ok(out)
}

/// Plans the request: output columns, then each view's source layout (its join keys must be
/// columns of the entity file) and empty entity partitions sharing a quarter of the memory.
pub(super) async fn plan(
    repo: &FeatureRepo,
    refs: &[FeatureRef],
    full_feature_names: bool,
    entity_schema: &Schema,
    spill_dir: &Path,
    memory_limit: usize,
) -> Result<Plan> {
    let columns = columns(repo, refs, full_feature_names, entity_schema)?;
    let entity_budget = memory_limit / 4 / columns.views.len().max(1);
    let mut jobs = Vec::with_capacity(columns.views.len());
    for (view, features) in columns.views {
        let layout = source::layout(repo, view).await?;
        for key in &layout.join_keys {
            if entity_schema.field_with_name(key).is_err() {
                return Err(Error::invalid(format!(
                    "the entity file has no column {key:?}, a join key of feature view {:?}",
                    view.name
                )));
            }
        }
        let schema = Arc::new(Schema::new(vec![
            Field::new("key", DataType::Binary, false),
            Field::new("ts", DataType::Int64, false),
            Field::new("row", DataType::UInt64, false),
        ]));
        let label = format!("entities-{}", jobs.len());
        jobs.push(ViewJob {
            layout,
            features,
            entity_parts: Partitions::new(
                schema,
                PARTITIONS,
                spill_dir.into(),
                &label,
                entity_budget,
            ),
        });
    }
    let feature_columns = columns.fields.iter().map(|f| f.name().clone()).collect();
    let mut out_fields: Vec<Field> = entity_schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    out_fields.extend(columns.fields);
    Ok(Plan {
        jobs,
        slots: columns.slots,
        out_schema: Arc::new(Schema::new(out_fields)),
        feature_columns,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> FeatureRepo {
        let defs = "entities:
  - {name: driver, join_keys: [driver_id]}
sources:
  - {name: s, path: data, timestamp_field: ts}
feature_views:
  - name: a
    entities: [driver]
    source: s
    features: [{name: x, dtype: int64}, {name: y, dtype: float64}]
  - name: b
    entities: [driver]
    source: s
    features: [{name: x, dtype: string}]
";
        FeatureRepo::from_texts(
            Path::new("/repo"),
            &[
                ("twinloop.yaml".into(), "project: p\n".into()),
                ("defs.yaml".into(), defs.into()),
            ],
        )
        .unwrap()
    }

    fn refs(text: &[&str]) -> Vec<FeatureRef> {
        text.iter().map(|t| FeatureRef::parse(t).unwrap()).collect()
    }

    #[test]
    fn features_of_one_view_share_its_job_in_request_order() {
        let repo = repo();
        let entities = Schema::new(vec![Field::new("driver_id", DataType::Int64, false)]);
        let plan = columns(&repo, &refs(&["a:y", "b:x", "a:x"]), true, &entities).unwrap();
        let views: Vec<(&str, &[usize])> = plan
            .views
            .iter()
            .map(|(v, f)| (v.name.as_str(), f.as_slice()))
            .collect();
        assert_eq!(views, [("a", &[1, 0][..]), ("b", &[0][..])]);
        assert_eq!(plan.slots, [(0, 0), (1, 0), (0, 1)]);
        let names: Vec<&str> = plan.fields.iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["a__y", "b__x", "a__x"]);
        assert_eq!(plan.fields[1].data_type(), &DataType::Utf8);
    }

    #[test]
    fn a_column_name_is_taken_once() {
        let repo = repo();
        let entities = Schema::new(vec![Field::new("y", DataType::Int64, false)]);
        let err = columns(&repo, &refs(&["a:y"]), false, &entities).unwrap_err();
        assert!(err.message.contains("the entity file"), "{}", err.message);
        let none = Schema::empty();
        let err = columns(&repo, &refs(&["a:x", "b:x"]), false, &none).unwrap_err();
        assert!(
            err.message
                .contains("feature view \"a\"; use --full-feature-names"),
            "{}",
            err.message
        );
        let err = columns(&repo, &refs(&["a:z"]), false, &none).unwrap_err();
        assert!(err.message.contains("no feature \"z\""), "{}", err.message);
    }
}
