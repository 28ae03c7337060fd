//! The engine reads back the streams and the consumers the NATS server
//! holds and refuses to start when a field it relies on differs from what
//! it asked for (a stream made before with another configuration, or a
//! server that ignores the field, as 2.9 does subject transforms); with
//! partitions, the server files each world where the engines look for it.

use std::time::Duration;

use async_nats::jetstream::{consumer, stream};
use provenant_events::{Partitions, WorldId};
use provenant_tests::{EngineOptions, EngineProcess, PrivateNats, TestLog, TestNats};

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
async fn a_tick_consumer_made_by_someone_else_is_replaced_by_the_partitions_own() {
    let db = TestLog::postgres().await;
    let nats = TestNats::new();
    // A first start makes the streams; it stops.
    let mut first = EngineProcess::start(&EngineOptions::with_nats(&db.url, &nats));
    assert!(first.terminate().success(), "{}", first.stderr());

    // Someone replaces its consumer with one under the engine's old name,
    // redelivering after 30 s, not 10.
    let js = nats.jetstream().await;
    let stream = js.get_stream(nats.ticks_stream()).await.unwrap();
    let durable = nats.names.consumer();
    for name in consumer_names(&js, &nats).await {
        stream.delete_consumer(&name).await.expect("deleted");
    }
    stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some(durable.clone()),
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: Duration::from_secs(30),
            filter_subject: nats.names.ticks_wildcard(),
            ..Default::default()
        })
        .await
        .expect("consumer made");

    // Taking partition 0 over replaces it with the epoch's own, as asked.
    let engine = EngineProcess::start(&EngineOptions::with_nats(&db.url, &nats));
    // Ready once the partition's consumer runs (it is made after the start).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while engine.get("/readyz").await.0 != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "not ready: {}",
            engine.stderr()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let log = db.open().await;
    let epoch = log
        .leases()
        .await
        .unwrap()
        .into_iter()
        .find(|l| l.name == "partition:0")
        .expect("partition 0 is held")
        .epoch;
    let mine = nats.names.partition_consumer(0, epoch);
    let names = consumer_names(&js, &nats).await;
    assert_eq!(names, vec![mine.clone()]);
    let mut c: consumer::PullConsumer = stream.get_consumer(&mine).await.unwrap();
    assert_eq!(
        c.info().await.unwrap().config.ack_wait,
        Duration::from_secs(10)
    );
}

async fn consumer_names(js: &async_nats::jetstream::Context, nats: &TestNats) -> Vec<String> {
    use futures_util::StreamExt as _;
    let stream = js.get_stream(nats.ticks_stream()).await.unwrap();
    let mut names: Vec<String> = stream.consumer_names().map(|n| n.unwrap()).collect().await;
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn partitions_on_a_server_without_subject_transforms_refuse_the_start() {
    // Debian's nats-server 2.9 takes the stream and drops the transform
    // that files ticks by partition.
    let server = PrivateNats::start();
    let db = TestLog::postgres().await;
    let nats = TestNats::on(server.url());
    let refused = EngineProcess::try_start(&EngineOptions {
        args: vec!["--partitions".into(), "4".into()],
        ..EngineOptions::with_nats(&db.url, &nats)
    })
    .err()
    .expect("the engine must not start with partitions the server cannot file");
    assert!(
        refused.contains(&format!("the stream {}", nats.ticks_stream()))
            && refused.contains("subject_transform is None")
            && refused.contains("version 2.9")
            && refused.contains("2.10 and newer with more"),
        "{refused}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_server_files_each_world_under_the_partition_the_engines_compute() {
    let server = PrivateNats::start_current();
    let db = TestLog::postgres().await;
    let nats = TestNats::on(server.url());
    let mut engine = EngineProcess::start(&EngineOptions {
        args: vec!["--partitions".into(), "7".into()],
        ..EngineOptions::with_nats(&db.url, &nats)
    });
    // Stopped: the ticks stay in the stream, as the server filed them.
    assert!(engine.terminate().success(), "{}", engine.stderr());
    let js = nats.jetstream().await;
    let partitions = Partitions::new(7).unwrap();
    let worlds: Vec<String> = (0..60)
        .map(|i| format!("w{i}"))
        .chain(["tavern", "a", "Z-9_x"].map(String::from))
        .collect();
    for w in &worlds {
        js.publish(nats.ticks_subject(w), "{}".into())
            .await
            .unwrap()
            .await
            .expect("stored");
    }
    let mut stream = js.get_stream(nats.ticks_stream()).await.unwrap();
    let info = stream.info().await.unwrap();
    assert_eq!(info.state.messages, worlds.len() as u64);
    for (seq, w) in (info.state.first_sequence..).zip(&worlds) {
        let message = stream.get_raw_message(seq).await.unwrap();
        let k = partitions.of(&WorldId::new(w).unwrap());
        assert_eq!(
            message.subject.as_str(),
            format!("{}.part.{k}.{w}", nats.prefix)
        );
    }
}
