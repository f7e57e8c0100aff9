//! Logged requests as a table of named columns (one row per predicted row), the shape the drift
//! engine compares with the reference.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, StringArray};
use serde_json::Value;
use twinloop_monitor::io::Table;

use crate::log::Logged;

/// One tensor of a logged request: its shape and flat data.
pub fn tensor(
    map: &serde_json::Map<String, Value>,
    name: &str,
) -> Option<(Vec<usize>, Vec<Value>)> {
    let t = map.get(name)?;
    let shape = t["shape"]
        .as_array()?
        .iter()
        .map(|d| d.as_u64().unwrap_or(0) as usize)
        .collect();
    Some((shape, t["data"].as_array()?.clone()))
}

/// Column names of a tensor with `width` values per row.
fn names(name: &str, width: usize, features: &BTreeMap<String, Vec<String>>) -> Vec<String> {
    match features.get(name) {
        Some(given) if given.len() == width => given.clone(),
        _ if width == 1 => vec![name.to_string()],
        _ => (0..width).map(|j| format!("{name}_{j}")).collect(),
    }
}

#[derive(Default)]
struct Columns {
    order: Vec<String>,
    values: BTreeMap<String, Vec<Value>>,
}

impl Columns {
    fn push(&mut self, name: String, v: Value, row: usize) {
        let column = self.values.entry(name.clone()).or_insert_with(|| {
            self.order.push(name);
            Vec::new()
        });
        column.resize(row, Value::Null);
        column.push(v);
    }
}

/// Every input (and the prediction output, as `prediction_name`) of `rows`, one table row per
/// predicted row. Numbers become Float64 columns, anything else text.
pub fn to_table(
    rows: &[Logged],
    features: &BTreeMap<String, Vec<String>>,
    prediction: Option<&str>,
) -> Table {
    let mut cols = Columns::default();
    let mut n = 0usize;
    for logged in rows {
        let mut tensors: Vec<(String, Vec<usize>, Vec<Value>)> = logged
            .inputs
            .keys()
            .filter_map(|k| tensor(&logged.inputs, k).map(|(s, d)| (k.clone(), s, d)))
            .collect();
        if let Some(p) = prediction
            && let Some((s, d)) = tensor(&logged.outputs, p)
        {
            tensors.push((p.to_string(), s, d));
        }
        let batch = tensors
            .iter()
            .map(|(_, s, _)| s.first().copied().unwrap_or(1))
            .max()
            .unwrap_or(0);
        for (name, shape, data) in tensors {
            let rows_here = shape.first().copied().unwrap_or(1).max(1);
            let width = (data.len() / rows_here).max(1);
            let labels = names(&name, width, features);
            for r in 0..rows_here.min(batch) {
                for (j, label) in labels.iter().enumerate() {
                    let v = data.get(r * width + j).cloned().unwrap_or(Value::Null);
                    cols.push(label.clone(), v, n + r);
                }
            }
        }
        n += batch;
    }
    let columns = cols
        .order
        .iter()
        .map(|name| {
            let mut values = cols.values.remove(name).unwrap_or_default();
            values.resize(n, Value::Null);
            let numeric = values.iter().all(|v| {
                v.is_number()
                    || v.is_null()
                    || matches!(v.as_str(), Some("NaN" | "Infinity" | "-Infinity"))
            });
            let array: ArrayRef = if numeric {
                Arc::new(Float64Array::from(
                    values.iter().map(number).collect::<Vec<_>>(),
                ))
            } else {
                Arc::new(StringArray::from(
                    values
                        .iter()
                        .map(|v| match v {
                            Value::Null => None,
                            Value::String(s) => Some(s.clone()),
                            other => Some(other.to_string()),
                        })
                        .collect::<Vec<_>>(),
                ))
            };
            (name.clone(), array)
        })
        .collect();
    Table { columns, rows: n }
}

pub fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => match s.as_str() {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn logged(inputs: Value, outputs: Value) -> Logged {
        Logged {
            time_us: 1,
            request_id: "r".into(),
            model_version: "1".into(),
            latency_us: 1,
            inputs: inputs.as_object().unwrap().clone(),
            outputs: outputs.as_object().unwrap().clone(),
        }
    }

    #[test]
    fn two_dimensional_inputs_become_named_columns() {
        let rows = [logged(
            json!({"X": {"shape": [2, 2], "data": [1.0, 2.0, 3.0, 4.0]}, "city": {"shape": [2, 1], "data": ["a", "b"]}}),
            json!({"label": {"shape": [2], "data": [0, 1]}}),
        )];
        let features = BTreeMap::from([(
            "X".to_string(),
            vec!["age".to_string(), "income".to_string()],
        )]);
        let t = to_table(&rows, &features, Some("label"));
        assert_eq!(t.rows, 2);
        let names: Vec<&str> = t.columns.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, vec!["age", "income", "city", "label"]);
        let income = t
            .columns
            .iter()
            .find(|(n, _)| n == "income")
            .unwrap()
            .1
            .clone();
        let income = income.as_any().downcast_ref::<Float64Array>().unwrap();
        assert_eq!(income.values(), &[2.0, 4.0]);
    }
}
