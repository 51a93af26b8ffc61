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
mod scene;

use std::time::Duration;

use stratus::ec2_client::{first_text, texts};
use stratus_rpc::wire::addresses::public_dns_name;

use crate::guest_cloud::PUBLIC_RANGE;
use outside::{
    DNS_DOMAIN, WHO, bound_public, call, http_get, in_public_range, refused, respawn_ready,
    session, session_held, ssh, ssh_until, tcp_open, wait_tcp,
};
use scene::{Elastic, Scene};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn public_and_elastic_addresses_reach_guests_from_the_outside() {
    let mut s = Scene::start().await;
    automatic_public_ips_reach_their_instances(&s).await; // (a)
    security_groups_apply_on_the_public_address(&s).await; // (c)
    let elastic = elastic_ip_replaces_the_public_ip_of_instance_1(&s).await; // (b)
    let elastic = elastic_ip_moves_to_instance_2(&s, elastic).await; // (b)
    mapping_outlives_worker_and_controller_crashes(&mut s, &elastic).await; // (d)
    project_b_cannot_see_or_touch_the_address(&s, &elastic).await; // (e)
    released_address_answers_nothing(&s, &elastic).await; // (f)
    eprintln!("done after {:?}", s.started.elapsed());
}

/// (a) The automatic public IP, as DescribeInstances, the metadata
/// service and the outside see it.
async fn automatic_public_ips_reach_their_instances(s: &Scene) {
    let (p1, p2, pb) = (&s.p1, &s.p2, &s.pb);
    for p in [p1, p2, pb] {
        assert!(in_public_range(p), "{p} is not in {PUBLIC_RANGE}");
    }
    assert!(p1 != p2 && p1 != pb && p2 != pb, "shared: {p1} {p2} {pb}");
    let described = s.a.describe(&s.cloud, &s.one).await;
    let dns1 = public_dns_name(p1.parse().expect("address"), DNS_DOMAIN);
    assert_eq!(
        first_text(&described, "dnsName").as_deref(),
        Some(dns1.as_str()),
        "{described}"
    );
    let seen = s
        .reaches(
            p1,
            &s.one,
            Duration::from_secs(150),
            "instance 1 on its public IP",
        )
        .await;
    assert!(
        seen.contains(p1.as_str()) && seen.contains(&dns1),
        "instance 1's metadata lacks public-ipv4 {p1} or public-hostname {dns1}: {seen}"
    );
    eprintln!(
        "public: 1 {p1} 2 {p2} B {pb}, up after {:?}",
        s.started.elapsed()
    );
}

/// (c) Security groups on the public address as on the fixed one.
async fn security_groups_apply_on_the_public_address(s: &Scene) {
    let (cloud, one, p1, f1) = (&s.cloud, &s.one, &s.p1, &s.f1);
    let (served, page) = ssh(
        cloud,
        &s.a,
        p1,
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
    assert!(tcp_open(cloud, p1, 22), "22 closed on the public IP");
    assert!(
        !tcp_open(cloud, p1, 8080),
        "8080 open on the public IP though the group does not open it"
    );
    assert!(
        !tcp_open(cloud, f1, 8080),
        "8080 open on the fixed IP though the group does not open it"
    );
    s.a.open(cloud, "8080").await;
    wait_tcp(cloud, p1, 8080, true, "8080 after the rule").await;
    wait_tcp(cloud, f1, 8080, true, "8080 after the rule, fixed IP").await;
    let fetched = http_get(cloud, p1, 8080);
    assert!(
        fetched.contains(&format!("hi-{one}")),
        "8080 on the public IP is not instance 1's: {fetched}"
    );
}

/// (b) An Elastic IP on instance 1, ...
async fn elastic_ip_replaces_the_public_ip_of_instance_1(s: &Scene) -> Elastic {
    let (cloud, a, one) = (&s.cloud, &s.a, &s.one);
    let allocated = call(cloud, &a.ec2, "AllocateAddress", &[("Domain", "vpc")]).await;
    let elastic = first_text(&allocated, "publicIp").expect("publicIp");
    let allocation = first_text(&allocated, "allocationId").expect("allocationId");
    assert!(allocation.starts_with("eipalloc-"), "{allocated}");
    assert_eq!(first_text(&allocated, "domain").as_deref(), Some("vpc"));
    assert!(in_public_range(&elastic), "{allocated}");
    assert!(
        ![&s.p1, &s.p2, &s.pb].contains(&&elastic),
        "{elastic} is in use"
    );
    let associated = call(
        cloud,
        &a.ec2,
        "AssociateAddress",
        &[("AllocationId", &allocation), ("InstanceId", one)],
    )
    .await;
    let first_association = first_text(&associated, "associationId").expect("associationId");
    assert!(first_association.starts_with("eipassoc-"), "{associated}");
    assert_eq!(
        a.public_ip(cloud, one).await.as_deref(),
        Some(elastic.as_str())
    );
    let everything = call(cloud, &a.ec2, "DescribeInstances", &[]).await;
    let p1 = &s.p1;
    assert!(
        !texts(&everything, "ipAddress").contains(p1),
        "instance 1's automatic IP {p1} is still shown: {everything}"
    );
    let seen = s
        .reaches(
            &elastic,
            one,
            Duration::from_secs(30),
            "the Elastic IP to instance 1",
        )
        .await;
    assert!(
        seen.contains(&elastic),
        "public-ipv4 is not the Elastic IP: {seen}"
    );
    wait_tcp(cloud, p1, 22, false, "instance 1's replaced automatic IP").await;
    Elastic {
        ip: elastic,
        allocation,
        association: first_association,
    }
}

/// (b) ... then moved to instance 2.
async fn elastic_ip_moves_to_instance_2(s: &Scene, elastic: Elastic) -> Elastic {
    let (cloud, a, one, two) = (&s.cloud, &s.a, &s.one, &s.two);
    let Elastic {
        ip: elastic,
        allocation,
        ..
    } = elastic;
    let code = refused(
        cloud,
        &a.ec2,
        "AssociateAddress",
        &[("AllocationId", &allocation), ("InstanceId", two)],
    )
    .await;
    assert_eq!(code, "Resource.AlreadyAssociated");
    let moved = call(
        cloud,
        &a.ec2,
        "AssociateAddress",
        &[
            ("AllocationId", &allocation),
            ("InstanceId", two),
            ("AllowReassociation", "true"),
        ],
    )
    .await;
    let association = first_text(&moved, "associationId").expect("associationId");
    ssh_until(
        cloud,
        a,
        &elastic,
        |out| out.contains(two.as_str()) && !out.contains(one.as_str()),
        Duration::from_secs(30),
        "the Elastic IP moved to instance 2",
    )
    .await;
    assert_eq!(
        a.public_ip(cloud, two).await.as_deref(),
        Some(elastic.as_str())
    );
    assert_ne!(
        a.public_ip(cloud, one).await.as_deref(),
        Some(elastic.as_str())
    );
    let elastic = Elastic {
        ip: elastic,
        allocation,
        association,
    };
    assert_eq!(
        a.address(cloud, &elastic.allocation).await,
        elastic.on_two(s)
    );
    elastic
}

/// (d) The mapping outlives a crash of the worker, then of the controller.
async fn mapping_outlives_worker_and_controller_crashes(s: &mut Scene, elastic: &Elastic) {
    let within = Duration::from_secs(20);
    let held = session(&s.cloud, &s.a, &elastic.ip, 15);
    assert!(s.cloud.kill("compute-a"), "compute-a was not running");
    s.reaches(&elastic.ip, &s.two, within, "worker down").await;
    // The worker re-renders its chains at start: the NAT must survive that.
    respawn_ready(&mut s.cloud, "compute-a").await;
    s.reaches(&elastic.ip, &s.two, within, "worker back").await;
    session_held(&s.cloud, held, 15, "across the worker's restart");
    let held = session(&s.cloud, &s.a, &elastic.ip, 15);
    assert!(
        s.cloud.kill("network"),
        "the network controller was not running"
    );
    s.reaches(&elastic.ip, &s.two, within, "controller down")
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    respawn_ready(&mut s.cloud, "network").await;
    session_held(&s.cloud, held, 15, "while the controller was down");
    // Past its start-up listing and one periodic one.
    tokio::time::sleep(Duration::from_secs(7)).await;
    s.reaches(&elastic.ip, &s.two, within, "controller back")
        .await;
    assert_eq!(
        s.a.address(&s.cloud, &elastic.allocation).await,
        elastic.on_two(s)
    );
    eprintln!("restarts survived after {:?}", s.started.elapsed());
}

/// (e) Project B cannot see or touch A's address.
async fn project_b_cannot_see_or_touch_the_address(s: &Scene, elastic: &Elastic) {
    let (cloud, b) = (&s.cloud, &s.b);
    let listed = call(cloud, &b.ec2, "DescribeAddresses", &[]).await;
    assert!(
        !listed.contains(&elastic.ip),
        "B sees A's address: {listed}"
    );
    let filtered = call(
        cloud,
        &b.ec2,
        "DescribeAddresses",
        &[
            ("Filter.1.Name", "public-ip"),
            ("Filter.1.Value.1", &elastic.ip),
        ],
    )
    .await;
    assert!(texts(&filtered, "publicIp").is_empty(), "{filtered}");
    for (action, params, codes) in attempts(elastic, &s.bee) {
        let code = refused(cloud, &b.ec2, action, &params).await;
        assert!(
            codes.contains(&code.as_str()),
            "B's {action} {params:?}: {code}, not one of {codes:?}"
        );
        assert_eq!(
            s.a.address(cloud, &elastic.allocation).await,
            elastic.on_two(s),
            "B's {action} {params:?} changed A's address"
        );
        s.reaches(
            &elastic.ip,
            &s.two,
            Duration::from_secs(10),
            &format!("after B's {action} {params:?}"),
        )
        .await;
    }
    assert_eq!(
        b.public_ip(cloud, &s.bee).await.as_deref(),
        Some(s.pb.as_str())
    );
}

/// One of project B's tries at A's address: action, parameters, and the
/// error codes that are right for it.
type Attempt<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a [&'a str]);

/// What B may answer when it names A's address by its public IP.
const NOT_FOUND: &[&str] = &["InvalidAddress.NotFound", "AuthFailure"];

/// Every way project B may name A's `elastic` to see, take (onto B's
/// instance `bee`), detach or release it.
fn attempts<'a>(elastic: &'a Elastic, bee: &'a str) -> [Attempt<'a>; 8] {
    let (elastic_ip, allocation_id, association_id) = (
        elastic.ip.as_str(),
        elastic.allocation.as_str(),
        elastic.association.as_str(),
    );
    [
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
                ("InstanceId", bee),
                ("AllowReassociation", "true"),
            ],
            &["InvalidAllocationID.NotFound"],
        ),
        (
            "AssociateAddress",
            vec![
                ("PublicIp", elastic_ip),
                ("InstanceId", bee),
                ("AllowReassociation", "true"),
            ],
            NOT_FOUND,
        ),
        (
            "DisassociateAddress",
            vec![("AssociationId", association_id)],
            &["InvalidAssociationID.NotFound"],
        ),
        (
            "DisassociateAddress",
            vec![("PublicIp", elastic_ip)],
            NOT_FOUND,
        ),
        (
            "ReleaseAddress",
            vec![("AllocationId", allocation_id)],
            &["InvalidAllocationID.NotFound"],
        ),
        ("ReleaseAddress", vec![("PublicIp", elastic_ip)], NOT_FOUND),
    ]
}

/// (f) Disassociated and released, the address answers nothing; the
/// instance answers on its fixed IP and on a fresh public IP.
async fn released_address_answers_nothing(s: &Scene, elastic: &Elastic) {
    let (cloud, a, two) = (&s.cloud, &s.a, &s.two);
    let (ip, allocation) = (&elastic.ip, &elastic.allocation);
    call(
        cloud,
        &a.ec2,
        "DisassociateAddress",
        &[("AssociationId", &elastic.association)],
    )
    .await;
    call(
        cloud,
        &a.ec2,
        "ReleaseAddress",
        &[("AllocationId", allocation)],
    )
    .await;
    let code = refused(
        cloud,
        &a.ec2,
        "DescribeAddresses",
        &[("AllocationId.1", allocation)],
    )
    .await;
    assert_eq!(code, "InvalidAllocationID.NotFound");
    wait_tcp(cloud, ip, 22, false, "the released address").await;
    let (answered, out) = ssh(cloud, a, ip, WHO);
    assert!(!answered, "the released {ip} still answers: {out}");
    let bound = bound_public(cloud);
    assert!(
        !bound.contains(&format!(" {ip}/")),
        "the released {ip} is still bound: {bound}"
    );
    s.reaches(
        &s.f2,
        two,
        Duration::from_secs(20),
        "instance 2 on its fixed IP",
    )
    .await;
    let fresh = a
        .public_ip(cloud, two)
        .await
        .unwrap_or_else(|| panic!("instance 2 got no public IP back\n{}", cloud.logs()));
    assert_ne!(&fresh, ip);
    ssh_until(
        cloud,
        a,
        &fresh,
        |o| o.contains(two.as_str()) && o.contains(&fresh),
        Duration::from_secs(20),
        "instance 2 on its fresh public IP",
    )
    .await;
}
