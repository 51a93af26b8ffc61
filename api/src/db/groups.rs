//! Security groups and their rules, ingress and egress.

use sqlx::Row;

use super::{Db, DbError, err};

/// A rule equal to the bound one ($1 group, $2 protocol, $3/$4 ports, $5
/// CIDR, $6 peer group, $7 direction): absent ports and peers compare equal,
/// which NULLs in a UNIQUE index do not.
const SAME_RULE: &str = "group_id = $1 AND protocol = $2 \
    AND COALESCE(from_port, -99) = $3 AND COALESCE(to_port, -99) = $4 \
    AND COALESCE(cidr, '') = $5 AND COALESCE(source_group_id, '') = $6 \
    AND direction = $7";

/// `{verb} security_group_rules` where the rule equals `rule`, bound.
fn same_rule(
    verb: &str,
    group_id: &str,
    direction: Direction,
    rule: &RuleRow,
) -> sqlx::query::Query<'static, sqlx::Any, sqlx::any::AnyArguments> {
    bind_rule(
        format!("{verb} security_group_rules WHERE {SAME_RULE}"),
        group_id,
        direction,
        rule,
    )
}

/// `sql`, whose placeholders are [`SAME_RULE`]'s, bound to `rule`.
fn bind_rule(
    sql: String,
    group_id: &str,
    direction: Direction,
    rule: &RuleRow,
) -> sqlx::query::Query<'static, sqlx::Any, sqlx::any::AnyArguments> {
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(group_id.to_owned())
        .bind(rule.protocol.clone())
        .bind(rule.from_port.unwrap_or(-99))
        .bind(rule.to_port.unwrap_or(-99))
        .bind(rule.cidr.clone().unwrap_or_default())
        .bind(rule.source_group_id.clone().unwrap_or_default())
        .bind(direction.as_str())
}

/// Which traffic a rule admits: coming in, or going out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Traffic to the group's instances; the rule's peer is its source.
    Ingress,
    /// Traffic from the group's instances; the rule's peer is its destination.
    Egress,
}

impl Direction {
    /// As stored in the `direction` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ingress => "ingress",
            Self::Egress => "egress",
        }
    }
}

/// One rule as stored (the EC2 fields, validated before storing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleRow {
    /// `tcp`, `udp`, `icmp` or `-1`.
    pub protocol: String,
    /// First port, or ICMP type; none for all.
    pub from_port: Option<i64>,
    /// Last port, or ICMP code; none for all.
    pub to_port: Option<i64>,
    /// Source network (destination, for egress).
    pub cidr: Option<String>,
    /// Source group, `sg-…` (destination, for egress).
    pub source_group_id: Option<String>,
    /// What the client said the rule is for (not part of what makes two
    /// rules the same: EC2 refuses a rule again with another description).
    pub description: Option<String>,
}

/// A rule with its `sgr-` id and where it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRule {
    /// `sgr-…`, given when the rule was added, never changed.
    pub rule_id: String,
    /// Its group.
    pub group_id: String,
    /// Ingress or egress.
    pub direction: Direction,
    /// The rule.
    pub rule: RuleRow,
}

impl RuleRow {
    /// EC2's default egress rule: every protocol to 0.0.0.0/0.
    pub fn allow_all() -> Self {
        Self {
            protocol: "-1".into(),
            from_port: None,
            to_port: None,
            cidr: Some("0.0.0.0/0".into()),
            source_group_id: None,
            description: None,
        }
    }
}

/// A rule from a row with its columns.
fn rule_row(r: &sqlx::any::AnyRow) -> Result<RuleRow, DbError> {
    Ok(RuleRow {
        protocol: r.try_get("protocol").map_err(err("read rule"))?,
        from_port: r.try_get("from_port").map_err(err("read rule"))?,
        to_port: r.try_get("to_port").map_err(err("read rule"))?,
        cidr: r.try_get("cidr").map_err(err("read rule"))?,
        source_group_id: r.try_get("source_group_id").map_err(err("read rule"))?,
        description: r.try_get("description").map_err(err("read rule"))?,
    })
}

/// A security group with its rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRow {
    /// `sg-…`.
    pub group_id: String,
    /// Its project.
    pub project_id: String,
    /// Its name, unique in the project.
    pub name: String,
    /// Its description.
    pub description: String,
    /// Its ingress rules.
    pub rules: Vec<RuleRow>,
    /// Its egress rules.
    pub egress: Vec<RuleRow>,
}

/// Why a group cannot be deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InUse {
    /// Instances not yet terminated are in it.
    Instances(Vec<String>),
    /// Another group's rules name it as a source or destination.
    Referenced(String),
}

impl Db {
    /// Stores a new group with its rules, all or nothing; a name taken in
    /// the project is a unique violation.
    pub async fn insert_group(&self, g: &GroupRow) -> Result<(), DbError> {
        let mut tx = self.pool().begin().await.map_err(err("begin"))?;
        sqlx::query(
            "INSERT INTO security_groups (group_id, project_id, name, description) VALUES ($1, $2, $3, $4)",
        )
        .bind(g.group_id.clone())
        .bind(g.project_id.clone())
        .bind(g.name.clone())
        .bind(g.description.clone())
        .execute(&mut *tx)
        .await
        .map_err(err("store security group"))?;
        // A new group's rules are distinct (EC2's default egress rule, as
        // the application layer makes groups): none can already be there.
        for (direction, rules) in [
            (Direction::Ingress, &g.rules),
            (Direction::Egress, &g.egress),
        ] {
            insert_rules(&mut tx, &g.group_id, direction, rules).await?;
        }
        tx.commit().await.map_err(err("commit security group"))
    }

    /// The project's groups with their rules, by name.
    pub async fn groups(&self, project_id: &str) -> Result<Vec<GroupRow>, DbError> {
        let query = sqlx::query(
            "SELECT group_id, project_id, name, description FROM security_groups WHERE project_id = $1 ORDER BY name",
        )
        .bind(project_id.to_owned());
        let row = |r: &sqlx::any::AnyRow| {
            Ok(from_row!(
                r,
                GroupRow { group_id, project_id, name, description },
                rules: vec![],
                egress: vec![],
            ))
        };
        let mut groups = self.all(query, row, "list security groups").await?;
        for stored in self.rules(project_id).await? {
            if let Some(g) = groups.iter_mut().find(|g| g.group_id == stored.group_id) {
                match stored.direction {
                    Direction::Egress => g.egress.push(stored.rule),
                    Direction::Ingress => g.rules.push(stored.rule),
                }
            }
        }
        Ok(groups)
    }

    /// The rules of the project's groups with their ids, in the order they
    /// were added.
    pub async fn rules(&self, project_id: &str) -> Result<Vec<StoredRule>, DbError> {
        let rows = sqlx::query(
            "SELECT r.sgr_id, r.group_id, r.direction, r.protocol, r.from_port, r.to_port, r.cidr, \
             r.source_group_id, r.description \
             FROM security_group_rules r JOIN security_groups g ON g.group_id = r.group_id \
             WHERE g.project_id = $1 ORDER BY r.rule_id",
        )
        .bind(project_id.to_owned())
        .fetch_all(self.read())
        .await
        .map_err(err("list rules"))?;
        rows.iter()
            .map(|r| {
                let direction: String = r.try_get("direction").map_err(err("read rule"))?;
                Ok(StoredRule {
                    rule_id: r.try_get("sgr_id").map_err(err("read rule"))?,
                    group_id: r.try_get("group_id").map_err(err("read rule"))?,
                    direction: if direction == Direction::Egress.as_str() {
                        Direction::Egress
                    } else {
                        Direction::Ingress
                    },
                    rule: rule_row(r)?,
                })
            })
            .collect()
    }

    /// Adds rules to a group in one direction: their new `sgr-` ids, in
    /// order, or none (and none added) when one is already there.
    pub async fn add_rules(
        &self,
        group_id: &str,
        direction: Direction,
        rules: &[RuleRow],
    ) -> Result<Option<Vec<String>>, DbError> {
        let mut tx = self.pool().begin().await.map_err(err("begin"))?;
        let Some(ids) = insert_rules(&mut tx, group_id, direction, rules).await? else {
            return Ok(None);
        };
        tx.commit().await.map_err(err("commit rules"))?;
        Ok(Some(ids))
    }

    /// Removes rules from a group in one direction; how many were there.
    pub async fn remove_rules(
        &self,
        group_id: &str,
        direction: Direction,
        rules: &[RuleRow],
    ) -> Result<u64, DbError> {
        let mut tx = self.pool().begin().await.map_err(err("begin"))?;
        let mut removed = 0;
        for rule in rules {
            // The rule's tags go with it.
            bind_rule(
                format!(
                    "DELETE FROM tags WHERE resource_id IN \
                     (SELECT sgr_id FROM security_group_rules WHERE {SAME_RULE})"
                ),
                group_id,
                direction,
                rule,
            )
            .execute(&mut *tx)
            .await
            .map_err(err("drop rule tags"))?;
            let done = same_rule("DELETE FROM", group_id, direction, rule)
                .execute(&mut *tx)
                .await
                .map_err(err("remove rule"))?;
            removed += done.rows_affected();
        }
        tx.commit().await.map_err(err("commit rule removal"))?;
        Ok(removed)
    }

    /// Sets rules' descriptions by their `sgr-` ids (none removes one), all
    /// at once.
    pub async fn set_rule_descriptions(
        &self,
        changes: &[(String, Option<String>)],
    ) -> Result<(), DbError> {
        let mut tx = self.pool().begin().await.map_err(err("begin"))?;
        for (sgr_id, description) in changes {
            sqlx::query("UPDATE security_group_rules SET description = $1 WHERE sgr_id = $2")
                .bind(description.clone())
                .bind(sgr_id.clone())
                .execute(&mut *tx)
                .await
                .map_err(err("describe rule"))?;
        }
        tx.commit().await.map_err(err("commit rule descriptions"))
    }

    /// What keeps a group from being deleted, if anything.
    pub async fn group_in_use(&self, group_id: &str) -> Result<Option<InUse>, DbError> {
        let instances: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT i.ec2_id FROM instance_groups ig JOIN instances i ON i.uuid = ig.uuid \
             WHERE ig.group_id = $1 AND i.state NOT IN {} ORDER BY i.ec2_id",
            super::instances::gone()
        )))
        .bind(group_id.to_owned())
        .fetch_all(self.read())
        .await
        .map_err(err("find group members"))?;
        if !instances.is_empty() {
            return Ok(Some(InUse::Instances(instances)));
        }
        let referrer: Option<String> = sqlx::query_scalar(
            "SELECT group_id FROM security_group_rules WHERE source_group_id = $1 AND group_id <> $1 LIMIT 1",
        )
        .bind(group_id.to_owned())
        .fetch_optional(self.read())
        .await
        .map_err(err("find group references"))?;
        Ok(referrer.map(InUse::Referenced))
    }

    /// Deletes a group, its rules and their tags.
    pub async fn delete_group(&self, group_id: &str) -> Result<(), DbError> {
        let mut tx = self.pool().begin().await.map_err(err("begin"))?;
        for sql in [
            "DELETE FROM tags WHERE resource_id IN \
             (SELECT sgr_id FROM security_group_rules WHERE group_id = $1)",
            "DELETE FROM security_group_rules WHERE group_id = $1",
            "DELETE FROM instance_groups WHERE group_id = $1",
            "DELETE FROM security_groups WHERE group_id = $1",
        ] {
            sqlx::query(sql)
                .bind(group_id.to_owned())
                .execute(&mut *tx)
                .await
                .map_err(err("delete security group"))?;
        }
        tx.commit().await.map_err(err("commit group deletion"))
    }

    /// Whether some rule names the group as its source or destination (only
    /// then do hosts need its members).
    pub async fn is_source(&self, group_id: &str) -> Result<bool, DbError> {
        let found: Option<i32> = sqlx::query_scalar(
            "SELECT 1 FROM security_group_rules WHERE source_group_id = $1 LIMIT 1",
        )
        .bind(group_id.to_owned())
        .fetch_optional(self.read())
        .await
        .map_err(err("find rules naming a group"))?;
        Ok(found.is_some())
    }

    /// Fixed IPs of the group's instances that have one and are not gone.
    pub async fn group_members(&self, group_id: &str) -> Result<Vec<String>, DbError> {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT i.fixed_ip FROM instance_groups ig JOIN instances i ON i.uuid = ig.uuid \
             WHERE ig.group_id = $1 AND i.fixed_ip IS NOT NULL AND i.state NOT IN {} \
             ORDER BY i.fixed_ip",
            super::instances::gone()
        )))
        .bind(group_id.to_owned())
        .fetch_all(self.read())
        .await
        .map_err(err("list group members"))
    }

    /// Those of `group_ids` some rule (ingress or egress) names as its peer,
    /// with their rules.
    pub async fn referenced_groups(&self, group_ids: &[String]) -> Result<Vec<GroupRow>, DbError> {
        if group_ids.is_empty() {
            return Ok(vec![]);
        }
        let mut q = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT DISTINCT source_group_id FROM security_group_rules WHERE source_group_id IN ({})",
            super::placeholders(1, group_ids.len())
        )));
        for id in group_ids {
            q = q.bind(id.clone());
        }
        let referenced: Vec<String> = q
            .fetch_all(self.read())
            .await
            .map_err(err("find referenced groups"))?;
        let mut found = Vec::new();
        for id in referenced {
            let project: Option<String> =
                sqlx::query_scalar("SELECT project_id FROM security_groups WHERE group_id = $1")
                    .bind(id.clone())
                    .fetch_optional(self.read())
                    .await
                    .map_err(err("find group"))?;
            if let Some(project) = project {
                found.extend(
                    self.groups(&project)
                        .await?
                        .into_iter()
                        .filter(|g| g.group_id == id),
                );
            }
        }
        Ok(found)
    }
}

/// Adds rules to a group on `conn`, inside the caller's transaction: their
/// new `sgr-` ids, or none at the first one already there (the caller then
/// drops the transaction, and none is added).
async fn insert_rules(
    conn: &mut sqlx::AnyConnection,
    group_id: &str,
    direction: Direction,
    rules: &[RuleRow],
) -> Result<Option<Vec<String>>, DbError> {
    let now = super::now();
    let mut ids = Vec::with_capacity(rules.len());
    for (n, rule) in rules.iter().enumerate() {
        // NULLs never collide in a UNIQUE index, so look first.
        let exists = same_rule("SELECT rule_id FROM", group_id, direction, rule)
            .fetch_optional(&mut *conn)
            .await
            .map_err(err("find rule"))?;
        if exists.is_some() {
            return Ok(None);
        }
        let sgr_id = crate::ec2::ids::new_id("sgr");
        sqlx::query(
            "INSERT INTO security_group_rules \
             (rule_id, group_id, protocol, from_port, to_port, cidr, source_group_id, direction, \
              sgr_id, description) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        // Ordered by time, then by place in the request.
        .bind(format!("{now}-{n:04}-{}", uuid::Uuid::new_v4().simple()))
        .bind(group_id.to_owned())
        .bind(rule.protocol.clone())
        .bind(rule.from_port)
        .bind(rule.to_port)
        .bind(rule.cidr.clone())
        .bind(rule.source_group_id.clone())
        .bind(direction.as_str())
        .bind(sgr_id.clone())
        .bind(rule.description.clone())
        .execute(&mut *conn)
        .await
        .map_err(err("store rule"))?;
        ids.push(sgr_id);
    }
    Ok(Some(ids))
}
