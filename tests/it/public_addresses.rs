//! Public addresses on real guests (issue 19), seen from the outside: the
//! client namespace, which holds the public range's gateway on its link to
//! the router's public interface, as the host does in the all-in-one. Two
//! guests in project A, one in project B, under QEMU (TCG):
//! - an instance's automatic public IP is in DescribeInstances
//!   (`ipAddress`, `dnsName`) and in its metadata, and SSH to it from the
//!   outside reaches the instance;
//! - security groups apply on the public address as on the fixed one (a
//!   listener on 8080 is closed on both until a rule opens it);
//! - an Elastic IP associated to instance 1 replaces its public IP and
//!   reaches it; reassociated (AllowReassociation) to instance 2 it reaches 2;
//! - the mapping survives SIGKILL and respawn of the compute worker and of
//!   the network controller (the kernel keeps translating meanwhile, an open
//!   SSH session included);
//! - project B can neither see, associate, disassociate nor release A's
//!   address, and each attempt leaves it reaching A's instance;
//! - once disassociated and released the address answers nothing, while the
//!   instance answers on its fixed IP and on a fresh public IP.
//!
//! `cargo test -p stratus-tests --test it public_addresses` (about 3–4
//! minutes).

mod outside;

use std::time::{Duration, Instant};

use stratus::ec2_client::{first_text, texts};
use stratus_rpc::wire::addresses::public_dns_name;

use crate::guest_cloud::{GuestCloud, PUBLIC_RANGE};
use outside::{
    DNS_DOMAIN, Tenant, WHO, call, in_public_range, refused, session, session_held, ssh, ssh_until,
    tcp_open, times_ready, wait_ready, wait_tcp,
};

/// One of project B's tries at A's address: action, parameters, and the
/// error codes that are right for it.
type Attempt<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a [&'a str]);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn public_and_elastic_addresses_reach_guests_from_the_outside() {
    let started = Instant::now();
    // A short reconcile interval, so the controller's periodic listing runs
    // (and must not undo anything) while addresses move.
    let (mut cloud, credentials) = GuestCloud::start_with_settings(
        "pub",
        &["pub-a", "pub-b"],
        &[("STRATUS_NETWORK__RECONCILE_INTERVAL_SECS", "5")],
    )
    .await;
    let a = Tenant::new(&cloud, &credentials[0], "pa").await;
    let b = Tenant::new(&cloud, &credentials[1], "pb").await;
    let one = a.launch(&cloud, "pa").await;
    let two = a.launch(&cloud, "pa").await;
    let bee = b.launch(&cloud, "pb").await;
    let (p1, f1) = a.running(&cloud, &one).await;
    let (p2, f2) = a.running(&cloud, &two).await;
    let (pb, _) = b.running(&cloud, &bee).await;

    // (a) The automatic public IP, as DescribeInstances, the metadata
    // service and the outside see it.
    for p in [&p1, &p2, &pb] {
        assert!(in_public_range(p), "{p} is not in {PUBLIC_RANGE}");
    }
    assert!(p1 != p2 && p1 != pb && p2 != pb, "shared: {p1} {p2} {pb}");
    let described = a.describe(&cloud, &one).await;
    let dns1 = public_dns_name(p1.parse().expect("address"), DNS_DOMAIN);
    assert_eq!(
        first_text(&described, "dnsName").as_deref(),
        Some(dns1.as_str()),
        "{described}"
    );
    let seen = ssh_until(
        &cloud,
        &a,
        &p1,
        |out| out.contains(&one),
        Duration::from_secs(150),
        "instance 1 on its public IP",
    )
    .await;
    assert!(
        seen.contains(&p1) && seen.contains(&dns1),
        "instance 1's metadata lacks public-ipv4 {p1} or public-hostname {dns1}: {seen}"
    );
    eprintln!(
        "public: 1 {p1} 2 {p2} B {pb}, up after {:?}",
        started.elapsed()
    );

    // (c) Security groups on the public address as on the fixed one.
    let (served, page) = ssh(
        &cloud,
        &a,
        &p1,
        &format!(
            "mkdir -p /tmp/www && echo hi-{one} > /tmp/www/index.html && \
             httpd -p 8080 -h /tmp/www </dev/null >/dev/null 2>&1 && sleep 1 && \
             timeout 5 wget -q -O - http://127.0.0.1:8080/"
        ),
    );
    assert!(
        served && page.contains(&format!("hi-{one}")),
        "the guest's listener on 8080 does not serve: {page}"
    );
    assert!(tcp_open(&cloud, &p1, 22), "22 closed on the public IP");
    assert!(
        !tcp_open(&cloud, &p1, 8080),
        "8080 open on the public IP though the group does not open it"
    );
    assert!(
        !tcp_open(&cloud, &f1, 8080),
        "8080 open on the fixed IP though the group does not open it"
    );
    a.open(&cloud, "8080").await;
    wait_tcp(&cloud, &p1, 8080, true, "8080 after the rule").await;
    wait_tcp(&cloud, &f1, 8080, true, "8080 after the rule, fixed IP").await;
    let fetched = cloud
        .in_client(
            "timeout",
            &[
                "5",
                "bash",
                "-c",
                &format!(
                    "exec 3<>/dev/tcp/{p1}/8080; printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3"
                ),
            ],
        )
        .output()
        .expect("bash runs");
    assert!(
        String::from_utf8_lossy(&fetched.stdout).contains(&format!("hi-{one}")),
        "8080 on the public IP is not instance 1's: {}",
        String::from_utf8_lossy(&fetched.stdout)
    );

    // (b) An Elastic IP on instance 1, then moved to instance 2.
    let allocated = call(&cloud, &a.ec2, "AllocateAddress", &[("Domain", "vpc")]).await;
    let elastic = first_text(&allocated, "publicIp").expect("publicIp");
    let allocation = first_text(&allocated, "allocationId").expect("allocationId");
    assert!(allocation.starts_with("eipalloc-"), "{allocated}");
    assert_eq!(first_text(&allocated, "domain").as_deref(), Some("vpc"));
    assert!(in_public_range(&elastic), "{allocated}");
    assert!(![&p1, &p2, &pb].contains(&&elastic), "{elastic} is in use");
    let associated = call(
        &cloud,
        &a.ec2,
        "AssociateAddress",
        &[("AllocationId", &allocation), ("InstanceId", &one)],
    )
    .await;
    let first_association = first_text(&associated, "associationId").expect("associationId");
    assert!(first_association.starts_with("eipassoc-"), "{associated}");
    assert_eq!(
        a.public_ip(&cloud, &one).await.as_deref(),
        Some(elastic.as_str())
    );
    let everything = call(&cloud, &a.ec2, "DescribeInstances", &[]).await;
    assert!(
        !texts(&everything, "ipAddress").contains(&p1),
        "instance 1's automatic IP {p1} is still shown: {everything}"
    );
    let seen = ssh_until(
        &cloud,
        &a,
        &elastic,
        |out| out.contains(&one),
        Duration::from_secs(30),
        "the Elastic IP to instance 1",
    )
    .await;
    assert!(
        seen.contains(&elastic),
        "public-ipv4 is not the Elastic IP: {seen}"
    );
    wait_tcp(&cloud, &p1, 22, false, "instance 1's replaced automatic IP").await;
    let code = refused(
        &cloud,
        &a.ec2,
        "AssociateAddress",
        &[("AllocationId", &allocation), ("InstanceId", &two)],
    )
    .await;
    assert_eq!(code, "Resource.AlreadyAssociated");
    let moved = call(
        &cloud,
        &a.ec2,
        "AssociateAddress",
        &[
            ("AllocationId", &allocation),
            ("InstanceId", &two),
            ("AllowReassociation", "true"),
        ],
    )
    .await;
    let association = first_text(&moved, "associationId").expect("associationId");
    ssh_until(
        &cloud,
        &a,
        &elastic,
        |out| out.contains(&two) && !out.contains(&one),
        Duration::from_secs(30),
        "the Elastic IP moved to instance 2",
    )
    .await;
    assert_eq!(
        a.public_ip(&cloud, &two).await.as_deref(),
        Some(elastic.as_str())
    );
    assert_ne!(
        a.public_ip(&cloud, &one).await.as_deref(),
        Some(elastic.as_str())
    );
    let expected = (elastic.clone(), two.clone(), association.clone());
    assert_eq!(a.address(&cloud, &allocation).await, expected);

    // (d) The mapping outlives a crash of the worker, then of the controller.
    let held = session(&cloud, &a, &elastic, 15);
    assert!(cloud.kill("compute-a"), "compute-a was not running");
    ssh_until(
        &cloud,
        &a,
        &elastic,
        |o| o.contains(&two),
        Duration::from_secs(20),
        "worker down",
    )
    .await;
    let before = times_ready(&cloud, "compute-a");
    cloud.respawn("compute-a");
    // The worker re-renders its chains at start: the NAT must survive that.
    wait_ready(&cloud, "compute-a", before).await;
    ssh_until(
        &cloud,
        &a,
        &elastic,
        |o| o.contains(&two),
        Duration::from_secs(20),
        "worker back",
    )
    .await;
    session_held(&cloud, held, 15, "across the worker's restart");
    let held = session(&cloud, &a, &elastic, 15);
    assert!(
        cloud.kill("network"),
        "the network controller was not running"
    );
    ssh_until(
        &cloud,
        &a,
        &elastic,
        |o| o.contains(&two),
        Duration::from_secs(20),
        "controller down",
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = times_ready(&cloud, "network");
    cloud.respawn("network");
    wait_ready(&cloud, "network", before).await;
    session_held(&cloud, held, 15, "while the controller was down");
    // Past its start-up listing and one periodic one.
    tokio::time::sleep(Duration::from_secs(7)).await;
    ssh_until(
        &cloud,
        &a,
        &elastic,
        |o| o.contains(&two),
        Duration::from_secs(20),
        "controller back",
    )
    .await;
    assert_eq!(a.address(&cloud, &allocation).await, expected);
    eprintln!("restarts survived after {:?}", started.elapsed());

    // (e) Project B cannot see or touch A's address.
    let listed = call(&cloud, &b.ec2, "DescribeAddresses", &[]).await;
    assert!(!listed.contains(&elastic), "B sees A's address: {listed}");
    let filtered = call(
        &cloud,
        &b.ec2,
        "DescribeAddresses",
        &[
            ("Filter.1.Name", "public-ip"),
            ("Filter.1.Value.1", &elastic),
        ],
    )
    .await;
    assert!(texts(&filtered, "publicIp").is_empty(), "{filtered}");
    let not_found = ["InvalidAddress.NotFound", "AuthFailure"];
    let (elastic_ip, allocation_id, association_id) =
        (elastic.as_str(), allocation.as_str(), association.as_str());
    let attempts: [Attempt; 8] = [
        (
            "DescribeAddresses",
            vec![("PublicIp.1", elastic_ip)],
            &["InvalidAddress.NotFound"],
        ),
        (
            "DescribeAddresses",
            vec![("AllocationId.1", allocation_id)],
            &["InvalidAllocationID.NotFound"],
        ),
        (
            "AssociateAddress",
            vec![
                ("AllocationId", allocation_id),
                ("InstanceId", bee.as_str()),
                ("AllowReassociation", "true"),
            ],
            &["InvalidAllocationID.NotFound"],
        ),
        (
            "AssociateAddress",
            vec![
                ("PublicIp", elastic_ip),
                ("InstanceId", bee.as_str()),
                ("AllowReassociation", "true"),
            ],
            &not_found,
        ),
        (
            "DisassociateAddress",
            vec![("AssociationId", association_id)],
            &["InvalidAssociationID.NotFound"],
        ),
        (
            "DisassociateAddress",
            vec![("PublicIp", elastic_ip)],
            &not_found,
        ),
        (
            "ReleaseAddress",
            vec![("AllocationId", allocation_id)],
            &["InvalidAllocationID.NotFound"],
        ),
        ("ReleaseAddress", vec![("PublicIp", elastic_ip)], &not_found),
    ];
    for (action, params, codes) in attempts {
        let code = refused(&cloud, &b.ec2, action, &params).await;
        assert!(
            codes.contains(&code.as_str()),
            "B's {action} {params:?}: {code}, not one of {codes:?}"
        );
        assert_eq!(
            a.address(&cloud, &allocation).await,
            expected,
            "B's {action} {params:?} changed A's address"
        );
        ssh_until(
            &cloud,
            &a,
            &elastic,
            |o| o.contains(&two),
            Duration::from_secs(10),
            &format!("after B's {action} {params:?}"),
        )
        .await;
    }
    assert_eq!(
        b.public_ip(&cloud, &bee).await.as_deref(),
        Some(pb.as_str())
    );

    // (f) Disassociated and released, the address answers nothing; the
    // instance answers on its fixed IP and on a fresh public IP.
    call(
        &cloud,
        &a.ec2,
        "DisassociateAddress",
        &[("AssociationId", &association)],
    )
    .await;
    call(
        &cloud,
        &a.ec2,
        "ReleaseAddress",
        &[("AllocationId", &allocation)],
    )
    .await;
    let code = refused(
        &cloud,
        &a.ec2,
        "DescribeAddresses",
        &[("AllocationId.1", &allocation)],
    )
    .await;
    assert_eq!(code, "InvalidAllocationID.NotFound");
    wait_tcp(&cloud, &elastic, 22, false, "the released address").await;
    let (answered, out) = ssh(&cloud, &a, &elastic, WHO);
    assert!(!answered, "the released {elastic} still answers: {out}");
    let bound = stratus_test_support::sh(
        "ip",
        &[
            "-n",
            &cloud.router,
            "-o",
            "addr",
            "show",
            "dev",
            "stratus-pub",
        ],
    );
    assert!(
        !bound.contains(&format!(" {elastic}/")),
        "the released {elastic} is still bound: {bound}"
    );
    ssh_until(
        &cloud,
        &a,
        &f2,
        |o| o.contains(&two),
        Duration::from_secs(20),
        "instance 2 on its fixed IP",
    )
    .await;
    let fresh = a
        .public_ip(&cloud, &two)
        .await
        .unwrap_or_else(|| panic!("instance 2 got no public IP back\n{}", cloud.logs()));
    assert_ne!(fresh, elastic);
    ssh_until(
        &cloud,
        &a,
        &fresh,
        |o| o.contains(&two) && o.contains(&fresh),
        Duration::from_secs(20),
        "instance 2 on its fresh public IP",
    )
    .await;
    eprintln!("done after {:?}", started.elapsed());
}
