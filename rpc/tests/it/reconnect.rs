//! What only a real broker can do to us: close our connections under us.

use std::time::Duration;

use stratus_rpc::{RequestContext, Target, Transport};
use stratus_test_support::broker::{Vhost, rabbitmqctl};
use stratus_test_support::eventually;

use crate::harness::{AmqpHarness, Harness, test_config};
use crate::recorder::Recorder;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cast_survives_the_broker_closing_the_connection() {
    let vhost = Vhost::create();
    let mut config = test_config("stratus");
    config.url = vhost.url();
    let h = AmqpHarness::with_config(config, vhost.name().to_owned());

    let server = Recorder::new("a");
    let server_transport = h.amqp().await;
    let _serving = server_transport
        .serve("svc", None, server.clone())
        .await
        .expect("serve");
    let client_transport = h.amqp().await;
    let client = stratus_rpc::RpcClient::new(client_transport.clone(), Duration::from_secs(5));
    let ctx = RequestContext::system();
    client
        .cast(&ctx, &Target::topic("svc"), "echo", &0)
        .await
        .expect("cast");
    assert!(eventually(Duration::from_secs(10), || server.count("echo") == 1).await);

    rabbitmqctl(&[
        "close_all_connections",
        "-p",
        vhost.name(),
        "test closes the connection",
    ]);
    // Sent while both sides are cut off or reconnecting: it must not vanish.
    client
        .cast(&ctx, &Target::topic("svc"), "echo", &1)
        .await
        .expect("cast after close");
    assert!(
        eventually(Duration::from_secs(20), || server.count("echo") == 2).await,
        "the cast made across the reconnect never arrived"
    );
    // rabbitmqctl returns before every close has landed: wait for both ends.
    let reconnected = eventually(Duration::from_secs(20), || {
        client_transport.reconnects() >= 1 && server_transport.reconnects() >= 1
    });
    assert!(
        reconnected.await,
        "reconnects: client {}, server {}",
        client_transport.reconnects(),
        server_transport.reconnects()
    );

    // Calls work again on the new connection, replies included.
    let echoed: u32 = client
        .call(&ctx, &Target::topic("svc"), "echo", &7u32)
        .await
        .expect("call after reconnect");
    assert_eq!(echoed, 7);
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_to_no_broker_is_a_clear_error() {
    let mut config = test_config("stratus");
    config.url = "amqp://guest:secret@127.0.0.1:1/%2f".into();
    let err = stratus_rpc::transport::amqp::AmqpTransport::connect(&config, "nobody")
        .await
        .expect_err("nothing listens on port 1");
    let message = err.to_string();
    assert!(message.contains("127.0.0.1:1"), "{message}");
    assert!(!message.contains("secret"), "password leaked: {message}");
}
