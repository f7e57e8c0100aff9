//! A small SQL text builder that adds a placeholder per bound value, so dynamic queries
//! (search filters, multi-row inserts) stay parameterised.

use futures::StreamExt;
use futures::stream::BoxStream;
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, Row};
use twinloop_core::Result;

use super::native_sqlite::{OwnedRow, SqliteReader};
use super::{Backend, db_err};
use crate::search::{decode_page_token, encode_page_token};
use crate::validation::validate_max_results;
use twinloop_core::tracking::Page;

#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Text(String),
    Float(f64),
    Int(i64),
    OptText(Option<String>),
    OptInt(Option<i64>),
}

impl From<&str> for Arg {
    fn from(s: &str) -> Arg {
        Arg::Text(s.to_string())
    }
}
impl From<String> for Arg {
    fn from(s: String) -> Arg {
        Arg::Text(s)
    }
}
impl From<&String> for Arg {
    fn from(s: &String) -> Arg {
        Arg::Text(s.clone())
    }
}
impl From<f64> for Arg {
    fn from(v: f64) -> Arg {
        Arg::Float(v)
    }
}
impl From<i64> for Arg {
    fn from(v: i64) -> Arg {
        Arg::Int(v)
    }
}
impl From<Option<String>> for Arg {
    fn from(v: Option<String>) -> Arg {
        Arg::OptText(v)
    }
}
impl From<Option<i64>> for Arg {
    fn from(v: Option<i64>) -> Arg {
        Arg::OptInt(v)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Sql {
    backend: Backend,
    text: String,
    args: Vec<Arg>,
}

/// Which backend a connection talks to, for code that holds a transaction but not the store.
pub(crate) fn backend_of(conn: &sqlx::AnyConnection) -> Backend {
    if conn.backend_name().eq_ignore_ascii_case("postgresql") {
        Backend::Postgres
    } else {
        Backend::Sqlite
    }
}

impl Sql {
    pub fn new(backend: Backend, text: &str) -> Sql {
        Sql {
            backend,
            text: text.to_string(),
            args: Vec::new(),
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn push(&mut self, text: &str) -> &mut Sql {
        self.text.push_str(text);
        self
    }

    /// Appends a placeholder bound to `arg`: `$n` for PostgreSQL, a plain `?` for SQLite,
    /// where named or numbered parameters cost a linear search per bind (quadratic in a
    /// 6,000-parameter batch insert).
    pub fn arg(&mut self, arg: impl Into<Arg>) -> &mut Sql {
        self.args.push(arg.into());
        match self.backend {
            Backend::Postgres => {
                self.text.push('$');
                self.text.push_str(&self.args.len().to_string());
            }
            Backend::Sqlite => self.text.push('?'),
        }
        self
    }

    /// Appends `(p1, p2, …)` binding each value.
    pub fn tuple(&mut self, values: impl IntoIterator<Item = Arg>) -> &mut Sql {
        self.push("(");
        for (i, value) in values.into_iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.arg(value);
        }
        self.push(")")
    }

    /// Appends `(p1, p2, …)` for a non-empty list.
    pub fn arg_list<T: Into<Arg> + Clone>(&mut self, items: &[T]) -> &mut Sql {
        self.push("(");
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.arg(item.clone());
        }
        self.push(")")
    }

    /// The same statement under SQLite's `EXPLAIN QUERY PLAN`, for tests of index use.
    #[cfg(test)]
    pub fn explained(&self) -> Sql {
        let mut plan = self.clone();
        plan.text.insert_str(0, "EXPLAIN QUERY PLAN ");
        plan
    }

    pub fn query(&self) -> Query<'_, Any, AnyArguments<'_>> {
        let mut q = sqlx::query(&self.text);
        for arg in &self.args {
            q = match arg {
                Arg::Text(s) => q.bind(s.clone()),
                Arg::Float(v) => q.bind(*v),
                Arg::Int(v) => q.bind(*v),
                Arg::OptText(v) => q.bind(v.clone()),
                Arg::OptInt(v) => q.bind(*v),
            };
        }
        q
    }
}

impl Sql {
    /// Runs the statement and returns the number of rows it changed.
    pub async fn execute<'e, 'c: 'e, E>(&'e self, executor: E) -> Result<u64>
    where
        E: 'e + sqlx::Executor<'c, Database = Any>,
    {
        Ok(self
            .query()
            .execute(executor)
            .await
            .map_err(db_err)?
            .rows_affected())
    }

    pub async fn fetch_all<'e, 'c: 'e, E>(&'e self, executor: E) -> Result<Vec<AnyRow>>
    where
        E: 'e + sqlx::Executor<'c, Database = Any>,
    {
        self.query().fetch_all(executor).await.map_err(db_err)
    }

    pub async fn fetch_optional<'e, 'c: 'e, E>(&'e self, executor: E) -> Result<Option<AnyRow>>
    where
        E: 'e + sqlx::Executor<'c, Database = Any>,
    {
        self.query().fetch_optional(executor).await.map_err(db_err)
    }

    pub async fn fetch_one<'e, 'c: 'e, E>(&'e self, executor: E) -> Result<AnyRow>
    where
        E: 'e + sqlx::Executor<'c, Database = Any>,
    {
        self.query().fetch_one(executor).await.map_err(db_err)
    }
}

/// One page of a search: `limit` rows after `offset`. A row more than the limit is read so that
/// the last page is known without counting.
pub(crate) struct Window {
    limit: u64,
    offset: u64,
}

impl Window {
    pub fn parse(max_results: i64, page_token: Option<&str>) -> Result<Window> {
        Ok(Window {
            limit: validate_max_results(max_results)?,
            offset: decode_page_token(page_token)?,
        })
    }

    /// The rows of the whole order a query reads to answer this window: those before it, its
    /// own and the one past it.
    pub fn rows_wanted(&self) -> u64 {
        self.offset.saturating_add(self.limit).saturating_add(1)
    }

    pub fn apply(&self, sql: &mut Sql) {
        self.apply_from(sql, self.offset);
    }

    /// The window's rows from `offset` of a query already narrowed to start nearer them; the
    /// next page token still counts from the start of the whole order.
    pub fn apply_from(&self, sql: &mut Sql, offset: u64) {
        sql.push(" LIMIT ")
            .arg((self.limit + 1) as i64)
            .push(" OFFSET ")
            .arg(offset as i64);
    }

    pub fn page<T>(
        &self,
        rows: &Rows,
        decode: impl Fn(&dyn RowExt) -> Result<T>,
    ) -> Result<Page<T>> {
        Ok(self.page_of(rows.decode(decode)?))
    }

    /// The page of the window's rows, already decoded (with the one past it, if any).
    pub fn page_of<T>(&self, mut items: Vec<T>) -> Page<T> {
        let next_page_token = if items.len() as u64 > self.limit {
            items.truncate(self.limit as usize);
            Some(encode_page_token(self.offset + self.limit))
        } else {
            None
        };
        Page {
            items,
            next_page_token,
        }
    }
}

/// Typed column access that turns decoding failures into store errors instead of panics.
pub(crate) trait RowExt {
    fn text(&self, idx: usize) -> Result<String>;
    fn opt_text(&self, idx: usize) -> Result<Option<String>>;
    fn int(&self, idx: usize) -> Result<i64>;
    fn opt_int(&self, idx: usize) -> Result<Option<i64>>;
    fn float(&self, idx: usize) -> Result<f64>;
    fn opt_float(&self, idx: usize) -> Result<Option<f64>>;
}

/// The same typed access for every row type a query can return.
macro_rules! impl_row_ext {
    ($($row:ty),*) => {$(
        impl RowExt for $row {
            fn text(&self, idx: usize) -> Result<String> {
                self.try_get(idx).map_err(db_err)
            }
            fn opt_text(&self, idx: usize) -> Result<Option<String>> {
                self.try_get(idx).map_err(db_err)
            }
            fn int(&self, idx: usize) -> Result<i64> {
                self.try_get(idx).map_err(db_err)
            }
            fn opt_int(&self, idx: usize) -> Result<Option<i64>> {
                self.try_get(idx).map_err(db_err)
            }
            fn float(&self, idx: usize) -> Result<f64> {
                self.try_get(idx).map_err(db_err)
            }
            fn opt_float(&self, idx: usize) -> Result<Option<f64>> {
                self.try_get(idx).map_err(db_err)
            }
        }
    )*};
}

impl_row_ext!(AnyRow);

/// The pool large reads go through. On SQLite they bypass sqlx (see `native_sqlite.rs`): its
/// per-row hand-offs between threads more than doubled the cost of a 10,000-row read.
#[derive(Clone)]
pub(crate) enum Reader {
    Any(sqlx::AnyPool),
    Sqlite(SqliteReader),
}

/// Rows from a [`Reader`], decoded through [`RowExt`] whatever their driver.
pub(crate) enum Rows {
    Any(Vec<AnyRow>),
    Sqlite(Vec<OwnedRow>),
}

impl Rows {
    pub fn for_each(&self, mut f: impl FnMut(&dyn RowExt) -> Result<()>) -> Result<()> {
        match self {
            Rows::Any(rows) => rows.iter().try_for_each(|r| f(r)),
            Rows::Sqlite(rows) => rows.iter().try_for_each(|r| f(r)),
        }
    }

    pub fn decode<T>(&self, decode: impl Fn(&dyn RowExt) -> Result<T>) -> Result<Vec<T>> {
        match self {
            Rows::Any(rows) => rows.iter().map(|r| decode(r)).collect(),
            Rows::Sqlite(rows) => rows.iter().map(|r| decode(r)).collect(),
        }
    }
}

impl Sql {
    /// Runs a read-only query on `reader`.
    pub async fn read(&self, reader: &Reader) -> Result<Rows> {
        match reader {
            Reader::Any(pool) => Ok(Rows::Any(self.fetch_all(pool).await?)),
            Reader::Sqlite(native) => Ok(Rows::Sqlite(native.read(&self.text, &self.args).await?)),
        }
    }

    /// Runs a read-only query on `reader` and decodes its rows; on SQLite they are decoded on
    /// the reading thread, without an intermediate row.
    pub async fn read_as<T: Send + 'static>(
        &self,
        reader: &Reader,
        decode: impl Fn(&dyn RowExt) -> Result<T> + Send + 'static,
    ) -> Result<Vec<T>> {
        match reader {
            Reader::Any(pool) => self
                .fetch_all(pool)
                .await?
                .iter()
                .map(|row| decode(row))
                .collect(),
            Reader::Sqlite(native) => native.read_as(&self.text, &self.args, decode).await,
        }
    }

    /// Runs a read-only query on `reader` and decodes each row as it arrives, for reads too
    /// large to hold at once: a bounded number of rows is read ahead of the consumer, and
    /// dropping the stream stops the query.
    pub fn stream<'a, T: Send + 'static>(
        &'a self,
        reader: &'a Reader,
        decode: impl Fn(&dyn RowExt) -> Result<T> + Send + 'static,
    ) -> BoxStream<'a, Result<T>> {
        match reader {
            Reader::Any(pool) => self
                .query()
                .fetch(pool)
                .map(move |row| decode(&row.map_err(db_err)?))
                .boxed(),
            Reader::Sqlite(native) => futures::stream::unfold(
                native.stream(&self.text, &self.args, decode),
                |mut chunks| async move { chunks.recv().await.map(|chunk| (chunk, chunks)) },
            )
            .flat_map(|chunk| {
                let items: Vec<Result<T>> = match chunk {
                    Ok(rows) => rows.into_iter().map(Ok).collect(),
                    Err(e) => vec![Err(e)],
                };
                futures::stream::iter(items)
            })
            .boxed(),
        }
    }
}

/// Splits `items` so that no statement binds more than `max_args` parameters.
pub(crate) fn chunks_for<T>(
    items: &[T],
    args_per_item: usize,
    max_args: usize,
) -> std::slice::Chunks<'_, T> {
    items.chunks((max_args / args_per_item.max(1)).max(1))
}

/// Stays below SQLite's default limit of 32,766 bound parameters (PostgreSQL allows 65,535).
pub(crate) const MAX_ARGS: usize = 30_000;

/// Metric values as stored: NaN becomes 0 with `is_nan = 1`, so it can sit in a primary key.
pub(crate) fn encode_metric_value(value: f64) -> (f64, i64) {
    if value.is_nan() { (0.0, 1) } else { (value, 0) }
}

pub(crate) fn decode_metric_value(value: f64, is_nan: i64) -> f64 {
    if is_nan != 0 { f64::NAN } else { value }
}
