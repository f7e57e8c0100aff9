//! `features.materialize@1`: the feature repository's views written to its online store by the
//! library calls `twinloop features materialize` and `materialize-incremental` make
//! (`FeatureStore::materialize`, `FeatureStore::materialize_incremental`), each run recorded in
//! the registry and lineage. Never cached: materializing is an effect on the online store, and
//! it is idempotent instead (writes are newer-wins, so a rerun changes nothing).

use serde::Deserialize;
use serde_json::{Map, Value, json};
use twinloop_features::materialize::Materialized;
use twinloop_features::progress::Progress;
use twinloop_features::store::FeatureStore;
use twinloop_features::time::{format_micros, parse_timestamp};

use super::training_set::feature_repo_dir;
use super::{Ctx, Values};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    #[serde(default = "here")]
    repo: String,
    /// Only these views (default: every online view).
    #[serde(default)]
    views: Option<Views>,
    #[serde(default)]
    start: Option<String>,
    #[serde(default)]
    end: Option<String>,
    #[serde(default)]
    incremental: bool,
}

fn here() -> String {
    ".".into()
}

/// A list of view names, or one comma-separated string (as the CLI's `--views`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Views {
    One(String),
    Many(Vec<String>),
}

impl Views {
    fn names(&self) -> Vec<String> {
        let list: Vec<&str> = match self {
            Views::One(text) => text.split(',').collect(),
            Views::Many(names) => names.iter().map(String::as_str).collect(),
        };
        list.into_iter()
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

/// Which rows are written, in UTC microseconds.
#[derive(Debug, PartialEq)]
enum Window {
    /// [start, end], inclusive.
    Range { start: i64, end: i64 },
    /// From each view's last materialized end (or end − TTL the first time) up to `end`.
    Incremental { end: i64 },
}

impl Args {
    /// The window asked for; `now` is the end of an incremental run that names none.
    fn window(&self, now: i64) -> Result<Window, String> {
        let time = |key: &str, text: &str| {
            parse_timestamp(text).map_err(|e| format!("with.{key}: {}", e.message))
        };
        if self.incremental {
            if self.start.is_some() {
                return Err("with.start: an incremental materialization starts where the last one ended; give start and end, or incremental: true with an optional end".into());
            }
            let end = self.end.as_deref().map_or(Ok(now), |e| time("end", e))?;
            return Ok(Window::Incremental { end });
        }
        let (Some(start), Some(end)) = (&self.start, &self.end) else {
            return Err("features.materialize@1 needs with.start and with.end (RFC 3339, e.g. 2024-01-01T00:00:00Z), or incremental: true".into());
        };
        let (start, end) = (time("start", start)?, time("end", end)?);
        if start > end {
            return Err(format!(
                "with.start {} is after with.end {}",
                format_micros(start),
                format_micros(end)
            ));
        }
        Ok(Window::Range { start, end })
    }
}

/// What is wrong with `with:` as written; arguments with expressions are checked when it runs.
pub(crate) fn check(with: &Value) -> Vec<String> {
    if with.to_string().contains("${{") {
        return Vec::new();
    }
    let args = match serde_json::from_value::<Args>(with.clone()) {
        Ok(args) => args,
        Err(e) => return vec![format!("features.materialize@1 with: {e}")],
    };
    args.window(0).err().into_iter().collect()
}

pub(crate) async fn run(ctx: &Ctx<'_>) -> Result<Values, String> {
    let args: Args = ctx.args()?;
    let window = args.window(twinloop_core::time::now_us())?;
    let views = args.views.as_ref().map(Views::names).unwrap_or_default();
    let dir = feature_repo_dir(ctx.repo, &args.repo);
    let meta = ctx.services.map(|s| s.store.clone());
    // DataFusion's scan and the online store's writes block between their awaits: the work
    // runs on the blocking pool, not on the scheduler's workers.
    let handle = tokio::runtime::Handle::current();
    let done = tokio::task::spawn_blocking(move || {
        handle.block_on(async move {
            let failed = |e: twinloop_core::Error| format!("materialize: {}", e.message);
            // The run's store when it has one (so the views must be applied there, as a
            // training set's are); otherwise the repository's own registry, as the CLI opens.
            let store = match meta {
                Some(meta) => FeatureStore::with_store(&dir, meta).map_err(failed)?,
                None => FeatureStore::open(&dir).await.map_err(failed)?,
            };
            let online = store.online_store().await.map_err(failed)?;
            let progress = Progress::none();
            match window {
                Window::Range { start, end } => {
                    store
                        .materialize(online.as_ref(), start, end, &views, &progress)
                        .await
                }
                Window::Incremental { end } => {
                    store
                        .materialize_incremental(online.as_ref(), end, &views, &progress)
                        .await
                }
            }
            .map_err(failed)
        })
    })
    .await
    .map_err(|e| format!("the materialization's worker stopped: {e}"))??;
    if done.is_empty() {
        ctx.log.line("nothing to materialize");
    }
    for m in &done {
        ctx.log.line(describe(m));
    }
    Ok(outputs(&done))
}

/// The line `twinloop features materialize` prints for a view.
fn describe(m: &Materialized) -> String {
    format!(
        "{}: {} source rows ({} in window) → {} entities, {} written, in {:.2} s [{} .. {}]",
        m.view,
        m.source_rows,
        m.window_rows,
        m.entities,
        m.written,
        m.seconds,
        format_micros(m.start),
        format_micros(m.end)
    )
}

/// `rows`: view → rows written; `views`: each view's window and counts.
fn outputs(done: &[Materialized]) -> Values {
    let mut rows = Map::new();
    let mut views = Map::new();
    for m in done {
        rows.insert(m.view.clone(), json!(m.written));
        views.insert(
            m.view.clone(),
            json!({
                "start": format_micros(m.start),
                "end": format_micros(m.end),
                "source_rows": m.source_rows,
                "window_rows": m.window_rows,
                "entities": m.entities,
                "written": m.written,
            }),
        );
    }
    Values::from([
        ("rows".to_owned(), Value::Object(rows)),
        ("views".to_owned(), Value::Object(views)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(with: Value) -> Args {
        serde_json::from_value(with).unwrap()
    }

    const JAN_1: i64 = 1_704_067_200_000_000;

    #[test]
    fn the_window_is_a_range_or_incremental() {
        assert_eq!(
            args(json!({"start": "2024-01-01T00:00:00Z", "end": "2024-01-02T00:00:00Z"})).window(0),
            Ok(Window::Range {
                start: JAN_1,
                end: JAN_1 + 86_400_000_000
            })
        );
        assert_eq!(
            args(json!({"incremental": true})).window(42),
            Ok(Window::Incremental { end: 42 })
        );
        assert_eq!(
            args(json!({"incremental": true, "end": "2024-01-01T00:00:00Z"})).window(42),
            Ok(Window::Incremental { end: JAN_1 })
        );
    }

    #[test]
    fn a_window_that_cannot_be_read_is_refused_when_the_file_loads() {
        let missing = check(&json!({"views": ["v"]}));
        assert!(
            missing[0].contains("needs with.start and with.end"),
            "{missing:?}"
        );
        let both = check(&json!({"incremental": true, "start": "2024-01-01T00:00:00Z"}));
        assert!(
            both[0].starts_with("with.start: an incremental"),
            "{both:?}"
        );
        let inverted =
            check(&json!({"start": "2024-01-02T00:00:00Z", "end": "2024-01-01T00:00:00Z"}));
        assert!(inverted[0].contains("is after"), "{inverted:?}");
        let bad = check(&json!({"start": "yesterday", "end": "2024-01-01T00:00:00Z"}));
        assert!(bad[0].starts_with("with.start:"), "{bad:?}");
        assert!(
            check(&json!({"incremental": true, "end": "${{ trigger.payload.time }}"})).is_empty()
        );
    }

    #[test]
    fn views_are_a_list_or_a_comma_separated_string() {
        assert_eq!(Views::One("a, b,".into()).names(), ["a", "b"]);
        assert_eq!(Views::Many(vec!["a".into()]).names(), ["a"]);
    }
}
