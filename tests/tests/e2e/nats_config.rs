//! The engine reads back the streams and the consumer the NATS server holds
//! and refuses to start when a field it relies on differs from what it
//! asked for (a stream made before with another configuration, or a server
//! that ignores the field).

use std::time::Duration;

use async_nats::jetstream::{consumer, stream};
use provenant_tests::{EngineOptions, EngineProcess, TestLog, TestNats};

#[tokio::test(flavor = "multi_thread")]
async fn a_ticks_stream_that_is_not_a_work_queue_refuses_the_start_and_names_the_field() {
    let db = TestLog::postgres().await;
    let nats = TestNats::new();
    let js = nats.jetstream().await;
    // Made by someone else first, keeping every tick (Limits).
    js.create_stream(stream::Config {
        name: nats.ticks_stream(),
        subjects: vec![nats.names.ticks_wildcard()],
        retention: stream::RetentionPolicy::Limits,
        ..Default::default()
    })
    .await
    .expect("stream made");

    let refused = EngineProcess::try_start(&EngineOptions::with_nats(&db.url, &nats))
        .err()
        .expect("the engine must not start on a ticks stream that is not a work queue");
    assert!(
        refused.contains(&format!("the stream {}", nats.ticks_stream()))
            && refused.contains("retention is Limits where provenant needs WorkQueue")
            && refused.contains("version 2.")
            && refused.contains("--nats-prefix"),
        "{refused}"
    );
    // It changed nothing of the stream it found.
    let mut found = js.get_stream(nats.ticks_stream()).await.unwrap();
    assert_eq!(
        found.info().await.unwrap().config.retention,
        stream::RetentionPolicy::Limits
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tick_consumer_with_another_ack_wait_refuses_the_start() {
    let db = TestLog::postgres().await;
    let nats = TestNats::new();
    // A first start makes the streams and the consumer as the engine wants
    // them; it stops.
    let mut first = EngineProcess::start(&EngineOptions::with_nats(&db.url, &nats));
    assert!(first.terminate().success(), "{}", first.stderr());

    // Someone recreates the consumer redelivering after 30 s, not 10.
    let js = nats.jetstream().await;
    let stream = js.get_stream(nats.ticks_stream()).await.unwrap();
    let durable = nats.names.consumer();
    stream.delete_consumer(&durable).await.expect("deleted");
    stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some(durable.clone()),
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: Duration::from_secs(30),
            max_ack_pending: 4096,
            filter_subject: nats.names.ticks_wildcard(),
            ..Default::default()
        })
        .await
        .expect("consumer made");

    let refused = EngineProcess::try_start(&EngineOptions::with_nats(&db.url, &nats))
        .err()
        .expect("the engine must not start on a consumer it did not ask for");
    assert!(
        refused.contains(&format!("the consumer {durable}"))
            && refused.contains("ack_wait is 30s where provenant needs 10s"),
        "{refused}"
    );
}
