//! The RPC suite, run once against the in-process bus and once against a real
//! RabbitMQ (`STRATUS_TEST_AMQP_URL`, default the local broker that
//! `deploy/dev-setup` starts).

mod declared;
mod harness;
mod reconnect;
mod recorder;
mod suite;

/// Instantiates every suite test for one harness.
macro_rules! suite_for {
    ($module:ident, $harness:ty) => {
        mod $module {
            use crate::harness::Harness;
            suite_for!(@tests $harness;
                cast_reaches_the_server,
                cast_before_the_server_starts_waits_for_it,
                call_returns_the_typed_result,
                call_times_out_cleanly_when_no_server,
                remote_error_comes_back_typed,
                late_reply_is_not_delivered_to_a_later_call,
                unknown_method_is_rejected_without_redelivery,
                undecodable_message_is_rejected_without_redelivery,
                unsupported_envelope_version_is_refused,
                retryable_failure_is_redelivered,
                permanent_failure_is_acked_once,
                host_queue_reaches_only_that_host,
                topic_queue_gives_each_message_to_one_server,
                fanout_reaches_every_server,
                handlers_run_concurrently_up_to_prefetch,
                stopped_server_takes_no_more_messages,
                typed_clients_reach_their_services,
                declared_service_dispatches_by_method_name,
            );
        }
    };
    (@tests $harness:ty; $($test:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                let harness = <$harness>::start().await;
                crate::suite::$test(&harness).await;
                harness.finish().await;
            }
        )*
    };
}

suite_for!(memory, crate::harness::MemoryHarness);
suite_for!(amqp, crate::harness::AmqpHarness);
