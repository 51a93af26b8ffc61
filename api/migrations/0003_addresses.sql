-- (No semicolon in comments here: statements are split at every one.)
-- Public addresses (issue 19): Elastic IPs a project allocates (kind
-- 'elastic') and the address an instance gets at launch (kind 'auto'). An
-- address leads to at most one instance and an instance has at most one
-- (the unique instance_uuid), and the unique public_ip is what makes two
-- allocations racing for the lowest free address (two api processes on one
-- PostgreSQL database) end with one winner and one retry.
CREATE TABLE addresses (
    public_ip TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    allocation_id TEXT NOT NULL UNIQUE,
    domain TEXT NOT NULL,
    kind TEXT NOT NULL,
    instance_uuid TEXT UNIQUE,
    association_id TEXT UNIQUE,
    created_at TEXT NOT NULL
);
CREATE INDEX addresses_by_project ON addresses (project_id);
-- Whether the instance launched wanting a public address: disassociating
-- an Elastic IP gives it a fresh one then.
ALTER TABLE instances ADD COLUMN wants_public_ip BIGINT NOT NULL DEFAULT 0
