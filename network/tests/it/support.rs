//! What the network tests share beyond stratus-test-support.

use stratus_network::ipam::store::Store;
use stratus_test_support::TestDb;

/// The IPAM store on a test database.
pub async fn store(db: &TestDb) -> Store {
    Store::connect(&db.url())
        .await
        .expect("connect the test database")
}
