//! What DescribeInstances says of every instance, read item by item.

use stratus::ec2_client::{Client, Ec2ClientError};

/// One instance as the API shows it.
#[derive(Debug, Clone)]
pub struct Instance {
    /// `i-…`.
    pub id: String,
    /// The EC2 state name (`pending`, `running`, `terminated`, …); an
    /// instance in error shows as `terminated` with a `Server.*` reason.
    pub state: String,
    /// `stateReason`: (code, message), when there is one.
    pub reason: Option<(String, String)>,
    /// `privateIpAddress`, once it has one.
    pub address: Option<String>,
}

impl Instance {
    /// The libvirt domain (and instance folder) name: `instance-<hex>`.
    pub fn domain(&self) -> String {
        format!("instance-{}", self.hex())
    }

    /// Its firewall chain: `stratus-inst-` and the first 15 hex digits.
    pub fn chain(&self) -> String {
        format!("stratus-inst-{}", &self.hex()[..15.min(self.hex().len())])
    }

    fn hex(&self) -> &str {
        self.id.trim_start_matches("i-")
    }

    /// Whether it ended in error: shown terminated with a server's reason.
    pub fn in_error(&self) -> bool {
        self.state == "terminated"
            && self
                .reason
                .as_ref()
                .is_some_and(|(code, _)| code.starts_with("Server."))
    }
}

/// Every instance of the client's project.
pub async fn describe_all(client: &Client) -> Result<Vec<Instance>, Ec2ClientError> {
    let xml = client.action("DescribeInstances", &[]).await?;
    Ok(parse(&xml))
}

/// The instances of a DescribeInstances answer. Each instance's fields
/// come after its `instanceId` and before the next one's; the fields read
/// here (state name, reason, address) occur nowhere else in an item.
fn parse(xml: &str) -> Vec<Instance> {
    let mut chunks = xml.split("<instanceId>");
    chunks.next();
    chunks
        .filter_map(|chunk| {
            let id = chunk.split('<').next()?.to_owned();
            let state_xml = between(chunk, "<instanceState>", "</instanceState>")?;
            let reason = between(chunk, "<stateReason>", "</stateReason>").map(|r| {
                (
                    between(r, "<code>", "</code>")
                        .unwrap_or_default()
                        .to_owned(),
                    between(r, "<message>", "</message>")
                        .unwrap_or_default()
                        .to_owned(),
                )
            });
            Some(Instance {
                id,
                state: between(state_xml, "<name>", "</name>")?.to_owned(),
                reason,
                address: between(chunk, "<privateIpAddress>", "</privateIpAddress>")
                    .filter(|a| !a.is_empty())
                    .map(str::to_owned),
            })
        })
        .collect()
}

fn between<'a>(text: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = text.find(open)? + open.len();
    let len = text[start..].find(close)?;
    Some(&text[start..start + len])
}
