//! The network namespace guest networking lives in when stratus keeps it
//! off the host's own network (the all-in-one's default): made once, with
//! loopback up, forwarding on, and the metadata address on its loopback so
//! guests reach the metadata service without any NAT; and its public link,
//! a veth pair from the host's root namespace, so the host reaches public
//! addresses from its own shell.

use ipnet::Ipv4Net;

use crate::{CommandError, HostCommands, RealHost, check_ifname};

/// The link-local address guests ask for metadata.
pub const METADATA_ADDRESS: &str = "169.254.169.254";

/// Makes `name` if missing and prepares it; safe to repeat.
pub async fn prepare(name: &str) -> Result<RealHost, CommandError> {
    let host = RealHost::new();
    let exists = host
        .run("ip", &["netns", "list"], None)
        .await?
        .stdout
        .lines()
        .any(|l| l.split_whitespace().next() == Some(name));
    if !exists {
        match host.run("ip", &["netns", "add", name], None).await {
            Ok(_) => {}
            // Another stratus process made it first.
            Err(e) if e.why.contains("File exists") => {}
            Err(e) => return Err(e),
        }
    }
    let inside = RealHost::in_netns(name);
    inside.run("ip", &["link", "set", "lo", "up"], None).await?;
    inside
        .run("sysctl", &["-qw", "net.ipv4.ip_forward=1"], None)
        .await?;
    let address = format!("{METADATA_ADDRESS}/32");
    match inside
        .run("ip", &["addr", "add", &address, "dev", "lo"], None)
        .await
    {
        Ok(_) => {}
        Err(e) if e.why.contains("File exists") || e.why.contains("already assigned") => {}
        Err(e) => return Err(e),
    }
    Ok(inside)
}

/// The host's end of namespace `name`'s public link: `<name>-gw` when that
/// is a valid interface name (`stratus-gw` for the default namespace), else
/// `sgw-` and a hash of the name, so every namespace has its own within the
/// kernel's 15 characters.
pub fn public_host_end(name: &str) -> String {
    let readable = format!("{name}-gw");
    if check_ifname(&readable).is_ok() {
        return readable;
    }
    // FNV-1a: stable across builds and releases, unlike std's hasher, so a
    // later stratus finds (and removes) the link an earlier one made.
    let hash = name.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    format!("sgw-{hash:08x}")
}

/// Joins the host's root namespace to namespace `name` by a veth pair, made
/// if missing: `inside` in the namespace (the network host's public
/// interface) and [`public_host_end`] on the host, holding `gateway` (the
/// public range's router address and prefix) and up. Safe to repeat; an
/// `inside` that is not such a veth (a dummy an earlier run made) is
/// replaced. Returns the host end's name.
pub async fn link_public(
    name: &str,
    inside: &str,
    gateway: Ipv4Net,
) -> Result<String, CommandError> {
    link_public_with(
        &RealHost::new(),
        &RealHost::in_netns(name),
        name,
        inside,
        gateway,
    )
    .await
}

/// [`link_public`] through `host` (the root namespace) and `netns` (the
/// namespace `name`).
async fn link_public_with(
    host: &dyn HostCommands,
    netns: &dyn HostCommands,
    name: &str,
    inside: &str,
    gateway: Ipv4Net,
) -> Result<String, CommandError> {
    let outside = public_host_end(name);
    check_ifname(&outside)?;
    check_ifname(inside)?;
    if !(is_veth(host, &outside).await && is_veth(netns, inside).await) {
        // Half a pair cannot be (a veth dies with its peer), so what is
        // there is something else under our names: make the pair afresh.
        let _ = host.run("ip", &["link", "del", &outside], None).await;
        let _ = netns.run("ip", &["link", "del", inside], None).await;
        host.run(
            "ip",
            &[
                "link", "add", &outside, "type", "veth", "peer", "name", inside, "netns", name,
            ],
            None,
        )
        .await?;
    }
    let address = gateway.to_string();
    host.run("ip", &["addr", "replace", &address, "dev", &outside], None)
        .await?;
    host.run("ip", &["link", "set", &outside, "up"], None)
        .await?;
    netns
        .run("ip", &["link", "set", inside, "up"], None)
        .await?;
    Ok(outside)
}

/// Whether `dev` exists where `host` runs and is a veth.
async fn is_veth(host: &dyn HostCommands, dev: &str) -> bool {
    host.stdout("ip", &["-d", "-o", "link", "show", "dev", dev])
        .await
        .is_ok_and(|out| out.split_whitespace().any(|w| w == "veth"))
}

/// Kills what still runs in `name` and deletes it with its public link;
/// for clean-up paths, so failures are ignored.
pub fn remove(name: &str) {
    use std::process::Command;
    if let Ok(out) = Command::new("ip").args(["netns", "pids", name]).output() {
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            let _ = Command::new("kill").args(["-KILL", pid]).status();
        }
    }
    let _ = Command::new("ip").args(["netns", "del", name]).status();
    // The pair would go when the namespace is finally freed, which can be
    // later than its name; deleting our end takes both now, so the range's
    // route leaves the host with the namespace.
    let host_end = public_host_end(name);
    if check_ifname(&host_end).is_ok() {
        let _ = Command::new("ip")
            .args(["link", "del", &host_end])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FakeHost;

    #[test]
    fn host_ends_are_readable_when_short_and_unique_and_short_when_not() {
        assert_eq!(public_host_end("stratus"), "stratus-gw");
        let a = public_host_end("st-aio-1234abcd");
        let b = public_host_end("st-aio-1234abce");
        assert!(a.starts_with("sgw-") && a.len() <= 15, "{a}");
        assert_ne!(a, b);
        assert!(check_ifname(&public_host_end("a name with spaces")).is_ok());
    }

    #[tokio::test]
    async fn a_missing_link_is_made_as_one_veth_pair_then_addressed_and_up() {
        let host = FakeHost::new();
        // `ip link show` finds nothing; every later command succeeds.
        host.answer("ip", Err("Device \"stratus-gw\" does not exist."));
        let netns = FakeHost::new();
        let gateway: Ipv4Net = "172.24.4.1/24".parse().expect("cidr");
        let end = link_public_with(&host, &netns, "stratus", "stratus-pub", gateway)
            .await
            .expect("linked");
        assert_eq!(end, "stratus-gw");
        let host_calls = host.command_lines();
        assert_eq!(
            host_calls,
            [
                "ip -d -o link show dev stratus-gw",
                "ip link del stratus-gw",
                "ip link add stratus-gw type veth peer name stratus-pub netns stratus",
                "ip addr replace 172.24.4.1/24 dev stratus-gw",
                "ip link set stratus-gw up",
            ]
        );
        let netns_calls = netns.command_lines();
        assert_eq!(
            netns_calls,
            ["ip link del stratus-pub", "ip link set stratus-pub up"]
        );
    }

    #[tokio::test]
    async fn an_existing_pair_is_kept_and_given_its_address_again() {
        let host = FakeHost::new();
        host.answer(
            "ip",
            Ok("5: stratus-gw@if4: <BROADCAST> mtu 1500 \\    veth addrgenmode eui64"),
        );
        let netns = FakeHost::new();
        netns.answer(
            "ip",
            Ok("4: stratus-pub@if5: <BROADCAST> mtu 1500 \\    veth addrgenmode eui64"),
        );
        let gateway: Ipv4Net = "172.24.4.1/24".parse().expect("cidr");
        let end = link_public_with(&host, &netns, "stratus", "stratus-pub", gateway)
            .await
            .expect("linked");
        assert_eq!(end, "stratus-gw");
        let host_calls = host.command_lines();
        assert_eq!(
            host_calls,
            [
                "ip -d -o link show dev stratus-gw",
                "ip addr replace 172.24.4.1/24 dev stratus-gw",
                "ip link set stratus-gw up",
            ]
        );
        let netns_calls = netns.command_lines();
        assert_eq!(
            netns_calls,
            [
                "ip -d -o link show dev stratus-pub",
                "ip link set stratus-pub up",
            ]
        );
    }
}
