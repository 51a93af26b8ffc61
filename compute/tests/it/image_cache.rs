//! The image cache refuses images it cannot trust and stays consistent.

use std::process::Command;
use std::sync::Arc;

use stratus_compute::host::qemu_img::RealQemuImg;
use stratus_compute::image_cache::{ImageCache, ImageError};
use stratus_rpc::wire::compute::ImageRef;

fn qemu_img(args: &[&str]) {
    let out = Command::new("qemu-img")
        .args(args)
        .output()
        .expect("qemu-img");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn image(id: &str, disk: &std::path::Path) -> ImageRef {
    ImageRef {
        id: id.into(),
        disk: disk.to_owned(),
        kernel: None,
        ramdisk: None,
        properties: Default::default(),
    }
}

#[tokio::test]
async fn images_with_a_backing_file_or_odd_format_or_bad_id_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = |name: &str| dir.path().join(name);
    qemu_img(&[
        "create",
        "-q",
        "-f",
        "qcow2",
        p("base.qcow2").to_str().expect("utf8"),
        "16M",
    ]);
    qemu_img(&[
        "create",
        "-q",
        "-f",
        "qcow2",
        "-F",
        "qcow2",
        "-b",
        p("base.qcow2").to_str().expect("utf8"),
        p("child.qcow2").to_str().expect("utf8"),
    ]);
    qemu_img(&[
        "create",
        "-q",
        "-f",
        "vmdk",
        p("disk.vmdk").to_str().expect("utf8"),
        "16M",
    ]);
    let cache = ImageCache::new(p("_base"), Arc::new(RealQemuImg));

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
