//! ModifyInstanceAttribute and DescribeInstanceAttribute: one attribute of
//! one instance, named as botocore's `InstanceAttribute` shape names them.

use base64::Engine;
use stratus_rpc::wire::compute::Flavor;

use super::super::error::Ec2Error;
use super::super::params::shown;
use super::super::xml::Xml;
use super::super::{Ctx, ids};
use super::{groups, instances::find};
use crate::app::instances::attributes::{self as app, AttributeError, Change};
use crate::db::instances::{InstanceAttributes, InstanceRow, ShutdownBehavior};

/// The attributes ModifyInstanceAttribute takes as `<Name>.Value` (or as
/// `Attribute=<name>&Value=…`): (parameter, attribute).
const VALUE_FORMS: &[(&str, &str)] = &[
    ("InstanceType", "instanceType"),
    ("UserData", "userData"),
    ("DisableApiTermination", "disableApiTermination"),
    (
        "InstanceInitiatedShutdownBehavior",
        "instanceInitiatedShutdownBehavior",
    ),
    ("SourceDestCheck", "sourceDestCheck"),
    ("Kernel", "kernel"),
    ("Ramdisk", "ramdisk"),
    ("EbsOptimized", "ebsOptimized"),
    ("EnaSupport", "enaSupport"),
    ("SriovNetSupport", "sriovNetSupport"),
    ("DisableApiStop", "disableApiStop"),
];

impl From<AttributeError> for Ec2Error {
    fn from(e: AttributeError) -> Self {
        match e {
            AttributeError::NotStopped {
                instance,
                state,
                attribute,
            } => Self::client(
                "IncorrectInstanceState",
                format!(
                    "The instance '{instance}' is not in the 'stopped' state (it is '{}'): its {attribute} can be changed only while it is stopped.",
                    state.ec2_name()
                ),
            ),
            AttributeError::Gone { instance, state } => Self::client(
                "IncorrectInstanceState",
                format!(
                    "The instance '{instance}' is not in a state from which its attributes can be changed (it is '{}').",
                    state.ec2_name()
                ),
            ),
            AttributeError::NotSettled {
                instance,
                state,
                attribute,
            } => Self::client(
                "IncorrectInstanceState",
                format!(
                    "The instance '{instance}' is '{}': its {attribute} can be changed only while it is running or stopped.",
                    state.ec2_name()
                ),
            ),
            AttributeError::HostUnreachable { instance, source } => {
                super::super::error::rpc_failure(&format!("the host of {instance}"), &source)
            }
            AttributeError::Group(e) => e.into(),
            AttributeError::Quota(e) => e.into(),
            AttributeError::Db(e) => e.into(),
        }
    }
}

/// The one (attribute, value) a request asks to change: from `Attribute`
/// and `Value`, a `<Name>.Value`, or `GroupId.N` (for `groupSet`).
fn asked(cx: &Ctx<'_>) -> Result<(String, Option<String>), Ec2Error> {
    let mut found: Vec<(String, Option<String>)> = Vec::new();
    if let Some(attribute) = cx.params.get("Attribute").filter(|a| !a.is_empty()) {
        found.push((
            attribute.to_owned(),
            cx.params.get("Value").map(str::to_owned),
        ));
    }
    for (param, attribute) in VALUE_FORMS {
        if let Some(value) = cx.params.get(&format!("{param}.Value")) {
            found.push(((*attribute).to_owned(), Some(value.to_owned())));
        }
    }
    let group_ids = cx.params.list("GroupId")?;
    if !group_ids.is_empty() {
        found.push(("groupSet".to_owned(), Some(group_ids.join(","))));
    }
    match found.len() {
        0 => Err(Ec2Error::missing("Attribute")),
        1 => Ok(found.remove(0)),
        _ => Err(Ec2Error::client(
            "InvalidParameterCombination",
            "Only one attribute can be modified at a time.",
        )),
    }
}

/// A boolean attribute value.
fn boolean(attribute: &str, value: &str) -> Result<bool, Ec2Error> {
    match value.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(Ec2Error::invalid(format!(
            "Value ({}) for parameter {attribute} is invalid. Expected true or false.",
            shown(value)
        ))),
    }
}

/// The instance type named, as a flavor the cloud has.
fn flavor(cx: &Ctx<'_>, name: &str) -> Result<Flavor, Ec2Error> {
    let itype = cx.cloud.config.instance_type(name).ok_or_else(|| {
        Ec2Error::client(
            "InvalidInstanceAttributeValue",
            format!(
                "The instanceType attribute value '{}' is invalid.",
                shown(name)
            ),
        )
    })?;
    Ok(Flavor {
        name: itype.name.clone(),
        vcpus: itype.vcpus,
        memory_mb: itype.memory_mb,
        root_gb: itype.root_gb,
    })
}

/// User data as base64 within the size limit (empty: none).
fn user_data(cx: &Ctx<'_>, value: &str) -> Result<Option<String>, Ec2Error> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(value)
        .map_err(|_| Ec2Error::invalid("Invalid BASE64 encoding of user data."))?;
    let limit = cx.cloud.config.max_user_data_bytes;
    if decoded.len() > limit {
        return Err(Ec2Error::invalid(format!(
            "User data is limited to {limit} bytes (got {}).",
            decoded.len()
        )));
    }
    Ok(Some(value.to_owned()))
}

/// The change a request asks for, its value checked.
async fn change(cx: &Ctx<'_>) -> Result<Change, Ec2Error> {
    let (attribute, value) = asked(cx)?;
    let value = value.ok_or_else(|| Ec2Error::missing("Value"))?;
    Ok(match attribute.as_str() {
        "instanceType" => Change::InstanceType(flavor(cx, &value)?),
        "userData" => Change::UserData(user_data(cx, &value)?),
        "disableApiTermination" => Change::DisableApiTermination(boolean(&attribute, &value)?),
        "sourceDestCheck" => Change::SourceDestCheck(boolean(&attribute, &value)?),
        "instanceInitiatedShutdownBehavior" => Change::ShutdownBehavior(shutdown_behavior(&value)?),
        "groupSet" => {
            let ids: Vec<String> = value.split(',').map(str::to_owned).collect();
            // Each must be the project's: another's is "not found".
            Change::Groups(groups::resolve(cx, &ids, &[]).await?)
        }
        "kernel" | "ramdisk" | "ebsOptimized" | "enaSupport" | "sriovNetSupport"
        | "disableApiStop" | "blockDeviceMapping" | "productCodes" | "rootDeviceName"
        | "enclaveOptions" => {
            return Err(Ec2Error::client(
                "UnsupportedOperation",
                format!("The {attribute} attribute cannot be changed on this cloud."),
            ));
        }
        other => return Err(unknown(other)),
    })
}

/// The attributes RunInstances sets: `DisableApiTermination` and
/// `InstanceInitiatedShutdownBehavior` (EC2's defaults otherwise).
pub fn at_launch(cx: &Ctx<'_>) -> Result<InstanceAttributes, Ec2Error> {
    let mut attributes = InstanceAttributes {
        disable_api_termination: cx.params.flag("DisableApiTermination")?,
        ..InstanceAttributes::default()
    };
    if let Some(b) = cx
        .params
        .get("InstanceInitiatedShutdownBehavior")
        .filter(|b| !b.is_empty())
    {
        attributes.shutdown_behavior = shutdown_behavior(b)?;
    }
    Ok(attributes)
}

/// A shutdown behaviour: `stop` or `terminate`.
fn shutdown_behavior(value: &str) -> Result<ShutdownBehavior, Ec2Error> {
    value.parse().map_err(|_| {
        Ec2Error::invalid(format!(
            "Value ({}) for parameter instanceInitiatedShutdownBehavior is invalid. Expected 'stop' or 'terminate'.",
            shown(value)
        ))
    })
}

/// `InvalidParameterValue` for an attribute EC2 does not have.
fn unknown(attribute: &str) -> Ec2Error {
    Ec2Error::invalid(format!(
        "Value ({}) for parameter attribute is invalid. Unknown attribute.",
        shown(attribute)
    ))
}

/// The one instance a request names (`InstanceId`), the caller's.
async fn instance(cx: &Ctx<'_>) -> Result<InstanceRow, Ec2Error> {
    let id = cx.params.required("InstanceId")?.to_owned();
    if !ids::is_id("i", &id) {
        return Err(Ec2Error::client(
            "InvalidInstanceID.Malformed",
            format!("Invalid id: \"{}\"", shown(&id)),
        ));
    }
    find(cx, std::slice::from_ref(&id))
        .await?
        .pop()
        .ok_or_else(|| Ec2Error::internal("instance vanished"))
}

/// ModifyInstanceAttribute: one attribute of one of the caller's instances.
pub async fn modify_instance_attribute(cx: &Ctx<'_>) -> Result<String, Ec2Error> {
    let i = instance(cx).await?;
    let change = change(cx).await?;
    cx.dry_run()?;
    app::modify(cx.cloud, &cx.rpc_context(), &i, change).await?;
    Ok(cx.ok())
}

/// `<element><value>v</value></element>` (no `value` when there is none).
fn value(x: &mut Xml, element: &str, v: Option<&str>) {
    x.open(element);
    if let Some(v) = v {
        x.text("value", v);
    }
    x.close(element);
}

/// `<element><value>true|false</value></element>`.
fn flag(x: &mut Xml, element: &str, v: bool) {
    x.open(element).value("value", v).close(element);
}

/// DescribeInstanceAttribute: one attribute of one of the caller's
/// instances, from what is stored.
pub async fn describe_instance_attribute(cx: &Ctx<'_>) -> Result<String, Ec2Error> {
    let i = instance(cx).await?;
    let attribute = cx.params.required("Attribute")?;
    let mut x = cx.response();
    x.text("instanceId", &i.ec2_id);
    let a = &i.attributes;
    match attribute {
        "instanceType" => value(&mut x, "instanceType", Some(&i.instance_type)),
        "userData" => value(&mut x, "userData", i.user_data.as_deref()),
        "kernel" => value(&mut x, "kernel", i.kernel_id.as_deref()),
        "ramdisk" => value(&mut x, "ramdisk", i.ramdisk_id.as_deref()),
        "rootDeviceName" => value(&mut x, "rootDeviceName", Some("/dev/vda")),
        "sriovNetSupport" => value(&mut x, "sriovNetSupport", None),
        "disableApiTermination" => flag(&mut x, "disableApiTermination", a.disable_api_termination),
        "sourceDestCheck" => flag(&mut x, "sourceDestCheck", a.source_dest_check),
        "ebsOptimized" => flag(&mut x, "ebsOptimized", false),
        "enaSupport" => flag(&mut x, "enaSupport", false),
        "disableApiStop" => flag(&mut x, "disableApiStop", false),
        "instanceInitiatedShutdownBehavior" => value(
            &mut x,
            "instanceInitiatedShutdownBehavior",
            Some(&a.shutdown_behavior.to_string()),
        ),
        // Instance-store roots: no EBS mappings, and no product codes.
        "blockDeviceMapping" | "productCodes" => {
            x.open(attribute).close(attribute);
        }
        "enclaveOptions" => {
            x.open("enclaveOptions")
                .value("enabled", false)
                .close("enclaveOptions");
        }
        "groupSet" => {
            x.list("groupSet", &i.groups, |x, (id, name)| {
                x.text("groupId", id).text("groupName", name);
            });
        }
        other => return Err(unknown(other)),
    }
    Ok(cx.finish(x))
}
