//! Dynamic batching: requests that arrive within `max_queue_delay_us` of each other are merged
//! along the first (batch) dimension into one model run, and the outputs are split back. A batch
//! stops waiting as soon as it holds every request in flight: a lone caller never waits out the
//! delay for company that cannot come.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, mpsc, oneshot};

use crate::runtime::{InferError, OnnxModel, TensorSpec};
use crate::spec::BatchingSpec;
use crate::tensor::Tensor;

type Reply = oneshot::Sender<Result<Vec<Tensor>, InferError>>;

struct Job {
    inputs: Vec<Tensor>,
    outputs: Vec<TensorSpec>,
    reply: Reply,
}

impl Job {
    fn rows(&self) -> usize {
        self.inputs
            .first()
            .and_then(|t| t.shape.first())
            .map(|&r| r.max(0) as usize)
            .unwrap_or(0)
    }

    /// Jobs merge when they ask for the same outputs and their inputs agree past dimension 0.
    /// `None` when the job cannot be stacked with others: a scalar input has no dimension 0 to
    /// stack along, and inputs whose first dimensions differ would make the merged batch fail
    /// for every caller in it, not only for the one that sent them.
    fn merge_key(&self) -> Option<MergeKey> {
        let rows = self.inputs.first()?.shape.first()?;
        if self.inputs.iter().any(|t| t.shape.first() != Some(rows)) {
            return None;
        }
        Some((
            self.outputs.iter().map(|o| o.name.clone()).collect(),
            self.inputs
                .iter()
                .map(|t| (t.name.clone(), t.shape.get(1..).unwrap_or(&[]).to_vec()))
                .collect(),
        ))
    }
}

type MergeKey = (Vec<String>, Vec<(String, Vec<i64>)>);

/// Queue depth a batcher accepts before callers wait (back-pressure, not drops).
const QUEUE: usize = 4096;

pub struct Batcher {
    queue: mpsc::Sender<Job>,
    /// Requests submitted and not yet answered.
    in_flight: Arc<AtomicUsize>,
}

impl Batcher {
    /// Starts `workers` merging loops over one queue (one per session, so runs overlap).
    pub fn start(model: Arc<OnnxModel>, spec: BatchingSpec, workers: usize) -> Batcher {
        let (tx, rx) = mpsc::channel(QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        let in_flight = Arc::new(AtomicUsize::new(0));
        for _ in 0..workers.max(1) {
            tokio::spawn(work(model.clone(), spec, rx.clone(), in_flight.clone()));
        }
        Batcher {
            queue: tx,
            in_flight,
        }
    }

    pub async fn submit(
        &self,
        inputs: Vec<Tensor>,
        outputs: Vec<TensorSpec>,
    ) -> Result<Vec<Tensor>, InferError> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            inputs,
            outputs,
            reply,
        };
        // Counted until answered, or until the caller goes away (the guard drops either way).
        let _counted = InFlight::enter(&self.in_flight);
        self.queue
            .send(job)
            .await
            .map_err(|_| InferError::Failed("the model's batcher has stopped".into()))?;
        answer
            .await
            .map_err(|_| InferError::Failed("the model's batcher dropped the request".into()))?
    }
}

struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    fn enter(count: &'a AtomicUsize) -> InFlight<'a> {
        count.fetch_add(1, Ordering::SeqCst);
        InFlight(count)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn work(
    model: Arc<OnnxModel>,
    spec: BatchingSpec,
    rx: Arc<Mutex<mpsc::Receiver<Job>>>,
    in_flight: Arc<AtomicUsize>,
) {
    loop {
        let jobs = {
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else { return };
            let deadline = Instant::now() + Duration::from_micros(spec.max_queue_delay_us);
            let mut rows = first.rows();
            let mut jobs = vec![first];
            while rows < spec.max_batch_size && in_flight.load(Ordering::SeqCst) > jobs.len() {
                match tokio::time::timeout_at(deadline.into(), rx.recv()).await {
                    Ok(Some(job)) => {
                        rows += job.rows();
                        jobs.push(job);
                    }
                    _ => break,
                }
            }
            jobs
        };
        let model = model.clone();
        // Runs on a blocking thread so the async workers keep accepting requests meanwhile.
        let _ = tokio::task::spawn_blocking(move || run_groups(&model, jobs)).await;
    }
}

fn run_groups(model: &OnnxModel, mut jobs: Vec<Job>) {
    metrics::histogram!("twinloop_serving_batch_requests").record(jobs.len() as f64);
    while !jobs.is_empty() {
        let (group, rest): (Vec<Job>, Vec<Job>) = match jobs[0].merge_key() {
            Some(key) => jobs
                .into_iter()
                .partition(|j| j.merge_key().as_ref() == Some(&key)),
            None => {
                let rest = jobs.split_off(1);
                (jobs, rest)
            }
        };
        jobs = rest;
        run_merged(model, group);
    }
}

fn run_merged(model: &OnnxModel, mut group: Vec<Job>) {
    if group.len() <= 1 {
        if let Some(job) = group.pop() {
            let _ = job.reply.send(model.run(job.inputs, &job.outputs));
        }
        return;
    }
    let outputs = group[0].outputs.clone();
    let counts: Vec<usize> = group.iter().map(Job::rows).collect();
    let total: usize = counts.iter().sum();
    let mut replies = Vec::with_capacity(group.len());
    let mut merged: Vec<Tensor> = Vec::new();
    for job in group {
        for (i, t) in job.inputs.into_iter().enumerate() {
            match merged.get_mut(i) {
                Some(m) => {
                    // Merged jobs all have a dimension 0 (see `merge_key`), each at most
                    // max_batch_size.
                    if let (Some(total), Some(rows)) = (m.shape.first_mut(), t.shape.first()) {
                        *total = total.saturating_add(*rows);
                    }
                    m.data.append(t.data);
                }
                None => merged.push(t),
            }
        }
        replies.push(job.reply);
    }
    metrics::histogram!("twinloop_serving_batch_rows").record(total as f64);
    let result = model.run(merged, &outputs);
    let split = result.and_then(|tensors| split_rows(tensors, &counts, total));
    match split {
        Ok(parts) => {
            for (reply, part) in replies.into_iter().zip(parts) {
                let _ = reply.send(Ok(part));
            }
        }
        Err(e) => {
            for reply in replies {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}

/// Cuts each output along dimension 0 into the callers' row counts.
fn split_rows(
    tensors: Vec<Tensor>,
    counts: &[usize],
    total: usize,
) -> Result<Vec<Vec<Tensor>>, InferError> {
    let mut parts: Vec<Vec<Tensor>> = counts.iter().map(|_| Vec::new()).collect();
    for t in tensors {
        if t.shape.first().copied() != Some(total as i64) {
            return Err(InferError::Failed(format!(
                "output {:?} has shape {:?}, which cannot be split back into {} requests \
                 (hint: turn batching off for this model)",
                t.name,
                t.shape,
                counts.len()
            )));
        }
        // The model's output must divide evenly into rows, or the slices below would cut one
        // caller's rows into another's answer (or past the end).
        let per_row = t.data.len().checked_div(total).unwrap_or(0);
        if total.checked_mul(per_row) != Some(t.data.len()) {
            return Err(InferError::Failed(format!(
                "output {:?} has {} elements, which do not divide into {total} rows",
                t.name,
                t.data.len()
            )));
        }
        let mut start = 0;
        for (part, &rows) in parts.iter_mut().zip(counts) {
            let mut shape = t.shape.clone();
            if let Some(d) = shape.first_mut() {
                *d = rows as i64;
            }
            part.push(Tensor {
                name: t.name.clone(),
                shape,
                data: t.data.slice(start * per_row, (start + rows) * per_row),
            });
            start += rows;
        }
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::TensorData;

    #[test]
    fn outputs_split_back_by_rows() {
        let t = Tensor {
            name: "p".into(),
            shape: vec![3, 2],
            data: TensorData::Fp32(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
        };
        let parts = split_rows(vec![t], &[1, 2], 3).unwrap();
        assert_eq!(parts[0][0].shape, vec![1, 2]);
        assert_eq!(parts[0][0].data, TensorData::Fp32(vec![1.0, 2.0]));
        assert_eq!(parts[1][0].shape, vec![2, 2]);
        assert_eq!(parts[1][0].data, TensorData::Fp32(vec![3.0, 4.0, 5.0, 6.0]));
    }

    fn job(shapes: &[&[i64]]) -> Job {
        Job {
            inputs: shapes
                .iter()
                .enumerate()
                .map(|(i, shape)| Tensor {
                    name: format!("in{i}"),
                    shape: shape.to_vec(),
                    data: TensorData::Fp32(Vec::new()),
                })
                .collect(),
            outputs: Vec::new(),
            reply: oneshot::channel().0,
        }
    }

    #[test]
    fn only_jobs_with_one_batch_dimension_merge() {
        let a = job(&[&[2, 3], &[2]]);
        let b = job(&[&[5, 3], &[5]]);
        assert!(a.merge_key().is_some());
        assert_eq!(a.merge_key(), b.merge_key());
        assert!(job(&[&[2, 4], &[2]]).merge_key().is_some());
        assert_ne!(job(&[&[2, 4], &[2]]).merge_key(), a.merge_key());
        // Scalars have no dimension 0 to stack along.
        assert_eq!(job(&[&[]]).merge_key(), None);
        assert_eq!(job(&[&[2, 3], &[]]).merge_key(), None);
        // Rows that disagree would fail the whole merged batch, not only this caller.
        assert_eq!(job(&[&[2, 3], &[3]]).merge_key(), None);
    }

    #[test]
    fn an_output_that_does_not_divide_into_rows_is_an_error() {
        let t = Tensor {
            name: "p".into(),
            shape: vec![3, 2],
            data: TensorData::Fp32(vec![0.0; 5]),
        };
        let err = split_rows(vec![t], &[1, 2], 3).unwrap_err();
        assert_eq!(
            err,
            InferError::Failed(
                "output \"p\" has 5 elements, which do not divide into 3 rows".into()
            )
        );
    }

    #[test]
    fn an_unsplittable_output_is_an_error() {
        let t = Tensor {
            name: "s".into(),
            shape: vec![1],
            data: TensorData::Fp32(vec![0.0]),
        };
        assert!(split_rows(vec![t], &[1, 2], 3).is_err());
    }
}
