//! Reading the data to validate: a Parquet or CSV file, or a directory of them (a partitioned
//! dataset), into the drift engine's [`Table`]. An upstream output arrives under its input's
//! name, without the extension its step gave it, so a file is recognised by its content.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use arrow::array::Array;
use twinloop_monitor::io::{FileFormat, ReadLimits, Table, read_format};

/// Reads `path`; for a directory, every `.parquet`, `.pq` and `.csv` file under it (hidden ones
/// aside) in path order, which must all have the same columns.
pub(in crate::builtins) fn read(path: &Path) -> Result<Table, String> {
    if !path.is_dir() {
        return read_file(path);
    }
    let mut files = Vec::new();
    data_files(path, &mut files).map_err(|e| format!("cannot list {}: {e}", path.display()))?;
    files.sort();
    let Some((first, rest)) = files.split_first() else {
        return Err(format!("{} holds no .parquet or .csv file", path.display()));
    };
    let mut parts = vec![read_file(first)?];
    for file in rest {
        let part = read_file(file)?;
        let names = |t: &Table| t.columns.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        if names(&part) != names(&parts[0]) {
            return Err(format!(
                "{} has columns {} but {} has {}: the files of a dataset share their columns",
                file.display(),
                names(&part).join(", "),
                first.display(),
                names(&parts[0]).join(", ")
            ));
        }
        parts.push(part);
    }
    concat(&parts, &files)
}

fn data_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        if name.is_none_or(|n| n.starts_with('.') || n.starts_with('_')) {
            continue;
        }
        if path.is_dir() {
            data_files(&path, out)?;
        } else if matches!(extension(&path).as_str(), "parquet" | "pq" | "csv") {
            out.push(path);
        }
    }
    Ok(())
}

fn concat(parts: &[Table], files: &[PathBuf]) -> Result<Table, String> {
    let mut columns = Vec::new();
    for (i, (name, first)) in parts[0].columns.iter().enumerate() {
        let arrays: Vec<&dyn Array> = parts.iter().map(|p| p.columns[i].1.as_ref()).collect();
        if let Some((j, odd)) = arrays
            .iter()
            .enumerate()
            .find(|(_, a)| a.data_type() != first.data_type())
        {
            return Err(format!(
                "column {name} is {} in {} but {} in {}",
                odd.data_type(),
                files[j].display(),
                first.data_type(),
                files[0].display()
            ));
        }
        let joined = arrow::compute::concat(&arrays).map_err(|e| format!("column {name}: {e}"))?;
        columns.push((name.clone(), joined));
    }
    Ok(Table {
        columns,
        rows: parts.iter().map(|p| p.rows).sum(),
    })
}

fn extension(path: &Path) -> String {
    path.extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase()
}

fn is_parquet(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok_and(|()| &magic == b"PAR1")
}

/// The drift engine's reader, within its default memory budget.
fn read_file(path: &Path) -> Result<Table, String> {
    let format = match extension(path).as_str() {
        "parquet" | "pq" => FileFormat::Parquet,
        "csv" => FileFormat::Csv,
        _ if is_parquet(path) => FileFormat::Parquet,
        _ => FileFormat::Csv,
    };
    read_format(path, format, ReadLimits::default()).map_err(|e| match e {
        twinloop_monitor::Error::Read { source, .. } => {
            format!("cannot read {}: {source}", path.display())
        }
        other => other.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_csv_by_content_and_directories_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(data.join("day=2")).unwrap();
        std::fs::write(data.join("day=1.csv"), "x,y\n1,a\n2,b\n").unwrap();
        std::fs::write(data.join("day=2/part.csv"), "x,y\n3,c\n").unwrap();
        std::fs::write(data.join("_SUCCESS"), "").unwrap();
        std::fs::write(data.join("notes.txt"), "not data").unwrap();
        let table = read(&data).unwrap();
        assert_eq!(table.rows, 3);
        let x =
            arrow::compute::cast(&table.columns[0].1, &arrow::datatypes::DataType::Int64).unwrap();
        let x = x
            .as_any()
            .downcast_ref::<arrow::array::Int64Array>()
            .unwrap();
        assert_eq!(x.values().to_vec(), [1, 2, 3]);
        // An upstream output arrives without its extension.
        let bare = dir.path().join("input");
        std::fs::write(&bare, "x,y\n1,a\n").unwrap();
        assert_eq!(read(&bare).unwrap().rows, 1);
    }

    #[test]
    fn mismatched_files_and_empty_directories_are_named() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            read(dir.path())
                .unwrap_err()
                .contains("no .parquet or .csv")
        );
        std::fs::write(dir.path().join("a.csv"), "x,y\n1,a\n").unwrap();
        std::fs::write(dir.path().join("b.csv"), "x,z\n1,a\n").unwrap();
        let err = read(dir.path()).unwrap_err();
        assert!(err.contains("b.csv has columns x, z"), "{err}");
        std::fs::write(dir.path().join("b.csv"), "x,y\n1.5,a\n").unwrap();
        let err = read(dir.path()).unwrap_err();
        assert!(err.contains("column x is Float64"), "{err}");
    }

    /// The pipeline reads through the drift engine's reader, so what it refuses is refused
    /// here too: a file the parquet crate panics on, an upstream output without its extension.
    #[test]
    fn a_hostile_parquet_file_is_a_read_error() {
        let dir = tempfile::tempdir().unwrap();
        let hostile = include_bytes!(
            "../../../../../fuzz/regressions/drift_parquet/arrow-schema-unknown-type.parquet"
        );
        let bare = dir.path().join("input");
        std::fs::write(&bare, hostile).unwrap();
        let err = read(&bare).unwrap_err();
        assert!(
            err.starts_with(&format!("cannot read {}: ", bare.display())),
            "{err}"
        );
    }
}
