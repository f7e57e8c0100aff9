//! Building links. Ids and keys in paths and query strings are percent-encoded, and a URL that
//! came from user data (a tag, a dataset's source) becomes a link only when it is http(s), so a
//! `javascript:` value renders as inert text.

use std::fmt::Write;

use maud::{Markup, html};

/// Percent-encodes everything but RFC 3986's unreserved characters, so the result is safe as
/// one path segment or one query value.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A path with a query string of non-empty values, in the order added.
pub(crate) struct Href {
    url: String,
    first: bool,
}

impl Href {
    pub(crate) fn new(path: impl Into<String>) -> Self {
        Href {
            url: path.into(),
            first: true,
        }
    }

    pub(crate) fn q(self, name: &str, value: &str) -> Self {
        if value.is_empty() {
            self
        } else {
            self.q_always(name, value)
        }
    }

    /// Adds `name=value` even when the value is empty (`metric=`: no metric columns).
    pub(crate) fn q_always(mut self, name: &str, value: &str) -> Self {
        self.url.push(if self.first { '?' } else { '&' });
        self.first = false;
        self.url.push_str(name);
        self.url.push('=');
        self.url.push_str(&encode(value));
        self
    }

    pub(crate) fn build(self) -> String {
        self.url
    }
}

pub(crate) fn experiment(id: &str) -> String {
    format!("/experiments/{}", encode(id))
}

pub(crate) fn run(experiment_id: &str, run_id: &str) -> String {
    format!(
        "/experiments/{}/runs/{}",
        encode(experiment_id),
        encode(run_id)
    )
}

/// `url` as a link when it is http or https, else as plain text.
pub(crate) fn external(url: &str) -> Markup {
    let lower = url.trim_start().to_ascii_lowercase();
    if lower.starts_with("https://") || lower.starts_with("http://") {
        html! { a href=(url) rel="noopener noreferrer nofollow" { (url) } }
    } else {
        html! { (url) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_and_values_are_encoded() {
        assert_eq!(
            encode("a b/c?d#e&f=g'\"<"),
            "a%20b%2Fc%3Fd%23e%26f%3Dg%27%22%3C"
        );
        assert_eq!(encode("é"), "%C3%A9");
        assert_eq!(run("1", "../x"), "/experiments/1/runs/..%2Fx");
        let h = Href::new("/e")
            .q("filter", "a = 'b'")
            .q("empty", "")
            .q("o", "x");
        assert_eq!(h.build(), "/e?filter=a%20%3D%20%27b%27&o=x");
    }

    #[test]
    fn only_http_urls_become_links() {
        let link = external("https://github.com/org/repo").into_string();
        assert!(
            link.starts_with("<a href=\"https://github.com/org/repo\""),
            "{link}"
        );
        for hostile in [
            "javascript:alert(1)",
            " JavaScript:alert(1)",
            "data:text/html,x",
        ] {
            let text = external(hostile).into_string();
            assert!(!text.contains("<a"), "{text}");
        }
        let quoted = external("https://x/\"><script>").into_string();
        assert!(!quoted.contains("<script>"), "{quoted}");
    }
}
