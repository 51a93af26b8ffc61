-- Egress rules. Every rule gets a direction ('ingress' or 'egress') and the
-- uniqueness covers it (the same rule may stand in both directions), which
-- SQLite can only do by rebuilding the table. Every group that exists gets
-- EC2's default egress rule: all protocols to 0.0.0.0/0. Runs once (see
-- schema_migrations in db/mod.rs), so a revoked default stays revoked.
CREATE TABLE security_group_rules_v2 (
    rule_id TEXT PRIMARY KEY,
    group_id TEXT NOT NULL REFERENCES security_groups (group_id) ON DELETE CASCADE,
    direction TEXT NOT NULL DEFAULT 'ingress',
    protocol TEXT NOT NULL,
    from_port BIGINT,
    to_port BIGINT,
    cidr TEXT,
    source_group_id TEXT,
    UNIQUE (group_id, direction, protocol, from_port, to_port, cidr, source_group_id)
);
INSERT INTO security_group_rules_v2
    (rule_id, group_id, direction, protocol, from_port, to_port, cidr, source_group_id)
    SELECT rule_id, group_id, 'ingress', protocol, from_port, to_port, cidr, source_group_id
    FROM security_group_rules;
DROP TABLE security_group_rules;
ALTER TABLE security_group_rules_v2 RENAME TO security_group_rules;
CREATE INDEX security_group_rules_by_source ON security_group_rules (source_group_id);
INSERT INTO security_group_rules (rule_id, group_id, direction, protocol, cidr)
    SELECT '0000-default-egress-' || group_id, group_id, 'egress', '-1', '0.0.0.0/0'
    FROM security_groups
