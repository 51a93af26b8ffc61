-- The cloud's tables, owned by the api service. Portable between SQLite and
-- PostgreSQL: the same text runs on both. Times are RFC 3339 text (UTC),
-- booleans 0/1 integers.
CREATE TABLE IF NOT EXISTS credentials (
    access_key TEXT PRIMARY KEY,
    secret_key TEXT NOT NULL,
    project_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    is_admin BIGINT NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS key_pairs (
    key_pair_id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    name TEXT NOT NULL,
    key_type TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    public_key TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (project_id, name)
);
CREATE TABLE IF NOT EXISTS security_groups (
    group_id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    UNIQUE (project_id, name)
);
CREATE TABLE IF NOT EXISTS security_group_rules (
    rule_id TEXT PRIMARY KEY,
    group_id TEXT NOT NULL REFERENCES security_groups (group_id) ON DELETE CASCADE,
    protocol TEXT NOT NULL,
    from_port BIGINT,
    to_port BIGINT,
    cidr TEXT,
    source_group_id TEXT,
    UNIQUE (group_id, protocol, from_port, to_port, cidr, source_group_id)
);
CREATE TABLE IF NOT EXISTS images (
    image_id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT,
    location TEXT NOT NULL,
    image_type TEXT NOT NULL,
    kernel_id TEXT,
    ramdisk_id TEXT,
    architecture TEXT NOT NULL,
    is_public BIGINT NOT NULL DEFAULT 0,
    state TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS reservations (
    reservation_id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    client_token TEXT,
    created_at TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS reservations_by_token
    ON reservations (project_id, client_token) WHERE client_token IS NOT NULL;
CREATE TABLE IF NOT EXISTS instances (
    uuid TEXT PRIMARY KEY,
    ec2_id TEXT NOT NULL UNIQUE,
    project_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    reservation_id TEXT NOT NULL REFERENCES reservations (reservation_id),
    launch_index BIGINT NOT NULL,
    image_id TEXT NOT NULL,
    kernel_id TEXT,
    ramdisk_id TEXT,
    instance_type TEXT NOT NULL,
    vcpus BIGINT NOT NULL,
    memory_mb BIGINT NOT NULL,
    root_gb BIGINT NOT NULL,
    key_name TEXT,
    key_data TEXT,
    user_data TEXT,
    requested_zone TEXT,
    availability_zone TEXT,
    host TEXT,
    fixed_ip TEXT,
    state TEXT NOT NULL,
    task_state TEXT,
    state_reason TEXT,
    state_sequence BIGINT NOT NULL DEFAULT 0,
    attempt BIGINT NOT NULL DEFAULT 0,
    launched_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    terminated_at TEXT
);
CREATE INDEX IF NOT EXISTS instances_by_project ON instances (project_id, ec2_id);
CREATE INDEX IF NOT EXISTS instances_by_fixed_ip ON instances (fixed_ip);
CREATE INDEX IF NOT EXISTS instances_by_state ON instances (project_id, state);
CREATE TABLE IF NOT EXISTS instance_groups (
    uuid TEXT NOT NULL REFERENCES instances (uuid),
    group_id TEXT NOT NULL,
    PRIMARY KEY (uuid, group_id)
);
CREATE INDEX IF NOT EXISTS instance_groups_by_group ON instance_groups (group_id);
CREATE TABLE IF NOT EXISTS tags (
    resource_id TEXT NOT NULL,
    project_id TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    tag_key TEXT NOT NULL,
    tag_value TEXT NOT NULL,
    PRIMARY KEY (resource_id, tag_key)
);
CREATE INDEX IF NOT EXISTS tags_by_project ON tags (project_id)
