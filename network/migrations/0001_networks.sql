-- Networks by slot, and every instance address of each network. Portable
-- between SQLite and PostgreSQL: the same text runs on both.
CREATE TABLE IF NOT EXISTS networks (
    slot BIGINT PRIMARY KEY,
    project_id TEXT NOT NULL UNIQUE,
    cidr TEXT NOT NULL UNIQUE,
    gateway TEXT NOT NULL,
    dhcp_server TEXT NOT NULL,
    vlan BIGINT,
    bridge TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS fixed_ips (
    address TEXT PRIMARY KEY,
    slot BIGINT NOT NULL REFERENCES networks (slot),
    instance_id TEXT UNIQUE,
    mac TEXT,
    hostname TEXT
);
CREATE INDEX IF NOT EXISTS fixed_ips_by_network ON fixed_ips (slot, instance_id);
