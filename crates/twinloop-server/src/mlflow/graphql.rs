//! `POST /graphql`: the GraphQL endpoint MLflow's UI queries (MLflow 3.17.2's
//! `mlflow/server/graphql/` is the spec). MLflow's schema is generated from its REST messages, so
//! each root field names one REST call: it is answered by sending that request through the whole
//! app (every rule a route has applies to it, and the caller's credentials travel with it), and
//! the reply is projected onto the selection, camelCase fields read from snake_case keys.
//!
//! Only what the schema has: the root fields below, `Run.experiment` and `Run.modelVersions`,
//! 64-bit integers as strings (MLflow's `LongString`), a NaN metric value as null. MLflow's query
//! limits (depth, selections, root fields, aliases) are checked before anything runs, with its
//! messages. Fields that the schema lacks answer null rather than failing validation.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use tower::ServiceExt;

const MAX_DEPTH: usize = 10;
const MAX_SELECTIONS: usize = 1000;
const MAX_REPLY_BYTES: usize = 256 * 1024 * 1024;
/// The schema's `LongString` fields: int64s sent as strings so JavaScript does not round them.
const LONG_FIELDS: &[&str] = &[
    "step",
    "timestamp",
    "start_time",
    "end_time",
    "creation_time",
    "last_update_time",
    "creation_timestamp",
    "last_updated_timestamp",
    "file_size",
];

pub async fn handle(app: Router, headers: HeaderMap, body: Bytes) -> Response {
    let request: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        _ => return bad_request("GraphQL requests must be a JSON object with a query"),
    };
    let Some(query) = request.get("query").and_then(Value::as_str) else {
        return bad_request("GraphQL requests must be a JSON object with a query");
    };
    let document = match parse(query) {
        Ok(d) => d,
        Err(e) => return reply(Value::Null, vec![e]),
    };
    if let Err(e) = check_limits(&document) {
        return reply(Value::Null, vec![e]);
    }
    let operation_name = request.get("operationName").and_then(Value::as_str);
    let operation = match pick_operation(&document, operation_name) {
        Ok(op) => op,
        Err(e) => return reply(Value::Null, vec![e]),
    };
    let variables = match request.get("variables") {
        Some(Value::Object(vars)) => vars.clone(),
        _ => Map::new(),
    };
    let exec = Exec {
        app,
        headers: forwarded(&headers),
        fragments: &document.fragments,
        variables: &variables,
        errors: Vec::new(),
    };
    exec.run(operation).await
}

fn bad_request(message: &str) -> Response {
    crate::ApiError::invalid(message).into_response()
}

fn reply(data: Value, errors: Vec<String>) -> Response {
    let errors = if errors.is_empty() {
        Value::Null
    } else {
        json!(errors)
    };
    (
        StatusCode::OK,
        axum::Json(json!({ "data": data, "errors": errors })),
    )
        .into_response()
}

/// Only what identifies the caller goes along with each inner request.
fn forwarded(headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for name in [header::AUTHORIZATION, header::COOKIE] {
        if let Some(v) = headers.get(&name) {
            out.insert(name, v.clone());
        }
    }
    out
}

// --- the document -------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Val {
    Var(String),
    Int(i64),
    Float(f64),
    Str(String),
    Bool(bool),
    Null,
    Enum(String),
    List(Vec<Val>),
    Object(Vec<(String, Val)>),
}

#[derive(Debug)]
enum Selection {
    Field(Field),
    Spread(String),
    Inline(Vec<Selection>),
}

#[derive(Debug)]
struct Field {
    alias: Option<String>,
    name: String,
    args: Vec<(String, Val)>,
    selections: Vec<Selection>,
}

impl Field {
    fn key(&self) -> &str {
        self.alias.as_deref().unwrap_or(&self.name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Query,
    Mutation,
    Subscription,
}

#[derive(Debug)]
struct Operation {
    kind: Kind,
    name: Option<String>,
    defaults: Vec<(String, Val)>,
    selections: Vec<Selection>,
}

#[derive(Debug, Default)]
struct Document {
    operations: Vec<Operation>,
    fragments: HashMap<String, Vec<Selection>>,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Punct(char),
    Spread,
    Name(String),
    Int(i64),
    Float(f64),
    Str(String),
}

fn lex(src: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = src.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() || c == ',' || c == '\u{feff}' => i += 1,
            '#' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '{' | '}' | '(' | ')' | '[' | ']' | ':' | '!' | '$' | '@' | '=' | '|' | '&' => {
                toks.push(Tok::Punct(c));
                i += 1;
            }
            '.' if chars[i..].starts_with(&['.', '.', '.']) => {
                toks.push(Tok::Spread);
                i += 3;
            }
            '"' if chars[i..].starts_with(&['"', '"', '"']) => {
                let start = i + 3;
                let mut end = start;
                while end < chars.len() && !chars[end..].starts_with(&['"', '"', '"']) {
                    end += 1;
                }
                if end >= chars.len() {
                    return Err("Syntax Error: Unterminated string.".into());
                }
                toks.push(Tok::Str(chars[start..end].iter().collect()));
                i = end + 3;
            }
            '"' => {
                let mut s = String::new();
                i += 1;
                loop {
                    let Some(&c) = chars.get(i) else {
                        return Err("Syntax Error: Unterminated string.".into());
                    };
                    i += 1;
                    match c {
                        '"' => break,
                        '\n' => return Err("Syntax Error: Unterminated string.".into()),
                        '\\' => {
                            let e = *chars.get(i).ok_or("Syntax Error: Unterminated string.")?;
                            i += 1;
                            s.push(match e {
                                'n' => '\n',
                                't' => '\t',
                                'r' => '\r',
                                'b' => '\u{8}',
                                'f' => '\u{c}',
                                'u' => {
                                    let hex: String =
                                        chars.get(i..i + 4).unwrap_or(&[]).iter().collect();
                                    i += 4;
                                    u32::from_str_radix(&hex, 16)
                                        .ok()
                                        .and_then(char::from_u32)
                                        .ok_or("Syntax Error: Invalid Unicode escape sequence.")?
                                }
                                other => other,
                            });
                        }
                        c => s.push(c),
                    }
                }
                toks.push(Tok::Str(s));
            }
            c if c == '-' || c.is_ascii_digit() => {
                let start = i;
                i += 1;
                let mut float = false;
                while let Some(&d) = chars.get(i) {
                    if d.is_ascii_digit() {
                    } else if matches!(d, '.' | 'e' | 'E')
                        || (matches!(d, '+' | '-') && matches!(chars[i - 1], 'e' | 'E'))
                    {
                        float = true;
                    } else {
                        break;
                    }
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                let bad = || format!("Syntax Error: Invalid number, {text}.");
                toks.push(if float {
                    Tok::Float(text.parse().map_err(|_| bad())?)
                } else {
                    Tok::Int(text.parse().map_err(|_| bad())?)
                });
            }
            c if c == '_' || c.is_ascii_alphabetic() => {
                let start = i;
                while chars
                    .get(i)
                    .is_some_and(|d| *d == '_' || d.is_ascii_alphanumeric())
                {
                    i += 1;
                }
                toks.push(Tok::Name(chars[start..i].iter().collect()));
            }
            other => return Err(format!("Syntax Error: Unexpected character: '{other}'.")),
        }
    }
    Ok(toks)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

type Parsed<T> = Result<T, String>;

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Parsed<Tok> {
        let t = self
            .toks
            .get(self.pos)
            .cloned()
            .ok_or("Syntax Error: Unexpected <EOF>.")?;
        self.pos += 1;
        Ok(t)
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(&Tok::Punct(c)) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: char) -> Parsed<()> {
        match self.next()? {
            Tok::Punct(p) if p == c => Ok(()),
            other => Err(format!("Syntax Error: Expected \"{c}\", found {other:?}.")),
        }
    }

    fn name(&mut self) -> Parsed<String> {
        match self.next()? {
            Tok::Name(n) => Ok(n),
            other => Err(format!("Syntax Error: Expected Name, found {other:?}.")),
        }
    }

    fn document(&mut self) -> Parsed<Document> {
        let mut doc = Document::default();
        while let Some(tok) = self.peek().cloned() {
            match tok {
                Tok::Punct('{') => doc.operations.push(Operation {
                    kind: Kind::Query,
                    name: None,
                    defaults: Vec::new(),
                    selections: self.selection_set()?,
                }),
                Tok::Name(word) if word == "fragment" => {
                    self.pos += 1;
                    let name = self.name()?;
                    if self.name()? != "on" {
                        return Err("Syntax Error: Expected \"on\".".into());
                    }
                    self.name()?;
                    self.directives()?;
                    let selections = self.selection_set()?;
                    doc.fragments.insert(name, selections);
                }
                Tok::Name(word) => {
                    let kind = match word.as_str() {
                        "query" => Kind::Query,
                        "mutation" => Kind::Mutation,
                        "subscription" => Kind::Subscription,
                        _ => return Err(format!("Syntax Error: Unexpected Name \"{word}\".")),
                    };
                    self.pos += 1;
                    let name = match self.peek() {
                        Some(Tok::Name(_)) => Some(self.name()?),
                        _ => None,
                    };
                    let defaults = self.variable_definitions()?;
                    self.directives()?;
                    let selections = self.selection_set()?;
                    doc.operations.push(Operation {
                        kind,
                        name,
                        defaults,
                        selections,
                    });
                }
                other => return Err(format!("Syntax Error: Unexpected {other:?}.")),
            }
        }
        if doc.operations.is_empty() && doc.fragments.is_empty() {
            return Err("Syntax Error: Unexpected <EOF>.".into());
        }
        Ok(doc)
    }

    fn variable_definitions(&mut self) -> Parsed<Vec<(String, Val)>> {
        let mut defaults = Vec::new();
        if !self.eat('(') {
            return Ok(defaults);
        }
        while !self.eat(')') {
            self.expect('$')?;
            let name = self.name()?;
            self.expect(':')?;
            self.type_ref()?;
            if self.eat('=') {
                defaults.push((name, self.value()?));
            }
            self.directives()?;
        }
        Ok(defaults)
    }

    fn type_ref(&mut self) -> Parsed<()> {
        if self.eat('[') {
            self.type_ref()?;
            self.expect(']')?;
        } else {
            self.name()?;
        }
        self.eat('!');
        Ok(())
    }

    fn directives(&mut self) -> Parsed<()> {
        while self.eat('@') {
            self.name()?;
            self.arguments()?;
        }
        Ok(())
    }

    fn arguments(&mut self) -> Parsed<Vec<(String, Val)>> {
        let mut args = Vec::new();
        if self.eat('(') {
            while !self.eat(')') {
                let name = self.name()?;
                self.expect(':')?;
                args.push((name, self.value()?));
            }
        }
        Ok(args)
    }

    fn value(&mut self) -> Parsed<Val> {
        Ok(match self.next()? {
            Tok::Punct('$') => Val::Var(self.name()?),
            Tok::Int(i) => Val::Int(i),
            Tok::Float(f) => Val::Float(f),
            Tok::Str(s) => Val::Str(s),
            Tok::Name(n) => match n.as_str() {
                "true" => Val::Bool(true),
                "false" => Val::Bool(false),
                "null" => Val::Null,
                _ => Val::Enum(n),
            },
            Tok::Punct('[') => {
                let mut items = Vec::new();
                while !self.eat(']') {
                    items.push(self.value()?);
                }
                Val::List(items)
            }
            Tok::Punct('{') => {
                let mut fields = Vec::new();
                while !self.eat('}') {
                    let name = self.name()?;
                    self.expect(':')?;
                    fields.push((name, self.value()?));
                }
                Val::Object(fields)
            }
            other => return Err(format!("Syntax Error: Unexpected {other:?}.")),
        })
    }

    fn selection_set(&mut self) -> Parsed<Vec<Selection>> {
        self.expect('{')?;
        let mut selections = Vec::new();
        while !self.eat('}') {
            if self.peek() == Some(&Tok::Spread) {
                self.pos += 1;
                match self.peek() {
                    Some(Tok::Name(n)) if n != "on" => {
                        let name = self.name()?;
                        self.directives()?;
                        selections.push(Selection::Spread(name));
                    }
                    _ => {
                        if matches!(self.peek(), Some(Tok::Name(_))) {
                            self.pos += 1;
                            self.name()?;
                        }
                        self.directives()?;
                        selections.push(Selection::Inline(self.selection_set()?));
                    }
                }
                continue;
            }
            let first = self.name()?;
            let (alias, name) = if self.eat(':') {
                (Some(first), self.name()?)
            } else {
                (None, first)
            };
            let args = self.arguments()?;
            self.directives()?;
            let selections_of = if self.peek() == Some(&Tok::Punct('{')) {
                self.selection_set()?
            } else {
                Vec::new()
            };
            selections.push(Selection::Field(Field {
                alias,
                name,
                args,
                selections: selections_of,
            }));
        }
        Ok(selections)
    }
}

fn parse(src: &str) -> Result<Document, String> {
    Parser {
        toks: lex(src)?,
        pos: 0,
    }
    .document()
}

/// The fields of one level, with inline fragments and spreads merged into it (each fragment
/// once per path, so a cycle ends), and how many of them carry an alias.
fn level<'a>(
    selections: &'a [Selection],
    fragments: &'a HashMap<String, Vec<Selection>>,
    visited: &HashSet<&'a str>,
) -> (Vec<&'a Field>, usize, HashSet<&'a str>) {
    let mut fields = Vec::new();
    let mut aliases = 0;
    let mut visited = visited.clone();
    let mut todo: std::collections::VecDeque<&Selection> = selections.iter().collect();
    while let Some(selection) = todo.pop_front() {
        match selection {
            Selection::Field(f) => {
                aliases += usize::from(f.alias.is_some());
                fields.push(f);
            }
            Selection::Inline(inner) => todo.extend(inner),
            Selection::Spread(name) => {
                if visited.insert(name.as_str())
                    && let Some(inner) = fragments.get(name)
                {
                    todo.extend(inner);
                }
            }
        }
    }
    (fields, aliases, visited)
}

fn limit(var: &str) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(10)
}

/// MLflow's `check_query_safety`, over every operation of the document.
fn check_limits(doc: &Document) -> Result<(), String> {
    let mut root_fields = 0;
    let mut max_aliases = 0;
    let mut total = 0;
    for op in &doc.operations {
        let mut stack = vec![(&op.selections[..], 1usize, HashSet::new())];
        while let Some((selections, depth, visited)) = stack.pop() {
            if depth > MAX_DEPTH {
                return Err(format!("Query exceeds maximum depth of {MAX_DEPTH}"));
            }
            let (fields, aliases, visited) = level(selections, &doc.fragments, &visited);
            for field in fields {
                if depth == 1 {
                    root_fields += 1;
                }
                if !field.selections.is_empty() {
                    stack.push((&field.selections[..], depth + 1, visited.clone()));
                }
                total += 1;
                if total > MAX_SELECTIONS {
                    return Err(format!(
                        "Query exceeds maximum total selections of {MAX_SELECTIONS}"
                    ));
                }
            }
            max_aliases = max_aliases.max(aliases);
        }
    }
    for (value, var, what) in [
        (
            root_fields,
            "MLFLOW_SERVER_GRAPHQL_MAX_ROOT_FIELDS",
            "root fields",
        ),
        (max_aliases, "MLFLOW_SERVER_GRAPHQL_MAX_ALIASES", "aliases"),
    ] {
        let max = limit(var);
        if value > max {
            return Err(format!(
                "GraphQL queries should have at most {max} {what}, got {value} {what}. \
                 To increase the limit, set the {var} environment variable."
            ));
        }
    }
    Ok(())
}

fn pick_operation<'a>(doc: &'a Document, name: Option<&str>) -> Result<&'a Operation, String> {
    match name {
        Some(name) => doc
            .operations
            .iter()
            .find(|op| op.name.as_deref() == Some(name))
            .ok_or_else(|| format!("Unknown operation named '{name}'.")),
        None => match &doc.operations[..] {
            [op] => Ok(op),
            [] => Err("Must provide an operation.".into()),
            _ => Err("Must provide operation name if query contains multiple operations.".into()),
        },
    }
}

// --- execution ----------------------------------------------------------------------------

fn snake(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// A request message from a GraphQL input object: the REST route's snake_case field names.
fn to_json(v: &Val, vars: &Map<String, Value>) -> Value {
    match v {
        Val::Var(name) => vars.get(name).cloned().unwrap_or(Value::Null),
        Val::Int(i) => json!(i),
        Val::Float(f) => json!(f),
        Val::Str(s) | Val::Enum(s) => json!(s),
        Val::Bool(b) => json!(b),
        Val::Null => Value::Null,
        Val::List(items) => Value::Array(items.iter().map(|i| to_json(i, vars)).collect()),
        Val::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(k, v)| (snake(k), to_json(v, vars)))
                .collect(),
        ),
    }
}

/// A query string from a request message; lists repeat their key, as the client sends them.
fn query_string(input: &Value) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    if let Value::Object(fields) = input {
        for (k, v) in fields {
            let items = match v {
                Value::Array(items) => items.iter().collect(),
                Value::Null => Vec::new(),
                one => vec![one],
            };
            for item in items {
                match item {
                    Value::String(s) => q.append_pair(k, s),
                    other => q.append_pair(k, &other.to_string()),
                };
            }
        }
    }
    q.finish()
}

struct Exec<'a> {
    app: Router,
    headers: HeaderMap,
    fragments: &'a HashMap<String, Vec<Selection>>,
    variables: &'a Map<String, Value>,
    errors: Vec<String>,
}

type Boxed<'a> = Pin<Box<dyn Future<Output = Value> + Send + 'a>>;

impl<'a> Exec<'a> {
    async fn run(mut self, op: &'a Operation) -> Response {
        let mut vars = self.variables.clone();
        for (name, default) in &op.defaults {
            if !vars.contains_key(name) {
                vars.insert(name.clone(), to_json(default, &Map::new()));
            }
        }
        let (kind_name, roots): (&str, &[&str]) = match op.kind {
            Kind::Query => (
                "Query",
                &[
                    "test",
                    "mlflowGetExperiment",
                    "mlflowGetMetricHistoryBulkInterval",
                    "mlflowGetRun",
                    "mlflowListArtifacts",
                    "mlflowSearchModelVersions",
                    "mlflowSearchRuns",
                ],
            ),
            Kind::Mutation => (
                "Mutation",
                &["testMutation", "mlflowSearchDatasets", "mlflowSearchRuns"],
            ),
            Kind::Subscription => {
                return reply(
                    Value::Null,
                    vec!["Schema is not configured for subscriptions.".into()],
                );
            }
        };
        let (fields, _, _) = level(&op.selections, self.fragments, &HashSet::new());
        // Unknown root fields fail validation: nothing runs, as in graphql-core.
        let unknown: Vec<String> = fields
            .iter()
            .filter(|f| f.name != "__typename" && !roots.contains(&f.name.as_str()))
            .map(|f| format!("Cannot query field '{}' on type '{kind_name}'.", f.name))
            .collect();
        if !unknown.is_empty() {
            return reply(Value::Null, unknown);
        }
        let mut data = Map::new();
        for field in fields {
            let args: Map<String, Value> = field
                .args
                .iter()
                .map(|(k, v)| (k.clone(), to_json(v, &vars)))
                .collect();
            let value = match field.name.as_str() {
                "__typename" => json!(kind_name),
                "test" | "testMutation" => {
                    let output = args.get("inputString").cloned().unwrap_or(Value::Null);
                    self.project(&json!({ "output": output }), &field.selections)
                        .await
                }
                name => {
                    let input = field
                        .args
                        .iter()
                        .find(|(k, _)| k == "input")
                        .map(|(_, v)| to_json(v, &vars))
                        .unwrap_or_else(|| json!({}));
                    match self.resolve(name, input).await {
                        Ok(reply) => self.project(&reply, &field.selections).await,
                        Err(message) => {
                            self.errors.push(message);
                            Value::Null
                        }
                    }
                }
            };
            data.insert(field.key().to_string(), value);
        }
        let errors = std::mem::take(&mut self.errors);
        reply(Value::Object(data), errors)
    }

    async fn resolve(&self, root: &str, input: Value) -> Result<Value, String> {
        const API: &str = "/api/2.0/mlflow";
        let (method, path) = match root {
            "mlflowGetExperiment" => (Method::GET, "experiments/get"),
            "mlflowGetMetricHistoryBulkInterval" => {
                (Method::GET, "metrics/get-history-bulk-interval")
            }
            "mlflowGetRun" => (Method::GET, "runs/get"),
            "mlflowListArtifacts" => (Method::GET, "artifacts/list"),
            "mlflowSearchModelVersions" => (Method::GET, "model-versions/search"),
            "mlflowSearchRuns" => (Method::POST, "runs/search"),
            "mlflowSearchDatasets" => (Method::POST, "experiments/search-datasets"),
            other => return Err(format!("Cannot query field '{other}'.")),
        };
        let mut reply = self.call(method, &format!("{API}/{path}"), input).await?;
        // Proto3 strings read as "" when unset; MLflow's reply to this one has none.
        if root == "mlflowSearchDatasets"
            && let Some(Value::Array(summaries)) = reply.get_mut("dataset_summaries")
        {
            for s in summaries.iter_mut().filter_map(Value::as_object_mut) {
                s.entry("context").or_insert_with(|| json!(""));
            }
        }
        Ok(reply)
    }

    async fn call(&self, method: Method, path: &str, input: Value) -> Result<Value, String> {
        let (uri, body) = if method == Method::GET {
            (format!("{path}?{}", query_string(&input)), Body::empty())
        } else {
            (path.to_string(), Body::from(input.to_string()))
        };
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .body(body)
            .map_err(|e| e.to_string())?;
        request.headers_mut().extend(self.headers.clone());
        let response = self
            .app
            .clone()
            .oneshot(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), MAX_REPLY_BYTES)
            .await
            .map_err(|e| e.to_string())?;
        let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status.is_success() {
            Ok(value)
        } else {
            Err(value
                .get("message")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| format!("request failed with status {status}")))
        }
    }

    /// `value` (a REST reply or a part of one) as the selection asks for it.
    fn project<'b>(&'b self, value: &'b Value, selections: &'b [Selection]) -> Boxed<'b> {
        Box::pin(async move {
            match value {
                Value::Array(items) => {
                    let mut out = Vec::with_capacity(items.len());
                    for item in items {
                        out.push(self.project(item, selections).await);
                    }
                    Value::Array(out)
                }
                Value::Object(object) => {
                    let (fields, _, _) = level(selections, self.fragments, &HashSet::new());
                    let mut out = Map::new();
                    for field in fields {
                        let key = snake(&field.name);
                        let extension = self.run_extension(object, &field.name).await;
                        let found = extension.as_ref().or_else(|| object.get(&key));
                        let v = match found {
                            // An unset int64 reads as its proto default (a directory's size).
                            None if field.selections.is_empty() && LONG_FIELDS.contains(&&*key) => {
                                json!("0")
                            }
                            None | Some(Value::Null) => Value::Null,
                            Some(v) if !field.selections.is_empty() => {
                                self.project(v, &field.selections).await
                            }
                            Some(v) => leaf(&key, v),
                        };
                        out.insert(field.key().to_string(), v);
                    }
                    Value::Object(out)
                }
                _ => Value::Null,
            }
        })
    }

    /// `Run.experiment` and `Run.modelVersions`, which MLflow's schema adds to its runs.
    async fn run_extension(&self, object: &Map<String, Value>, field: &str) -> Option<Value> {
        let info = object.get("info")?.as_object()?;
        let run_id = info.get("run_id")?.as_str()?;
        match field {
            "experiment" => {
                let id = info.get("experiment_id")?.clone();
                let reply = self
                    .call(
                        Method::GET,
                        "/api/2.0/mlflow/experiments/get",
                        json!({ "experiment_id": id }),
                    )
                    .await
                    .ok()?;
                reply.get("experiment").cloned()
            }
            "modelVersions" => {
                let filter = format!("run_id='{run_id}'");
                let reply = self
                    .call(
                        Method::GET,
                        "/api/2.0/mlflow/model-versions/search",
                        json!({ "filter": filter }),
                    )
                    .await
                    .ok()?;
                Some(reply.get("model_versions").cloned().unwrap_or(json!([])))
            }
            _ => None,
        }
    }
}

/// A scalar as the schema types it: `LongString`s as strings, a NaN float as null (MLflow's
/// `MlflowMetricExtension`), lists element by element.
fn leaf(key: &str, v: &Value) -> Value {
    match v {
        Value::Array(items) => Value::Array(items.iter().map(|i| leaf(key, i)).collect()),
        Value::Number(n) if LONG_FIELDS.contains(&key) && (n.is_i64() || n.is_u64()) => {
            Value::String(n.to_string())
        }
        Value::String(s) if key == "value" && s == "NaN" => Value::Null,
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_mlflows_ui_and_tests_send() {
        let doc = parse(
            r#"query testQuery @component(name: "Test") {
                files: mlflowListArtifacts(input: {runId: "r1", path: "a/b",}) {
                    files { path isDir fileSize }
                }
                ...F
                ... on Query { test(inputString: "x\"y") { output } }
            }
            fragment F on Query { mlflowGetRun(input: {runId: $id}) { run { info { status } } } }"#,
        )
        .unwrap();
        let op = pick_operation(&doc, Some("testQuery")).unwrap();
        assert_eq!(op.kind, Kind::Query);
        let (fields, aliases, _) = level(&op.selections, &doc.fragments, &HashSet::new());
        let names: Vec<_> = fields.iter().map(|f| f.key()).collect();
        assert_eq!(names, ["files", "mlflowGetRun", "test"]);
        assert_eq!(aliases, 1);
        assert_eq!(
            fields[2].args,
            vec![("inputString".to_string(), Val::Str("x\"y".into()))]
        );
        let vars = json!({"id": "r9"});
        let input = to_json(&fields[1].args[0].1, vars.as_object().unwrap());
        assert_eq!(input, json!({"run_id": "r9"}));
        assert_eq!(
            query_string(&json!({"run_ids": ["a", "b"], "metric_key": "m x", "max_results": 5})),
            "max_results=5&metric_key=m+x&run_ids=a&run_ids=b"
        );
    }

    #[test]
    fn limits_are_mlflows_with_its_messages() {
        let deep = (0..12).fold("name".to_string(), |inner, _| format!("name {{ {inner} }}"));
        let q = format!(
            "query q {{ mlflowGetExperiment(input: {{experimentId: \"1\"}}) {{ experiment {{ {deep} }} }} }}"
        );
        assert_eq!(
            check_limits(&parse(&q).unwrap()).unwrap_err(),
            "Query exceeds maximum depth of 10"
        );
        let roots: String = (0..12)
            .map(|i| format!("k{i}: test(inputString: \"a\") {{ output }} "))
            .collect();
        let err = check_limits(&parse(&format!("query q {{ {roots} }}")).unwrap()).unwrap_err();
        assert!(
            err.starts_with(
                "GraphQL queries should have at most 10 root fields, got 12 root fields."
            ),
            "{err}"
        );
        let wide: String = (0..1002).map(|i| format!("f{i} {{ name }} ")).collect();
        let err = check_limits(&parse(&format!("{{ a {{ {wide} }} }}")).unwrap()).unwrap_err();
        assert_eq!(err, "Query exceeds maximum total selections of 1000");
        // A fragment that spreads itself is followed once, not forever.
        let cyclic =
            parse("query q { ...F } fragment F on Query { test { output } ...F }").unwrap();
        assert!(check_limits(&cyclic).is_ok());
    }

    #[test]
    fn scalars_follow_the_schema() {
        assert_eq!(leaf("file_size", &json!(11)), json!("11"));
        assert_eq!(leaf("timestamp", &json!([1, 2])), json!(["1", "2"]));
        assert_eq!(leaf("value", &json!("NaN")), Value::Null);
        assert_eq!(leaf("value", &json!(1.5)), json!(1.5));
        assert_eq!(leaf("is_dir", &json!(true)), json!(true));
        assert_eq!(snake("experimentIds"), "experiment_ids");
        assert!(parse("query { a(x: ) }").is_err());
        assert!(parse("{ a(x: \"open) }").is_err());
    }
}
