//! `triggers:` and `policy:` (section 10 of the design): what starts a pipeline inside
//! `twinloop server`, and what limits how often. Parsed into typed values here; the scheduler
//! (`crate::schedule`) acts on them. Every key is checked: an unknown one is an error naming
//! `file:line: triggers[i].key`, never ignored.

use std::str::FromStr;
use std::time::Duration;

use serde_norway::{Mapping, Value as Yaml};

use super::Problems;
use crate::duration::parse_duration;
use crate::expr::{Ref, Template};

/// One entry of `triggers:`.
#[derive(Debug, Clone, PartialEq)]
pub enum Trigger {
    /// `cron:` or `every:`.
    Schedule(Schedule),
    /// A monitor event (`retrain_requested`), optionally of one monitor, deployment or rule.
    Monitor(MonitorTrigger),
    /// A registry event of a model, optionally filtered by a `where:` expression.
    Registry(RegistryTrigger),
    /// A path whose content changed and then stayed unchanged for `settle`.
    Data(DataTrigger),
    /// Another pipeline's run ended (with `status`, when given).
    Pipeline(PipelineTrigger),
}

impl Trigger {
    /// The kind as runs and events name it: `cron`, `every`, `monitor`, `registry`, `data`,
    /// `pipeline`.
    pub fn kind(&self) -> &'static str {
        match self {
            Trigger::Schedule(s) => match s.when {
                When::Cron { .. } => "cron",
                When::Every(_) => "every",
            },
            Trigger::Monitor(_) => "monitor",
            Trigger::Registry(_) => "registry",
            Trigger::Data(_) => "data",
            Trigger::Pipeline(_) => "pipeline",
        }
    }

    /// A one-line description for plans and listings: `every 2s`, `monitor retrain_requested`.
    pub fn describe(&self) -> String {
        match self {
            Trigger::Schedule(s) => match &s.when {
                When::Cron { expr, timezone } => format!("cron {expr:?} {timezone}"),
                When::Every(d) => format!("every {}", human(*d)),
            },
            Trigger::Monitor(m) => {
                let mut text = format!("monitor {}", m.event);
                for (key, value) in [
                    ("monitor", &m.monitor),
                    ("deployment", &m.deployment),
                    ("rule", &m.rule),
                ] {
                    if let Some(v) = value {
                        text.push_str(&format!(" {key}={v}"));
                    }
                }
                text
            }
            Trigger::Registry(r) => {
                let mut text = format!("registry {} model={}", r.event, r.model);
                if let Some(w) = &r.filter {
                    text.push_str(&format!(" where {}", w.source));
                }
                text
            }
            Trigger::Data(d) => format!(
                "data {} poll={} settle={}",
                d.path,
                human(d.poll),
                human(d.settle)
            ),
            Trigger::Pipeline(p) => match &p.status {
                Some(s) => format!("pipeline {} status={s}", p.name),
                None => format!("pipeline {}", p.name),
            },
        }
    }
}

fn human(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(3_600_000) {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1_000) {
        format!("{}s", ms / 1_000)
    } else {
        format!("{ms}ms")
    }
}

/// A time-based trigger and what to do with ticks missed while the server was down.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub when: When,
    /// `true`: run missed ticks, up to `max_catchup`; `false` (the default): record them as
    /// missed and wait for the next tick.
    pub catchup: bool,
    pub max_catchup: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub enum When {
    /// A 5-field Unix cron expression in an IANA time zone (DST-safe: ticks are computed in local
    /// time and converted).
    Cron {
        expr: String,
        timezone: String,
    },
    Every(Duration),
}

impl Schedule {
    /// The first tick strictly after `after_ms` (UTC milliseconds), if any.
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        match &self.when {
            When::Every(every) => {
                let step = i64::try_from(every.as_millis()).ok()?.max(1);
                Some((after_ms.div_euclid(step) + 1) * step)
            }
            When::Cron { expr, timezone } => {
                let cron = croner::Cron::from_str(expr).ok()?;
                let tz: chrono_tz::Tz = timezone.parse().ok()?;
                let after = chrono::DateTime::from_timestamp_millis(after_ms)?.with_timezone(&tz);
                cron.find_next_occurrence(&after, false)
                    .ok()
                    .map(|t| t.timestamp_millis())
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorTrigger {
    /// The monitor event kind, `retrain_requested`.
    pub event: String,
    pub monitor: Option<String>,
    pub deployment: Option<String>,
    pub rule: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RegistryTrigger {
    /// `VERSION_CREATED`, `ALIAS_SET`, …
    pub event: String,
    pub model: String,
    /// `where:`, evaluated with `trigger.payload` bound to the event.
    pub filter: Option<Template>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataTrigger {
    pub path: String,
    pub poll: Duration,
    pub settle: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineTrigger {
    pub name: String,
    /// `SUCCEEDED`, `FAILED`, …; any end when absent.
    pub status: Option<String>,
}

/// `policy:` less `fail_fast` (which the executor reads from the pipeline).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Runs of the pipeline at once (`concurrency.max`, default 1).
    pub max_concurrent: u32,
    pub on_conflict: OnConflict,
    /// Between trigger-started runs; manual runs are exempt.
    pub cooldown: Option<Duration>,
    pub max_runs_per_day: Option<u32>,
    pub on_restart: OnRestart,
    /// Whether a trigger may fire for an event this pipeline's own runs caused.
    pub allow_self_trigger: bool,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            max_concurrent: 1,
            on_conflict: OnConflict::Queue,
            cooldown: None,
            max_runs_per_day: None,
            on_restart: OnRestart::Resume,
            allow_self_trigger: false,
        }
    }
}

/// What a trigger does when `concurrency.max` runs are already active.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnConflict {
    /// The new run waits (QUEUED) for a slot.
    Queue,
    /// The event is recorded as suppressed (`concurrency`).
    Skip,
    /// The oldest active run is canceled and the new one starts.
    CancelRunning,
}

impl OnConflict {
    pub fn as_str(self) -> &'static str {
        match self {
            OnConflict::Queue => "queue",
            OnConflict::Skip => "skip",
            OnConflict::CancelRunning => "cancel_running",
        }
    }
}

/// What a server does at start with a run it left `RUNNING`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnRestart {
    Resume,
    Fail,
}

/// The `policy:` keys other than `fail_fast`, as written.
#[derive(Default)]
pub(super) struct RawPolicyKeys<'a> {
    pub concurrency: Option<&'a Yaml>,
    pub cooldown: Option<&'a Yaml>,
    pub max_runs_per_day: Option<&'a Yaml>,
    pub on_restart: Option<&'a Yaml>,
    pub allow_self_trigger: Option<&'a Yaml>,
}

pub(super) fn convert_policy(raw: &RawPolicyKeys<'_>, problems: &mut Problems<'_>) -> Policy {
    let mut policy = Policy::default();
    let mut report = |key: &str, message: String| {
        let line = crate::locate::locate(problems.text, "policy", Some(key), None);
        problems.push(line, format!("policy.{key}"), message);
    };
    if let Some(concurrency) = raw.concurrency {
        match concurrency {
            Yaml::Mapping(map) => {
                for (key, value) in map {
                    match key.as_str() {
                        Some("max") => match value.as_u64().and_then(|n| u32::try_from(n).ok()) {
                            Some(n) if n >= 1 => policy.max_concurrent = n,
                            _ => report("concurrency", "max is a whole number, 1 or more".into()),
                        },
                        Some("on_conflict") => match value.as_str() {
                            Some("queue") => policy.on_conflict = OnConflict::Queue,
                            Some("skip") => policy.on_conflict = OnConflict::Skip,
                            Some("cancel_running") => {
                                policy.on_conflict = OnConflict::CancelRunning;
                            }
                            _ => report(
                                "concurrency",
                                format!(
                                    "on_conflict is queue, skip or cancel_running, not {}",
                                    show(value)
                                ),
                            ),
                        },
                        _ => report(
                            "concurrency",
                            format!("unknown key {}: use max, on_conflict", show(key)),
                        ),
                    }
                }
            }
            other => report(
                "concurrency",
                format!("concurrency is {{max, on_conflict}}, not {}", show(other)),
            ),
        }
    }
    if let Some(cooldown) = raw.cooldown {
        match duration(cooldown) {
            Ok(d) => policy.cooldown = Some(d),
            Err(e) => report("cooldown", e),
        }
    }
    if let Some(max) = raw.max_runs_per_day {
        match max.as_u64().and_then(|n| u32::try_from(n).ok()) {
            Some(n) if n >= 1 => policy.max_runs_per_day = Some(n),
            _ => report(
                "max_runs_per_day",
                format!(
                    "max_runs_per_day is a whole number, 1 or more, not {}",
                    show(max)
                ),
            ),
        }
    }
    if let Some(on_restart) = raw.on_restart {
        match on_restart.as_str() {
            Some("resume") => policy.on_restart = OnRestart::Resume,
            Some("fail") => policy.on_restart = OnRestart::Fail,
            _ => report(
                "on_restart",
                format!("on_restart is resume or fail, not {}", show(on_restart)),
            ),
        }
    }
    if let Some(allow) = raw.allow_self_trigger {
        match allow.as_bool() {
            Some(b) => policy.allow_self_trigger = b,
            None => report(
                "allow_self_trigger",
                format!("allow_self_trigger is true or false, not {}", show(allow)),
            ),
        }
    }
    policy
}

pub(super) fn convert_triggers(raw: Option<&Yaml>, problems: &mut Problems<'_>) -> Vec<Trigger> {
    let Some(raw) = raw else {
        return Vec::new();
    };
    let Yaml::Sequence(items) = raw else {
        problems.top("triggers", format!("triggers is a list, not {}", show(raw)));
        return Vec::new();
    };
    let lines = item_lines(problems.text);
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let line = lines
            .get(i)
            .copied()
            .unwrap_or_else(|| crate::locate::locate(problems.text, "triggers", None, None));
        let mut errors = Vec::new();
        let trigger = convert_trigger(item, &mut errors);
        if errors.is_empty() {
            out.extend(trigger);
        }
        for (key, message) in errors {
            let field = if key.is_empty() {
                format!("triggers[{i}]")
            } else {
                format!("triggers[{i}].{key}")
            };
            problems.push(line, field, message);
        }
    }
    out
}

/// (key, message) pairs of what is wrong with one trigger.
type Errors = Vec<(String, String)>;

fn convert_trigger(item: &Yaml, errors: &mut Errors) -> Option<Trigger> {
    let Yaml::Mapping(map) = item else {
        errors.push((
            String::new(),
            format!("a trigger is a mapping, not {}", show(item)),
        ));
        return None;
    };
    const KINDS: [&str; 6] = ["cron", "every", "monitor", "registry", "data", "pipeline"];
    let kinds: Vec<&str> = KINDS
        .iter()
        .copied()
        .filter(|k| map.contains_key(*k))
        .collect();
    let kind = match kinds.as_slice() {
        [one] => *one,
        [] => {
            errors.push((
                String::new(),
                "a trigger needs one of cron, every, monitor, registry, data, pipeline".into(),
            ));
            return None;
        }
        many => {
            errors.push((
                String::new(),
                format!("one kind per trigger, not {}", many.join(" and ")),
            ));
            return None;
        }
    };
    let schedule_keys = ["timezone", "catchup", "max_catchup"];
    for key in map.keys() {
        let name = key.as_str().unwrap_or_default();
        let allowed =
            name == kind || (matches!(kind, "cron" | "every") && schedule_keys.contains(&name));
        if !allowed {
            let also = if matches!(kind, "cron" | "every") {
                format!("{kind}, timezone, catchup, max_catchup")
            } else {
                kind.to_owned()
            };
            errors.push((
                name.to_owned(),
                format!("unknown key {} in a {kind} trigger: use {also}", show(key)),
            ));
        }
    }
    let body = &map[kind];
    let trigger = match kind {
        "cron" | "every" => Trigger::Schedule(schedule(kind, body, map, errors)?),
        "monitor" => Trigger::Monitor(monitor(body, errors)?),
        "registry" => Trigger::Registry(registry(body, errors)?),
        "data" => Trigger::Data(data(body, errors)?),
        _ => Trigger::Pipeline(pipeline(body, errors)?),
    };
    Some(trigger)
}

fn schedule(kind: &str, body: &Yaml, map: &Mapping, errors: &mut Errors) -> Option<Schedule> {
    let timezone = match map.get("timezone") {
        None => "UTC".to_owned(),
        Some(Yaml::String(tz)) if tz.parse::<chrono_tz::Tz>().is_ok() => tz.clone(),
        Some(other) => {
            errors.push((
                "timezone".into(),
                format!(
                    "unknown time zone {}: use an IANA name such as UTC or Europe/Paris",
                    show(other)
                ),
            ));
            return None;
        }
    };
    let when = if kind == "cron" {
        let Some(expr) = body.as_str() else {
            errors.push((
                "cron".into(),
                format!("cron is a 5-field expression, not {}", show(body)),
            ));
            return None;
        };
        if let Err(e) = check_cron(expr) {
            errors.push(("cron".into(), e));
            return None;
        }
        When::Cron {
            expr: expr.to_owned(),
            timezone,
        }
    } else {
        if map.contains_key("timezone") {
            errors.push((
                "timezone".into(),
                "`every:` counts in UTC; timezone goes with cron".into(),
            ));
            return None;
        }
        match duration(body) {
            Ok(d) if d >= Duration::from_secs(1) => When::Every(d),
            Ok(_) => {
                errors.push(("every".into(), "every is 1s or more".into()));
                return None;
            }
            Err(e) => {
                errors.push(("every".into(), e));
                return None;
            }
        }
    };
    let catchup = match map.get("catchup") {
        None => false,
        Some(v) => match v.as_bool() {
            Some(b) => b,
            None => {
                errors.push((
                    "catchup".into(),
                    format!("catchup is true or false, not {}", show(v)),
                ));
                return None;
            }
        },
    };
    let max_catchup = match map.get("max_catchup") {
        None => 1,
        Some(v) => match v.as_u64().and_then(|n| u32::try_from(n).ok()) {
            Some(n) => n,
            None => {
                errors.push((
                    "max_catchup".into(),
                    format!("max_catchup is a whole number, not {}", show(v)),
                ));
                return None;
            }
        },
    };
    Some(Schedule {
        when,
        catchup,
        max_catchup,
    })
}

/// Five fields exactly: croner also takes seconds and year fields, which Unix cron has not.
fn check_cron(expr: &str) -> Result<(), String> {
    let fields = expr.split_whitespace().count();
    if fields != 5 {
        return Err(format!(
            "cron {expr:?} has {fields} fields: write the 5 of Unix cron (minute hour day month weekday)"
        ));
    }
    croner::Cron::from_str(expr)
        .map(|_| ())
        .map_err(|e| format!("cron {expr:?}: {e}"))
}

/// The fields of a trigger's body mapping, every key checked against `allowed`.
fn fields<'a>(
    kind: &str,
    body: &'a Yaml,
    allowed: &[&str],
    errors: &mut Errors,
) -> Option<Vec<(&'a str, &'a Yaml)>> {
    let Yaml::Mapping(map) = body else {
        errors.push((
            kind.into(),
            format!(
                "{kind} is a mapping ({}), not {}",
                allowed.join(", "),
                show(body)
            ),
        ));
        return None;
    };
    let mut out = Vec::new();
    let mut ok = true;
    for (key, value) in map {
        match key.as_str() {
            Some(k) if allowed.contains(&k) => out.push((k, value)),
            _ => {
                ok = false;
                errors.push((
                    kind.into(),
                    format!(
                        "unknown key {} in {kind}: use {}",
                        show(key),
                        allowed.join(", ")
                    ),
                ));
            }
        }
    }
    ok.then_some(out)
}

fn text(kind: &str, key: &str, value: &Yaml, errors: &mut Errors) -> Option<String> {
    match value {
        Yaml::String(s) if !s.is_empty() => Some(s.clone()),
        other => {
            errors.push((
                kind.into(),
                format!("{key} is a non-empty string, not {}", show(other)),
            ));
            None
        }
    }
}

fn required(kind: &str, key: &str, value: Option<String>, errors: &mut Errors) -> Option<String> {
    if value.is_none() {
        errors.push((kind.into(), format!("{kind} needs `{key}:`")));
    }
    value
}

fn monitor(body: &Yaml, errors: &mut Errors) -> Option<MonitorTrigger> {
    let before = errors.len();
    let mut trigger = MonitorTrigger {
        event: String::new(),
        monitor: None,
        deployment: None,
        rule: None,
    };
    let mut event = None;
    for (key, value) in fields(
        "monitor",
        body,
        &["event", "monitor", "deployment", "rule"],
        errors,
    )? {
        let value = text("monitor", key, value, errors);
        match key {
            "event" => event = value,
            "monitor" => trigger.monitor = value,
            "deployment" => trigger.deployment = value,
            _ => trigger.rule = value,
        }
    }
    trigger.event = required("monitor", "event", event, errors)?;
    if trigger.event != "retrain_requested" {
        errors.push((
            "monitor".into(),
            format!(
                "event {:?}: monitors request retraining with retrain_requested",
                trigger.event
            ),
        ));
    }
    (errors.len() == before).then_some(trigger)
}

const REGISTRY_EVENTS: [&str; 8] = [
    "MODEL_CREATED",
    "MODEL_RENAMED",
    "MODEL_DELETED",
    "VERSION_CREATED",
    "VERSION_DELETED",
    "STAGE_CHANGED",
    "ALIAS_SET",
    "ALIAS_DELETED",
];

fn registry(body: &Yaml, errors: &mut Errors) -> Option<RegistryTrigger> {
    let before = errors.len();
    let (mut event, mut model, mut filter) = (None, None, None);
    for (key, value) in fields("registry", body, &["event", "model", "where"], errors)? {
        let value = text("registry", key, value, errors);
        match key {
            "event" => event = value,
            "model" => model = value,
            _ => filter = value,
        }
    }
    let event = required("registry", "event", event, errors)?;
    let model = required("registry", "model", model, errors)?;
    if !REGISTRY_EVENTS.contains(&event.as_str()) {
        errors.push((
            "registry".into(),
            format!(
                "unknown registry event {event:?}: use {}",
                REGISTRY_EVENTS.join(", ")
            ),
        ));
    }
    let filter = match filter {
        None => None,
        Some(text) => {
            let text = if text.contains("${{") {
                text
            } else {
                format!("${{{{ {text} }}}}")
            };
            match Template::parse(&text) {
                Ok(t) if t.as_expr().is_none() => {
                    errors.push(("registry".into(), "where is one expression".into()));
                    None
                }
                Ok(t) => {
                    let foreign: Vec<Ref> = t
                        .refs()
                        .into_iter()
                        .filter(|r| !matches!(r, Ref::TriggerKind | Ref::TriggerPayload(_)))
                        .collect();
                    if foreign.is_empty() {
                        Some(t)
                    } else {
                        errors.push((
                            "registry".into(),
                            "where reads trigger.kind and trigger.payload.* only".into(),
                        ));
                        None
                    }
                }
                Err(e) => {
                    errors.push(("registry".into(), format!("where: {e}")));
                    None
                }
            }
        }
    };
    (errors.len() == before).then_some(RegistryTrigger {
        event,
        model,
        filter,
    })
}

fn data(body: &Yaml, errors: &mut Errors) -> Option<DataTrigger> {
    let before = errors.len();
    let mut trigger = DataTrigger {
        path: String::new(),
        poll: Duration::from_secs(30),
        settle: Duration::from_secs(60),
    };
    let mut path = None;
    for (key, value) in fields("data", body, &["path", "poll", "settle"], errors)? {
        match key {
            "path" => path = text("data", key, value, errors),
            _ => match duration(value) {
                Ok(d) if key == "poll" => trigger.poll = d,
                Ok(d) => trigger.settle = d,
                Err(e) => errors.push(("data".into(), format!("{key}: {e}"))),
            },
        }
    }
    trigger.path = required("data", "path", path, errors)?;
    (errors.len() == before).then_some(trigger)
}

fn pipeline(body: &Yaml, errors: &mut Errors) -> Option<PipelineTrigger> {
    let before = errors.len();
    let (mut name, mut status) = (None, None);
    for (key, value) in fields("pipeline", body, &["name", "status"], errors)? {
        let value = text("pipeline", key, value, errors);
        match key {
            "name" => name = value,
            _ => status = value,
        }
    }
    let name = required("pipeline", "name", name, errors)?;
    if let Some(s) = &status
        && !["SUCCEEDED", "FAILED", "CANCELED", "REJECTED"].contains(&s.as_str())
    {
        errors.push((
            "pipeline".into(),
            format!("status {s:?}: use SUCCEEDED, FAILED, CANCELED or REJECTED"),
        ));
    }
    (errors.len() == before).then_some(PipelineTrigger { name, status })
}

fn duration(value: &Yaml) -> Result<Duration, String> {
    match value {
        Yaml::String(s) => parse_duration(s),
        Yaml::Number(n) => parse_duration(&n.to_string()),
        other => Err(format!("a duration such as 30s or 6h, not {}", show(other))),
    }
}

fn show(value: &Yaml) -> String {
    serde_norway::to_string(value)
        .map(|s| s.trim_end().to_owned())
        .unwrap_or_else(|_| format!("{value:?}"))
}

/// 1-based lines of the items of the top-level `triggers:` list, in order.
fn item_lines(text: &str) -> Vec<usize> {
    let mut lines = text.lines().enumerate();
    let Some(_) = lines.by_ref().find(|(_, l)| l.starts_with("triggers:")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut indent = None;
    for (i, line) in lines {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let at = line.len() - trimmed.len();
        if at == 0 && !trimmed.starts_with('-') {
            break;
        }
        if trimmed.starts_with('-') && indent.is_none_or(|first| first == at) {
            indent = Some(at);
            out.push(i + 1);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::spec::parse;

    use super::*;

    fn pipeline(extra: &str) -> Result<crate::spec::Pipeline, crate::Invalid> {
        parse(
            "p.yaml",
            &format!("pipeline: p\n{extra}steps:\n  a:\n    run: 'true'\n"),
        )
    }

    #[test]
    fn every_kind_parses() {
        let p = pipeline(
            "triggers:\n  - cron: \"0 3 * * *\"\n    timezone: Europe/Paris\n    catchup: true\n    max_catchup: 2\n  - every: 6h\n  - monitor: {event: retrain_requested, deployment: fraud}\n  - registry: {event: VERSION_CREATED, model: fraud, where: \"${{ trigger.payload.source != 'pipeline' }}\"}\n  - data: {path: data/labels/, poll: 30s, settle: 60s}\n  - pipeline: {name: other, status: SUCCEEDED}\npolicy:\n  concurrency: {max: 2, on_conflict: cancel_running}\n  cooldown: 1h\n  max_runs_per_day: 6\n  fail_fast: false\n  on_restart: fail\n  allow_self_trigger: true\n",
        )
        .unwrap();
        let kinds: Vec<&str> = p.triggers.iter().map(Trigger::kind).collect();
        assert_eq!(
            kinds,
            ["cron", "every", "monitor", "registry", "data", "pipeline"]
        );
        assert_eq!(
            p.triggers[0],
            Trigger::Schedule(Schedule {
                when: When::Cron {
                    expr: "0 3 * * *".into(),
                    timezone: "Europe/Paris".into()
                },
                catchup: true,
                max_catchup: 2
            })
        );
        assert_eq!(
            p.policy,
            Policy {
                max_concurrent: 2,
                on_conflict: OnConflict::CancelRunning,
                cooldown: Some(Duration::from_secs(3600)),
                max_runs_per_day: Some(6),
                on_restart: OnRestart::Fail,
                allow_self_trigger: true,
            }
        );
        assert!(!p.fail_fast);
        let Trigger::Registry(r) = &p.triggers[3] else {
            panic!("a registry trigger")
        };
        assert_eq!(
            r.filter.as_ref().unwrap().refs(),
            [Ref::TriggerPayload(vec!["source".into()])]
        );
    }

    #[test]
    fn bad_triggers_name_their_line_and_key() {
        let err = pipeline(
            "triggers:\n  - every: 2s\n  - cron: \"0 3 * *\"\n  - monitor: {event: retrain_requested, colour: red}\n  - every: 5s\n    jitter: 1s\n  - registry: {event: VERSION_MADE, model: m}\n  - {}\npolicy:\n  concurrency: {max: 0, on_conflict: wait}\n",
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("p.yaml:4: triggers[1].cron: cron \"0 3 * *\" has 4 fields"),
            "{text}"
        );
        assert!(
            text.contains("p.yaml:5: triggers[2].monitor: unknown key colour"),
            "{text}"
        );
        assert!(
            text.contains("p.yaml:6: triggers[3].jitter: unknown key jitter"),
            "{text}"
        );
        assert!(
            text.contains("triggers[4].registry: unknown registry event \"VERSION_MADE\""),
            "{text}"
        );
        assert!(
            text.contains("triggers[5]: a trigger needs one of"),
            "{text}"
        );
        assert!(
            text.contains("policy.concurrency: max is a whole number"),
            "{text}"
        );
        assert!(
            text.contains("on_conflict is queue, skip or cancel_running, not wait"),
            "{text}"
        );
        let err = pipeline("policy:\n  speed: 3\n").unwrap_err();
        assert!(
            err.to_string()
                .contains("p.yaml:3: pipeline: policy: unknown field `speed`"),
            "{err}"
        );
    }

    #[test]
    fn a_where_filter_reads_only_the_trigger() {
        let err = pipeline(
            "triggers:\n  - registry: {event: VERSION_CREATED, model: m, where: \"params.x == 1\"}\n",
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("where reads trigger.kind and trigger.payload.* only")
        );
    }

    #[test]
    fn ticks_follow_the_schedule() {
        let every = Schedule {
            when: When::Every(Duration::from_secs(2)),
            catchup: false,
            max_catchup: 1,
        };
        assert_eq!(every.next_after(0), Some(2_000));
        assert_eq!(every.next_after(3_999), Some(4_000));
        assert_eq!(every.next_after(4_000), Some(6_000));
        let daily = Schedule {
            when: When::Cron {
                expr: "0 3 * * *".into(),
                timezone: "UTC".into(),
            },
            catchup: false,
            max_catchup: 1,
        };
        // 2026-01-01T00:00:00Z → 03:00 the same day.
        assert_eq!(
            daily.next_after(1_767_225_600_000),
            Some(1_767_225_600_000 + 3 * 3_600_000)
        );
    }

    #[test]
    fn cron_in_a_zone_fires_once_on_the_days_dst_changes() {
        let paris: chrono_tz::Tz = "Europe/Paris".parse().unwrap();
        let at_0230 = Schedule {
            when: When::Cron {
                expr: "30 2 * * *".into(),
                timezone: "Europe/Paris".into(),
            },
            catchup: false,
            max_catchup: 1,
        };
        let local = |ms: i64| {
            chrono::DateTime::from_timestamp_millis(ms)
                .unwrap()
                .with_timezone(&paris)
                .format("%m-%d %H:%M")
                .to_string()
        };
        // 2026-03-29 springs forward in Paris: 02:30 does not exist that day, so the tick comes
        // once, at the first minute that does (03:00 CEST), then 02:30 again the next day.
        let mut at = 1_774_699_200_000; // 2026-03-28T12:00Z
        let mut ticks = Vec::new();
        for _ in 0..3 {
            at = at_0230.next_after(at).unwrap();
            ticks.push(local(at));
        }
        assert_eq!(ticks, ["03-29 03:00", "03-30 02:30", "03-31 02:30"]);
        // 2026-10-25 falls back: 02:30 happens twice in local time, the trigger fires once.
        let mut at = 1_792_843_200_000; // 2026-10-24T12:00Z
        let mut ticks = Vec::new();
        for _ in 0..3 {
            at = at_0230.next_after(at).unwrap();
            ticks.push(local(at));
        }
        assert_eq!(ticks, ["10-25 02:30", "10-26 02:30", "10-27 02:30"]);
    }
}
