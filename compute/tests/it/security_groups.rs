//! A security group change fanned out from one caller reaches every compute
//! host, and each re-applies the chains of its own instances in the group.

use std::sync::Arc;
use std::time::Duration;

use stratus_compute::service::ComputeService;
use stratus_network::firewall::Firewall;
use stratus_network::firewall::render::InstanceFilter;
use stratus_network::linux::FakeHost;
use stratus_network::linux::iptables::Iptables;
use stratus_rpc::clients::ComputeClient;
use stratus_rpc::transport::memory::MemoryTransport;
use stratus_rpc::wire::firewall::{IngressRule, RuleSpec, SecurityGroupUpdate};
use stratus_rpc::wire::ids::InstanceId;
use stratus_rpc::{RequestContext, RpcClient, Transport};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_change_reaches_every_host_with_instances_in_it() {
    let bus = MemoryTransport::new(8, Duration::from_millis(50));
    let locks = std::env::temp_dir();
    let group: stratus_rpc::wire::ids::SecurityGroupId =
        "sg-0000000000000abcd".parse().expect("group");
    let mut hosts = Vec::new();
    let mut serving = Vec::new();
    for i in 0..3u8 {
        let fake = Arc::new(FakeHost::new());
        let firewall = Firewall::new(Iptables::new(fake.clone(), locks.clone()));
        // Hosts 0 and 1 run an instance in the group; host 2 does not.
        if i < 2 {
            let filter = InstanceFilter {
                address: format!("10.0.0.{}", 3 + i).parse().expect("ip"),
                dhcp_server: "10.0.0.2".parse().expect("ip"),
                groups: vec![group.clone()],
            };
            firewall
                .add_instance(InstanceId::new(), filter)
                .await
                .expect("add");
        }
        let host = format!("node{i}").parse().expect("host");
        let server = bus
            .serve(
                "compute",
                Some(&host),
                Arc::new(ComputeService::new(firewall.clone())),
            )
            .await
            .expect("serve");
        serving.push(server);
        hosts.push((fake, firewall));
    }

    let rule = IngressRule::try_from(RuleSpec {
        protocol: "tcp".into(),
        from_port: Some(22),
        to_port: Some(22),
        cidr: Some("0.0.0.0/0".into()),
        source_group: None,
    })
    .expect("rule");
    let update = SecurityGroupUpdate {
        group: group.clone(),
        rules: vec![rule.clone()],
        members: vec![],
    };
    let client = ComputeClient::new(RpcClient::new(
        Arc::new(bus.clone()),
        Duration::from_secs(5),
    ));
    client
        .refresh_security_group(&RequestContext::system(), &update)
        .await
        .expect("fanout");

    for _ in 0..100 {
        let mut all = true;
        for (_, firewall) in &hosts {
            all &= firewall
                .state()
                .await
                .groups
                .get(&group)
                .map(|g| g.rules.clone())
                == Some(vec![rule.clone()]);
        }
        if all {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for (i, (fake, firewall)) in hosts.iter().enumerate() {
        let rules = firewall
            .state()
            .await
            .groups
            .get(&group)
            .map(|g| g.rules.clone());
        assert_eq!(
            rules,
            Some(vec![rule.clone()]),
            "host {i} did not get the change"
        );
        let restored = fake.stdins().last().cloned().unwrap_or_default();
        if i < 2 {
            assert!(
                restored.contains("--dport 22 -j ACCEPT"),
                "host {i} did not re-apply:\n{restored}"
            );
        } else {
            assert!(
                fake.stdins().is_empty(),
                "host 2 has no instance in the group yet applied"
            );
        }
    }
}
