//! Two api replicas serving one cloud on one PostgreSQL database, either
//! answering any request: a signature accepted by one is refused as a
//! replay by the other (twins within the grace pass on both), a ClientToken
//! sent to both at once makes one reservation, and launches racing on both
//! never take more than the project's instance quota. The shared record of
//! signatures and the token's unique index work on SQLite too.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use stratus_api::auth::replay::ReplayGuard;
use stratus_api::config::ApiConfig;
use stratus_test_support::db::TestDb;

use crate::endpoint::{Answer, Endpoint, form};

const WINDOW: Duration = Duration::from_secs(300);

/// Both replicas' twin grace: short, so the test waits little past it.
const GRACE: Duration = Duration::from_secs(1);

/// Two endpoints on `db`, the second reading image files from the first's
/// folder as every replica reads the same paths.
async fn replicas(db: &TestDb, tune: impl Fn(&mut ApiConfig)) -> (Endpoint, Endpoint) {
    let url = db.url();
    let guard = || Some(ReplayGuard::with_limits(WINDOW, GRACE, 1000));
    let one = Endpoint::start_with(
        |c| {
            c.database_url = Some(url.clone());
            tune(c);
        },
        guard(),
    )
    .await;
    let images = one.images.clone();
    let two = Endpoint::start_with(
        |c| {
            c.database_url = Some(url.clone());
            c.image_roots = vec![images];
            tune(c);
        },
        guard(),
    )
    .await;
    (one, two)
}

#[tokio::test]
async fn a_request_accepted_by_one_replica_is_refused_as_a_replay_by_the_other() {
    let db = TestDb::postgres();
    let (one, two) = replicas(&db, |_| {}).await;
    let wire = one.signed(
        &one.alpha,
        &form(
            "CreateSecurityGroup",
            &[("GroupName", "once"), ("GroupDescription", "d")],
        ),
        SystemTime::now(),
    );
    one.send(&wire).await.ok();
    // A same-second twin sent to the other replica within the grace passes
    // (and is refused as a duplicate group, as boto3 expects of a repeat).
    two.relay(&wire)
        .await
        .refused(400, "InvalidGroup.Duplicate");
    tokio::time::sleep(GRACE + Duration::from_millis(1500)).await;
    for (which, replica) in [("other", &two), ("first", &one)] {
        let again = replica.relay(&wire).await.refused(401, "AuthFailure");
        let message = again.texts("Message").join("");
        assert!(
            message.contains("already accepted"),
            "{which} replica: {message}"
        );
    }
    // A replica that never saw it in memory refuses it from the database alone.
    let three = Endpoint::start_with(
        |c| c.database_url = Some(db.url()),
        Some(ReplayGuard::with_limits(WINDOW, GRACE, 1000)),
    )
    .await;
    three.relay(&wire).await.refused(401, "AuthFailure");
    // The same call signed afresh is fine on either.
    let fresh = one.signed(
        &one.alpha,
        &form("DescribeSecurityGroups", &[("GroupName.1", "once")]),
        SystemTime::now(),
    );
    let groups = two.relay(&fresh).await.ok();
    assert_eq!(groups.texts("groupName"), ["once"]);
    let recorded = one.cloud.db.recorded_signatures().await.expect("count");
    assert!(
        recorded >= 2,
        "accepted signatures are in the database: {recorded}"
    );
}

/// RunInstances of `count` m1.tiny of `ami` as alpha, with `extra`
/// parameters, signed `age` seconds ago (so that requests sent together
/// carry distinct signatures, as separate clients' would), sent to `to`.
async fn launch(
    signer: &Endpoint,
    to: &Endpoint,
    ami: &str,
    count: &str,
    extra: &[(&str, &str)],
    age: u64,
) -> Answer {
    let mut params = vec![
        ("ImageId", ami),
        ("MinCount", count),
        ("MaxCount", count),
        ("InstanceType", "m1.tiny"),
    ];
    params.extend_from_slice(extra);
    let wire = signer.signed(
        &signer.alpha,
        &form("RunInstances", &params),
        SystemTime::now() - Duration::from_secs(age),
    );
    to.relay(&wire).await
}

/// alpha's instance ids, as DescribeInstances shows them on `replica`.
async fn instance_ids(replica: &Endpoint) -> BTreeSet<String> {
    replica
        .call("DescribeInstances", &[])
        .await
        .ok()
        .texts("instanceId")
        .into_iter()
        .collect()
}

#[tokio::test]
async fn one_client_token_sent_to_both_replicas_at_once_makes_one_reservation() {
    one_client_token_makes_one_reservation(TestDb::postgres()).await;
}

/// Two processes on one SQLite file share no lock: the token's unique
/// index refuses the second reservation, which answers with the first.
#[tokio::test]
async fn one_client_token_sent_to_two_processes_on_one_sqlite_file_makes_one_reservation() {
    one_client_token_makes_one_reservation(TestDb::sqlite()).await;
}

async fn one_client_token_makes_one_reservation(db: TestDb) {
    let (one, two) = replicas(&db, |_| {}).await;
    let ami = one.register_image("shared").await;
    let answers = futures::future::join_all((0..20u64).map(|i| {
        let to = if i % 2 == 0 { &one } else { &two };
        launch(&one, to, &ami, "2", &[("ClientToken", "same-token")], i)
    }))
    .await;
    let mut reservations = BTreeSet::new();
    let mut launched = BTreeSet::new();
    for answer in answers {
        let answer = answer.ok();
        reservations.extend(answer.texts("reservationId"));
        let ids: BTreeSet<String> = answer.texts("instanceId").into_iter().collect();
        assert_eq!(ids.len(), 2, "{}", answer.body);
        launched.extend(ids);
    }
    assert_eq!(reservations.len(), 1, "{reservations:?}");
    assert_eq!(
        launched.len(),
        2,
        "every answer names the same two: {launched:?}"
    );
    assert_eq!(instance_ids(&one).await, launched);
    assert_eq!(instance_ids(&two).await, launched);
}

#[tokio::test]
async fn launches_racing_on_both_replicas_never_exceed_the_instance_quota() {
    const LIMIT: u64 = 5;
    let db = TestDb::postgres();
    let (one, two) = replicas(&db, |c| c.quotas.instances = LIMIT).await;
    let ami = one.register_image("quota").await;
    let answers = futures::future::join_all((0..16u64).map(|i| {
        let to = if i % 2 == 0 { &one } else { &two };
        launch(&one, to, &ami, "1", &[], i)
    }))
    .await;
    let mut accepted = 0;
    for answer in answers {
        if answer.status == 200 {
            accepted += 1;
        } else {
            answer.refused(400, "InstanceLimitExceeded");
        }
    }
    assert_eq!(accepted, LIMIT, "launches accepted");
    assert_eq!(instance_ids(&two).await.len() as u64, LIMIT);
}

/// The shared record on `db`: a sighting answers the first one while it
/// lasts, an expired record counts as none, and sweeps delete only
/// expired records, at most as many as asked.
async fn signatures_are_recorded_and_swept(db: TestDb) {
    let db = stratus_api::db::Db::connect(&db.url()).await.expect("db");
    assert_eq!(
        db.sight_signature("a", 1_000, 2_000).await.expect("a"),
        1_000
    );
    assert_eq!(
        db.sight_signature("a", 1_500, 2_500).await.expect("a"),
        1_000
    );
    assert_eq!(
        db.sight_signature("b", 1_600, 9_000).await.expect("b"),
        1_600
    );
    // Past its expiry and not swept yet: a new first sighting.
    assert_eq!(
        db.sight_signature("a", 3_000, 4_000).await.expect("a"),
        3_000
    );
    assert_eq!(
        db.sight_signature("c", 3_100, 4_100).await.expect("c"),
        3_100
    );
    assert_eq!(db.sweep_signatures(5_000, 1).await.expect("sweep"), 1);
    assert_eq!(db.sweep_signatures(5_000, 10).await.expect("sweep"), 1);
    assert_eq!(db.recorded_signatures().await.expect("count"), 1, "b stays");
    assert_eq!(
        db.sight_signature("b", 5_000, 13_000).await.expect("b"),
        1_600
    );
}

#[tokio::test]
async fn signatures_are_recorded_and_swept_on_sqlite() {
    signatures_are_recorded_and_swept(TestDb::sqlite()).await;
}

#[tokio::test]
async fn signatures_are_recorded_and_swept_on_postgres() {
    signatures_are_recorded_and_swept(TestDb::postgres()).await;
}

/// Two guards (two processes' memories) on one SQLite file: the second
/// lets a twin through and refuses a replay, as one guard would.
#[tokio::test]
async fn guards_on_one_sqlite_file_share_what_they_accepted() {
    use stratus_api::auth::{AuthError, SignedRequest};
    let file = TestDb::sqlite();
    let db = stratus_api::db::Db::connect(&file.url()).await.expect("db");
    let headers = vec![
        ("host".to_owned(), "h".to_owned()),
        ("x-amz-date".to_owned(), "20261122T123456Z".to_owned()),
        (
            "authorization".to_owned(),
            format!(
                "AWS4-HMAC-SHA256 Credential=AKID/20261122/nova/ec2/aws4_request, \
                 SignedHeaders=host;x-amz-date, Signature={}",
                "ab".repeat(32)
            ),
        ),
    ];
    let request = SignedRequest {
        method: "POST",
        path: "/",
        query: "",
        headers: &headers,
        body: b"",
    };
    let (a, b) = (
        ReplayGuard::with_limits(WINDOW, GRACE, 16),
        ReplayGuard::with_limits(WINDOW, GRACE, 16),
    );
    let admit = async |guard: &ReplayGuard, key: &str| {
        guard
            .admit_shared(&request, key, &db)
            .await
            .expect("the database answers")
    };
    assert_eq!(admit(&a, "AKID").await, Ok(()));
    assert_eq!(admit(&b, "AKID").await, Ok(()), "a twin");
    tokio::time::sleep(GRACE + Duration::from_millis(200)).await;
    let refused = admit(&b, "AKID").await;
    assert!(
        matches!(&refused, Err(AuthError::Replayed(m)) if m == "1s ago"),
        "{refused:?}"
    );
    // A third memory, fresh, refuses it from the file alone.
    let c = ReplayGuard::with_limits(WINDOW, GRACE, 16);
    assert!(admit(&c, "AKID").await.is_err());
    // The same signature under another key is another request.
    assert_eq!(admit(&c, "OTHER").await, Ok(()));
}
