//! A cloud under test that can be crashed a piece at a time, and where to
//! look for what it leaves behind.

use std::path::PathBuf;

use stratus::ec2_client::Client;

/// Where a cloud serves and keeps its state, for the load and the checks.
#[derive(Debug, Clone)]
pub struct View {
    /// The EC2 endpoint.
    pub endpoint: String,
    /// The project's access key and secret.
    pub key: String,
    pub secret: String,
    /// The tiny image.
    pub ami: String,
    /// The namespace of the guests' bridge, dnsmasq and firewall; SSH runs there.
    pub netns: String,
    /// The private libvirtd's folder (its socket, its per-domain QEMU logs).
    pub libvirt_dir: PathBuf,
    /// The compute worker's state folder (its `instances`).
    pub compute_state: PathBuf,
    /// The network controller's state folder (its database, DHCP files).
    pub network_state: PathBuf,
    /// Where the harness keeps its own files (the SSH key).
    pub work: PathBuf,
}

impl View {
    /// A client of the project.
    pub fn client(&self) -> Client {
        Client::new(&self.endpoint, "nova", &self.key, &self.secret)
    }

    /// The libvirt URI of the private libvirtd.
    pub fn uri(&self) -> String {
        format!(
            "qemu:///system?socket={}/run/libvirt-sock",
            self.libvirt_dir.display()
        )
    }
}

/// A cloud whose pieces may be SIGKILLed and restarted.
pub trait Site {
    /// What it is, for the report.
    fn mode(&self) -> &'static str;
    /// Where it serves and keeps state.
    fn view(&self) -> &View;
    /// What may be killed.
    fn victims(&self) -> &'static [&'static str];
    /// SIGKILLs `victim` (blocking until it is gone).
    fn kill(&mut self, victim: &str);
    /// Starts `victim` again (blocking until it is started, not until it serves).
    fn restart(&mut self, victim: &str);
    /// Each process's log file, by process name.
    fn log_files(&self) -> Vec<(String, PathBuf)>;
}
