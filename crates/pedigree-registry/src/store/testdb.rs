//! Throwaway databases for tests, on either engine, so one test body runs against SQLite and
//! PostgreSQL alike. Public (not `cfg(test)`) because the CLI's end-to-end tests and the crash
//! tests, in other crates and test binaries, use it too.
//!
//! PostgreSQL: each [`TestDb`] is a fresh database `pdg_t_<random>` created on the server named
//! by `PEDIGREE_TEST_PG_URL` (default [`DEFAULT_PG_URL`], the role `scripts/setup-postgres.sh`
//! creates) and dropped when the value is dropped. A server that cannot be reached is a test
//! failure naming `bash scripts/setup.sh`, never a skip: a suite that silently ran on one
//! engine would claim a coverage it does not have.

use std::path::PathBuf;
use std::time::Duration;

use sqlx::Connection;

use super::sql::redact_url;

pub const DEFAULT_PG_URL: &str = "postgres://pedigree:pedigree@127.0.0.1:5432/postgres";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

impl Engine {
    /// Every engine the registry supports; tests loop over this.
    pub const ALL: [Engine; 2] = [Engine::Sqlite, Engine::Postgres];

    pub fn name(self) -> &'static str {
        match self {
            Engine::Sqlite => "sqlite",
            Engine::Postgres => "postgres",
        }
    }
}

/// The PostgreSQL server the tests use: `PEDIGREE_TEST_PG_URL`, or [`DEFAULT_PG_URL`].
pub fn pg_admin_url() -> String {
    std::env::var("PEDIGREE_TEST_PG_URL")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| DEFAULT_PG_URL.to_string())
}

/// A database that exists for as long as this value does.
pub struct TestDb {
    pub engine: Engine,
    url: String,
    /// SQLite: the directory holding the file.
    dir: Option<tempfile::TempDir>,
    /// PostgreSQL: (server URL to reconnect to for the drop, database name).
    pg: Option<(String, String)>,
}

impl TestDb {
    /// A fresh, empty database (the registry migrates it on first connect). Panics, naming the
    /// server and `bash scripts/setup.sh`, when PostgreSQL cannot be reached or refuses.
    pub fn new(engine: Engine) -> TestDb {
        match engine {
            Engine::Sqlite => {
                let dir = tempfile::tempdir().expect("creating a temporary directory");
                let url = format!("sqlite://{}", dir.path().join("registry.db").display());
                TestDb {
                    engine,
                    url,
                    dir: Some(dir),
                    pg: None,
                }
            }
            Engine::Postgres => {
                let admin = pg_admin_url();
                let name = format!("pdg_t_{}", uuid::Uuid::new_v4().simple());
                let stmt = format!("CREATE DATABASE \"{name}\"");
                if let Err(e) = run_admin(&admin, &stmt) {
                    panic!(
                        "PostgreSQL for the registry tests is not usable at {} ({e}). \
                         Run `bash scripts/setup.sh` (it installs and starts PostgreSQL and \
                         creates the `pedigree` role), or set PEDIGREE_TEST_PG_URL to a server \
                         where that role may create databases.",
                        redact_url(&admin)
                    );
                }
                let url = with_database(&admin, &name);
                TestDb {
                    engine,
                    url,
                    dir: None,
                    pg: Some((admin, name)),
                }
            }
        }
    }

    /// The URL to hand to `SqlStore::connect` or `pedigree serve --database-url`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// SQLite only: the database file.
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.path().join("registry.db"))
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin, name)) = &self.pg {
            // FORCE: a server process a test killed may still hold a connection for a moment.
            let stmt = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
            if let Err(e) = run_admin(admin, &stmt) {
                // Not a panic inside drop; setup-postgres.sh sweeps leftover pdg_t_* databases.
                eprintln!("testdb: could not drop PostgreSQL database {name}: {e}");
            }
        }
    }
}

/// `url` with its database path replaced by `db` (the query string kept).
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_end = base[scheme_end..]
        .find('/')
        .map(|i| scheme_end + i)
        .unwrap_or(base.len());
    let mut out = format!("{}/{db}", &base[..host_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// Run one statement on the admin connection, on a thread of its own so this works from inside
/// an async test's runtime as well as from plain tests.
fn run_admin(admin: &str, stmt: &str) -> Result<(), String> {
    let admin = admin.to_string();
    let stmt = stmt.to_string();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async {
            let connect = sqlx::PgConnection::connect(&admin);
            let mut conn = tokio::time::timeout(Duration::from_secs(10), connect)
                .await
                .map_err(|_| "connecting timed out after 10 s".to_string())?
                .map_err(|e| e.to_string())?;
            sqlx::raw_sql(&stmt)
                .execute(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
            let _ = conn.close().await;
            Ok(())
        })
    })
    .join()
    .map_err(|_| "the admin thread panicked".to_string())?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_name_replaces_the_path() {
        assert_eq!(
            with_database("postgres://u:p@h:5432/postgres", "x"),
            "postgres://u:p@h:5432/x"
        );
        assert_eq!(
            with_database("postgres://u:p@h:5432/postgres?sslmode=disable", "x"),
            "postgres://u:p@h:5432/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("sqlite:///tmp/x.db"), "sqlite:///tmp/x.db");
    }
}
