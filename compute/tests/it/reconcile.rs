//! The claim before a build, the durable outbox, and the periodic
//! reconcile with the conductor.

use std::time::Duration;

use stratus_compute::instance_dir::domain_name;
use stratus_compute::state::PowerState;
use stratus_rpc::wire::conductor::{InstanceState, KnownInstance};

use crate::harness::{Harness, image, request};

async fn eventually(cond: impl Fn() -> bool) -> bool {
    stratus_test_support::eventually(Duration::from_secs(4), cond).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_claim_builds_nothing() {
    let h = Harness::start().await;
    let req = request(&image(h.images.path()));
    let id = req.instance_id;
    h.conductor.refuse(id, true);
    assert!(h.run(&req).await.is_none());
    assert_eq!(h.conductor.claims_of(id), 1);
    assert_eq!(h.fake().spawn_count(&domain_name(&id)), 0);
    assert!(!h.instance_dir(&id).exists(), "its folder stays");
    assert!(!h.has_address(&id).await, "an address was allocated");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(h.conductor.states(id), [], "a refused build reported");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_the_conductor_cannot_answer_at_first_is_asked_again() {
    let h = Harness::start().await;
    let req = request(&image(h.images.path()));
    *h.conductor.failing_claims.lock().expect("lock") = 2;
    h.run_until_running(&req, "built once the claim is answered")
        .await;
    assert_eq!(h.conductor.claims_of(req.instance_id), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_builds_error_report_survives_a_restart_before_it_was_heard() {
    let h = Harness::start().await;
    let mut req = request(&image(h.images.path()));
    req.image.disk = h.images.path().join("no-such-image.qcow2");
    let id = req.instance_id;
    // The report is cast, then the process dies before the conductor
    // handles it: the in-process bus loses it.
    h.conductor
        .deaf
        .store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(h.run(&req).await.is_none());
    assert!(!h.instance_dir(&id).exists(), "not cleaned up");
    let outbox = std::fs::read_to_string(h.state.path().join("compute-outbox.json"))
        .expect("the outbox file");
    assert!(outbox.contains(&id.to_string()), "{outbox}");
    assert_eq!(h.conductor.last(id), None);

    // The restarted worker reconciles at once: the conductor still has it
    // pending on this host, so it hears the failure again.
    let h = h.restart().await;
    let error = h
        .conductor
        .wait_for(id, InstanceState::Error)
        .await
        .expect("the error report was lost");
    assert!(
        error
            .reason
            .as_deref()
            .is_some_and(|r| r.starts_with("image")),
        "{:?}",
        error.reason
    );
    // Once the conductor knows it, the next reconcile drops it.
    h.reconcile().await;
    let outbox = std::fs::read_to_string(h.state.path().join("compute-outbox.json"))
        .expect("the outbox file");
    assert!(!outbox.contains(&id.to_string()), "{outbox}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_removes_what_the_api_says_is_terminated_and_keeps_what_runs() {
    let h = Harness::start().await;
    let image = image(h.images.path());
    let (gone, kept, unknown) = (request(&image), request(&image), request(&image));
    for req in [&gone, &kept, &unknown] {
        h.run_until_running(req, "built").await;
    }
    h.conductor
        .set_known(gone.instance_id, InstanceState::Terminated, "node1", 1);
    h.conductor
        .set_known(kept.instance_id, InstanceState::Running, "node1", 1);
    h.conductor.known.lock().expect("lock").insert(
        unknown.instance_id,
        KnownInstance {
            instance_id: unknown.instance_id,
            state: None,
            host: None,
            attempt: 0,
        },
    );
    h.reconcile().await;
    let gone_id = gone.instance_id;
    assert_eq!(
        h.fake_state(gone_id).await,
        None,
        "the terminated domain stays"
    );
    assert!(!h.instance_dir(&gone_id).exists());
    assert!(!h.has_address(&gone_id).await);
    let firewall = h.worker.manager.firewall().state().await;
    assert!(!firewall.instances.contains_key(&gone_id));
    for id in [kept.instance_id, unknown.instance_id] {
        assert_eq!(h.fake_state(id).await, Some(PowerState::Running));
        assert!(h.instance_dir(&id).exists());
        assert!(h.has_address(&id).await);
    }
    assert_eq!(h.worker.manager.host_report().await.running_instances, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_removes_a_copy_another_host_holds_at_a_later_placement() {
    let h = Harness::start().await;
    let image = image(h.images.path());
    let (copy, same) = (request(&image), request(&image));
    for req in [&copy, &same] {
        h.run_until_running(req, "built").await;
    }
    h.conductor
        .set_known(copy.instance_id, InstanceState::Running, "node2", 2);
    // The same placement elsewhere: not this host's to judge.
    h.conductor
        .set_known(same.instance_id, InstanceState::Running, "node2", 1);
    h.reconcile().await;
    assert_eq!(h.fake_state(copy.instance_id).await, None);
    assert!(!h.instance_dir(&copy.instance_id).exists());
    assert!(
        h.has_address(&copy.instance_id).await,
        "the other host's address went"
    );
    assert_eq!(
        h.fake_state(same.instance_id).await,
        Some(PowerState::Running)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_reports_a_built_guest_the_conductor_still_has_pending() {
    let h = Harness::start().await;
    let req = request(&image(h.images.path()));
    h.conductor
        .deaf
        .store(true, std::sync::atomic::Ordering::SeqCst);
    h.run(&req).await.expect("built");
    h.conductor
        .deaf
        .store(false, std::sync::atomic::Ordering::SeqCst);
    h.conductor
        .set_known(req.instance_id, InstanceState::Pending, "node1", 1);
    h.reconcile().await;
    assert!(
        eventually(
            || h.conductor.last(req.instance_id).map(|u| u.state) == Some(InstanceState::Running)
        )
        .await
    );
}
