use super::lexer::{Spanned, Token, tokenize};
use super::summary::{SummaryRef, resolve};
use twinloop_core::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entity {
    Metric,
    Param,
    Tag,
    Attribute,
    Dataset,
}

impl Entity {
    pub(crate) fn from_prefix(prefix: &str) -> Option<Entity> {
        match prefix.to_ascii_lowercase().as_str() {
            "metric" | "metrics" => Some(Entity::Metric),
            "param" | "params" | "parameter" | "parameters" => Some(Entity::Param),
            "tag" | "tags" => Some(Entity::Tag),
            "attribute" | "attributes" | "attr" | "run" => Some(Entity::Attribute),
            "dataset" | "datasets" => Some(Entity::Dataset),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Entity::Metric => "metric",
            Entity::Param => "parameter",
            Entity::Tag => "tag",
            Entity::Attribute => "attribute",
            Entity::Dataset => "dataset",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparator {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Like,
    ILike,
    In,
    NotIn,
}

impl Comparator {
    pub fn as_str(self) -> &'static str {
        match self {
            Comparator::Eq => "=",
            Comparator::Ne => "!=",
            Comparator::Lt => "<",
            Comparator::Le => "<=",
            Comparator::Gt => ">",
            Comparator::Ge => ">=",
            Comparator::Like => "LIKE",
            Comparator::ILike => "ILIKE",
            Comparator::In => "IN",
            Comparator::NotIn => "NOT IN",
        }
    }

    pub fn is_numeric(self) -> bool {
        matches!(
            self,
            Comparator::Eq
                | Comparator::Ne
                | Comparator::Lt
                | Comparator::Le
                | Comparator::Gt
                | Comparator::Ge
        )
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Str(String),
    Num(f64),
    List(Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Clause {
    pub entity: Entity,
    pub key: String,
    /// Set when a metric clause names a summary (`metrics.loss.min`); `key` is then the key as
    /// written, which for the unquoted form is also the literal key it may mean.
    pub summary: Option<SummaryRef>,
    pub comparator: Comparator,
    pub value: Literal,
}

impl Clause {
    /// Renders the clause back in filter syntax, for error messages that point at it.
    pub fn describe(&self) -> String {
        let value = match &self.value {
            Literal::Str(s) => format!("'{s}'"),
            Literal::Num(n) => n.to_string(),
            Literal::List(items) => format!(
                "({})",
                items
                    .iter()
                    .map(|s| format!("'{s}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let suffix = match &self.summary {
            Some(s) if s.or_literal.is_none() => format!(".{}", s.summary.as_str()),
            _ => String::new(),
        };
        format!(
            "{}.{}{suffix} {} {}",
            self.entity.name(),
            self.key,
            self.comparator.as_str(),
            value
        )
    }

    pub fn invalid(&self, why: &str) -> Error {
        Error::invalid(format!("Invalid clause '{}': {why}", self.describe()))
    }
}

/// The longest filter accepted, in bytes: far past any written by hand or by MLflow's UI, short
/// enough that parsing and quoting it back in messages stays cheap.
pub const MAX_FILTER_LEN: usize = 8192;

/// The most clauses one filter may join: each becomes a join or subquery, and PostgreSQL's
/// planning time grows steeply with their number (a 4 KB filter, about 100 clauses, took it 16 s).
pub const MAX_FILTER_CLAUSES: usize = 25;

/// Parses `clause (AND clause)*`. `bare_is_attribute` says how to read a key with no entity
/// prefix: experiments and models treat `name` as an attribute; runs demand a prefix.
pub fn parse_filter(filter: &str, bare_is_attribute: bool) -> Result<Vec<Clause>> {
    if filter.len() > MAX_FILTER_LEN {
        return Err(Error::invalid(format!(
            "Invalid filter: {} characters exceed the limit of {MAX_FILTER_LEN}",
            filter.len()
        )));
    }
    let tokens = tokenize(filter)?;
    let mut parser = Parser {
        filter,
        tokens,
        i: 0,
        bare_is_attribute,
    };
    let mut clauses = Vec::new();
    if parser.tokens.is_empty() {
        return Ok(clauses);
    }
    loop {
        if clauses.len() == MAX_FILTER_CLAUSES {
            return Err(Error::invalid(format!(
                "Invalid filter: more than {MAX_FILTER_CLAUSES} clauses joined by AND"
            )));
        }
        clauses.push(parser.clause()?);
        match parser.next() {
            None => return Ok(clauses),
            Some(Spanned {
                token: Token::Word(w),
                ..
            }) if w == "AND" => continue,
            Some(Spanned {
                token: Token::Word(w),
                pos,
            }) if w == "OR" => {
                return Err(parser.error(pos, "OR is not supported; only AND can join clauses"));
            }
            Some(t) => return Err(parser.error(t.pos, "expected AND between clauses")),
        }
    }
}

struct Parser<'a> {
    filter: &'a str,
    tokens: Vec<Spanned>,
    i: usize,
    bare_is_attribute: bool,
}

impl Parser<'_> {
    fn next(&mut self) -> Option<Spanned> {
        let t = self.tokens.get(self.i).cloned();
        self.i += 1;
        t
    }

    fn end_pos(&self) -> usize {
        self.filter.len()
    }

    fn error(&self, pos: usize, what: &str) -> Error {
        Error::invalid(format!(
            "Invalid filter {:?}: {what} (at position {pos})",
            self.filter
        ))
    }

    fn clause(&mut self) -> Result<Clause> {
        let Some(first) = self.next() else {
            return Err(self.error(self.end_pos(), "expected a clause"));
        };
        let (entity, key, quoted, suffix) = match first.token {
            Token::Ident {
                prefix: Some(p),
                key,
                quoted,
                suffix,
            } => match Entity::from_prefix(&p) {
                Some(e) => (e, key, quoted, suffix),
                None if self.bare_is_attribute => {
                    (Entity::Attribute, format!("{p}.{key}"), quoted, suffix)
                }
                None => {
                    return Err(self.error(
                        first.pos,
                        &format!(
                            "invalid entity type {p:?}; use metrics., params., tags., attributes. or datasets."
                        ),
                    ));
                }
            },
            Token::Ident {
                prefix: None,
                key,
                quoted,
                suffix,
            } => {
                if self.bare_is_attribute {
                    (Entity::Attribute, key, quoted, suffix)
                } else {
                    return Err(self.error(
                        first.pos,
                        &format!(
                            "invalid identifier {key:?}; name it as metrics.<key>, params.<key>, tags.<key> or attributes.<key>"
                        ),
                    ));
                }
            }
            _ => return Err(self.error(first.pos, "expected an identifier such as metrics.acc")),
        };
        let (key, summary) =
            resolve(entity, key, quoted, suffix).map_err(|(pos, what)| self.error(pos, &what))?;
        let comparator = self.comparator()?;
        let value = self.value(comparator)?;
        Ok(Clause {
            entity,
            key,
            summary,
            comparator,
            value,
        })
    }

    fn comparator(&mut self) -> Result<Comparator> {
        let Some(t) = self.next() else {
            return Err(self.error(self.end_pos(), "expected a comparator"));
        };
        Ok(match t.token {
            Token::Op("=") => Comparator::Eq,
            Token::Op("!=") => Comparator::Ne,
            Token::Op("<") => Comparator::Lt,
            Token::Op("<=") => Comparator::Le,
            Token::Op(">") => Comparator::Gt,
            Token::Op(">=") => Comparator::Ge,
            Token::Word(w) if w == "LIKE" => Comparator::Like,
            Token::Word(w) if w == "ILIKE" => Comparator::ILike,
            Token::Word(w) if w == "IN" => Comparator::In,
            Token::Word(w) if w == "NOT" => match self.next() {
                Some(Spanned {
                    token: Token::Word(w),
                    ..
                }) if w == "IN" => Comparator::NotIn,
                _ => return Err(self.error(t.pos, "expected IN after NOT")),
            },
            _ => {
                return Err(self.error(
                    t.pos,
                    "expected a comparator (=, !=, <, <=, >, >=, LIKE, ILIKE, IN, NOT IN)",
                ));
            }
        })
    }

    fn value(&mut self, comparator: Comparator) -> Result<Literal> {
        let Some(t) = self.next() else {
            return Err(self.error(self.end_pos(), "expected a value"));
        };
        if matches!(comparator, Comparator::In | Comparator::NotIn) {
            if t.token != Token::LParen {
                return Err(self.error(
                    t.pos,
                    "expected a parenthesised list of quoted strings after IN",
                ));
            }
            let mut items = Vec::new();
            loop {
                match self.next() {
                    Some(Spanned {
                        token: Token::Str(s),
                        ..
                    }) => items.push(s),
                    Some(t) => {
                        return Err(self.error(t.pos, "expected a quoted string in the IN list"));
                    }
                    None => return Err(self.error(self.end_pos(), "unterminated IN list")),
                }
                match self.next() {
                    Some(Spanned {
                        token: Token::Comma,
                        ..
                    }) => continue,
                    Some(Spanned {
                        token: Token::RParen,
                        ..
                    }) => break,
                    Some(t) => return Err(self.error(t.pos, "expected ',' or ')' in the IN list")),
                    None => return Err(self.error(self.end_pos(), "unterminated IN list")),
                }
            }
            return Ok(Literal::List(items));
        }
        match t.token {
            Token::Str(s) => Ok(Literal::Str(s)),
            Token::Num(n) => n
                .parse::<f64>()
                .map(Literal::Num)
                .map_err(|_| self.error(t.pos, "invalid number")),
            _ => Err(self.error(t.pos, "expected a quoted string or a number")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(filter: &str) -> Clause {
        let mut clauses = parse_filter(filter, false).unwrap();
        assert_eq!(clauses.len(), 1, "{filter}");
        clauses.remove(0)
    }

    #[test]
    fn parses_each_entity_and_comparator() {
        let c = one("metrics.acc >= 0.5");
        assert_eq!(
            (c.entity, c.key.as_str(), c.comparator),
            (Entity::Metric, "acc", Comparator::Ge)
        );
        assert_eq!(c.value, Literal::Num(0.5));
        let c = one("params.p LIKE 'a%'");
        assert_eq!((c.entity, c.comparator), (Entity::Param, Comparator::Like));
        let c = one("tags.mlflow.parentRunId = 'abc'");
        assert_eq!(
            (c.entity, c.key.as_str()),
            (Entity::Tag, "mlflow.parentRunId")
        );
        let c = one("attributes.run_id NOT IN ('a', 'b')");
        assert_eq!(c.comparator, Comparator::NotIn);
        assert_eq!(c.value, Literal::List(vec!["a".into(), "b".into()]));
        let c = one("attribute.status ILIKE \"fin%\"");
        assert_eq!(
            (c.entity, c.comparator),
            (Entity::Attribute, Comparator::ILike)
        );
        assert_eq!(one("metrics.x != -1e3").value, Literal::Num(-1000.0));
        assert_eq!(one("metrics.x <> 1").comparator, Comparator::Ne);
    }

    #[test]
    fn quoted_keys() {
        let c = one("metrics.`my metric` > 1");
        assert_eq!(c.key, "my metric");
        let c = one("tags.\"a b\" = 'x'");
        assert_eq!((c.entity, c.key.as_str()), (Entity::Tag, "a b"));
        let c = one("tags.`mlflow.runName` = 'x'");
        assert_eq!(c.key, "mlflow.runName");
    }

    #[test]
    fn metric_summaries_and_dotted_keys() {
        use crate::search::{Summary, SummaryRef};
        let summary = |summary, key: &str, or_literal: Option<&str>| {
            Some(SummaryRef {
                summary,
                key: key.into(),
                or_literal: or_literal.map(String::from),
            })
        };
        let c = one("metrics.loss.min < 1");
        assert_eq!(c.key, "loss.min");
        assert_eq!(c.summary, summary(Summary::Min, "loss", Some("loss.min")));
        let c = one("metrics.a.b.count >= 2");
        assert_eq!(c.summary, summary(Summary::Count, "a.b", Some("a.b.count")));
        let c = one("metrics.`a.b`.max > 1");
        assert_eq!(c.summary, summary(Summary::Max, "a.b", None));
        assert_eq!(c.describe(), "metric.a.b.max > 1");
        let c = one("metrics.\"a b\".last = 1");
        assert_eq!(c.summary, summary(Summary::Last, "a b", None));
        for literal in [
            "metrics.`a.min` > 1",
            "metrics.min > 1",
            "metrics.a.avg > 1",
        ] {
            assert_eq!(one(literal).summary, None, "{literal}");
        }
        assert_eq!(one("params.p.min = 'x'").summary, None);
    }

    #[test]
    fn bad_summaries_name_their_position() {
        for (bad, position) in [
            ("metrics.`loss`.avg > 1", 15),
            ("tags.`t`.max = 'x'", 9),
            ("metrics.`loss`. > 1", 14),
            ("metrics.`loss`.", 14),
        ] {
            let e = parse_filter(bad, false).unwrap_err();
            assert_eq!(e.kind, twinloop_core::ErrorKind::InvalidArgument, "{bad}");
            assert!(
                e.message.contains(&format!("position {position}")),
                "{bad}: {}",
                e.message
            );
        }
    }

    #[test]
    fn and_is_case_insensitive() {
        let clauses = parse_filter(
            "metrics.x >= 0.2 and metrics.y < 97 AND params.p = 'b'",
            false,
        )
        .unwrap();
        assert_eq!(clauses.len(), 3);
    }

    #[test]
    fn bare_keys_depend_on_the_search() {
        assert!(parse_filter("name = 'x'", false).is_err());
        let c = parse_filter("name LIKE 'pfx-%'", true).unwrap().remove(0);
        assert_eq!((c.entity, c.key.as_str()), (Entity::Attribute, "name"));
    }

    #[test]
    fn empty_filter_has_no_clauses() {
        assert!(parse_filter("   ", false).unwrap().is_empty());
        let many = vec!["metrics.m > 0"; MAX_FILTER_CLAUSES + 1].join(" AND ");
        let e = parse_filter(&many, true).unwrap_err();
        assert!(e.message.contains("more than 25 clauses"), "{}", e.message);
        assert_eq!(
            parse_filter(&many[..many.len() - " AND metrics.m > 0".len()], true)
                .unwrap()
                .len(),
            MAX_FILTER_CLAUSES
        );
        let long = format!("params.p = '{}'", "x".repeat(MAX_FILTER_LEN));
        let e = parse_filter(&long, true).unwrap_err();
        assert!(
            !e.message.contains("xxxx"),
            "not echoed back: {}",
            e.message
        );
    }

    #[test]
    fn malformed_filters_point_at_the_problem() {
        for bad in [
            "metrics.x >",
            "metrics.x >> 1",
            "metrics.x > 1 OR metrics.y < 2",
            "metrics.x = 'unterminated",
            "foo.x = 1",
            "metrics.x 1",
            "attributes.run_id IN 'a'",
            "attributes.run_id IN ('a',",
            "metrics.x > 1 metrics.y > 2",
            "(metrics.x > 1)",
            "metrics.x = 1;",
        ] {
            let e = parse_filter(bad, false).unwrap_err();
            assert_eq!(e.kind, twinloop_core::ErrorKind::InvalidArgument, "{bad}");
            assert!(
                e.message.contains("position") || e.message.contains("Invalid"),
                "{bad}: {}",
                e.message
            );
        }
    }
}
