//! The MLflow search language: filters, `order_by` entries and page tokens.

use twinloop_meta::search::{
    Clause, Entity, Literal, OrderKey, decode_page_token, encode_page_token, parse_filter,
    parse_order_by,
};

use crate::split_selector;

/// twinloop-meta's limit on a filter's length (private there): quoting can lengthen a filter
/// past it, and such a print is not re-parsed.
const FILTER_LIMIT: usize = 8192;

/// `filter_string`: the first byte's low bit is `bare_is_attribute` (experiments and models
/// read a bare key as an attribute, runs do not). A filter accepted, printed back in canonical
/// form and parsed again gives the same clauses.
pub fn filter(data: &[u8]) {
    let Some((mode, text)) = split_selector(data) else {
        return;
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let bare_is_attribute = mode & 1 == 1;
    let Ok(clauses) = parse_filter(text, bare_is_attribute) else {
        return;
    };
    let printed = clauses
        .iter()
        .map(print_clause)
        .collect::<Vec<_>>()
        .join(" AND ");
    if printed.len() > FILTER_LIMIT {
        return;
    }
    let again = parse_filter(&printed, bare_is_attribute)
        .unwrap_or_else(|e| panic!("{text:?} printed as {printed:?} does not parse: {e}"));
    assert_eq!(again, clauses, "{text:?} printed as {printed:?}");
}

/// One `order_by` entry, with the same mode byte and the same print-and-reparse oracle.
pub fn order_by(data: &[u8]) {
    let Some((mode, text)) = split_selector(data) else {
        return;
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let bare_is_attribute = mode & 1 == 1;
    let Ok(key) = parse_order_by(text, bare_is_attribute) else {
        return;
    };
    let printed = print_order(&key);
    let again = parse_order_by(&printed, bare_is_attribute)
        .unwrap_or_else(|e| panic!("{text:?} printed as {printed:?} does not parse: {e}"));
    assert_eq!(again, key, "{text:?} printed as {printed:?}");
}

/// A client's `page_token`: accepted tokens name an offset that encodes back to a token naming
/// the same offset; anything else is refused, never wrapped or panicked on.
pub fn page_token(data: &[u8]) {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(offset) = decode_page_token(Some(token)) {
        let again = decode_page_token(Some(&encode_page_token(offset)));
        assert_eq!(again.ok(), Some(offset), "{token:?}");
    }
}

fn prefix(entity: Entity) -> &'static str {
    match entity {
        Entity::Metric => "metrics",
        Entity::Param => "params",
        Entity::Tag => "tags",
        Entity::Attribute => "attributes",
        Entity::Dataset => "datasets",
    }
}

/// A doubled quote stands for one inside quotes, in keys and strings alike.
fn quoted(text: &str, quote: char) -> String {
    let doubled: String = [quote, quote].iter().collect();
    format!("{quote}{}{quote}", text.replace(quote, &doubled))
}

/// The identifier as the parser reads it back: an unquoted metric key that may name a summary
/// (`metrics.loss.min`) stays unquoted, since quoting it would make it the literal key.
fn print_key(
    entity: Entity,
    key: &str,
    summary: Option<&twinloop_meta::search::SummaryRef>,
) -> String {
    match summary {
        Some(s) if s.or_literal.is_some() => format!("{}.{key}", prefix(entity)),
        Some(s) => format!(
            "{}.{}.{}",
            prefix(entity),
            quoted(key, '`'),
            s.summary.as_str()
        ),
        None => format!("{}.{}", prefix(entity), quoted(key, '`')),
    }
}

fn print_number(n: f64) -> String {
    // `1e999` parses to infinity, which `{:?}` would print as a word.
    if n.is_infinite() {
        return if n > 0.0 { "1e999" } else { "-1e999" }.to_string();
    }
    format!("{n:?}")
}

fn print_clause(clause: &Clause) -> String {
    let value = match &clause.value {
        Literal::Str(s) => quoted(s, '\''),
        Literal::Num(n) => print_number(*n),
        Literal::List(items) => format!(
            "({})",
            items
                .iter()
                .map(|s| quoted(s, '\''))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    format!(
        "{} {} {value}",
        print_key(clause.entity, &clause.key, clause.summary.as_ref()),
        clause.comparator.as_str()
    )
}

fn print_order(key: &OrderKey) -> String {
    format!(
        "{} {}",
        print_key(key.entity, &key.key, key.summary.as_ref()),
        if key.ascending { "ASC" } else { "DESC" }
    )
}
