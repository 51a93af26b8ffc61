//! Behaviour every transport must show. Each function is one test, run once
//! per transport by `suite_for!` in `main.rs`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::json;
use stratus_rpc::clients::{ComputeClient, ConductorClient, NetworkClient, SchedulerClient};
use stratus_rpc::envelope::{ENVELOPE_VERSION, Reply};
use stratus_rpc::error::kinds;
use stratus_rpc::transport::Outgoing;
use stratus_rpc::wire::compute::{InstanceRef, RunInstance};
use stratus_rpc::wire::conductor::{InstanceState, InstanceUpdate};
use stratus_rpc::wire::ids::{HostName, InstanceId};
use stratus_rpc::wire::scheduler::HostReport;
use stratus_rpc::{RequestContext, RpcClient, RpcError, ServerHandle, Target, Transport};
use stratus_test_support::{eventually, fixtures};

pub use crate::declared::declared_service_dispatches_by_method_name;
use crate::harness::{Harness, PREFETCH};
use crate::recorder::{Recorder, Sleep};

const SETTLE: Duration = Duration::from_millis(300);
const WITHIN: Duration = Duration::from_secs(10);

fn host(name: &str) -> HostName {
    name.parse().expect("valid host name")
}

/// Recorder `a` serving topic `svc`, its server, and a client.
async fn served(h: &impl Harness) -> (Arc<Recorder>, ServerHandle, RpcClient) {
    let server = Recorder::new("a");
    let serving = h.serve("svc", None, server.clone()).await;
    (server, serving, h.client().await)
}

/// Calls `method` on topic `svc` with a raw `body`; the kind of the error
/// in the reply (a reply must come, not a timeout).
async fn raw_call_error(transport: &dyn Transport, method: &str, body: Vec<u8>) -> Option<String> {
    let reply = transport
        .call(
            outgoing(&Target::topic("svc"), method, body),
            Duration::from_secs(5),
        )
        .await
        .expect("a reply, not a timeout");
    let reply: Reply = serde_json::from_slice(&reply).expect("reply envelope");
    reply.err.map(|e| e.kind)
}

fn ctx() -> RequestContext {
    RequestContext::system()
}

/// A raw message, sent past the client's encoding.
fn outgoing<'a>(target: &'a Target, method: &'a str, payload: Vec<u8>) -> Outgoing<'a> {
    Outgoing {
        target,
        method,
        payload,
    }
}

pub async fn cast_reaches_the_server(h: &impl Harness) {
    let (server, _serving, client) = served(h).await;
    client
        .cast(&ctx(), &Target::topic("svc"), "echo", &json!({"x": 1}))
        .await
        .expect("cast");
    assert!(eventually(WITHIN, || server.count("echo") == 1).await);
}

pub async fn cast_before_the_server_starts_waits_for_it(h: &impl Harness) {
    let client = h.client().await;
    client
        .cast(&ctx(), &Target::topic("late"), "echo", &1)
        .await
        .expect("cast");
    let server = Recorder::new("a");
    let _serving = h.serve("late", None, server.clone()).await;
    assert!(eventually(WITHIN, || server.count("echo") == 1).await);
}

pub async fn call_returns_the_typed_result(h: &impl Harness) {
    let server = Recorder::new("a");
    let _serving = h.serve("svc", None, server).await;
    let client = h.client().await;
    let got: Vec<u32> = client
        .call(&ctx(), &Target::topic("svc"), "echo", &vec![1u32, 2, 3])
        .await
        .expect("call");
    assert_eq!(got, vec![1, 2, 3]);
}

pub async fn call_times_out_cleanly_when_no_server(h: &impl Harness) {
    let client = h.client().await;
    let timeout = Duration::from_millis(300);
    let started = Instant::now();
    let result: Result<String, _> = client
        .call_with_timeout(&ctx(), &Target::topic("nobody"), "echo", &"hi", timeout)
        .await;
    let waited = started.elapsed();
    match result {
        Err(RpcError::Timeout {
            target,
            method,
            timeout: t,
        }) => {
            assert_eq!(
                (target, method.as_str(), t),
                (Target::topic("nobody"), "echo", timeout)
            );
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(waited >= timeout, "returned before its timeout: {waited:?}");
    // Not a speed target: a bound that catches a call hanging on.
    assert!(
        waited < timeout + Duration::from_secs(2),
        "hung past its timeout: {waited:?}"
    );
}

pub async fn remote_error_comes_back_typed(h: &impl Harness) {
    let server = Recorder::new("a");
    let _serving = h.serve("svc", None, server).await;
    let client = h.client().await;
    let err = client
        .call::<_, ()>(&ctx(), &Target::topic("svc"), "fail", &())
        .await
        .expect_err("fail fails");
    let remote = err.remote().expect("a remote error");
    assert_eq!(remote.kind, "Boom");
    assert_eq!(remote.message, "the test asked for it");
}

pub async fn late_reply_is_not_delivered_to_a_later_call(h: &impl Harness) {
    let (server, _serving, client) = served(h).await;
    let target = Target::topic("svc");
    let slow = Sleep {
        ms: 400,
        value: "first".into(),
    };
    let first: Result<String, _> = client
        .call_with_timeout(&ctx(), &target, "sleep", &slow, Duration::from_millis(100))
        .await;
    assert!(matches!(first, Err(RpcError::Timeout { .. })), "{first:?}");
    // The second call is still waiting when the first call's reply arrives.
    let second = Sleep {
        ms: 800,
        value: "second".into(),
    };
    let got: String = client
        .call_with_timeout(&ctx(), &target, "sleep", &second, Duration::from_secs(5))
        .await
        .expect("second call");
    assert_eq!(got, "second");
    assert_eq!(server.count("sleep"), 2);
}

pub async fn unknown_method_is_rejected_without_redelivery(h: &impl Harness) {
    let (server, _serving, client) = served(h).await;
    let target = Target::topic("svc");
    let err = client
        .call::<_, ()>(&ctx(), &target, "no_such_method", &())
        .await
        .expect_err("unknown");
    assert_eq!(
        err.remote().map(|r| r.kind.as_str()),
        Some(kinds::UNKNOWN_METHOD)
    );
    client
        .cast(&ctx(), &target, "also_unknown", &())
        .await
        .expect("cast");
    client
        .cast(&ctx(), &target, "echo", &())
        .await
        .expect("cast");
    assert!(eventually(WITHIN, || server.count("echo") == 1).await);
    tokio::time::sleep(SETTLE).await;
    assert_eq!(server.count("no_such_method"), 1);
    assert_eq!(server.count("also_unknown"), 1);
}

pub async fn undecodable_message_is_rejected_without_redelivery(h: &impl Harness) {
    let server = Recorder::new("a");
    let _serving = h.serve("svc", None, server.clone()).await;
    let transport = h.transport().await;
    let target = Target::topic("svc");
    transport
        .cast(outgoing(&target, "garbage", b"\x00not json".to_vec()))
        .await
        .expect("cast");
    assert_eq!(
        raw_call_error(&*transport, "garbage", b"{\"method\": 3}".to_vec()).await,
        Some(kinds::MALFORMED_MESSAGE.to_owned())
    );
    // The queue is not stuck behind them.
    let client = h.client().await;
    client
        .cast(&ctx(), &target, "echo", &())
        .await
        .expect("cast");
    assert!(eventually(WITHIN, || server.count("echo") == 1).await);
    tokio::time::sleep(SETTLE).await;
    assert_eq!(server.total(), 1, "garbage reached the handler");
}

pub async fn unsupported_envelope_version_is_refused(h: &impl Harness) {
    let server = Recorder::new("a");
    let _serving = h.serve("svc", None, server.clone()).await;
    let transport = h.transport().await;
    let future = json!({
        "v": ENVELOPE_VERSION + 1,
        "method": "echo",
        "ctx": {"request_id": "req-1"},
        "args": 1,
    });
    assert_eq!(
        raw_call_error(&*transport, "echo", future.to_string().into_bytes()).await,
        Some(kinds::UNSUPPORTED_VERSION.to_owned())
    );
    assert_eq!(server.total(), 0);
}

pub async fn retryable_failure_is_redelivered(h: &impl Harness) {
    let server = Recorder::new("a");
    server.flaky_failures.store(2, Ordering::SeqCst);
    let _serving = h.serve("svc", None, server.clone()).await;
    let client = h.client().await;
    client
        .cast(&ctx(), &Target::topic("svc"), "flaky", &())
        .await
        .expect("cast");
    assert!(
        eventually(WITHIN, || server.count("flaky") == 3).await,
        "saw {}",
        server.count("flaky")
    );
    tokio::time::sleep(SETTLE).await;
    assert_eq!(server.count("flaky"), 3, "redelivered after success");
}

pub async fn permanent_failure_is_acked_once(h: &impl Harness) {
    let (server, _serving, client) = served(h).await;
    client
        .cast(&ctx(), &Target::topic("svc"), "fail", &())
        .await
        .expect("cast");
    assert!(eventually(WITHIN, || server.count("fail") == 1).await);
    tokio::time::sleep(SETTLE).await;
    assert_eq!(server.count("fail"), 1);
}

pub async fn host_queue_reaches_only_that_host(h: &impl Harness) {
    let (a, b) = (Recorder::new("a"), Recorder::new("b"));
    let _sa = h.serve("svc", Some(&host("a")), a.clone()).await;
    let _sb = h.serve("svc", Some(&host("b")), b.clone()).await;
    let client = h.client().await;
    for _ in 0..5 {
        let who: String = client
            .call(&ctx(), &Target::host("svc", host("b")), "whoami", &())
            .await
            .expect("call");
        assert_eq!(who, "b");
    }
    assert_eq!(a.total(), 0);
}

pub async fn topic_queue_gives_each_message_to_one_server(h: &impl Harness) {
    let (a, b) = (Recorder::new("a"), Recorder::new("b"));
    let _sa = h.serve("svc", Some(&host("a")), a.clone()).await;
    let _sb = h.serve("svc", Some(&host("b")), b.clone()).await;
    let client = h.client().await;
    for i in 0..40 {
        client
            .cast(&ctx(), &Target::topic("svc"), "echo", &i)
            .await
            .expect("cast");
    }
    assert!(eventually(WITHIN, || a.total() + b.total() == 40).await);
    tokio::time::sleep(SETTLE).await;
    assert_eq!(a.total() + b.total(), 40, "a message was handled twice");
}

pub async fn fanout_reaches_every_server(h: &impl Harness) {
    let servers: Vec<_> = (0..3).map(|i| Recorder::new(&format!("s{i}"))).collect();
    let mut serving = Vec::new();
    for (i, s) in servers.iter().enumerate() {
        let name = host(&format!("h{i}"));
        serving.push(h.serve("svc", Some(&name), s.clone()).await);
    }
    let client = h.client().await;
    client
        .fanout_cast(&ctx(), "svc", "echo", &"all")
        .await
        .expect("fanout");
    for s in &servers {
        assert!(
            eventually(WITHIN, || s.count("echo") == 1).await,
            "{} missed it",
            s.name
        );
    }
}

pub async fn handlers_run_concurrently_up_to_prefetch(h: &impl Harness) {
    let (server, _serving, client) = served(h).await;
    let total = usize::from(PREFETCH) * 3;
    for _ in 0..total {
        client
            .cast(&ctx(), &Target::topic("svc"), "block", &())
            .await
            .expect("cast");
    }
    let limit = usize::from(PREFETCH);
    assert!(eventually(WITHIN, || server.active.load(Ordering::SeqCst) == limit).await);
    tokio::time::sleep(SETTLE).await;
    assert_eq!(
        server.max_active.load(Ordering::SeqCst),
        limit,
        "prefetch bound broken"
    );
    server.gate.add_permits(total);
    assert!(eventually(WITHIN, || server.count("block") == total).await);
    assert_eq!(server.max_active.load(Ordering::SeqCst), limit);
}

pub async fn stopped_server_takes_no_more_messages(h: &impl Harness) {
    let (a, b) = (Recorder::new("a"), Recorder::new("b"));
    let serving_a = h.serve("svc", None, a.clone()).await;
    let client = h.client().await;
    client
        .cast(&ctx(), &Target::topic("svc"), "echo", &1)
        .await
        .expect("cast");
    assert!(eventually(WITHIN, || a.total() == 1).await);
    serving_a.stop().await;
    let _serving_b = h.serve("svc", None, b.clone()).await;
    for i in 0..5 {
        client
            .cast(&ctx(), &Target::topic("svc"), "echo", &i)
            .await
            .expect("cast");
    }
    assert!(eventually(WITHIN, || b.total() == 5).await);
    assert_eq!(a.total(), 1);
}

/// The typed clients address the topics and methods their services serve.
pub async fn typed_clients_reach_their_services(h: &impl Harness) {
    let services: Vec<_> = ["compute", "network", "scheduler", "conductor"]
        .iter()
        .map(|name| Recorder::new(name))
        .collect();
    let mut serving = Vec::new();
    for s in &services {
        serving.push(h.serve(&s.name, Some(&host("node1")), s.clone()).await);
    }
    let rpc = h.client().await;
    let instance_id = InstanceId::new();
    let ctx = ctx();

    let compute = ComputeClient::new(rpc.clone());
    let run = RunInstance {
        instance_id,
        ..fixtures::run_instance(
            fixtures::image("ami-00000001", "/images/tiny.qcow2"),
            fixtures::tiny(512),
        )
    };
    compute
        .run_instance(&ctx, &host("node1"), &run)
        .await
        .expect("run_instance");
    compute
        .terminate_instance(&ctx, &host("node1"), InstanceRef { instance_id })
        .await
        .expect("terminate");
    // The recorder has no console: the typed call comes back as a remote error.
    let console = compute
        .get_console_output(&ctx, &host("node1"), InstanceRef { instance_id })
        .await;
    assert_eq!(
        console
            .expect_err("no console")
            .remote()
            .map(|r| r.kind.clone()),
        Some(kinds::UNKNOWN_METHOD.into())
    );

    let network = NetworkClient::new(rpc.clone());
    let allocate = fixtures::allocate_fixed_ip(instance_id, "p1", "02:16:3e:00:00:01");
    assert!(network.allocate_fixed_ip(&ctx, &allocate).await.is_err());

    let scheduler = SchedulerClient::new(rpc.clone());
    let report = HostReport {
        disk_gb: 10,
        ..fixtures::host_report("node1", "nova", 2, 1024)
    };
    scheduler
        .update_host(&ctx, &report)
        .await
        .expect("update_host");

    let conductor = ConductorClient::new(rpc);
    let update = InstanceUpdate {
        instance_id,
        host: Some(host("node1")),
        state: InstanceState::Running,
        task_state: None,
        reason: None,
        sequence: 1,
        attempt: 0,
    };
    conductor
        .instance_update(&ctx, &update)
        .await
        .expect("instance_update");

    let [compute, network, scheduler, conductor] = services.as_slice() else {
        unreachable!()
    };
    assert!(
        eventually(WITHIN, || compute.count("run_instance") == 1
            && compute.count("terminate_instance") == 1
            && compute.count("get_console_output") == 1
            && network.count("allocate_fixed_ip") == 1
            && scheduler.count("update_host") == 1
            && conductor.count("instance_update") == 1)
        .await
    );
    let _ = Arc::strong_count(compute);
}
