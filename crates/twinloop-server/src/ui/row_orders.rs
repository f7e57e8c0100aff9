//! Snapshots of a sorted or filtered runs table's order, for its scrolling session. A window
//! deep in such a view is otherwise one query that sorts every run of the experiment to skip to
//! it (row 90,000 of 100,000 sorted by a metric's min: 1.4–2 s on a loaded machine, whatever the
//! window); the snapshot sorts only run ids, once, and every later window is a slice of it plus a
//! read of its runs by id.
//!
//! The table's script asks for a snapshot (`snap=new`) when it mounts and sends back the id it
//! was given (`x-rows-snapshot`) with each window. A snapshot is the search's order when it was
//! taken: rows scrolled to later neither repeat nor vanish when runs are written meanwhile, as
//! they do with offsets. An unknown or expired id is taken again. The default order of one
//! experiment without a filter never needs one: the store seeks it by start time.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use twinloop_core::Error;
use twinloop_core::tracking::Run;
use twinloop_meta::{RunQuery, StoreHandle};

/// Snapshots kept at once; the least recently used goes first.
const KEPT: usize = 8;
/// A snapshot not read for this long is dropped: the session scrolled away.
const IDLE: Duration = Duration::from_secs(300);
/// Runs a snapshot may hold (about 60 bytes each); a larger view pages by offset.
const MOST_RUNS: usize = 250_000;

/// The response header naming the snapshot a window was read from.
pub(super) const HEADER: &str = "x-rows-snapshot";

struct Snapshot {
    /// Which store and search it is the order of.
    key: String,
    ids: Arc<Vec<String>>,
    used: Instant,
}

#[derive(Default)]
struct Snapshots {
    next: u64,
    kept: HashMap<u64, Snapshot>,
}

/// Process-wide: several servers in one process (tests) are told apart by their store.
static SNAPSHOTS: LazyLock<Mutex<Snapshots>> = LazyLock::new(Mutex::default);

/// What a snapshot is the order of: the store (by address) and the search without its page.
fn key_of(store: &StoreHandle, q: &RunQuery) -> String {
    format!(
        "{:p} {:?} {:?} {:?} {:?}",
        Arc::as_ptr(store),
        q.experiment_ids,
        q.filter,
        q.order_by,
        q.view_type
    )
}

/// Whether a window of `q` is better read from a snapshot: all but the default order of one
/// experiment and one lifecycle stage without a filter, which the store seeks without sorting.
pub(super) fn worth_it(q: &RunQuery) -> bool {
    !(q.order_by.is_empty()
        && q.filter.as_deref().is_none_or(|f| f.trim().is_empty())
        && q.experiment_ids.len() == 1
        && q.view_type.stages().len() == 1)
}

/// The ids of snapshot `asked` when it is one of `q`'s, else of a new one taken now; `None`
/// when the view has more runs than a snapshot may hold.
pub(super) async fn order(
    store: &StoreHandle,
    q: &RunQuery,
    asked: Option<u64>,
) -> Result<Option<(u64, Arc<Vec<String>>)>, Error> {
    let key = key_of(store, q);
    let now = Instant::now();
    {
        let mut all = SNAPSHOTS.lock().unwrap_or_else(|e| e.into_inner());
        all.kept.retain(|_, s| now.duration_since(s.used) < IDLE);
        if let Some(id) = asked
            && let Some(s) = all.kept.get_mut(&id)
            && s.key == key
        {
            s.used = now;
            return Ok(Some((id, s.ids.clone())));
        }
    }
    let Some(ids) = store.run_order(q, MOST_RUNS).await? else {
        return Ok(None);
    };
    let ids = Arc::new(ids);
    let mut all = SNAPSHOTS.lock().unwrap_or_else(|e| e.into_inner());
    while all.kept.len() >= KEPT {
        let Some(oldest) = all
            .kept
            .iter()
            .min_by_key(|(_, s)| s.used)
            .map(|(id, _)| *id)
        else {
            break;
        };
        all.kept.remove(&oldest);
    }
    all.next += 1;
    let id = all.next;
    all.kept.insert(
        id,
        Snapshot {
            key,
            ids: ids.clone(),
            used: now,
        },
    );
    Ok(Some((id, ids)))
}

/// The runs of `ids` that `q`'s experiments and lifecycle stages still hold, in the order of
/// `ids`: one search by id (a window is at most 200 runs, within the filter's length limit).
pub(super) async fn runs_by_id(
    store: &StoreHandle,
    q: &RunQuery,
    ids: &[String],
) -> Result<Vec<Run>, Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let quoted: Vec<String> = ids
        .iter()
        .map(|r| format!("'{}'", r.replace('\'', "''")))
        .collect();
    let page = store
        .search_runs(&RunQuery {
            experiment_ids: q.experiment_ids.clone(),
            filter: Some(format!("attributes.run_id IN ({})", quoted.join(","))),
            order_by: Vec::new(),
            view_type: q.view_type,
            max_results: i64::try_from(ids.len()).unwrap_or(i64::MAX),
            page_token: None,
        })
        .await?;
    let mut found: HashMap<String, Run> = page
        .items
        .into_iter()
        .map(|r| (r.info.run_id.clone(), r))
        .collect();
    Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
}
