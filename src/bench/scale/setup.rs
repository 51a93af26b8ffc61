//! What a scale run is made of before anything starts: one configuration
//! file per service in the scratch folder (a fresh exchange, loopback
//! ports, fake hypervisors, a network controller that runs no dnsmasq),
//! the bench's image and its access key.

use std::path::{Path, PathBuf};

use stratus_api::config::Quotas;
use stratus_compute::config::DriverKind;
use stratus_rpc::config::Backend;

use super::{Options, ScaleError};
use crate::config::Config;

/// The instance type every bench instance has (1 vCPU, 512 MiB, 1 GiB).
pub const INSTANCE_TYPE: &str = "m1.tiny";

/// The scratch folder's layout and the settings every service shares.
#[derive(Debug)]
pub struct Plan {
    /// The scratch folder.
    pub dir: PathBuf,
    /// The settings shared by every child; each gets its own `[node]`.
    pub base: Config,
    /// `http://127.0.0.1:<port>/`.
    pub endpoint: String,
}

fn setup<E: Into<super::super::error::Cause>>(what: &'static str) -> impl FnOnce(E) -> ScaleError {
    move |e| ScaleError::Setup {
        what: what.into(),
        source: e.into(),
    }
}

/// A loopback port nobody listens on now.
fn free_port() -> Result<u16, ScaleError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(setup("finding a free port"))
}

/// Room for every instance with half again to spare, spread evenly: the
/// scheduler, not capacity, decides where they go.
fn per_host(options: &Options) -> u64 {
    let even = options.instances.div_ceil(options.workers.max(1)) as u64;
    even + even.div_ceil(2) + 1
}

impl Plan {
    /// The settings for a run in `dir`: `[rpc]` (the broker) and
    /// `[scheduler]` come from `bench`; the rest is the bench's own.
    pub fn new(bench: &Config, dir: &Path, options: &Options) -> Result<Self, ScaleError> {
        let mut base = Config {
            rpc: bench.rpc.clone(),
            scheduler: bench.scheduler.clone(),
            ..Config::default()
        };
        base.rpc.backend = Backend::Amqp;
        base.rpc.exchange = format!("stratus-scale-{}", uuid::Uuid::new_v4().simple());
        // Queues of hosts that are gone go a minute later; fanout and reply
        // queues go with their connections.
        base.rpc.queue_expiry_ms = Some(60_000);
        // Per-request lines would cost the services more than some requests.
        base.log.filter = "warn,lapin=off".to_owned();
        base.node.host = "control".parse().ok();

        let port = free_port()?;
        let endpoint = format!("http://127.0.0.1:{port}/");
        let api = &mut base.api;
        api.listen = format!("127.0.0.1:{port}");
        api.endpoint = endpoint.clone();
        api.metadata_listen = format!("127.0.0.1:{}", free_port()?);
        api.image_roots = vec![dir.join("images")];
        let plenty = 1 << 40;
        api.quotas = Quotas {
            instances: plenty,
            vcpus: plenty,
            memory_mb: plenty,
            ..Quotas::default()
        };
        let tiny = api
            .instance_type(INSTANCE_TYPE)
            .cloned()
            .ok_or_else(|| ScaleError::Setup {
                what: "instance type".into(),
                source: format!("{INSTANCE_TYPE} is not among the default instance types").into(),
            })?;

        let network = &mut base.network;
        network.dhcp = false;
        network.fixed_range = "10.0.0.0/8".to_owned();
        // Room for every instance twice over, but no more: the controller
        // writes a row per address when the project's network is made, on
        // the first allocation, inside the measured time (65,536 rows took
        // 1.5 s of its CPU).
        network.network_size = u32::try_from((options.instances * 2).next_power_of_two())
            .unwrap_or(1 << 24)
            .clamp(256, 1 << 24);
        network.metadata_host = None;

        let slots = per_host(options);
        let compute = &mut base.compute;
        compute.driver = DriverKind::Fake;
        compute.report_interval_secs = options.report_interval.as_secs().max(1);
        compute.vcpus = Some(u32::try_from(slots * u64::from(tiny.vcpus)).unwrap_or(u32::MAX));
        compute.memory_mb = Some(slots * tiny.memory_mb);
        compute.disk_gb = Some(slots * tiny.root_gb.max(1));
        compute.config_drive = false;
        Ok(Self {
            dir: dir.to_owned(),
            base,
            endpoint,
        })
    }

    /// Where a service keeps its state.
    pub fn state_dir(&self, name: &str) -> PathBuf {
        self.dir.join("state").join(name)
    }

    /// Where the children's logs go.
    pub fn logs(&self) -> PathBuf {
        self.dir.join("logs")
    }

    /// The api service's settings (its database is in its state folder).
    pub fn api_config(&self) -> Config {
        self.config_for("api", None)
    }

    /// Writes the configuration of child `name` (state in its own folder,
    /// host `host` or `control`) and returns its path.
    pub fn write(&self, name: &str, host: Option<&str>) -> Result<PathBuf, ScaleError> {
        let config = self.config_for(name, host);
        let text = toml::to_string_pretty(&config).map_err(setup("configuration"))?;
        let path = self.dir.join(format!("{name}.toml"));
        std::fs::write(&path, text).map_err(|e| ScaleError::Setup {
            what: format!("writing a configuration {}", path.display()),
            source: e.into(),
        })?;
        Ok(path)
    }

    fn config_for(&self, name: &str, host: Option<&str>) -> Config {
        let mut config = self.base.clone();
        config.node.state_dir = self.state_dir(name);
        if let Some(host) = host {
            config.node.host = host.parse().ok();
        }
        config
    }

    /// Creates the folders the children write into.
    pub fn create_dirs(&self) -> Result<(), ScaleError> {
        for dir in [self.logs(), self.dir.join("images"), self.dir.join("state")] {
            std::fs::create_dir_all(&dir).map_err(|e| ScaleError::Setup {
                what: format!("creating the scratch folders {}", dir.display()),
                source: e.into(),
            })?;
        }
        Ok(())
    }
}

/// What the load needs from the api's tables.
#[derive(Debug)]
pub struct Seeded {
    /// The image instances launch from.
    pub image_id: String,
    /// An access key of project `scale`.
    pub key: String,
    /// Its secret.
    pub secret: String,
}

/// Creates a 1 GiB qcow2 image (a few hundred KiB on disk; as large as
/// m1.tiny's root disk, so overlays need no resize), registers it and an
/// access key in the api database, before the api service opens it.
pub async fn seed(plan: &Plan) -> Result<Seeded, ScaleError> {
    let disk = plan.dir.join("images").join("scale.qcow2");
    let disk_text = disk.to_str().ok_or_else(|| ScaleError::Setup {
        what: "image".into(),
        source: format!("{} is not UTF-8", disk.display()).into(),
    })?;
    stratus_host::HostCommands::stdout(
        &stratus_compute::host::local(),
        "qemu-img",
        &["create", "-q", "-f", "qcow2", disk_text, "1G"],
    )
    .await
    .map_err(setup("creating the image"))?;
    let config = plan.api_config();
    let db = stratus_api::start::open_db(&config.api, &config.node.state_dir)
        .await
        .map_err(setup("opening the api database"))?;
    let imported = stratus_api::admin::import_image(&db, "scale", &disk, None, None)
        .await
        .map_err(setup("importing the image"))?;
    let c = stratus_api::admin::create_credentials(&db, "scale", "scale", false)
        .await
        .map_err(setup("creating credentials"))?;
    Ok(Seeded {
        image_id: imported.image_id,
        key: c.access_key,
        secret: c.secret_key,
    })
}
