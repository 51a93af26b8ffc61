-- (No semicolon in comments here: statements are split at every one.)
-- Default VPCs (issue 20): each project's network as the network
-- controller made it, cached so describing the VPC after the first time
-- asks no other service. The network never changes once made (the
-- controller owns it and never renumbers), so the cache never goes stale.
CREATE TABLE project_networks (
    project_id TEXT PRIMARY KEY,
    cidr TEXT NOT NULL,
    gateway TEXT NOT NULL,
    created_at TEXT NOT NULL
)
