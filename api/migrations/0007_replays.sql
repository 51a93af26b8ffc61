-- (No semicolon in comments here: statements are split at every one.)
-- Signatures the api accepted (issue 21), so that every api replica on
-- this database refuses a replay, not only the one that first saw it
-- (see api/src/auth/replay.rs). The key is a hex SHA-256 of the access
-- key and the signature. Times are Unix milliseconds because replicas
-- compare them against their own clocks. Rows past expires_ms are
-- swept a few at a time as requests arrive.
CREATE TABLE replay_signatures (
    signature TEXT PRIMARY KEY,
    first_seen_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL
);
CREATE INDEX replay_signatures_expiry ON replay_signatures (expires_ms)
