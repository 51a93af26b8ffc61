//! A libvirtd of our own inside a network namespace: its run, lib, log and
//! cache folders, and the folder of persistent domain definitions
//! (`/etc/libvirt/qemu`, else it would load the host daemon's domains and
//! write its own where the host daemon finds them), bound from a folder we
//! own; and, where KVM is present but
//! unusable, a `/dev` without `kvm` so it does not re-probe QEMU on every
//! start (DESIGN.md, facts). Tests, benchmarks and the all-in-one use it so
//! guests and their bridges stay inside the namespace.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use stratus_host::CommandError;

/// The private daemon could not be started.
#[derive(Debug, thiserror::Error)]
#[error("private libvirtd in {netns}: {why}")]
pub struct LibvirtdError {
    /// The namespace.
    pub netns: String,
    /// What failed.
    pub why: String,
    /// The I/O error underneath, if one.
    #[source]
    pub source: Option<std::io::Error>,
}

/// Runs in the namespace under `unshare -m`; `$1` is our folder, `$2` is
/// `nokvm` to hide `/dev/kvm`, `$3` is `restart` when virtlogd still runs
/// and only libvirtd starts again (over the same folders, so it finds its
/// guests' state in `run/qemu` and re-attaches to them). Arguments arrive
/// as positional parameters, never spliced into the script.
const SETUP: &str = r#"
set -e
d="$1"
for sub in run lib log cache etc; do mkdir -p "$d/$sub"; done
mkdir -p /run/libvirt /var/lib/libvirt /var/log/libvirt /var/cache/libvirt /etc/libvirt/qemu
mount --bind "$d/etc" /etc/libvirt/qemu
mount --bind "$d/run" /run/libvirt
mount --bind "$d/lib" /var/lib/libvirt
mount --bind "$d/log" /var/log/libvirt
mount --bind "$d/cache" /var/cache/libvirt
if [ "$2" = nokvm ]; then
    new="$d/dev"
    mkdir -p "$new"
    mount -t tmpfs -o mode=0755,size=1m stratus-dev "$new"
    for node in null zero full random urandom tty fuse; do
        if [ -e "/dev/$node" ]; then touch "$new/$node"; mount --bind "/dev/$node" "$new/$node"; fi
    done
    if [ -e /dev/net/tun ]; then mkdir -p "$new/net"; touch "$new/net/tun"; mount --bind /dev/net/tun "$new/net/tun"; fi
    mkdir -p "$new/pts" "$new/shm"
    mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$new/pts"
    ln -s pts/ptmx "$new/ptmx"
    mount -t tmpfs -o mode=1777 shm "$new/shm"
    mount --move "$new" /dev
fi
if [ "$3" != restart ]; then virtlogd -d -p "$d/virtlogd.pid"; fi
libvirtd -d -p "$d/libvirtd.pid"
"#;

/// How [`PrivateLibvirtd::stop_daemon`] ends libvirtd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGTERM, as a service manager's restart does.
    Term,
    /// SIGKILL, as a crash: no clean-up of its socket or pid file.
    Kill,
}

/// A running private libvirtd; stopped (its domains destroyed) on drop.
#[derive(Debug)]
pub struct PrivateLibvirtd {
    netns: String,
    dir: PathBuf,
    uri: String,
    /// Stop the daemon (and destroy its domains) on drop.
    owned: bool,
}

impl PrivateLibvirtd {
    /// Starts virtlogd and libvirtd in `netns`, keeping their files in `dir`.
    pub fn start(netns: &str, dir: &Path) -> Result<Self, LibvirtdError> {
        let fail = |why: String, source: Option<std::io::Error>| LibvirtdError {
            netns: netns.to_owned(),
            why,
            source,
        };
        let io = |e| fail(dir.display().to_string(), Some(e));
        std::fs::create_dir_all(dir).map_err(io)?;
        let dir = dir.canonicalize().map_err(io)?;
        let dir_text = dir
            .to_str()
            .ok_or_else(|| fail("folder path is not UTF-8".into(), None))?;
        let daemon = Self {
            netns: netns.to_owned(),
            uri: format!("qemu:///system?socket={dir_text}/run/libvirt-sock"),
            dir,
            owned: true,
        };
        daemon.launch("start")?;
        Ok(daemon)
    }

    /// Runs the set-up script in the namespace and waits for libvirtd to
    /// answer on its socket.
    fn launch(&self, mode: &str) -> Result<(), LibvirtdError> {
        let dir_text = self
            .dir
            .to_str()
            .ok_or_else(|| self.fail("folder path is not UTF-8".into()))?;
        let kvm = if crate::config::kvm_usable() {
            "kvm"
        } else {
            "nokvm"
        };
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.netns,
                "unshare",
                "-m",
                "--propagation",
                "private",
            ])
            .args(["sh", "-c", SETUP, "sh", dir_text, kvm, mode])
            .output()
            .map_err(|e| self.fail_io("could not run ip netns exec", e))?;
        if !out.status.success() {
            return Err(self.fail(String::from_utf8_lossy(&out.stderr).trim().to_owned()));
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.virsh(&["version"]).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(self.fail("libvirtd did not answer on its socket within 20 s".into()))
    }

    fn fail(&self, why: String) -> LibvirtdError {
        LibvirtdError {
            netns: self.netns.clone(),
            why,
            source: None,
        }
    }

    fn fail_io(&self, what: &str, source: std::io::Error) -> LibvirtdError {
        LibvirtdError {
            source: Some(source),
            ..self.fail(what.to_owned())
        }
    }

    /// Stops libvirtd alone, as a restart or a crash does: virtlogd and the
    /// guests keep running. Returns once the daemon has exited.
    pub fn stop_daemon(&self, how: Stop) -> Result<(), LibvirtdError> {
        let pidfile = self.dir.join("libvirtd.pid");
        let pid = std::fs::read_to_string(&pidfile)
            .map_err(|e| self.fail_io(&pidfile.display().to_string(), e))?;
        let pid = pid.trim().to_owned();
        let signal = match how {
            Stop::Term => Signal::SIGTERM,
            Stop::Kill => Signal::SIGKILL,
        };
        send(&pid, signal)
            .map_err(|e| self.fail_io(&format!("{signal} to libvirtd (pid {pid})"), e.into()))?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if !process_lives(&pid) {
                // A killed daemon leaves its pid file: drop it, so that
                // nothing signals whatever process reuses the pid.
                if std::fs::read_to_string(&pidfile).is_ok_and(|p| p.trim() == pid) {
                    let _ = std::fs::remove_file(&pidfile);
                }
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(self.fail(format!(
            "libvirtd (pid {pid}) still runs 20 s after {signal}"
        )))
    }

    /// Starts libvirtd again after [`Self::stop_daemon`], over the same
    /// folders and namespace.
    pub fn start_daemon(&self) -> Result<(), LibvirtdError> {
        self.launch("restart")
    }

    /// The pid of a running guest's QEMU, from libvirt's state folder.
    pub fn qemu_pid(&self, domain: &str) -> Option<u32> {
        let text = std::fs::read_to_string(self.dir.join("run/qemu").join(format!("{domain}.pid")))
            .ok()?;
        text.trim().parse().ok()
    }

    /// The daemon a previous run left in `dir`, else a new one; either way
    /// it outlives this process, so guests keep running when stratus stops
    /// (the all-in-one's guests in its namespace).
    pub fn shared(netns: &str, dir: &Path) -> Result<Self, LibvirtdError> {
        if let Ok(dir) = dir.canonicalize()
            && let Some(dir_text) = dir.to_str()
        {
            let running = Self {
                netns: netns.to_owned(),
                uri: format!("qemu:///system?socket={dir_text}/run/libvirt-sock"),
                dir: dir.clone(),
                owned: false,
            };
            if running.virsh(&["version"]).is_ok() {
                return Ok(running);
            }
        }
        let mut started = Self::start(netns, dir)?;
        started.owned = false;
        Ok(started)
    }

    /// Stops the daemon a `shared` start left in `dir`, destroying its
    /// domains (tests and benchmarks clean up with it).
    pub fn stop_at(netns: &str, dir: &Path) {
        if let Ok(dir) = dir.canonicalize()
            && let Some(dir_text) = dir.to_str()
        {
            drop(Self {
                netns: netns.to_owned(),
                uri: format!("qemu:///system?socket={dir_text}/run/libvirt-sock"),
                dir: dir.clone(),
                owned: true,
            });
        }
    }

    /// The URI to connect with.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// Runs `virsh -c <uri> args`; its stdout.
    pub fn virsh(&self, args: &[&str]) -> Result<String, CommandError> {
        let line = format!("virsh -c {} {}", self.uri, args.join(" "));
        let out = Command::new("virsh")
            .args(["-q", "-c", &self.uri])
            .args(args)
            .output()
            .map_err(|e| CommandError::io(&line, "could not start", e))?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            return Err(CommandError::failed(
                line,
                format!("{}: {}", out.status, stderr.trim()),
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn kill(&self, pidfile: &str) {
        if let Ok(pid) = std::fs::read_to_string(self.dir.join(pidfile)) {
            let _ = send(&pid, Signal::SIGTERM);
        }
    }
}

/// Sends `signal` to the process whose pid `pid` holds (as a pid file does).
fn send(pid: &str, signal: Signal) -> Result<(), Errno> {
    // 0 and negative numbers name process groups, never one daemon.
    let pid: i32 = pid
        .trim()
        .parse()
        .ok()
        .filter(|&p| p > 0)
        .ok_or(Errno::ESRCH)?;
    nix::sys::signal::kill(Pid::from_raw(pid), signal)
}

/// Whether process `pid` runs (a zombie waiting for its parent does not).
fn process_lives(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which is in parentheses.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

impl Drop for PrivateLibvirtd {
    fn drop(&mut self) {
        if !self.owned {
            return;
        }
        if let Ok(names) = self.virsh(&["list", "--all", "--name"]) {
            for name in names.lines().filter(|n| !n.trim().is_empty()) {
                let _ = self.virsh(&["destroy", name.trim()]);
                let _ = self.virsh(&["undefine", name.trim()]);
            }
        }
        // Guests libvirtd could not destroy (it was stopped, or is gone):
        // their QEMU pid files are still in its state folder.
        if let Ok(entries) = std::fs::read_dir(self.dir.join("run/qemu")) {
            for entry in entries.flatten() {
                let path = entry.path();
                if path.extension().is_some_and(|e| e == "pid")
                    && let Ok(pid) = std::fs::read_to_string(&path)
                    && crate::host::proc::pid_runs(&pid, "qemu")
                {
                    let _ = send(&pid, Signal::SIGKILL);
                }
            }
        }
        self.kill("libvirtd.pid");
        self.kill("virtlogd.pid");
        tracing::debug!(netns = %self.netns, "private libvirtd stopped");
    }
}
