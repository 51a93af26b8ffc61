//! The EC2 Query API: parameters in, XML out. `server.rs` speaks HTTP and
//! checks signatures; `actions/` holds one file per kind of resource; the
//! rest is what actions share.

pub mod actions;
pub mod error;
pub mod filters;
pub mod ids;
pub mod params;
pub mod server;
pub mod xml;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use stratus_rpc::clients::{ComputeClient, NetworkClient, SchedulerClient};
use stratus_rpc::{RequestContext, RpcClient};

use crate::config::ApiConfig;
use crate::db::locks::ProjectLock;
use crate::db::{Db, DbError};
use error::Ec2Error;
use params::Params;

/// Who made a request, as its access key says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The project acted in.
    pub project_id: String,
    /// The user.
    pub user_id: String,
    /// May force hosts.
    pub is_admin: bool,
}

/// The zones of the hosts up, as the scheduler last told, and when.
#[derive(Debug, Default)]
pub struct Zones {
    /// Zone names, sorted.
    pub names: Vec<String>,
    /// When the scheduler answered.
    pub asked: Option<std::time::Instant>,
}

/// The cloud controller: the database, the settings and the services the
/// actions call.
#[derive(Debug)]
pub struct Cloud {
    /// The cloud's tables.
    pub db: Db,
    /// `[api]`.
    pub config: ApiConfig,
    /// Where instances are sent to be placed.
    pub scheduler: SchedulerClient,
    /// Compute hosts, for what happens to running instances.
    pub compute: ComputeClient,
    /// The network host, which maps public addresses to instances.
    pub network: NetworkClient,
    /// Zones, cached from the scheduler's view of hosts, and when asked.
    pub zones: Mutex<Zones>,
    /// One lock per project: quota checks and the inserts they allow run one
    /// at a time per project, so two requests cannot both fit the last slot.
    project_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Cloud {
    /// A controller over `db`, talking to the other services over `rpc`.
    pub fn new(db: Db, config: ApiConfig, rpc: RpcClient) -> Self {
        Self {
            db,
            config,
            scheduler: SchedulerClient::new(rpc.clone()),
            compute: ComputeClient::new(rpc.clone()),
            network: NetworkClient::new(rpc),
            zones: Mutex::new(Zones::default()),
            project_locks: Mutex::new(HashMap::new()),
        }
    }

    /// Waits for the project's lock: in this process (see `project_locks`)
    /// and then, on PostgreSQL, across every api process on the database.
    pub async fn lock_project(&self, project_id: &str) -> Result<ProjectGuard, DbError> {
        let local = self
            .project_locks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(project_id.to_owned())
            .or_default()
            .clone();
        // The local lock first: one connection per project waits on the
        // database's lock, not one per request.
        let local = local.lock_owned().await;
        let shared = self.db.lock_project(project_id).await?;
        Ok(ProjectGuard {
            shared,
            _local: local,
        })
    }
}

/// A project's lock, held until released or dropped.
#[derive(Debug)]
pub struct ProjectGuard {
    shared: ProjectLock,
    _local: tokio::sync::OwnedMutexGuard<()>,
}

impl ProjectGuard {
    /// Lets the lock go now; dropping it does too, a moment later on
    /// PostgreSQL (when its connection goes back to the pool).
    pub async fn release(self) -> Result<(), DbError> {
        self.shared.release().await
    }
}

/// One request being answered.
#[derive(Debug)]
pub struct Ctx<'a> {
    /// The controller.
    pub cloud: &'a Cloud,
    /// Who asks.
    pub caller: &'a Caller,
    /// The parameters.
    pub params: &'a Params,
    /// `Action`.
    pub action: &'a str,
    /// The request id in responses and logs.
    pub request_id: &'a str,
}

impl Ctx<'_> {
    /// The RPC context carrying this request's ids and the caller.
    pub fn rpc_context(&self) -> RequestContext {
        RequestContext {
            request_id: self.request_id.to_owned(),
            project_id: self.caller.project_id.parse().ok(),
            user_id: self.caller.user_id.parse().ok(),
            is_admin: self.caller.is_admin,
        }
    }

    /// A response document for this action.
    pub fn response(&self) -> xml::Xml {
        xml::Xml::response(self.action, self.request_id)
    }

    /// Finishes a response document.
    pub fn finish(&self, xml: xml::Xml) -> String {
        xml.finish(self.action)
    }

    /// Ends a validated request with `DryRunOperation` when `DryRun=true`.
    pub fn dry_run(&self) -> Result<(), Ec2Error> {
        if self.params.flag("DryRun")? {
            return Err(Ec2Error::dry_run());
        }
        Ok(())
    }

    /// A plain `<return>true</return>` response.
    pub fn ok(&self) -> String {
        let mut x = self.response();
        x.value("return", true);
        self.finish(x)
    }
}

/// Every one of `wanted` is `found`, else `missing` of the first one that
/// is not (Describe… with ids or names the project does not have).
pub fn all_found(
    wanted: &[String],
    found: impl Fn(&String) -> bool,
    missing: impl Fn(&str) -> Ec2Error,
) -> Result<(), Ec2Error> {
    match wanted.iter().find(|w| !found(w)) {
        Some(w) => Err(missing(w)),
        None => Ok(()),
    }
}

/// The actions `dispatch` knows.
pub const ACTIONS: &[&str] = &[
    "RunInstances",
    "DescribeInstances",
    "DescribeInstanceStatus",
    "DescribeInstanceAttribute",
    "ModifyInstanceAttribute",
    "TerminateInstances",
    "RebootInstances",
    "StopInstances",
    "StartInstances",
    "GetConsoleOutput",
    "CreateKeyPair",
    "ImportKeyPair",
    "DescribeKeyPairs",
    "DeleteKeyPair",
    "CreateSecurityGroup",
    "DeleteSecurityGroup",
    "DescribeSecurityGroups",
    "AuthorizeSecurityGroupIngress",
    "RevokeSecurityGroupIngress",
    "AuthorizeSecurityGroupEgress",
    "RevokeSecurityGroupEgress",
    "DescribeSecurityGroupRules",
    "UpdateSecurityGroupRuleDescriptionsIngress",
    "UpdateSecurityGroupRuleDescriptionsEgress",
    "RegisterImage",
    "DescribeImages",
    "DeregisterImage",
    "CreateTags",
    "DeleteTags",
    "DescribeTags",
    "DescribeAvailabilityZones",
    "DescribeRegions",
    "DescribeInstanceTypes",
    "DescribeAccountAttributes",
    "AllocateAddress",
    "AssociateAddress",
    "DisassociateAddress",
    "ReleaseAddress",
    "DescribeAddresses",
    "DescribeVpcs",
    "DescribeVpcAttribute",
    "DescribeSubnets",
    "DescribeNetworkInterfaces",
];

/// Runs one action.
pub async fn dispatch(cx: &Ctx<'_>) -> Result<String, Ec2Error> {
    use actions::*;
    match cx.action {
        "RunInstances" => run::run_instances(cx).await,
        "DescribeInstances" => instances::describe_instances(cx).await,
        "DescribeInstanceStatus" => instances::describe_instance_status(cx).await,
        "DescribeInstanceAttribute" => attributes::describe_instance_attribute(cx).await,
        "ModifyInstanceAttribute" => attributes::modify_instance_attribute(cx).await,
        "TerminateInstances" => lifecycle::terminate_instances(cx).await,
        "RebootInstances" => lifecycle::reboot_instances(cx).await,
        "StopInstances" => lifecycle::stop_instances(cx).await,
        "StartInstances" => lifecycle::start_instances(cx).await,
        "GetConsoleOutput" => lifecycle::get_console_output(cx).await,
        "CreateKeyPair" => keypairs::create_key_pair(cx).await,
        "ImportKeyPair" => keypairs::import_key_pair(cx).await,
        "DescribeKeyPairs" => keypairs::describe_key_pairs(cx).await,
        "DeleteKeyPair" => keypairs::delete_key_pair(cx).await,
        "CreateSecurityGroup" => groups::create_security_group(cx).await,
        "DeleteSecurityGroup" => groups::delete_security_group(cx).await,
        "DescribeSecurityGroups" => groups::describe_security_groups(cx).await,
        "AuthorizeSecurityGroupIngress" => groups::authorize_ingress(cx).await,
        "RevokeSecurityGroupIngress" => groups::revoke_ingress(cx).await,
        "AuthorizeSecurityGroupEgress" => groups::authorize_egress(cx).await,
        "RevokeSecurityGroupEgress" => groups::revoke_egress(cx).await,
        "DescribeSecurityGroupRules" => rules::describe_security_group_rules(cx).await,
        "UpdateSecurityGroupRuleDescriptionsIngress" => {
            rules::update_descriptions(cx, crate::db::groups::Direction::Ingress).await
        }
        "UpdateSecurityGroupRuleDescriptionsEgress" => {
            rules::update_descriptions(cx, crate::db::groups::Direction::Egress).await
        }
        "RegisterImage" => images::register_image(cx).await,
        "DescribeImages" => images::describe_images(cx).await,
        "DeregisterImage" => images::deregister_image(cx).await,
        "CreateTags" => tags::create_tags(cx).await,
        "DeleteTags" => tags::delete_tags(cx).await,
        "DescribeTags" => tags::describe_tags(cx).await,
        "DescribeAvailabilityZones" => info::describe_availability_zones(cx).await,
        "DescribeRegions" => info::describe_regions(cx).await,
        "DescribeInstanceTypes" => info::describe_instance_types(cx).await,
        "DescribeAccountAttributes" => info::describe_account_attributes(cx).await,
        "AllocateAddress" => addresses::allocate_address(cx).await,
        "AssociateAddress" => addresses::associate_address(cx).await,
        "DisassociateAddress" => addresses::disassociate_address(cx).await,
        "ReleaseAddress" => addresses::release_address(cx).await,
        "DescribeAddresses" => addresses::describe_addresses(cx).await,
        "DescribeVpcs" => vpcs::describe_vpcs(cx).await,
        "DescribeVpcAttribute" => vpcs::describe_vpc_attribute(cx).await,
        "DescribeSubnets" => vpcs::describe_subnets(cx).await,
        "DescribeNetworkInterfaces" => network_interfaces::describe_network_interfaces(cx).await,
        refused if vpcs::REFUSED.contains(&refused) => vpcs::refuse(cx).await,
        other => Err(Ec2Error::client(
            "InvalidAction",
            format!(
                "The action {} is not valid for this web service.",
                params::shown(other)
            ),
        )),
    }
}
