//! STS errors: a code, a message and an HTTP status, written as STS writes
//! them in each protocol (`ErrorResponse/Error/{Type,Code,Message}` for the
//! Query protocol, `__type` and `message` for the JSON one).

use crate::auth::AuthError;
use crate::ec2::error::Ec2Error;
use crate::ec2::xml::Xml;

use super::NAMESPACE;

/// The prefix of a JSON error's `__type`, as STS's Smithy model names it.
const JSON_TYPE_PREFIX: &str = "com.amazonaws.sts#";

/// An error an STS client understands.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct StsError {
    /// `InvalidClientTokenId`, `SignatureDoesNotMatch`, `InvalidAction`, …
    pub code: &'static str,
    /// For people.
    pub message: String,
    /// The HTTP status STS uses for it.
    pub status: u16,
}

impl StsError {
    /// A client error (400).
    pub fn client(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            status: 400,
        }
    }

    /// `Sender` for the client's mistakes, `Receiver` for the service's.
    pub fn fault(&self) -> &'static str {
        if self.status >= 500 {
            "Receiver"
        } else {
            "Sender"
        }
    }

    /// The Query protocol's error document.
    pub fn to_xml(&self, request_id: &str) -> String {
        let mut body = Xml::fragment();
        body.open("Error")
            .text("Type", self.fault())
            .text("Code", self.code)
            .text("Message", &self.message)
            .close("Error")
            .text("RequestId", request_id);
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <ErrorResponse xmlns=\"{NAMESPACE}\">{}</ErrorResponse>",
            body.into_string()
        )
    }

    /// The JSON protocol's error body.
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "__type": format!("{JSON_TYPE_PREFIX}{}", self.code),
            "message": self.message,
        })
        .to_string()
    }

    /// The `x-amzn-query-error` header a query-compatible JSON service
    /// sends, from which botocore reads the Query protocol's code.
    pub fn query_error(&self) -> String {
        format!("{};{}", self.code, self.fault())
    }
}

impl From<AuthError> for StsError {
    /// What STS answers each signature failure with (403 for a credential
    /// or signature it rejects, as STS does, where EC2 says 401 or 400).
    fn from(e: AuthError) -> Self {
        let (code, status, message) = match &e {
            AuthError::Unsigned => (
                "MissingAuthenticationToken",
                403,
                "Request is missing Authentication Token".to_owned(),
            ),
            AuthError::UnknownKey => (
                "InvalidClientTokenId",
                403,
                "The security token included in the request is invalid.".to_owned(),
            ),
            AuthError::Mismatch => ("SignatureDoesNotMatch", 403, e.to_string()),
            AuthError::Expired(detail) => (
                "SignatureDoesNotMatch",
                403,
                format!("Signature expired: {detail}"),
            ),
            AuthError::Replayed(_) => ("AccessDenied", 403, e.to_string()),
            AuthError::Incomplete(_) | AuthError::Unsupported(_) => (e.code(), 400, e.to_string()),
        };
        Self {
            code,
            message,
            status,
        }
    }
}

impl From<Ec2Error> for StsError {
    /// Refusals the endpoint makes before it knows the API (size, time,
    /// malformed parameters) keep their code, but server faults take the
    /// names the Query APIs other than EC2 use.
    fn from(e: Ec2Error) -> Self {
        let code = match e.code {
            "InternalError" => "InternalFailure",
            "Unavailable" => "ServiceUnavailable",
            other => other,
        };
        Self {
            code,
            message: e.message,
            status: e.status,
        }
    }
}

impl From<crate::db::DbError> for StsError {
    fn from(e: crate::db::DbError) -> Self {
        Ec2Error::from(e).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_error_document_is_stss() {
        let e = StsError::from(AuthError::UnknownKey);
        assert_eq!((e.code, e.status), ("InvalidClientTokenId", 403));
        assert_eq!(
            e.to_xml("req-1"),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
             <Error><Type>Sender</Type><Code>InvalidClientTokenId</Code>\
             <Message>The security token included in the request is invalid.</Message>\
             </Error><RequestId>req-1</RequestId></ErrorResponse>"
        );
    }

    #[test]
    fn the_json_error_names_its_type_and_query_code() {
        let e = StsError::client("InvalidAction", "no <such> action");
        let body: serde_json::Value = serde_json::from_str(&e.to_json()).expect("JSON");
        assert_eq!(body["__type"], "com.amazonaws.sts#InvalidAction");
        assert_eq!(body["message"], "no <such> action");
        assert_eq!(e.query_error(), "InvalidAction;Sender");
        let down = StsError::from(Ec2Error::unavailable("later"));
        assert_eq!(
            (down.code, down.fault()),
            ("ServiceUnavailable", "Receiver")
        );
    }

    #[test]
    fn signature_failures_are_refused_as_sts_refuses_them() {
        for (failure, code, status) in [
            (AuthError::Unsigned, "MissingAuthenticationToken", 403),
            (AuthError::Mismatch, "SignatureDoesNotMatch", 403),
            (
                AuthError::Expired("then".into()),
                "SignatureDoesNotMatch",
                403,
            ),
            (
                AuthError::Incomplete("x".into()),
                "IncompleteSignature",
                400,
            ),
            (AuthError::Replayed("1s ago".into()), "AccessDenied", 403),
        ] {
            let e = StsError::from(failure);
            assert_eq!((e.code, e.status), (code, status), "{e}");
        }
    }
}
