//! The distributed mode: api, scheduler, network and compute each a
//! process of its own over a private RabbitMQ node (so the broker can be
//! killed too), guests in the cloud's own namespace with its own libvirtd
//! (`GuestCloud`, which the end-to-end tests use). A kill is SIGKILL of one
//! service, or of the broker's whole process tree; the restart starts it
//! again over the same state.

use stratus_test_support::broker::PrivateBroker;

use crate::guest_cloud::GuestCloud;
use crate::site::{Site, View};

/// The services and the broker; removed on drop (services first).
pub struct Distributed {
    cloud: GuestCloud,
    broker: PrivateBroker,
    view: View,
}

/// The broker, among the services.
const BROKER: &str = "broker";

impl Distributed {
    /// Starts the broker, then the cloud on it.
    pub async fn start() -> Self {
        let broker = tokio::task::spawn_blocking(PrivateBroker::start)
            .await
            .expect("the broker starts");
        let (cloud, credentials) = GuestCloud::start_on("chd", &["chaos"], &broker.url()).await;
        let credentials = credentials.into_iter().next().expect("an account");
        let work = cloud.state("chaos");
        std::fs::create_dir_all(&work).expect("work folder");
        let view = View {
            endpoint: cloud.endpoint.clone(),
            key: credentials.key,
            secret: credentials.secret,
            ami: cloud.ami.clone(),
            netns: cloud.router.clone(),
            libvirt_dir: cloud.state("libvirt"),
            compute_state: cloud.state("compute-a"),
            network_state: cloud.state("network"),
            work,
        };
        Self {
            cloud,
            broker,
            view,
        }
    }

    /// The cloud's process name of a victim.
    fn process(victim: &str) -> &str {
        match victim {
            "compute" => "compute-a",
            other => other,
        }
    }
}

impl Site for Distributed {
    fn mode(&self) -> &'static str {
        "distributed"
    }

    fn view(&self) -> &View {
        &self.view
    }

    fn victims(&self) -> &'static [&'static str] {
        &["api", "scheduler", "network", "compute", BROKER]
    }

    fn kill(&mut self, victim: &str) {
        if victim == BROKER {
            self.broker.kill();
        } else {
            self.cloud.kill(Self::process(victim));
        }
    }

    fn restart(&mut self, victim: &str) {
        if victim == BROKER {
            self.broker.restart();
        } else {
            self.cloud.respawn(Self::process(victim));
        }
    }

    fn log_files(&self) -> Vec<(String, std::path::PathBuf)> {
        ["api", "scheduler", "network", "compute-a"]
            .into_iter()
            .map(|name| (name.to_owned(), self.cloud.state(&format!("{name}.log"))))
            .collect()
    }
}
