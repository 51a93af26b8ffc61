//! Security groups: making them (with EC2's default egress rule), changing
//! their ingress and egress rules, and telling the compute hosts, whose
//! iptables follow every change through the `refresh_security_group` fanout.

use stratus_rpc::wire::firewall::{IngressRule, RuleError, RuleSpec, SecurityGroupUpdate};
use stratus_rpc::wire::ids::InvalidId;
use stratus_rpc::{RequestContext, RpcError};

use crate::db::groups::{Direction, GroupRow, RuleRow, StoredRule};
use crate::db::{Db, DbError};
use crate::ec2::{Cloud, ids};

/// The name of every project's own group.
pub const DEFAULT_GROUP: &str = "default";

/// A group as a request names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupRef {
    /// By `sg-…`.
    Id(String),
    /// By its name in the project.
    Name(String),
}

/// The other end of a rule: its source (ingress) or destination (egress).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    /// An IPv4 network, as given.
    Cidr(String),
    /// The instances of a group of the same project.
    Group(GroupRef),
}

/// A rule as a request states it, not yet checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestedRule {
    /// `tcp`, `udp`, `icmp`, `-1` or their numbers.
    pub protocol: String,
    /// First port or ICMP type.
    pub from_port: Option<i32>,
    /// Last port or ICMP code.
    pub to_port: Option<i32>,
    /// Where traffic comes from (ingress) or may go (egress).
    pub peer: Peer,
    /// What the client says it is for.
    pub description: Option<String>,
}

/// Whether rules are added or taken away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Add them; refused if one is there already.
    Authorize,
    /// Take them away; refused if none was there.
    Revoke,
}

/// One change to a group's rules.
#[derive(Debug, Clone)]
pub struct RuleChange {
    /// The group changed.
    pub group: GroupRef,
    /// Ingress or egress.
    pub direction: Direction,
    /// Add or take away.
    pub change: Change,
    /// The rules.
    pub rules: Vec<RequestedRule>,
    /// Rules named by their `sgr-` ids (revoke only): they must be the
    /// group's, in this direction.
    pub rule_ids: Vec<String>,
    /// Check everything, change nothing.
    pub dry_run: bool,
}

/// Why a security-group operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    /// No group of the caller's project has this id or name.
    #[error("The security group '{0}' does not exist")]
    NotFound(String),
    /// A requested rule does not make sense.
    #[error("invalid rule for security group {group}")]
    InvalidRule {
        /// The group.
        group: String,
        /// What is wrong with the rule.
        #[source]
        source: RuleError,
    },
    /// One of the rules to add is already there.
    #[error("The specified rule already exists in security group {0}")]
    Duplicate(String),
    /// No rule of the group, in the direction changed, has this `sgr-` id.
    #[error("The security group rule ID '{0}' does not exist")]
    RuleIdNotFound(String),
    /// None of the rules to take away was there.
    #[error("The specified rule does not exist in security group {0}")]
    RuleNotFound(String),
    /// Everything checked out, and nothing was changed as asked.
    #[error("the request would have succeeded (dry run)")]
    DryRun,
    /// A stored group id does not parse.
    #[error("stored security group id {group} does not parse")]
    StoredId {
        /// The id as stored.
        group: String,
        /// Why it does not parse.
        #[source]
        source: InvalidId,
    },
    /// The change was saved but the fanout to the compute hosts failed.
    #[error("security group {group}: the compute hosts could not be told")]
    NotDelivered {
        /// The group.
        group: String,
        /// The bus's error (boxed: it is large).
        #[source]
        source: Box<RpcError>,
    },
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// A new group of `project_id` with EC2's default egress rule and no ingress.
pub fn new_group(project_id: &str, name: &str, description: &str) -> GroupRow {
    GroupRow {
        group_id: ids::new_id("sg"),
        project_id: project_id.to_owned(),
        name: name.to_owned(),
        description: description.to_owned(),
        rules: vec![],
        egress: vec![RuleRow::allow_all()],
    }
}

/// The project's groups, with `default` made on first use (every project has one).
pub async fn project_groups(db: &Db, project_id: &str) -> Result<Vec<GroupRow>, GroupError> {
    let groups = db.groups(project_id).await?;
    if groups.iter().any(|g| g.name == DEFAULT_GROUP) {
        return Ok(groups);
    }
    let default = new_group(project_id, DEFAULT_GROUP, "default group");
    if let Err(e) = db.insert_group(&default).await {
        // Another request made it first.
        if !e.is_unique_violation() {
            return Err(e.into());
        }
    }
    Ok(db.groups(project_id).await?)
}

/// The group `wanted` names among `groups`.
pub fn find<'g>(groups: &'g [GroupRow], wanted: &GroupRef) -> Result<&'g GroupRow, GroupError> {
    let found = match wanted {
        GroupRef::Id(id) => groups.iter().find(|g| &g.group_id == id),
        GroupRef::Name(name) => groups.iter().find(|g| &g.name == name),
    };
    found.ok_or_else(|| {
        GroupError::NotFound(match wanted {
            GroupRef::Id(s) | GroupRef::Name(s) => s.clone(),
        })
    })
}

/// The rules `ids` names, each one of `group_id`'s in `direction`.
async fn rules_by_id(
    db: &Db,
    project_id: &str,
    group_id: &str,
    direction: Direction,
    ids: &[String],
) -> Result<Vec<RuleRow>, GroupError> {
    if ids.is_empty() {
        return Ok(vec![]);
    }
    let stored = db.rules(project_id).await?;
    ids.iter()
        .map(|id| {
            stored
                .iter()
                .find(|r| &r.rule_id == id && r.group_id == group_id && r.direction == direction)
                .map(|r| r.rule.clone())
                .ok_or_else(|| GroupError::RuleIdNotFound(id.clone()))
        })
        .collect()
}

/// Adds or takes away rules of one of the caller's groups, then tells every
/// compute host: the group's new rules, and the members of any group a new
/// rule names as its peer (hosts running none of them need them too).
/// Answers the rules added, with their new ids (none for a revoke).
pub async fn change_rules(
    cloud: &Cloud,
    project_id: &str,
    ctx: &RequestContext,
    request: RuleChange,
) -> Result<Vec<StoredRule>, GroupError> {
    let groups = project_groups(&cloud.db, project_id).await?;
    let group_id = find(&groups, &request.group)?.group_id.clone();
    let mut rows = request
        .rules
        .iter()
        .map(|r| checked(&groups, &group_id, r))
        .collect::<Result<Vec<_>, _>>()?;
    let by_id = rules_by_id(
        &cloud.db,
        project_id,
        &group_id,
        request.direction,
        &request.rule_ids,
    )
    .await?;
    rows.extend(by_id);
    if request.dry_run {
        return Err(GroupError::DryRun);
    }
    let mut added = Vec::new();
    match request.change {
        Change::Authorize => {
            let Some(ids) = cloud
                .db
                .add_rules(&group_id, request.direction, &rows)
                .await?
            else {
                return Err(GroupError::Duplicate(group_id));
            };
            added = cloud
                .db
                .rules(project_id)
                .await?
                .into_iter()
                .filter(|r| ids.contains(&r.rule_id))
                .collect();
        }
        Change::Revoke => {
            if cloud
                .db
                .remove_rules(&group_id, request.direction, &rows)
                .await?
                == 0
            {
                return Err(GroupError::RuleNotFound(group_id));
            }
        }
    }
    let groups = cloud.db.groups(project_id).await?;
    let group = find(&groups, &GroupRef::Id(group_id.clone()))?;
    fan_out(cloud, ctx, group).await?;
    if request.change == Change::Authorize {
        let peers: Vec<&String> = rows
            .iter()
            .filter_map(|r| r.source_group_id.as_ref())
            .collect();
        for peer in groups
            .iter()
            .filter(|g| peers.contains(&&g.group_id) && g.group_id != group_id)
        {
            fan_out(cloud, ctx, peer).await?;
        }
    }
    Ok(added)
}

/// New descriptions for rules of one group, each rule named by what it
/// admits or by its `sgr-` id.
#[derive(Debug, Clone)]
pub struct DescriptionUpdate {
    /// The group whose rules change.
    pub group: GroupRef,
    /// Ingress or egress.
    pub direction: Direction,
    /// Rules as stated, each with its new description (none removes it).
    pub rules: Vec<RequestedRule>,
    /// Rules by `sgr-` id, each with its new description (none removes it).
    pub by_id: Vec<(String, Option<String>)>,
    /// Check everything, change nothing.
    pub dry_run: bool,
}

/// Sets the descriptions of rules of one of the caller's groups, all or
/// none: every rule named must be the group's, in the direction changed.
/// What a rule admits is unchanged, so the compute hosts are not told.
pub async fn update_descriptions(
    db: &Db,
    project_id: &str,
    request: DescriptionUpdate,
) -> Result<(), GroupError> {
    let groups = project_groups(db, project_id).await?;
    let group_id = find(&groups, &request.group)?.group_id.clone();
    let stored: Vec<StoredRule> = db
        .rules(project_id)
        .await?
        .into_iter()
        .filter(|r| r.group_id == group_id && r.direction == request.direction)
        .collect();
    let mut changes = Vec::new();
    for rule in &request.rules {
        let row = checked(&groups, &group_id, rule)?;
        let found = stored
            .iter()
            .find(|s| same_traffic(&s.rule, &row))
            .ok_or_else(|| GroupError::RuleNotFound(group_id.clone()))?;
        changes.push((found.rule_id.clone(), row.description));
    }
    for (id, description) in request.by_id {
        if !stored.iter().any(|s| s.rule_id == id) {
            return Err(GroupError::RuleIdNotFound(id));
        }
        changes.push((id, description));
    }
    if request.dry_run {
        return Err(GroupError::DryRun);
    }
    db.set_rule_descriptions(&changes).await?;
    Ok(())
}

/// Whether two rules admit the same traffic (descriptions aside, as EC2
/// tells rules apart).
fn same_traffic(a: &RuleRow, b: &RuleRow) -> bool {
    let bare = |r: &RuleRow| RuleRow {
        description: None,
        ..r.clone()
    };
    bare(a) == bare(b)
}

/// A requested rule checked and in its stored form; a peer group must be
/// one of `groups`.
fn checked(
    groups: &[GroupRow],
    group_id: &str,
    rule: &RequestedRule,
) -> Result<RuleRow, GroupError> {
    let (cidr, source_group) = match &rule.peer {
        Peer::Cidr(cidr) => (Some(cidr.clone()), None),
        Peer::Group(peer) => (None, Some(find(groups, peer)?.group_id.clone())),
    };
    let spec = RuleSpec {
        protocol: rule.protocol.clone(),
        from_port: rule.from_port,
        to_port: rule.to_port,
        cidr,
        source_group,
    };
    let checked = IngressRule::try_from(spec).map_err(|source| GroupError::InvalidRule {
        group: group_id.to_owned(),
        source,
    })?;
    let s = RuleSpec::from(checked);
    Ok(RuleRow {
        protocol: s.protocol,
        from_port: s.from_port.map(i64::from),
        to_port: s.to_port.map(i64::from),
        cidr: s.cidr,
        source_group_id: s.source_group,
        description: rule.description.clone(),
    })
}

fn spec(r: &RuleRow) -> RuleSpec {
    RuleSpec {
        protocol: r.protocol.clone(),
        from_port: r.from_port.and_then(|p| i32::try_from(p).ok()),
        to_port: r.to_port.and_then(|p| i32::try_from(p).ok()),
        cidr: r.cidr.clone(),
        source_group: r.source_group_id.clone(),
    }
}

/// A group as the compute hosts need it: validated rules both ways and,
/// when some rule names the group as its peer, its members' addresses.
pub async fn group_update(db: &Db, g: &GroupRow) -> Result<SecurityGroupUpdate, GroupError> {
    let group = g.group_id.parse().map_err(|source| GroupError::StoredId {
        group: g.group_id.clone(),
        source,
    })?;
    let checked = |rules: &[RuleRow]| -> Vec<IngressRule> {
        rules
            .iter()
            .filter_map(|r| IngressRule::try_from(spec(r)).ok())
            .collect()
    };
    // Members matter only to rules naming the group as their peer; the
    // list grows with the group, and RunInstances sends it every time.
    let members = if db.is_source(&g.group_id).await? {
        db.group_members(&g.group_id)
            .await?
            .iter()
            .filter_map(|a| a.parse().ok())
            .collect()
    } else {
        Vec::new()
    };
    Ok(SecurityGroupUpdate {
        group,
        rules: checked(&g.rules),
        egress: checked(&g.egress),
        members,
    })
}

/// Tells every compute host the group changed.
pub async fn fan_out(cloud: &Cloud, ctx: &RequestContext, g: &GroupRow) -> Result<(), GroupError> {
    let update = group_update(&cloud.db, g).await?;
    cloud
        .compute
        .refresh_security_group(ctx, &update)
        .await
        .map_err(|source| GroupError::NotDelivered {
            group: g.group_id.clone(),
            source: Box::new(source),
        })
}
