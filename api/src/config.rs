//! The `[api]` section of the configuration.

use serde::{Deserialize, Serialize};

/// An instance type (flavor) offered by `RunInstances`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceType {
    /// Its name, e.g. `m1.small`.
    pub name: String,
    /// Virtual CPUs.
    pub vcpus: u32,
    /// Memory in MiB.
    pub memory_mb: u64,
    /// Root disk in GiB (0: the image's own size).
    pub root_gb: u64,
}

/// Per-project limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Quotas {
    /// Instances not terminated.
    pub instances: u64,
    /// Their vCPUs.
    pub vcpus: u64,
    /// Their memory in MiB.
    pub memory_mb: u64,
    /// Key pairs.
    pub key_pairs: u64,
    /// Security groups.
    pub security_groups: u64,
    /// Elastic IP addresses (AWS's default is 5).
    pub addresses: u64,
}

impl Default for Quotas {
    fn default() -> Self {
        // Nova's defaults.
        Self {
            instances: 10,
            vcpus: 20,
            memory_mb: 50 * 1024,
            key_pairs: 100,
            security_groups: 10,
            addresses: 5,
        }
    }
}

/// The api service's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Where the EC2 Query API listens.
    pub listen: String,
    /// The database: `sqlite://…` or `postgres://…`; unset means a SQLite
    /// file `api.sqlite` in the state folder.
    pub database_url: Option<String>,
    /// The region name clients sign for and `DescribeRegions` shows.
    pub region: String,
    /// The URL clients reach the API at, as `DescribeRegions` shows it.
    pub endpoint: String,
    /// How far a request's signing time may be from now, in seconds.
    pub signature_window_secs: u64,
    /// Largest request body accepted, in bytes.
    pub max_request_bytes: usize,
    /// Seconds a client has to send a request's head, and again its body,
    /// on the EC2 and metadata endpoints; a slower one is cut off.
    pub read_timeout_secs: u64,
    /// Largest user data accepted (decoded), in bytes.
    pub max_user_data_bytes: usize,
    /// Seconds an instance may stay pending without any news from its
    /// build before it is put in error (a host that died and never came
    /// back, a report lost for good); 0 never gives up.
    pub build_timeout_secs: u64,
    /// Seconds a pending launch no host took (never placed, or handed
    /// back), or a terminate or stop its host never finished, may go
    /// without news before the api casts it again (safe: each build is
    /// granted to one host). When the api starts, all are cast again at
    /// once. 0: only then.
    pub recast_unplaced_secs: u64,
    /// The instance type when `RunInstances` names none.
    pub default_instance_type: String,
    /// The instance types offered.
    pub instance_types: Vec<InstanceType>,
    /// Per-project limits.
    pub quotas: Quotas,
    /// Folders image files may be registered from (every compute host must
    /// read the same paths); only files inside them are accepted.
    pub image_roots: Vec<std::path::PathBuf>,
    /// Where the metadata service listens (compute hosts DNAT
    /// 169.254.169.254:80 here).
    pub metadata_listen: String,
    /// Refuse metadata requests without an IMDSv2 token.
    pub metadata_require_token: bool,
    /// Bind the metadata service inside this network namespace (where the
    /// guests' bridges are); `stratus all-in-one` sets it to `[node] netns`.
    pub metadata_netns: Option<String>,
    /// Public addressing, from the `[network]` section (the binary fills
    /// it in); none: the cloud hands out no public addresses.
    #[serde(skip)]
    pub public: Option<PublicAddressing>,
}

/// Where public addresses come from and how they are named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicAddressing {
    /// The range; its first host address is never handed out.
    pub range: ipnet::Ipv4Net,
    /// Whether instances get one at launch unless asked otherwise.
    pub on_launch: bool,
    /// Public DNS names are `ec2-<dashed address>.<this>`.
    pub dns_domain: String,
}

fn flavor(name: &str, vcpus: u32, memory_mb: u64, root_gb: u64) -> InstanceType {
    InstanceType {
        name: name.to_owned(),
        vcpus,
        memory_mb,
        root_gb,
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:8773".to_owned(),
            database_url: None,
            region: "nova".to_owned(),
            endpoint: "http://127.0.0.1:8773/".to_owned(),
            signature_window_secs: 300,
            max_request_bytes: 512 * 1024,
            max_user_data_bytes: 16 * 1024,
            build_timeout_secs: 600,
            recast_unplaced_secs: 20,
            read_timeout_secs: 30,
            default_instance_type: "m1.small".to_owned(),
            instance_types: vec![
                flavor("m1.tiny", 1, 512, 1),
                flavor("m1.small", 1, 2048, 20),
                flavor("m1.medium", 2, 4096, 40),
                flavor("m1.large", 4, 8192, 80),
                flavor("m1.xlarge", 8, 16384, 160),
            ],
            quotas: Quotas::default(),
            image_roots: vec!["/var/lib/stratus/images".into()],
            metadata_listen: "0.0.0.0:8775".to_owned(),
            metadata_require_token: false,
            metadata_netns: None,
            public: None,
        }
    }
}

impl ApiConfig {
    /// The instance type called `name`.
    pub fn instance_type(&self, name: &str) -> Option<&InstanceType> {
        self.instance_types.iter().find(|t| t.name == name)
    }
}
