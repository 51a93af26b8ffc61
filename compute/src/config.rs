//! The `[compute]` section of the configuration.

use serde::{Deserialize, Serialize};

/// Which hypervisor driver runs guests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DriverKind {
    /// Real guests through libvirt.
    Libvirt,
    /// Domains kept in memory (embedded demos, scale tests). A fake-driver
    /// worker runs no host network commands either (bridges, VLANs,
    /// iptables go to an in-memory fake), so many can share one machine
    /// without touching its network; disks are still real qcow2 overlays.
    Fake,
}

/// The domain type asked of libvirt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VirtType {
    /// KVM where it is usable, QEMU's emulation elsewhere.
    Auto,
    /// Always KVM.
    Kvm,
    /// Always QEMU emulation (TCG).
    Qemu,
}

/// The compute worker's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ComputeConfig {
    /// `libvirt` or `fake`.
    pub driver: DriverKind,
    /// `auto`, `kvm` or `qemu`.
    pub virt_type: VirtType,
    /// The libvirt daemon to use.
    pub libvirt_uri: String,
    /// This host's availability zone.
    pub availability_zone: String,
    /// Seconds between capacity reports (which are also heartbeats).
    pub report_interval_secs: u64,
    /// Seconds between power-state syncs with the hypervisor.
    pub sync_interval_secs: u64,
    /// Seconds a new guest has to reach running.
    pub spawn_timeout_secs: u64,
    /// vCPUs offered to instances; unset: the host's CPUs.
    pub vcpus: Option<u32>,
    /// Memory in MiB offered to instances; unset: the host's memory.
    pub memory_mb: Option<u64>,
    /// Disk in GiB offered to instances; unset: the instances folder's file system.
    pub disk_gb: Option<u64>,
    /// Kernel command line for images with a kernel.
    pub kernel_cmdline: String,
    /// Most bytes of console log returned by GetConsoleOutput.
    pub console_max_bytes: u64,
    /// How SSH keys are injected into disks: `auto` (the kernel nbd path
    /// where the nbd module is loaded, else userspace), `kernel`
    /// (`qemu-nbd -c`), or `userspace` (qemu-storage-daemon FUSE export and
    /// a loop device).
    pub injection: crate::inject::expose::ExposeMethod,
    /// Attach a config drive (ISO 9660, label `config-2`) to every instance.
    pub config_drive: bool,
    /// Seconds between reconciles with the conductor: instances it says are
    /// gone (or held by another host) are removed from this host.
    pub reconcile_interval_secs: u64,
    /// Start guests even where tenant isolation cannot be enforced (no
    /// br_netfilter, no nft, …). Never on a host shared by customers: every
    /// start and every launch logs what is missing.
    pub insecure_allow_unisolated: bool,
    /// The cloud's own ranges (every project's fixed range, the public
    /// range), from the `[network]` section (the binary fills it in): no
    /// guest may send from them but its own address, even with its
    /// source/destination check off.
    #[serde(skip)]
    pub cloud_ranges: Vec<ipnet::Ipv4Net>,
}

impl Default for ComputeConfig {
    fn default() -> Self {
        Self {
            driver: DriverKind::Libvirt,
            virt_type: VirtType::Auto,
            libvirt_uri: "qemu:///system".to_owned(),
            availability_zone: "nova".to_owned(),
            report_interval_secs: 10,
            sync_interval_secs: 60,
            spawn_timeout_secs: 60,
            vcpus: None,
            memory_mb: None,
            disk_gb: None,
            kernel_cmdline: "root=/dev/vda console=ttyS0".to_owned(),
            console_max_bytes: 64 * 1024,
            injection: crate::inject::expose::ExposeMethod::Auto,
            config_drive: true,
            reconcile_interval_secs: 20,
            insecure_allow_unisolated: false,
            cloud_ranges: Vec::new(),
        }
    }
}

/// Whether KVM can run guests here: `/dev/kvm` exists and is not the PVM
/// device, which exposes the node but hangs guests (DESIGN.md, facts).
pub fn kvm_usable() -> bool {
    std::path::Path::new("/dev/kvm").exists()
        && !std::path::Path::new("/sys/module/kvm_pvm").exists()
}

impl VirtType {
    /// The domain type this setting picks on this host.
    pub fn resolve(self) -> crate::xml::DomainType {
        match self {
            Self::Kvm => crate::xml::DomainType::Kvm,
            Self::Qemu => crate::xml::DomainType::Qemu,
            Self::Auto if kvm_usable() => crate::xml::DomainType::Kvm,
            Self::Auto => crate::xml::DomainType::Qemu,
        }
    }
}
