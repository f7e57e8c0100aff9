//! `${{ … }}` expressions: parsed and checked when the pipeline loads, evaluated against a
//! [`Scope`] when a step is about to run.
//!
//! The language is small on purpose: references (`params.lr`, `steps.train.outputs.auc`,
//! `steps.train.status`, `run.id`, `run.status`, `item` in a `foreach:` step), literals,
//! `== != < <= > >= && || !`,
//! parentheses and one function, `default(a, b)`.

use serde_json::Value;

/// What an expression reads.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Ref {
    Param(String),
    Output {
        step: String,
        output: String,
    },
    Status(String),
    RunId,
    RunStatus,
    /// `trigger.kind`: what started the run (`manual`, `cron`, `monitor`, …).
    TriggerKind,
    /// `trigger.payload.a.b`: a path into the event that started the run (empty: all of it).
    TriggerPayload(Vec<String>),
    /// `item` (empty path) or `item.a.b`: the element a `foreach:` step's item runs with.
    Item(Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Literal(Value),
    Ref(Ref),
    Not(Box<Expr>),
    Binary(Box<Expr>, Op, Box<Expr>),
    Default(Box<Expr>, Box<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
}

/// The values references resolve to; a missing one reads as `null`.
pub trait Scope {
    fn get(&self, reference: &Ref) -> Value;
}

impl Expr {
    pub fn parse(text: &str) -> Result<Expr, String> {
        let tokens = tokenize(text)?;
        let mut parser = Parser { tokens, at: 0 };
        let expr = parser
            .or()
            .map_err(|e| format!("{e} in expression {text:?}"))?;
        match parser.tokens.get(parser.at) {
            None => Ok(expr),
            Some(t) => Err(format!(
                "unexpected {} in expression {text:?}",
                t.describe()
            )),
        }
    }

    /// Every reference, in order of appearance.
    pub fn refs(&self, out: &mut Vec<Ref>) {
        match self {
            Expr::Literal(_) => {}
            Expr::Ref(r) => out.push(r.clone()),
            Expr::Not(e) => e.refs(out),
            Expr::Binary(a, _, b) | Expr::Default(a, b) => {
                a.refs(out);
                b.refs(out);
            }
        }
    }

    pub fn eval(&self, scope: &dyn Scope) -> Value {
        match self {
            Expr::Literal(v) => v.clone(),
            Expr::Ref(r) => scope.get(r),
            Expr::Not(e) => Value::Bool(!truthy(&e.eval(scope))),
            Expr::Default(a, b) => match a.eval(scope) {
                Value::Null => b.eval(scope),
                v => v,
            },
            Expr::Binary(a, Op::And, b) => {
                let left = a.eval(scope);
                if truthy(&left) { b.eval(scope) } else { left }
            }
            Expr::Binary(a, Op::Or, b) => {
                let left = a.eval(scope);
                if truthy(&left) { left } else { b.eval(scope) }
            }
            Expr::Binary(a, op, b) => Value::Bool(compare(&a.eval(scope), *op, &b.eval(scope))),
        }
    }
}

/// `false`, `null`, `0` and `""` are false, like GitHub Actions.
pub fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// How a value reads when interpolated into a command or a variable.
pub fn to_text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn compare(a: &Value, op: Op, b: &Value) -> bool {
    use std::cmp::Ordering;
    let ordering = match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64().partial_cmp(&y.as_f64()),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        (Value::Null, Value::Null) => Some(Ordering::Equal),
        _ => None,
    };
    match op {
        Op::Eq => ordering == Some(Ordering::Equal),
        Op::Ne => ordering != Some(Ordering::Equal),
        Op::Lt => ordering == Some(Ordering::Less),
        Op::Le => matches!(ordering, Some(Ordering::Less | Ordering::Equal)),
        Op::Gt => ordering == Some(Ordering::Greater),
        Op::Ge => matches!(ordering, Some(Ordering::Greater | Ordering::Equal)),
        Op::And | Op::Or => false,
    }
}

/// A string with `${{ … }}` parts: a `run:` command, an env var, a `when:`.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pub source: String,
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Expr(Expr),
}

impl Template {
    pub fn parse(source: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = source;
        while let Some(start) = rest.find("${{") {
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_owned()));
            }
            let after = &rest[start + 3..];
            let end = after
                .find("}}")
                .ok_or_else(|| format!("unclosed `${{{{` in {source:?}"))?;
            parts.push(Part::Expr(Expr::parse(after[..end].trim())?));
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(Template {
            source: source.to_owned(),
            parts,
        })
    }

    pub fn refs(&self) -> Vec<Ref> {
        let mut out = Vec::new();
        for part in &self.parts {
            if let Part::Expr(e) = part {
                e.refs(&mut out);
            }
        }
        out
    }

    /// The template's single expression when it is nothing else (`${{ a == b }}`), so that
    /// `when:` keeps the value's type instead of its text.
    pub fn as_expr(&self) -> Option<&Expr> {
        match self.parts.as_slice() {
            [Part::Expr(e)] => Some(e),
            _ => None,
        }
    }

    pub fn eval(&self, scope: &dyn Scope) -> Value {
        if let Some(e) = self.as_expr() {
            return e.eval(scope);
        }
        Value::String(self.render(scope))
    }

    pub fn render(&self, scope: &dyn Scope) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Expr(e) => out.push_str(&to_text(&e.eval(scope))),
            }
        }
        out
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Number(f64),
    Str(String),
    Op(&'static str),
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Ident(name) => format!("`{name}`"),
            Token::Number(n) => format!("`{n}`"),
            Token::Str(s) => format!("{s:?}"),
            Token::Op(op) => format!("`{op}`"),
        }
    }
}

const OPERATORS: [&str; 13] = [
    "==", "!=", "<=", ">=", "&&", "||", "<", ">", "!", "(", ")", ",", ".",
];

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' || c == '"' {
            let end = chars[i + 1..]
                .iter()
                .position(|&d| d == c)
                .ok_or_else(|| format!("unclosed string in expression {text:?}"))?;
            tokens.push(Token::Str(chars[i + 1..i + 1 + end].iter().collect()));
            i += end + 2;
        } else if c.is_ascii_digit()
            || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            let start = i;
            i += 1;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            let number: String = chars[start..i].iter().collect();
            tokens.push(Token::Number(number.parse().map_err(|_| {
                format!("bad number {number:?} in expression {text:?}")
            })?));
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || matches!(chars[i], '_' | '-')) {
                i += 1;
            }
            tokens.push(Token::Ident(chars[start..i].iter().collect()));
        } else {
            let rest: String = chars[i..chars.len().min(i + 2)].iter().collect();
            let op = OPERATORS
                .iter()
                .find(|op| rest.starts_with(**op))
                .ok_or_else(|| format!("unexpected {c:?} in expression {text:?}"))?;
            tokens.push(Token::Op(op));
            i += op.len();
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek_op(&self, op: &str) -> bool {
        matches!(self.tokens.get(self.at), Some(Token::Op(o)) if *o == op)
    }

    fn expect_op(&mut self, op: &str) -> Result<(), String> {
        if self.peek_op(op) {
            self.at += 1;
            Ok(())
        } else {
            Err(format!("expected `{op}`"))
        }
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut left = self.and()?;
        while self.peek_op("||") {
            self.at += 1;
            left = Expr::Binary(Box::new(left), Op::Or, Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut left = self.comparison()?;
        while self.peek_op("&&") {
            self.at += 1;
            left = Expr::Binary(Box::new(left), Op::And, Box::new(self.comparison()?));
        }
        Ok(left)
    }

    fn comparison(&mut self) -> Result<Expr, String> {
        let left = self.unary()?;
        let op = match self.tokens.get(self.at) {
            Some(Token::Op("==")) => Op::Eq,
            Some(Token::Op("!=")) => Op::Ne,
            Some(Token::Op("<")) => Op::Lt,
            Some(Token::Op("<=")) => Op::Le,
            Some(Token::Op(">")) => Op::Gt,
            Some(Token::Op(">=")) => Op::Ge,
            _ => return Ok(left),
        };
        self.at += 1;
        Ok(Expr::Binary(Box::new(left), op, Box::new(self.unary()?)))
    }

    fn unary(&mut self) -> Result<Expr, String> {
        if self.peek_op("!") {
            self.at += 1;
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, String> {
        let token = self
            .tokens
            .get(self.at)
            .cloned()
            .ok_or("the expression ends too early")?;
        self.at += 1;
        match token {
            Token::Number(n) => Ok(Expr::Literal(
                serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number),
            )),
            Token::Str(s) => Ok(Expr::Literal(Value::String(s))),
            Token::Op("(") => {
                let inner = self.or()?;
                self.expect_op(")")?;
                Ok(inner)
            }
            Token::Op(op) => Err(format!("unexpected `{op}`")),
            Token::Ident(name) => self.identifier(name),
        }
    }

    fn identifier(&mut self, name: String) -> Result<Expr, String> {
        match name.as_str() {
            "true" => return Ok(Expr::Literal(Value::Bool(true))),
            "false" => return Ok(Expr::Literal(Value::Bool(false))),
            "null" => return Ok(Expr::Literal(Value::Null)),
            _ => {}
        }
        if self.peek_op("(") {
            if name != "default" {
                return Err(format!(
                    "unknown function {name}(): only default(a, b) is allowed"
                ));
            }
            self.at += 1;
            let a = self.or()?;
            self.expect_op(",")?;
            let b = self.or()?;
            self.expect_op(")")?;
            return Ok(Expr::Default(Box::new(a), Box::new(b)));
        }
        let mut path = vec![name];
        while self.peek_op(".") {
            self.at += 1;
            match self.tokens.get(self.at) {
                Some(Token::Ident(part)) => path.push(part.clone()),
                _ => return Err("expected a name after `.`".into()),
            }
            self.at += 1;
        }
        reference(&path).map(Expr::Ref)
    }
}

fn reference(path: &[String]) -> Result<Ref, String> {
    let parts: Vec<&str> = path.iter().map(String::as_str).collect();
    match parts.as_slice() {
        ["params", name] => Ok(Ref::Param((*name).to_owned())),
        ["steps", step, "outputs", output] => Ok(Ref::Output {
            step: (*step).to_owned(),
            output: (*output).to_owned(),
        }),
        ["steps", step, "status"] => Ok(Ref::Status((*step).to_owned())),
        ["run", "id"] => Ok(Ref::RunId),
        ["run", "status"] => Ok(Ref::RunStatus),
        ["trigger", "kind"] => Ok(Ref::TriggerKind),
        ["trigger", "payload", path @ ..] => Ok(Ref::TriggerPayload(
            path.iter().map(|p| (*p).to_owned()).collect(),
        )),
        ["item", path @ ..] => Ok(Ref::Item(path.iter().map(|p| (*p).to_owned()).collect())),
        _ => Err(format!(
            "unknown reference `{}`: use params.*, steps.<id>.outputs.<name>, steps.<id>.status, run.id, run.status, trigger.kind, trigger.payload.* or item",
            parts.join(".")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Fixed;
    impl Scope for Fixed {
        fn get(&self, r: &Ref) -> Value {
            match r {
                Ref::Param(p) if p == "lr" => json!(0.1),
                Ref::Output { output, .. } if output == "auc" => json!(0.9),
                Ref::Status(_) => json!("SUCCEEDED"),
                Ref::RunStatus => json!("FAILED"),
                _ => Value::Null,
            }
        }
    }

    fn eval(text: &str) -> Value {
        Expr::parse(text).unwrap().eval(&Fixed)
    }

    #[test]
    fn operators_and_literals() {
        assert_eq!(
            eval("params.lr < 0.2 && steps.t.outputs.auc >= 0.9"),
            json!(true)
        );
        assert_eq!(eval("run.status == 'FAILED' || false"), json!(true));
        assert_eq!(eval("!(steps.t.status != \"SUCCEEDED\")"), json!(true));
        assert_eq!(eval("default(params.missing, 3)"), json!(3.0));
        assert_eq!(eval("default(params.lr, 3)"), json!(0.1));
        assert_eq!(eval("params.missing == null"), json!(true));
        assert_eq!(eval("-1 < 0"), json!(true));
    }

    #[test]
    fn refs_are_listed() {
        let e = Expr::parse("steps.a.outputs.x == params.p && run.id != ''").unwrap();
        let mut refs = Vec::new();
        e.refs(&mut refs);
        assert_eq!(
            refs,
            vec![
                Ref::Output {
                    step: "a".into(),
                    output: "x".into()
                },
                Ref::Param("p".into()),
                Ref::RunId
            ]
        );
    }

    #[test]
    fn bad_expressions_say_why() {
        assert!(
            Expr::parse("params.lr <")
                .unwrap_err()
                .contains("ends too early")
        );
        assert!(
            Expr::parse("len(params.x)")
                .unwrap_err()
                .contains("unknown function")
        );
        assert!(
            Expr::parse("steps.a.output")
                .unwrap_err()
                .contains("unknown reference")
        );
        assert_eq!(
            Expr::parse("item").unwrap(),
            Expr::Ref(Ref::Item(Vec::new()))
        );
        assert_eq!(
            Expr::parse("item.name").unwrap(),
            Expr::Ref(Ref::Item(vec!["name".into()]))
        );
        assert!(
            Expr::parse("trigger.source")
                .unwrap_err()
                .contains("unknown reference")
        );
        assert_eq!(
            Expr::parse("trigger.payload.alert.rule").unwrap(),
            Expr::Ref(Ref::TriggerPayload(vec!["alert".into(), "rule".into()]))
        );
        assert!(Expr::parse("'open").unwrap_err().contains("unclosed"));
        assert!(Expr::parse("a b").is_err());
    }

    #[test]
    fn templates_interpolate() {
        let t = Template::parse("train --lr ${{ params.lr }} --x=${{params.none}}.").unwrap();
        assert_eq!(t.render(&Fixed), "train --lr 0.1 --x=.");
        assert_eq!(
            t.refs(),
            vec![Ref::Param("lr".into()), Ref::Param("none".into())]
        );
        let w = Template::parse("${{ params.lr > 1 }}").unwrap();
        assert_eq!(w.eval(&Fixed), json!(false));
        assert!(
            Template::parse("${{ params.lr")
                .unwrap_err()
                .contains("unclosed")
        );
    }
}
