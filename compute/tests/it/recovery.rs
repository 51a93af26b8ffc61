//! Start-up recovery of builds a worker restart cut short: a guest that had
//! already started is adopted, not destroyed.

use std::time::Duration;

use stratus_compute::instance_dir::InstanceDir;
use stratus_compute::state::PowerState;
use stratus_rpc::wire::conductor::InstanceState;

use crate::harness::{Harness, image, request};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_started_before_the_worker_died_is_adopted_not_destroyed() {
    let h = Harness::start().await;
    let req = request(&image(h.images.path()));
    h.run(&req).await.expect("built");
    // Killed between the guest's start and the record that says so: the
    // domain runs, the record still reads unfinished.
    let dir = h.worker.manager.dir(&req.instance_id);
    let mut record = InstanceDir::read_record(dir.root()).await.expect("record");
    record.built = false;
    dir.write_record(&record).await.expect("record");

    // The worker restarts over the same state folder and hypervisor, and no
    // request comes back (grace: 1 s).
    let h = h.restart().await;
    assert!(
        h.conductor
            .wait_for(req.instance_id, InstanceState::Running)
            .await
            .is_some(),
        "the adopted guest was not reported running: {:?}",
        h.conductor.states(req.instance_id)
    );
    // Past the grace an unclaimed interrupted build would be reported in
    // error; an adopted one is not.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        h.conductor.states(req.instance_id),
        [(InstanceState::Running, None)],
        "reports after the restart"
    );
    assert_eq!(
        h.fake_state(req.instance_id).await,
        Some(PowerState::Running)
    );
    assert!(h.has_address(&req.instance_id).await, "address released");
    let firewall = h.worker.manager.firewall().state().await;
    assert!(
        firewall.instances.contains_key(&req.instance_id),
        "the adopted guest's filters are gone"
    );
    let record = InstanceDir::read_record(dir.root()).await.expect("record");
    assert!(record.built, "the adoption was not recorded");
    assert_eq!(h.worker.manager.host_report().await.running_instances, 1);
}
