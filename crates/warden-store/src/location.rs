use std::fmt;
use std::path::{Path, PathBuf};

use url::Url;
use warden_model::SecretString;

/// Which database engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An SQLite file in the data directory.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// Where the database is. `Display` never shows a password.
#[derive(Debug, Clone)]
pub enum DatabaseLocation {
    /// An SQLite file, created if absent.
    Sqlite(PathBuf),
    /// A `postgres://` URL, which may carry a password.
    Postgres(SecretString),
}

/// A database URL Warden cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid database URL `{shown}`: {reason}")]
pub struct LocationError {
    shown: String,
    reason: &'static str,
}

impl DatabaseLocation {
    /// The SQLite database inside a data directory.
    pub fn in_data_dir(data_dir: &Path) -> Self {
        Self::Sqlite(data_dir.join("warden.db"))
    }

    /// Parses `postgres://…` or `sqlite://PATH`.
    pub fn parse(url: &str) -> Result<Self, LocationError> {
        let parsed = Url::parse(url).map_err(|_| LocationError {
            shown: "<unparseable>".to_owned(),
            reason: "expected postgres://USER@HOST/DB or sqlite://PATH",
        })?;
        match parsed.scheme() {
            "postgres" | "postgresql" => Ok(Self::Postgres(SecretString::new(url))),
            "sqlite" => {
                let path = url
                    .trim_start_matches("sqlite://")
                    .trim_start_matches("sqlite:");
                let path = path.split('?').next().unwrap_or_default();
                if path.is_empty() {
                    return Err(LocationError {
                        shown: redact(&parsed),
                        reason: "an SQLite URL needs a file path",
                    });
                }
                Ok(Self::Sqlite(PathBuf::from(path)))
            }
            _ => Err(LocationError {
                shown: redact(&parsed),
                reason: "the scheme must be postgres:// or sqlite://",
            }),
        }
    }

    /// Which engine this is.
    pub fn backend(&self) -> Backend {
        match self {
            Self::Sqlite(_) => Backend::Sqlite,
            Self::Postgres(_) => Backend::Postgres,
        }
    }

    /// `sqlite` or `postgres`.
    pub fn backend_name(&self) -> &'static str {
        match self.backend() {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    /// The URL handed to the driver, secrets included. Never log it.
    pub(crate) fn connect_url(&self) -> String {
        match self {
            Self::Sqlite(path) => format!("sqlite://{}?mode=rwc", path.display()),
            Self::Postgres(url) => url.expose().to_owned(),
        }
    }
}

impl fmt::Display for DatabaseLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
            Self::Postgres(url) => match Url::parse(url.expose()) {
                Ok(u) => f.write_str(&redact(&u)),
                Err(_) => f.write_str("postgres://<unparseable>"),
            },
        }
    }
}

/// The URL with its password and query (which may hold `password=`) removed.
fn redact(url: &Url) -> String {
    let mut u = url.clone();
    if u.password().is_some() {
        // Only fails for URLs that cannot have a password, which this one has.
        let _ = u.set_password(None);
    }
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_hides_the_password() {
        let loc =
            DatabaseLocation::parse("postgres://warden:s3cret@db.example:5432/warden?password=x")
                .unwrap();
        assert_eq!(loc.to_string(), "postgres://warden@db.example:5432/warden");
        assert!(!format!("{loc:?}").contains("s3cret"));
    }

    #[test]
    fn refuses_other_schemes() {
        let err = DatabaseLocation::parse("mysql://root:pw@localhost/x").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid database URL `mysql://root@localhost/x`: the scheme must be postgres:// or sqlite://"
        );
        let err = DatabaseLocation::parse("not a url").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid database URL `<unparseable>`: expected postgres://USER@HOST/DB or sqlite://PATH"
        );
    }

    #[test]
    fn sqlite_url_is_a_path() {
        let loc = DatabaseLocation::parse("sqlite:///var/lib/warden/w.db").unwrap();
        assert_eq!(loc.backend(), Backend::Sqlite);
        assert_eq!(loc.to_string(), "sqlite:///var/lib/warden/w.db");
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics_and_never_shows_a_password(user in "[a-z]{1,8}", pw in "[a-zA-Z0-9]{6,12}", rest in "\\PC{0,40}") {
            let url = format!("postgres://{user}:{pw}@{rest}");
            let secret = format!(":{pw}@");
            let shown = match DatabaseLocation::parse(&url) {
                Ok(loc) => loc.to_string(),
                Err(e) => e.to_string(),
            };
            proptest::prop_assert!(!shown.contains(&secret));
        }
    }
}
