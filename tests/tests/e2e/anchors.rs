//! Signed head anchors: the engine signs each anchor with its key (`serve
//! --anchor-key-file`, `keys generate`); `audit verify --expect-head`
//! accepts an anchor only when the public key given verifies it, and
//! `audit anchors` finds the newest anchor the key signed and verifies the
//! log against it. A forged anchor, one signed by another key, and an old
//! anchor replayed after the log was cut are each caught.

use std::path::{Path, PathBuf};
use std::process::Output;

use provenant_tests::cli::{json, provenant_on, provenant_on_env, stderr, stdout};
use provenant_tests::{Backend, EngineOptions, EngineProcess, TestLog, TestNats, tavern, tick};
use serde_json::Value;

use crate::service::read_anchors_until;

/// `keys generate` into `dir`: the private key's path and the public key's.
fn generate(db_url: &str, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let private = dir.join(name);
    let out = provenant_on(
        db_url,
        &["keys", "generate", "--out", private.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let public = dir.join(format!("{name}.pub"));
    assert!(
        stdout(&out).contains(public.to_str().unwrap()),
        "{}",
        stdout(&out)
    );
    // The private key is its owner's alone.
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&private).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "{mode:o}");
    // A second generate does not overwrite it.
    let again = provenant_on(
        db_url,
        &["keys", "generate", "--out", private.to_str().unwrap()],
    );
    assert!(!again.status.success());
    assert!(stderr(&again).contains("exists"), "{}", stderr(&again));
    (private, public)
}

fn verify_against(db_url: &str, anchor: &Value, public: &Path) -> Output {
    provenant_on(
        db_url,
        &[
            "audit",
            "verify",
            "--expect-head",
            &anchor.to_string(),
            "--anchor-public-key",
            public.to_str().unwrap(),
        ],
    )
}

fn audit_anchors(db_url: &str, nats: &TestNats, public: &Path) -> Output {
    provenant_on_env(
        db_url,
        &[
            "audit",
            "anchors",
            "--json",
            "--anchor-public-key",
            public.to_str().unwrap(),
        ],
        &[
            ("NATS_URL".into(), nats.url.clone()),
            ("PROVENANT_NATS_PREFIX".into(), nats.prefix.clone()),
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_anchors_catch_forgery_other_keys_and_replays_after_a_cut() {
    let db = TestLog::new(Backend::Postgres).await;
    let nats = TestNats::new();
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = generate(&db.url, dir.path(), "engine.pem");
    let (other_key, _) = generate(&db.url, dir.path(), "other.pem");
    let mut options = EngineOptions::with_nats(&db.url, &nats);
    options.args = vec![
        "--anchor-interval-seconds".into(),
        "1".into(),
        "--anchor-key-file".into(),
        key.display().to_string(),
    ];
    let mut engine = EngineProcess::start(&options);
    let (status, answer) = engine.put("/v1/worlds/tavern", &tavern()).await;
    assert_eq!(status, 200, "{answer}");
    let send = |n: u64| {
        let body = serde_json::to_vec(&tick("tavern", "s1", n, &["npc-1"])).unwrap();
        let engine = &engine;
        async move {
            let (status, answer) = engine.post("/v1/ticks", &body).await;
            assert_eq!(status, 200, "{answer}");
        }
    };
    send(1).await;
    let log = db.open().await;
    let first_head = log.head().await.unwrap();
    let js = nats.jetstream().await;
    let anchors = read_anchors_until(&js, &nats.anchors_stream(), |seen| {
        seen.iter()
            .any(|a| a["position"].as_u64() >= Some(first_head.position))
    })
    .await;
    let old = anchors.last().unwrap().clone();
    assert_eq!(old["signature"]["alg"], "ed25519", "{old}");
    // The engine's anchor verifies with its public key, and pins the log.
    let out = verify_against(&db.url, &old, &public);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));

    send(2).await;
    send(3).await;
    assert!(engine.terminate().success());
    let last_head = log.head().await.unwrap();
    let anchors = read_anchors_until(&js, &nats.anchors_stream(), |seen| {
        seen.iter()
            .any(|a| a["position"].as_u64() >= Some(last_head.position))
    })
    .await;
    let newest = anchors.last().unwrap().clone();
    assert_eq!(newest["head"], last_head.to_string());
    let out = audit_anchors(&db.url, &nats, &public);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let report = json(&out);
    assert_eq!(report["verify"]["status"], "intact", "{report}");
    assert_eq!(report["newest"]["head"], last_head.to_string(), "{report}");
    assert!(
        report["anchors"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["status"] == "signed"),
        "{report}"
    );

    // A forged anchor: the newest with its head moved back to the old one
    // (what an attacker who cut the log would publish), signature kept.
    let mut forged = newest.clone();
    for member in ["head", "position", "hash"] {
        forged[member] = old[member].clone();
    }
    let out = verify_against(&db.url, &forged, &public);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(stderr(&out).contains("does not verify"), "{}", stderr(&out));
    // An anchor signed by another key.
    let other = sign_with(&other_key, &old);
    let out = verify_against(&db.url, &other, &public);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("another key"), "{}", stderr(&out));
    // An unsigned anchor, and an anchor without a key to check it.
    let mut unsigned = old.clone();
    unsigned.as_object_mut().unwrap().remove("signature");
    let out = verify_against(&db.url, &unsigned, &public);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("not signed"), "{}", stderr(&out));
    let out = provenant_on(
        &db.url,
        &["audit", "verify", "--expect-head", &old.to_string()],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--anchor-public-key"),
        "{}",
        stderr(&out)
    );

    // The attack: the log cut back to the old anchor's head, the old
    // anchor published again, and anchors of the cut head forged and
    // signed by another key.
    db.tamper(&format!(
        "DELETE FROM {{events}} WHERE position > {}",
        first_head.position
    ))
    .await;
    let subject = format!("{}.anchors", nats.prefix);
    for body in [old.clone(), forged.clone(), other.clone()] {
        js.publish(subject.clone(), body.to_string().into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    // The old anchor alone still verifies (the log holds its head)…
    let out = verify_against(&db.url, &old, &public);
    assert!(out.status.success(), "{}", stdout(&out));
    // …but `audit anchors` verifies against the newest anchor the key
    // signed, which the cut log no longer holds, and names the replay and
    // the forgeries.
    let out = audit_anchors(&db.url, &nats, &public);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let report = json(&out);
    assert_eq!(report["verify"]["status"], "tampered", "{report}");
    assert_eq!(
        report["verify"]["violation"]["fault"], "pinned_head_gone",
        "{report}"
    );
    assert_eq!(report["newest"]["head"], last_head.to_string(), "{report}");
    let statuses: Vec<(String, String)> = report["anchors"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .take(3)
        .map(|a| {
            (
                a["status"].as_str().unwrap().to_owned(),
                a["detail"].to_string(),
            )
        })
        .collect();
    assert_eq!(statuses[2].0, "replayed", "{report}");
    assert_eq!(statuses[1].0, "refused", "{report}");
    assert!(statuses[1].1.contains("does not verify"), "{report}");
    assert_eq!(statuses[0].0, "refused", "{report}");
    assert!(statuses[0].1.contains("another key"), "{report}");
    assert_eq!(report["faults"], 3, "{report}");
    assert_eq!(report["forks"], serde_json::json!([]), "{report}");

    // The cut log grows again past the old head, and the engine (its key)
    // signs the new head: the newest anchor now holds, but the anchors of
    // the old chain name other events at their positions: a fork.
    let log = db.open().await;
    while log.head().await.unwrap().position <= last_head.position {
        let event = provenant_events::NewEvent::new(
            provenant_events::StreamName::new("other").unwrap(),
            provenant_events::EventKind::new("Filler").unwrap(),
            serde_json::json!({}),
        );
        log.append(provenant_log::AppendBatch::new(vec![event]))
            .await
            .unwrap();
    }
    let forked = log.head().await.unwrap();
    let signed_fork = sign_with(
        &key,
        &serde_json::json!({"head": forked.to_string(), "position": forked.position,
            "hash": forked.hash.to_string(), "at": "2026-12-02T06:00:00Z", "engine_instance": "e"}),
    );
    js.publish(subject, signed_fork.to_string().into())
        .await
        .unwrap()
        .await
        .unwrap();
    let out = audit_anchors(&db.url, &nats, &public);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let report = json(&out);
    assert_eq!(report["newest"]["head"], forked.to_string(), "{report}");
    assert_eq!(report["verify"]["status"], "intact", "{report}");
    let forks = report["forks"].as_array().unwrap();
    assert!(
        forks.iter().any(|f| f
            .as_str()
            .unwrap()
            .contains(&format!("position {}", last_head.position))),
        "{report}"
    );
}

/// `anchor`'s members signed with the key at `key`, as the engine signs.
fn sign_with(key: &Path, anchor: &Value) -> Value {
    let signing = provenant_engine::anchor::read_signing_key(key).unwrap();
    provenant_engine::anchor::parse(anchor)
        .unwrap()
        .to_json(Some(&signing))
}

#[test]
fn a_signing_key_without_anchors_to_sign_is_refused() {
    let db = TestLog::sqlite();
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = generate(&db.url, dir.path(), "engine.pem");
    let refused = EngineProcess::try_start(&EngineOptions {
        database_url: db.url.clone(),
        args: vec!["--anchor-key-file".into(), key.display().to_string()],
        ..Default::default()
    });
    let Err(message) = refused else {
        panic!("the engine started with a key and no NATS to publish anchors to")
    };
    assert!(message.contains("give --nats-url too"), "{message}");
}
