use super::filter::Entity;
use super::lexer::{Token, tokenize};
use super::summary::{SummaryRef, resolve};
use twinloop_core::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderKey {
    pub entity: Entity,
    pub key: String,
    /// Set when a metric key names a summary (`metrics.loss.min`), as in [`super::Clause`].
    pub summary: Option<SummaryRef>,
    pub ascending: bool,
}

/// Parses one `order_by` entry such as ``metrics.`m 1` DESC`` or `name ASC` (default ASC).
pub fn parse_order_by(text: &str, bare_is_attribute: bool) -> Result<OrderKey> {
    let err = |what: &str| Error::invalid(format!("Invalid order_by clause {text:?}: {what}"));
    let tokens = tokenize(text).map_err(|e| err(&e.message))?;
    let mut it = tokens.into_iter();
    let (entity, key, quoted, suffix) = match it.next().map(|s| s.token) {
        Some(Token::Ident {
            prefix: Some(p),
            key,
            quoted,
            suffix,
        }) => match Entity::from_prefix(&p) {
            Some(Entity::Dataset) => return Err(err("datasets cannot be ordered by")),
            Some(e) => (e, key, quoted, suffix),
            None if bare_is_attribute => (Entity::Attribute, format!("{p}.{key}"), quoted, suffix),
            None => return Err(err(&format!("unknown entity type {p:?}"))),
        },
        Some(Token::Ident {
            prefix: None,
            key,
            quoted,
            suffix,
        }) if bare_is_attribute => (Entity::Attribute, key, quoted, suffix),
        Some(Token::Ident {
            prefix: None, key, ..
        }) => {
            return Err(err(&format!(
                "{key:?} needs an entity prefix (metrics., params., tags. or attributes.)"
            )));
        }
        _ => return Err(err("expected a key to order by")),
    };
    let (key, summary) = resolve(entity, key, quoted, suffix)
        .map_err(|(pos, what)| err(&format!("{what} (at position {pos})")))?;
    let ascending = match it.next().map(|s| s.token) {
        None => true,
        Some(Token::Word(w)) if w == "ASC" => true,
        Some(Token::Word(w)) if w == "DESC" => false,
        Some(_) => return Err(err("expected ASC or DESC after the key")),
    };
    if it.next().is_some() {
        return Err(err("unexpected text after ASC/DESC"));
    }
    Ok(OrderKey {
        entity,
        key,
        summary,
        ascending,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_keys_and_directions() {
        let k = parse_order_by("metrics.`m 1` DESC", false).unwrap();
        assert_eq!(
            (k.entity, k.key.as_str(), k.ascending),
            (Entity::Metric, "m 1", false)
        );
        let k = parse_order_by("attributes.start_time", false).unwrap();
        assert!(k.ascending);
        let k = parse_order_by("name desc", true).unwrap();
        assert_eq!(
            (k.entity, k.key.as_str(), k.ascending),
            (Entity::Attribute, "name", false)
        );
    }

    #[test]
    fn orders_by_metric_summaries() {
        let k = parse_order_by("metrics.`val.acc`.min DESC", false).unwrap();
        let summary = k.summary.unwrap();
        assert_eq!(
            (
                summary.summary,
                summary.key.as_str(),
                summary.or_literal,
                k.ascending
            ),
            (crate::search::Summary::Min, "val.acc", None, false)
        );
        let k = parse_order_by("metrics.loss.count", false).unwrap();
        assert_eq!(k.summary.unwrap().or_literal.as_deref(), Some("loss.count"));
        let e = parse_order_by("metrics.`loss`.median", false).unwrap_err();
        assert!(e.message.contains("position 15"), "{}", e.message);
        assert!(parse_order_by("params.`p`.max", false).is_err());
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse_order_by("metrics.x SIDEWAYS", false).is_err());
        assert!(parse_order_by("", false).is_err());
        assert!(parse_order_by("start_time", false).is_err());
        assert!(parse_order_by("metrics.x DESC extra", false).is_err());
    }
}
