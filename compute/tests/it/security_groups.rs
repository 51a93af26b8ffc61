//! A security group change fanned out from one caller reaches every compute
//! host, and each re-applies the chains of its own instances in the group.

use std::sync::Arc;
use std::time::Duration;

use stratus_host::firewall::render::{InstanceFilter, port_device};
use stratus_rpc::clients::ComputeClient;
use stratus_rpc::wire::firewall::{IngressRule, RuleSpec, SecurityGroupUpdate};
use stratus_rpc::wire::ids::{InstanceId, SecurityGroupId};
use stratus_rpc::{RequestContext, RpcClient, Transport};

use crate::harness::Harness;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_change_reaches_every_host_with_instances_in_it() {
    let group: SecurityGroupId = "sg-0000000000000abcd".parse().expect("group");
    // Three workers on one bus; hosts 0 and 1 run an instance in the group.
    let first = Harness::start().await;
    let mut hosts = Vec::new();
    for i in 0..3u8 {
        let fake = Arc::new(stratus_host::FakeHost::new());
        let firewall = stratus_host::firewall::Firewall::new(
            stratus_host::iptables::Iptables::new(fake.clone(), std::env::temp_dir()),
            Some(stratus_host::nft::Nft::new(fake.clone())),
            None,
            Vec::new(),
        );
        if i < 2 {
            let id = InstanceId::new();
            let filter = InstanceFilter {
                address: format!("10.0.0.{}", 3 + i).parse().expect("ip"),
                mac: format!("02:16:3e:00:00:{i:02x}").parse().expect("mac"),
                device: port_device(&id),
                dhcp_server: "10.0.0.2".parse().expect("ip"),
                groups: vec![group.clone()],
                source_dest_check: true,
            };
            firewall.add_instance(id, filter).await.expect("add");
        }
        let service = stratus_compute::service::ComputeService::new(
            first.worker.manager.clone(),
            firewall.clone(),
        );
        let host = format!("node{}", 10 + i).parse().expect("host");
        let serving = first
            .bus
            .serve("compute", Some(&host), Arc::new(service))
            .await
            .expect("serve");
        hosts.push((fake, firewall, serving));
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
        egress: vec![IngressRule::allow_all()],
        members: vec![],
    };
    let client = ComputeClient::new(RpcClient::new(
        Arc::new(first.bus.clone()),
        Duration::from_secs(5),
    ));
    client
        .refresh_security_group(&RequestContext::system(), &update)
        .await
        .expect("fanout");

    for _ in 0..100 {
        let mut all = true;
        for (_, firewall, _) in &hosts {
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
    for (i, (fake, firewall, _)) in hosts.iter().enumerate() {
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
                restored.contains("--dport 22 -j stratus-pass"),
                "host {i} did not re-apply:\n{restored}"
            );
        } else {
            assert!(
                fake.stdins().is_empty(),
                "host 2 has no instance in the group yet applied"
            );
        }
    }
    let _ = first.bus.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_given_new_groups_is_re_applied_with_their_rules() {
    let old: SecurityGroupId = "sg-0000000000000000a".parse().expect("group");
    let new: SecurityGroupId = "sg-0000000000000000b".parse().expect("group");
    let harness = Harness::start().await;
    let fake = Arc::new(stratus_host::FakeHost::new());
    let firewall = stratus_host::firewall::Firewall::new(
        stratus_host::iptables::Iptables::new(fake.clone(), std::env::temp_dir()),
        Some(stratus_host::nft::Nft::new(fake.clone())),
        None,
        Vec::new(),
    );
    let id = InstanceId::new();
    let filter = InstanceFilter {
        address: "10.0.0.3".parse().expect("ip"),
        mac: "02:16:3e:00:00:01".parse().expect("mac"),
        device: port_device(&id),
        dhcp_server: "10.0.0.2".parse().expect("ip"),
        groups: vec![old.clone()],
        source_dest_check: true,
    };
    firewall.add_instance(id, filter).await.expect("add");
    let service = stratus_compute::service::ComputeService::new(
        harness.worker.manager.clone(),
        firewall.clone(),
    );
    let host = "node20".parse().expect("host");
    let _serving = harness
        .bus
        .serve("compute", Some(&host), Arc::new(service))
        .await
        .expect("serve");
    let client = ComputeClient::new(RpcClient::new(
        Arc::new(harness.bus.clone()),
        Duration::from_secs(5),
    ));
    let rule = IngressRule::try_from(RuleSpec {
        protocol: "tcp".into(),
        from_port: Some(8443),
        to_port: Some(8443),
        cidr: Some("0.0.0.0/0".into()),
        source_group: None,
    })
    .expect("rule");
    let request = stratus_rpc::wire::compute::InstanceGroups {
        instance_id: id,
        security_groups: vec![SecurityGroupUpdate {
            group: new.clone(),
            rules: vec![rule.clone()],
            egress: vec![IngressRule::allow_all()],
            members: vec!["10.0.0.3".parse().expect("ip")],
        }],
    };
    client
        .set_instance_groups(&RequestContext::system(), &host, &request)
        .await
        .expect("regroup");
    let state = firewall.state().await;
    assert_eq!(state.instances[&id].groups, vec![new.clone()]);
    assert_eq!(state.groups[&new].rules, vec![rule]);
    let restored = fake.stdins().last().cloned().unwrap_or_default();
    assert!(
        restored.contains("--dport 8443 -j stratus-pass"),
        "not re-applied:\n{restored}"
    );

    // An instance the host has no filters for: refused, nothing applied.
    let applied = fake.stdins().len();
    let unknown = stratus_rpc::wire::compute::InstanceGroups {
        instance_id: InstanceId::new(),
        ..request
    };
    let refused = client
        .set_instance_groups(&RequestContext::system(), &host, &unknown)
        .await
        .expect_err("unknown instance");
    assert!(
        matches!(&refused, stratus_rpc::RpcError::Remote { source, .. } if source.kind == "InstanceNotFound"),
        "{refused:?}"
    );
    assert_eq!(fake.stdins().len(), applied);
    let _ = harness.bus.close().await;
}
