//! Images: RegisterImage (a disk file on a path every compute host reads,
//! under `[api] image_roots`), DescribeImages, DeregisterImage.

use std::path::{Component, Path, PathBuf};

use super::super::error::Ec2Error;
use super::super::filters;
use super::super::params::shown;
use super::super::{Ctx, ids};
use crate::db::images::ImageRow;

const FILTERS: &[&str] = &[
    "name",
    "image-id",
    "state",
    "architecture",
    "image-type",
    "is-public",
    "owner-id",
    "kernel-id",
    "ramdisk-id",
    "description",
];

/// `InvalidAMIID.NotFound` for `id`.
pub fn not_found(id: &str) -> Ec2Error {
    Ec2Error::client(
        "InvalidAMIID.NotFound",
        format!("The image id '[{}]' does not exist", shown(id)),
    )
}

/// The image `id` of type `kind` the caller may use.
pub async fn usable(cx: &Ctx<'_>, id: &str, kind: &str) -> Result<ImageRow, Ec2Error> {
    let prefix = match kind {
        "kernel" => "aki",
        "ramdisk" => "ari",
        _ => "ami",
    };
    if !ids::is_id(prefix, id) {
        return Err(Ec2Error::client(
            "InvalidAMIID.Malformed",
            format!("Invalid id: \"{}\" (expecting \"{prefix}-...\")", shown(id)),
        ));
    }
    match cx.cloud.db.image(&cx.caller.project_id, id).await? {
        Some(image) if image.image_type == kind && image.state == "available" => Ok(image),
        _ => Err(not_found(id)),
    }
}

/// Why an image location cannot be registered.
#[derive(Debug, thiserror::Error)]
pub enum LocationError {
    /// Relative, or climbing with `..`.
    #[error("the image location {0} must be an absolute path without '..'")]
    NotAbsolute(String),
    /// The path does not resolve.
    #[error("the image location {location} cannot be read")]
    Unreadable {
        /// The location, as shown.
        location: String,
        /// Why it does not resolve.
        #[source]
        source: std::io::Error,
    },
    /// A folder or a device.
    #[error("the image location {0} is not a file")]
    NotAFile(String),
    /// Not under `[api] image_roots`.
    #[error("the image location {location} is outside the image folders ({roots})")]
    Outside {
        /// The location, as shown.
        location: String,
        /// The allowed folders.
        roots: String,
    },
}

impl From<LocationError> for Ec2Error {
    fn from(e: LocationError) -> Self {
        match &e {
            // The caller's own path: why it does not resolve is theirs to know.
            LocationError::Unreadable { source, .. } => {
                Ec2Error::invalid(format!("{e}: {}", source.kind()))
            }
            _ => Ec2Error::invalid(e.to_string()),
        }
    }
}

/// The file a location names, if it is an absolute path (or `file://` URL)
/// inside one of the allowed roots, after resolving links and `..`.
pub fn resolve_location(location: &str, roots: &[PathBuf]) -> Result<PathBuf, LocationError> {
    let path = location.strip_prefix("file://").unwrap_or(location);
    let path = Path::new(path);
    if !path.is_absolute() || path.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(LocationError::NotAbsolute(shown(location)));
    }
    let real = path
        .canonicalize()
        .map_err(|source| LocationError::Unreadable {
            location: shown(location),
            source,
        })?;
    if !real.is_file() {
        return Err(LocationError::NotAFile(shown(location)));
    }
    if !roots
        .iter()
        .any(|root| root.canonicalize().is_ok_and(|r| real.starts_with(r)))
    {
        let roots: Vec<String> = roots.iter().map(|r| r.display().to_string()).collect();
        return Err(LocationError::Outside {
            location: shown(location),
            roots: roots.join(", "),
        });
    }
    Ok(real)
}

/// RegisterImage: a machine image from a disk file, with an optional kernel
/// and ramdisk registered before (`stratus image import`).
pub async fn register_image(cx: &Ctx<'_>) -> Result<String, Ec2Error> {
    let name = cx.params.required("Name")?;
    if !(3..=128).contains(&name.len())
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "()[] ./-'@_".contains(c))
    {
        return Err(Ec2Error::invalid(format!(
            "Invalid image name '{}': 3 to 128 letters, digits or ()[] ./-'@_",
            shown(name)
        )));
    }
    let location = cx.params.required("ImageLocation")?;
    let file = resolve_location(location, &cx.cloud.config.image_roots)?;
    let architecture = cx.params.get("Architecture").unwrap_or("x86_64");
    if !["x86_64", "i386", "arm64"].contains(&architecture) {
        return Err(Ec2Error::invalid(format!(
            "Invalid architecture '{}'",
            shown(architecture)
        )));
    }
    let kernel_id = match cx.params.get("KernelId").filter(|k| !k.is_empty()) {
        Some(id) => Some(usable(cx, id, "kernel").await?.image_id),
        None => None,
    };
    let ramdisk_id = match cx.params.get("RamdiskId").filter(|r| !r.is_empty()) {
        Some(id) => Some(usable(cx, id, "ramdisk").await?.image_id),
        None => None,
    };
    let description = cx.params.get("Description").map(str::to_owned);
    if description.as_ref().is_some_and(|d| d.len() > 255) {
        return Err(Ec2Error::invalid(
            "The description must be up to 255 characters.",
        ));
    }
    cx.dry_run()?;
    let image = ImageRow {
        description,
        kernel_id,
        ramdisk_id,
        architecture: architecture.to_owned(),
        ..ImageRow::machine(
            &ids::new_id("ami"),
            &cx.caller.project_id,
            name,
            &file.display().to_string(),
        )
    };
    cx.cloud.db.insert_image(&image).await?;
    let mut x = cx.response();
    x.text("imageId", &image.image_id);
    Ok(cx.finish(x))
}

/// DescribeImages: the caller's and public images, by id, owner and filters.
pub async fn describe_images(cx: &Ctx<'_>) -> Result<String, Ec2Error> {
    let ids = cx.params.list("ImageId")?;
    let owners = cx.params.list("Owner")?;
    let wanted = filters::parse(cx.params, FILTERS)?;
    let mut images = cx.cloud.db.images(&cx.caller.project_id).await?;
    for id in &ids {
        if !images.iter().any(|i| &i.image_id == id) {
            return Err(not_found(id));
        }
    }
    let me = &cx.caller.project_id;
    let tags = cx.cloud.db.tags(me, None).await?;
    let tags_of = |id: &str| super::tags::of(&tags, id);
    images.retain(|i| {
        let owner = ids::account_id(&i.project_id);
        // An owner is named by "self", its account id, or (as clients were
        // shown before account ids) its project id.
        (ids.is_empty() || ids.contains(&i.image_id))
            && (owners.is_empty()
                || owners.iter().any(|o| {
                    (o == "self" && &i.project_id == me)
                        || *o == owner
                        || o == &i.project_id
                        || (o == "amazon" && i.is_public)
                }))
            && filters::matches(&wanted, &tags_of(&i.image_id), |n| match n {
                "name" => vec![i.name.clone()],
                "image-id" => vec![i.image_id.clone()],
                "state" => vec![i.state.clone()],
                "architecture" => vec![i.architecture.clone()],
                "image-type" => vec![i.image_type.clone()],
                "is-public" => vec![i.is_public.to_string()],
                "owner-id" => vec![owner.clone()],
                "kernel-id" => i.kernel_id.iter().cloned().collect(),
                "ramdisk-id" => i.ramdisk_id.iter().cloned().collect(),
                "description" => i.description.iter().cloned().collect(),
                _ => vec![],
            })
    });
    let mut x = cx.response();
    x.list("imagesSet", &images, |x, i| {
        x.text("imageId", &i.image_id)
            .text("imageLocation", &i.location)
            .text("imageState", &i.state)
            .text("imageOwnerId", &ids::account_id(&i.project_id))
            .text("creationDate", &i.created_at)
            .value("isPublic", i.is_public)
            .text("architecture", &i.architecture)
            .text("imageType", &i.image_type)
            .opt("kernelId", i.kernel_id.as_deref())
            .opt("ramdiskId", i.ramdisk_id.as_deref())
            .text("name", &i.name)
            .opt("description", i.description.as_deref())
            .text("rootDeviceType", "instance-store")
            .text("rootDeviceName", "/dev/vda")
            .open("blockDeviceMapping")
            .close("blockDeviceMapping")
            .text("virtualizationType", "hvm")
            .text("hypervisor", "xen");
        let own = tags_of(&i.image_id);
        if !own.is_empty() {
            x.list("tagSet", &own, |x, (k, v)| {
                x.text("key", k).text("value", v);
            });
        }
    });
    Ok(cx.finish(x))
}

/// DeregisterImage: only the owner may; the file stays where it is.
pub async fn deregister_image(cx: &Ctx<'_>) -> Result<String, Ec2Error> {
    let id = cx.params.required("ImageId")?;
    let prefix_ok = ["ami", "aki", "ari"].iter().any(|p| ids::is_id(p, id));
    if !prefix_ok {
        return Err(Ec2Error::client(
            "InvalidAMIID.Malformed",
            format!("Invalid id: \"{}\"", shown(id)),
        ));
    }
    let image = cx
        .cloud
        .db
        .image(&cx.caller.project_id, id)
        .await?
        .ok_or_else(|| not_found(id))?;
    if image.project_id != cx.caller.project_id {
        return Err(Ec2Error::auth(
            "AuthFailure",
            format!("Not authorized for image:{id}"),
        ));
    }
    cx.dry_run()?;
    cx.cloud.db.delete_image(&cx.caller.project_id, id).await?;
    cx.cloud.db.drop_tags(id).await?;
    Ok(cx.ok())
}
