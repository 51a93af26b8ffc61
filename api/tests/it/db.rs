//! The api tables on SQLite and on PostgreSQL: the same queries must mean
//! the same thing on both.

use stratus_api::db::Db;
use stratus_api::db::credentials::Credential;
use stratus_api::db::groups::{Direction, GroupRow, InUse, RuleRow};
use stratus_api::db::images::ImageRow;
use stratus_api::db::instances::{InstanceRow, NewReservation, StateChange};
use stratus_api::db::keypairs::KeyPairRow;
use stratus_api::db::tags::TagRow;
use stratus_rpc::wire::conductor::InstanceState;
use stratus_test_support::TestDb;

/// The api's tables in a test database.
pub async fn open(test: &TestDb) -> Db {
    Db::connect(&test.url())
        .await
        .expect("connect the test database")
}

fn instance(n: u8, reservation: &str, project: &str) -> InstanceRow {
    let id = stratus_rpc::wire::ids::InstanceId::new();
    InstanceRow {
        uuid: id.to_string(),
        ec2_id: id.ec2_id(),
        project_id: project.into(),
        user_id: "u".into(),
        reservation_id: reservation.into(),
        launch_index: i64::from(n),
        image_id: "ami-00000000000000001".into(),
        instance_type: "m1.small".into(),
        vcpus: 2,
        memory_mb: 2048,
        root_gb: 20,
        state: InstanceState::Pending,
        launched_at: stratus_api::db::now(),
        updated_at: stratus_api::db::now(),
        groups: vec![("sg-00000000000000001".into(), "web".into())],
        ..InstanceRow::default()
    }
}

async fn the_tables_behave_alike(db: Db) {
    // Credentials.
    let c = Credential {
        access_key: "AKIATEST".into(),
        secret_key: "s3cret".into(),
        project_id: "p1".into(),
        user_id: "u1".into(),
        is_admin: true,
    };
    db.insert_credential(&c).await.expect("credential");
    assert_eq!(
        db.credential("AKIATEST").await.expect("read"),
        Some(c.clone())
    );
    assert_eq!(db.credential_for("p1", "u1").await.expect("read"), Some(c));
    assert_eq!(db.credential("AKIANONE").await.expect("read"), None);

    // Key pairs: a name is unique per project only.
    let key = |project: &str, id: &str| KeyPairRow {
        key_pair_id: id.into(),
        project_id: project.into(),
        name: "k".into(),
        key_type: "rsa".into(),
        fingerprint: "aa:bb".into(),
        public_key: "ssh-rsa AAAA k".into(),
        created_at: stratus_api::db::now(),
    };
    db.insert_key_pair(&key("p1", "key-1")).await.expect("key");
    let dup = db
        .insert_key_pair(&key("p1", "key-2"))
        .await
        .expect_err("duplicate");
    assert!(dup.is_unique_violation(), "{dup}");
    db.insert_key_pair(&key("p2", "key-3"))
        .await
        .expect("other project");
    assert!(db.delete_key_pair("p1", "k").await.expect("delete"));
    assert!(!db.delete_key_pair("p1", "k").await.expect("delete again"));

    // Groups and rules: duplicates refused, NULL ports compared as equal.
    let web = GroupRow {
        group_id: "sg-00000000000000001".into(),
        project_id: "p1".into(),
        name: "web".into(),
        description: "web".into(),
        rules: vec![],
        egress: vec![],
    };
    db.insert_group(&web).await.expect("group");
    let dup = db
        .insert_group(&GroupRow {
            group_id: "sg-00000000000000002".into(),
            ..web.clone()
        })
        .await
        .expect_err("dup");
    assert!(dup.is_unique_violation());
    let all = RuleRow {
        protocol: "-1".into(),
        from_port: None,
        to_port: None,
        cidr: Some("10.0.0.0/8".into()),
        source_group_id: None,
        description: None,
    };
    let self_ref = RuleRow {
        protocol: "tcp".into(),
        from_port: Some(80),
        to_port: Some(80),
        cidr: None,
        source_group_id: Some(web.group_id.clone()),
        description: None,
    };
    assert!(
        db.add_rules(
            &web.group_id,
            Direction::Ingress,
            &[all.clone(), self_ref.clone()]
        )
        .await
        .expect("rules")
        .is_some()
    );
    assert!(
        db.add_rules(
            &web.group_id,
            Direction::Ingress,
            std::slice::from_ref(&all)
        )
        .await
        .expect("duplicate rule")
        .is_none()
    );
    // The same rule stands in the other direction on its own.
    assert!(
        db.add_rules(&web.group_id, Direction::Egress, std::slice::from_ref(&all))
            .await
            .expect("egress rule")
            .is_some()
    );
    let stored = db.groups("p1").await.expect("groups").remove(0);
    assert_eq!((stored.rules.len(), stored.egress), (2, vec![all.clone()]));
    assert_eq!(
        db.remove_rules(&web.group_id, Direction::Egress, std::slice::from_ref(&all))
            .await
            .expect("revoke egress"),
        1
    );
    let stored = db.groups("p1").await.expect("groups").remove(0);
    assert_eq!((stored.rules.len(), stored.egress.len()), (2, 0));
    assert_eq!(
        db.referenced_groups(std::slice::from_ref(&web.group_id))
            .await
            .expect("referenced")
            .len(),
        1
    );

    // A reservation with a client token; usage and quotas.
    let rows: Vec<InstanceRow> = (0..3)
        .map(|n| instance(n, "r-00000000000000001", "p1"))
        .collect();
    db.insert_reservation(&NewReservation {
        reservation_id: "r-00000000000000001".into(),
        project_id: "p1".into(),
        client_token: Some("tok".into()),
        instances: rows.clone(),
        tags: vec![("env".into(), "test".into())],
    })
    .await
    .expect("reservation");
    assert_eq!(
        db.reservation_by_token("p1", "tok")
            .await
            .expect("token")
            .as_deref(),
        Some("r-00000000000000001")
    );
    assert_eq!(
        db.reservation_by_token("p2", "tok").await.expect("token"),
        None
    );
    let again = db
        .insert_reservation(&NewReservation {
            reservation_id: "r-00000000000000002".into(),
            project_id: "p1".into(),
            client_token: Some("tok".into()),
            instances: vec![],
            tags: vec![],
        })
        .await
        .expect_err("a token is used once per project");
    assert!(again.is_unique_violation(), "{again}");
    let usage = db.usage("p1").await.expect("usage");
    assert_eq!(
        (usage.instances, usage.vcpus, usage.memory_mb),
        (3, 6, 6144)
    );
    assert_eq!(db.instances("p1", None).await.expect("list").len(), 3);
    assert_eq!(db.instances("p2", None).await.expect("list").len(), 0);
    let listed = db
        .instances("p1", Some(&[rows[1].ec2_id.clone()]))
        .await
        .expect("by id");
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0].groups,
        vec![("sg-00000000000000001".to_owned(), "web".to_owned())]
    );

    // Reports: newest sequence wins; placement feeds the metadata lookup.
    let uuid = &rows[0].uuid;
    assert!(
        db.update_state(
            uuid,
            &StateChange {
                host: Some("h1"),
                ..StateChange::to(InstanceState::Running, 20)
            }
        )
        .await
        .expect("update")
    );
    assert!(
        !db.update_state(
            uuid,
            &StateChange {
                task_state: Some("spawning"),
                host: Some("h1"),
                ..StateChange::to(InstanceState::Pending, 10)
            }
        )
        .await
        .expect("old update")
    );
    db.set_placement(uuid, "10.0.0.5", "nova")
        .await
        .expect("placement");
    let found = db
        .instance_by_fixed_ip("10.0.0.5")
        .await
        .expect("lookup")
        .expect("found");
    assert_eq!(
        (found.state, found.host.as_deref()),
        (InstanceState::Running, Some("h1"))
    );
    assert_eq!(
        db.group_members(&web.group_id).await.expect("members"),
        ["10.0.0.5"]
    );
    assert!(matches!(
        db.group_in_use(&web.group_id).await.expect("in use"),
        Some(InUse::Instances(_))
    ));
    assert!(
        db.update_state(uuid, &StateChange::to(InstanceState::Terminated, 30))
            .await
            .expect("terminate")
    );
    assert_eq!(
        db.instance_by_fixed_ip("10.0.0.5").await.expect("lookup"),
        None
    );
    assert_eq!(db.usage("p1").await.expect("usage").instances, 2);

    // Tags: replaced by key, deleted by key or key and value.
    let tags = db.tags("p1", None).await.expect("tags");
    assert_eq!(tags.len(), 3, "RunInstances tags on each instance");
    db.put_tags(
        "p1",
        &[TagRow {
            resource_id: rows[0].ec2_id.clone(),
            resource_type: "instance".into(),
            key: "env".into(),
            value: "prod".into(),
        }],
    )
    .await
    .expect("replace");
    let first = rows[0].ec2_id.clone();
    let tags_of_first = || async {
        db.tags("p1", Some(std::slice::from_ref(&first)))
            .await
            .expect("tags")
    };
    let mine = tags_of_first().await;
    assert_eq!(
        mine.iter().map(|t| t.value.as_str()).collect::<Vec<_>>(),
        ["prod"]
    );
    db.delete_tag("p1", &rows[0].ec2_id, "env", Some("test"))
        .await
        .expect("no match");
    assert_eq!(tags_of_first().await.len(), 1);
    db.delete_tag("p1", &rows[0].ec2_id, "env", None)
        .await
        .expect("any value");
    assert!(tags_of_first().await.is_empty());

    // Images: own and public visible, others' private not.
    let image = |id: &str, project: &str, public: bool| ImageRow {
        is_public: public,
        ..ImageRow::machine(id, project, id, "/var/lib/stratus/images/x")
    };
    db.insert_image(&image("ami-00000000000000001", "p1", false))
        .await
        .expect("image");
    db.insert_image(&image("ami-00000000000000002", "p2", false))
        .await
        .expect("image");
    db.insert_image(&image("ami-00000000000000003", "system", true))
        .await
        .expect("image");
    let seen: Vec<String> = db
        .images("p1")
        .await
        .expect("images")
        .into_iter()
        .map(|i| i.image_id)
        .collect();
    assert_eq!(seen, ["ami-00000000000000001", "ami-00000000000000003"]);
    assert!(
        db.image("p1", "ami-00000000000000002")
            .await
            .expect("image")
            .is_none()
    );
    assert!(
        !db.delete_image("p1", "ami-00000000000000003")
            .await
            .expect("not own")
    );
}

#[tokio::test]
async fn tables_on_sqlite() {
    let db = TestDb::sqlite();
    the_tables_behave_alike(open(&db).await).await;
}

#[tokio::test]
async fn tables_on_postgres() {
    let db = TestDb::postgres();
    the_tables_behave_alike(open(&db).await).await;
}
