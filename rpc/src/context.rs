//! The request context every message carries, so one request can be followed
//! across services.

use serde::{Deserialize, Serialize};

use crate::wire::ids::{ProjectId, UserId};

/// Who asked for this work and under which request id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestContext {
    /// `req-<uuid>`, created where the request entered the cloud.
    pub request_id: String,
    /// The project on whose behalf the work is done; none for system work.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<ProjectId>,
    /// The user who made the request; none for system work.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<UserId>,
    /// Whether the caller is a cloud administrator (may force a host).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_admin: bool,
}

impl RequestContext {
    /// A context for work a service starts itself (periodic tasks, reports).
    pub fn system() -> Self {
        Self {
            request_id: new_request_id(),
            project_id: None,
            user_id: None,
            is_admin: false,
        }
    }

    /// A context for a user's request.
    pub fn for_user(project_id: ProjectId, user_id: UserId) -> Self {
        Self {
            request_id: new_request_id(),
            project_id: Some(project_id),
            user_id: Some(user_id),
            is_admin: false,
        }
    }
}

/// A fresh request id in EC2's style.
pub fn new_request_id() -> String {
    format!("req-{}", uuid::Uuid::new_v4())
}
