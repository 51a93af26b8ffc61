//! Two `stratus api` processes on one PostgreSQL database and one broker,
//! as the distributed guide runs them: a request one accepted is refused as
//! a replay by the other, and one ClientToken sent to both at once makes
//! one reservation.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use stratus::ec2_client::{Client, Ec2ClientError, texts};
use stratus_api::auth::SignedRequest;
use stratus_api::auth::replay::TWIN_GRACE;
use stratus_test_support::broker::Vhost;
use stratus_test_support::db::TestDb;
use stratus_test_support::ports::free_ports;
use stratus_test_support::workspace::stratus_bin;

/// A `stratus api` process, killed on drop.
struct Replica {
    child: Child,
    endpoint: String,
    host: String,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `stratus api` on `db` and `amqp`, its state under `dir`, and
/// waits until it answers.
async fn replica(name: &str, dir: &Path, db: &str, amqp: &str, images: &Path) -> Replica {
    let [port, metadata] = free_ports::<2>();
    let state = dir.join(name);
    std::fs::create_dir_all(&state).expect("state folder");
    let config = state.join("stratus.toml");
    std::fs::write(
        &config,
        format!(
            "[node]\nstate_dir = {state:?}\nhost = \"control\"\n\
             [rpc]\nbackend = \"amqp\"\nurl = {amqp:?}\n\
             [api]\nlisten = \"127.0.0.1:{port}\"\nmetadata_listen = \"127.0.0.1:{metadata}\"\n\
             database_url = {db:?}\nimage_roots = [{images:?}]\n",
        ),
    )
    .expect("config");
    let log = std::fs::File::create(state.join("api.log")).expect("log");
    let child = Command::new(stratus_bin())
        .arg("--config")
        .arg(&config)
        .arg("api")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("stratus api starts");
    let endpoint = format!("http://127.0.0.1:{port}/");
    let replica = Replica {
        child,
        host: format!("127.0.0.1:{port}"),
        endpoint,
    };
    let probe = Client::new(&replica.endpoint, "nova", "none", "none");
    let deadline = Instant::now() + Duration::from_secs(60);
    // Any answer, even "unknown key", means it serves.
    while let Err(Ec2ClientError::Transport(_)) = probe.action("DescribeRegions", &[]).await {
        assert!(Instant::now() < deadline, "{name} did not answer in 60 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    replica
}

/// A form POST signed for `host` with SigV4, as botocore signs it: its
/// headers and body.
fn signed(host: &str, key: &str, secret: &str, form: &str) -> Vec<(String, String)> {
    let amz_date = humantime::format_rfc3339_seconds(SystemTime::now())
        .to_string()
        .replace(['-', ':'], "");
    let date = amz_date[..8].to_owned();
    let authorization = |signature: &str| {
        format!(
            "AWS4-HMAC-SHA256 Credential={key}/{date}/nova/ec2/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date, Signature={signature}"
        )
    };
    let mut headers = vec![
        (
            "content-type".to_owned(),
            "application/x-www-form-urlencoded; charset=utf-8".to_owned(),
        ),
        ("host".to_owned(), host.to_owned()),
        ("x-amz-date".to_owned(), amz_date),
        ("authorization".to_owned(), authorization(&"0".repeat(64))),
    ];
    let signature = stratus_api::auth::sigv4::expected_signature(
        &SignedRequest {
            method: "POST",
            path: "/",
            query: "",
            headers: &headers,
            body: form.as_bytes(),
        },
        secret,
    )
    .expect("sign");
    headers[3].1 = authorization(&signature);
    headers
}

/// Sends the signed request to `replica`, keeping the Host it was signed
/// for as a load balancer does; the status and body.
async fn relay(replica: &Replica, headers: &[(String, String)], form: &str) -> (u16, String) {
    let mut request = reqwest::Client::new()
        .post(&replica.endpoint)
        .body(form.to_owned());
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let response = request.send().await.expect("the replica answers");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_api_processes_share_the_replay_guard_and_client_tokens() {
    let db = TestDb::postgres();
    let vhost = Vhost::create();
    let dir = tempfile::tempdir().expect("tempdir");
    let images = dir.path().join("images");
    std::fs::create_dir_all(&images).expect("images");
    let one = replica("one", dir.path(), &db.url(), &vhost.url(), &images).await;
    let two = replica("two", dir.path(), &db.url(), &vhost.url(), &images).await;
    let store = stratus_api::db::Db::connect(&db.url()).await.expect("db");
    let keys = stratus_api::admin::create_credentials(&store, "alpha", "user", false)
        .await
        .expect("credentials");
    let (key, secret) = (keys.access_key, keys.secret_key);

    // A replay: accepted by one, a twin on two within the grace, then
    // refused by two (which never saw it refused before) once past it.
    let form = "Action=DescribeKeyPairs&Version=2016-11-15";
    let headers = signed(&one.host, &key, &secret, form);
    assert_eq!(relay(&one, &headers, form).await.0, 200);
    assert_eq!(relay(&two, &headers, form).await.0, 200, "a twin");
    tokio::time::sleep(TWIN_GRACE + Duration::from_secs(1)).await;
    let (status, body) = relay(&two, &headers, form).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(texts(&body, "Code"), ["AuthFailure"], "{body}");
    assert!(body.contains("already accepted"), "{body}");

    // One ClientToken, twenty clients, both replicas.
    let disk = images.join("disk.img");
    std::fs::File::create(&disk)
        .and_then(|f| f.set_len(1 << 20))
        .expect("image file");
    let client = Client::new(&one.endpoint, "nova", &key, &secret);
    let registered = client
        .action(
            "RegisterImage",
            &[
                ("Name", "shared"),
                ("ImageLocation", &disk.display().to_string()),
            ],
        )
        .await
        .expect("RegisterImage");
    let ami = texts(&registered, "imageId").remove(0);
    let mut launches = tokio::task::JoinSet::new();
    for i in 0..20 {
        let endpoint = if i % 2 == 0 { &one } else { &two }.endpoint.clone();
        let (key, secret, ami) = (key.clone(), secret.clone(), ami.clone());
        launches.spawn(async move {
            Client::new(&endpoint, "nova", &key, &secret)
                .action(
                    "RunInstances",
                    &[
                        ("ImageId", ami.as_str()),
                        ("MinCount", "2"),
                        ("MaxCount", "2"),
                        ("InstanceType", "m1.tiny"),
                        ("ClientToken", "one-token"),
                    ],
                )
                .await
        });
    }
    let (mut reservations, mut instances) = (BTreeSet::new(), BTreeSet::new());
    while let Some(answer) = launches.join_next().await {
        let body = answer.expect("task").expect("RunInstances");
        reservations.extend(texts(&body, "reservationId"));
        instances.extend(texts(&body, "instanceId"));
    }
    assert_eq!(reservations.len(), 1, "{reservations:?}");
    assert_eq!(instances.len(), 2, "{instances:?}");
    let described = Client::new(&two.endpoint, "nova", &key, &secret)
        .action("DescribeInstances", &[])
        .await
        .expect("DescribeInstances");
    let stored: BTreeSet<String> = texts(&described, "instanceId").into_iter().collect();
    assert_eq!(stored, instances);
}
