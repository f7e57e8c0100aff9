//! Delivers registry events to webhooks through the signed-webhook contract of
//! `twinloop_core::webhook` (signature, bounded retries with backoff, one warning per event no
//! attempt delivered), writing every attempt to the store's delivery log; a webhook removed
//! during the retries gets no further attempt. Also the HTTP transport of that contract, which
//! the monitors' alert webhooks are given too.
//!
//! Events reach this process through the store's in-process broadcast, so each replica delivers
//! the events it committed. An event committed just before a crash may miss its webhooks; the
//! event log (`/api/twinloop/v1/registry/events?after=`) is the durable record.
//!
//! Webhooks made through MLflow's API hear the same events, turned into MLflow's events and
//! payloads (`mlflow_event`), signed by MLflow's scheme, and sent only where [`Reach`] allows:
//! MLflow's scheme list and its refusal of non-public addresses, checked when the webhook is
//! saved, again before each delivery, and on the address actually connected to (the resolver
//! of a guarded [`HttpTransport`], which also follows no redirect and no proxy).

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value, json};
use tokio::sync::broadcast::error::RecvError;
use twinloop_core::registry::{
    MlflowEvent, MlflowWebhook, RegistryEvent, RegistryEventKind, Webhook, WebhookDelivery,
};
use twinloop_core::time::now_ms;
use twinloop_core::tracking::Tag;
use twinloop_core::webhook::{
    self, Attempt, DeliveryLog, NoAnswer, Outcome, WebhookTransport, is_public_ip,
};
use twinloop_core::{Error, ErrorKind};
use twinloop_meta::event_cursor::EventCursor;
use twinloop_meta::lease::LeaseKeeper;
use twinloop_meta::pyjson::{self, Separators};
use twinloop_meta::{RegistryStore, StoreHandle, WebhookStore};

use crate::native::event_json;

/// Where the server's outbound requests may go: public addresses, plus the internal targets
/// an operator names (`--outbound-allow CIDR|host`). Every request made from a URL a client
/// gave (webhooks of both kinds, monitor alerts, the pipelines' notify step) is judged by it
/// when the URL is saved and again on the addresses the connection uses.
#[derive(Debug, Clone, Default)]
pub struct Outbound {
    /// `MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS`: MLflow's own opt-out, for MLflow's webhooks.
    anywhere: bool,
    nets: Vec<(IpAddr, u8)>,
    hosts: Vec<String>,
}

impl Outbound {
    /// No address is refused.
    pub fn anywhere() -> Outbound {
        Outbound {
            anywhere: true,
            ..Outbound::default()
        }
    }

    /// Public addresses and `allowed`: CIDRs (`10.0.0.0/8`), addresses (`127.0.0.1`) or host
    /// names (`hooks.internal`), each allowed whatever it resolves to.
    pub fn parse(allowed: &[String]) -> Result<Outbound, Error> {
        let mut out = Outbound::default();
        for item in allowed {
            let item = item.trim();
            let bad = || {
                Error::invalid(format!(
                    "invalid --outbound-allow {item:?}: expected CIDR, address or host name"
                ))
            };
            if let Some((ip, bits)) = item.split_once('/') {
                let ip: IpAddr = ip.parse().map_err(|_| bad())?;
                let bits: u8 = bits.parse().map_err(|_| bad())?;
                if bits > if ip.is_ipv4() { 32 } else { 128 } {
                    return Err(bad());
                }
                out.nets.push((ip, bits));
            } else if let Ok(ip) = item.trim_matches(['[', ']']).parse::<IpAddr>() {
                out.nets.push((ip, if ip.is_ipv4() { 32 } else { 128 }));
            } else if !item.is_empty()
                && item
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.'))
            {
                out.hosts
                    .push(item.trim_end_matches('.').to_ascii_lowercase());
            } else {
                return Err(bad());
            }
        }
        Ok(out)
    }

    fn allows_ip(&self, ip: IpAddr) -> bool {
        let v4 = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        self.anywhere
            || is_public_ip(ip)
            || self
                .nets
                .iter()
                .any(|net| in_net(*net, ip) || v4.is_some_and(|v4| in_net(*net, v4)))
    }

    fn allows_host(&self, host: &str) -> bool {
        self.anywhere
            || self
                .hosts
                .contains(&host.trim_end_matches('.').to_ascii_lowercase())
    }

    /// The checks made when a URL is saved: http(s), a host, and every address it resolves to
    /// allowed. Literals are read as the connection will read them (`127.1`, `2130706433`,
    /// `0x7f.1` and `017700000001` are all 127.0.0.1).
    pub async fn check(&self, url: &str) -> Result<(), Error> {
        let parsed = url::Url::parse(url)
            .map_err(|e| Error::invalid(format!("invalid URL {url:?}: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(Error::invalid(format!("URL {url:?} is not http(s)")));
        }
        let addresses: Vec<IpAddr> = match parsed.host() {
            Some(url::Host::Ipv4(ip)) => vec![IpAddr::V4(ip)],
            Some(url::Host::Ipv6(ip)) => vec![IpAddr::V6(ip)],
            Some(url::Host::Domain(name)) if !name.is_empty() => {
                if self.allows_host(name) {
                    return Ok(());
                }
                tokio::net::lookup_host((name, 0))
                    .await
                    .map_err(|_| Error::invalid(format!("URL {url:?}: its host does not resolve")))?
                    .map(|a| a.ip())
                    .collect()
            }
            _ => return Err(Error::invalid(format!("URL {url:?} has no host"))),
        };
        if addresses.iter().all(|ip| self.allows_ip(*ip)) {
            Ok(())
        } else {
            Err(Error::invalid(format!(
                "URL {url:?} leads to an address outbound requests may not reach (loopback, \
                 private, link-local or reserved; hint: twinloop server --outbound-allow)"
            )))
        }
    }
}

fn in_net((net, bits): (IpAddr, u8), ip: IpAddr) -> bool {
    match (net, ip) {
        (IpAddr::V4(net), IpAddr::V4(ip)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(net) & mask == u32::from(ip) & mask
        }
        (IpAddr::V6(net), IpAddr::V6(ip)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(net) & mask == u128::from(ip) & mask
        }
        _ => false,
    }
}

/// Webhook POSTs over reqwest, each within `webhook::TIMEOUT`, only where an [`Outbound`]
/// allows: no redirect and no proxy (either would move the request past the checks), and host
/// names resolved to allowed addresses only, so a rebinding DNS answer cannot lead a delivery
/// to a private address after the URL was checked.
#[derive(Clone)]
pub struct HttpTransport {
    /// Made at the first request: reading the system's root certificates takes tens of
    /// milliseconds of CPU, which a server (re)starting under load should not spend before it
    /// answers.
    http: Arc<OnceLock<reqwest::Client>>,
    /// A literal host is never resolved, so the resolver would not see it: judged here.
    outbound: Outbound,
}

impl HttpTransport {
    pub fn new(outbound: Outbound) -> HttpTransport {
        HttpTransport {
            http: Arc::default(),
            outbound,
        }
    }

    /// Makes the client now if it is not made yet. Called before deliveries are handed on, so
    /// that they leave in the order they were handed on rather than after racing for the
    /// first client.
    fn warm(&self) {
        self.http();
    }

    fn http(&self) -> &reqwest::Client {
        self.http.get_or_init(|| {
            reqwest::Client::builder()
                .timeout(webhook::TIMEOUT)
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy()
                .dns_resolver(Arc::new(Guarded(self.outbound.clone())))
                .build()
                .unwrap_or_default()
        })
    }
}

struct Guarded(Outbound);

impl reqwest::dns::Resolve for Guarded {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        let outbound = self.0.clone();
        Box::pin(async move {
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let by_name = outbound.allows_host(&host);
            let allowed: Vec<SocketAddr> = all
                .into_iter()
                .filter(|a| by_name || outbound.allows_ip(a.ip()))
                .collect();
            if allowed.is_empty() {
                return Err(
                    format!("connection blocked: {host} resolves to no allowed address").into(),
                );
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Where MLflow-style webhooks may be sent, read from MLflow's own variables as MLflow reads
/// them: `MLFLOW_WEBHOOK_ALLOWED_SCHEMES` (default `https`) and
/// `MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS` (default false).
#[derive(Debug, Clone)]
pub struct Reach {
    schemes: Vec<String>,
    /// The server's outbound policy, or anywhere under `MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS`.
    outbound: Outbound,
}

impl Reach {
    pub fn from_env(outbound: &Outbound) -> Reach {
        let schemes = std::env::var("MLFLOW_WEBHOOK_ALLOWED_SCHEMES")
            .map(|v| v.split(',').map(|s| s.trim().to_string()).collect())
            .unwrap_or_else(|_| vec!["https".to_string()]);
        let allow_private = std::env::var("MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS")
            .is_ok_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "true" | "1"));
        Reach {
            schemes,
            outbound: if allow_private {
                Outbound::anywhere()
            } else {
                outbound.clone()
            },
        }
    }

    /// MLflow's checks of a webhook URL: an allowed scheme, a host, and, unless private
    /// addresses are allowed, every address the host resolves to public.
    pub async fn check(&self, url: &str) -> Result<(), Error> {
        if url.trim().is_empty() {
            return Err(Error::invalid(format!(
                "Webhook URL cannot be empty or just whitespace: '{url}'"
            )));
        }
        let parsed = url::Url::parse(url)
            .map_err(|e| Error::invalid(format!("Invalid webhook URL '{url}': {e}")))?;
        if !self.schemes.iter().any(|s| s == parsed.scheme()) {
            return Err(Error::invalid(format!(
                "Invalid webhook URL scheme: '{}'. Allowed schemes are: {}.",
                parsed.scheme(),
                self.schemes.join(", ")
            )));
        }
        let host = match parsed.host() {
            Some(host) if !host.to_string().is_empty() => host,
            _ => {
                return Err(Error::invalid(format!(
                    "Webhook URL must include a hostname: '{url}'"
                )));
            }
        };
        let addresses: Vec<IpAddr> = match host {
            url::Host::Ipv4(ip) => vec![IpAddr::V4(ip)],
            url::Host::Ipv6(ip) => vec![IpAddr::V6(ip)],
            url::Host::Domain(name) if self.outbound.allows_host(name) => return Ok(()),
            url::Host::Domain(name) => tokio::net::lookup_host((name, 0))
                .await
                .map_err(|e| {
                    Error::invalid(format!("Cannot resolve Webhook URL hostname '{name}': {e}"))
                })?
                .map(|a| a.ip())
                .collect(),
        };
        match addresses
            .into_iter()
            .find(|ip| !self.outbound.allows_ip(*ip))
        {
            Some(ip) => Err(Error::invalid(format!(
                "Webhook URL must not resolve to a non-public IP address. '{host}' resolves to {ip}."
            ))),
            None => Ok(()),
        }
    }
}

#[async_trait]
impl WebhookTransport for HttpTransport {
    async fn post(
        &self,
        url: &str,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> Result<u16, NoAnswer> {
        Ok(self.send(url, headers, body).await?.status().as_u16())
    }

    async fn post_with_reply(
        &self,
        url: &str,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> Result<(u16, String), NoAnswer> {
        let response = self.send(url, headers, body).await?;
        let status = response.status().as_u16();
        let mut text = response.text().await.unwrap_or_default();
        if text.len() > MAX_REPLY {
            let mut end = MAX_REPLY;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
        }
        Ok((status, text))
    }
}

/// How much of a receiver's answer a webhook test reports.
const MAX_REPLY: usize = 64 * 1024;

impl HttpTransport {
    async fn send(
        &self,
        url: &str,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> Result<reqwest::Response, NoAnswer> {
        let literal = match url::Url::parse(url)
            .ok()
            .and_then(|u| u.host().map(|h| h.to_owned()))
        {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            _ => None,
        };
        if let Some(ip) = literal.filter(|ip| !self.outbound.allows_ip(*ip)) {
            return Err(NoAnswer(
                format!("connection blocked: {ip} is not an address outbound requests may reach")
                    .into(),
            ));
        }
        let mut request = self.http().post(url).body(body.to_vec());
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        request.send().await.map_err(|e| {
            // Refused, reset, timed out or blocked read the same in the delivery log, so that
            // the log cannot be used to learn which ports answer; the cause goes to the logs.
            tracing::debug!(url, error = %e, "webhook request failed");
            NoAnswer("no answer: the connection failed or timed out".into())
        })
    }
}

/// The lease under which one replica delivers webhooks; its cursor is the last event id handed
/// on, so that a replica that takes over continues where the last holder stopped.
pub const DELIVERY_LEASE: &str = "webhooks";

/// Delivers committed registry events to the webhooks that want them, on the one replica that
/// holds [`DELIVERY_LEASE`]. The holder reads the event log from the lease's cursor and moves
/// the cursor past each event before delivering it: the move is refused to a holder that has
/// been replaced, so an event is not delivered by two replicas (and one a holder took but died
/// before delivering is lost, not repeated).
pub async fn spawn(store: StoreHandle, outbound: Outbound) -> Delivery {
    let mut events = store.subscribe_registry_events();
    // Where a database that never had a holder starts: what was recorded before this server
    // answered a request is history. Read before serving, so no event of a client is taken
    // for history.
    let head = loop {
        match store.latest_registry_event_id().await {
            Ok(id) => break id,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the registry event log");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    let transport = Arc::new(HttpTransport::new(outbound.clone()));
    let lease = LeaseKeeper::start(store.clone(), DELIVERY_LEASE);
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let keeper = lease.clone();
    let task = tokio::spawn(async move {
        let mut held: Option<(i64, EventCursor)> = None;
        loop {
            tokio::select! {
                heard = events.recv() => if let Err(RecvError::Closed) = heard { return },
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = &mut stopped => return,
            }
            let Some(token) = lease.token() else {
                held = None;
                continue;
            };
            if held.as_ref().is_none_or(|(t, _)| *t != token) {
                match store.lease_cursor(DELIVERY_LEASE).await {
                    Ok(cursor) => held = Some((token, EventCursor::new(cursor.unwrap_or(head)))),
                    Err(e) => {
                        tracing::error!(error = %e, "cannot read the webhook cursor");
                        continue;
                    }
                }
            }
            if let Some((_, cursor)) = held.as_mut()
                && !deliver_new(&store, &transport, &outbound, token, cursor).await
            {
                held = None;
            }
        }
    });
    Delivery {
        lease: keeper,
        stop,
        task,
    }
}

/// Webhook delivery under way in this process (see [`spawn`]); dropped, it stops.
pub struct Delivery {
    lease: Arc<LeaseKeeper>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Delivery {
    /// Stops once the pass under way has handed its events on, then gives [`DELIVERY_LEASE`]
    /// up, so that another replica delivers at its next attempt instead of after the lease's
    /// expiry: for a graceful stop. Deliveries already handed on finish by themselves.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
        self.lease.release().await;
    }
}

/// Hands on the events after `cursor`; answers false when the lease was lost meanwhile.
async fn deliver_new(
    store: &StoreHandle,
    transport: &Arc<HttpTransport>,
    outbound: &Outbound,
    token: i64,
    cursor: &mut EventCursor,
) -> bool {
    let page = match store.registry_events(cursor.floor(), 1000).await {
        Ok(page) => page,
        Err(e) => {
            tracing::error!(error = %e, "cannot read registry events");
            return true;
        }
    };
    let fresh: Vec<RegistryEvent> = page.into_iter().filter(|e| cursor.see(e.id)).collect();
    cursor.settle(std::time::Instant::now());
    match store
        .advance_lease(DELIVERY_LEASE, token, cursor.floor())
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!("the webhook delivery lease was lost; another replica delivers");
            return false;
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot move the webhook cursor");
            return false;
        }
    }
    if fresh.is_empty() {
        return true;
    }
    transport.warm();
    let webhooks: Arc<dyn WebhookStore> = store.clone();
    let hooks = match webhooks.list_webhooks().await {
        Ok(hooks) => hooks,
        Err(e) => {
            tracing::error!(error = %e, "cannot read webhooks");
            Vec::new()
        }
    };
    for event in fresh {
        for hook in hooks.iter().filter(|h| h.wants(&event)) {
            tokio::spawn(deliver(
                webhooks.clone(),
                transport.clone(),
                hook.clone(),
                event.clone(),
            ));
        }
        deliver_to_mlflow_hooks(store.as_ref(), &webhooks, outbound, &event).await;
    }
    true
}

/// Hands `event`, as MLflow names it, to the active MLflow-style webhooks subscribed to it.
async fn deliver_to_mlflow_hooks(
    registry: &dyn RegistryStore,
    webhooks: &Arc<dyn WebhookStore>,
    outbound: &Outbound,
    event: &RegistryEvent,
) {
    let mut hooks = Vec::new();
    let mut token = None;
    loop {
        match webhooks.list_mlflow_webhooks(1000, token.as_deref()).await {
            Ok(page) => {
                hooks.extend(page.items.into_iter().filter(|h| h.active));
                token = page.next_page_token;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot read MLflow webhooks");
                return;
            }
        }
        if token.is_none() {
            break;
        }
    }
    if hooks.is_empty() {
        return;
    }
    let prompt = match event.kind {
        RegistryEventKind::ModelCreated | RegistryEventKind::VersionCreated => {
            is_prompt(&event.detail.tags)
        }
        // As MLflow asks: is the model, as it is now, a prompt?
        _ => registry
            .get_registered_model(&event.model_name)
            .await
            .is_ok_and(|m| is_prompt(&m.tags)),
    };
    let Some((topic, data)) = mlflow_event(event, prompt) else {
        return;
    };
    let reach = Reach::from_env(outbound);
    for hook in hooks.into_iter().filter(|h| h.events.contains(&topic)) {
        tokio::spawn(deliver_mlflow(
            webhooks.clone(),
            reach.clone(),
            hook,
            event.id,
            topic,
            data.clone(),
        ));
    }
}

const IS_PROMPT_TAG: &str = "mlflow.prompt.is_prompt";
const PROMPT_TYPE_TAG: &str = "_mlflow_prompt_type";
const PROMPT_TEXT_TAG: &str = "mlflow.prompt.text";

/// MLflow's rule: the last `mlflow.prompt.is_prompt` tag says so, in any case.
fn is_prompt(tags: &[Tag]) -> bool {
    tags.iter()
        .rev()
        .find(|t| t.key == IS_PROMPT_TAG)
        .is_some_and(|t| t.value.eq_ignore_ascii_case("true"))
}

fn tag_map<'a>(tags: &'a [Tag], without: &[&str]) -> Map<String, Value> {
    tags.iter()
        .filter(|t: &&'a Tag| !without.contains(&t.key.as_str()))
        .map(|t| (t.key.clone(), Value::from(t.value.clone())))
        .collect()
}

fn or_null(value: &Option<String>) -> Value {
    value
        .as_ref()
        .filter(|v| !v.is_empty())
        .map_or(Value::Null, |v| Value::from(v.clone()))
}

fn topic(name: &str) -> MlflowEvent {
    // Every name passed here is one of MLFLOW_EVENTS (the tests walk them all).
    MlflowEvent::parse(name).unwrap_or_else(|| unreachable!("{name} is an MLflow event"))
}

/// The MLflow event a registry event fires, with MLflow's payload for it (the request's
/// values, as MLflow's handlers build them), or `None` for changes MLflow sends no webhook for
/// (renames, deletions, stage transitions).
fn mlflow_event(e: &RegistryEvent, prompt: bool) -> Option<(MlflowEvent, Value)> {
    let d = &e.detail;
    let name = Value::from(e.model_name.clone());
    let version = Value::from(e.version.map(|v| v.to_string()));
    let (key, value) = d.tag.as_ref().map_or((Value::Null, Value::Null), |t| {
        (Value::from(t.key.clone()), Value::from(t.value.clone()))
    });
    let alias = Value::from(e.alias.clone());
    Some(match (e.kind, prompt) {
        (RegistryEventKind::ModelCreated, false) => (
            topic("registered_model.created"),
            json!({"name": name, "tags": tag_map(&d.tags, &[]),
                   "description": d.description.clone().unwrap_or_default()}),
        ),
        (RegistryEventKind::ModelCreated, true) => (
            topic("prompt.created"),
            json!({"name": name, "tags": tag_map(&d.tags, &[IS_PROMPT_TAG, PROMPT_TYPE_TAG]),
                   "description": d.description.clone().unwrap_or_default()}),
        ),
        (RegistryEventKind::VersionCreated, false) => (
            topic("model_version.created"),
            json!({"name": name, "version": version, "source": d.source.clone().unwrap_or_default(),
                   "run_id": or_null(&d.run_id), "tags": tag_map(&d.tags, &[]),
                   "description": or_null(&d.description)}),
        ),
        (RegistryEventKind::VersionCreated, true) => (
            topic("prompt_version.created"),
            json!({"name": name, "version": version,
                   "template": d.tags.iter().rev().find(|t| t.key == PROMPT_TEXT_TAG).map(|t| t.value.clone()),
                   "tags": tag_map(&d.tags, &[PROMPT_TEXT_TAG, IS_PROMPT_TAG, PROMPT_TYPE_TAG]),
                   "description": or_null(&d.description)}),
        ),
        (RegistryEventKind::VersionTagSet, p) => (
            topic(if p {
                "prompt_version_tag.set"
            } else {
                "model_version_tag.set"
            }),
            json!({"name": name, "version": version, "key": key, "value": value}),
        ),
        (RegistryEventKind::VersionTagDeleted, p) => (
            topic(if p {
                "prompt_version_tag.deleted"
            } else {
                "model_version_tag.deleted"
            }),
            json!({"name": name, "version": version, "key": key}),
        ),
        (RegistryEventKind::AliasSet, p) => (
            topic(if p {
                "prompt_alias.created"
            } else {
                "model_version_alias.created"
            }),
            json!({"name": name, "alias": alias, "version": e.after.clone()}),
        ),
        (RegistryEventKind::AliasDeleted, p) => (
            topic(if p {
                "prompt_alias.deleted"
            } else {
                "model_version_alias.deleted"
            }),
            json!({"name": name, "alias": alias}),
        ),
        _ => return None,
    })
}

/// MLflow's example payload of each event (`get_example_payload_for_event`), which a webhook
/// test sends.
fn example_payload(event: MlflowEvent) -> Value {
    let tags = json!({"example_key": "example_value"});
    match event.as_str() {
        "registered_model.created" => json!({"name": "example_model", "tags": tags,
            "description": "An example registered model"}),
        "model_version.created" => json!({"name": "example_model", "version": "1",
            "source": "models:/123", "run_id": "abcd1234abcd5678", "tags": tags,
            "description": "An example model version"}),
        "model_version_tag.set" => json!({"name": "example_model", "version": "1",
            "key": "example_key", "value": "example_value"}),
        "model_version_tag.deleted" => json!({"name": "example_model", "version": "1",
            "key": "example_key"}),
        "model_version_alias.created" => json!({"name": "example_model",
            "alias": "example_alias", "version": "1"}),
        "model_version_alias.deleted" => json!({"name": "example_model", "alias": "example_alias"}),
        "prompt.created" => json!({"name": "example_prompt", "tags": tags,
            "description": "An example prompt"}),
        "prompt_version.created" => json!({"name": "example_prompt", "version": "1",
            "template": "Hello {{name}}!", "tags": tags, "description": "An example prompt version"}),
        "prompt_tag.set" => json!({"name": "example_prompt", "key": "example_key",
            "value": "example_value"}),
        "prompt_tag.deleted" => json!({"name": "example_prompt", "key": "example_key"}),
        "prompt_version_tag.set" => json!({"name": "example_prompt", "version": "1",
            "key": "example_key", "value": "example_value"}),
        "prompt_version_tag.deleted" => json!({"name": "example_prompt", "version": "1",
            "key": "example_key"}),
        "prompt_alias.created" => json!({"name": "example_prompt", "alias": "example_alias",
            "version": "1"}),
        "prompt_alias.deleted" => json!({"name": "example_prompt", "alias": "example_alias"}),
        _ => json!({"budget_policy_id": "bp-abc123", "budget_unit": "USD",
            "budget_amount": 100.0, "current_spend": 105.50, "duration_unit": "MONTHS",
            "duration_value": 1, "target_scope": "ENDPOINT", "workspace": "default",
            "target_value": "ep-abc123", "window_start": 1_704_067_200_000_i64}),
    }
}

/// The body MLflow POSTs: the event, when, and its payload, written as Python's `json.dumps`.
fn mlflow_body(event: MlflowEvent, data: Value) -> String {
    let timestamp = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, false);
    pyjson::dumps(
        &json!({
            "entity": event.entity(),
            "action": event.action(),
            "timestamp": timestamp,
            "data": data,
        }),
        Separators::Default,
    )
}

/// One signed MLflow-style delivery: its body and every header.
fn mlflow_request(
    hook: &MlflowWebhook,
    event: MlflowEvent,
    data: Value,
) -> (Vec<u8>, Vec<(&'static str, String)>) {
    let body = mlflow_body(event, data).into_bytes();
    let delivery_id = twinloop_core::ids::new_uuid();
    let headers =
        webhook::mlflow_headers(hook.secret.as_deref(), &delivery_id, now_ms() / 1000, &body);
    (body, headers)
}

async fn deliver_mlflow(
    store: Arc<dyn WebhookStore>,
    reach: Reach,
    hook: MlflowWebhook,
    event_id: i64,
    event: MlflowEvent,
    data: Value,
) {
    let log = Deliveries {
        store,
        webhook_id: hook.id,
        event_id,
        mlflow_id: Some(hook.webhook_id.clone()),
    };
    // MLflow checks the URL again before each delivery: the policy may have changed.
    if let Err(e) = reach.check(&hook.url).await {
        log.record(&Attempt {
            attempt: 1,
            status_code: None,
            error: Some(e.message.clone()),
            delivered: false,
        })
        .await;
        tracing::warn!(webhook = %hook.webhook_id, url = %hook.url, error = %e.message, "webhook not sent");
        return;
    }
    let transport = HttpTransport::new(reach.outbound.clone());
    let (body, headers) = mlflow_request(&hook, event, data);
    let outcome = webhook::deliver_signed(&transport, &log, &hook.url, &headers, &body).await;
    if let Outcome::Failed { last_error } = outcome {
        tracing::warn!(
            webhook = %hook.webhook_id,
            url = %hook.url,
            event = event.as_str(),
            attempts = webhook::ATTEMPTS,
            last_error,
            "webhook delivery failed after every attempt; this event is dropped"
        );
    }
}

/// What a webhook test reports, as MLflow's `WebhookTestResult` holds it.
pub struct TestResult {
    pub success: bool,
    pub response_status: Option<u16>,
    pub response_body: Option<String>,
    pub error_message: Option<String>,
}

/// Sends `event`'s example payload (else the webhook's first event's) to `hook` once, through
/// the same checks, signature and guarded transport as a delivery.
pub async fn test_delivery(
    hook: &MlflowWebhook,
    event: Option<MlflowEvent>,
    outbound: &Outbound,
) -> TestResult {
    let failed = |why: String| TestResult {
        success: false,
        response_status: None,
        response_body: None,
        error_message: Some(format!("Failed to test webhook: {why}")),
    };
    let Some(event) = event.or_else(|| hook.events.first().copied()) else {
        return failed("the webhook has no events".into());
    };
    let reach = Reach::from_env(outbound);
    if let Err(e) = reach.check(&hook.url).await {
        return failed(e.message);
    }
    let transport = HttpTransport::new(reach.outbound.clone());
    let (body, headers) = mlflow_request(hook, event, example_payload(event));
    match transport.post_with_reply(&hook.url, &headers, &body).await {
        Ok((status, text)) => TestResult {
            success: status < 400,
            response_status: Some(status),
            response_body: Some(text),
            error_message: None,
        },
        Err(e) => failed(e.to_string()),
    }
}

/// The delivery log of one event to one webhook.
struct Deliveries {
    store: Arc<dyn WebhookStore>,
    webhook_id: i64,
    event_id: i64,
    /// Set for a webhook made through MLflow's API, which is looked up by it.
    mlflow_id: Option<String>,
}

#[async_trait]
impl DeliveryLog for Deliveries {
    async fn record(&self, attempt: &Attempt) {
        let record = WebhookDelivery {
            id: 0,
            webhook_id: self.webhook_id,
            event_id: self.event_id,
            attempt: attempt.attempt,
            status_code: attempt.status_code,
            error: attempt.error.clone(),
            delivered: attempt.delivered,
            time: now_ms(),
        };
        if let Err(e) = self.store.record_delivery(&record).await {
            tracing::error!(error = %e, "cannot record a webhook delivery");
        }
    }

    /// Whether the webhook still exists; on a store error, assume it does (a retry too many is
    /// better than a delivery lost).
    async fn still_wanted(&self) -> bool {
        if let Some(id) = &self.mlflow_id {
            return match self.store.get_mlflow_webhook(id).await {
                Ok(hook) => hook.active,
                Err(e) => e.kind != ErrorKind::NotFound,
            };
        }
        match self.store.list_webhooks().await {
            Ok(hooks) => hooks.iter().any(|h| h.id == self.webhook_id),
            Err(_) => true,
        }
    }
}

async fn deliver(
    store: Arc<dyn WebhookStore>,
    transport: Arc<HttpTransport>,
    hook: Webhook,
    event: RegistryEvent,
) {
    let body = event_json(&event);
    let headers = [
        ("x-twinloop-event", event.kind.as_str().to_string()),
        ("x-twinloop-delivery", format!("{}-{}", hook.id, event.id)),
    ];
    let log = Deliveries {
        store,
        webhook_id: hook.id,
        event_id: event.id,
        mlflow_id: None,
    };
    let outcome = webhook::deliver(
        transport.as_ref(),
        &log,
        &hook.url,
        &hook.secret,
        &headers,
        body.as_bytes(),
    )
    .await;
    if let Outcome::Failed { last_error } = outcome {
        tracing::warn!(
            webhook = hook.id,
            url = %hook.url,
            event = event.id,
            attempts = webhook::ATTEMPTS,
            last_error,
            "webhook delivery failed after every attempt; this event is dropped (`twinloop webhooks rm ID` removes a webhook)"
        );
    }
}

#[cfg(test)]
mod tests {
    use twinloop_core::registry::{EventDetail, MLFLOW_EVENTS};

    use super::*;

    fn event(kind: RegistryEventKind, detail: EventDetail) -> RegistryEvent {
        RegistryEvent {
            id: 7,
            timestamp: 1,
            actor: "a".into(),
            kind,
            model_name: "m".into(),
            version: Some(2),
            alias: Some("champion".into()),
            before: None,
            after: Some("2".into()),
            detail,
        }
    }

    #[test]
    fn registry_events_become_mlflows_events_and_payloads() {
        let created = EventDetail {
            tags: vec![Tag::new("k", "v")],
            source: Some("runs:/r/model".into()),
            run_id: Some(String::new()),
            ..EventDetail::default()
        };
        let (t, data) =
            mlflow_event(&event(RegistryEventKind::VersionCreated, created), false).unwrap();
        assert_eq!(t.as_str(), "model_version.created");
        assert_eq!(
            data,
            json!({"name": "m", "version": "2", "source": "runs:/r/model", "run_id": null,
                   "tags": {"k": "v"}, "description": null})
        );
        let (t, data) = mlflow_event(
            &event(RegistryEventKind::ModelCreated, EventDetail::default()),
            false,
        )
        .unwrap();
        assert_eq!(t.as_str(), "registered_model.created");
        assert_eq!(data, json!({"name": "m", "tags": {}, "description": ""}));
        let tag = EventDetail {
            tag: Some(Tag::new("k", "v")),
            ..EventDetail::default()
        };
        let (t, data) =
            mlflow_event(&event(RegistryEventKind::VersionTagSet, tag.clone()), true).unwrap();
        assert_eq!(t.as_str(), "prompt_version_tag.set");
        assert_eq!(
            data,
            json!({"name": "m", "version": "2", "key": "k", "value": "v"})
        );
        let (t, data) = mlflow_event(
            &event(RegistryEventKind::AliasSet, EventDetail::default()),
            false,
        )
        .unwrap();
        assert_eq!(t.as_str(), "model_version_alias.created");
        assert_eq!(
            data,
            json!({"name": "m", "alias": "champion", "version": "2"})
        );
        let prompt = EventDetail {
            tags: vec![
                Tag::new(IS_PROMPT_TAG, "True"),
                Tag::new(PROMPT_TEXT_TAG, "Hi {{x}}"),
                Tag::new("k", "v"),
            ],
            ..EventDetail::default()
        };
        assert!(is_prompt(&prompt.tags));
        let (t, data) =
            mlflow_event(&event(RegistryEventKind::VersionCreated, prompt), true).unwrap();
        assert_eq!(t.as_str(), "prompt_version.created");
        assert_eq!(data["template"], "Hi {{x}}");
        assert_eq!(data["tags"], json!({"k": "v"}));
        for silent in [
            RegistryEventKind::ModelRenamed,
            RegistryEventKind::ModelDeleted,
            RegistryEventKind::VersionDeleted,
            RegistryEventKind::StageChanged,
        ] {
            assert!(mlflow_event(&event(silent, EventDetail::default()), false).is_none());
        }
    }

    #[test]
    fn every_event_has_an_example_and_a_body_in_pythons_json() {
        for name in MLFLOW_EVENTS {
            let event = MlflowEvent::parse(name).unwrap();
            let body = mlflow_body(event, example_payload(event));
            let parsed: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(parsed["entity"], event.entity());
            assert_eq!(parsed["action"], event.action());
            assert!(parsed["data"].is_object(), "{name}");
            assert!(body.contains("\"data\": {"), "Python's separators: {body}");
        }
    }

    #[tokio::test]
    async fn reach_refuses_other_schemes_and_private_hosts_unless_allowed() {
        let strict = Reach {
            schemes: vec!["https".into()],
            outbound: Outbound::default(),
        };
        for url in [
            "http://example.com/hook",
            "https://127.0.0.1/hook",
            "https://[::1]/hook",
            "https://169.254.169.254/latest",
            "https://2130706433/hook",
            "https://localhost/hook",
            "https:///hook",
            "",
        ] {
            let err = strict.check(url).await.unwrap_err();
            assert_eq!(err.kind, ErrorKind::InvalidArgument, "{url}");
        }
        assert!(strict.check("https://93.184.216.34/hook").await.is_ok());
        let open = Reach {
            schemes: vec!["http".into(), "https".into()],
            outbound: Outbound::anywhere(),
        };
        assert!(open.check("http://127.0.0.1:9/hook").await.is_ok());
    }

    #[tokio::test]
    async fn a_guarded_transport_does_not_connect_to_a_private_literal() {
        for url in [
            "http://127.0.0.1:9/hook",
            "http://127.1:9/hook",
            "http://2130706433:9/hook",
            "http://0x7f.1:9/hook",
            "http://017700000001:9/hook",
            "http://0.0.0.0:9/hook",
            "http://[::1]:9/hook",
            "http://[::ffff:127.0.0.1]:9/hook",
            "http://[::ffff:7f00:1]:9/hook",
            "http://[2002:7f00:1::]:9/hook",
            "http://[64:ff9b::7f00:1]:9/hook",
            "http://169.254.169.254/latest",
            "http://10.1.2.3/x",
            "http://192.168.0.1/x",
        ] {
            let err = HttpTransport::new(Outbound::default())
                .post(url, &[], b"{}")
                .await
                .unwrap_err();
            assert!(
                err.to_string().contains("connection blocked"),
                "{url}: {err}"
            );
            assert!(Outbound::default().check(url).await.is_err(), "{url}");
        }
    }

    #[tokio::test]
    async fn the_allow_list_opens_named_targets_only() {
        let allow = Outbound::parse(&[
            "127.0.0.1/32".into(),
            "10.0.0.0/8".into(),
            "hooks.internal".into(),
        ])
        .unwrap();
        for url in [
            "http://127.0.0.1:9/x",
            "http://[::ffff:127.0.0.1]:9/x",
            "http://10.9.9.9/x",
            "http://hooks.internal/x",
        ] {
            assert!(allow.check(url).await.is_ok(), "{url}");
        }
        for url in [
            "http://127.0.0.2/x",
            "http://[::1]/x",
            "http://192.168.1.1/x",
            "http://169.254.169.254/x",
            "ftp://10.0.0.1/x",
        ] {
            assert!(allow.check(url).await.is_err(), "{url}");
        }
        for bad in ["10.0.0.0/33", "not a host", "1.2.3.4/x", ""] {
            assert!(Outbound::parse(&[bad.into()]).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_failed_connection_says_nothing_about_the_port() {
        // An allowed target with nothing listening, and one that accepts and closes: one reason.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let closed_port = closed.local_addr().unwrap().port();
        drop(closed);
        let open = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open_port = open.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((socket, _)) = open.accept().await {
                drop(socket);
            }
        });
        let transport = HttpTransport::new(Outbound::parse(&["127.0.0.1".into()]).unwrap());
        let mut reasons = Vec::new();
        for port in [closed_port, open_port] {
            let err = transport
                .post(&format!("http://127.0.0.1:{port}/x"), &[], b"{}")
                .await
                .unwrap_err();
            reasons.push(err.to_string());
        }
        assert_eq!(reasons[0], reasons[1]);
    }
}
