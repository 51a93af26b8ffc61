//! What the public-address test's steps share: the cloud, its two
//! projects, their guests and the addresses found so far.

use std::time::{Duration, Instant};

use crate::guest_cloud::GuestCloud;

use super::outside::{Tenant, ssh_until};

/// The cloud, its two projects and their three running guests, with the
/// addresses they came up with.
pub(super) struct Scene {
    pub(super) cloud: GuestCloud,
    pub(super) started: Instant,
    pub(super) a: Tenant,
    pub(super) b: Tenant,
    /// Project A's instances 1 and 2.
    pub(super) one: String,
    pub(super) two: String,
    /// Project B's instance.
    pub(super) bee: String,
    /// The automatic public IPs of 1, 2 and B's instance.
    pub(super) p1: String,
    pub(super) p2: String,
    pub(super) pb: String,
    /// The fixed IPs of 1 and 2.
    pub(super) f1: String,
    pub(super) f2: String,
}

impl Scene {
    /// Starts the cloud with a public range, makes the two projects and
    /// waits until their guests run, each with a public IP.
    pub(super) async fn start() -> Self {
        let started = Instant::now();
        // A short reconcile interval, so the controller's periodic listing runs
        // (and must not undo anything) while addresses move.
        let (cloud, credentials) = GuestCloud::start_with_settings(
            "pub",
            &["pub-a", "pub-b"],
            &[("STRATUS_NETWORK__RECONCILE_INTERVAL_SECS", "5")],
        )
        .await;
        let a = Tenant::new(&cloud, &credentials[0], "pa").await;
        let b = Tenant::new(&cloud, &credentials[1], "pb").await;
        let one = a.launch(&cloud, "pa").await;
        let two = a.launch(&cloud, "pa").await;
        let bee = b.launch(&cloud, "pb").await;
        let (p1, f1) = a.running(&cloud, &one).await;
        let (p2, f2) = a.running(&cloud, &two).await;
        let (pb, _) = b.running(&cloud, &bee).await;
        Self {
            cloud,
            started,
            a,
            b,
            one,
            two,
            bee,
            p1,
            p2,
            pb,
            f1,
            f2,
        }
    }

    /// SSH from the outside to `address` until project A's instance `id`
    /// answers there (see [`ssh_until`]); its answer.
    pub(super) async fn reaches(
        &self,
        address: &str,
        id: &str,
        within: Duration,
        what: &str,
    ) -> String {
        ssh_until(
            &self.cloud,
            &self.a,
            address,
            |out| out.contains(id),
            within,
            what,
        )
        .await
    }
}

/// Project A's Elastic IP and its association now (step (b) leaves it on
/// instance 2).
pub(super) struct Elastic {
    pub(super) ip: String,
    pub(super) allocation: String,
    pub(super) association: String,
}

impl Elastic {
    /// What A's DescribeAddresses shows of it while it is on instance 2.
    pub(super) fn on_two(&self, s: &Scene) -> (String, String, String) {
        (self.ip.clone(), s.two.clone(), self.association.clone())
    }
}
