//! Leases and fencing: one holder per lease, an epoch that grows at every
//! takeover, and appends refused inside their transaction once the epoch
//! they were made under is gone. Run against PostgreSQL and SQLite; the
//! race with a takeover in flight against PostgreSQL.

use std::time::Duration;

use provenant_events::{EventKind, NewEvent, Partitions};
use provenant_log::{AppendBatch, EventLog, Fence, LogError, ProjectionCommit};
use provenant_tests::{TestLog, stream};
use serde_json::json;

conformance!(
    a_lease_has_one_holder_and_its_epoch_grows_at_each_takeover,
    an_append_under_a_lease_taken_over_is_refused_and_writes_nothing,
    an_expired_lease_no_one_took_over_still_appends,
    an_instance_restarted_under_its_name_reclaims_its_lease_and_fences_its_earlier_run,
    checkpoints_and_projection_commits_under_a_lease_taken_over_are_refused,
    the_partition_count_is_recorded_once,
);

const MINUTE: Duration = Duration::from_secs(60);
/// A lease that has expired by the time anyone else asks for it: takeovers
/// without waiting for a clock.
const EXPIRED: Duration = Duration::ZERO;

fn batch(tag: &str) -> AppendBatch {
    AppendBatch::new(vec![NewEvent::new(
        stream(&format!("lease-{tag}")),
        EventKind::new("Leased").unwrap(),
        json!({ "tag": tag }),
    )])
}

async fn head(log: &EventLog) -> u64 {
    log.head().await.expect("head").position
}

async fn a_lease_has_one_holder_and_its_epoch_grows_at_each_takeover(t: TestLog) {
    let log = t.open().await;
    let a = log
        .acquire_lease("partition:7", "engine-a", MINUTE)
        .await
        .unwrap()
        .expect("a free lease is taken");
    assert_eq!((a.owner.as_str(), a.epoch), ("engine-a", 1));
    // Held: no one else takes it, nor does its holder take it again.
    for owner in ["engine-b", "engine-a"] {
        assert_eq!(
            log.acquire_lease("partition:7", owner, MINUTE)
                .await
                .unwrap(),
            None,
            "{owner}"
        );
    }
    let renewed = log.renew_lease(&a, MINUTE).await.unwrap().expect("renewed");
    assert_eq!(renewed.epoch, 1);
    assert!(renewed.expires_at >= a.expires_at);

    // Given up: the next holder takes it at once, under the next epoch; the
    // old holder can neither renew nor release it any more.
    assert!(log.release_lease(&a).await.unwrap());
    let b = log
        .acquire_lease("partition:7", "engine-b", EXPIRED)
        .await
        .unwrap()
        .expect("a released lease is taken");
    assert_eq!(b.epoch, 2);
    assert_eq!(log.renew_lease(&a, MINUTE).await.unwrap(), None);
    assert!(!log.release_lease(&a).await.unwrap());

    // Expired: taken over without its holder's word.
    let c = log
        .acquire_lease("partition:7", "engine-c", MINUTE)
        .await
        .unwrap()
        .expect("an expired lease is taken");
    assert_eq!(c.epoch, 3);
    assert_eq!(log.renew_lease(&b, MINUTE).await.unwrap(), None);

    // Another lease has its own epochs.
    let relay = log
        .acquire_lease("relay", "engine-b", MINUTE)
        .await
        .unwrap()
        .expect("taken");
    assert_eq!(relay.epoch, 1);

    let listed: Vec<(String, String, u64, bool)> = log
        .leases()
        .await
        .unwrap()
        .into_iter()
        .map(|l| (l.name, l.owner, l.epoch, l.expired))
        .collect();
    assert_eq!(
        listed,
        vec![
            ("partition:7".into(), "engine-c".into(), 3, false),
            ("relay".into(), "engine-b".into(), 1, false),
        ]
    );

    for (name, owner) in [("", "engine-a"), ("partition:7", ""), ("p\n1", "engine-a")] {
        let refused = log.acquire_lease(name, owner, MINUTE).await;
        assert!(matches!(refused, Err(LogError::Invalid(_))), "{refused:?}");
    }
    let too_long = log
        .acquire_lease("partition:8", "engine-a", Duration::from_secs(86_401))
        .await;
    assert!(
        matches!(too_long, Err(LogError::Invalid(_))),
        "{too_long:?}"
    );
}

async fn an_append_under_a_lease_taken_over_is_refused_and_writes_nothing(t: TestLog) {
    let log = t.open().await;
    let a = log
        .acquire_lease("partition:1", "engine-a", EXPIRED)
        .await
        .unwrap()
        .expect("taken");
    log.append(batch("a-1").fenced(a.fence()))
        .await
        .expect("the holder appends");

    // engine-a pauses past its lease; engine-b takes over.
    let b = log
        .acquire_lease("partition:1", "engine-b", MINUTE)
        .await
        .unwrap()
        .expect("taken over");
    assert_eq!(b.epoch, 2);
    let before = head(&log).await;
    let refused = log.append(batch("a-2").fenced(a.fence())).await;
    match &refused {
        Err(LogError::Fenced {
            lease,
            epoch,
            current,
            owner,
        }) => {
            assert_eq!(
                (lease.as_str(), *epoch, *current, owner.as_deref()),
                ("partition:1", 1, Some(2), Some("engine-b"))
            );
        }
        other => panic!("expected the append to be fenced out, got {other:?}"),
    }
    let message = refused.unwrap_err().to_string();
    assert!(
        message.contains("lease \"partition:1\" at epoch 1")
            && message.contains("engine-b holds it at epoch 2")
            && message.contains("nothing was written"),
        "{message}"
    );
    assert_eq!(head(&log).await, before, "a fenced append wrote something");

    // One fence gone refuses the batch whatever the others say.
    let other = log
        .acquire_lease("partition:2", "engine-a", MINUTE)
        .await
        .unwrap()
        .expect("taken");
    let mixed = log
        .append(batch("a-3").fenced(other.fence()).fenced(a.fence()))
        .await;
    assert!(matches!(mixed, Err(LogError::Fenced { .. })), "{mixed:?}");
    assert_eq!(head(&log).await, before);

    // A lease no one holds fences out too; a batch naming one lease twice
    // is refused before the database.
    let never = log
        .append(batch("a-4").fenced(Fence {
            lease: "partition:99".into(),
            epoch: 1,
        }))
        .await;
    assert!(
        matches!(
            &never,
            Err(LogError::Fenced {
                current: None,
                owner: None,
                ..
            })
        ),
        "{never:?}"
    );
    let twice = log
        .append(batch("b-0").fenced(b.fence()).fenced(b.fence()))
        .await;
    assert!(matches!(twice, Err(LogError::Invalid(_))), "{twice:?}");
    assert_eq!(head(&log).await, before);

    // The new holder appends.
    let written = log
        .append(batch("b-1").fenced(b.fence()))
        .await
        .expect("the new holder appends");
    assert_eq!(written.positions, vec![before + 1]);
}

async fn an_expired_lease_no_one_took_over_still_appends(t: TestLog) {
    // Fencing is by epoch, not by clock: a lease past its expiry that no one
    // took over still covers its holder's appends (no one else can have
    // appended under it), and renewing it keeps the epoch.
    let log = t.open().await;
    let a = log
        .acquire_lease("partition:3", "engine-a", EXPIRED)
        .await
        .unwrap()
        .expect("taken");
    assert!(log.leases().await.unwrap()[0].expired);
    log.append(batch("late").fenced(a.fence()))
        .await
        .expect("appended under an expired lease no one took");
    let renewed = log.renew_lease(&a, MINUTE).await.unwrap().expect("renewed");
    assert_eq!(renewed.epoch, 1);
    assert!(!log.leases().await.unwrap()[0].expired);
}

/// A takeover that has not committed yet when the append reads the lease:
/// the append waits for it and is then refused (it never commits an event
/// under the old epoch after the new one committed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_an_append_waits_for_a_takeover_in_flight_and_is_then_fenced_out() {
    use sqlx::Connection as _;

    let t = TestLog::postgres().await;
    let log = t.open().await;
    let a = log
        .acquire_lease("partition:5", "engine-a", EXPIRED)
        .await
        .unwrap()
        .expect("taken");
    let before = head(&log).await;

    // engine-b's takeover, held open in its transaction.
    let mut b = sqlx::postgres::PgConnection::connect(&t.url)
        .await
        .expect("connect");
    sqlx::raw_sql(
        "BEGIN; UPDATE provenant.leases SET owner = 'engine-b', epoch = epoch + 1, \
         expires_at = now() + interval '1 minute' WHERE name = 'partition:5'",
    )
    .execute(&mut b)
    .await
    .expect("takeover begun");

    let appending = {
        let log = log.clone();
        let fence = a.fence();
        tokio::spawn(async move { log.append(batch("racing").fenced(fence)).await })
    };
    // The append is waiting for the takeover's row lock (the database says
    // so; no fixed wait).
    let mut watch = sqlx::postgres::PgConnection::connect(&t.url)
        .await
        .expect("connect");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (waiting,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND wait_event_type = 'Lock' AND query LIKE '%FOR SHARE%'",
        )
        .fetch_one(&mut watch)
        .await
        .expect("pg_stat_activity");
        if waiting == 1 {
            break;
        }
        assert!(
            !appending.is_finished(),
            "the append did not wait: {:?}",
            appending.await
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "the append never waited for the takeover"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    sqlx::raw_sql("COMMIT")
        .execute(&mut b)
        .await
        .expect("takeover committed");

    let result = appending.await.expect("the append task");
    assert!(
        matches!(
            &result,
            Err(LogError::Fenced {
                epoch: 1,
                current: Some(2),
                ..
            })
        ),
        "{result:?}"
    );
    assert_eq!(head(&log).await, before);
}

async fn an_instance_restarted_under_its_name_reclaims_its_lease_and_fences_its_earlier_run(
    t: TestLog,
) {
    let log = t.open().await;
    let first = log
        .acquire_lease("partition:3", "engine-a", MINUTE)
        .await
        .unwrap()
        .expect("taken");
    // Another owner cannot reclaim it while it runs.
    assert_eq!(
        log.reclaim_lease("partition:3", "engine-b", MINUTE)
            .await
            .unwrap(),
        None
    );
    // The same name (a restart) takes it back at once, under a new epoch.
    let again = log
        .reclaim_lease("partition:3", "engine-a", MINUTE)
        .await
        .unwrap()
        .expect("reclaimed");
    assert_eq!(again.epoch, first.epoch + 1);
    let before = head(&log).await;
    let refused = log.append(batch("old-run").fenced(first.fence())).await;
    assert!(
        matches!(refused, Err(LogError::Fenced { epoch, current: Some(c), .. }) if epoch == first.epoch && c == again.epoch),
        "{refused:?}"
    );
    assert_eq!(head(&log).await, before);
    assert_eq!(log.renew_lease(&first, MINUTE).await.unwrap(), None);
    log.append(batch("new-run").fenced(again.fence()))
        .await
        .expect("the new run appends");
}

async fn checkpoints_and_projection_commits_under_a_lease_taken_over_are_refused(t: TestLog) {
    let log = t.open().await;
    let a = log
        .acquire_lease("relay", "engine-a", EXPIRED)
        .await
        .unwrap()
        .expect("taken");
    log.save_checkpoint_fenced("relay:test", 0, Some(&a.fence()))
        .await
        .expect("saved while held");
    let b = log
        .acquire_lease("relay", "engine-b", MINUTE)
        .await
        .unwrap()
        .expect("taken over");
    log.append(batch("c1")).await.unwrap();
    let head = head(&log).await;
    let refused = log
        .save_checkpoint_fenced("relay:test", head, Some(&a.fence()))
        .await;
    assert!(
        matches!(refused, Err(LogError::Fenced { .. })),
        "{refused:?}"
    );
    assert_eq!(log.checkpoint("relay:test").await.unwrap(), Some(0));
    log.save_checkpoint_fenced("relay:test", head, Some(&b.fence()))
        .await
        .expect("the new holder saves");
    assert_eq!(log.checkpoint("relay:test").await.unwrap(), Some(head));

    let p = log
        .acquire_lease("projections", "engine-a", EXPIRED)
        .await
        .unwrap()
        .expect("taken");
    log.acquire_lease("projections", "engine-b", MINUTE)
        .await
        .unwrap()
        .expect("taken over");
    let changes = vec![("k".to_owned(), Some("{}".to_owned()))];
    let stale = p.fence();
    let refused = log
        .commit_projection(&ProjectionCommit {
            name: "fenced",
            version: 1,
            from: 0,
            to: head,
            changes: &changes,
            fence: Some(&stale),
        })
        .await;
    assert!(
        matches!(refused, Err(LogError::Fenced { .. })),
        "{refused:?}"
    );
    assert!(log.load_projection("fenced").await.unwrap().is_none());
}

async fn the_partition_count_is_recorded_once(t: TestLog) {
    let log = t.open().await;
    assert_eq!(log.recorded_partitions().await.unwrap(), None);
    let eight = Partitions::new(8).unwrap();
    assert_eq!(log.cluster_partitions(Some(eight)).await.unwrap(), eight);
    // Later engines: the recorded count, whether they ask for it or not.
    assert_eq!(log.cluster_partitions(None).await.unwrap(), eight);
    assert_eq!(log.recorded_partitions().await.unwrap(), Some(eight));
    let refused = log
        .cluster_partitions(Some(Partitions::new(4).unwrap()))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("this cluster has 8 partitions")
            && refused.contains("not the 4 asked for"),
        "{refused}"
    );
}

/// A holder frozen in the middle of its append's `COPY` (its rows half
/// sent, as a SIGSTOP can leave it): PostgreSQL ends the session on no
/// timeout (it is active, reading COPY data), and it holds the lease row
/// (and the append lock) for ever. The taker, refused by the row lock,
/// ends such a session once it has waited longer than a lease, and takes
/// the lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_takeover_ends_an_append_frozen_in_its_copy() {
    use sqlx::Connection as _;

    let t = TestLog::postgres().await;
    let log = t.open().await;
    let ttl = Duration::from_millis(200);
    log.acquire_lease("partition:3", "frozen", ttl)
        .await
        .unwrap()
        .expect("taken");
    // The frozen holder: the lease row read FOR SHARE as an append reads
    // it, then a COPY begun whose data never comes.
    let mut frozen = sqlx::postgres::PgConnection::connect(&t.url)
        .await
        .expect("connect");
    sqlx::raw_sql("BEGIN; SELECT epoch FROM provenant.leases WHERE name = 'partition:3' FOR SHARE")
        .execute(&mut frozen)
        .await
        .expect("lease row read");
    let copy = frozen
        .copy_in_raw("COPY provenant.events (position) FROM STDIN")
        .await
        .expect("COPY begun");
    // Each refused attempt waits its lock timeout: no fixed wait. (The
    // taker asks for the same lease length as the holder had, as engines
    // of one cluster do: the frozen session is ended once older than it.)
    let mut taken = None;
    for _ in 0..40 {
        taken = log
            .acquire_lease("partition:3", "taker", ttl)
            .await
            .unwrap();
        if taken.is_some() {
            break;
        }
    }
    let taken = taken.expect("the takeover ended the frozen append and took the lease");
    assert_eq!((taken.owner.as_str(), taken.epoch), ("taker", 2));
    // The frozen session is gone: its COPY cannot finish.
    assert!(copy.finish().await.is_err());
}
