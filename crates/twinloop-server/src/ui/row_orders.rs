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
//!
//! A view that holds nested runs (a run whose `mlflow.parentRunId` names another run of the
//! view) is shown as a tree, which positions must count in: its snapshot also holds the tree,
//! and a window is a slice of the tree's rows, top-level runs in the view's order, each
//! expanded parent followed by its children in that same order. A run whose parent the view
//! does not hold (another experiment, deleted, filtered out) is a top-level run, as in MLflow.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use twinloop_core::Error;
use twinloop_core::tracking::Run;
use twinloop_meta::{RunQuery, StoreHandle};
use twinloop_ui::TreeNode;

/// Snapshots kept at once; the least recently used goes first.
const KEPT: usize = 8;
/// Bytes all kept snapshots may hold together; past it the least recently used go first.
const KEPT_BYTES: usize = 256 << 20;
/// A snapshot not read for this long is dropped: the session scrolled away.
const IDLE: Duration = Duration::from_secs(300);
/// Runs a snapshot may hold (40 bytes each for MLflow's 32-character ids); a larger view pages
/// by offset, flat. Taking one reads the view's order and parent tags whole: at 250,000 nested
/// runs 1–2 s and about 200 MiB of the server's memory while it is built; at 1,000,000, 7–12 s
/// and 600–900 MiB, too much for one page view.
const MOST_RUNS: usize = 250_000;

/// The response header naming the snapshot a window was read from.
pub(super) const HEADER: &str = "x-rows-snapshot";
/// The response header saying how many rows the view read from a snapshot has.
pub(super) const TOTAL_HEADER: &str = "x-rows-total";

struct Snapshot {
    /// Which store and search it is the order of.
    key: String,
    order: Arc<Order>,
    used: Instant,
}

/// A view's runs in its order, and its tree when it holds nested runs.
pub(super) struct Order {
    ids: RunIds,
    tree: Option<Tree>,
}

/// Run ids packed into one buffer: a `Vec<String>` costs 24 bytes and an allocation per id
/// beside its text, twice what the text of MLflow's 32-character ids takes.
struct RunIds {
    text: String,
    ends: Vec<usize>,
}

impl RunIds {
    fn new(ids: &[String]) -> RunIds {
        let mut text = String::with_capacity(ids.iter().map(String::len).sum());
        let ends = ids
            .iter()
            .map(|id| {
                text.push_str(id);
                text.len()
            })
            .collect();
        RunIds { text, ends }
    }

    fn len(&self) -> usize {
        self.ends.len()
    }

    fn get(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.text[start..self.ends[i]]
    }

    fn range(&self, from: usize, to: usize) -> impl Iterator<Item = &str> {
        (from..to).map(|i| self.get(i))
    }

    fn bytes(&self) -> usize {
        self.text.capacity() + self.ends.capacity() * size_of::<usize>()
    }
}

/// The nested runs of an [`Order`], by position in its `ids`.
struct Tree {
    roots: Vec<usize>,
    /// Each parent's children, in the view's order.
    children: HashMap<usize, Vec<usize>>,
}

/// One window of a view: its rows' run ids, their places in the tree (when there is one), and
/// how many rows the whole view has.
pub(super) struct Window<'a> {
    pub ids: Vec<&'a str>,
    pub nodes: Option<Vec<TreeNode>>,
    pub total: usize,
}

impl Order {
    /// `ids` in order with `parents` (run, parent) as a tree, or flat when no run's parent is
    /// in `ids`. A parent loop is cut where the walk first meets it: that run becomes a
    /// top-level run, so every run of the view has exactly one row.
    pub(super) fn new(ids: Vec<String>, parents: &[(String, String)]) -> Order {
        let packed = RunIds::new(&ids);
        if parents.is_empty() {
            return Order {
                ids: packed,
                tree: None,
            };
        }
        let at: HashMap<&str, usize> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.as_str(), i))
            .collect();
        let mut parent_of: Vec<Option<usize>> = vec![None; ids.len()];
        for (run, parent) in parents {
            if let (Some(&r), Some(&p)) = (at.get(run.as_str()), at.get(parent.as_str()))
                && r != p
            {
                parent_of[r] = Some(p);
            }
        }
        drop(at);
        let ids = packed;
        if parent_of.iter().all(Option::is_none) {
            return Order { ids, tree: None };
        }
        let mut children: HashMap<usize, Vec<usize>> = HashMap::new();
        for (r, p) in parent_of.iter().enumerate() {
            if let Some(p) = p {
                children.entry(*p).or_default().push(r);
            }
        }
        let mut reached = vec![false; ids.len()];
        let mut roots = Vec::new();
        let tops: Vec<usize> = (0..ids.len()).filter(|&i| parent_of[i].is_none()).collect();
        for start in tops.into_iter().chain(0..ids.len()) {
            if reached[start] {
                continue;
            }
            if let Some(p) = parent_of[start]
                && let Some(siblings) = children.get_mut(&p)
            {
                siblings.retain(|&c| c != start);
            }
            roots.push(start);
            let mut stack = vec![start];
            while let Some(i) = stack.pop() {
                reached[i] = true;
                stack.extend(children.get(&i).into_iter().flatten());
            }
        }
        roots.sort_unstable();
        Order {
            ids,
            tree: Some(Tree { roots, children }),
        }
    }

    /// About how much memory the order holds.
    fn bytes(&self) -> usize {
        let word = size_of::<usize>();
        self.ids.bytes()
            + self.tree.as_ref().map_or(0, |t| {
                t.roots.capacity() * word
                    + t.children
                        .values()
                        .map(|c| c.capacity() * word + 4 * word)
                        .sum::<usize>()
            })
    }

    /// Rows `[offset, offset + limit)` of the view with the `expanded` parents open.
    pub(super) fn window(&self, expanded: &[String], offset: usize, limit: usize) -> Window<'_> {
        let Some(tree) = &self.tree else {
            let from = offset.min(self.ids.len());
            let to = from.saturating_add(limit).min(self.ids.len());
            return Window {
                ids: self.ids.range(from, to).collect(),
                nodes: None,
                total: self.ids.len(),
            };
        };
        let open: HashSet<&str> = expanded.iter().map(String::as_str).collect();
        let end = offset.saturating_add(limit);
        let (mut ids, mut nodes, mut row) = (Vec::new(), Vec::new(), 0usize);
        // Depth first, children pushed in reverse so that they come out in the view's order.
        let mut stack: Vec<(usize, usize)> = tree.roots.iter().rev().map(|&r| (r, 0)).collect();
        while let Some((i, depth)) = stack.pop() {
            let kids = tree.children.get(&i).map_or(&[][..], Vec::as_slice);
            let id = self.ids.get(i);
            let expanded = !kids.is_empty() && open.contains(id);
            if (offset..end).contains(&row) {
                ids.push(id);
                nodes.push(TreeNode {
                    depth,
                    children: kids.len(),
                    expanded,
                });
            }
            row += 1;
            if expanded {
                stack.extend(kids.iter().rev().map(|&c| (c, depth + 1)));
            }
        }
        Window {
            ids,
            nodes: Some(nodes),
            total: row,
        }
    }
}

#[derive(Default)]
struct Snapshots {
    next: u64,
    kept: HashMap<u64, Snapshot>,
}

impl Snapshots {
    /// Keeps `order` as a new snapshot and returns its id, first dropping the least recently
    /// used ones until it fits among at most `most` snapshots of at most `bytes` in all.
    fn keep(
        &mut self,
        key: String,
        order: Arc<Order>,
        now: Instant,
        most: usize,
        bytes: usize,
    ) -> u64 {
        let size = order.bytes();
        let mut held: usize = self.kept.values().map(|s| s.order.bytes()).sum();
        while !self.kept.is_empty() && (self.kept.len() >= most || held + size > bytes) {
            let Some(oldest) = self
                .kept
                .iter()
                .min_by_key(|(_, s)| s.used)
                .map(|(id, _)| *id)
            else {
                break;
            };
            if let Some(gone) = self.kept.remove(&oldest) {
                held -= gone.order.bytes();
            }
        }
        self.next += 1;
        let id = self.next;
        self.kept.insert(
            id,
            Snapshot {
                key,
                order,
                used: now,
            },
        );
        id
    }
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

/// The order of snapshot `asked` when it is one of `q`'s; else, when the view holds nested runs
/// (its positions are then the tree's) or `snapshot` asks for one, a new snapshot taken now.
/// `None` when neither, or when the view has more runs than a snapshot may hold: its windows
/// are then read by offset, flat.
pub(super) async fn order(
    store: &StoreHandle,
    q: &RunQuery,
    asked: Option<u64>,
    snapshot: bool,
) -> Result<Option<(u64, Arc<Order>)>, Error> {
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
            return Ok(Some((id, s.order.clone())));
        }
    }
    let parents = store.run_parents(q, MOST_RUNS).await?;
    let nested = parents.as_ref().is_some_and(|p| !p.is_empty());
    if !nested && !snapshot {
        return Ok(None);
    }
    let Some(ids) = store.run_order(q, MOST_RUNS).await? else {
        return Ok(None);
    };
    let order = Arc::new(Order::new(ids, parents.as_deref().unwrap_or_default()));
    let mut all = SNAPSHOTS.lock().unwrap_or_else(|e| e.into_inner());
    let id = all.keep(key, order.clone(), now, KEPT, KEPT_BYTES);
    Ok(Some((id, order)))
}

/// The runs of `ids` that `q`'s experiments and lifecycle stages still hold, in the order of
/// `ids`: one search by id (a window is at most 200 runs, within the filter's length limit).
async fn runs_by_id(store: &StoreHandle, q: &RunQuery, ids: &[&str]) -> Result<Vec<Run>, Error> {
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
    Ok(ids.iter().filter_map(|id| found.remove(*id)).collect())
}

/// A window's runs read by id, with their tree nodes when it has them; a run deleted since the
/// snapshot was taken is left out, and its node with it.
pub(super) async fn window_runs(
    store: &StoreHandle,
    q: &RunQuery,
    window: &Window<'_>,
) -> Result<(Vec<Run>, Option<Vec<TreeNode>>), Error> {
    let runs = runs_by_id(store, q, &window.ids).await?;
    let nodes = window.nodes.as_ref().map(|nodes| {
        let found: HashSet<&str> = runs.iter().map(|r| r.info.run_id.as_str()).collect();
        window
            .ids
            .iter()
            .zip(nodes)
            .filter(|(id, _)| found.contains(**id))
            .map(|(_, n)| *n)
            .collect()
    });
    Ok((runs, nodes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(ids: &[&str], parents: &[(&str, &str)]) -> Order {
        Order::new(
            ids.iter().map(|s| s.to_string()).collect(),
            &parents
                .iter()
                .map(|(r, p)| (r.to_string(), p.to_string()))
                .collect::<Vec<_>>(),
        )
    }

    fn shown(o: &Order, expanded: &[&str], offset: usize, limit: usize) -> (Vec<String>, usize) {
        let expanded: Vec<String> = expanded.iter().map(|s| s.to_string()).collect();
        let w = o.window(&expanded, offset, limit);
        let rows = w
            .ids
            .iter()
            .zip(w.nodes.as_deref().unwrap())
            .map(|(id, n)| {
                let mark = match (n.children, n.expanded) {
                    (0, _) => String::new(),
                    (c, true) => format!("-{c}"),
                    (c, false) => format!("+{c}"),
                };
                format!("{}{id}{mark}", ".".repeat(n.depth))
            })
            .collect();
        (rows, w.total)
    }

    /// The view's order: p (3 children, all far down), x, q (1 child), then the children, an
    /// orphan whose parent is not in the view, and a loop of two.
    fn nested() -> Order {
        let mut ids = vec!["p", "x", "q"];
        let filler: Vec<String> = (0..300).map(|i| format!("f{i:03}")).collect();
        ids.extend(filler.iter().map(String::as_str));
        ids.extend(["c3", "q1", "c1", "orphan", "c2", "l1", "l2", "g1"]);
        order(
            &ids,
            &[
                ("c1", "p"),
                ("c2", "p"),
                ("c3", "p"),
                ("q1", "q"),
                ("g1", "c1"),
                ("orphan", "gone"),
                ("l1", "l2"),
                ("l2", "l1"),
                ("x", "x"),
            ],
        )
    }

    #[test]
    fn top_level_runs_by_default_with_child_counts() {
        let o = nested();
        // 3 + 300 fillers + orphan + the loop's first run; children hidden.
        let (rows, total) = shown(&o, &[], 0, 4);
        assert_eq!(rows, ["p+3", "x", "q+1", "f000"]);
        assert_eq!(total, 305);
        let (rows, _) = shown(&o, &[], 302, 10);
        assert_eq!(rows, ["f299", "orphan", "l1+1"]);
    }

    #[test]
    fn an_expanded_parent_brings_its_children_from_later_windows_in_the_views_order() {
        let o = nested();
        let (rows, total) = shown(&o, &["p"], 0, 5);
        assert_eq!(rows, ["p-3", ".c3", ".c1+1", ".c2", "x"]);
        assert_eq!(total, 308);
        let (rows, total) = shown(&o, &["p", "c1", "q", "l1"], 0, 7);
        assert_eq!(rows, ["p-3", ".c3", ".c1-1", "..g1", ".c2", "x", "q-1"]);
        assert_eq!(total, 311);
        // Later windows shift by the rows shown above them, and count the same total.
        let (rows, total) = shown(&o, &["p", "c1", "q", "l1"], 7, 2);
        assert_eq!(rows, [".q1", "f000"]);
        assert_eq!(total, 311);
        let (rows, _) = shown(&o, &["p", "c1", "q", "l1"], 307, 10);
        assert_eq!(rows, ["f299", "orphan", "l1-1", ".l2"]);
        // A child expanded under a collapsed parent stays hidden; an unknown id changes nothing.
        assert_eq!(shown(&o, &["c1", "nope"], 0, 1000).1, 305);
    }

    #[test]
    fn every_run_has_exactly_one_row() {
        let o = nested();
        let (rows, total) = shown(&o, &["p", "c1", "q", "l1"], 0, 1000);
        assert_eq!(rows.len(), total);
        let mut ids: Vec<&str> = rows
            .iter()
            .map(|r| r.trim_start_matches('.').split(['+', '-']).next().unwrap())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), o.ids.len());
    }

    #[test]
    fn packed_ids_read_back_as_they_were_given() {
        let given: Vec<String> = ["a", "", "0123456789abcdef0123456789abcdef", "é"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let ids = RunIds::new(&given);
        assert_eq!(ids.len(), 4);
        assert_eq!(ids.range(0, 4).collect::<Vec<_>>(), given);
        assert_eq!(ids.get(2), given[2]);
        assert!(ids.bytes() >= 35 + 4 * size_of::<usize>());
    }

    #[test]
    fn snapshots_past_their_count_or_bytes_drop_the_least_recently_used() {
        let size = order(&["0123456789abcdef0123456789abcdef"; 100], &[]).bytes();
        let t0 = Instant::now();
        // A snapshot of `runs` ids last used `at` seconds in, among at most `most`.
        let keep = |all: &mut Snapshots, runs: usize, at: u64, most: usize| {
            let ids = vec!["0123456789abcdef0123456789abcdef"; runs];
            let (taken, used) = (Arc::new(order(&ids, &[])), t0 + Duration::from_secs(at));
            all.keep(String::new(), taken, used, most, 3 * size)
        };
        let left = |all: &Snapshots| {
            let mut ids: Vec<u64> = all.kept.keys().copied().collect();
            ids.sort_unstable();
            ids
        };
        let mut all = Snapshots::default();
        let a = keep(&mut all, 100, 0, 3);
        let b = keep(&mut all, 100, 2, 3);
        let c = keep(&mut all, 100, 1, 3);
        assert_eq!(left(&all), [a, b, c]);
        // A fourth passes the count: the least recently used (a) goes.
        let d = keep(&mut all, 100, 3, 3);
        assert_eq!(left(&all), [b, c, d]);
        // One twice the size passes the bytes: c, then b, make room; d stays.
        let e = keep(&mut all, 200, 4, 8);
        assert_eq!(left(&all), [d, e]);
        // One larger than the whole budget is still kept alone: its session needs it now.
        let f = keep(&mut all, 400, 5, 8);
        assert_eq!(left(&all), [f]);
    }

    #[test]
    fn a_view_without_nested_runs_is_flat() {
        let o = order(&["a", "b", "c"], &[("a", "elsewhere"), ("b", "b")]);
        assert!(o.tree.is_none());
        let w = o.window(&["a".to_string()], 1, 5);
        assert_eq!((w.ids, w.nodes, w.total), (vec!["b", "c"], None, 3));
    }
}
