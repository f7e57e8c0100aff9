//! The entity rows as the one file the join reads. The feature store takes a Parquet or CSV file
//! by its extension; a directory of them (labels landing day by day) or an upstream output,
//! which arrives without its extension, is first combined into one Parquet file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{Field, Schema};
use parquet::arrow::ArrowWriter;

use crate::builtins::validate_data::table;

pub(super) fn entity_file(path: &Path, combined: &Path) -> Result<PathBuf, String> {
    let known = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| ["parquet", "pq", "csv"].contains(&e.to_ascii_lowercase().as_str()));
    if known && !path.is_dir() {
        return Ok(path.to_path_buf());
    }
    let rows = table::read(path).map_err(|e| format!("with.entities: {e}"))?;
    let fields: Vec<Field> = rows
        .columns
        .iter()
        .map(|(name, array)| Field::new(name, array.data_type().clone(), true))
        .collect();
    let arrays = rows.columns.into_iter().map(|(_, array)| array).collect();
    let write = |e: &dyn std::fmt::Display| format!("cannot write {}: {e}", combined.display());
    let batch =
        RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).map_err(|e| write(&e))?;
    let file = std::fs::File::create(combined).map_err(|e| write(&e))?;
    let mut writer = ArrowWriter::try_new(file, batch.schema(), None).map_err(|e| write(&e))?;
    writer.write(&batch).map_err(|e| write(&e))?;
    writer.close().map_err(|e| write(&e))?;
    Ok(combined.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_pass_through_and_directories_are_combined() {
        let dir = tempfile::tempdir().unwrap();
        let combined = dir.path().join("entities.parquet");
        let labels = dir.path().join("labels");
        std::fs::create_dir_all(&labels).unwrap();
        std::fs::write(labels.join("day1.csv"), "id,label\n1,0\n").unwrap();
        std::fs::write(labels.join("day2.csv"), "id,label\n2,1\n3,0\n").unwrap();
        let file = labels.join("day1.csv");
        assert_eq!(entity_file(&file, &combined).unwrap(), file);
        assert!(!combined.exists());
        assert_eq!(entity_file(&labels, &combined).unwrap(), combined);
        assert_eq!(table::read(&combined).unwrap().rows, 3);
        let empty = dir.path().join("empty");
        std::fs::create_dir_all(&empty).unwrap();
        assert!(
            entity_file(&empty, &combined)
                .unwrap_err()
                .starts_with("with.entities:")
        );
    }
}
