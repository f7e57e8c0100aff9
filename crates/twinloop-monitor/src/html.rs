//! HTML.
use crate::report::Report;
pub fn render(_r: &Report) -> String { String::new() }
