//! The EC2 endpoint over HTTP: GET or form POST on `/` and
//! `/services/Cloud`, a size limit, the signature check, then the action.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use stratus_rpc::context::new_request_id;
use tracing::{Instrument, info, info_span, warn};

use super::error::Ec2Error;
use super::params::Params;
use super::{Caller, Cloud, Ctx, dispatch};
use crate::auth::{self, SignedRequest};

/// The EC2 API's routes.
pub fn router(cloud: Arc<Cloud>) -> Router {
    Router::new()
        .route("/", any(handle))
        .route("/services/Cloud", any(handle))
        .route("/services/Cloud/", any(handle))
        .with_state(cloud)
}

fn xml_response(status: u16, body: String, request_id: &str) -> Response {
    let mut response = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        body,
    )
        .into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/xml;charset=UTF-8"),
    );
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert("x-amzn-requestid", id);
    }
    response
}

/// Who signed the request, checked against the stored secret.
async fn authenticate(cloud: &Cloud, request: &SignedRequest<'_>) -> Result<Caller, Ec2Error> {
    let to_ec2 = |e: auth::AuthError| Ec2Error::auth(e.code(), e.to_string());
    let claim = auth::claim(request).map_err(to_ec2)?;
    let Some(credential) = cloud.db.credential(&claim.access_key).await? else {
        return Err(Ec2Error::auth(
            "AuthFailure",
            "AWS was not able to validate the provided access credentials",
        ));
    };
    let window = Duration::from_secs(cloud.config.signature_window_secs);
    auth::verify(request, &credential.secret_key, SystemTime::now(), window).map_err(to_ec2)?;
    Ok(Caller {
        project_id: credential.project_id,
        user_id: credential.user_id,
        is_admin: credential.is_admin,
    })
}

async fn handle(
    State(cloud): State<Arc<Cloud>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let request_id = new_request_id();
    let started = Instant::now();
    let limit = cloud.config.max_request_bytes;
    let body = match to_bytes(body, limit).await {
        Ok(body) => body,
        Err(_) => {
            let e = Ec2Error {
                code: "RequestEntityTooLarge",
                message: format!("The request is larger than {limit} bytes."),
                status: 413,
            };
            return xml_response(e.status, e.to_xml(&request_id), &request_id);
        }
    };
    let query = uri.query().unwrap_or("");
    let mut params = Params::parse(query.as_bytes());
    if method == Method::POST {
        params.merge(Params::parse(&body));
    }
    let action = params.get("Action").unwrap_or("").to_owned();
    let span = info_span!("ec2", %request_id, action = %action, project = tracing::field::Empty);
    let result = async {
        if method != Method::GET && method != Method::POST {
            return Err(Ec2Error::client(
                "UnsupportedOperation",
                format!("HTTP {method} is not supported; use GET or POST."),
            ));
        }
        let header_pairs: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let signed = SignedRequest {
            method: method.as_str(),
            path: uri.path(),
            query,
            headers: &header_pairs,
            body: &body,
        };
        let caller = authenticate(&cloud, &signed).await?;
        tracing::Span::current().record("project", caller.project_id.as_str());
        if action.is_empty() {
            return Err(Ec2Error::missing("Action"));
        }
        let cx = Ctx {
            cloud: &cloud,
            caller: &caller,
            params: &params,
            action: &action,
            request_id: &request_id,
        };
        dispatch(&cx).await
    }
    .instrument(span.clone())
    .await;
    let _entered = span.enter();
    let elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
    // Only actions stratus has become labels: anyone can send any Action.
    let known = if super::ACTIONS.contains(&action.as_str()) {
        action.as_str()
    } else {
        "other"
    };
    let status = match &result {
        Ok(_) => "200".to_owned(),
        Err(e) => e.status.to_string(),
    };
    stratus_rpc::metrics::metrics()
        .api_requests
        .get_or_create(&stratus_rpc::metrics::labels(&[
            ("action", known),
            ("status", &status),
        ]))
        .inc();
    match result {
        Ok(xml) => {
            info!(status = 200, elapsed_ms, "request");
            xml_response(200, xml, &request_id)
        }
        Err(e) => {
            if e.status >= 500 {
                warn!(status = e.status, code = e.code, message = %e.message, elapsed_ms, "request failed");
            } else {
                info!(status = e.status, code = e.code, message = %e.message, elapsed_ms, "request refused");
            }
            xml_response(e.status, e.to_xml(&request_id), &request_id)
        }
    }
}
