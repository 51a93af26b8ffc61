//! The image cache refuses images it cannot trust and stays consistent.

use std::process::Command;
use std::sync::Arc;

use stratus_compute::host::qemu_img::RealQemuImg;
use stratus_compute::image_cache::{ImageCache, ImageError};
use stratus_rpc::wire::compute::ImageRef;
use stratus_test_support::{command, fixtures, images};

/// Runs `qemu-img` with `args`; what it printed. Panics if it failed.
fn qemu_img<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Vec<u8> {
    command::run(Command::new("qemu-img").args(args), "qemu-utils")
}

fn image(id: &str, disk: &std::path::Path) -> ImageRef {
    fixtures::image(id, disk)
}

#[tokio::test]
async fn images_with_a_backing_file_or_odd_format_or_bad_id_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = |name: &str| dir.path().join(name);
    images::qcow2(&p("base.qcow2"), "16M");
    images::qcow2_overlay(&p("base.qcow2"), &p("child.qcow2"));
    qemu_img(&[
        "create",
        "-q",
        "-f",
        "vmdk",
        p("disk.vmdk").to_str().expect("utf8"),
        "16M",
    ]);
    let cache = ImageCache::new(p("_base"), Arc::new(RealQemuImg::default()));

    let err = cache
        .fetch(&image("ami-00000001", &p("child.qcow2")))
        .await
        .expect_err("backing");
    assert!(matches!(err, ImageError::Backing { .. }), "{err}");
    let err = cache
        .fetch(&image("ami-00000002", &p("disk.vmdk")))
        .await
        .expect_err("vmdk");
    assert!(matches!(err, ImageError::Format { .. }), "{err}");
    let err = cache
        .fetch(&image("ami-../../etc", &p("base.qcow2")))
        .await
        .expect_err("id");
    assert!(matches!(err, ImageError::InvalidId(_)), "{err}");
    // Nothing half-written stays in the cache.
    let left: Vec<_> = std::fs::read_dir(p("_base")).expect("cache dir").collect();
    assert!(left.is_empty(), "{left:?}");

    let cached = cache
        .fetch(&image("ami-00000003", &p("base.qcow2")))
        .await
        .expect("fetch");
    assert_eq!(
        (cached.format.as_str(), cached.virtual_size),
        ("qcow2", 16 << 20)
    );
    // Fetched once: a second fetch does not copy again even if the source is gone.
    std::fs::remove_file(p("base.qcow2")).expect("rm");
    assert_eq!(
        cache
            .fetch(&image("ami-00000003", &p("base.qcow2")))
            .await
            .expect("cached"),
        cached
    );
}

/// `qemu-img info --output=json` of a file, parsed.
fn info(path: &std::path::Path) -> serde_json::Value {
    let out = qemu_img(&[
        std::ffi::OsStr::new("info"),
        "--output=json".as_ref(),
        "-U".as_ref(),
        path.as_os_str(),
    ]);
    serde_json::from_slice(&out).expect("json")
}

#[tokio::test]
async fn overlays_copied_from_one_template_are_whole_and_apart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = dir.path().join("source.raw");
    std::fs::write(&source, vec![7u8; 4 << 20]).expect("source");
    let cache = ImageCache::new(dir.path().join("_base"), Arc::new(RealQemuImg::default()));
    let base = cache
        .fetch(&image("ami-0000000000000042", &source))
        .await
        .expect("fetch");
    let (a, b) = (dir.path().join("a/disk"), dir.path().join("b/disk"));
    for disk in [&a, &b] {
        std::fs::create_dir_all(disk.parent().expect("parent")).expect("folder");
        cache.create_overlay(&base, disk, 1).await.expect("overlay");
    }
    for disk in [&a, &b] {
        let i = info(disk);
        assert_eq!(i["format"], "qcow2");
        assert_eq!(
            i["virtual-size"],
            1u64 << 30,
            "grown to the flavor's root_gb"
        );
        let backing = i["backing-filename"].as_str().expect("a backing file");
        assert_eq!(std::path::Path::new(backing), base.disk.as_path());
        assert!(backing.starts_with('/'), "{backing} is relative");
    }
    // A write into one guest's disk is not seen by the other's.
    command::run(
        Command::new("qemu-io")
            .args(["-f", "qcow2", "-c", "write -P 0x55 0 64k"])
            .arg(&a),
        "qemu-utils",
    );
    // qemu-io exits non-zero when the bytes read are not the pattern.
    let holds = |disk: &std::path::Path, pattern: &str| {
        Command::new("qemu-io")
            .args(["-f", "qcow2", "-c", &format!("read -P {pattern} 0 64k")])
            .arg(disk)
            .output()
            .expect("qemu-io")
            .status
            .success()
    };
    assert!(holds(&a, "0x55"), "a lost its write");
    assert!(holds(&b, "0x07"), "b does not show the base's bytes");
    // A second size is a second template; the first is reused.
    let c = dir.path().join("c/disk");
    std::fs::create_dir_all(c.parent().expect("parent")).expect("folder");
    cache.create_overlay(&base, &c, 2).await.expect("overlay");
    assert_eq!(info(&c)["virtual-size"], 2u64 << 30);
    let mut templates: Vec<String> = std::fs::read_dir(dir.path().join("_base"))
        .expect("_base")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".overlay-"))
        .collect();
    templates.sort();
    assert_eq!(
        templates,
        [
            format!("ami-0000000000000042.overlay-{}", 1u64 << 30),
            format!("ami-0000000000000042.overlay-{}", 2u64 << 30)
        ]
    );
}
