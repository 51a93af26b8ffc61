use std::sync::Arc;

use crate::postgres::Server;

/// A database of the test's own: a SQLite file in a temp folder, or a fresh
/// PostgreSQL database dropped when this is.
pub struct TestDb(Kind);

enum Kind {
    Sqlite(tempfile::TempDir),
    Postgres { server: Arc<Server>, name: String },
}

impl TestDb {
    /// A SQLite file, created on first connect.
    pub fn sqlite() -> Self {
        Self(Kind::Sqlite(tempfile::tempdir().expect("tempdir")))
    }

    /// A new database on the server `STRATUS_TEST_POSTGRES_URL` names, or
    /// on a private server this process starts; panics when neither works.
    pub fn postgres() -> Self {
        let server = Server::shared();
        let name = format!("stratus_test_{}", uuid::Uuid::new_v4().simple());
        server.psql(&format!("CREATE DATABASE {name}"));
        Self(Kind::Postgres { server, name })
    }

    /// The database's URL, for a store's `connect` or a raw pool.
    pub fn url(&self) -> String {
        match &self.0 {
            Kind::Sqlite(dir) => format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("test.sqlite").display()
            ),
            Kind::Postgres { server, name } => server.url(name),
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Kind::Postgres { server, name } = &self.0 {
            let dropped = server.try_psql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
            // Panicking again while a failed test unwinds would abort the run.
            if let Err(stderr) = dropped
                && !std::thread::panicking()
            {
                panic!("dropping test database {name}: {stderr}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::TestDb;
    use crate::command::sh;

    #[test]
    fn each_postgres_database_is_its_own_and_gone_after_drop() {
        let (a, b) = (TestDb::postgres(), TestDb::postgres());
        assert_ne!(a.url(), b.url());
        sh("psql", &[a.url().as_str(), "-qc", "CREATE TABLE t (x int)"]);
        sh("psql", &[b.url().as_str(), "-qc", "CREATE TABLE t (x int)"]);
        let url = a.url();
        drop(a);
        let (reachable, _) = crate::command::try_sh("psql", &[url.as_str(), "-qc", "SELECT 1"]);
        assert!(!reachable, "{url} outlived its TestDb");
    }
}
