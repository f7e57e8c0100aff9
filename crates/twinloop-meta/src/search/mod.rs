//! MLflow's search language: filter strings, order-by clauses and page tokens, parsed into a small
//! AST that the SQL layer turns into WHERE / ORDER BY clauses. Parsing is pure and tested here;
//! which keys and comparators are allowed depends on what is searched, so that is checked by the
//! SQL builders that know the entity.

mod filter;
mod lexer;
mod order;
mod page;
mod summary;

pub use filter::{Clause, Comparator, Entity, Literal, parse_filter};
pub use order::{OrderKey, parse_order_by};
pub use page::{decode_page_token, encode_page_token};
pub use summary::{Summary, SummaryRef};
