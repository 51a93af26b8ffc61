//! The metadata HTTP endpoints: EC2's `/latest/…` tree and OpenStack's
//! `meta_data.json`, IMDSv2 tokens included.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use serde_json::json;

use super::token::{MAX_TTL_SECS, Tokens};
use super::{InstanceMetadata, MetadataSource};

/// The token header of requests.
pub const TOKEN_HEADER: &str = "x-aws-ec2-metadata-token";
/// The TTL header of token requests.
pub const TTL_HEADER: &str = "x-aws-ec2-metadata-token-ttl-seconds";

/// The service's state.
pub struct Metadata {
    source: Arc<dyn MetadataSource>,
    tokens: Tokens,
    /// Refuse requests without a token (IMDSv2 only).
    require_token: bool,
}

impl Metadata {
    /// A service answering from `source`.
    pub fn new(source: Arc<dyn MetadataSource>, require_token: bool) -> Arc<Self> {
        Arc::new(Self {
            source,
            tokens: Tokens::default(),
            require_token,
        })
    }
}

/// The routes; serve with `into_make_service_with_connect_info::<SocketAddr>()`.
pub fn router(state: Arc<Metadata>) -> Router {
    Router::new()
        .route("/latest/api/token", put(issue_token))
        .route("/latest/meta-data", get(meta_index))
        .route("/latest/meta-data/", get(meta_index))
        .route("/latest/meta-data/{*path}", get(meta_path))
        .route("/latest/user-data", get(user_data))
        .route("/openstack/latest/meta_data.json", get(openstack_meta))
        .fallback(not_found)
        .with_state(state)
}

fn text(body: String) -> Response {
    ([("content-type", "text/plain")], body).into_response()
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "Not Found").into_response()
}

fn ipv4(peer: SocketAddr) -> Option<Ipv4Addr> {
    match peer.ip() {
        IpAddr::V4(v4) => Some(v4),
        IpAddr::V6(v6) => v6.to_ipv4_mapped(),
    }
}

async fn issue_token(
    State(state): State<Arc<Metadata>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    // No token for an address no instance holds.
    let (address, owner) = match owner(&state, peer).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let ttl = headers
        .get(TTL_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|ttl| (1..=MAX_TTL_SECS).contains(ttl));
    let Some(ttl) = ttl else {
        return (StatusCode::BAD_REQUEST, "missing or invalid token TTL").into_response();
    };
    text(
        state
            .tokens
            .issue(address, &owner.uuid, Duration::from_secs(ttl)),
    )
}

/// The caller's address and the instance holding it; 404 when none does.
async fn owner(
    state: &Metadata,
    peer: SocketAddr,
) -> Result<(Ipv4Addr, InstanceMetadata), Response> {
    let address = ipv4(peer).ok_or_else(not_found_now)?;
    let owner = state
        .source
        .by_fixed_ip(address)
        .await
        .ok_or_else(not_found_now)?;
    Ok((address, owner))
}

/// The caller's instance, after the token check; or the response to send.
/// The instance looked up is the one answered about: a token is checked
/// against it, never against an earlier holder of the address.
async fn caller(
    state: &Metadata,
    peer: SocketAddr,
    headers: &HeaderMap,
) -> Result<InstanceMetadata, Response> {
    let (address, owner) = owner(state, peer).await?;
    match headers.get(TOKEN_HEADER).and_then(|v| v.to_str().ok()) {
        Some(token) if !state.tokens.valid(token, address, &owner.uuid) => {
            Err((StatusCode::UNAUTHORIZED, "Unauthorized").into_response())
        }
        None if state.require_token => {
            Err((StatusCode::UNAUTHORIZED, "Unauthorized").into_response())
        }
        _ => Ok(owner),
    }
}

fn not_found_now() -> Response {
    (StatusCode::NOT_FOUND, "Not Found").into_response()
}

const INDEX: &str = "ami-id\nhostname\ninstance-id\nlocal-ipv4\nplacement/\npublic-keys/\nreservation-id\nsecurity-groups";

async fn meta_index(
    State(state): State<Arc<Metadata>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    match caller(&state, peer, &headers).await {
        Ok(me) => {
            // The public entries only for an instance that has them, as EC2.
            let mut index: Vec<&str> = INDEX.lines().collect();
            if me.public_hostname.is_some() {
                index.push("public-hostname");
            }
            if me.public_ipv4.is_some() {
                index.push("public-ipv4");
            }
            index.sort_unstable();
            text(index.join("\n"))
        }
        Err(response) => response,
    }
}

async fn meta_path(
    State(state): State<Arc<Metadata>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(path): Path<String>,
) -> Response {
    let me = match caller(&state, peer, &headers).await {
        Ok(me) => me,
        Err(response) => return response,
    };
    let value = match path.trim_end_matches('/') {
        "ami-id" => me.ami_id,
        "hostname" | "local-hostname" => me.hostname,
        "instance-id" => me.instance_id,
        "local-ipv4" => me.local_ipv4.to_string(),
        "public-ipv4" => match me.public_ipv4 {
            Some(address) => address.to_string(),
            None => return not_found_now(),
        },
        "public-hostname" => match me.public_hostname {
            Some(name) => name,
            None => return not_found_now(),
        },
        "reservation-id" => me.reservation_id,
        "security-groups" => me.security_groups.join("\n"),
        "placement" => "availability-zone".to_owned(),
        "placement/availability-zone" => me.availability_zone,
        "public-keys" => match &me.key {
            Some((name, _)) => format!("0={name}"),
            None => return not_found_now(),
        },
        "public-keys/0" if me.key.is_some() => "openssh-key".to_owned(),
        "public-keys/0/openssh-key" => match me.key {
            Some((_, key)) => key,
            None => return not_found_now(),
        },
        _ => return not_found_now(),
    };
    text(value)
}

async fn user_data(
    State(state): State<Arc<Metadata>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    match caller(&state, peer, &headers).await {
        Ok(InstanceMetadata {
            user_data: Some(data),
            ..
        }) => (
            [("content-type", "application/octet-stream")],
            Bytes::from(data),
        )
            .into_response(),
        Ok(_) => not_found_now(),
        Err(response) => response,
    }
}

async fn openstack_meta(
    State(state): State<Arc<Metadata>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let me = match caller(&state, peer, &headers).await {
        Ok(me) => me,
        Err(response) => return response,
    };
    let keys = match &me.key {
        Some((name, key)) => json!({ name: key }),
        None => json!({}),
    };
    let body = json!({
        "uuid": me.uuid,
        "name": me.instance_id,
        "hostname": me.hostname,
        "availability_zone": me.availability_zone,
        "public_keys": keys,
        "launch_index": 0,
    });
    ([("content-type", "application/json")], body.to_string()).into_response()
}
