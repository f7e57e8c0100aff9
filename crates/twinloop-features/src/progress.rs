//! Progress of long operations (training sets, materialization) as typed events. The library
//! only reports; whoever called decides how to show them (the CLI draws terminal bars, the
//! feature server shows nothing).

use std::sync::Arc;

/// A step of a long operation that reports progress.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Stage {
    /// `get-historical` reading and partitioning the entity rows; counted in entity rows.
    EntityRows,
    /// `get-historical` reading one view's source rows; counted in source rows.
    SourceRows { view: String },
    /// `get-historical` writing the training set; counted in entity rows.
    Writing,
    /// Materialization reading one view's source rows; counted in source rows.
    Materialize { view: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProgressEvent {
    /// The stage begins; `total` is its number of units when known in advance.
    StageStarted {
        stage: Stage,
        total: Option<u64>,
    },
    /// The stage has done `done` units so far.
    Advanced {
        stage: Stage,
        done: u64,
    },
    StageFinished {
        stage: Stage,
    },
}

type Callback = dyn Fn(ProgressEvent) + Send + Sync;

/// Where an operation sends its [`ProgressEvent`]s: a callback, or nowhere. Cheap to clone, so
/// the tasks of one operation each hold one.
#[derive(Clone, Default)]
pub struct Progress(Option<Arc<Callback>>);

impl Progress {
    /// Reports nothing.
    pub fn none() -> Progress {
        Progress(None)
    }

    /// Calls `callback` with every event, from whichever thread the work is on.
    pub fn new(callback: impl Fn(ProgressEvent) + Send + Sync + 'static) -> Progress {
        Progress(Some(Arc::new(callback)))
    }

    fn report(&self, event: impl FnOnce() -> ProgressEvent) {
        if let Some(callback) = &self.0 {
            callback(event());
        }
    }

    pub(crate) fn started(&self, stage: &Stage, total: Option<u64>) {
        self.report(|| ProgressEvent::StageStarted {
            stage: stage.clone(),
            total,
        });
    }

    pub(crate) fn advanced(&self, stage: &Stage, done: u64) {
        self.report(|| ProgressEvent::Advanced {
            stage: stage.clone(),
            done,
        });
    }

    pub(crate) fn finished(&self, stage: &Stage) {
        self.report(|| ProgressEvent::StageFinished {
            stage: stage.clone(),
        });
    }
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Progress(callback)"
        } else {
            "Progress(none)"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn events_reach_the_callback_in_order_and_none_reports_nothing() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let progress = Progress::new(move |e| sink.lock().unwrap().push(e));
        progress.started(&Stage::Writing, Some(3));
        progress.advanced(&Stage::Writing, 2);
        progress.finished(&Stage::Writing);
        Progress::none().finished(&Stage::EntityRows);
        assert_eq!(
            *seen.lock().unwrap(),
            [
                ProgressEvent::StageStarted {
                    stage: Stage::Writing,
                    total: Some(3)
                },
                ProgressEvent::Advanced {
                    stage: Stage::Writing,
                    done: 2
                },
                ProgressEvent::StageFinished {
                    stage: Stage::Writing
                },
            ]
        );
    }
}
