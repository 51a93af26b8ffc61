use std::process::{Child, Command, Stdio};

use crate::command::{sh, try_sh};

/// A network namespace of the test's own, its loopback up; deleted (its
/// processes killed first) on drop.
pub struct Netns(String);

impl Netns {
    /// Creates `st-<tag>-<8 hex digits>`. Needs root.
    pub fn new(tag: &str) -> Self {
        let name = crate::names::unique(&format!("st-{tag}"));
        let (created, why) = try_sh("ip", &["netns", "add", &name]);
        assert!(created, "creating a network namespace needs root: {why}");
        let netns = Self(name);
        sh("ip", &["-n", &netns.0, "link", "set", "lo", "up"]);
        netns
    }

    /// The namespace's name, for `ip -n`, `ip netns exec` and host-command seams.
    pub fn name(&self) -> &str {
        &self.0
    }

    /// Runs a command inside the namespace; panics with stderr on failure.
    pub fn run(&self, program: &str, args: &[&str]) -> String {
        sh("ip", &self.argv(program, args))
    }

    /// Runs a command inside the namespace; whether it succeeded, and its output.
    pub fn try_run(&self, program: &str, args: &[&str]) -> (bool, String) {
        try_sh("ip", &self.argv(program, args))
    }

    fn argv<'a>(&'a self, program: &'a str, args: &[&'a str]) -> Vec<&'a str> {
        let mut argv = vec!["netns", "exec", self.0.as_str(), program];
        argv.extend_from_slice(args);
        argv
    }

    /// A veth pair, both ends down: `name` in this namespace, `peer_name`
    /// in `peer`.
    pub fn veth(&self, name: &str, peer: &Netns, peer_name: &str) {
        sh(
            "ip",
            &[
                "link", "add", name, "netns", &self.0, "type", "veth", "peer", "name", peer_name,
                "netns", &peer.0,
            ],
        );
    }

    /// The namespace's filter table, as `iptables-save` prints it.
    pub fn iptables_save(&self) -> String {
        self.run("iptables-save", &["-t", "filter"])
    }

    /// A TCP listener on `address:port` in this namespace that accepts and
    /// closes, stopped on drop. (Not `python3 -m http.server`: it looks its
    /// address up in DNS when it starts, which waits out the resolver's
    /// timeout in a namespace with no DNS.)
    pub fn listen_tcp(&self, address: &str, port: u16) -> Served {
        let script = format!(
            "import socket\n\
             s = socket.socket()\n\
             s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
             s.bind(('{address}', {port}))\n\
             s.listen(64)\n\
             while True:\n\
             \x20   s.accept()[0].close()\n"
        );
        let child = Command::new("ip")
            .args(["netns", "exec", &self.0, "python3", "-c", &script])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start a TCP listener in the namespace");
        Served(child)
    }

    /// The MAC of `device` in this namespace.
    pub fn mac(&self, device: &str) -> String {
        self.run("cat", &[&format!("/sys/class/net/{device}/address")])
            .trim()
            .to_owned()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Ok(out) = Command::new("ip").args(["netns", "pids", &self.0]).output() {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-KILL", pid]).status();
            }
        }
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// A process the test started, killed when dropped.
pub struct Served(Child);

impl Served {
    /// Takes charge of `child`.
    pub fn new(child: Child) -> Self {
        Self(child)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
