//! Lines of keys in a pipeline file, so that errors can say `file:line`. serde reports positions
//! only for syntax and type errors; the checks after it (unknown step, cycle) find the line of a
//! step or field by its key. The feature repository's `locate` finds list items by `name:`;
//! pipelines key steps by id in a mapping, so this scan follows indentation instead.

/// 1-based line of `field` inside the step `id` of the top-level `section` (`steps` or
/// `finally`); falls back to the step's line, then the section's, then line 1.
pub fn locate(text: &str, section: &str, id: Option<&str>, field: Option<&str>) -> usize {
    let lines: Vec<&str> = text.lines().collect();
    let Some(start) = lines.iter().position(|l| key_of(l) == Some((0, section))) else {
        return 1;
    };
    let end = block_end(&lines, start, 0);
    let Some(id) = id else {
        return start + 1;
    };
    let Some(step) = (start + 1..end).find(|&i| {
        key_of(lines[i])
            .is_some_and(|(indent, key)| key == id && indent == child_indent(&lines, start, end))
    }) else {
        return start + 1;
    };
    let Some(field) = field else {
        return step + 1;
    };
    let step_indent = child_indent(&lines, start, end);
    let step_end = block_end(&lines, step, step_indent);
    (step + 1..step_end)
        .find(|&i| key_of(lines[i]).is_some_and(|(_, key)| key == field))
        .or_else(|| inline_field(lines[step], field).then_some(step))
        .map_or(step + 1, |i| i + 1)
}

/// The steps of `section` as (id, line), duplicates included, in file order.
pub fn step_keys(text: &str, section: &str) -> Vec<(String, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let Some(start) = lines.iter().position(|l| key_of(l) == Some((0, section))) else {
        return Vec::new();
    };
    let end = block_end(&lines, start, 0);
    let indent = child_indent(&lines, start, end);
    (start + 1..end)
        .filter_map(|i| match key_of(lines[i]) {
            Some((at, key)) if at == indent => Some((key.to_owned(), i + 1)),
            _ => None,
        })
        .collect()
}

/// The indentation and key of a `key:` line (not comments, not list items).
fn key_of(line: &str) -> Option<(usize, &str)> {
    let trimmed = line.trim_start();
    if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with('-') {
        return None;
    }
    let colon = trimmed.find(':')?;
    let key = trimmed[..colon]
        .trim()
        .trim_matches(|c| c == '"' || c == '\'');
    let after = &trimmed[colon + 1..];
    (after.is_empty() || after.starts_with(' ')).then_some((line.len() - trimmed.len(), key))
}

fn indent_of(line: &str) -> Option<usize> {
    let trimmed = line.trim_start();
    (!trimmed.is_empty() && !trimmed.starts_with('#')).then_some(line.len() - trimmed.len())
}

/// The first line after `start` indented no deeper than `indent`.
fn block_end(lines: &[&str], start: usize, indent: usize) -> usize {
    (start + 1..lines.len())
        .find(|&i| indent_of(lines[i]).is_some_and(|at| at <= indent))
        .unwrap_or(lines.len())
}

fn child_indent(lines: &[&str], start: usize, end: usize) -> usize {
    (start + 1..end)
        .find_map(|i| indent_of(lines[i]))
        .unwrap_or(2)
}

fn inline_field(line: &str, field: &str) -> bool {
    line.contains(&format!("{field}:"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "pipeline: p
steps:
  a:
    run: echo a
  # a comment
  b:
    needs: [a]
    run: echo ${{ params.x }}
finally:
  c: {run: echo c, needs: [b]}
";

    #[test]
    fn finds_steps_and_fields() {
        assert_eq!(locate(TEXT, "steps", Some("a"), None), 3);
        assert_eq!(locate(TEXT, "steps", Some("b"), Some("run")), 8);
        assert_eq!(locate(TEXT, "steps", Some("b"), Some("when")), 6);
        assert_eq!(locate(TEXT, "finally", Some("c"), Some("needs")), 10);
        assert_eq!(locate(TEXT, "steps", Some("zz"), None), 2);
        assert_eq!(locate(TEXT, "policy", None, None), 1);
        assert_eq!(
            step_keys(TEXT, "steps"),
            vec![("a".to_owned(), 3), ("b".to_owned(), 6)]
        );
    }
}
