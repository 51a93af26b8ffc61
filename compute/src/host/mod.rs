//! Host commands the compute worker runs, each behind a narrow trait.

pub mod command;
pub mod libvirtd;
pub mod qemu_img;
