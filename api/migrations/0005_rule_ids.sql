-- Issue 20: security-group rules get the sgr- ids current EC2 clients
-- list and revoke them by, and the description a client gave each.
-- Every rule row id written so far ends in 17 hex digits (a UUID, or the
-- group id of a default egress rule), so existing rules take those as
-- their sgr- id: distinct, and the same on every describe.
ALTER TABLE security_group_rules ADD COLUMN sgr_id TEXT;
ALTER TABLE security_group_rules ADD COLUMN description TEXT;
UPDATE security_group_rules SET sgr_id = 'sgr-' || substr(rule_id, length(rule_id) - 16);
CREATE UNIQUE INDEX security_group_rules_by_sgr_id ON security_group_rules (sgr_id);
-- The private IP address a launch asked for (PrivateIpAddress), kept so a
-- launch sent to the scheduler again after a restart asks for it again.
CREATE TABLE instance_private_ips (
    uuid TEXT PRIMARY KEY,
    address TEXT NOT NULL
)
