//! The bench's child processes: services of this same binary, each with its
//! own configuration file and log file, killed and reaped however the bench
//! ends (a SIGKILLed bench too, through the parent-death signal); and what
//! `/proc` says of their memory and CPU.

use std::fs::File;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::ScaleError;

/// One running child.
struct Running {
    name: String,
    child: Child,
    log: PathBuf,
}

/// The children of one run; dropping it kills and reaps every one.
#[derive(Default)]
pub struct Children {
    running: Vec<Running>,
}

/// What a child used, read from `/proc` while it still runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// Peak resident set (`VmHWM`), in KiB.
    pub peak_rss_kib: u64,
    /// Its own user and system CPU time, in seconds.
    pub cpu_secs: f64,
    /// That of its children that have ended (qemu-img runs), in seconds.
    pub children_cpu_secs: f64,
}

impl Children {
    /// Starts `stratus --config <config> <args…>` as `name`, its output in
    /// `<logs>/<name>.log`. The child sees none of this process's
    /// `STRATUS_*` or `RUST_LOG` variables: its file is its whole
    /// configuration.
    pub fn start(
        &mut self,
        name: &str,
        config: &Path,
        args: &[&str],
        logs: &Path,
    ) -> Result<(), ScaleError> {
        let program = std::env::current_exe().map_err(|e| ScaleError::Setup {
            what: "finding this program".into(),
            source: e.into(),
        })?;
        let log = logs.join(format!("{name}.log"));
        let out = File::create(&log).map_err(|e| ScaleError::Setup {
            what: format!("creating a log file {}", log.display()),
            source: e.into(),
        })?;
        let err = out.try_clone().map_err(|e| ScaleError::Setup {
            what: format!("creating a log file {}", log.display()),
            source: e.into(),
        })?;
        let mut command = Command::new(&program);
        for (key, _) in std::env::vars_os() {
            let inherited = key.to_str().is_some_and(|k| k.starts_with("STRATUS_"));
            if inherited || key == "RUST_LOG" {
                command.env_remove(&key);
            }
        }
        die_with_this_process(&mut command);
        let child = command
            .arg("--config")
            .arg(config)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| ScaleError::Setup {
                what: format!(
                    "starting a service {} {}",
                    program.display(),
                    args.join(" ")
                ),
                source: e.into(),
            })?;
        self.running.push(Running {
            name: name.to_owned(),
            child,
            log,
        });
        Ok(())
    }

    /// An error naming the first child that has exited, with the end of its
    /// log; `Ok` while all run.
    pub fn check(&mut self) -> Result<(), ScaleError> {
        for r in &mut self.running {
            if let Ok(Some(status)) = r.child.try_wait() {
                return Err(ScaleError::ChildExited {
                    name: r.name.clone(),
                    status: status.to_string(),
                    log_tail: tail(&r.log, 15),
                });
            }
        }
        Ok(())
    }

    /// What the child called `name` has used so far.
    pub fn usage(&self, name: &str) -> Option<Usage> {
        let r = self.running.iter().find(|r| r.name == name)?;
        usage_of(r.child.id())
    }

    /// The end of every child's log that says anything, for a failed run.
    pub fn log_tails(&self, lines: usize) -> String {
        let mut out = String::new();
        for r in &self.running {
            let text = tail(&r.log, lines);
            if !text.trim().is_empty() {
                out.push_str(&format!("--- {} ({})\n{text}\n", r.name, r.log.display()));
            }
        }
        out
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        // SIGKILL, not a polite stop: what they leave on the broker is
        // exclusive queues (gone with the connection) and work queues with
        // an expiry, and their state is in the scratch folder removed next.
        for r in &mut self.running {
            let _ = r.child.kill();
        }
        for r in &mut self.running {
            let _ = r.child.wait();
        }
    }
}

/// Makes the child get SIGKILL when this process dies, so a bench killed
/// past its clean-up (SIGKILL, a crash) leaves no services behind. The
/// kernel sends it when the spawning *thread* ends: the bench spawns from
/// the runtime's threads, which live as long as the process.
#[allow(unsafe_code)] // pre_exec is the only way to arm it in the child
fn die_with_this_process(command: &mut Command) {
    let parent = nix::unistd::getpid();
    // SAFETY: the closure runs in the forked child before exec and makes two
    // system calls (prctl, getppid), both async-signal-safe; it allocates
    // nothing (an io::Error from an errno is not boxed).
    unsafe {
        command.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)?;
            // The parent may have died before the signal was armed.
            if nix::unistd::getppid() != parent {
                return Err(nix::errno::Errno::ESRCH.into());
            }
            Ok(())
        });
    }
}

/// The last `lines` lines of a log file.
fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Clock ticks per second of `/proc/<pid>/stat` times; 100 on every Linux
/// this runs on (the kernel's USER_HZ, fixed for user space).
const TICKS_PER_SEC: f64 = 100.0;

/// Peak RSS and CPU time of process `pid`, from `/proc`.
pub fn usage_of(pid: u32) -> Option<Usage> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let peak_rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which is in parentheses and may hold
    // spaces): state is field 3; utime, stime, cutime and cstime 14 to 17.
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
    let secs = |a: u64, b: u64| (a + b) as f64 / TICKS_PER_SEC;
    Some(Usage {
        peak_rss_kib,
        cpu_secs: secs(ticks(11)?, ticks(12)?),
        children_cpu_secs: secs(ticks(13)?, ticks(14)?),
    })
}

/// The pid of the process listening on TCP `port` on this machine (the
/// broker, to show its share of the CPU), if one is found.
pub fn listener_pid(port: u16) -> Option<u32> {
    let wanted = format!(":{port:04X}");
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // local_address, state (0A: listening), inode.
            if let (Some(local), Some("0A"), Some(inode)) =
                (fields.get(1), fields.get(3).copied(), fields.get(9))
                && local.ends_with(&wanted)
            {
                inodes.push(format!("socket:[{inode}]"));
            }
        }
    }
    if inodes.is_empty() {
        return None;
    }
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| {
            std::fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|fds| {
                fds.flatten().any(|fd| {
                    std::fs::read_link(fd.path())
                        .is_ok_and(|target| inodes.iter().any(|i| target.as_os_str() == i.as_str()))
                })
            })
        })
}

/// The port of an AMQP URL (`amqp://user:pass@host:port/vhost`), else the
/// scheme's default.
pub fn amqp_port(url: &str) -> u16 {
    let default = if url.starts_with("amqps:") {
        5671
    } else {
        5672
    };
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    host_port
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or(default)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_broker_port_comes_from_the_url() {
        assert_eq!(amqp_port("amqp://guest:guest@127.0.0.1:5673/%2f"), 5673);
        assert_eq!(amqp_port("amqp://broker/%2f"), 5672);
        assert_eq!(amqp_port("amqps://u:p@broker"), 5671);
    }

    #[test]
    fn this_process_has_a_peak_rss_and_cpu_time() {
        let usage = usage_of(std::process::id()).expect("own /proc entry");
        assert!(usage.peak_rss_kib > 0);
        assert!(usage.cpu_secs >= 0.0);
    }
}
