//! Databases made before a migration: opening them migrates them once, on
//! SQLite and on PostgreSQL alike.

use stratus_api::db::Db;
use stratus_api::db::groups::{Direction, RuleRow};
use stratus_test_support::TestDb;

use crate::db::open;

/// The tables as the first migration left them, with two groups of project
/// p1 (`web` with one ingress rule) and no egress anywhere.
async fn tables_before_egress(url: &str) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.expect("raw connection");
    let schema = include_str!("../../migrations/0001_cloud.sql");
    let inserts = [
        "INSERT INTO security_groups (group_id, project_id, name, description) \
         VALUES ('sg-00000000000000001', 'p1', 'default', 'default group')",
        "INSERT INTO security_groups (group_id, project_id, name, description) \
         VALUES ('sg-00000000000000002', 'p1', 'web', 'web')",
        "INSERT INTO security_group_rules (rule_id, group_id, protocol, from_port, to_port, cidr) \
         VALUES ('1', 'sg-00000000000000002', 'tcp', 22, 22, '10.0.0.0/8')",
    ];
    let statements = schema
        .split(';')
        .map(str::trim)
        .filter(|s| {
            !s.lines()
                .all(|l| l.trim().is_empty() || l.starts_with("--"))
        })
        .chain(inserts);
    for statement in statements {
        sqlx::query(sqlx::AssertSqlSafe(statement.to_owned()))
            .execute(&pool)
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
    }
    pool.close().await;
}

fn ssh() -> RuleRow {
    RuleRow {
        protocol: "tcp".into(),
        from_port: Some(22),
        to_port: Some(22),
        cidr: Some("10.0.0.0/8".into()),
        source_group_id: None,
        description: None,
    }
}

async fn existing_groups_get_the_default_egress_rule_once(test: TestDb) {
    tables_before_egress(&test.url()).await;
    let db: Db = open(&test).await;
    let groups = db.groups("p1").await.expect("groups");
    assert_eq!(groups.len(), 2);
    for g in &groups {
        assert_eq!(g.egress, [RuleRow::allow_all()], "{}", g.name);
    }
    assert_eq!(groups[1].rules, [ssh()], "ingress rules survive");
    assert!(groups[0].rules.is_empty());
    // Every rule that was there got an sgr- id, distinct and kept.
    let ids: Vec<String> = db
        .rules("p1")
        .await
        .expect("rules")
        .into_iter()
        .map(|r| r.rule_id)
        .collect();
    assert_eq!(ids.len(), 3, "{ids:?}");
    assert!(ids.iter().all(|id| id.starts_with("sgr-")), "{ids:?}");
    let mut distinct = ids.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 3, "{ids:?}");
    assert!(
        ids.contains(&"sgr-00000000000000002".to_owned()),
        "the default egress rule of sg-…02 takes its group's digits: {ids:?}"
    );

    // The same rule may now stand both ways.
    assert!(
        db.add_rules(
            &groups[1].group_id,
            Direction::Egress,
            std::slice::from_ref(&ssh())
        )
        .await
        .expect("egress ssh")
        .is_some()
    );
    // A revoked default stays revoked when the api starts again.
    assert_eq!(
        db.remove_rules(
            &groups[1].group_id,
            Direction::Egress,
            &[RuleRow::allow_all()]
        )
        .await
        .expect("revoke"),
        1
    );
    drop(db);
    let db = open(&test).await;
    let again: Vec<String> = db
        .rules("p1")
        .await
        .expect("rules")
        .into_iter()
        .map(|r| r.rule_id)
        .filter(|id| ids.contains(id))
        .collect();
    assert_eq!(again.len(), 2, "kept across restarts: {again:?} of {ids:?}");
    let groups = db.groups("p1").await.expect("groups");
    assert_eq!(groups[0].egress, [RuleRow::allow_all()]);
    assert_eq!(
        (groups[1].rules.clone(), groups[1].egress.clone()),
        (vec![ssh()], vec![ssh()])
    );
}

#[tokio::test]
async fn existing_groups_get_the_default_egress_rule_once_on_sqlite() {
    existing_groups_get_the_default_egress_rule_once(TestDb::sqlite()).await;
}

#[tokio::test]
async fn existing_groups_get_the_default_egress_rule_once_on_postgres() {
    existing_groups_get_the_default_egress_rule_once(TestDb::postgres()).await;
}
