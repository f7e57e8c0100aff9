//! Finds the line of a definition in a YAML file, so that errors can say `file:line`.
//!
//! serde's YAML deserializers report positions only for syntax and type errors; the checks that
//! come after (unknown entity, missing column…) need the line of an item found by its name. The
//! files are small and written by people, so a scan of the text is enough: the section's top-level
//! key, then the item whose `name:` matches, then the field inside that item.

/// 1-based line of the `nth` (0-based) item named `name` in top-level `section`, or of its
/// `field` when given; falls back to the item's line, then the section's, then line 1.
pub fn locate(text: &str, section: &str, name: &str, nth: usize, field: Option<&str>) -> usize {
    let lines: Vec<&str> = text.lines().collect();
    let Some(section_start) = lines
        .iter()
        .position(|l| l.starts_with(section) && l[section.len()..].trim_start().starts_with(':'))
    else {
        return 1;
    };
    let section_end = lines[section_start + 1..]
        .iter()
        .position(|l| is_top_level_key(l))
        .map_or(lines.len(), |p| section_start + 1 + p);
    let mut seen = 0;
    for i in section_start + 1..section_end {
        if names_item(lines[i], name) {
            if seen < nth {
                seen += 1;
                continue;
            }
            let Some(field) = field else {
                return i + 1;
            };
            if has_key(lines[i], field) {
                return i + 1;
            }
            let indent = item_indent(&lines, i);
            for (j, line) in lines.iter().enumerate().take(section_end).skip(i + 1) {
                let trimmed = line.trim_start();
                let this_indent = line.len() - trimmed.len();
                if trimmed.starts_with("- ") && this_indent <= indent {
                    break;
                }
                if has_key(line, field) {
                    return j + 1;
                }
            }
            return i + 1;
        }
    }
    section_start + 1
}

fn is_top_level_key(line: &str) -> bool {
    line.chars()
        .next()
        .is_some_and(|c| !c.is_whitespace() && c != '-' && c != '#')
}

/// The indentation of the `- ` that opens the item containing line `i`.
fn item_indent(lines: &[&str], i: usize) -> usize {
    for line in lines[..=i].iter().rev() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("- ") {
            return line.len() - trimmed.len();
        }
    }
    0
}

fn has_key(line: &str, key: &str) -> bool {
    line.match_indices(key).any(|(at, _)| {
        let before = line[..at].chars().next_back();
        let after = line[at + key.len()..].trim_start();
        before.is_none_or(|c| !c.is_alphanumeric() && c != '_') && after.starts_with(':')
    })
}

fn names_item(line: &str, name: &str) -> bool {
    line.match_indices("name").any(|(at, _)| {
        let before = line[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            return false;
        }
        let Some(rest) = line[at + 4..].trim_start().strip_prefix(':') else {
            return false;
        };
        let value = rest.trim_start();
        let value = value
            .strip_prefix('"')
            .or_else(|| value.strip_prefix('\''))
            .unwrap_or(value);
        value.strip_prefix(name).is_some_and(|after| {
            after
                .chars()
                .next()
                .is_none_or(|c| matches!(c, '"' | '\'' | ',' | '}' | ' ' | '#'))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "project: rides
entities:
  - {name: driver, join_keys: [driver_id]}
  - name: customer
    join_keys: [customer_id]
feature_views:
  - name: driver_stats
    entities: [driver]
    features:
      - {name: conv_rate, dtype: float32}
  - name: customer
    entities: [customer]
";

    #[test]
    fn finds_items_and_fields() {
        assert_eq!(locate(TEXT, "entities", "driver", 0, None), 3);
        assert_eq!(locate(TEXT, "entities", "driver", 0, Some("join_keys")), 3);
        assert_eq!(
            locate(TEXT, "entities", "customer", 0, Some("join_keys")),
            5
        );
        assert_eq!(locate(TEXT, "feature_views", "customer", 0, None), 11);
        assert_eq!(
            locate(TEXT, "feature_views", "driver_stats", 0, Some("entities")),
            8
        );
        assert_eq!(
            locate(TEXT, "feature_views", "conv_rate", 0, Some("dtype")),
            10
        );
        assert_eq!(locate(TEXT, "feature_views", "nope", 0, None), 6);
        assert_eq!(locate(TEXT, "sources", "x", 0, None), 1);
    }

    #[test]
    fn a_field_of_the_next_item_is_not_taken() {
        assert_eq!(
            locate(TEXT, "feature_views", "customer", 0, Some("features")),
            11
        );
    }
}
