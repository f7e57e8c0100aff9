//! Hash partitions of Arrow batches that stay in memory until a byte budget is exceeded and
//! then move to Arrow IPC files in a temporary directory: what keeps a join bounded in memory
//! whatever the size of its inputs.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::PathBuf;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use twinloop_core::{Error, Result};

struct Partition {
    memory: Vec<RecordBatch>,
    memory_bytes: usize,
    file: Option<(PathBuf, StreamWriter<BufWriter<File>>)>,
}

/// A set of partitions sharing one schema and one memory budget.
pub struct Partitions {
    schema: SchemaRef,
    parts: Vec<Partition>,
    dir: PathBuf,
    label: String,
    budget: usize,
    memory_bytes: usize,
    spilled_bytes: usize,
}

impl Partitions {
    pub fn new(schema: SchemaRef, count: usize, dir: PathBuf, label: &str, budget: usize) -> Self {
        Partitions {
            schema,
            parts: (0..count)
                .map(|_| Partition {
                    memory: Vec::new(),
                    memory_bytes: 0,
                    file: None,
                })
                .collect(),
            dir,
            label: label.to_string(),
            budget,
            memory_bytes: 0,
            spilled_bytes: 0,
        }
    }

    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    pub fn count(&self) -> usize {
        self.parts.len()
    }

    pub fn spilled_bytes(&self) -> usize {
        self.spilled_bytes
    }

    pub fn push(&mut self, part: usize, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let bytes = batch.get_array_memory_size();
        let p = &mut self.parts[part];
        p.memory_bytes += bytes;
        p.memory.push(batch);
        self.memory_bytes += bytes;
        while self.memory_bytes > self.budget {
            let largest = (0..self.parts.len())
                .max_by_key(|&i| self.parts[i].memory_bytes)
                .expect("at least one partition");
            if self.parts[largest].memory_bytes == 0 {
                break;
            }
            self.spill(largest)?;
        }
        Ok(())
    }

    fn spill(&mut self, part: usize) -> Result<()> {
        let io = |e: std::io::Error| Error::internal("spill file").with_source(e);
        let arrow = arrow_error;
        let p = &mut self.parts[part];
        if p.file.is_none() {
            let path = self.dir.join(format!("{}-{part}.arrows", self.label));
            let file = File::create(&path).map_err(io)?;
            let writer =
                StreamWriter::try_new(BufWriter::new(file), &self.schema).map_err(arrow)?;
            p.file = Some((path, writer));
        }
        let (_, writer) = p.file.as_mut().expect("just created");
        for batch in p.memory.drain(..) {
            writer.write(&batch).map_err(arrow)?;
        }
        self.memory_bytes -= p.memory_bytes;
        self.spilled_bytes += p.memory_bytes;
        p.memory_bytes = 0;
        Ok(())
    }

    /// Each partition as a lazy stream of its batches, in push order: memory stays bounded by
    /// one batch per partition while reading.
    pub fn into_streams(self) -> Vec<PartStream> {
        self.parts
            .into_iter()
            .map(|p| PartStream {
                spilled: p
                    .file
                    .map(|(path, writer)| SpillSource::Pending(path, writer)),
                memory: p.memory.into_iter(),
            })
            .collect()
    }
}

fn arrow_error(e: arrow::error::ArrowError) -> Error {
    Error::internal("spill file").with_source(e)
}

enum SpillSource {
    Pending(PathBuf, StreamWriter<BufWriter<File>>),
    Reading(PathBuf, StreamReader<BufReader<File>>),
}

/// One partition's batches: first those spilled to its file, then those still in memory.
pub struct PartStream {
    spilled: Option<SpillSource>,
    memory: std::vec::IntoIter<RecordBatch>,
}

impl PartStream {
    fn next_spilled(&mut self) -> Result<Option<RecordBatch>> {
        loop {
            match self.spilled.take() {
                None => return Ok(None),
                Some(SpillSource::Pending(path, mut writer)) => {
                    writer.finish().map_err(arrow_error)?;
                    drop(writer);
                    let file = File::open(&path)
                        .map_err(|e| Error::internal("spill file").with_source(e))?;
                    let reader =
                        StreamReader::try_new(BufReader::new(file), None).map_err(arrow_error)?;
                    self.spilled = Some(SpillSource::Reading(path, reader));
                }
                Some(SpillSource::Reading(path, mut reader)) => match reader.next() {
                    Some(batch) => {
                        self.spilled = Some(SpillSource::Reading(path, reader));
                        return batch.map(Some).map_err(arrow_error);
                    }
                    None => {
                        let _ = std::fs::remove_file(&path);
                        return Ok(None);
                    }
                },
            }
        }
    }
}

impl Iterator for PartStream {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.next_spilled() {
            Ok(Some(batch)) => Some(Ok(batch)),
            Ok(None) => self.memory.next().map(Ok),
            Err(e) => Some(Err(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{AsArray, Int64Array};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};
    use std::sync::Arc;

    #[test]
    fn spilled_and_kept_rows_come_back_in_push_order() {
        let dir = tempfile::tempdir().unwrap();
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        let mut parts = Partitions::new(schema.clone(), 2, dir.path().into(), "t", 100);
        for i in 0..10i64 {
            let batch =
                RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![i; 8]))])
                    .unwrap();
            parts.push((i % 2) as usize, batch).unwrap();
        }
        assert!(parts.spilled_bytes() > 0);
        let back: Vec<Vec<i64>> = parts
            .into_streams()
            .into_iter()
            .map(|stream| {
                stream
                    .flat_map(|b| {
                        b.unwrap()
                            .column(0)
                            .as_primitive::<Int64Type>()
                            .values()
                            .to_vec()
                    })
                    .collect()
            })
            .collect();
        let want = |r: u8| -> Vec<i64> {
            (0..10i64)
                .filter(|i| (i % 2) as u8 == r)
                .flat_map(|i| vec![i; 8])
                .collect()
        };
        assert_eq!(back[0], want(0));
        assert_eq!(back[1], want(1));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
