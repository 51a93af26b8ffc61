//! EC2 errors: a code, a message and an HTTP status, rendered as EC2 does.

use stratus_rpc::RpcError;
use stratus_rpc::wire::conductor::InstanceEvent;

use super::xml::Xml;
use crate::app::instances::InstanceError;
use crate::app::quota::QuotaError;

/// An error an EC2 client understands.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Ec2Error {
    /// `InvalidParameterValue`, `InvalidInstanceID.NotFound`, …
    pub code: &'static str,
    /// For people.
    pub message: String,
    /// The HTTP status EC2 uses for it.
    pub status: u16,
}

impl Ec2Error {
    /// A client error (400).
    pub fn client(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            status: 400,
        }
    }

    /// `InvalidParameterValue`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::client("InvalidParameterValue", message)
    }

    /// `MissingParameter` for `name`.
    pub fn missing(name: &str) -> Self {
        Self::client(
            "MissingParameter",
            format!("The request must contain the parameter {name}"),
        )
    }

    /// An authentication error, with the status EC2 gives its code.
    pub fn auth(code: &'static str, message: impl Into<String>) -> Self {
        let status = match code {
            "AuthFailure" | "MissingAuthenticationToken" => 401,
            "SignatureDoesNotMatch" => 403,
            _ => 400,
        };
        Self {
            code,
            message: message.into(),
            status,
        }
    }

    /// A server-side failure (500), with a message safe to show.
    pub fn internal(message: impl Into<String>) -> Self {
        Self {
            code: "InternalError",
            message: message.into(),
            status: 500,
        }
    }

    /// A dependency (broker, database) is down (503).
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self {
            code: "Unavailable",
            message: message.into(),
            status: 503,
        }
    }

    /// `DryRunOperation`: the request would have succeeded.
    pub fn dry_run() -> Self {
        Self {
            code: "DryRunOperation",
            message: "Request would have succeeded, but DryRun flag is set.".into(),
            status: 412,
        }
    }

    /// The EC2 error document.
    pub fn to_xml(&self, request_id: &str) -> String {
        let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let mut body = Xml::fragment();
        body.open("Response").open("Errors").open("Error");
        body.text("Code", self.code).text("Message", &self.message);
        body.close("Error").close("Errors");
        body.text("RequestID", request_id).close("Response");
        x.push_str(&body.into_string());
        x
    }
}

impl From<crate::db::DbError> for Ec2Error {
    fn from(e: crate::db::DbError) -> Self {
        tracing::error!(error = %stratus_rpc::error::error_chain(&e), "database failure");
        Self::internal("An internal error has occurred (database).")
    }
}

impl From<crate::app::security_groups::GroupError> for Ec2Error {
    fn from(e: crate::app::security_groups::GroupError) -> Self {
        use crate::app::security_groups::GroupError as G;
        match e {
            G::NotFound(what) => Self::client(
                "InvalidGroup.NotFound",
                format!(
                    "The security group '{}' does not exist",
                    super::params::shown(&what)
                ),
            ),
            G::InvalidRule { source, .. } => Self::invalid(source.to_string()),
            G::Duplicate(group) => Self::client(
                "InvalidPermission.Duplicate",
                format!("The specified rule already exists in security group {group}"),
            ),
            G::RuleNotFound(_) => Self::client(
                "InvalidPermission.NotFound",
                "The specified rule does not exist in this security group.",
            ),
            G::RuleIdNotFound(id) => Self::client(
                "InvalidSecurityGroupRuleId.NotFound",
                format!(
                    "The security group rule ID '{}' does not exist",
                    super::params::shown(&id)
                ),
            ),
            G::DryRun => Self::dry_run(),
            G::Db(e) => e.into(),
            e @ G::StoredId { .. } => {
                tracing::error!(error = %stratus_rpc::error::error_chain(&e), "stored security group");
                Self::internal("An internal error has occurred (stored security group).")
            }
            e @ G::NotDelivered { .. } => {
                tracing::warn!(error = %stratus_rpc::error::error_chain(&e), "could not tell the compute hosts about a group change");
                Self::unavailable(
                    "The rule was saved but the compute hosts could not be told; retry the request.",
                )
            }
        }
    }
}

/// The one conversion of an RPC failure into what a client sees: what could
/// not be asked (`subject`, in the client's words), never the queue, topic,
/// routing key or host behind it, which go to the log.
pub fn rpc_failure(subject: &str, e: &RpcError) -> Ec2Error {
    tracing::warn!(error = %stratus_rpc::error::error_chain(e), subject, "an RPC failed");
    match e {
        RpcError::Remote { source, .. } if source.kind == "IncorrectInstanceState" => {
            Ec2Error::client(
                "IncorrectInstanceState",
                format!("{subject} refused: the instance is not in a state for this request."),
            )
        }
        RpcError::Remote { source, .. } => {
            Ec2Error::internal(format!("{subject} could not do it ({}).", source.kind))
        }
        RpcError::Encode { .. } | RpcError::Decode { .. } => {
            Ec2Error::internal(format!("An internal error has occurred asking {subject}."))
        }
        _ => Ec2Error::unavailable(format!("Could not reach {subject}; try again.")),
    }
}

impl From<InstanceError> for Ec2Error {
    fn from(e: InstanceError) -> Self {
        match e {
            InstanceError::IncorrectState { instance, source } => {
                let asked = match source.event {
                    InstanceEvent::Stop => "stop",
                    InstanceEvent::Start => "start",
                    InstanceEvent::Reboot => "reboot",
                    InstanceEvent::Terminate { .. } => "terminate",
                    InstanceEvent::Reported(_) | InstanceEvent::BuildFailed => "change",
                };
                Self::client(
                    "IncorrectInstanceState",
                    format!(
                        "The instance '{instance}' is not in a state from which it can be asked to {asked}."
                    ),
                )
            }
            InstanceError::HostUnreachable { instance, source } => {
                rpc_failure(&format!("the host of {instance}"), &source)
            }
            e @ InstanceError::NotScheduled { .. } => {
                tracing::warn!(error = %stratus_rpc::error::error_chain(&e), "launch not scheduled");
                Self::unavailable(
                    "The instances could not be scheduled now; they are in error. Try again.",
                )
            }
            InstanceError::InsufficientCapacity {
                instance,
                instance_type,
            } => Self {
                code: "InsufficientInstanceCapacity",
                message: format!(
                    "There is not enough capacity to start the instance '{instance}' as {instance_type}. It stays stopped; try again later, or change its instance type."
                ),
                // EC2 answers it as a server error.
                status: 500,
            },
            InstanceError::Protected { instance } => Self::client(
                "OperationNotPermitted",
                format!(
                    "The instance '{instance}' may not be terminated. Modify its 'disableApiTermination' instance attribute and try again."
                ),
            ),
            InstanceError::AddressInUse { address, .. } => Self::client(
                "InvalidIPAddress.InUse",
                format!("Address {address} is in use."),
            ),
            InstanceError::Quota(e) => e.into(),
            InstanceError::Group(e) => e.into(),
            InstanceError::Db(e) => e.into(),
        }
    }
}

impl From<QuotaError> for Ec2Error {
    fn from(e: QuotaError) -> Self {
        match e {
            QuotaError::Vcpus { limit, used } => Self::client(
                "VcpuLimitExceeded",
                format!(
                    "You have requested more vCPU capacity than your current vCPU limit of {limit} allows ({used} in use)."
                ),
            ),
            QuotaError::Memory { limit, used } => Self::client(
                "InstanceLimitExceeded",
                format!(
                    "You have requested more memory than your current limit of {limit} MiB allows ({used} MiB in use)."
                ),
            ),
            QuotaError::Instances { asked, limit, used } => Self::client(
                "InstanceLimitExceeded",
                format!(
                    "You have requested more instances ({asked}) than your current instance limit of {limit} allows for the specified instance type ({used} in use)."
                ),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use stratus_rpc::{RemoteError, RpcError};

    use super::*;

    /// Every way a call to a compute host can fail, naming its routing key
    /// and host as the bus does.
    fn failures() -> Vec<RpcError> {
        let target =
            || stratus_rpc::Target::host("compute", "node7".parse().expect("a valid host name"));
        let method = || "stop_instance".to_owned();
        vec![
            RpcError::Timeout {
                target: target(),
                method: method(),
                timeout: Duration::from_secs(5),
            },
            RpcError::Remote {
                target: target(),
                method: method(),
                source: RemoteError::new("DriverError", "virsh on node7 (compute.node7) failed"),
            },
            RpcError::Remote {
                target: target(),
                method: method(),
                source: RemoteError::new("IncorrectInstanceState", "node7 says no"),
            },
            RpcError::ConnectionLost {
                target: target(),
                method: method(),
            },
            RpcError::Nacked {
                target: target(),
                method: method(),
            },
            RpcError::Closed,
        ]
    }

    #[test]
    fn rpc_failures_reach_clients_without_internal_names() {
        for failure in failures() {
            let shown = Ec2Error::from(InstanceError::HostUnreachable {
                instance: "i-00000001".into(),
                source: Box::new(failure),
            });
            let document = shown.to_xml("req-1");
            assert!(document.contains("i-00000001"), "{document}");
            for internal in ["compute.", "node7", "stop_instance"] {
                assert!(!document.contains(internal), "{internal} in {document}");
            }
        }
    }

    #[test]
    fn an_unscheduled_launch_names_no_queue() {
        let shown = Ec2Error::from(InstanceError::NotScheduled {
            reservation: "r-1".into(),
            source: Box::new(RpcError::Timeout {
                target: stratus_rpc::Target::topic("scheduler"),
                method: "run_instance".into(),
                timeout: Duration::from_secs(1),
            }),
        });
        assert_eq!(shown.status, 503);
        assert!(!shown.message.contains("run_instance"), "{shown}");
    }
}
