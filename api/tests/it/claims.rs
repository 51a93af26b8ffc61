//! Build claims and instance states on SQLite and PostgreSQL: each
//! placement is granted to one host, however many ask at once.

use std::sync::Arc;

use stratus_api::app::instances::{claim_build, instance_states};
use stratus_api::db::Db;
use stratus_api::db::instances::StateChange;
use stratus_rpc::wire::conductor::{
    BuildClaim, ClaimAnswer, InstanceState, InstanceStatesQuery, next_sequence,
};
use stratus_rpc::wire::ids::InstanceId;
use stratus_test_support::TestDb;

use crate::conductor::instance;
use crate::db::open;

fn claim(id: InstanceId, host: &str, attempt: u32) -> BuildClaim {
    BuildClaim {
        instance_id: id,
        host: host.parse().expect("host"),
        attempt,
        sequence: next_sequence(),
    }
}

async fn ask(db: &Db, id: InstanceId, host: &str, attempt: u32) -> ClaimAnswer {
    claim_build(db, &claim(id, host, attempt))
        .await
        .expect("claim")
}

fn refused(release: bool) -> impl Fn(&ClaimAnswer) -> bool {
    move |a| matches!(a, ClaimAnswer::Refused { release_address, .. } if *release_address == release)
}

/// Records a report of `state` (task `task`) from `host`, as the conductor would.
async fn set(db: &Db, id: InstanceId, state: InstanceState, task: Option<&str>, host: &str) {
    let change = StateChange {
        task_state: task,
        host: Some(host),
        ..StateChange::to(state, i64::try_from(next_sequence()).expect("sequence"))
    };
    assert!(
        db.update_state(&id.to_string(), &change)
            .await
            .expect("update")
    );
}

async fn claims_grant_each_placement_once(db: Db) {
    // Two hosts racing for the same placement: the first wins, the second
    // is refused and keeps its hands off the address the winner uses.
    let id = InstanceId::new();
    instance(&db, id).await;
    assert_eq!(ask(&db, id, "node-a", 1).await, ClaimAnswer::Granted);
    let second = ask(&db, id, "node-b", 1).await;
    assert!(refused(false)(&second), "{second:?}");
    let row = db
        .instance_by_uuid(&id.to_string())
        .await
        .expect("db")
        .expect("row");
    assert_eq!(
        (row.host.as_deref(), row.task_state.as_deref()),
        (Some("node-a"), Some("networking"))
    );

    // The winner resuming its build after a restart is granted again.
    assert_eq!(ask(&db, id, "node-a", 1).await, ClaimAnswer::Granted);
    // Running on node-a: node-a's resumed build is granted, node-b refused.
    set(&db, id, InstanceState::Running, None, "node-a").await;
    assert_eq!(ask(&db, id, "node-a", 1).await, ClaimAnswer::Granted);
    assert!(refused(false)(&ask(&db, id, "node-b", 2).await));

    // Gone: refused, and the address may go.
    for gone in [InstanceState::Terminated, InstanceState::Error] {
        let id = InstanceId::new();
        instance(&db, id).await;
        set(&db, id, gone, None, "node-a").await;
        let answer = ask(&db, id, "node-a", 1).await;
        assert!(refused(true)(&answer), "{gone}: {answer:?}");
    }
    // Unknown: the same.
    assert!(refused(true)(
        &ask(&db, InstanceId::new(), "node-a", 1).await
    ));

    // Handed back by node-a: node-b's later placement is granted, and the
    // stored attempt is the higher one.
    let id = InstanceId::new();
    instance(&db, id).await;
    assert_eq!(ask(&db, id, "node-a", 1).await, ClaimAnswer::Granted);
    set(
        &db,
        id,
        InstanceState::Pending,
        Some("scheduling"),
        "node-a",
    )
    .await;
    assert_eq!(ask(&db, id, "node-b", 2).await, ClaimAnswer::Granted);
    let stored = db
        .instance_state(&id.to_string())
        .await
        .expect("db")
        .expect("row");
    assert_eq!(
        (stored.host.as_deref(), stored.attempt),
        (Some("node-b"), 2)
    );
    // node-a's stale copy of the first placement is refused now.
    assert!(refused(false)(&ask(&db, id, "node-a", 1).await));

    // A later placement claimed before the host handing it back said so
    // (its `scheduling` report still on the way) is granted too.
    let id = InstanceId::new();
    instance(&db, id).await;
    assert_eq!(ask(&db, id, "node-a", 1).await, ClaimAnswer::Granted);
    assert_eq!(ask(&db, id, "node-b", 2).await, ClaimAnswer::Granted);
    assert!(refused(false)(&ask(&db, id, "node-c", 2).await));
}

async fn concurrent_claims_grant_one(db: Db) {
    for _ in 0..5 {
        let id = InstanceId::new();
        instance(&db, id).await;
        let db = Arc::new(db.clone());
        let asks = (0..16).map(|n| {
            let db = db.clone();
            tokio::spawn(async move { ask(&db, id, &format!("node-{n}"), 1).await })
        });
        let answers = futures::future::join_all(asks).await;
        let granted = answers
            .iter()
            .filter(|a| matches!(a, Ok(ClaimAnswer::Granted)))
            .count();
        assert_eq!(granted, 1, "{answers:?}");
        assert!(
            answers
                .iter()
                .flatten()
                .filter(|a| **a != ClaimAnswer::Granted)
                .all(refused(false))
        );
    }
}

async fn states_answer_what_the_table_holds(db: Db) {
    let (pending, running, unknown) = (InstanceId::new(), InstanceId::new(), InstanceId::new());
    instance(&db, pending).await;
    instance(&db, running).await;
    set(&db, running, InstanceState::Running, None, "node-a").await;
    let known = instance_states(
        &db,
        &InstanceStatesQuery {
            ids: vec![unknown, running, pending],
        },
    )
    .await
    .expect("states");
    let seen: Vec<_> = known
        .iter()
        .map(|k| {
            (
                k.instance_id,
                k.state,
                k.host.as_ref().map(ToString::to_string),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (unknown, None, None),
            (running, Some(InstanceState::Running), Some("node-a".into())),
            (pending, Some(InstanceState::Pending), None),
        ]
    );
    // What recovery looks for, by state, task and age.
    let pending_uuid = pending.to_string();
    let find = |task: Option<&'static str>, before: Option<&'static str>| {
        let db = db.clone();
        async move {
            db.uuids_in_state(InstanceState::Pending, task, before)
                .await
                .expect("find")
        }
    };
    assert!(find(None, None).await.contains(&pending_uuid));
    assert!(
        find(None, Some("9999-01-01T00:00:00.000Z"))
            .await
            .contains(&pending_uuid)
    );
    assert!(
        !find(None, Some("1970-01-01T00:00:00.000Z"))
            .await
            .contains(&pending_uuid)
    );
    assert!(!find(Some("scheduling"), None).await.contains(&pending_uuid));
    let many: Vec<InstanceId> = (0..1200).map(|_| InstanceId::new()).collect();
    let known = instance_states(&db, &InstanceStatesQuery { ids: many })
        .await
        .expect("many");
    assert_eq!(known.len(), 1200);
    assert!(known.iter().all(|k| k.state.is_none()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn claims_on_sqlite() {
    let test = TestDb::sqlite();
    let db = open(&test).await;
    claims_grant_each_placement_once(db.clone()).await;
    concurrent_claims_grant_one(db.clone()).await;
    states_answer_what_the_table_holds(db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn claims_on_postgres() {
    let test = TestDb::postgres();
    let db = open(&test).await;
    claims_grant_each_placement_once(db.clone()).await;
    concurrent_claims_grant_one(db.clone()).await;
    states_answer_what_the_table_holds(db).await;
}
