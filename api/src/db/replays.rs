//! Signatures accepted by any api process on this database: the replay
//! guard's record shared by replicas (see `auth::replay`).

use super::{Db, DbError, err};

impl Db {
    /// Records `signature` (a hex digest) as first seen at `now_ms` and
    /// remembered until `expires_ms` (Unix milliseconds), unless a record
    /// still unexpired has it; answers when it was first seen, by any process.
    /// One statement, so two replicas sighting it at once agree on the first.
    pub async fn sight_signature(
        &self,
        signature: &str,
        now_ms: i64,
        expires_ms: i64,
    ) -> Result<i64, DbError> {
        // The update only happens on a conflict: it keeps the first sighting
        // unless that record had expired (and was not swept yet), and its
        // RETURNING is how the existing time comes back in the same statement.
        sqlx::query_scalar(
            "INSERT INTO replay_signatures (signature, first_seen_ms, expires_ms) \
             VALUES ($1, $2, $3) \
             ON CONFLICT (signature) DO UPDATE SET \
             first_seen_ms = CASE WHEN replay_signatures.expires_ms < excluded.first_seen_ms \
             THEN excluded.first_seen_ms ELSE replay_signatures.first_seen_ms END, \
             expires_ms = CASE WHEN replay_signatures.expires_ms < excluded.first_seen_ms \
             THEN excluded.expires_ms ELSE replay_signatures.expires_ms END \
             RETURNING first_seen_ms",
        )
        .bind(signature.to_owned())
        .bind(now_ms)
        .bind(expires_ms)
        .fetch_one(self.pool())
        .await
        .map_err(err("record an accepted signature"))
    }

    /// Deletes at most `limit` records that expired before `now_ms`: a
    /// bounded sweep a request can afford.
    pub async fn sweep_signatures(&self, now_ms: i64, limit: i64) -> Result<u64, DbError> {
        let done = sqlx::query(
            "DELETE FROM replay_signatures WHERE signature IN \
             (SELECT signature FROM replay_signatures WHERE expires_ms < $1 LIMIT $2)",
        )
        .bind(now_ms)
        .bind(limit)
        .execute(self.pool())
        .await
        .map_err(err("sweep expired signatures"))?;
        Ok(done.rows_affected())
    }

    /// How many signatures are recorded, expired or not (for tests and
    /// operators).
    pub async fn recorded_signatures(&self) -> Result<i64, DbError> {
        sqlx::query_scalar("SELECT COUNT(*) FROM replay_signatures")
            .fetch_one(self.read())
            .await
            .map_err(err("count recorded signatures"))
    }
}
