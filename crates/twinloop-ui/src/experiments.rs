//! The experiments list (`/` and `/experiments`).

use maud::{Markup, html};
use twinloop_core::tracking::Experiment;

use crate::format;
use crate::href::{self, Href};
use crate::layout::{Crumb, page};
use crate::lifecycle::{self, Lifecycle};

/// Experiments shown per page.
pub const PAGE_SIZE: i64 = 100;

/// The column a list is sorted by, as it reads in a URL (`sort=name`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExperimentSort {
    Name,
    Created,
    /// MLflow's own default order.
    #[default]
    Updated,
}

impl ExperimentSort {
    fn param(self) -> &'static str {
        match self {
            ExperimentSort::Name => "name",
            ExperimentSort::Created => "created",
            ExperimentSort::Updated => "updated",
        }
    }

    fn column(self) -> &'static str {
        match self {
            ExperimentSort::Name => "name",
            ExperimentSort::Created => "creation_time",
            ExperimentSort::Updated => "last_update_time",
        }
    }

    /// Names read A→Z first, times newest first.
    fn ascending_first(self) -> bool {
        self == ExperimentSort::Name
    }
}

/// What the list shows, from its URL: `?q=NAME&sort=name&dir=asc&view=all&page=TOKEN`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExperimentsQuery {
    /// Experiments whose name contains this, ignoring case.
    pub name: String,
    pub sort: ExperimentSort,
    pub ascending: bool,
    pub lifecycle: Lifecycle,
    pub page_token: Option<String>,
}

impl ExperimentsQuery {
    pub fn from_pairs(pairs: &[(String, String)]) -> Self {
        let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let sort = match get("sort") {
            Some("name") => ExperimentSort::Name,
            Some("created") => ExperimentSort::Created,
            _ => ExperimentSort::Updated,
        };
        let ascending = match get("dir") {
            Some("asc") => true,
            Some("desc") => false,
            _ => sort.ascending_first(),
        };
        ExperimentsQuery {
            name: get("q").unwrap_or("").trim().to_string(),
            sort,
            ascending,
            lifecycle: Lifecycle::parse(get("view").unwrap_or("")),
            page_token: get("page").filter(|t| !t.is_empty()).map(String::from),
        }
    }

    /// The MLflow filter for the name search. A quote inside the name is doubled, which is how
    /// the filter language writes it inside a string.
    pub fn filter(&self) -> Option<String> {
        (!self.name.is_empty()).then(|| format!("name ILIKE '%{}%'", self.name.replace('\'', "''")))
    }

    pub fn order_by(&self) -> Vec<String> {
        let dir = if self.ascending { "ASC" } else { "DESC" };
        vec![format!("{} {dir}", self.sort.column())]
    }

    fn href(&self, sort: ExperimentSort, ascending: bool, page: Option<&str>) -> String {
        let dir = match (ascending, sort.ascending_first()) {
            (true, false) => "asc",
            (false, true) => "desc",
            _ => "",
        };
        let sort = if sort == ExperimentSort::default() {
            ""
        } else {
            sort.param()
        };
        Href::new("/experiments")
            .q("q", &self.name)
            .q("sort", sort)
            .q("dir", dir)
            .q("view", self.lifecycle.param())
            .q("page", page.unwrap_or(""))
            .build()
    }
}

pub struct ExperimentsView<'a> {
    pub query: &'a ExperimentsQuery,
    pub experiments: &'a [Experiment],
    pub next_page_token: Option<&'a str>,
    /// The server's message when the search was refused (a bad page token).
    pub error: Option<&'a str>,
    /// What to set `MLFLOW_TRACKING_URI` to, as the browser reached this server.
    pub tracking_uri: &'a str,
}

/// Tags shown beside a name: the user's own, not MLflow's bookkeeping.
const SHOWN_TAGS: usize = 5;

pub fn experiments_page(v: &ExperimentsView) -> Markup {
    let q = v.query;
    let sort_header = |label: &str, sort: ExperimentSort| {
        let on = q.sort == sort;
        let ascending = if on {
            !q.ascending
        } else {
            sort.ascending_first()
        };
        let arrow = match (on, q.ascending) {
            (false, _) => "",
            (true, true) => " ▲",
            (true, false) => " ▼",
        };
        html! {
            th aria-sort=[on.then_some(if q.ascending { "ascending" } else { "descending" })] {
                a.on[on] href=(q.href(sort, ascending, None)) { (label) (arrow) }
            }
        }
    };
    page(
        "Experiments",
        &[Crumb::here("Experiments")],
        html! {
            h1 { "Experiments" }
            form.bar method="get" action="/experiments" {
                label { "Name contains" input type="text" name="q" value=(q.name); }
                (lifecycle::select(q.lifecycle))
                @if q.sort != ExperimentSort::default() {
                    input type="hidden" name="sort" value=(q.sort.param());
                }
                button type="submit" { "Search" }
            }
            @if let Some(message) = v.error {
                div.error role="alert" { (message) }
            }
            @if v.experiments.is_empty() {
                p.muted { "No experiments match." }
            } @else {
                div.scroll {
                    table #experiments {
                        thead {
                            tr {
                                (sort_header("Name", ExperimentSort::Name))
                                th { "ID" }
                                (sort_header("Created", ExperimentSort::Created))
                                (sort_header("Updated", ExperimentSort::Updated))
                                th { "Tags" }
                            }
                        }
                        tbody {
                            @for e in v.experiments {
                                tr {
                                    td.v { a href=(href::experiment(&e.experiment_id)) { (e.name) } }
                                    td.mono { (e.experiment_id) }
                                    td { (format::time(e.creation_time)) }
                                    td { (format::time(e.last_update_time)) }
                                    td.v {
                                        @for t in e.tags.iter().filter(|t| !t.key.starts_with("mlflow.")).take(SHOWN_TAGS) {
                                            span.chip { (t.key) "=" (t.value) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            div.pager {
                @if q.page_token.is_some() {
                    a href=(q.href(q.sort, q.ascending, None)) { "First page" }
                }
                @if let Some(token) = v.next_page_token {
                    a rel="next" href=(q.href(q.sort, q.ascending, Some(token))) { "Next page" }
                }
            }
            aside.connect {
                "Log runs here from Python: "
                code { "MLFLOW_TRACKING_URI=" (v.tracking_uri) }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use twinloop_core::tracking::{LifecycleStage, Tag};

    use super::*;

    fn experiment(id: &str, name: &str) -> Experiment {
        Experiment {
            experiment_id: id.into(),
            name: name.into(),
            artifact_location: format!("mlflow-artifacts:/{id}"),
            lifecycle_stage: LifecycleStage::Active,
            creation_time: 1_767_225_600_000,
            last_update_time: 1_767_225_605_000,
            tags: vec![
                Tag::new("team", "<img src=x onerror=alert(1)>"),
                Tag::new("mlflow.note.content", "hidden"),
            ],
        }
    }

    fn pairs(s: &[(&str, &str)]) -> Vec<(String, String)> {
        s.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn lists_experiments_with_links_and_escaped_text() {
        let query = ExperimentsQuery::default();
        let list = [
            experiment("0", "Default"),
            experiment("7", "<script>alert(1)</script>"),
        ];
        let html = experiments_page(&ExperimentsView {
            query: &query,
            experiments: &list,
            next_page_token: Some("tok/1"),
            error: None,
            tracking_uri: "http://127.0.0.1:5000",
        })
        .into_string();
        assert!(
            html.contains(r#"<a href="/experiments/7">&lt;script&gt;alert(1)&lt;/script&gt;</a>"#),
            "{html}"
        );
        assert!(!html.contains("<script>alert"));
        assert!(!html.contains("<img"));
        assert!(html.contains("team=&lt;img src=x onerror=alert(1)&gt;"));
        assert!(!html.contains("hidden"), "mlflow.* tags are not listed");
        assert!(html.contains("2026-01-01 00:00:05"));
        assert!(
            html.contains(r#"href="/experiments?page=tok%2F1""#),
            "{html}"
        );
        assert!(html.contains("MLFLOW_TRACKING_URI=http://127.0.0.1:5000"));
    }

    #[test]
    fn the_url_round_trips_into_filter_and_order() {
        let q = ExperimentsQuery::from_pairs(&pairs(&[
            ("q", " o'brien "),
            ("sort", "name"),
            ("view", "all"),
        ]));
        assert_eq!(q.filter().unwrap(), "name ILIKE '%o''brien%'");
        assert_eq!(q.order_by(), ["name ASC"]);
        assert_eq!(q.lifecycle, Lifecycle::All);
        assert_eq!(
            q.href(ExperimentSort::Name, false, None),
            "/experiments?q=o%27brien&sort=name&dir=desc&view=all"
        );
        let default = ExperimentsQuery::from_pairs(&[]);
        assert_eq!(default.filter(), None);
        assert_eq!(default.order_by(), ["last_update_time DESC"]);
    }

    #[test]
    fn an_empty_list_and_an_error_still_render_the_form() {
        let query = ExperimentsQuery::default();
        let html = experiments_page(&ExperimentsView {
            query: &query,
            experiments: &[],
            next_page_token: None,
            error: Some("Invalid page token <x>"),
            tracking_uri: "http://h",
        })
        .into_string();
        assert!(html.contains("No experiments match."));
        assert!(html.contains("Invalid page token &lt;x&gt;"));
        assert!(html.contains(r#"<form class="bar" method="get" action="/experiments">"#));
    }
}
