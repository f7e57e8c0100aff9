use super::filter::Entity;
use super::lexer::{Token, tokenize};
use twinloop_core::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderKey {
    pub entity: Entity,
    pub key: String,
    pub ascending: bool,
}

/// Parses one `order_by` entry such as ``metrics.`m 1` DESC`` or `name ASC` (default ASC).
pub fn parse_order_by(text: &str, bare_is_attribute: bool) -> Result<OrderKey> {
    let err = |what: &str| Error::invalid(format!("Invalid order_by clause {text:?}: {what}"));
    let tokens = tokenize(text).map_err(|e| err(&e.message))?;
    let mut it = tokens.into_iter();
    let (entity, key) = match it.next().map(|s| s.token) {
        Some(Token::Ident {
            prefix: Some(p),
            key,
        }) => match Entity::from_prefix(&p) {
            Some(Entity::Dataset) => return Err(err("datasets cannot be ordered by")),
            Some(e) => (e, key),
            None if bare_is_attribute => (Entity::Attribute, format!("{p}.{key}")),
            None => return Err(err(&format!("unknown entity type {p:?}"))),
        },
        Some(Token::Ident { prefix: None, key }) if bare_is_attribute => (Entity::Attribute, key),
        Some(Token::Ident { prefix: None, key }) => {
            return Err(err(&format!(
                "{key:?} needs an entity prefix (metrics., params., tags. or attributes.)"
            )));
        }
        _ => return Err(err("expected a key to order by")),
    };
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
    fn rejects_garbage() {
        assert!(parse_order_by("metrics.x SIDEWAYS", false).is_err());
        assert!(parse_order_by("", false).is_err());
        assert!(parse_order_by("start_time", false).is_err());
        assert!(parse_order_by("metrics.x DESC extra", false).is_err());
    }
}
