//! End to end, the way users meet stratus: every service a process of its
//! own over a real RabbitMQ, guest networking in a test namespace with a
//! libvirtd of its own, one real guest under QEMU (TCG). boto3 drives it
//! (api/tests/ec2/e2e.py): key pair, instance with user data, DHCP address,
//! the key's fingerprint on the console, SSH refused then allowed by a
//! security group rule (from a client namespace routed through the
//! guests' router, so through the firewall), the metadata service, and
//! terminate — after which this side checks nothing is left. Then a second
//! compute host joins (its own namespace and libvirtd, as a second machine
//! would have its own network stack) and the chance scheduler places
//! instances on both.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use stratus::ec2_client::{Client, texts};
use stratus_test_support::{command, sh, short_id};

use crate::guest_cloud::GuestCloud;

fn instance_folders(state: &Path) -> Vec<String> {
    std::fs::read_dir(state.join("instances"))
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("instance-"))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_user_boots_reaches_and_terminates_a_guest_across_separate_services() {
    let (mut cluster, credentials) = GuestCloud::start("e2e", &["e2e"]).await;
    let (netns, client, uri, ami) = (
        cluster.router.clone(),
        cluster.client.clone(),
        cluster.uri.clone(),
        cluster.ami.clone(),
    );
    let (key, secret) = (credentials[0].key.clone(), credentials[0].secret.clone());
    let (api_metrics, compute_metrics) = (cluster.api_metrics, cluster.compute_metrics);
    let api_state = cluster.state("api");
    let endpoint = cluster.endpoint.clone();
    let ec2 = Client::new(&endpoint, "nova", &key, &secret);

    let work = cluster.state("work");
    std::fs::create_dir_all(&work).expect("work");
    let script = stratus_test_support::workspace::root().join("api/tests/ec2/e2e.py");
    let out = tokio::process::Command::new("/var/lib/stratus-dev/venv/bin/python")
        .arg(&script)
        .env("STRATUS_ENDPOINT", &endpoint)
        .env("E2E_KEY", &key)
        .env("E2E_SECRET", &secret)
        .env("E2E_IMAGE", &ami)
        .env("CLIENT_NETNS", &client)
        .env("WORK", &work)
        .output()
        .await
        .expect("the venv python runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("e2e ok"),
        "{text}\n{}",
        cluster.logs()
    );
    let mut words = text.split_whitespace().skip_while(|w| *w != "ok").skip(1);
    let (iid, address) = (
        words.next().expect("id").to_owned(),
        words.next().expect("address").to_owned(),
    );

    // Terminated means gone: domain, disk, chains, DHCP host line, address.
    let hex = iid.trim_start_matches("i-");
    let domain = format!("instance-{hex}");
    let domains = Command::new("virsh")
        .args(["-q", "-c", &uri, "list", "--all", "--name"])
        .output()
        .expect("virsh");
    assert!(
        !String::from_utf8_lossy(&domains.stdout).contains(&domain),
        "domain left"
    );
    assert!(
        instance_folders(&cluster.state("compute-a")).is_empty(),
        "instance folder left"
    );
    let rules = sh("ip", &["netns", "exec", &netns, "iptables-save"]);
    assert!(
        !rules.contains(&format!("stratus-inst-{}", &hex[..15])),
        "chains left:\n{rules}"
    );
    let hosts = sh(
        "sh",
        &[
            "-c",
            &format!(
                "cat {}/networks/*/*/hosts",
                cluster.state("network").display()
            ),
        ],
    );
    assert!(
        !hosts.contains(&format!(",{address}\n")),
        "DHCP host line left: {hosts}"
    );
    let store = stratus_network::ipam::store::Store::connect(&format!(
        "sqlite://{}?mode=rw",
        cluster.state("network").join("network.sqlite").display()
    ))
    .await
    .expect("network database");
    for network in store.networks().await.expect("networks") {
        let held = store.dhcp_hosts(network.slot).await.expect("allocations");
        assert!(
            !held.iter().any(|(_, _, ip)| ip.to_string() == address),
            "the fixed IP {address} is still allocated"
        );
    }

    // A second host joins; the chance scheduler uses both.
    let b_netns = format!("st-e2b-{}", short_id());
    let b_libvirt = cluster.state("compute-b/libvirt");
    cluster.own(&b_netns, Some(b_libvirt));
    cluster.spawn(
        "compute-b",
        "compute",
        &[
            (
                "STRATUS_NODE__STATE_DIR",
                cluster.state("compute-b").display().to_string(),
            ),
            ("STRATUS_NODE__HOST", "compute-b".into()),
            ("STRATUS_NODE__NETNS", b_netns),
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let listed = cluster.service_list();
        if GuestCloud::host_up(&listed, "compute-b") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "compute-b never came up:\n{listed}\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // An operator tails compute-a's log from the broker while it builds.
    let mut tail = cluster
        .stratus(&["tail", "compute-a", "--level", "info"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("stratus tail");
    let tail_out = tail.stdout.take().expect("stdout");
    let tail_rx = command::lines(tail_out);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut launched = Vec::new();
    for _ in 0..10 {
        let ran = ec2
            .action(
                "RunInstances",
                &[
                    ("ImageId", ami.as_str()),
                    ("MinCount", "1"),
                    ("MaxCount", "1"),
                    ("InstanceType", "m1.tiny"),
                ],
            )
            .await
            .unwrap_or_else(|e| panic!("RunInstances: {e}\n{}", cluster.logs()));
        let id = texts(&ran, "instanceId")
            .into_iter()
            .next()
            .expect("instance id");
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let d = ec2
                .action("DescribeInstances", &[("InstanceId.1", id.as_str())])
                .await
                .expect("describe");
            let state = texts(&d, "name").into_iter().next().unwrap_or_default();
            if state == "running" {
                break;
            }
            assert!(
                state != "terminated" && Instant::now() < deadline,
                "{id} is {state}: {d}\n{}",
                cluster.logs()
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        launched.push(id);
        if !instance_folders(&cluster.state("compute-a")).is_empty()
            && !instance_folders(&cluster.state("compute-b")).is_empty()
        {
            break;
        }
    }
    assert!(
        !instance_folders(&cluster.state("compute-a")).is_empty(),
        "nothing on compute-a"
    );
    assert!(
        !instance_folders(&cluster.state("compute-b")).is_empty(),
        "nothing on compute-b after {} instances",
        launched.len()
    );
    let _ = tail.kill();
    let _ = tail.wait();
    let tailed: Vec<String> = tail_rx.try_iter().collect();
    let on_a: Vec<&String> = tailed
        .iter()
        .filter(|l| l.contains("state change"))
        .collect();
    assert!(
        !on_a.is_empty()
            && on_a
                .iter()
                .all(|l| l.contains(" INFO ") || l.contains(" WARN ") || l.contains("ERROR")),
        "stratus tail compute-a showed no build: {tailed:?}"
    );

    // Operators: every service up, both hosts with their instances; a
    // guest's console followed from the control host.
    let listed = {
        let out = command::run(&mut cluster.stratus(&["service", "list"]), "stratus");
        String::from_utf8_lossy(&out).into_owned()
    };
    for service in ["api", "scheduler", "network"] {
        assert!(
            listed
                .lines()
                .any(|l| l.starts_with(service) && l.contains(" up")),
            "{service} not up:\n{listed}"
        );
    }
    for host in ["compute-a", "compute-b"] {
        assert!(
            listed
                .lines()
                .any(|l| l.starts_with("compute") && l.contains(host) && l.contains(" up ")),
            "{host} not listed up:\n{listed}"
        );
    }
    let mut follow = cluster
        .stratus(&["console", launched[0].as_str(), "--follow"])
        .env("STRATUS_NODE__STATE_DIR", &api_state)
        .stdout(Stdio::piped())
        .spawn()
        .expect("stratus console --follow");
    let console_out = follow.stdout.take().expect("stdout");
    let rx = command::lines(console_out);
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut followed = Vec::new();
    while !followed
        .iter()
        .any(|l: &String| l.contains("STRATUS-BOOT kernel"))
    {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("console --follow showed no boot line: {followed:?}"));
        followed.push(line);
    }
    let _ = follow.kill();
    let _ = follow.wait();

    // Each service's Prometheus metrics.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let logs = cluster.logs();
    let scrape = |port: u16| {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("metrics endpoint on {port}: {e}\n{logs}"));
        stream
            .write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .expect("request");
        let mut text = String::new();
        stream.read_to_string(&mut text).expect("metrics text");
        assert!(
            text.starts_with("HTTP/1.0 200") || text.starts_with("HTTP/1.1 200"),
            "{text}"
        );
        text
    };
    let api_text = scrape(api_metrics);
    let running: f64 = api_text
        .lines()
        .find_map(|l| l.strip_prefix("stratus_instances{state=\"running\"} "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no running gauge:\n{api_text}"));
    assert!(
        running >= launched.len() as f64,
        "{running} running:\n{api_text}"
    );
    assert!(
        api_text.contains("stratus_api_requests_total{action=\"RunInstances\",status=\"200\"}"),
        "{api_text}"
    );
    let compute_text = scrape(compute_metrics);
    for needle in [
        "stratus_build_step_seconds_count{step=\"libvirt\"}",
        "stratus_rpc_call_seconds_count{method=\"allocate_fixed_ip\",outcome=\"ok\"}",
    ] {
        assert!(
            compute_text.contains(needle),
            "{needle} missing:\n{compute_text}"
        );
    }

    let mut terminate: Vec<(String, String)> = Vec::new();
    for (n, id) in launched.iter().enumerate() {
        terminate.push((format!("InstanceId.{}", n + 1), id.clone()));
    }
    let params: Vec<(&str, &str)> = terminate
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    ec2.action("TerminateInstances", &params)
        .await
        .expect("terminate");
}
