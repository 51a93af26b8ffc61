//! RabbitMQ stopped and restarted while 200 RunInstances are in flight.
//! Every service runs in this process on a connection of its own to a
//! broker of the test's own (the api with its SQLite tables, the scheduler,
//! the network controller, eight compute workers on the fake driver), and
//! the requests come signed over HTTP. Afterwards every instance is running
//! or in error with a reason, none pending; none runs on two hosts; no
//! address is held twice or left held by an instance that is not running;
//! and the services, which reconnected on their own, run a new instance.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use stratus::ec2_client::texts;
use stratus_api::db::instances::InstanceRow;
use stratus_rpc::config::RpcConfig;
use stratus_rpc::wire::conductor::InstanceState;
use stratus_test_support::broker::PrivateBroker;

use crate::cloud::Cloud;

const HOSTS: usize = 8;
const REQUESTS: usize = 200;
/// Requests sent whether or not the broker has gone down yet.
const BEFORE_OUTAGE: usize = 40;

/// What must hold once the cloud has settled, or the first thing that does
/// not: nothing pending; every instance running or in error with a reason;
/// each running instance's domain on its host alone and no other domain;
/// no address held twice; each running instance holding the address the api
/// shows, and nothing else holding one.
async fn broken_invariant(cloud: &Cloud, rows: &[InstanceRow]) -> Option<String> {
    for r in rows {
        let final_state = r.state == InstanceState::Running
            || (r.state == InstanceState::Error
                && r.state_reason.as_deref().is_some_and(|s| !s.is_empty()));
        if !final_state {
            return Some(format!(
                "{} is {} ({:?}, host {:?}): {:?}",
                r.ec2_id, r.state, r.task_state, r.host, r.state_reason
            ));
        }
    }
    let running: Vec<&InstanceRow> = rows
        .iter()
        .filter(|r| r.state == InstanceState::Running)
        .collect();
    let domains = cloud.domains().await;
    for r in &running {
        let name = stratus_compute::instance_dir::domain_name(&r.uuid.parse().ok()?);
        let on = domains.get(&name).cloned().unwrap_or_default();
        if on != vec![r.host.clone().unwrap_or_default()] {
            return Some(format!(
                "{} runs on {on:?}, the api says {:?}",
                r.ec2_id, r.host
            ));
        }
    }
    if domains.len() != running.len() {
        return Some(format!(
            "{} domains for {} running instances",
            domains.len(),
            running.len()
        ));
    }
    let held = cloud.held_addresses().await;
    let mut seen = HashSet::new();
    for (holder, addresses) in &held {
        if addresses.len() != 1 || !seen.insert(addresses[0].clone()) {
            return Some(format!(
                "{holder} holds {addresses:?}, or one is held twice"
            ));
        }
    }
    for r in &running {
        let holds = held.get(&r.ec2_id).cloned().unwrap_or_default();
        if holds != vec![r.fixed_ip.clone().unwrap_or_default()] {
            return Some(format!(
                "{} holds {holds:?}, the api says {:?}",
                r.ec2_id, r.fixed_ip
            ));
        }
    }
    let leaked: Vec<(&str, InstanceState, Option<&str>)> = rows
        .iter()
        .filter(|r| r.state != InstanceState::Running && held.contains_key(&r.ec2_id))
        .map(|r| (r.ec2_id.as_str(), r.state, r.state_reason.as_deref()))
        .collect();
    if held.len() != running.len() {
        return Some(format!(
            "addresses held by instances not running: {leaked:?}"
        ));
    }
    None
}

/// How the outage meets the services' patience.
#[derive(Debug, Clone, Copy)]
struct Outage {
    /// How long a cast waits for the broker.
    publish_timeout_ms: u64,
    /// How long a call waits for its reply (or for the broker).
    call_timeout_ms: u64,
    /// How long the api lets a build go without news.
    build_timeout_secs: u64,
}

/// What the test saw.
struct Seen {
    running: usize,
    errors: Vec<String>,
    refused: Vec<String>,
}

/// Stops and restarts the broker under 200 RunInstances, then checks what
/// every outage must leave: nothing pending, nothing twice, nothing leaked,
/// and services that serve again.
async fn restart_under_load(outage: Outage) -> Seen {
    let broker = PrivateBroker::start();
    let rpc = RpcConfig {
        url: broker.url(),
        publish_timeout_ms: outage.publish_timeout_ms,
        call_timeout_ms: outage.call_timeout_ms,
        reconnect_max_ms: 1_000,
        ..RpcConfig::default()
    };
    let cloud = Arc::new(Cloud::start(&rpc, HOSTS, outage.build_timeout_secs).await);
    let image = cloud.image_id().await;

    // 200 requests, one every 20 ms and at most 50 at a time. The broker
    // goes down once 20 have been answered, so schedules, builds and reports
    // are in flight; the first 40 go out regardless, the other 160 only once
    // the broker is down (a slow `rabbitmqctl stop` must not let every
    // request finish first), so requests meet the outage too.
    let answered = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(std::sync::Mutex::new(Vec::new()));
    let gate = Arc::new(tokio::sync::Semaphore::new(50));
    let (went_down, is_down) = tokio::sync::watch::channel(false);
    let mut requests = Vec::new();
    for n in 0..REQUESTS {
        let (cloud, image, answered, refused, gate) = (
            cloud.clone(),
            image.clone(),
            answered.clone(),
            refused.clone(),
            gate.clone(),
        );
        let mut is_down = is_down.clone();
        requests.push(tokio::spawn(async move {
            let pace = if n < BEFORE_OUTAGE {
                n
            } else {
                is_down.wait_for(|down| *down).await.expect("outage signal");
                n - BEFORE_OUTAGE
            };
            tokio::time::sleep(Duration::from_millis(20 * pace as u64)).await;
            let _turn = gate.acquire().await.expect("semaphore");
            let token = format!("restart-{n}");
            let result = cloud
                .run_one(&image, &[("ClientToken", token.as_str())])
                .await;
            if let Err(e) = result {
                refused.lock().expect("lock").push(e.to_string());
            }
            answered.fetch_add(1, Ordering::SeqCst);
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while answered.load(Ordering::SeqCst) < 20 {
        assert!(Instant::now() < deadline, "RunInstances never got going");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let in_flight = cloud
        .instances()
        .await
        .iter()
        .filter(|r| r.state == InstanceState::Pending)
        .count();
    let down = Instant::now();
    tokio::task::block_in_place(|| broker.stop());
    went_down.send(true).expect("requests wait for the outage");
    // Long enough for the held requests to go out (3.2 s) and for a cast
    // that waits 1.5 s to give up.
    tokio::time::sleep(Duration::from_secs(4)).await;
    tokio::task::block_in_place(|| broker.restart());
    let down = down.elapsed();
    for r in requests {
        r.await.expect("request task");
    }
    let refused = refused.lock().expect("lock").clone();

    let rows = cloud.settle(Duration::from_secs(120)).await;
    // Each answered request made its instance; a refused one may have too,
    // and then it is in error with the reason.
    assert!(
        rows.len() >= REQUESTS - refused.len() && rows.len() <= REQUESTS,
        "{} instances for {REQUESTS} requests ({} refused)",
        rows.len(),
        refused.len()
    );
    // A host may still be finishing what a late delivery gave it (the build
    // timeout can end an instance whose host then reports it): the books
    // must agree soon, and then stay agreed.
    let deadline = Instant::now() + Duration::from_secs(30);
    let rows = loop {
        let rows = cloud.instances().await;
        match broken_invariant(&cloud, &rows).await {
            None => break rows,
            Some(broken) => assert!(Instant::now() < deadline, "{broken}"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let running: Vec<&InstanceRow> = rows
        .iter()
        .filter(|r| r.state == InstanceState::Running)
        .collect();

    // The services reconnected by themselves: a new instance runs.
    let out = cloud
        .run_one(&image, &[])
        .await
        .expect("RunInstances after the restart");
    let id = texts(&out, "instanceId").into_iter().next().expect("an id");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let row = cloud.row(&id).await;
        if row.state == InstanceState::Running {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new instance is {}: {:?}",
            row.state,
            row.state_reason
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let errors: Vec<String> = rows
        .iter()
        .filter(|r| r.state == InstanceState::Error)
        .map(|r| r.state_reason.clone().unwrap_or_default())
        .collect();
    eprintln!(
        "{outage:?}: broker down and back in {down:?} with {in_flight} instances pending: {} running, {} in error, {} requests refused; errors: {:?}; refusals: {:?}",
        running.len(),
        errors.len(),
        refused.len(),
        errors.iter().take(3).collect::<Vec<_>>(),
        refused.iter().take(3).collect::<Vec<_>>()
    );
    let seen = Seen {
        running: running.len(),
        errors,
        refused,
    };
    match Arc::try_unwrap(cloud) {
        Ok(cloud) => cloud.stop().await,
        Err(_) => panic!("requests still hold the cloud"),
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broker_restart_under_200_run_instances_loses_nothing() {
    // Casts and calls wait out the outage: every instance ends running.
    let seen = restart_under_load(Outage {
        publish_timeout_ms: 90_000,
        call_timeout_ms: 90_000,
        build_timeout_secs: 600,
    })
    .await;
    assert_eq!(seen.running, REQUESTS, "errors: {:?}", seen.errors);
    assert!(seen.refused.is_empty(), "{:?}", seen.refused);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broker_outage_longer_than_casts_wait_ends_every_instance_running_or_in_error() {
    // Casts give up during the outage: requests are refused, schedules and
    // reports fail; the outbox sends again what compute holds and the build
    // timeout ends what nobody will report on.
    let seen = restart_under_load(Outage {
        publish_timeout_ms: 1_500,
        // Calls still give up within the outage, and a loaded machine can
        // answer one in a few seconds once the broker is back.
        call_timeout_ms: 8_000,
        build_timeout_secs: 20,
    })
    .await;
    // Requests went out while the broker was known to be down for longer
    // than a cast waits: some were refused, each as the api being away.
    assert!(
        !seen.refused.is_empty(),
        "no request was refused during the outage"
    );
    assert!(
        seen.refused.iter().all(|r| r.starts_with("Unavailable: ")),
        "{:?}",
        seen.refused
    );
}
