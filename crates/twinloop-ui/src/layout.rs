//! The frame every page shares, and the pages for errors.

use maud::{DOCTYPE, Markup, html};

use crate::assets;

/// htmx's settings, read from a meta tag so no inline script is needed. No `<style>` injected
/// (the CSP refuses inline styles), no eval, no scripts run from swapped-in HTML, and error
/// pages are swapped in like any other: an invalid filter answers 400 with the form and the
/// server's message, which the user must see.
const HTMX_CONFIG: &str = r#"{"includeIndicatorStyles":false,"allowEval":false,"allowScriptTags":false,"responseHandling":[{"code":"204","swap":false},{"code":"...","swap":true}]}"#;

/// One step of the breadcrumb trail: a label, and a link unless it is the current page.
pub(crate) struct Crumb {
    pub label: String,
    pub href: Option<String>,
}

impl Crumb {
    pub(crate) fn link(label: impl Into<String>, href: String) -> Self {
        Crumb {
            label: label.into(),
            href: Some(href),
        }
    }

    pub(crate) fn here(label: impl Into<String>) -> Self {
        Crumb {
            label: label.into(),
            href: None,
        }
    }
}

/// A whole page. Links and GET forms work without JavaScript; htmx (`hx-boost`) only turns them
/// into swaps of the body. `hash-routes.js` loads first, before anything renders, since it may
/// send the browser elsewhere.
///
/// Every page loads the chart scripts (cached for good after the first page): htmx swaps only
/// the body on boosted navigation, so a page with charts reached from one without would
/// otherwise have none.
pub(crate) fn page(title: &str, crumbs: &[Crumb], body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="htmx-config" content=(HTMX_CONFIG);
                title { (title) " · twinloop" }
                // No icon: without this line every page load asks for /favicon.ico and gets a 404.
                link rel="icon" href="data:,";
                script src=(assets::href("hash-routes.js")) {}
                link rel="stylesheet" href=(assets::href("ui.css"));
                script src=(assets::href("htmx.min.js")) defer {}
                link rel="stylesheet" href=(assets::href("uPlot.min.css"));
                script src=(assets::href("uPlot.iife.min.js")) defer {}
                // ui-lib.js first: the two after it use its helpers (deferred scripts run in order).
                script src=(assets::href("ui-lib.js")) defer {}
                script src=(assets::href("chart.js")) defer {}
                script src=(assets::href("compare.js")) defer {}
                script src=(assets::href("vtable.js")) defer {}
            }
            body hx-boost="true" {
                header.top {
                    a.brand href="/" { "twinloop" }
                    nav aria-label="Sections" {
                        a href="/experiments" { "Experiments" }
                        a href="/models" { "Models" }
                    }
                }
                @if !crumbs.is_empty() {
                    nav.crumbs aria-label="Breadcrumb" {
                        ol {
                            @for c in crumbs {
                                li {
                                    @if let Some(href) = &c.href {
                                        a href=(href) { (c.label) }
                                    } @else {
                                        span aria-current="page" { (c.label) }
                                    }
                                }
                            }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// What a browser gets for an unknown path or id.
pub fn not_found_page(message: &str) -> Markup {
    page(
        "Not found",
        &[],
        html! {
            h1 { "Not found" }
            p { (message) }
            p { a href="/experiments" { "All experiments" } }
        },
    )
}

/// What a browser gets when the server failed; the details are in the server's log.
pub fn error_page(message: &str) -> Markup {
    page(
        "Error",
        &[],
        html! {
            h1 { "Something went wrong" }
            p.error role="alert" { (message) }
            p { a href="/experiments" { "All experiments" } }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_load_only_hashed_local_assets_and_no_inline_script() {
        let html = not_found_page("no experiment <b>7</b>").into_string();
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("no experiment &lt;b&gt;7&lt;/b&gt;"));
        let mut scripts = 0;
        for part in html.split("<script").skip(1) {
            scripts += 1;
            let src = part
                .split("src=\"")
                .nth(1)
                .and_then(|s| s.split('"').next())
                .expect("every script has a src");
            let file = src.strip_prefix(assets::PREFIX).expect("local");
            assert!(assets::lookup(file).is_some(), "{src}");
            assert!(part.contains("></script>"), "inline script: {part}");
        }
        assert_eq!(scripts, 7);
        assert!(!html.contains("style="), "inline style attribute");
        assert!(!html.contains("http://") && !html.contains("https://"));
    }
}
