use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use twinloop_core::Error;

/// A backend store location, written the way `mlflow server --backend-store-uri` takes it
/// (SQLAlchemy style): `sqlite:///relative.db`, `sqlite:////absolute/x.db`,
/// `postgresql://user:pw@host:port/db` (a `+driver` suffix on the scheme is ignored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUri {
    Sqlite(PathBuf),
    Postgres(String),
}

impl FromStr for StoreUri {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let hint = "expected sqlite:///relative/path.db, sqlite:////absolute/path.db or postgresql://user@host:port/db";
        let (scheme, rest) = s
            .split_once("://")
            .ok_or_else(|| Error::invalid(format!("invalid backend store URI {s:?}: {hint}")))?;
        let scheme = scheme.split('+').next().unwrap_or(scheme);
        match scheme {
            "sqlite" => {
                let path = rest.strip_prefix('/').unwrap_or(rest);
                if path.is_empty() || path == ":memory:" {
                    return Err(Error::invalid(format!(
                        "invalid backend store URI {s:?}: in-memory SQLite is not supported (its data would vanish at exit); {hint}"
                    )));
                }
                Ok(StoreUri::Sqlite(PathBuf::from(path)))
            }
            "postgresql" | "postgres" => Ok(StoreUri::Postgres(format!("postgres://{rest}"))),
            other => Err(Error::invalid(format!(
                "unsupported backend store scheme {other:?}: {hint}"
            ))),
        }
    }
}

impl StoreUri {
    /// The URL sqlx's `Any` driver opens.
    pub fn sqlx_url(&self) -> String {
        match self {
            StoreUri::Sqlite(path) => {
                let absolute = std::path::absolute(path).unwrap_or_else(|_| path.clone());
                let encoded: String = absolute
                    .to_string_lossy()
                    .chars()
                    .map(|c| match c {
                        '%' | '?' | '#' | ' ' => format!("%{:02X}", c as u32),
                        c => c.to_string(),
                    })
                    .collect();
                format!("sqlite://{encoded}?mode=rwc")
            }
            StoreUri::Postgres(url) => url.clone(),
        }
    }
}

impl fmt::Display for StoreUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreUri::Sqlite(path) => write!(f, "sqlite:///{}", path.display()),
            StoreUri::Postgres(url) => {
                // Never print a password.
                match url::Url::parse(url) {
                    Ok(mut u) => {
                        if u.password().is_some() {
                            let _ = u.set_password(Some("***"));
                        }
                        write!(f, "{u}")
                    }
                    Err(_) => write!(f, "postgres://…"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sqlalchemy_uris() {
        assert_eq!(
            "sqlite:///rel.db".parse::<StoreUri>().unwrap(),
            StoreUri::Sqlite("rel.db".into())
        );
        assert_eq!(
            "sqlite:////abs/x.db".parse::<StoreUri>().unwrap(),
            StoreUri::Sqlite("/abs/x.db".into())
        );
        assert_eq!(
            "postgresql+psycopg2://u@h:5432/db"
                .parse::<StoreUri>()
                .unwrap(),
            StoreUri::Postgres("postgres://u@h:5432/db".into())
        );
        assert!("mysql://x/y".parse::<StoreUri>().is_err());
        assert!("sqlite://".parse::<StoreUri>().is_err());
        assert!("just-a-path.db".parse::<StoreUri>().is_err());
    }

    #[test]
    fn hides_passwords() {
        let uri: StoreUri = "postgresql://u:secret@h:5432/db".parse().unwrap();
        assert!(!uri.to_string().contains("secret"));
    }

    #[test]
    fn sqlite_url_is_absolute_and_escaped() {
        let uri = StoreUri::Sqlite("/tmp/a b/x.db".into());
        assert_eq!(uri.sqlx_url(), "sqlite:///tmp/a%20b/x.db?mode=rwc");
    }
}
