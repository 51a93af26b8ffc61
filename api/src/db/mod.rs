//! The cloud's tables, through sqlx's `Any` driver: SQLite (default) or
//! PostgreSQL with the same schema and queries. Each file holds one kind of
//! resource.

/// A struct read from a row: each listed field from the column of its name,
/// the others as given.
macro_rules! from_row {
    ($r:expr, $ty:ident { $($field:ident),* $(,)? } $(, $name:ident: $value:expr)* $(,)?) => {
        $ty {
            $($field: $r.try_get(stringify!($field))?,)*
            $($name: $value,)*
        }
    };
}

/// `$query` with the listed fields of `$v` bound in order.
macro_rules! bind_fields {
    ($query:expr, $v:expr, [$($field:ident),* $(,)?]) => {
        $query $(.bind($v.$field.to_owned()))*
    };
}

pub mod addresses;
pub mod credentials;
pub mod groups;
pub mod images;
pub mod instances;
pub mod keypairs;
pub mod locks;
pub mod private_ips;
pub mod replays;
pub mod tags;
pub mod vpcs;

use sqlx::AnyPool;
use sqlx::any::{AnyPoolOptions, AnyRow, install_default_drivers};

/// A database operation failed.
#[derive(Debug, thiserror::Error)]
#[error("api database: {action}")]
pub struct DbError {
    action: &'static str,
    #[source]
    source: sqlx::Error,
}

impl DbError {
    /// Whether a uniqueness constraint refused the write.
    pub fn is_unique_violation(&self) -> bool {
        match &self.source {
            sqlx::Error::Database(e) => {
                e.is_unique_violation() || e.message().contains("UNIQUE constraint failed")
            }
            _ => false,
        }
    }
}

/// Wraps a sqlx error with what was being done.
pub(crate) fn err(action: &'static str) -> impl FnOnce(sqlx::Error) -> DbError {
    move |source| DbError { action, source }
}

/// The api service's database.
#[derive(Debug, Clone)]
pub struct Db {
    /// Writes (and transactions): one connection on SQLite, so writers never
    /// meet "database is locked".
    pool: AnyPool,
    /// Reads: several connections on SQLite, which WAL lets read while the
    /// writer writes; the same pool as writes on PostgreSQL.
    reader: AnyPool,
    /// Connections that only hold project locks, on PostgreSQL (see
    /// `locks`): apart from `pool` so that holders of locks always find a
    /// connection for their work.
    locks: Option<AnyPool>,
}

impl Db {
    /// Whether other api processes may share this database (PostgreSQL;
    /// a SQLite file serves one): what must hold across replicas goes
    /// through it only then.
    pub fn is_shared(&self) -> bool {
        self.locks.is_some()
    }

    /// Opens (creating if needed) the database at `url` and its tables.
    pub async fn connect(url: &str) -> Result<Self, DbError> {
        install_default_drivers();
        let sqlite = url.starts_with("sqlite:");
        // One SQLite connection serializes writers inside the process, so
        // no request ever meets "database is locked".
        let pool = AnyPoolOptions::new()
            .max_connections(if sqlite { 1 } else { 16 })
            // Requests queue for SQLite's one connection by design; waiting
            // is not a fault worth a warning per request.
            .acquire_slow_threshold(std::time::Duration::from_secs(30))
            .connect(url)
            .await
            .map_err(err("connect"))?;
        if sqlite {
            // WAL with synchronous=NORMAL: commits do not wait for fsync (a
            // power cut may lose the last ones, never corrupt the file), which
            // is what lets one connection keep up with every host's reports.
            for pragma in [
                "PRAGMA journal_mode = WAL",
                "PRAGMA synchronous = NORMAL",
                "PRAGMA foreign_keys = ON",
            ] {
                sqlx::query(pragma)
                    .execute(&pool)
                    .await
                    .map_err(err("set up SQLite"))?;
            }
        }
        for statement in statements(include_str!("../../migrations/0001_cloud.sql")) {
            sqlx::query(sqlx::AssertSqlSafe(statement.to_owned()))
                .execute(&pool)
                .await
                .map_err(err("create tables"))?;
        }
        migrate(&pool).await?;
        let reader = if sqlite {
            AnyPoolOptions::new()
                .max_connections(4)
                .acquire_slow_threshold(std::time::Duration::from_secs(30))
                .connect(url)
                .await
                .map_err(err("connect readers"))?
        } else {
            pool.clone()
        };
        let locks = if sqlite {
            None
        } else {
            Some(
                AnyPoolOptions::new()
                    .max_connections(8)
                    .acquire_slow_threshold(std::time::Duration::from_secs(30))
                    .connect_lazy(url)
                    .map_err(err("connect for locks"))?,
            )
        };
        Ok(Self {
            pool,
            reader,
            locks,
        })
    }

    /// The writers' pool, for the resource modules.
    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The readers' pool, for queries that change nothing.
    pub(crate) fn read(&self) -> &AnyPool {
        &self.reader
    }
}

/// A query with its values bound, for the helpers below.
pub(crate) type Bound = sqlx::query::Query<'static, sqlx::Any, sqlx::any::AnyArguments>;

impl Db {
    /// Every row `query` finds (on the readers), as `row` reads it.
    pub(crate) async fn all<T>(
        &self,
        query: Bound,
        row: impl Fn(&AnyRow) -> Result<T, sqlx::Error>,
        action: &'static str,
    ) -> Result<Vec<T>, DbError> {
        let rows = query.fetch_all(self.read()).await.map_err(err(action))?;
        rows.iter()
            .map(row)
            .collect::<Result<_, _>>()
            .map_err(err(action))
    }

    /// The first row `query` finds (on the readers), as `row` reads it:
    /// for queries by a unique key or with `LIMIT 1`.
    pub(crate) async fn first<T>(
        &self,
        query: Bound,
        row: impl Fn(&AnyRow) -> Result<T, sqlx::Error>,
        action: &'static str,
    ) -> Result<Option<T>, DbError> {
        Ok(self.all(query, row, action).await?.into_iter().next())
    }

    /// Runs a write; whether it changed any row.
    pub(crate) async fn changed(
        &self,
        query: Bound,
        action: &'static str,
    ) -> Result<bool, DbError> {
        let done = query.execute(self.pool()).await.map_err(err(action))?;
        Ok(done.rows_affected() > 0)
    }
}

/// Now, as stored: RFC 3339 in UTC with milliseconds, as EC2 shows times.
pub fn now() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

/// Migrations after the first, which run once each, in order: (version, SQL).
const MIGRATIONS: &[(i64, &str)] = &[
    (2, include_str!("../../migrations/0002_egress.sql")),
    (3, include_str!("../../migrations/0003_addresses.sql")),
    (4, include_str!("../../migrations/0004_vpc.sql")),
    (5, include_str!("../../migrations/0005_rule_ids.sql")),
    (
        6,
        include_str!("../../migrations/0006_instance_attributes.sql"),
    ),
    (7, include_str!("../../migrations/0007_replays.sql")),
];

/// The statements of a migration file: split at `;`, comment-only pieces
/// dropped (no statement holds a `;` of its own).
fn statements(sql: &str) -> impl Iterator<Item = &str> {
    sql.split(';').map(str::trim).filter(|statement| {
        !statement
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with("--"))
    })
}

/// Runs each migration not yet recorded in `schema_migrations`, each in a
/// transaction with its record. Two processes starting at once on
/// PostgreSQL: the second waits on the first's record, then skips.
async fn migrate(pool: &AnyPool) -> Result<(), DbError> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at TEXT NOT NULL)",
    )
    .execute(pool)
    .await
    .map_err(err("create schema_migrations"))?;
    for (version, sql) in MIGRATIONS {
        let done: Option<i64> =
            sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = $1")
                .bind(*version)
                .fetch_optional(pool)
                .await
                .map_err(err("read schema_migrations"))?;
        if done.is_some() {
            continue;
        }
        let mut tx = pool.begin().await.map_err(err("begin migration"))?;
        let recorded =
            sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)")
                .bind(*version)
                .bind(now())
                .execute(&mut *tx)
                .await
                .map_err(err("record migration"));
        match recorded {
            Err(e) if e.is_unique_violation() => continue,
            other => other?,
        };
        for statement in statements(sql) {
            sqlx::query(sqlx::AssertSqlSafe(statement.to_owned()))
                .execute(&mut *tx)
                .await
                .map_err(err("migrate"))?;
        }
        tx.commit().await.map_err(err("commit migration"))?;
    }
    Ok(())
}

/// `count` `$n` placeholders from `$first`, comma-separated.
pub(crate) fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}
