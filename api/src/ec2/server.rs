//! The EC2 endpoint over HTTP: GET or form POST on `/` and
//! `/services/Cloud`, size limits, the signature check, the replay check,
//! then the action.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::{Body, Bytes, to_bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use stratus_rpc::context::new_request_id;
use tracing::{Instrument, debug, info, info_span, warn};

use super::error::Ec2Error;
use super::params::{Params, check_count};
use super::{Caller, Cloud, Ctx, dispatch};
use crate::auth::replay::ReplayGuard;
use crate::auth::{self, SignedRequest};

/// What every request is answered with: the controller, and the signatures
/// already accepted.
struct Endpoint {
    cloud: Arc<Cloud>,
    replays: ReplayGuard,
}

/// The EC2 API's routes, refusing replays as [`ReplayGuard::new`] does.
pub fn router(cloud: Arc<Cloud>) -> Router {
    let window = Duration::from_secs(cloud.config.signature_window_secs);
    router_with(cloud, ReplayGuard::new(window))
}

/// The EC2 API's routes with a replay guard of the caller's choosing.
pub fn router_with(cloud: Arc<Cloud>, replays: ReplayGuard) -> Router {
    Router::new()
        .route("/", any(handle))
        .route("/services/Cloud", any(handle))
        .route("/services/Cloud/", any(handle))
        .with_state(Arc::new(Endpoint { cloud, replays }))
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

/// Who signed the request, checked against the stored secret, and that the
/// signature was not accepted before.
async fn authenticate(
    endpoint: &Endpoint,
    request: &SignedRequest<'_>,
) -> Result<Caller, Ec2Error> {
    let cloud = &endpoint.cloud;
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
    // Only verified signatures are remembered, so strangers cannot fill the guard.
    endpoint
        .replays
        .admit(request, &claim.access_key, Instant::now())
        .map_err(to_ec2)?;
    Ok(Caller {
        project_id: credential.project_id,
        user_id: credential.user_id,
        is_admin: credential.is_admin,
    })
}

fn too_large(limit: usize) -> Ec2Error {
    Ec2Error {
        code: "RequestEntityTooLarge",
        message: format!("The request is larger than {limit} bytes."),
        status: 413,
    }
}

/// A body that did not arrive in time; botocore's standard retry mode
/// counts this code as transient.
fn too_slow(patience: Duration) -> Ec2Error {
    Ec2Error {
        code: "RequestTimeout",
        message: format!(
            "The request body did not arrive within {} s.",
            patience.as_secs()
        ),
        status: 408,
    }
}

/// The request's body within the size limit and the read timeout; a query
/// over the limit is refused first (GET carries parameters there).
async fn read_body(cloud: &Cloud, query: &str, body: Body) -> Result<Bytes, Ec2Error> {
    let limit = cloud.config.max_request_bytes;
    if query.len() > limit {
        return Err(too_large(limit));
    }
    let patience = Duration::from_secs(cloud.config.read_timeout_secs.max(1));
    match tokio::time::timeout(patience, to_bytes(body, limit)).await {
        Ok(Ok(body)) => Ok(body),
        Ok(Err(_)) => Err(too_large(limit)),
        Err(_) => Err(too_slow(patience)),
    }
}

/// One HTTP request as the signature checks see it.
struct Request<'a> {
    method: &'a Method,
    uri: &'a Uri,
    headers: &'a HeaderMap,
    body: &'a [u8],
}

/// Authenticates the request, then runs its action.
async fn answer(
    endpoint: &Endpoint,
    request: &Request<'_>,
    parsed: Result<Params, Ec2Error>,
    action: &str,
    request_id: &str,
) -> Result<String, Ec2Error> {
    let method = request.method;
    if method != Method::GET && method != Method::POST {
        return Err(Ec2Error::client(
            "UnsupportedOperation",
            format!("HTTP {method} is not supported; use GET or POST."),
        ));
    }
    let header_pairs: Vec<(String, String)> = request
        .headers
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
        path: request.uri.path(),
        query: request.uri.query().unwrap_or(""),
        headers: &header_pairs,
        body: request.body,
    };
    let caller = authenticate(endpoint, &signed).await?;
    tracing::Span::current().record("project", caller.project_id.as_str());
    let params = parsed?;
    if action.is_empty() {
        return Err(Ec2Error::missing("Action"));
    }
    let cx = Ctx {
        cloud: &endpoint.cloud,
        caller: &caller,
        params: &params,
        action,
        request_id,
    };
    dispatch(&cx).await
}

/// Counts, logs and renders the outcome of one request.
fn respond(
    result: Result<String, Ec2Error>,
    action: &str,
    request_id: &str,
    started: Instant,
) -> Response {
    let elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
    // Only actions stratus has become labels: anyone can send any Action.
    let known = if super::ACTIONS.contains(&action) {
        action
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
            // Clients poll reads (waiters, the all-in-one's demo) every
            // second or so: at info they would bury every change.
            if action.starts_with("Describe") || action.starts_with("Get") {
                debug!(status = 200, elapsed_ms, "request");
            } else {
                info!(status = 200, elapsed_ms, "request");
            }
            xml_response(200, xml, request_id)
        }
        Err(e) => {
            if e.status >= 500 {
                warn!(status = e.status, code = e.code, message = %e.message, elapsed_ms, "request failed");
            } else {
                info!(status = e.status, code = e.code, message = %e.message, elapsed_ms, "request refused");
            }
            xml_response(e.status, e.to_xml(request_id), request_id)
        }
    }
}

async fn handle(
    State(endpoint): State<Arc<Endpoint>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let request_id = new_request_id();
    let started = Instant::now();
    let query = uri.query().unwrap_or("");
    let refuse = |e: Ec2Error| xml_response(e.status, e.to_xml(&request_id), &request_id);
    let body = match read_body(&endpoint.cloud, query, body).await {
        Ok(body) => body,
        Err(e) => return refuse(e),
    };
    let form = (method == Method::POST).then_some(&body[..]);
    // Before the verifiers, which split the same text into pairs of their own.
    if let Err(e) = check_count(query.as_bytes(), form) {
        return refuse(e);
    }
    // Refused only once the caller is known, so a stranger learns nothing.
    let parsed = Params::from_request(query.as_bytes(), form);
    let action = parsed
        .as_ref()
        .ok()
        .and_then(|p| p.get("Action"))
        .unwrap_or("")
        .to_owned();
    let span = info_span!("ec2", %request_id, action = %action, project = tracing::field::Empty);
    let request = Request {
        method: &method,
        uri: &uri,
        headers: &headers,
        body: &body,
    };
    let result = answer(&endpoint, &request, parsed, &action, &request_id)
        .instrument(span.clone())
        .await;
    let _entered = span.enter();
    respond(result, &action, &request_id, started)
}
