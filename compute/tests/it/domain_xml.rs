//! Domain XML: golden files per image kind, and libvirt's own parser.
//! `STRATUS_UPDATE_GOLDEN=1 cargo test` rewrites the files; review the diff.

use std::path::PathBuf;
use std::process::Command;

use stratus_compute::xml::{Boot, DomainSpec, DomainType, Nic, render};
use stratus_test_support::{command, golden};

fn spec(boot: Boot) -> DomainSpec {
    let dir = PathBuf::from("/var/lib/stratus/instances/instance-0123456789abcdef0");
    DomainSpec {
        name: "instance-0123456789abcdef0".into(),
        uuid: uuid::Uuid::from_bytes([7; 16]),
        domain_type: DomainType::Qemu,
        memory_mb: 512,
        vcpus: 1,
        boot,
        disk: dir.join("disk"),
        config_drive: None,
        nic: Some(Nic {
            bridge: "br100".into(),
            mac: "02:16:3e:aa:bb:cc".into(),
            device: "tap070707070707".into(),
        }),
        console_log: dir.join("console.log"),
    }
}

fn kernel_boot() -> Boot {
    let dir = PathBuf::from("/var/lib/stratus/instances/instance-0123456789abcdef0");
    Boot::Kernel {
        kernel: dir.join("kernel"),
        ramdisk: Some(dir.join("ramdisk")),
        cmdline: "root=/dev/vda console=ttyS0".into(),
    }
}

#[test]
fn kernel_and_ramdisk_image() {
    golden!("kernel_ramdisk.xml", &render(&spec(kernel_boot())));
}

#[test]
fn whole_disk_image_with_config_drive() {
    let mut spec = spec(Boot::Disk);
    spec.config_drive = Some(PathBuf::from("/var/lib/stratus/instances/x/disk.config"));
    spec.domain_type = DomainType::Kvm;
    spec.vcpus = 2;
    golden!("disk_config_drive.xml", &render(&spec));
}

#[test]
fn values_are_escaped_not_spliced() {
    let mut spec = spec(kernel_boot());
    spec.boot = Boot::Kernel {
        kernel: PathBuf::from("/k"),
        ramdisk: None,
        cmdline: "console=ttyS0 </cmdline><devices/> & \"quoted\"".into(),
    };
    let xml = render(&spec);
    assert!(
        xml.contains("&lt;/cmdline&gt;&lt;devices/&gt; &amp;"),
        "{xml}"
    );
    assert_eq!(xml.matches("<devices>").count(), 1);
}

/// libvirt's own parser accepts what we render: define a throwaway domain on
/// the libvirtd that deploy/dev-setup starts, then undefine it.
#[test]
fn libvirt_accepts_the_rendered_xml() {
    for (kind, boot) in [("kernel", kernel_boot()), ("disk", Boot::Disk)] {
        let mut spec = spec(boot);
        let hex = uuid::Uuid::new_v4().simple().to_string();
        spec.name = format!("stratus-test-{kind}-{}", &hex[..8]);
        spec.uuid = uuid::Uuid::new_v4();
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("domain.xml");
        std::fs::write(&file, render(&spec)).expect("write xml");
        command::run_or(
            Command::new("virt-xml-validate").arg(&file).arg("domain"),
            "libvirt-clients",
            &format!("the {kind} XML breaks libvirt's schema"),
        );
        command::run_or(
            virsh(&["define"]).arg(&file),
            "deploy/dev-setup installs libvirt",
            &format!("libvirt refused the {kind} XML"),
        );
        let dumped = command::output(&mut virsh(&["dumpxml", &spec.name]), "virsh dumpxml");
        let dumped = String::from_utf8_lossy(&dumped.stdout);
        assert!(
            dumped.contains("02:16:3e:aa:bb:cc") && dumped.contains("console.log"),
            "{dumped}"
        );
        let undefine = virsh(&["undefine", &spec.name])
            .status()
            .expect("virsh undefine");
        assert!(undefine.success());
    }
}

/// `virsh -q -c qemu:///system args`.
fn virsh(args: &[&str]) -> Command {
    let mut command = Command::new("virsh");
    command.args(["-q", "-c", "qemu:///system"]).args(args);
    command
}
