//! STS answers as bytes on the wire: the Query protocol's XML and the JSON
//! protocol's objects, successes and errors alike.

use super::error::StsError;
use super::identity::Identity;
use super::{NAMESPACE, Protocol};
use crate::ec2::xml::Xml;

/// `Content-Type` of the Query protocol's documents.
const XML_TYPE: &str = "text/xml;charset=UTF-8";
/// `Content-Type` of the JSON protocol's bodies.
const JSON_TYPE: &str = "application/x-amz-json-1.0";

/// One answer, ready for HTTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// The body's `Content-Type`.
    pub content_type: &'static str,
    /// The body.
    pub body: String,
    /// `x-amzn-query-error` (JSON-protocol errors only).
    pub query_error: Option<String>,
}

/// The reply to `outcome`, in `protocol`.
pub fn reply(protocol: Protocol, outcome: &Result<Identity, StsError>, request_id: &str) -> Reply {
    match (protocol, outcome) {
        (Protocol::Query, Ok(identity)) => Reply {
            status: 200,
            content_type: XML_TYPE,
            body: caller_identity_xml(identity, request_id),
            query_error: None,
        },
        (Protocol::Json, Ok(identity)) => Reply {
            status: 200,
            content_type: JSON_TYPE,
            body: serde_json::json!({
                "UserId": identity.user_id,
                "Account": identity.account,
                "Arn": identity.arn,
            })
            .to_string(),
            query_error: None,
        },
        (Protocol::Query, Err(e)) => Reply {
            status: e.status,
            content_type: XML_TYPE,
            body: e.to_xml(request_id),
            query_error: None,
        },
        (Protocol::Json, Err(e)) => Reply {
            status: e.status,
            content_type: JSON_TYPE,
            body: e.to_json(),
            query_error: Some(e.query_error()),
        },
    }
}

/// `GetCallerIdentityResponse`, as STS writes it.
fn caller_identity_xml(identity: &Identity, request_id: &str) -> String {
    let mut body = Xml::fragment();
    body.open("GetCallerIdentityResult")
        .text("Arn", &identity.arn)
        .text("UserId", &identity.user_id)
        .text("Account", &identity.account)
        .close("GetCallerIdentityResult")
        .open("ResponseMetadata")
        .text("RequestId", request_id)
        .close("ResponseMetadata");
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <GetCallerIdentityResponse xmlns=\"{NAMESPACE}\">{}</GetCallerIdentityResponse>",
        body.into_string()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_answer_is_stss_document() {
        let me = Identity::of("acme", "alice");
        let r = reply(Protocol::Query, &Ok(me.clone()), "req-1");
        assert_eq!((r.status, r.content_type), (200, XML_TYPE));
        assert_eq!(
            r.body,
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
                 <GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
                 <GetCallerIdentityResult><Arn>{}</Arn><UserId>{}</UserId><Account>{}</Account>\
                 </GetCallerIdentityResult><ResponseMetadata><RequestId>req-1</RequestId>\
                 </ResponseMetadata></GetCallerIdentityResponse>",
                me.arn, me.user_id, me.account
            )
        );
    }

    #[test]
    fn the_json_answer_carries_the_same_identity() {
        let me = Identity::of("acme", "alice");
        let r = reply(Protocol::Json, &Ok(me.clone()), "req-1");
        assert_eq!((r.status, r.content_type), (200, JSON_TYPE));
        let body: serde_json::Value = serde_json::from_str(&r.body).expect("JSON");
        assert_eq!(body["Account"], me.account.as_str());
        assert_eq!(body["Arn"], me.arn.as_str());
        assert_eq!(body["UserId"], me.user_id.as_str());
        let refused = reply(
            Protocol::Json,
            &Err(StsError::client("InvalidAction", "no")),
            "req-2",
        );
        assert_eq!(refused.status, 400);
        assert_eq!(refused.query_error.as_deref(), Some("InvalidAction;Sender"));
    }
}
