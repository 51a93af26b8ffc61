//! libvirt domain XML, written with quick-xml so every value is escaped.

use std::path::{Path, PathBuf};

use quick_xml::Writer;
use quick_xml::events::BytesText;

/// The hypervisor type libvirt runs the guest under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DomainType {
    /// Hardware virtualization.
    Kvm,
    /// Software emulation (TCG).
    Qemu,
}

impl DomainType {
    fn as_str(self) -> &'static str {
        match self {
            Self::Kvm => "kvm",
            Self::Qemu => "qemu",
        }
    }
}

/// How the guest boots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Boot {
    /// Direct kernel boot.
    Kernel {
        /// The kernel image.
        kernel: PathBuf,
        /// The initramfs, if the image has one.
        ramdisk: Option<PathBuf>,
        /// The kernel command line.
        cmdline: String,
    },
    /// From the disk's boot loader.
    Disk,
}

/// The guest's NIC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nic {
    /// The bridge it joins.
    pub bridge: String,
    /// Its MAC address.
    pub mac: String,
    /// The tap device libvirt creates for it (named, so its filters can
    /// exist before it does).
    pub device: String,
}

/// Everything the domain XML says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainSpec {
    /// `instance-<hex>`.
    pub name: String,
    /// The instance's UUID.
    pub uuid: uuid::Uuid,
    /// kvm or qemu.
    pub domain_type: DomainType,
    /// Memory in MiB.
    pub memory_mb: u64,
    /// vCPUs.
    pub vcpus: u32,
    /// Kernel or disk boot.
    pub boot: Boot,
    /// The qcow2 root disk.
    pub disk: PathBuf,
    /// A config drive image, attached read-only, if any.
    pub config_drive: Option<PathBuf>,
    /// The NIC, if the instance has a network.
    pub nic: Option<Nic>,
    /// Where the first serial port is logged.
    pub console_log: PathBuf,
}

type Result = std::io::Result<()>;

fn text(w: &mut Writer<Vec<u8>>, name: &str, value: &str) -> Result {
    w.create_element(name)
        .write_text_content(BytesText::new(value))?;
    Ok(())
}

fn path(p: &std::path::Path) -> String {
    p.display().to_string()
}

/// Renders the domain XML.
pub fn render(spec: &DomainSpec) -> String {
    let mut writer = Writer::new_with_indent(Vec::new(), b' ', 2);
    // Writing to a Vec cannot fail.
    let _ = write_domain(&mut writer, spec);
    let mut xml = String::from_utf8(writer.into_inner()).unwrap_or_default();
    xml.push('\n');
    xml
}

fn write_domain(w: &mut Writer<Vec<u8>>, spec: &DomainSpec) -> Result {
    w.create_element("domain")
        .with_attribute(("type", spec.domain_type.as_str()))
        .write_inner_content(|w| {
            text(w, "name", &spec.name)?;
            text(w, "uuid", &spec.uuid.to_string())?;
            w.create_element("memory")
                .with_attribute(("unit", "MiB"))
                .write_text_content(BytesText::new(&spec.memory_mb.to_string()))?;
            text(w, "vcpu", &spec.vcpus.to_string())?;
            w.create_element("os").write_inner_content(|w| {
                w.create_element("type")
                    .with_attribute(("arch", "x86_64"))
                    .with_attribute(("machine", "pc"))
                    .write_text_content(BytesText::new("hvm"))?;
                match &spec.boot {
                    Boot::Kernel {
                        kernel,
                        ramdisk,
                        cmdline,
                    } => {
                        text(w, "kernel", &path(kernel))?;
                        if let Some(ramdisk) = ramdisk {
                            text(w, "initrd", &path(ramdisk))?;
                        }
                        text(w, "cmdline", cmdline)?;
                    }
                    Boot::Disk => {
                        w.create_element("boot")
                            .with_attribute(("dev", "hd"))
                            .write_empty()?;
                    }
                }
                Ok(())
            })?;
            w.create_element("features").write_inner_content(|w| {
                w.create_element("acpi").write_empty()?;
                Ok(())
            })?;
            w.create_element("clock")
                .with_attribute(("offset", "utc"))
                .write_empty()?;
            text(w, "on_poweroff", "destroy")?;
            text(w, "on_reboot", "restart")?;
            text(w, "on_crash", "destroy")?;
            w.create_element("devices")
                .write_inner_content(|w| write_devices(w, spec))?;
            Ok(())
        })?;
    Ok(())
}

/// A file-backed virtio disk.
fn write_disk(
    w: &mut Writer<Vec<u8>>,
    format: &str,
    file: &Path,
    dev: &str,
    readonly: bool,
) -> Result {
    w.create_element("disk")
        .with_attribute(("type", "file"))
        .with_attribute(("device", "disk"))
        .write_inner_content(|w| {
            w.create_element("driver")
                .with_attribute(("name", "qemu"))
                .with_attribute(("type", format))
                .write_empty()?;
            w.create_element("source")
                .with_attribute(("file", path(file).as_str()))
                .write_empty()?;
            w.create_element("target")
                .with_attribute(("dev", dev))
                .with_attribute(("bus", "virtio"))
                .write_empty()?;
            if readonly {
                w.create_element("readonly").write_empty()?;
            }
            Ok(())
        })?;
    Ok(())
}

fn write_devices(w: &mut Writer<Vec<u8>>, spec: &DomainSpec) -> Result {
    write_disk(w, "qcow2", &spec.disk, "vda", false)?;
    if let Some(drive) = &spec.config_drive {
        // A virtio disk needs no ATA or SCSI CD-ROM drivers in the guest.
        write_disk(w, "raw", drive, "vdb", true)?;
    }
    if let Some(nic) = &spec.nic {
        w.create_element("interface")
            .with_attribute(("type", "bridge"))
            .write_inner_content(|w| {
                w.create_element("mac")
                    .with_attribute(("address", nic.mac.as_str()))
                    .write_empty()?;
                w.create_element("source")
                    .with_attribute(("bridge", nic.bridge.as_str()))
                    .write_empty()?;
                w.create_element("target")
                    .with_attribute(("dev", nic.device.as_str()))
                    .write_empty()?;
                w.create_element("model")
                    .with_attribute(("type", "virtio"))
                    .write_empty()?;
                Ok(())
            })?;
    }
    w.create_element("serial")
        .with_attribute(("type", "file"))
        .write_inner_content(|w| {
            w.create_element("source")
                .with_attribute(("path", path(&spec.console_log).as_str()))
                .write_empty()?;
            w.create_element("target")
                .with_attribute(("port", "0"))
                .write_empty()?;
            Ok(())
        })?;
    w.create_element("serial")
        .with_attribute(("type", "pty"))
        .write_inner_content(|w| {
            w.create_element("target")
                .with_attribute(("port", "1"))
                .write_empty()?;
            Ok(())
        })?;
    Ok(())
}
