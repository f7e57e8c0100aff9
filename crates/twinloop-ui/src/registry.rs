//! The model registry's pages: registered models (`/models`), one model with its versions,
//! aliases and a metric over versions (`/models/{name}`), one version with its source run,
//! logged model, signature, tags and aliases (`/models/{name}/versions/{v}`), and the page that
//! confirms setting, moving or deleting an alias. Changing an alias is a POST carrying a token
//! the server minted for exactly that change; in read-only mode no form is shown at all. A
//! model's page also lists its registry events, newest first.

use std::collections::BTreeSet;

use maud::{Markup, html};
use twinloop_core::registry::{ModelVersion, RegisteredModel, RegistryEvent, RegistryEventKind};
use twinloop_core::tracking::LoggedModel;

use crate::format;
use crate::href::{self, Href};
use crate::layout::{Crumb, page};

/// Models listed per page.
pub const MODELS_PAGE: i64 = 100;
/// Versions listed on a model's page.
pub const VERSIONS_SHOWN: i64 = 200;
/// Registry events listed per page of a model's timeline.
pub const EVENTS_PAGE: i64 = 50;

pub(crate) fn model_href(name: &str) -> String {
    format!("/models/{}", href::encode(name))
}

pub(crate) fn version_href(name: &str, version: i64) -> String {
    format!("{}/versions/{version}", model_href(name))
}

/// The confirmation page of deleting `alias` from model `name`.
pub(crate) fn alias_delete_href(name: &str, alias: &str) -> String {
    Href::new(format!("{}/aliases/delete", model_href(name)))
        .q("alias", alias)
        .build()
}

/// Alias chips, each with a link to the confirmation of its deletion unless `read_only`.
fn removable_chips<'a>(
    name: &str,
    aliases: impl IntoIterator<Item = (&'a str, Option<i64>)>,
    read_only: bool,
) -> Markup {
    html! {
        @for (alias, version) in aliases {
            span.alias-item {
                @if let Some(v) = version {
                    a.chip.alias href=(version_href(name, v)) { "@" (alias) " → v" (v) }
                } @else {
                    span.chip.alias { "@" (alias) }
                }
                @if !read_only {
                    a.remove-alias href=(alias_delete_href(name, alias)) aria-label={ "Delete alias @" (alias) } title={ "Delete alias @" (alias) } { "×" }
                }
            }
        }
    }
}

/// A run link that does not need the run's experiment: the server redirects.
pub(crate) fn run_by_id_href(run_id: &str) -> String {
    format!("/runs/{}", href::encode(run_id))
}

fn alias_chips(aliases: impl IntoIterator<Item = (String, Option<i64>)>, name: &str) -> Markup {
    html! {
        @for (alias, version) in aliases {
            @if let Some(v) = version {
                a.chip.alias href=(version_href(name, v)) { "@" (alias) " → v" (v) }
            } @else {
                span.chip.alias { "@" (alias) }
            }
        }
    }
}

/// `/models?filter=…`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelsQuery {
    /// A substring of the name.
    pub name: String,
    pub page_token: Option<String>,
}

impl ModelsQuery {
    pub fn from_pairs(pairs: &[(String, String)]) -> Self {
        let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        ModelsQuery {
            name: get("name").unwrap_or("").trim().to_string(),
            page_token: get("page").filter(|t| !t.is_empty()).map(String::from),
        }
    }

    /// The registry's filter for it: MLflow's `name ILIKE '%…%'`, quotes doubled.
    pub fn filter(&self) -> Option<String> {
        (!self.name.is_empty()).then(|| format!("name ILIKE '%{}%'", self.name.replace('\'', "''")))
    }
}

pub struct ModelsView<'a> {
    pub query: &'a ModelsQuery,
    pub models: &'a [RegisteredModel],
    pub next_page_token: Option<&'a str>,
    pub error: Option<&'a str>,
}

pub fn models_page(v: &ModelsView) -> Markup {
    page(
        "Models",
        &[Crumb::here("Models")],
        html! {
            h1 { "Registered models" }
            form.bar method="get" action="/models" {
                label { "Name contains" input type="text" name="name" value=(v.query.name); }
                button type="submit" { "Search" }
            }
            @if let Some(message) = v.error { div.error role="alert" { (message) } }
            @if v.models.is_empty() {
                p.muted { "No registered models." }
            } @else {
                table #models {
                    thead { tr { th { "Name" } th { "Latest version" } th { "Aliases" } th { "Tags" } th { "Updated" } } }
                    tbody {
                        @for m in v.models {
                            @let latest = m.latest_versions.iter().map(|x| x.version).max();
                            tr {
                                td { a href=(model_href(&m.name)) { (m.name) } }
                                td.num { @if let Some(l) = latest { a href=(version_href(&m.name, l)) { "v" (l) } } }
                                td { (alias_chips(m.aliases.iter().map(|a| (a.alias.clone(), Some(a.version))), &m.name)) }
                                td { @for t in &m.tags { span.chip { (t.key) "=" (t.value) } } }
                                td { (format::time(m.last_updated_timestamp)) }
                            }
                        }
                    }
                }
            }
            div.pager {
                @if v.query.page_token.is_some() {
                    a href=(Href::new("/models").q("name", &v.query.name).build()) { "First page" }
                }
                @if let Some(token) = v.next_page_token {
                    a rel="next" href=(Href::new("/models").q("name", &v.query.name).q("page", token).build()) { "Next page" }
                }
            }
        },
    )
}

/// The latest closed window of a monitor that watches a deployment serving a version: its
/// live performance, as the monitor last measured it.
#[derive(Debug, Clone, PartialEq)]
pub struct MonitorWindow {
    pub monitor: String,
    /// When the window ended (µs since the epoch); `None` before one has closed.
    pub end_us: Option<i64>,
    /// The window's metrics by name (accuracy, rmse, drift_share, rows, …).
    pub metrics: Vec<(String, f64)>,
}

/// A deployment that serves a version, and the monitors watching it.
#[derive(Debug, Clone, PartialEq)]
pub struct Deployed {
    pub deployment: String,
    /// The share of the deployment's traffic this version answers, 0–100. A monitor measures
    /// the deployment as a whole, so below 100 its figures mix in the other versions'.
    pub traffic_percent: f64,
    pub monitors: Vec<MonitorWindow>,
}

/// One version's deployments, for the model page's online column.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionOnline {
    pub version: i64,
    pub deployed: Vec<Deployed>,
}

/// What the online column shows of a monitor when the chosen offline metric is not among its
/// metrics: the first of these it has.
const PERFORMANCE: [&str; 5] = ["accuracy", "f1", "roc_auc", "rmse", "mae"];

/// The online figure the model page shows for a version: the chosen offline metric's name if a
/// monitor reports it, else a performance metric; with the monitor and deployment it came from.
fn online_figure<'a>(
    deployed: &'a [Deployed],
    chosen: Option<&str>,
) -> Option<(&'a str, f64, &'a MonitorWindow, &'a Deployed)> {
    let windows = || {
        deployed
            .iter()
            .flat_map(|d| d.monitors.iter().map(move |m| (m, d)))
    };
    let find = |name: &str| {
        windows().find_map(|(m, d)| {
            let (k, v) = m.metrics.iter().find(|(k, _)| k == name)?;
            Some((k.as_str(), *v, m, d))
        })
    };
    chosen
        .and_then(find)
        .or_else(|| PERFORMANCE.iter().find_map(|name| find(name)))
}

/// One row of offline vs online: a metric's value in the source run and in each monitor's
/// latest window (columns in the order of `online`'s monitors).
#[derive(Debug, Clone, PartialEq)]
struct SideBySide {
    metric: String,
    offline: Option<f64>,
    online: Vec<Option<f64>>,
}

/// Offline metrics and monitors' metrics by name, side by side: the names both have first, then
/// the source run's others, then the monitors'.
fn side_by_side(offline: &[(String, f64)], online: &[Deployed]) -> Vec<SideBySide> {
    let monitors: Vec<&MonitorWindow> = online.iter().flat_map(|d| &d.monitors).collect();
    let online_names: BTreeSet<&str> = monitors
        .iter()
        .flat_map(|m| m.metrics.iter().map(|(k, _)| k.as_str()))
        .collect();
    let offline_names: BTreeSet<&str> = offline.iter().map(|(k, _)| k.as_str()).collect();
    let both = offline_names.intersection(&online_names);
    let offline_only = offline_names.difference(&online_names);
    let online_only = online_names.difference(&offline_names);
    both.chain(offline_only)
        .chain(online_only)
        .map(|name| SideBySide {
            metric: (*name).to_string(),
            offline: offline.iter().find(|(k, _)| k == name).map(|(_, v)| *v),
            online: monitors
                .iter()
                .map(|m| m.metrics.iter().find(|(k, _)| k == name).map(|(_, v)| *v))
                .collect(),
        })
        .collect()
}

fn percent(p: f64) -> String {
    format!("{}%", format::value((p * 10.0).round() / 10.0))
}

/// The version page's offline vs online: the source run's metrics beside the latest window of
/// every monitor watching a deployment that serves the version.
fn offline_online(version: i64, offline: &[(String, f64)], online: &[Deployed]) -> Markup {
    let rows = side_by_side(offline, online);
    let monitored = online.iter().any(|d| !d.monitors.is_empty());
    html! {
        h2 #offline-online-heading { "Offline vs online" }
        @if online.is_empty() {
            p.muted #online-none { "No deployment serves this version, so no monitor measures it online." }
        } @else {
            p #online-deployments {
                "Served by "
                @for (i, d) in online.iter().enumerate() {
                    @if i > 0 { ", " }
                    span.mono { (d.deployment) } " (" (percent(d.traffic_percent)) " of its traffic"
                    @if d.monitors.is_empty() { "; no monitor" }
                    ")"
                }
                "."
            }
            @for d in online.iter().filter(|d| !d.monitors.is_empty() && d.traffic_percent < 100.0) {
                p.muted.mixed-traffic {
                    "Monitors measure " span.mono { (d.deployment) } " as a whole, and v" (version) " answers "
                    (percent(d.traffic_percent)) " of its traffic: their figures include the other versions'."
                }
            }
            @if !monitored {
                p.muted #online-none { "No monitor watches a deployment of this version." }
            }
        }
        @if rows.is_empty() {
            @if monitored || !offline.is_empty() { p.muted { "No metrics yet." } }
        } @else {
            div.scroll {
                table #offline-online {
                    thead {
                        tr {
                            th { "Metric" }
                            th { "Offline: source run (last value)" }
                            @for d in online {
                                @for m in &d.monitors {
                                    th data-monitor=(m.monitor) {
                                        "Online: " span.mono { (m.monitor) } " on " span.mono { (d.deployment) }
                                        br;
                                        span.muted {
                                            @match m.end_us {
                                                Some(end) => { "window ending " (format::time(end / 1000)) }
                                                None => { "no window closed yet" }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                    tbody {
                        @for r in &rows {
                            tr class=[(r.offline.is_some() && r.online.iter().any(Option::is_some)).then_some("matched")] data-metric=(r.metric) {
                                td.mono { (r.metric) }
                                td.num { @if let Some(x) = r.offline { span title=(x) { (format::value(x)) } } }
                                @for o in &r.online {
                                    td.num { @if let Some(x) = o { span title=(x) { (format::value(*x)) } } }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The model page's online column for one version.
fn online_cell(deployed: &[Deployed], chosen: Option<&str>) -> Markup {
    html! {
        @if let Some((name, value, m, d)) = online_figure(deployed, chosen) {
            span title={ "monitor " (m.monitor) " on " (d.deployment) @if let Some(end) = m.end_us { ", window ending " (format::time(end / 1000)) } } {
                span.mono { (name) } " " (format::value(value))
            }
        } @else if deployed.is_empty() {
        } @else if deployed.iter().all(|d| d.monitors.is_empty()) {
            span.muted { "no monitor" }
        } @else {
            span.muted { "no window yet" }
        }
    }
}

/// One point of the metric-over-versions chart: a version and its source run's last value.
pub struct VersionMetric {
    pub version: i64,
    pub value: f64,
}

pub struct ModelView<'a> {
    pub model: &'a RegisteredModel,
    /// Newest first.
    pub versions: &'a [ModelVersion],
    /// Metric keys the versions' source runs logged, and the one charted.
    pub metric_keys: &'a [String],
    pub metric: Option<&'a str>,
    pub metric_points: &'a [VersionMetric],
    /// `--ui-read-only`: no link to delete an alias.
    pub read_only: bool,
    /// One page of the model's registry events, newest first.
    pub events: &'a [RegistryEvent],
    /// The id the page's events are older than (`events_before=`), if not the newest page.
    pub events_before: Option<i64>,
    /// Whether older events than this page's exist.
    pub more_events: bool,
    /// The deployments serving each version (versions served nowhere left out).
    pub online: &'a [VersionOnline],
}

const CHART_W: f64 = 640.0;
const CHART_H: f64 = 260.0;
const PAD: f64 = 50.0;

/// The chosen metric across versions as an SVG line, oldest version on the left.
fn over_versions(key: &str, points: &[VersionMetric]) -> Markup {
    let finite: Vec<&VersionMetric> = points.iter().filter(|p| p.value.is_finite()).collect();
    if finite.is_empty() {
        return html! { p.muted #metric-over-versions { "No version's source run logged " span.mono { (key) } "." } };
    }
    let (vlo, vhi) = finite.iter().fold((i64::MAX, i64::MIN), |(lo, hi), p| {
        (lo.min(p.version), hi.max(p.version))
    });
    let (ylo, yhi) = finite
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
            (lo.min(p.value), hi.max(p.value))
        });
    let x = |v: i64| {
        if vhi > vlo {
            PAD + (v - vlo) as f64 / (vhi - vlo) as f64 * (CHART_W - 2.0 * PAD)
        } else {
            CHART_W / 2.0
        }
    };
    let y = |v: f64| {
        if yhi > ylo {
            CHART_H - PAD - (v - ylo) / (yhi - ylo) * (CHART_H - 2.0 * PAD)
        } else {
            CHART_H / 2.0
        }
    };
    let mut sorted = finite.clone();
    sorted.sort_by_key(|p| p.version);
    let line: Vec<String> = sorted
        .iter()
        .map(|p| format!("{:.2},{:.2}", x(p.version), y(p.value)))
        .collect();
    html! {
        svg #metric-over-versions.plot-svg role="img" aria-label={ (key) " by version" }
            viewBox={ "0 0 " (CHART_W) " " (CHART_H) } width=(CHART_W) height=(CHART_H) {
            rect.frame x=(PAD) y=(PAD) width=(CHART_W - 2.0 * PAD) height=(CHART_H - 2.0 * PAD) {}
            text.tick x=(PAD - 6.0) y=(format!("{:.2}", y(yhi) + 4.0)) text-anchor="end" { (format::value(yhi)) }
            text.tick x=(PAD - 6.0) y=(format!("{:.2}", y(ylo) + 4.0)) text-anchor="end" { (format::value(ylo)) }
            polyline.line.c0 points=(line.join(" ")) {}
            @for p in &sorted {
                circle.dot.c0 cx=(format!("{:.2}", x(p.version))) cy=(format!("{:.2}", y(p.value))) r="4" {
                    title { "v" (p.version) ": " (p.value) }
                }
                text.tick x=(format!("{:.2}", x(p.version))) y=(CHART_H - PAD + 16.0) text-anchor="middle" { "v" (p.version) }
            }
            text.axis-label x="8" y=(PAD - 16.0) { (key) }
        }
    }
}

pub fn model_page(v: &ModelView) -> Markup {
    let m = v.model;
    let here = model_href(&m.name);
    page(
        &m.name,
        &[
            Crumb::link("Models", "/models".into()),
            Crumb::here(m.name.clone()),
        ],
        html! {
            h1 { (m.name) }
            @if let Some(d) = m.description.as_deref().filter(|d| !d.is_empty()) { p.description { (d) } }
            @if !m.aliases.is_empty() {
                p #aliases { "Aliases: " (removable_chips(&m.name, m.aliases.iter().map(|a| (a.alias.as_str(), Some(a.version))), v.read_only)) }
            }
            @if !m.tags.is_empty() {
                p { @for t in &m.tags { span.chip { (t.key) "=" (t.value) } } }
            }
            h2 { "Versions" }
            @if v.versions.is_empty() {
                p.muted { "No versions." }
            } @else {
                table #versions {
                    thead {
                        tr {
                            th { "Version" } th { "Created" } th { "Status" } th { "Stage" } th { "Source run" } th { "Aliases" }
                            @if let Some(key) = v.metric { th.mono { (key) } }
                            th { "Online (monitors)" }
                        }
                    }
                    tbody {
                        @for mv in v.versions {
                            tr {
                                td { a href=(version_href(&m.name, mv.version)) { "v" (mv.version) } }
                                td { (format::time(mv.creation_timestamp)) }
                                td { (mv.status) }
                                td { (mv.current_stage) }
                                td.mono { @if !mv.run_id.is_empty() { a href=(run_by_id_href(&mv.run_id)) { (mv.run_id) } } }
                                td { (alias_chips(mv.aliases.iter().map(|a| (a.clone(), None)), &m.name)) }
                                @if v.metric.is_some() {
                                    td.num {
                                        @if let Some(p) = v.metric_points.iter().find(|p| p.version == mv.version) {
                                            span title=(p.value) { (format::value(p.value)) }
                                        }
                                    }
                                }
                                td.online {
                                    @let deployed = v.online.iter().find(|o| o.version == mv.version).map_or(&[][..], |o| &o.deployed[..]);
                                    (online_cell(deployed, v.metric))
                                }
                            }
                        }
                    }
                }
            }
            @if !v.metric_keys.is_empty() {
                h2 { "Metric over versions" }
                form.bar method="get" action=(here) {
                    label {
                        "Source run metric (last value)"
                        select name="metric" {
                            @for k in v.metric_keys { option value=(k) selected[Some(k.as_str()) == v.metric] { (k) } }
                        }
                    }
                    button type="submit" { "Show" }
                }
                @if let Some(key) = v.metric { (over_versions(key, v.metric_points)) }
            }
            h2 #events-heading { "Events" }
            (timeline(v, &here))
        },
    )
}

/// What one event did, in words; versions link to their page.
fn event_text(name: &str, e: &RegistryEvent) -> Markup {
    let v = |version: Option<i64>| {
        html! { @if let Some(n) = version { a href=(version_href(name, n)) { "v" (n) } } }
    };
    let or_none = |s: &Option<String>| s.clone().unwrap_or_else(|| "None".into());
    let alias = e.alias.as_deref().unwrap_or("");
    let tag = e.detail.tag.as_ref();
    html! {
        @match e.kind {
            RegistryEventKind::ModelCreated => { "Model created" }
            RegistryEventKind::ModelRenamed => {
                "Renamed from " span.mono { (or_none(&e.before)) } " to " span.mono { (or_none(&e.after)) }
            }
            RegistryEventKind::ModelDeleted => { "Model deleted" }
            RegistryEventKind::VersionCreated => {
                "Version " (v(e.version)) " created"
                @if let Some(run) = e.detail.run_id.as_deref().filter(|r| !r.is_empty()) {
                    " from run " a.mono href=(run_by_id_href(run)) { (run) }
                }
            }
            RegistryEventKind::VersionDeleted => { "Version " (v(e.version)) " deleted" }
            RegistryEventKind::StageChanged => {
                (v(e.version)) " stage " (or_none(&e.before)) " → " (or_none(&e.after))
            }
            RegistryEventKind::AliasSet => {
                span.chip.alias { "@" (alias) } " → " (v(e.version))
                @if let Some(before) = e.before.as_deref().filter(|b| Some(*b) != e.after.as_deref()) {
                    " (was v" (before) ")"
                }
            }
            RegistryEventKind::AliasDeleted => {
                span.chip.alias { "@" (alias) } " deleted (was " (v(e.version)) ")"
            }
            RegistryEventKind::VersionTagSet => {
                (v(e.version)) " tag "
                @if let Some(t) = tag { span.mono { (t.key) } " = " span.mono { (t.value) } }
            }
            RegistryEventKind::VersionTagDeleted => {
                (v(e.version)) " tag "
                @if let Some(t) = tag { span.mono { (t.key) } }
                " deleted"
            }
        }
    }
}

/// The model's events, newest first, paged by id (`events_before=`) with plain links.
fn timeline(v: &ModelView, here: &str) -> Markup {
    let page_link = |before: Option<i64>| {
        let mut h = Href::new(here).q("metric", v.metric.unwrap_or(""));
        if let Some(b) = before {
            h = h.q("events_before", &b.to_string());
        }
        format!("{}#events-heading", h.build())
    };
    html! {
        @if v.events.is_empty() {
            p.muted #events-none { "No recorded events." }
        } @else {
            table #events {
                thead { tr { th { "When" } th { "Who" } th { "What" } } }
                tbody {
                    @for e in v.events {
                        tr data-event-id=(e.id) data-kind=(e.kind.as_str()) {
                            td { (format::time(e.timestamp)) }
                            td { (e.actor) }
                            td { (event_text(&v.model.name, e)) }
                        }
                    }
                }
            }
        }
        div.pager #events-pager {
            @if v.events_before.is_some() {
                a href=(page_link(None)) { "Newest events" }
            }
            @if let (true, Some(last)) = (v.more_events, v.events.last()) {
                a rel="next" href=(page_link(Some(last.id))) { "Older events" }
            }
        }
    }
}

/// The alias-change form's state: whether forms show at all, and the token for a change.
pub struct AliasForm<'a> {
    /// `--ui-read-only`: no form that changes anything.
    pub read_only: bool,
    /// Path the confirmation page is at.
    pub confirm_action: &'a str,
}

pub struct VersionView<'a> {
    pub model: &'a RegisteredModel,
    pub version: &'a ModelVersion,
    pub logged_model: Option<&'a LoggedModel>,
    /// The signature of the version's MLmodel file, when it has one.
    pub signature: Option<&'a Signature>,
    pub alias_form: AliasForm<'a>,
    /// The source run's metrics (last values), by name.
    pub offline: &'a [(String, f64)],
    /// The deployments serving this version, with their monitors' latest windows.
    pub online: &'a [Deployed],
}

/// One input, output or parameter of a model's signature.
#[derive(Debug, Clone, PartialEq)]
pub struct SignatureField {
    /// None for an unnamed tensor.
    pub name: Option<String>,
    /// `double`, `tensor<float32>`, `array<string>`, `object{a: long}` …
    pub kind: String,
    /// A tensor's shape, `(-1, 4)`; a parameter's shape when it has one.
    pub shape: Option<String>,
    pub required: bool,
    /// A parameter's default, as JSON.
    pub default: Option<String>,
}

/// An MLmodel file's `signature:`: its inputs, outputs and params, as MLflow writes them (each
/// a JSON list inside the YAML), or the block as text where a part is not in that form.
#[derive(Debug, Clone, PartialEq)]
pub struct Signature {
    pub inputs: Vec<SignatureField>,
    pub outputs: Vec<SignatureField>,
    pub params: Vec<SignatureField>,
    /// The YAML block as written, shown when `parsed` is false.
    pub raw: String,
    pub parsed: bool,
}

/// A signature type as one line: MLflow's column types, tensors, and the nested array, map and
/// object types of its newer schemas.
fn describe_type(spec: &serde_json::Value) -> String {
    let field = |k: &str| spec.get(k);
    match field("type").and_then(|t| t.as_str()) {
        Some("tensor") => format!(
            "tensor<{}>",
            field("tensor-spec")
                .and_then(|t| t.get("dtype"))
                .and_then(|d| d.as_str())
                .unwrap_or("?")
        ),
        Some("array") => format!(
            "array<{}>",
            field("items").map_or_else(|| "?".into(), describe_type)
        ),
        Some("map") => format!(
            "map<{}>",
            field("values").map_or_else(|| "?".into(), describe_type)
        ),
        Some("object") => {
            let props: Vec<String> = field("properties")
                .and_then(|p| p.as_object())
                .map(|p| {
                    p.iter()
                        .map(|(k, v)| format!("{k}: {}", describe_type(v)))
                        .collect()
                })
                .unwrap_or_default();
            format!("object{{{}}}", props.join(", "))
        }
        Some(other) => other.to_string(),
        None => "?".into(),
    }
}

fn shape_text(shape: &serde_json::Value) -> Option<String> {
    let dims: Vec<String> = shape.as_array()?.iter().map(|d| d.to_string()).collect();
    Some(format!("({})", dims.join(", ")))
}

fn signature_fields(part: Option<&serde_norway::Value>) -> Option<Vec<SignatureField>> {
    let text = match part {
        None | Some(serde_norway::Value::Null) => return Some(Vec::new()),
        Some(serde_norway::Value::String(s)) => s,
        Some(_) => return None,
    };
    let specs: Vec<serde_json::Value> = serde_json::from_str(text).ok()?;
    specs
        .iter()
        .map(|spec| {
            spec.as_object()?;
            let shape = spec
                .get("tensor-spec")
                .and_then(|t| t.get("shape"))
                .or_else(|| spec.get("shape"))
                .and_then(shape_text);
            Some(SignatureField {
                name: spec.get("name").and_then(|n| n.as_str()).map(String::from),
                kind: describe_type(spec),
                shape,
                required: spec
                    .get("required")
                    .and_then(|r| r.as_bool())
                    .unwrap_or(true),
                default: spec.get("default").map(|d| d.to_string()),
            })
        })
        .collect()
}

pub fn version_page(v: &VersionView) -> Markup {
    let m = v.model;
    let mv = v.version;
    let title = format!("{} v{}", m.name, mv.version);
    page(
        &title,
        &[
            Crumb::link("Models", "/models".into()),
            Crumb::link(m.name.clone(), model_href(&m.name)),
            Crumb::here(format!("v{}", mv.version)),
        ],
        html! {
            h1 { (m.name) " " span.muted { "version " (mv.version) } }
            table.kv #version {
                tbody {
                    tr { td { "Status" } td { (mv.status) } }
                    tr { td { "Stage" } td { (mv.current_stage) } }
                    tr { td { "Created" } td { (format::time(mv.creation_timestamp)) } }
                    tr { td { "User" } td { (mv.user_id) } }
                    tr { td { "Source run" } td.mono { @if mv.run_id.is_empty() { span.muted { "none" } } @else { a #source-run href=(run_by_id_href(&mv.run_id)) { (mv.run_id) } } } }
                    tr { td { "Source" } td.mono { (mv.source) } }
                    @if let Some(id) = &mv.model_id {
                        tr {
                            td { "Logged model" }
                            td {
                                span.mono #logged-model { (id) }
                                @if let Some(lm) = v.logged_model {
                                    " " span.muted { (lm.name) " · " (lm.status.as_str()) }
                                    @if !lm.source_run_id.is_empty() && lm.source_run_id != mv.run_id {
                                        " · run " a href=(run_by_id_href(&lm.source_run_id)) { (lm.source_run_id) }
                                    }
                                }
                            }
                        }
                    }
                    @if !mv.description.is_empty() { tr { td { "Description" } td { (mv.description) } } }
                }
            }
            (offline_online(mv.version, v.offline, v.online))
            h2 { "Aliases" }
            p #version-aliases {
                @if mv.aliases.is_empty() { span.muted { "None." } }
                (removable_chips(&m.name, mv.aliases.iter().map(|a| (a.as_str(), None)), v.alias_form.read_only))
            }
            @if !v.alias_form.read_only {
                form.bar #alias-form method="get" action=(v.alias_form.confirm_action) {
                    label { "Set or move alias to this version" input type="text" name="alias" required placeholder="champion" list="known-aliases"; }
                    datalist #known-aliases {
                        @for known in &m.aliases { option value=(known.alias) { "@" (known.alias) " → v" (known.version) } }
                    }
                    button type="submit" { "Review" }
                }
                @let elsewhere: Vec<_> = m.aliases.iter().filter(|a| a.version != mv.version).collect();
                @if !elsewhere.is_empty() {
                    p.muted #other-aliases {
                        "Move here: "
                        @for other in elsewhere {
                            a.chip.alias href=(Href::new(v.alias_form.confirm_action).q("alias", &other.alias).build()) { "@" (other.alias) " (now v" (other.version) ")" }
                        }
                    }
                }
            }
            h2 { "Signature" }
            (signature_section(v.signature))
            h2 { "Tags" }
            @if mv.tags.is_empty() { p.muted { "No tags." } } @else {
                table.kv #version-tags { tbody { @for t in &mv.tags { tr { td.mono { (t.key) } td { (t.value) } } } } }
            }
        },
    )
}

pub struct AliasConfirmView<'a> {
    pub model: &'a RegisteredModel,
    pub version: i64,
    pub alias: &'a str,
    /// The version the alias names now, if any.
    pub current: Option<i64>,
    /// Where the form posts, and the token that authorizes exactly this change.
    pub action: &'a str,
    pub token: &'a str,
    /// Deleting the alias (which names `version` now) rather than pointing it at `version`.
    pub deleting: bool,
}

/// The confirmation of an alias change: what it was and what it becomes, and one POST button.
pub fn alias_confirm_page(v: &AliasConfirmView) -> Markup {
    let m = v.model;
    let verb = if v.deleting {
        "Delete alias "
    } else {
        "Set alias "
    };
    page(
        "Confirm alias",
        &[
            Crumb::link("Models", "/models".into()),
            Crumb::link(m.name.clone(), model_href(&m.name)),
            Crumb::link(format!("v{}", v.version), version_href(&m.name, v.version)),
            Crumb::here("Alias"),
        ],
        html! {
            h1 { (verb) span.mono { "@" (v.alias) } }
            p #alias-change {
                @match v.current {
                    _ if v.deleting => { "Delete @" (v.alias) " of " (m.name) "? It names version " (v.version) " now." }
                    Some(c) if c == v.version => { "@" (v.alias) " already names version " (c) "." }
                    Some(c) => { "Move @" (v.alias) " of " (m.name) " from version " (c) " to version " (v.version) "?" }
                    None => { "Point the new alias @" (v.alias) " of " (m.name) " at version " (v.version) "?" }
                }
            }
            form #alias-confirm method="post" action=(v.action) hx-boost="false" {
                input type="hidden" name="alias" value=(v.alias);
                input type="hidden" name="version" value=(v.version);
                input type="hidden" name="token" value=(v.token);
                button type="submit" { "Confirm" }
                " "
                a href=(version_href(&m.name, v.version)) { "Cancel" }
            }
        },
    )
}

/// The lines of an MLmodel file's `signature:` block, which is YAML at the top level.
fn signature_block(mlmodel: &str) -> Option<String> {
    let mut lines = mlmodel.lines().skip_while(|l| !l.starts_with("signature:"));
    let first = lines.next()?;
    let mut out = vec![first];
    out.extend(lines.take_while(|l| l.is_empty() || l.starts_with(' ') || l.starts_with('\t')));
    Some(out.join("\n").trim_end().to_string())
}

/// The signature of an MLmodel file, if it has one. The block is read on its own, so the rest
/// of the file (flavors of any shape) cannot make it unreadable.
pub fn mlmodel_signature(mlmodel: &str) -> Option<Signature> {
    let raw = signature_block(mlmodel)?;
    let parts = serde_norway::from_str::<serde_norway::Value>(&raw)
        .ok()
        .and_then(|doc| doc.get("signature").cloned());
    let fields = parts.as_ref().and_then(|p| {
        Some((
            signature_fields(p.get("inputs"))?,
            signature_fields(p.get("outputs"))?,
            signature_fields(p.get("params"))?,
        ))
    });
    Some(match fields {
        Some((inputs, outputs, params)) => Signature {
            inputs,
            outputs,
            params,
            raw,
            parsed: true,
        },
        None => Signature {
            inputs: Vec::new(),
            outputs: Vec::new(),
            params: Vec::new(),
            raw,
            parsed: false,
        },
    })
}

fn signature_table(id: &str, caption: &str, fields: &[SignatureField], params: bool) -> Markup {
    html! {
        table.signature id=(id) {
            caption { (caption) }
            thead { tr { th { "Name" } th { "Type" } th { "Shape" } @if params { th { "Default" } } @else { th { "Required" } } } }
            tbody {
                @for f in fields {
                    tr {
                        td.mono { @if let Some(n) = &f.name { (n) } @else { span.muted { "(unnamed)" } } }
                        td.mono { (f.kind) }
                        td.mono { @if let Some(s) = &f.shape { (s) } }
                        @if params {
                            td.mono { @if let Some(d) = &f.default { (d) } }
                        } @else {
                            td { @if f.required { "yes" } @else { "no" } }
                        }
                    }
                }
            }
        }
    }
}

fn signature_section(sig: Option<&Signature>) -> Markup {
    html! {
        div #signature {
            @match sig {
                None => { p.muted { "No signature in the model's MLmodel file." } }
                Some(s) if !s.parsed => { pre.text { (s.raw) } }
                Some(s) => {
                    @if s.inputs.is_empty() { p.muted { "No inputs in the signature." } }
                    @else { (signature_table("signature-inputs", "Inputs", &s.inputs, false)) }
                    @if s.outputs.is_empty() { p.muted { "No outputs in the signature." } }
                    @else { (signature_table("signature-outputs", "Outputs", &s.outputs, false)) }
                    @if !s.params.is_empty() { (signature_table("signature-params", "Parameters", &s.params, true)) }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use twinloop_core::registry::ModelAlias;
    use twinloop_core::tracking::Tag;

    use super::*;

    fn model(name: &str) -> RegisteredModel {
        RegisteredModel {
            name: name.into(),
            creation_timestamp: 1,
            last_updated_timestamp: 2,
            description: Some("<script>d</script>".into()),
            tags: vec![Tag::new("<script>k</script>", "v")],
            aliases: vec![ModelAlias {
                alias: "champion".into(),
                version: 2,
            }],
            latest_versions: vec![version(name, 2)],
        }
    }

    fn version(name: &str, v: i64) -> ModelVersion {
        ModelVersion {
            name: name.into(),
            version: v,
            creation_timestamp: 1,
            last_updated_timestamp: 1,
            description: String::new(),
            user_id: "u".into(),
            current_stage: "None".into(),
            source: format!("models:/m-{v}"),
            run_id: format!("run{v}"),
            run_link: String::new(),
            status: "READY".into(),
            model_id: Some(format!("m-{v}")),
            tags: vec![],
            aliases: if v == 2 {
                vec!["champion".into()]
            } else {
                vec![]
            },
        }
    }

    #[test]
    fn models_list_latest_versions_and_aliases() {
        let ms = [model("fraud <b>x</b>")];
        let html = models_page(&ModelsView {
            query: &ModelsQuery::default(),
            models: &ms,
            next_page_token: None,
            error: None,
        })
        .into_string();
        assert!(
            html.contains(
                r#"<a href="/models/fraud%20%3Cb%3Ex%3C%2Fb%3E">fraud &lt;b&gt;x&lt;/b&gt;</a>"#
            ),
            "{html}"
        );
        assert!(
            html.contains(">v2</a>") && html.contains("@champion → v2"),
            "{html}"
        );
        assert!(!html.contains("<script>k"));
        let q = ModelsQuery::from_pairs(&[("name".into(), "it's".into())]);
        assert_eq!(q.filter().unwrap(), "name ILIKE '%it''s%'");
    }

    #[test]
    fn the_model_page_lists_versions_and_charts_a_metric() {
        let m = model("fraud");
        let versions = [version("fraud", 2), version("fraud", 1)];
        let keys = ["auc".to_string()];
        let points = [
            VersionMetric {
                version: 1,
                value: 0.8,
            },
            VersionMetric {
                version: 2,
                value: 0.9,
            },
        ];
        let online = [VersionOnline {
            version: 2,
            deployed: vec![deployed(
                "fraud-prod",
                100.0,
                &[("watch", &[("accuracy", 0.91), ("rows", 500.0)])],
            )],
        }];
        let html = model_page(&ModelView {
            model: &m,
            versions: &versions,
            metric_keys: &keys,
            metric: Some("auc"),
            metric_points: &points,
            read_only: false,
            events: &[],
            events_before: None,
            more_events: false,
            online: &online,
        })
        .into_string();
        assert!(html.contains(r#"<a href="/models/fraud/versions/1">v1</a>"#));
        assert!(html.contains(r#"<a href="/runs/run2">run2</a>"#));
        assert!(html.contains(r#"id="metric-over-versions""#) && html.contains("<polyline"));
        // The chosen metric is a column of the versions table too.
        assert!(html.contains(r#"<th class="mono">auc</th>"#), "{html}");
        assert!(html.contains(r#"<span title="0.9">0.9</span>"#), "{html}");
        assert!(!html.contains("<script>d"), "{html}");
        // The online column: v2's monitor has no auc, so its accuracy; v1 is served nowhere.
        assert!(html.contains("<th>Online (monitors)</th>"), "{html}");
        assert!(
            html.contains(r#"<span class="mono">accuracy</span> 0.91"#),
            "{html}"
        );
        assert_eq!(html.matches(r#"<td class="online"></td>"#).count(), 1);
    }

    fn deployed(name: &str, share: f64, monitors: &[(&str, &[(&str, f64)])]) -> Deployed {
        Deployed {
            deployment: name.into(),
            traffic_percent: share,
            monitors: monitors
                .iter()
                .map(|(m, metrics)| MonitorWindow {
                    monitor: (*m).into(),
                    end_us: Some(1_767_225_600_000_000),
                    metrics: metrics.iter().map(|(k, v)| ((*k).into(), *v)).collect(),
                })
                .collect(),
        }
    }

    #[test]
    fn offline_and_online_metrics_line_up_by_name() {
        let offline = [("accuracy".to_string(), 0.95), ("loss".to_string(), 0.2)];
        let online = [
            deployed("a", 80.0, &[("m1", &[("rows", 10.0), ("accuracy", 0.9)])]),
            deployed("b", 100.0, &[]),
            deployed("c", 100.0, &[("m2", &[("accuracy", 0.8)])]),
        ];
        let rows = side_by_side(&offline, &online);
        let names: Vec<&str> = rows.iter().map(|r| r.metric.as_str()).collect();
        assert_eq!(names, ["accuracy", "loss", "rows"]);
        assert_eq!(rows[0].offline, Some(0.95));
        assert_eq!(rows[0].online, [Some(0.9), Some(0.8)]);
        assert_eq!(rows[1].online, [None, None]);
        assert_eq!(rows[2].offline, None);
        // The model page's figure: the chosen metric if a monitor has it, else performance.
        let (name, value, m, d) = online_figure(&online, Some("rows")).unwrap();
        assert_eq!(
            (name, value, m.monitor.as_str(), d.deployment.as_str()),
            ("rows", 10.0, "m1", "a")
        );
        assert_eq!(online_figure(&online, Some("auc")).unwrap().1, 0.9);
        assert!(online_figure(&online[1..2], None).is_none());
    }

    #[test]
    fn the_version_page_sets_offline_beside_online() {
        let m = model("fraud");
        let mv = version("fraud", 2);
        let render = |offline: &[(String, f64)], online: &[Deployed]| {
            version_page(&VersionView {
                model: &m,
                version: &mv,
                logged_model: None,
                signature: None,
                alias_form: AliasForm {
                    read_only: true,
                    confirm_action: "",
                },
                offline,
                online,
            })
            .into_string()
        };
        let offline = [("accuracy".to_string(), 0.95)];
        let html = render(
            &offline,
            &[deployed(
                "<b>prod</b>",
                75.0,
                &[("watch", &[("accuracy", 0.875), ("drift_share", 0.5)])],
            )],
        );
        assert!(
            html.contains(r#"<tr class="matched" data-metric="accuracy"><td class="mono">accuracy</td><td class="num"><span title="0.95">0.95</span></td><td class="num"><span title="0.875">0.875</span></td></tr>"#),
            "{html}"
        );
        assert!(html.contains(r#"<tr data-metric="drift_share">"#), "{html}");
        assert!(html.contains("&lt;b&gt;prod&lt;/b&gt;") && !html.contains("<b>prod"));
        assert!(html.contains("75% of its traffic"), "{html}");
        assert!(html.contains(r#"class="muted mixed-traffic""#));
        assert!(html.contains("window ending 2026-01-01 00:00:00"), "{html}");
        // Served without a monitor, or not served: said so, and the offline side still shows.
        let html = render(&offline, &[deployed("prod", 100.0, &[])]);
        assert!(html.contains("(100% of its traffic; no monitor)"), "{html}");
        assert!(html.contains(r#"id="online-none""#) && html.contains(r#"data-metric="accuracy""#));
        let html = render(&offline, &[]);
        assert!(html.contains("No deployment serves this version"), "{html}");
        assert!(!html.contains("mixed-traffic"));
    }

    #[test]
    fn the_version_page_offers_the_alias_form_unless_read_only() {
        let mut m = model("fraud");
        m.aliases.push(ModelAlias {
            alias: "challenger".into(),
            version: 1,
        });
        let mv = version("fraud", 2);
        let sig = mlmodel_signature("signature:\n  inputs: '[<script>]'\n").unwrap();
        let render = |read_only| {
            version_page(&VersionView {
                model: &m,
                version: &mv,
                logged_model: None,
                signature: Some(&sig),
                alias_form: AliasForm {
                    read_only,
                    confirm_action: "/models/fraud/versions/2/alias",
                },
                offline: &[],
                online: &[],
            })
            .into_string()
        };
        let html = render(false);
        assert!(html.contains(r#"<form class="bar" id="alias-form" method="get" action="/models/fraud/versions/2/alias">"#), "{html}");
        assert!(html.contains(r#"id="source-run" href="/runs/run2""#));
        // A signature that is not MLflow's JSON shows as the text it is.
        assert!(html.contains("m-2") && html.contains("inputs: '[&lt;script&gt;]'"));
        // An alias of another version is one click from moving here.
        assert!(
            html.contains(
                r#"href="/models/fraud/versions/2/alias?alias=challenger">@challenger (now v1)"#
            ),
            "{html}"
        );
        assert!(html.contains(r#"<option value="champion">"#), "{html}");
        let read_only = render(true);
        assert!(!read_only.contains("alias-form") && !read_only.contains("other-aliases"));
        assert!(
            html.contains(r#"href="/models/fraud/aliases/delete?alias=champion" aria-label="Delete alias @champion""#),
            "{html}"
        );
        assert!(!read_only.contains("remove-alias"));
    }

    #[test]
    fn the_confirmation_posts_the_token_and_says_what_moves() {
        let m = model("fraud");
        let html = alias_confirm_page(&AliasConfirmView {
            model: &m,
            version: 3,
            alias: "champion\"><script>",
            current: Some(2),
            action: "/models/fraud/aliases",
            token: "t0k",
            deleting: false,
        })
        .into_string();
        assert!(html.contains("from version 2 to version 3"), "{html}");
        assert!(html.contains(r#"method="post" action="/models/fraud/aliases""#));
        assert!(html.contains(r#"name="token" value="t0k""#));
        assert!(!html.contains("<script>"), "{html}");
    }

    fn event(id: i64, kind: RegistryEventKind, version: Option<i64>) -> RegistryEvent {
        RegistryEvent {
            id,
            timestamp: 1_700_000_000_000,
            actor: "<script>actor</script>".into(),
            kind,
            model_name: "fraud".into(),
            version,
            alias: None,
            before: None,
            after: None,
            detail: Default::default(),
        }
    }

    #[test]
    fn the_timeline_says_what_each_event_did_and_pages_by_id() {
        let m = model("fraud");
        let mut created = event(9, RegistryEventKind::VersionCreated, Some(2));
        created.detail.run_id = Some("run2".into());
        let mut moved = event(8, RegistryEventKind::AliasSet, Some(2));
        moved.alias = Some("champion\"><script>".into());
        (moved.before, moved.after) = (Some("1".into()), Some("2".into()));
        let mut tagged = event(7, RegistryEventKind::VersionTagSet, Some(1));
        tagged.detail.tag = Some(Tag::new("note", "<img src=x onerror=alert(1)>"));
        let mut staged = event(6, RegistryEventKind::StageChanged, Some(1));
        (staged.before, staged.after) = (Some("None".into()), Some("Production".into()));
        let deleted = RegistryEvent {
            alias: Some("old".into()),
            ..event(5, RegistryEventKind::AliasDeleted, Some(1))
        };
        let events = [created, moved, tagged, staged, deleted];
        let render = |read_only, events_before, more_events| {
            model_page(&ModelView {
                model: &m,
                versions: &[],
                metric_keys: &[],
                metric: None,
                metric_points: &[],
                read_only,
                events: &events,
                events_before,
                more_events,
                online: &[],
            })
            .into_string()
        };
        let html = render(false, None, true);
        assert!(
            html.contains(r#"<tr data-event-id="9" data-kind="VERSION_CREATED">"#),
            "{html}"
        );
        assert!(html.contains(r#"Version <a href="/models/fraud/versions/2">v2</a> created from run <a class="mono" href="/runs/run2">run2</a>"#), "{html}");
        assert!(
            html.contains("→ <a href=\"/models/fraud/versions/2\">v2</a> (was v1)"),
            "{html}"
        );
        assert!(html.contains("stage None → Production"), "{html}");
        assert!(html.contains(r#"<span class="chip alias">@old</span> deleted (was <a href="/models/fraud/versions/1">v1</a>)"#), "{html}");
        assert!(
            !html.contains("<script>") && !html.contains("<img"),
            "{html}"
        );
        assert!(
            html.contains("&lt;img src=x onerror=alert(1)&gt;"),
            "{html}"
        );
        // Older events are the ids below the page's last; the newest page has no link to itself.
        assert!(html.contains(r#"<a rel="next" href="/models/fraud?events_before=5#events-heading">Older events</a>"#), "{html}");
        assert!(!html.contains("Newest events"));
        let last = render(false, Some(10), false);
        assert!(
            last.contains(r#"<a href="/models/fraud#events-heading">Newest events</a>"#),
            "{last}"
        );
        assert!(!last.contains("Older events"));
        // Each alias can be deleted, through its confirmation, unless read-only.
        assert!(
            html.contains(
                r#"<a class="remove-alias" href="/models/fraud/aliases/delete?alias=champion""#
            ),
            "{html}"
        );
        assert!(!render(true, None, false).contains("remove-alias"));
    }

    #[test]
    fn deleting_an_alias_is_confirmed_first() {
        let m = model("fraud");
        let html = alias_confirm_page(&AliasConfirmView {
            model: &m,
            version: 2,
            alias: "champion",
            current: Some(2),
            action: "/models/fraud/aliases/delete",
            token: "t0k",
            deleting: true,
        })
        .into_string();
        assert!(
            html.contains("Delete @champion of fraud? It names version 2 now."),
            "{html}"
        );
        assert!(html.contains(r#"method="post" action="/models/fraud/aliases/delete""#));
        assert!(html.contains(r#"name="version" value="2""#));
    }

    #[test]
    fn signature_is_cut_from_the_mlmodel() {
        let mlmodel = "artifact_path: m\nflavors:\n  sklearn: {}\nsignature:\n  inputs: '[{\"type\": \"double\"}]'\n  outputs: null\nutc_time_created: x\n";
        let sig = mlmodel_signature(mlmodel).unwrap();
        assert_eq!(
            sig.raw,
            "signature:\n  inputs: '[{\"type\": \"double\"}]'\n  outputs: null"
        );
        assert!(sig.parsed && sig.outputs.is_empty());
        assert_eq!(sig.inputs[0].kind, "double");
        assert!(mlmodel_signature("flavors: {}\n").is_none());
    }

    fn field(
        name: Option<&str>,
        kind: &str,
        shape: Option<&str>,
        required: bool,
    ) -> SignatureField {
        SignatureField {
            name: name.map(String::from),
            kind: kind.into(),
            shape: shape.map(String::from),
            required,
            default: None,
        }
    }

    #[test]
    fn signatures_read_as_mlflow_writes_them() {
        // As PyYAML writes MLflow's MLmodel: the JSON folded over lines inside single quotes.
        let mlmodel = r#"flavors:
  python_function: {}
signature:
  inputs: '[{"type": "double", "name": "sepal length (cm)", "required": true}, {"type":
    "string", "name": "it''s", "required": false}, {"type": "array", "items": {"type":
    "long"}, "name": "ids"}, {"type": "object", "properties": {"a": {"type": "double"}},
    "name": "o"}]'
  outputs: '[{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 3]}}]'
  params: '[{"name": "temperature", "type": "double", "default": 0.5, "shape": null}]'
mlflow_version: 3.1.0
"#;
        let sig = mlmodel_signature(mlmodel).unwrap();
        assert!(sig.parsed, "{sig:?}");
        assert_eq!(
            sig.inputs,
            [
                field(Some("sepal length (cm)"), "double", None, true),
                field(Some("it's"), "string", None, false),
                field(Some("ids"), "array<long>", None, true),
                field(Some("o"), "object{a: double}", None, true),
            ]
        );
        assert_eq!(
            sig.outputs,
            [field(None, "tensor<float32>", Some("(-1, 3)"), true)]
        );
        assert_eq!(sig.params[0].default.as_deref(), Some("0.5"));
        let m = model("m");
        let mv = version("m", 2);
        let html = version_page(&VersionView {
            model: &m,
            version: &mv,
            logged_model: None,
            signature: Some(&sig),
            alias_form: AliasForm {
                read_only: true,
                confirm_action: "/x",
            },
            offline: &[],
            online: &[],
        })
        .into_string();
        assert!(
            html.contains(r#"<table class="signature" id="signature-inputs">"#),
            "{html}"
        );
        assert!(
            html.contains(
                "<td class=\"mono\">sepal length (cm)</td><td class=\"mono\">double</td>"
            )
        );
        assert!(html.contains(
            "<td class=\"mono\">tensor&lt;float32&gt;</td><td class=\"mono\">(-1, 3)</td>"
        ));
        assert!(html.contains(r#"id="signature-params""#) && html.contains(">0.5</td>"));
    }
}
