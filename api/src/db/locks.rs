//! Project locks that hold across api processes: two replicas on one
//! PostgreSQL database must not both fit the last slot of a quota, nor both
//! store a reservation for one ClientToken.
//!
//! On PostgreSQL a lock is `pg_advisory_xact_lock` inside a transaction
//! that does nothing else, on a connection of its own: the work it guards
//! runs on the ordinary pool and commits before the lock is let go, so the
//! next holder, in any process, reads it. Ending the transaction (or
//! dropping it, or losing the connection) lets the lock go, so an error
//! path cannot leave a project locked. On SQLite every write goes through
//! the one process that owns the file, whose in-process lock suffices.

use sha2::{Digest, Sha256};
use sqlx::{Any, Transaction};

use super::{Db, DbError, err};

/// Advisory lock keys are one 64-bit space per database: a project's key
/// is derived with this prefix so other users of advisory locks can keep
/// clear of it.
const NAMESPACE: &[u8] = b"stratus-api project lock\0";

/// A project's lock across processes, held until [`ProjectLock::release`]
/// or drop.
pub struct ProjectLock(Option<Transaction<'static, Any>>);

impl std::fmt::Debug for ProjectLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ProjectLock")
            .field(&if self.0.is_some() {
                "advisory"
            } else {
                "local only"
            })
            .finish()
    }
}

impl ProjectLock {
    /// Lets the lock go now rather than when the connection is next used.
    pub async fn release(self) -> Result<(), DbError> {
        match self.0 {
            Some(tx) => tx.rollback().await.map_err(err("release a project lock")),
            None => Ok(()),
        }
    }
}

impl Db {
    /// Waits for `project`'s lock across every process on this database
    /// (PostgreSQL), or takes none (SQLite).
    pub async fn lock_project(&self, project: &str) -> Result<ProjectLock, DbError> {
        let Some(locks) = &self.locks else {
            return Ok(ProjectLock(None));
        };
        let mut tx = locks.begin().await.map_err(err("begin a project lock"))?;
        // Cast to text: the Any driver reads no `void` column.
        sqlx::query("SELECT CAST(pg_advisory_xact_lock($1) AS TEXT) AS held")
            .bind(lock_key(project))
            .execute(&mut *tx)
            .await
            .map_err(err("take a project lock"))?;
        Ok(ProjectLock(Some(tx)))
    }
}

/// `project`'s advisory lock key.
fn lock_key(project: &str) -> i64 {
    let digest = Sha256::new()
        .chain_update(NAMESPACE)
        .chain_update(project.as_bytes())
        .finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}
