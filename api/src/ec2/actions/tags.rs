//! Tags: CreateTags, DeleteTags, DescribeTags, and the tag specifications
//! RunInstances takes. Instances, images, groups and their rules, key pairs,
//! the default VPC and subnets, network interfaces and Elastic IPs take
//! tags; each Describe of them shows and filters by them.

use stratus_rpc::wire::conductor::InstanceState;

use super::super::error::Ec2Error;
use super::super::filters;
use super::super::params::{Params, shown};
use super::super::{Ctx, ids};
use crate::db::tags::TagRow;

/// Most tags one resource may carry, as EC2 allows.
const MAX_TAGS: usize = 50;

/// The (key, value) pairs of `id` among `tags`.
pub fn of(tags: &[TagRow], id: &str) -> Vec<(String, String)> {
    tags.iter()
        .filter(|t| t.resource_id == id)
        .map(|t| (t.key.clone(), t.value.clone()))
        .collect()
}

/// A tag key and value as EC2 accepts them.
pub fn validate(key: &str, value: &str) -> Result<(), Ec2Error> {
    if key.is_empty() || key.chars().count() > 128 {
        return Err(Ec2Error::invalid("Tag keys must be 1 to 128 characters."));
    }
    if key.to_ascii_lowercase().starts_with("aws:") {
        return Err(Ec2Error::invalid(
            "Tag keys starting with 'aws:' are reserved.",
        ));
    }
    if value.chars().count() > 256 {
        return Err(Ec2Error::invalid(
            "Tag values must be at most 256 characters.",
        ));
    }
    if key
        .chars()
        .chain(value.chars())
        .any(|c| c.is_control() && c != '\t')
    {
        return Err(Ec2Error::invalid(format!(
            "The tag '{}' has control characters.",
            shown(key)
        )));
    }
    Ok(())
}

/// The tags of `Tag.N.Key` / `Tag.N.Value` in `params`.
fn tag_list(params: &Params) -> Result<Vec<(String, Option<String>)>, Ec2Error> {
    params
        .structs("Tag")?
        .into_iter()
        .map(|t| {
            Ok((
                t.required("Key")?.to_owned(),
                t.get("Value").map(str::to_owned),
            ))
        })
        .collect()
}

/// The tags `TagSpecification.N` gives resources of `resource_type`.
pub fn specified(cx: &Ctx<'_>, resource_type: &str) -> Result<Vec<(String, String)>, Ec2Error> {
    let mut tags = Vec::new();
    for spec in cx.params.structs("TagSpecification")? {
        let kind = spec.required("ResourceType")?;
        if !["instance", "volume", "network-interface"].contains(&kind) {
            return Err(Ec2Error::invalid(format!(
                "'{}' is not a valid taggable resource type for this operation.",
                shown(kind)
            )));
        }
        if kind != resource_type {
            continue;
        }
        for (key, value) in tag_list(&spec)? {
            let value = value.unwrap_or_default();
            validate(&key, &value)?;
            tags.retain(|(k, _): &(String, String)| k != &key);
            tags.push((key, value));
        }
    }
    if tags.len() > MAX_TAGS {
        return Err(Ec2Error::client(
            "TagLimitExceeded",
            format!("At most {MAX_TAGS} tags per resource."),
        ));
    }
    Ok(tags)
}

/// A kind of taggable resource: its id's prefix, its `resource-type`, and
/// EC2's error code and noun for an id of it the caller does not have.
struct Kind {
    prefix: &'static str,
    resource_type: &'static str,
    not_found: &'static str,
    noun: &'static str,
}

/// Every kind CreateTags takes, by id prefix.
const KINDS: &[Kind] = &[
    kind("i", "instance", "InvalidInstanceID.NotFound", "instance ID"),
    kind("ami", "image", "InvalidAMIID.NotFound", "image ID"),
    kind("aki", "image", "InvalidAMIID.NotFound", "image ID"),
    kind("ari", "image", "InvalidAMIID.NotFound", "image ID"),
    kind(
        "sg",
        "security-group",
        "InvalidGroup.NotFound",
        "security group",
    ),
    kind("key", "key-pair", "InvalidKeyPair.NotFound", "key pair ID"),
    kind("vpc", "vpc", "InvalidVpcID.NotFound", "vpc ID"),
    kind("subnet", "subnet", "InvalidSubnetID.NotFound", "subnet ID"),
    kind(
        "sgr",
        "security-group-rule",
        "InvalidSecurityGroupRuleId.NotFound",
        "security group rule ID",
    ),
    kind(
        "eni",
        "network-interface",
        "InvalidNetworkInterfaceID.NotFound",
        "networkInterface ID",
    ),
    kind(
        "eipalloc",
        "elastic-ip",
        "InvalidAllocationID.NotFound",
        "allocation ID",
    ),
];

const fn kind(
    prefix: &'static str,
    resource_type: &'static str,
    not_found: &'static str,
    noun: &'static str,
) -> Kind {
    Kind {
        prefix,
        resource_type,
        not_found,
        noun,
    }
}

/// Whether the caller's project has the resource (another project's is not
/// found, never forbidden).
async fn exists(cx: &Ctx<'_>, id: &str, kind: &Kind) -> Result<bool, Ec2Error> {
    let project = &cx.caller.project_id;
    let db = &cx.cloud.db;
    Ok(match kind.resource_type {
        "instance" => !db
            .instances(project, Some(&[id.to_owned()]))
            .await?
            .is_empty(),
        "image" => db
            .image(project, id)
            .await?
            .is_some_and(|i| &i.project_id == project),
        "security-group" => db.groups(project).await?.iter().any(|g| g.group_id == id),
        "key-pair" => db
            .key_pairs(project)
            .await?
            .iter()
            .any(|k| k.key_pair_id == id),
        // The default VPC and subnets are derived, never stored.
        "vpc" => id == ids::default_vpc_id(project),
        "subnet" => super::info::zones(cx)
            .await
            .iter()
            .any(|zone| ids::default_subnet_id(project, zone) == id),
        "security-group-rule" => db.rules(project).await?.iter().any(|r| r.rule_id == id),
        // An instance's interface lives until the instance is terminated.
        "network-interface" => db.instances(project, None).await?.iter().any(|i| {
            i.state != InstanceState::Terminated && ids::network_interface_id(&i.uuid) == id
        }),
        // Elastic IPs only: a launch's address has no allocation to tag.
        "elastic-ip" => db
            .addresses(project)
            .await?
            .iter()
            .any(|a| a.is_elastic() && a.allocation_id == id),
        _ => false,
    })
}

async fn resources(cx: &Ctx<'_>) -> Result<Vec<(String, &'static str)>, Ec2Error> {
    let wanted = cx.params.list("ResourceId")?;
    if wanted.is_empty() {
        return Err(Ec2Error::missing("ResourceId"));
    }
    let mut found = Vec::new();
    for id in wanted {
        let kind = KINDS
            .iter()
            .find(|k| ids::is_id(k.prefix, &id))
            .ok_or_else(|| {
                Ec2Error::client("InvalidID", format!("The ID '{}' is not valid", shown(&id)))
            })?;
        if !exists(cx, &id, kind).await? {
            return Err(Ec2Error::client(
                kind.not_found,
                format!("The {} '{}' does not exist", kind.noun, shown(&id)),
            ));
        }
        found.push((id, kind.resource_type));
    }
    Ok(found)
}

/// CreateTags.
pub async fn create_tags(cx: &Ctx<'_>) -> Result<String, Ec2Error> {
    let targets = resources(cx).await?;
    let tags = tag_list(cx.params)?;
    if tags.is_empty() {
        return Err(Ec2Error::missing("Tag"));
    }
    for (key, value) in &tags {
        validate(key, value.as_deref().unwrap_or(""))?;
    }
    let existing = cx
        .cloud
        .db
        .tags(
            &cx.caller.project_id,
            Some(&targets.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>()),
        )
        .await?;
    for (id, _) in &targets {
        let mut keys: Vec<&str> = existing
            .iter()
            .filter(|t| &t.resource_id == id)
            .map(|t| t.key.as_str())
            .collect();
        keys.extend(tags.iter().map(|(k, _)| k.as_str()));
        keys.sort_unstable();
        keys.dedup();
        if keys.len() > MAX_TAGS {
            return Err(Ec2Error::client(
                "TagLimitExceeded",
                format!("At most {MAX_TAGS} tags per resource ({id})."),
            ));
        }
    }
    cx.dry_run()?;
    let rows: Vec<TagRow> = targets
        .iter()
        .flat_map(|(id, kind)| {
            tags.iter().map(move |(k, v)| TagRow {
                resource_id: id.clone(),
                resource_type: (*kind).to_owned(),
                key: k.clone(),
                value: v.clone().unwrap_or_default(),
            })
        })
        .collect();
    cx.cloud.db.put_tags(&cx.caller.project_id, &rows).await?;
    Ok(cx.ok())
}

/// DeleteTags: a key alone deletes any value; with a value, only that one.
pub async fn delete_tags(cx: &Ctx<'_>) -> Result<String, Ec2Error> {
    let targets = resources(cx).await?;
    let tags = tag_list(cx.params)?;
    cx.dry_run()?;
    for (id, _) in &targets {
        if tags.is_empty() {
            cx.cloud.db.drop_tags(id).await?;
        }
        for (key, value) in &tags {
            cx.cloud
                .db
                .delete_tag(&cx.caller.project_id, id, key, value.as_deref())
                .await?;
        }
    }
    Ok(cx.ok())
}

/// DescribeTags.
pub async fn describe_tags(cx: &Ctx<'_>) -> Result<String, Ec2Error> {
    let wanted = filters::parse(cx.params, &["resource-id", "resource-type", "key", "value"])?;
    let tags: Vec<TagRow> = cx
        .cloud
        .db
        .tags(&cx.caller.project_id, None)
        .await?
        .into_iter()
        .filter(|t| {
            filters::matches(&wanted, &[], |n| match n {
                "resource-id" => vec![t.resource_id.clone()],
                "resource-type" => vec![t.resource_type.clone()],
                "key" => vec![t.key.clone()],
                "value" => vec![t.value.clone()],
                _ => vec![],
            })
        })
        .collect();
    let mut x = cx.response();
    x.list("tagSet", &tags, |x, t| {
        x.text("resourceId", &t.resource_id)
            .text("resourceType", &t.resource_type)
            .text("key", &t.key)
            .text("value", &t.value);
    });
    Ok(cx.finish(x))
}
