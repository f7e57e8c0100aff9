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
use crate::v2::Tensor;

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
    fn merge_key(&self) -> (Vec<String>, Vec<(String, Vec<i64>)>) {
        (
            self.outputs.iter().map(|o| o.name.clone()).collect(),
            self.inputs
                .iter()
                .map(|t| (t.name.clone(), t.shape.get(1..).unwrap_or(&[]).to_vec()))
                .collect(),
        )
    }
}

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
        let key = jobs[0].merge_key();
        let (group, rest): (Vec<Job>, Vec<Job>) =
            jobs.into_iter().partition(|j| j.merge_key() == key);
        jobs = rest;
        run_merged(model, group);
    }
}

fn run_merged(model: &OnnxModel, group: Vec<Job>) {
    if group.len() == 1 {
        let job = group.into_iter().next().expect("one job");
        let _ = job.reply.send(model.run(job.inputs, &job.outputs));
        return;
    }
    let counts: Vec<usize> = group.iter().map(Job::rows).collect();
    let total: usize = counts.iter().sum();
    let outputs = group[0].outputs.clone();
    let mut replies = Vec::with_capacity(group.len());
    let mut merged: Vec<Tensor> = Vec::new();
    for job in group {
        for (i, t) in job.inputs.into_iter().enumerate() {
            match merged.get_mut(i) {
                Some(m) => {
                    m.shape[0] += t.shape[0];
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
        let per_row = t.data.len().checked_div(total).unwrap_or(0);
        let mut start = 0;
        for (part, &rows) in parts.iter_mut().zip(counts) {
            let mut shape = t.shape.clone();
            shape[0] = rows as i64;
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
    use crate::v2::TensorData;

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
