//! `qemu-img`: inspect images, create overlays, resize. Arguments are always
//! a vector; paths never pass through a shell.

use std::path::Path;

use async_trait::async_trait;
use serde::Deserialize;

/// A `qemu-img` run failed.
#[derive(Debug, thiserror::Error)]
#[error("qemu-img {args}: {why}")]
pub struct QemuImgError {
    /// The arguments.
    pub args: String,
    /// Exit status and stderr, or why it did not start.
    pub why: String,
}

/// What `qemu-img info` says of an image.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ImageInfo {
    /// `raw`, `qcow2`, …
    pub format: String,
    /// Size the guest sees, in bytes.
    #[serde(rename = "virtual-size")]
    pub virtual_size: u64,
    /// The image's own backing file, if it has one.
    #[serde(rename = "backing-filename", default)]
    pub backing_file: Option<String>,
}

/// Image operations.
#[async_trait]
pub trait QemuImg: Send + Sync + std::fmt::Debug {
    /// Inspects an image (format probed, as for an untrusted upload).
    async fn info(&self, image: &Path) -> Result<ImageInfo, QemuImgError>;
    /// Creates a qcow2 overlay of `base` (whose format is `base_format`).
    async fn create_overlay(
        &self,
        base: &Path,
        base_format: &str,
        overlay: &Path,
    ) -> Result<(), QemuImgError>;
    /// Grows an image to `bytes`.
    async fn resize(&self, image: &Path, bytes: u64) -> Result<(), QemuImgError>;
}

/// The real `qemu-img`.
#[derive(Debug, Default, Clone)]
pub struct RealQemuImg;

async fn run(args: &[&str]) -> Result<String, QemuImgError> {
    super::command::run("qemu-img", args)
        .await
        .map_err(|e| QemuImgError {
            args: args.join(" "),
            why: e.why,
        })
}

fn text(path: &Path) -> Result<&str, QemuImgError> {
    path.to_str().ok_or_else(|| QemuImgError {
        args: path.display().to_string(),
        why: "path is not UTF-8".into(),
    })
}

#[async_trait]
impl QemuImg for RealQemuImg {
    async fn info(&self, image: &Path) -> Result<ImageInfo, QemuImgError> {
        let json = run(&["info", "--output=json", text(image)?]).await?;
        serde_json::from_str(&json).map_err(|e| QemuImgError {
            args: format!("info {}", image.display()),
            why: format!("unreadable output: {e}"),
        })
    }

    async fn create_overlay(
        &self,
        base: &Path,
        base_format: &str,
        overlay: &Path,
    ) -> Result<(), QemuImgError> {
        run(&[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-b",
            text(base)?,
            "-F",
            base_format,
            text(overlay)?,
        ])
        .await
        .map(|_| ())
    }

    async fn resize(&self, image: &Path, bytes: u64) -> Result<(), QemuImgError> {
        run(&[
            "resize",
            "-q",
            "-f",
            "qcow2",
            text(image)?,
            &bytes.to_string(),
        ])
        .await
        .map(|_| ())
    }
}
