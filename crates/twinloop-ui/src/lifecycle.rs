//! The active / deleted / all choice of a listing, as it reads in a URL (`view=deleted`).

use twinloop_core::tracking::ViewType;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lifecycle {
    #[default]
    Active,
    Deleted,
    All,
}

impl Lifecycle {
    /// Anything but `deleted` and `all` is the default, so a mangled link still shows a page.
    pub fn parse(s: &str) -> Self {
        match s {
            "deleted" => Lifecycle::Deleted,
            "all" => Lifecycle::All,
            _ => Lifecycle::Active,
        }
    }

    /// The URL value; empty for the default, which links leave out.
    pub(crate) fn param(self) -> &'static str {
        match self {
            Lifecycle::Active => "",
            Lifecycle::Deleted => "deleted",
            Lifecycle::All => "all",
        }
    }

    pub fn view_type(self) -> ViewType {
        match self {
            Lifecycle::Active => ViewType::ActiveOnly,
            Lifecycle::Deleted => ViewType::DeletedOnly,
            Lifecycle::All => ViewType::All,
        }
    }
}

/// The `<select name="view">` of a filter form.
pub(crate) fn select(current: Lifecycle) -> maud::Markup {
    maud::html! {
        label {
            "Show"
            select name="view" {
                option value="" selected[current == Lifecycle::Active] { "active" }
                option value="deleted" selected[current == Lifecycle::Deleted] { "deleted" }
                option value="all" selected[current == Lifecycle::All] { "all" }
            }
        }
    }
}
