//! The metadata DNAT: guests ask 169.254.169.254:80, and each compute host
//! sends that to the api service's metadata port, as Nova did. The source
//! address is kept, which is how the service knows who asks.

use std::net::Ipv4Addr;

use crate::CommandError;
use crate::iptables::Iptables;

/// The address guests ask.
pub const METADATA_ADDRESS: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 254);
/// The nat chain stratus owns.
pub const CHAIN: &str = "stratus-metadata";

/// The nat-table restore input that sends metadata requests to
/// `target:port`, given the table as it is now.
pub fn render(saved: &str, target: Ipv4Addr, port: u16) -> String {
    let jump = format!("-A PREROUTING -j {CHAIN}");
    let has_jump = saved.lines().any(|l| l.trim() == jump);
    let mut out = format!("*nat\n:{CHAIN} - [0:0]\n");
    out.push_str(&format!(
        "-A {CHAIN} -d {METADATA_ADDRESS}/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination {target}:{port}\n"
    ));
    if !has_jump {
        out.push_str(&format!("-I PREROUTING 1 -j {CHAIN}\n"));
    }
    out.push_str("COMMIT\n");
    out
}

/// Installs (or updates) the DNAT; idempotent.
pub async fn ensure_dnat(
    iptables: &Iptables,
    target: Ipv4Addr,
    port: u16,
) -> Result<(), CommandError> {
    iptables
        .update_table("nat", |saved| Some(render(saved, target, port)))
        .await
}
