//! EC2 errors: a code, a message and an HTTP status, rendered as EC2 does.

use super::xml::Xml;

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
        tracing::error!(error = %e, "database failure");
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
            G::DryRun => Self::dry_run(),
            G::Db(e) => e.into(),
            e @ G::StoredId { .. } => {
                tracing::error!(error = %e, "stored security group");
                Self::internal("An internal error has occurred (stored security group).")
            }
            e @ G::NotDelivered { .. } => {
                tracing::warn!(error = %e, "could not tell the compute hosts about a group change");
                Self::unavailable(
                    "The rule was saved but the compute hosts could not be told; retry the request.",
                )
            }
        }
    }
}
