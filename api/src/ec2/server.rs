//! The EC2 endpoint over HTTP: GET or form POST on `/` and
//! `/services/Cloud`, size limits, the signature check, the replay check,
//! then the action: EC2's, or STS's for a request STS is asked (scoped to
//! `sts`, naming STS in `X-Amz-Target`, or asking its action and version).

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
use crate::auth::{self, AuthError, SignedRequest, sigv4};
use crate::db::DbError;
use crate::sts::error::StsError;
use crate::sts::identity::Identity;
use crate::sts::reply::Reply;
use crate::sts::{self, Protocol};

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

/// Why a caller was not admitted: its signature, or the store behind the
/// keys. Each API turns it into its own error.
enum Refused {
    Auth(AuthError),
    Store(DbError),
}

impl From<Refused> for Ec2Error {
    fn from(r: Refused) -> Self {
        match r {
            Refused::Auth(e) => Ec2Error::auth(e.code(), e.to_string()),
            Refused::Store(e) => e.into(),
        }
    }
}

impl From<Refused> for StsError {
    fn from(r: Refused) -> Self {
        match r {
            Refused::Auth(e) => e.into(),
            Refused::Store(e) => e.into(),
        }
    }
}

/// Who signed the request (its SigV4 scope naming `service`), checked
/// against the stored secret, and that the signature was not accepted before.
async fn authenticate(
    endpoint: &Endpoint,
    request: &SignedRequest<'_>,
    service: &str,
) -> Result<Caller, Refused> {
    let cloud = &endpoint.cloud;
    let claim = auth::claim(request).map_err(Refused::Auth)?;
    let credential = cloud
        .db
        .credential(&claim.access_key)
        .await
        .map_err(Refused::Store)?
        .ok_or(Refused::Auth(AuthError::UnknownKey))?;
    let window = Duration::from_secs(cloud.config.signature_window_secs);
    auth::verify_for(
        request,
        &credential.secret_key,
        SystemTime::now(),
        window,
        service,
    )
    .map_err(Refused::Auth)?;
    // Only verified signatures are remembered, so strangers cannot fill the
    // guard; in a shared database too, so a replay to another replica is
    // refused (one process on SQLite pays no write per request for it).
    if cloud.db.is_shared() {
        endpoint
            .replays
            .admit_shared(request, &claim.access_key, &cloud.db)
            .await
            .map_err(Refused::Store)?
            .map_err(Refused::Auth)?;
    } else {
        endpoint
            .replays
            .admit(request, &claim.access_key, std::time::Instant::now())
            .map_err(Refused::Auth)?;
    }
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
    signed: SignedRequest<'a>,
}

/// Refuses HTTP methods other than GET and POST (POST only, for `post_only`).
fn check_method(method: &Method, post_only: bool) -> Result<(), Ec2Error> {
    if method == Method::POST || (method == Method::GET && !post_only) {
        return Ok(());
    }
    let allowed = if post_only { "POST" } else { "GET or POST" };
    Err(Ec2Error::client(
        "UnsupportedOperation",
        format!("HTTP {method} is not supported; use {allowed}."),
    ))
}

/// Authenticates the request, then runs its EC2 action.
async fn answer(
    endpoint: &Endpoint,
    request: &Request<'_>,
    parsed: Result<Params, Ec2Error>,
    action: &str,
    request_id: &str,
) -> Result<String, Ec2Error> {
    check_method(request.method, false)?;
    let caller = authenticate(endpoint, &request.signed, sigv4::SERVICE).await?;
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

/// Authenticates an STS request (scoped to `sts`), then runs its action;
/// `input` says whether its parameters or body were well-formed, told only
/// once the caller is known.
async fn answer_sts(
    endpoint: &Endpoint,
    request: &Request<'_>,
    protocol: Protocol,
    input: Result<(), StsError>,
    action: &str,
) -> Result<Identity, StsError> {
    check_method(request.method, protocol == Protocol::Json)?;
    let caller = authenticate(endpoint, &request.signed, sigv4::STS_SERVICE).await?;
    tracing::Span::current().record("project", caller.project_id.as_str());
    input?;
    sts::answer(protocol, action, &caller)
}

/// Counts and logs one request's outcome under `label` (an action stratus
/// has, or "other": anyone can send any Action); `refusal` is the status,
/// code and message of a refused one.
fn record(label: &str, refusal: Option<(u16, &str, &str)>, started: Instant) {
    let elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
    let status = refusal.map_or(200, |(status, _, _)| status).to_string();
    stratus_rpc::metrics::metrics()
        .api_requests
        .get_or_create(&stratus_rpc::metrics::labels(&[
            ("action", label),
            ("status", &status),
        ]))
        .inc();
    match refusal {
        // Clients poll reads (waiters, the all-in-one's demo) every
        // second or so: at info they would bury every change.
        None if label.starts_with("Describe") || label.starts_with("Get") => {
            debug!(status = 200, elapsed_ms, "request");
        }
        None => info!(status = 200, elapsed_ms, "request"),
        Some((status, code, message)) if status >= 500 => {
            warn!(status, code, message, elapsed_ms, "request failed");
        }
        Some((status, code, message)) => {
            info!(status, code, message, elapsed_ms, "request refused");
        }
    }
}

/// Counts, logs and renders the outcome of one EC2 request.
fn respond(
    result: Result<String, Ec2Error>,
    action: &str,
    request_id: &str,
    started: Instant,
) -> Response {
    let label = if super::ACTIONS.contains(&action) {
        action
    } else {
        "other"
    };
    match result {
        Ok(xml) => {
            record(label, None, started);
            xml_response(200, xml, request_id)
        }
        Err(e) => {
            record(label, Some((e.status, e.code, &e.message)), started);
            xml_response(e.status, e.to_xml(request_id), request_id)
        }
    }
}

/// An STS reply as HTTP.
fn sts_response(reply: Reply, request_id: &str) -> Response {
    let mut response = (
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        reply.body,
    )
        .into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(reply.content_type),
    );
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert("x-amzn-requestid", id);
    }
    if let Some(code) = reply
        .query_error
        .and_then(|c| HeaderValue::from_str(&c).ok())
    {
        headers.insert("x-amzn-query-error", code);
    }
    response
}

/// Answers an STS request: authenticates, runs, counts, logs, renders.
async fn serve_sts(
    endpoint: &Endpoint,
    request: &Request<'_>,
    protocol: Protocol,
    input: Result<(), StsError>,
    action: &str,
    request_id: &str,
    started: Instant,
) -> Response {
    let span = info_span!("sts", %request_id, action = %action, project = tracing::field::Empty);
    let outcome = answer_sts(endpoint, request, protocol, input, action)
        .instrument(span.clone())
        .await;
    let _entered = span.enter();
    let label = if sts::ACTIONS.contains(&action) {
        action
    } else {
        "other"
    };
    let refusal = outcome
        .as_ref()
        .err()
        .map(|e| (e.status, e.code, e.message.as_str()));
    record(label, refusal, started);
    sts_response(
        sts::reply::reply(protocol, &outcome, request_id),
        request_id,
    )
}

/// The request's headers as the signature checks take them.
fn header_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

/// A refusal made before the parameters are read, in the form of the API
/// the headers say is asked.
fn refuse(early: Option<Protocol>, e: Ec2Error, request_id: &str) -> Response {
    match early {
        Some(protocol) => sts_response(
            sts::reply::reply(protocol, &Err(e.into()), request_id),
            request_id,
        ),
        None => xml_response(e.status, e.to_xml(request_id), request_id),
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
    let headers = header_pairs(&headers);
    // Whether STS is asked, as far as the headers tell: what a refusal
    // before the parameters are read must look like.
    let probe = SignedRequest {
        method: method.as_str(),
        path: uri.path(),
        query,
        headers: &headers,
        body: &[],
    };
    let early = sts::route(&headers, auth::scoped_service(&probe).as_deref());
    let body = match read_body(&endpoint.cloud, query, body).await {
        Ok(body) => body,
        Err(e) => return refuse(early, e, &request_id),
    };
    let request = Request {
        method: &method,
        signed: SignedRequest {
            body: &body,
            ..probe
        },
    };
    serve(&endpoint, &request, early, &request_id, started).await
}

/// Answers a request whose body has arrived: STS's JSON protocol, else its
/// Query parameters decide between STS and EC2.
async fn serve(
    endpoint: &Endpoint,
    request: &Request<'_>,
    early: Option<Protocol>,
    request_id: &str,
    started: Instant,
) -> Response {
    let (query, body) = (request.signed.query, request.signed.body);
    if early == Some(Protocol::Json) {
        let action = sts::target(request.signed.headers).unwrap_or("");
        let input = sts::check_json_body(body);
        let protocol = Protocol::Json;
        return serve_sts(
            endpoint, request, protocol, input, action, request_id, started,
        )
        .await;
    }
    let form = (request.method == Method::POST).then_some(body);
    // Before the verifiers, which split the same text into pairs of their own.
    if let Err(e) = check_count(query.as_bytes(), form) {
        return refuse(early, e, request_id);
    }
    // Refused only once the caller is known, so a stranger learns nothing.
    let parsed = Params::from_request(query.as_bytes(), form);
    let param = |name: &str| {
        parsed
            .as_ref()
            .ok()
            .and_then(|p| p.get(name))
            .map(str::to_owned)
    };
    let action = param("Action").unwrap_or_default();
    if early == Some(Protocol::Query) || sts::asks_sts(&action, param("Version").as_deref()) {
        let input = parsed.map(|_| ()).map_err(StsError::from);
        let protocol = Protocol::Query;
        return serve_sts(
            endpoint, request, protocol, input, &action, request_id, started,
        )
        .await;
    }
    let span = info_span!("ec2", %request_id, action = %action, project = tracing::field::Empty);
    let result = answer(endpoint, request, parsed, &action, request_id)
        .instrument(span.clone())
        .await;
    let _entered = span.enter();
    respond(result, &action, request_id, started)
}
