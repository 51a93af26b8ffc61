//! The EC2 endpoint served in this process the way `stratus api` serves it:
//! the router of `ec2/server.rs` over a SQLite file in the test's own state
//! folder, a stand-in scheduler on the in-process bus that keeps what it is
//! sent, and a client that signs form POSTs with SigV4 as botocore does.

pub mod egress;
mod golden;
mod injection;
mod limits;
pub mod network;
mod owners;
mod signatures;
mod sts;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde_json::value::RawValue;
use stratus_api::auth::SignedRequest;
use stratus_api::auth::replay::ReplayGuard;
use stratus_api::config::ApiConfig;
use stratus_api::ec2::Cloud;
use stratus_api::ec2::server::{router, router_with};
use stratus_rpc::handler::null;
use stratus_rpc::transport::memory::MemoryTransport;
use stratus_rpc::wire::firewall::SecurityGroupUpdate;
use stratus_rpc::{HandlerError, RpcClient, ServerHandle, Transport};
use stratus_test_support::stand_in::{self, StandIn};

use crate::xml_doc;

/// Stands in for the scheduler: no hosts, and every cast kept as JSON.
#[derive(Default)]
pub struct Scheduler {
    /// The `run_instance` requests received.
    pub runs: Mutex<Vec<serde_json::Value>>,
}

impl Scheduler {
    /// The `run_instance` requests once `n` have arrived (casts are handled
    /// after the request that sent them is answered); panics after 10 s.
    pub async fn runs(&self, n: usize) -> Vec<serde_json::Value> {
        for _ in 0..500 {
            let runs = self.runs.lock().expect("lock").clone();
            if runs.len() >= n {
                return runs;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the scheduler got fewer than {n} run_instance casts");
    }
}

impl StandIn for Scheduler {
    fn answer(&self, method: &str, args: &RawValue) -> Result<Box<RawValue>, HandlerError> {
        match method {
            "list_hosts" => Ok(RawValue::from_string("[]".into()).expect("JSON")),
            "run_instance" => {
                let value = serde_json::from_str(args.get()).expect("the api sends JSON");
                self.runs.lock().expect("lock").push(value);
                Ok(null())
            }
            _ => Ok(null()),
        }
    }
}

/// Stands in for every compute host: keeps the security-group updates
/// fanned out to them.
#[derive(Default)]
pub struct Compute {
    /// The `refresh_security_group` casts received, in order.
    pub updates: Mutex<Vec<SecurityGroupUpdate>>,
}

impl Compute {
    /// The last update for `group` to arrive once `want` holds for it
    /// (fanouts are handled on their own task); panics after 10 s.
    pub async fn update_for(
        &self,
        group: &str,
        want: impl Fn(&SecurityGroupUpdate) -> bool,
    ) -> SecurityGroupUpdate {
        for _ in 0..500 {
            let last = self
                .updates
                .lock()
                .expect("lock")
                .iter()
                .rev()
                .find(|u| u.group.to_string() == group)
                .cloned();
            if let Some(update) = last.filter(|u| want(u)) {
                return update;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "no update for {group} as wanted among {:?}",
            self.updates.lock().expect("lock")
        );
    }
}

impl StandIn for Compute {
    fn answer(&self, method: &str, args: &RawValue) -> Result<Box<RawValue>, HandlerError> {
        if method == "refresh_security_group" {
            let update = serde_json::from_str(args.get()).expect("the api sends an update");
            self.updates.lock().expect("lock").push(update);
        }
        Ok(null())
    }
}

/// An access key and its secret.
#[derive(Debug, Clone)]
pub struct Keys {
    pub access: String,
    pub secret: String,
}

/// A request as it goes on the wire.
#[derive(Debug, Clone)]
pub struct Wire {
    pub method: &'static str,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// What the endpoint answered.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl Answer {
    /// The texts of the elements called `name`; panics if the body is not
    /// well-formed XML.
    pub fn texts(&self, name: &str) -> Vec<String> {
        xml_doc::texts(&self.body, name)
    }

    /// The EC2 error code, if this is an error document.
    pub fn code(&self) -> Option<String> {
        self.texts("Code").into_iter().next()
    }

    /// Panics unless the answer is a 200.
    pub fn ok(self) -> Self {
        assert_eq!(self.status, 200, "{}", self.body);
        self
    }

    /// A 200 when `fit`, else `InvalidParameterValue`; panics otherwise.
    /// The answer, when it was accepted.
    pub fn accepted_if(self, fit: bool) -> Option<Self> {
        if fit {
            Some(self.ok())
        } else {
            self.refused(400, "InvalidParameterValue");
            None
        }
    }

    /// Panics unless the answer is an EC2 error with `code` and `status`.
    pub fn refused(self, status: u16, code: &str) -> Self {
        assert_eq!(
            (self.status, self.code().as_deref()),
            (status, Some(code)),
            "{}",
            self.body
        );
        assert!(
            !self.texts("RequestID").is_empty(),
            "an error without a request id: {}",
            self.body
        );
        self
    }
}

/// One endpoint with its own state folder, database and bus.
pub struct Endpoint {
    pub url: String,
    /// `127.0.0.1:port`, as clients send it in Host.
    pub host: String,
    pub cloud: Arc<Cloud>,
    pub scheduler: Arc<Scheduler>,
    pub compute: Arc<Compute>,
    /// The bus the api talks on, for stand-ins of hosts of a test's own.
    pub bus: MemoryTransport,
    /// Everything the test owns; the api's state folder is two levels
    /// below, so a path that climbs out of it still lands in here.
    pub root: tempfile::TempDir,
    pub state: PathBuf,
    pub images: PathBuf,
    pub alpha: Keys,
    http: reqwest::Client,
    server: tokio::task::JoinHandle<()>,
    _bus: ServerHandle,
    _compute_bus: ServerHandle,
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Endpoint {
    /// An endpoint with the default settings and replay guard.
    pub async fn start() -> Self {
        Self::start_with(|_| {}, None).await
    }

    /// An endpoint with settings changed by `tune` and, when given, its own
    /// replay guard.
    pub async fn start_with(
        tune: impl FnOnce(&mut ApiConfig),
        replays: Option<ReplayGuard>,
    ) -> Self {
        let root = tempfile::tempdir().expect("tempdir");
        let state = root.path().join("a/b/state");
        let images = root.path().join("a/b/images");
        std::fs::create_dir_all(&images).expect("images folder");
        let mut config = ApiConfig {
            listen: "127.0.0.1:0".into(),
            image_roots: vec![images.clone()],
            ..ApiConfig::default()
        };
        tune(&mut config);
        let db = stratus_api::start::open_db(&config, &state)
            .await
            .expect("database");
        let bus = MemoryTransport::new(64, Duration::from_millis(100));
        let scheduler = Arc::new(Scheduler::default());
        let serving = bus
            .serve("scheduler", None, stand_in::handler(&scheduler))
            .await
            .expect("serve the scheduler topic");
        let compute = Arc::new(Compute::default());
        let compute_serving = bus
            .serve("compute", None, stand_in::handler(&compute))
            .await
            .expect("serve the compute topic");
        let rpc = RpcClient::new(Arc::new(bus.clone()), Duration::from_secs(5));
        let cloud = Arc::new(Cloud::new(db, config, rpc));
        let app = match replays {
            Some(guard) => router_with(cloud.clone(), guard),
            None => router(cloud.clone()),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let host = listener.local_addr().expect("address").to_string();
        let read_timeout = Duration::from_secs(cloud.config.read_timeout_secs);
        let server = tokio::spawn(stratus_api::serve::serve(listener, app, read_timeout));
        let alpha = keys(&cloud, "alpha").await;
        Self {
            url: format!("http://{host}/"),
            host,
            cloud,
            scheduler,
            compute,
            bus,
            root,
            state,
            images,
            alpha,
            http: reqwest::Client::new(),
            server,
            _bus: serving,
            _compute_bus: compute_serving,
        }
    }

    /// A new access key for `project`.
    pub async fn keys(&self, project: &str) -> Keys {
        keys(&self.cloud, project).await
    }

    /// A form POST signed by `keys` with SigV4 in the Authorization header,
    /// dated `at`.
    pub fn signed(&self, keys: &Keys, form: &str, at: SystemTime) -> Wire {
        self.sign(keys, "POST", "", form.as_bytes(), at)
    }

    /// A request signed by `keys` with SigV4 in the Authorization header,
    /// dated `at`, signing what botocore signs (Content-Type on a POST).
    pub fn sign(
        &self,
        keys: &Keys,
        method: &'static str,
        query: &str,
        body: &[u8],
        at: SystemTime,
    ) -> Wire {
        let amz_date = amz_date(at);
        let date = amz_date.get(..8).unwrap_or_default().to_owned();
        let signed_headers = if method == "POST" {
            "content-type;host;x-amz-date"
        } else {
            "host;x-amz-date"
        };
        let authorization = |signature: &str| {
            format!(
                "AWS4-HMAC-SHA256 Credential={}/{date}/nova/ec2/aws4_request, \
                 SignedHeaders={signed_headers}, Signature={signature}",
                keys.access
            )
        };
        let mut headers = Vec::new();
        if method == "POST" {
            headers.push((
                "content-type".to_owned(),
                "application/x-www-form-urlencoded; charset=utf-8".to_owned(),
            ));
        }
        headers.push(("host".to_owned(), self.host.clone()));
        headers.push(("x-amz-date".to_owned(), amz_date.clone()));
        headers.push(("authorization".to_owned(), authorization(&"0".repeat(64))));
        let signature = stratus_api::auth::sigv4::expected_signature(
            &SignedRequest {
                method,
                path: "/",
                query,
                headers: &headers,
                body,
            },
            &keys.secret,
        )
        .expect("sign");
        if let Some(last) = headers.last_mut() {
            last.1 = authorization(&signature);
        }
        Wire {
            method,
            query: query.to_owned(),
            headers,
            body: body.to_vec(),
        }
    }

    /// Sends a request as it is.
    pub async fn send(&self, wire: &Wire) -> Answer {
        let url = if wire.query.is_empty() {
            self.url.clone()
        } else {
            format!("{}?{}", self.url, wire.query)
        };
        let method = reqwest::Method::from_bytes(wire.method.as_bytes()).expect("method");
        let mut request = self.http.request(method, url).body(wire.body.clone());
        for (name, value) in &wire.headers {
            // reqwest sets Host from the URL, which is the same.
            if name != "host" {
                request = request.header(name, value);
            }
        }
        let response = request.send().await.expect("the endpoint answers");
        let status = response.status().as_u16();
        Answer {
            status,
            body: response.text().await.expect("body"),
        }
    }

    /// Sends a request to this endpoint with the Host it was signed for,
    /// as a load balancer in front of api replicas passes it on.
    pub async fn relay(&self, wire: &Wire) -> Answer {
        let url = if wire.query.is_empty() {
            self.url.clone()
        } else {
            format!("{}?{}", self.url, wire.query)
        };
        let method = reqwest::Method::from_bytes(wire.method.as_bytes()).expect("method");
        let mut request = self.http.request(method, url).body(wire.body.clone());
        for (name, value) in &wire.headers {
            request = request.header(name, value);
        }
        let response = request.send().await.expect("the endpoint answers");
        let status = response.status().as_u16();
        Answer {
            status,
            body: response.text().await.expect("body"),
        }
    }

    /// `action` with `params`, signed by alpha now.
    /// Registers a 1 MiB image file under `name`; its `ami-…` id.
    pub async fn register_image(&self, name: &str) -> String {
        let disk = self.images.join("disk.img");
        std::fs::File::create(&disk)
            .and_then(|f| f.set_len(1 << 20))
            .expect("image file");
        self.call(
            "RegisterImage",
            &[
                ("Name", name),
                ("ImageLocation", &disk.display().to_string()),
            ],
        )
        .await
        .ok()
        .texts("imageId")
        .remove(0)
    }

    /// The id of alpha's first group (its default one, on a fresh endpoint).
    pub async fn default_group(&self) -> String {
        let groups = self.call("DescribeSecurityGroups", &[]).await.ok();
        groups.texts("groupId").remove(0)
    }

    /// RunInstances of one m1.tiny of `ami` as alpha, with `extra` parameters.
    pub async fn run_one(&self, ami: &str, extra: &[(&str, &str)]) -> Answer {
        let mut params = vec![
            ("ImageId", ami),
            ("MinCount", "1"),
            ("MaxCount", "1"),
            ("InstanceType", "m1.tiny"),
        ];
        params.extend_from_slice(extra);
        self.call("RunInstances", &params).await
    }

    pub async fn call(&self, action: &str, params: &[(&str, &str)]) -> Answer {
        let keys = self.alpha.clone();
        self.call_as(&keys, action, params).await
    }

    /// `action` with `params`, signed by `keys` now.
    pub async fn call_as(&self, keys: &Keys, action: &str, params: &[(&str, &str)]) -> Answer {
        self.send(&self.signed(keys, &form(action, params), SystemTime::now()))
            .await
    }
}

/// `at` as SigV4's `YYYYMMDDTHHMMSSZ`.
pub fn amz_date(at: SystemTime) -> String {
    humantime::format_rfc3339_seconds(at)
        .to_string()
        .replace(['-', ':'], "")
}

/// The form body botocore would send for `action` with `params`.
pub fn form(action: &str, params: &[(&str, &str)]) -> String {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("Action", action)
        .append_pair("Version", "2016-11-15");
    for (name, value) in params {
        form.append_pair(name, value);
    }
    form.finish()
}

async fn keys(cloud: &Cloud, project: &str) -> Keys {
    let c = stratus_api::admin::create_credentials(&cloud.db, project, "user", false)
        .await
        .expect("credentials");
    Keys {
        access: c.access_key,
        secret: c.secret_key,
    }
}
