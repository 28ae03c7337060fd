//! Remote plugins in the host: real HTTP services (axum on their own
//! ports) and a real NATS responder, loaded from a plugins directory beside
//! the built-in plugins, called through ticks.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use provenant_engine::plugin_source::PluginSource;
use provenant_events::{EventKind, NewEvent, SessionId, StreamName, WorldId, keys, kinds};
use provenant_host::context::TickNpc;
use provenant_host::state::GameState;
use provenant_host::tick::{Tick, evaluate_tick};
use provenant_host::{HostConfig, PluginHost};
use provenant_tests::remote::{Answer, RemoteService, write_remote_plugin};
use serde_json::{Value, json};
use uuid::Uuid;

fn source(dir: &Path) -> PluginSource {
    PluginSource {
        dir: Some(dir.to_owned()),
        nats_url: Some(provenant_tests::nats_url()),
        ..PluginSource::builtin()
    }
}

fn host(dir: &Path) -> PluginHost {
    let plugins = source(dir).load().expect("the plugins load");
    PluginHost::start(plugins, HostConfig::default()).expect("the host starts")
}

fn world() -> WorldId {
    WorldId::new("w1").unwrap()
}

/// A world with `activities`, a game flag, a flag of another plugin, a
/// relationship and the NPC's stored state.
fn state(activities: Value) -> Arc<GameState> {
    let session = SessionId::new("s1").unwrap();
    let mut state = GameState::default();
    let mut e = NewEvent::new(
        StreamName::world(&world()),
        EventKind::new(kinds::WORLD_CONFIGURED).unwrap(),
        json!({"name": "W1", "meta": {"behavior": {"activities": activities}}}),
    );
    e.world_id = Some(world());
    state.apply(&e);
    for (kind, payload) in [
        (
            kinds::SESSION_FLAG_SET,
            json!({"key": "quest", "value": "started"}),
        ),
        (
            kinds::SESSION_FLAG_SET,
            json!({"key": "plugin:game-stealth:secret", "value": 42}),
        ),
        (
            kinds::RELATIONSHIP_UPDATED,
            json!({"npc_key": "guard", "updates": {"trust": 3}, "relationship": {"trust": 3}}),
        ),
    ] {
        let mut e = NewEvent::new(
            StreamName::session(&world(), &session),
            EventKind::new(kind).unwrap(),
            payload,
        );
        e.world_id = Some(world());
        e.session_id = Some(session.clone());
        state.apply(&e);
    }
    Arc::new(state)
}

fn tick(n: u64, npcs: usize) -> Tick {
    let at: DateTime<Utc> = DateTime::parse_from_rfc3339("2026-12-01T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    Tick {
        tick_id: Uuid::from_u128(0x3000 + n as u128),
        world_id: world(),
        session_id: SessionId::new("s1").unwrap(),
        tick: n,
        at,
        npcs: (0..npcs)
            .map(|i| TickNpc {
                npc_id: if i == 0 {
                    "guard".into()
                } else {
                    format!("npc{i}")
                },
                location_id: Some("hall".into()),
                state: json!({"hp": 10}),
            })
            .collect(),
        session_updates: None,
        context: Some(json!({"weather": "rain"})),
    }
}

fn activity(plugin: &str, params: Value) -> Value {
    json!({"id": plugin, "conditions": [{"id": format!("plugin:{plugin}:c")}],
           "effects": [{"id": format!("effect:plugin:{plugin}:e"), "params": params}]})
}

fn of_kind<'a>(events: &'a [NewEvent], kind: &str) -> Vec<&'a NewEvent> {
    events.iter().filter(|e| e.kind.as_str() == kind).collect()
}

fn of_plugin<'a>(events: &'a [NewEvent], kind: &str, plugin: &str) -> Vec<&'a NewEvent> {
    events
        .iter()
        .filter(|e| {
            e.kind.as_str() == kind && e.plugin_id.as_ref().is_some_and(|p| p.as_str() == plugin)
        })
        .collect()
}

/// Answers every condition true and every effect with `writes`.
fn answering(writes: Value) -> impl Fn(&str, &Value) -> Answer + Send + Sync + 'static {
    move |op, _| match op {
        "evaluate-condition" => Answer::Json(json!({"result": true, "metadata": {"why": "fate"}})),
        _ => Answer::Json(json!({"result": {"done": true}, "writes": writes})),
    }
}

#[test]
fn a_remote_plugin_is_sent_only_what_its_permissions_allow_and_its_writes_go_through_the_host() {
    let writes = json!([
        {"capability": "set_session_flag", "key": "mood", "value": "merry"},
        {"capability": "update_relationship", "npc_key": "guard", "updates": {"awe": 1}},
        {"capability": "log", "level": "info", "message": "consulted"},
    ]);
    let service = RemoteService::start(answering(writes));
    let dir = tempfile::tempdir().unwrap();
    write_remote_plugin(
        dir.path(),
        "oracle",
        &[
            "group:behavior",
            "world:read",
            "session:read",
            "session:write",
            "npc:read",
            "db:read",
        ],
        &service.endpoint(),
        json!({}),
    );
    // The behavior group holds the read-only permissions (the original's
    // groups): this one asks for registration alone.
    write_remote_plugin(
        dir.path(),
        "stranger",
        &["behavior:extend_conditions", "behavior:extend_effects"],
        &service.endpoint(),
        json!({}),
    );
    let host = host(dir.path());
    let mut state = state(json!([
        activity("oracle", json!({"depth": 2})),
        activity("stranger", json!({})),
    ]));
    let events = evaluate_tick(&host, &mut state, &tick(1, 1));

    let received = service.received();
    let sent = |plugin: &str, op: &str| -> Value {
        received
            .iter()
            .find(|r| r.operation == op && r.body["call"]["plugin_id"] == plugin)
            .unwrap_or_else(|| panic!("no {op} of {plugin}: {received:#?}"))
            .body
            .clone()
    };
    let oracle = sent("oracle", "evaluate-condition");
    assert_eq!(oracle["condition_id"], "plugin:oracle:c");
    assert_eq!(oracle["timeout_ms"], 100);
    assert_eq!(oracle["call"]["tick"], 1);
    assert_eq!(oracle["call"]["world_id"], "w1");
    let context = &oracle["context"];
    assert_eq!(context["npc_id"], "guard");
    assert_eq!(context["weather"], "rain");
    assert_eq!(context["world"]["name"], "W1");
    assert_eq!(context["session"]["flags"]["quest"], "started");
    assert!(
        context["session"]["flags"]
            .get("plugin:game-stealth:secret")
            .is_none(),
        "another plugin's namespace is never sent: {context}"
    );
    assert_eq!(context["session"]["relationships"]["guard"]["trust"], 3);
    assert_eq!(context["npc"]["npc_id"], "guard");
    assert!(context["storage"].is_object(), "{context}");
    assert_eq!(
        sent("oracle", "apply-effect")["params"],
        json!({"depth": 2})
    );
    // One connection, kept alive, for all of the oracle's calls.
    let peers: std::collections::BTreeSet<_> = received
        .iter()
        .filter(|r| r.body["call"]["plugin_id"] == "oracle")
        .map(|r| r.peer)
        .collect();
    assert_eq!(peers.len(), 1, "{peers:?}");
    // No token_env, no token (the binary's test sends one).
    assert!(received.iter().all(|r| r.authorization.is_none()));

    // Without the read permissions: the tick's context only.
    let stranger = &sent("stranger", "evaluate-condition")["context"];
    for part in ["world", "session", "npc", "storage"] {
        assert!(
            stranger.get(part).is_none(),
            "{part} sent to stranger: {stranger}"
        );
    }
    assert_eq!(stranger["npc_id"], "guard");

    // What was sent and what came back are in the call's event.
    let evaluated = of_plugin(&events, kinds::CONDITION_EVALUATED, "oracle")[0];
    let p = evaluated.payload.value();
    assert_eq!(p[keys::RESULT], true);
    assert_eq!(p[keys::REPLY]["metadata"]["why"], "fate");
    let read: Vec<&str> = p[keys::INPUTS]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["request"]["capability"].as_str())
        .collect();
    assert_eq!(
        read,
        ["get_world", "get_session", "get_npc", "list_storage"]
    );
    assert_eq!(
        evaluated.provenance.plugin_endpoint.as_deref(),
        Some(service.endpoint().as_str())
    );

    // The oracle's writes, namespaced and with provenance; the stranger's
    // refused (it lacks session:write) and recorded.
    let flags: Vec<(&str, &str)> = of_kind(&events, kinds::SESSION_FLAG_SET)
        .iter()
        .map(|e| {
            (
                e.plugin_id.as_ref().unwrap().as_str(),
                e.payload.value()["key"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(flags, [("oracle", "plugin:oracle:mood")]);
    let flag = of_kind(&events, kinds::SESSION_FLAG_SET)[0];
    assert_eq!(flag.provenance.permission.as_deref(), Some("session:write"));
    assert_eq!(
        flag.provenance.plugin_endpoint.as_deref(),
        Some(service.endpoint().as_str())
    );
    assert_eq!(
        of_plugin(&events, kinds::RELATIONSHIP_UPDATED, "oracle").len(),
        1
    );
    let denied: Vec<&Value> = of_plugin(&events, kinds::PERMISSION_DENIED, "stranger")
        .iter()
        .map(|e| &e.payload.value()["permission"])
        .collect();
    assert_eq!(
        denied,
        [
            &json!("session:write"),
            &json!("session:write"),
            &json!("log:emit")
        ]
    );
    // The denials were in WARN mode: the effect itself went through.
    assert_eq!(
        of_plugin(&events, kinds::EFFECT_APPLIED, "stranger").len(),
        1
    );
}

#[test]
fn a_remote_plugin_handles_events_and_provides_simulation_config() {
    let service = RemoteService::start(|op, body| match op {
        "handle-event" => Answer::Json(json!({"writes": [
            {"capability": "storage_set", "key": "seen", "value": body["event"]["kind"]}]})),
        "simulation-config" => Answer::Json(json!({"result": {"oracle": {"speed": 3}}})),
        "evaluate-condition" => Answer::Json(json!({"result": true})),
        // The oracle's effect writes a flag the watcher handles.
        _ => Answer::Json(json!({"result": true, "writes": [
            {"capability": "set_session_flag", "key": "mood", "value": 1}]})),
    });
    let dir = tempfile::tempdir().unwrap();
    write_remote_plugin(
        dir.path(),
        "oracle",
        &["group:behavior", "session:write"],
        &service.endpoint(),
        json!({}),
    );
    write_remote_plugin(
        dir.path(),
        "watcher",
        &[
            "event:subscribe",
            "behavior:configure_simulation",
            "db:write",
        ],
        &service.endpoint(),
        json!({"registrations": {
            "event_handlers": [{"kinds": ["SessionFlagSet"]}],
            "simulation_configs": [{"name": "speed", "priority": 50}],
        }}),
    );
    let host = host(dir.path());
    let mut state = state(json!([activity("oracle", json!({}))]));
    let events = evaluate_tick(&host, &mut state, &tick(1, 1));

    let handled = of_plugin(&events, kinds::EVENT_HANDLED, "watcher");
    assert_eq!(handled.len(), 1, "{events:#?}");
    let flag = of_kind(&events, kinds::SESSION_FLAG_SET)[0];
    assert_eq!(
        handled[0].payload.value()["params"]["event_id"],
        json!(flag.event_id)
    );
    let request = service
        .received()
        .into_iter()
        .find(|r| r.operation == "handle-event")
        .expect("a handle-event request");
    assert_eq!(request.body["handler_of"], "watcher");
    assert_eq!(request.body["event"]["event_id"], json!(flag.event_id));
    let stored = of_plugin(&events, kinds::PLUGIN_STORAGE_SET, "watcher");
    assert_eq!(stored[0].payload.value()["value"], "SessionFlagSet");

    let config = of_kind(&events, kinds::SIMULATION_CONFIG_CHANGED);
    assert_eq!(config.len(), 1, "{events:#?}");
    assert_eq!(
        config[0].payload.value()["config"]["oracle"],
        json!({"speed": 3})
    );
    let asked = service
        .received()
        .into_iter()
        .find(|r| r.operation == "simulation-config")
        .expect("a simulation-config request");
    assert_eq!(asked.body["provider_id"], "plugin:watcher:speed");
}

/// The failed call of `plugin` in `events`: its kind and payload.
fn failure<'a>(events: &'a [NewEvent], plugin: &str) -> (&'a str, &'a Value) {
    let e = events
        .iter()
        .find(|e| {
            kinds::records_a_failed_call(e.kind.as_str())
                && e.plugin_id.as_ref().is_some_and(|p| p.as_str() == plugin)
        })
        .unwrap_or_else(|| panic!("no failed call of {plugin}: {events:#?}"));
    (e.kind.as_str(), e.payload.value())
}

#[test]
fn slow_failing_garbage_huge_and_absent_services_fail_their_calls_with_why_and_the_tick_goes_on() {
    let slow = RemoteService::start(|_, _| {
        Answer::After(
            Duration::from_secs(5),
            Box::new(Answer::Json(json!({"result": true}))),
        )
    });
    let failing = RemoteService::start(|_, _| Answer::Status(503, "overloaded".into()));
    let garbage = RemoteService::start(|_, _| Answer::Raw(b"<html>oops</html>".to_vec()));
    let misshapen = RemoteService::start(|_, _| Answer::Json(json!({"result": "yes"})));
    let huge = RemoteService::start(|_, _| {
        Answer::Json(json!({"result": true, "metadata": "x".repeat(4096)}))
    });
    let absent = {
        // A port nothing listens on any more.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let good = RemoteService::start(answering(json!([])));
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let perms = &["group:behavior"];
    write_remote_plugin(
        d,
        "slow",
        perms,
        &slow.endpoint(),
        json!({"timeout_ms": 150}),
    );
    write_remote_plugin(d, "failing", perms, &failing.endpoint(), json!({}));
    write_remote_plugin(d, "garbage", perms, &garbage.endpoint(), json!({}));
    write_remote_plugin(d, "misshapen", perms, &misshapen.endpoint(), json!({}));
    write_remote_plugin(
        d,
        "huge",
        perms,
        &huge.endpoint(),
        json!({"max_reply_bytes": 1024}),
    );
    write_remote_plugin(d, "absent", perms, &absent, json!({}));
    write_remote_plugin(d, "good", perms, &good.endpoint(), json!({}));
    let host = host(d);
    let plugins = [
        "slow",
        "failing",
        "garbage",
        "misshapen",
        "huge",
        "absent",
        "good",
    ];
    let mut state = state(Value::Array(
        plugins.iter().map(|p| activity(p, json!({}))).collect(),
    ));
    let started = Instant::now();
    let events = evaluate_tick(&host, &mut state, &tick(1, 1));
    let took = started.elapsed();

    let (kind, p) = failure(&events, "slow");
    assert_eq!(kind, kinds::PLUGIN_DEADLINE_EXCEEDED);
    assert_eq!(p[keys::DEADLINE_MS], 150);
    assert_eq!(p[keys::FALLBACK], false);
    // The engine waited the deadline, not the 5 s the service takes.
    assert!(took < Duration::from_secs(3), "the tick took {took:?}");
    for (plugin, reason, says) in [
        ("failing", "status", "503"),
        ("garbage", "bad_reply", "not JSON"),
        ("misshapen", "bad_reply", "true or false"),
        ("huge", "too_large", "max_reply_bytes"),
        ("absent", "unreachable", "POST http://"),
    ] {
        let (kind, p) = failure(&events, plugin);
        assert_eq!(kind, kinds::PLUGIN_CALL_FAILED, "{plugin}");
        assert_eq!(p[keys::REASON], reason, "{plugin}: {p}");
        assert!(
            p[keys::ERROR].as_str().unwrap().contains(says),
            "{plugin}: {p}"
        );
        assert_eq!(p[keys::FALLBACK], false, "{plugin}");
    }
    // The failed conditions' effects were not applied; the good one's were.
    assert_eq!(of_kind(&events, kinds::EFFECT_APPLIED).len(), 1);
    assert_eq!(of_plugin(&events, kinds::EFFECT_APPLIED, "good").len(), 1);
    assert!(of_kind(&events, kinds::TICK_PROCESSED).len() <= 1);
}

#[test]
fn the_circuit_opens_after_repeated_failures_skips_calls_then_a_probe_closes_it() {
    let service = RemoteService::start(|_, _| Answer::Status(500, "down".into()));
    let dir = tempfile::tempdir().unwrap();
    write_remote_plugin(
        dir.path(),
        "flaky",
        &["group:behavior"],
        &service.endpoint(),
        json!({"circuit": {"failures": 3, "cool_down_ms": 300},
               "registrations": {"conditions": [{"name": "c"}]}}),
    );
    let host = host(dir.path());
    let mut state =
        state(json!([{"id": "a", "conditions": [{"id": "plugin:flaky:c"}], "effects": []}]));
    // 5 NPCs: 5 calls; the third failure opens the circuit, the last two
    // are not sent.
    let events = evaluate_tick(&host, &mut state, &tick(1, 5));
    assert_eq!(service.received().len(), 3);
    let opened = of_kind(&events, kinds::PLUGIN_CIRCUIT_OPENED);
    assert_eq!(opened.len(), 1);
    let o = opened[0].payload.value();
    assert_eq!(
        (o["failures"].clone(), o["cool_down_ms"].clone()),
        (json!(3), json!(300))
    );
    assert!(o[keys::ERROR].as_str().unwrap().contains("500"), "{o}");
    assert_eq!(opened[0].plugin_id.as_ref().unwrap().as_str(), "flaky");
    let reasons: Vec<&str> = of_kind(&events, kinds::PLUGIN_CALL_FAILED)
        .iter()
        .map(|e| e.payload.value()[keys::REASON].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        reasons,
        ["status", "status", "status", "circuit_open", "circuit_open"]
    );
    let skipped = of_kind(&events, kinds::PLUGIN_CALL_FAILED)[4]
        .payload
        .value()[keys::ERROR]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        skipped.contains("not sent") && skipped.contains("next probe in"),
        "{skipped}"
    );

    // The service recovers; after the cool-down one probe is sent and
    // closes the circuit.
    service.set(answering(json!([])));
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut n = 2;
    let closed = loop {
        let events = evaluate_tick(&host, &mut state, &tick(n, 1));
        if let Some(c) = of_kind(&events, kinds::PLUGIN_CIRCUIT_CLOSED).first() {
            assert_eq!(of_kind(&events, kinds::CONDITION_EVALUATED).len(), 1);
            break c.payload.value().clone();
        }
        let failed = of_kind(&events, kinds::PLUGIN_CALL_FAILED);
        assert_eq!(failed[0].payload.value()[keys::REASON], "circuit_open");
        assert!(Instant::now() < deadline, "the circuit never closed");
        n += 1;
    };
    assert_eq!(service.received().len(), 4, "one probe, nothing else");
    assert!(closed["open_ms"].as_u64().unwrap() >= 300, "{closed}");
    assert!(closed["skipped"].as_u64().unwrap() >= 2, "{closed}");
    let events = evaluate_tick(&host, &mut state, &tick(n + 1, 3));
    assert_eq!(of_kind(&events, kinds::CONDITION_EVALUATED).len(), 3);
}

#[test]
fn a_call_over_the_rate_limit_does_not_take_the_circuits_probe() {
    let service = RemoteService::start(|_, _| Answer::Status(500, "down".into()));
    let dir = tempfile::tempdir().unwrap();
    write_remote_plugin(
        dir.path(),
        "guarded",
        &["group:behavior"],
        &service.endpoint(),
        json!({"rate_limit_per_s": 1, "circuit": {"failures": 1, "cool_down_ms": 1},
               "registrations": {"conditions": [{"name": "c"}]}}),
    );
    let host = host(dir.path());
    let mut state =
        state(json!([{"id": "a", "conditions": [{"id": "plugin:guarded:c"}], "effects": []}]));
    // The first call fails and opens the circuit; the second comes after
    // its cool-down but over the rate limit: it must not be taken as the
    // probe, or no call would ever be sent again.
    let events = evaluate_tick(&host, &mut state, &tick(1, 2));
    assert_eq!(of_kind(&events, kinds::PLUGIN_CIRCUIT_OPENED).len(), 1);
    service.set(answering(json!([])));
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut n = 2;
    loop {
        let events = evaluate_tick(&host, &mut state, &tick(n, 1));
        if !of_kind(&events, kinds::CONDITION_EVALUATED).is_empty() {
            assert_eq!(of_kind(&events, kinds::PLUGIN_CIRCUIT_CLOSED).len(), 1);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no call was sent again: {:?}",
            of_kind(&events, kinds::PLUGIN_CALL_FAILED)[0]
                .payload
                .value()
        );
        n += 1;
    }
    assert_eq!(service.received().len(), 2, "the failure, then the probe");
}

#[test]
fn calls_over_the_rate_limit_are_not_sent_and_say_so() {
    let service = RemoteService::start(answering(json!([])));
    let dir = tempfile::tempdir().unwrap();
    write_remote_plugin(
        dir.path(),
        "limited",
        &["group:behavior"],
        &service.endpoint(),
        json!({"rate_limit_per_s": 3, "registrations": {"conditions": [{"name": "c"}]}}),
    );
    let host = host(dir.path());
    let mut state =
        state(json!([{"id": "a", "conditions": [{"id": "plugin:limited:c"}], "effects": []}]));
    let events = evaluate_tick(&host, &mut state, &tick(1, 12));
    let sent = service.received().len();
    let evaluated = of_kind(&events, kinds::CONDITION_EVALUATED).len();
    let limited: Vec<&NewEvent> = of_kind(&events, kinds::PLUGIN_CALL_FAILED);
    assert_eq!(evaluated, sent, "every call sent was answered and recorded");
    // A burst of 3, and what refilled meanwhile (one a third of a second).
    assert!((3..12).contains(&sent), "{sent} sent");
    assert_eq!(limited.len(), 12 - sent);
    for e in limited {
        assert_eq!(e.payload.value()[keys::REASON], "rate_limited");
        assert!(
            e.payload.value()[keys::ERROR]
                .as_str()
                .unwrap()
                .contains("3 calls/s")
        );
    }
}

#[test]
fn a_remote_plugin_on_nats_is_answered_by_its_responder_and_no_responders_fails_at_once() {
    let nats = provenant_tests::TestNats::new();
    let subject = format!("{}.oracle", nats.prefix);
    let silent = format!("{}.nobody", nats.prefix);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let responder = runtime.block_on(async {
        let client = async_nats::connect(provenant_tests::nats_url()).await.unwrap();
        let mut sub = client.subscribe(subject.clone()).await.unwrap();
        let replies = client.clone();
        let (seen_tx, seen) = std::sync::mpsc::channel::<(String, Value)>();
        tokio::spawn(async move {
            use futures_util::StreamExt;
            while let Some(m) = sub.next().await {
                let op = m
                    .headers
                    .as_ref()
                    .and_then(|h| h.get("Provenant-Operation"))
                    .map(|v| v.to_string())
                    .unwrap_or_default();
                let body: Value = serde_json::from_slice(&m.payload).unwrap_or(Value::Null);
                let answer = match op.as_str() {
                    "evaluate-condition" => json!({"result": body["context"]["npc_id"] == "guard"}),
                    _ => json!({"writes": [{"capability": "set_session_flag", "key": "k", "value": 1}]}),
                };
                let _ = seen_tx.send((op, body));
                if let Some(reply) = m.reply {
                    let _ = replies.publish(reply, answer.to_string().into()).await;
                }
            }
        });
        client.flush().await.unwrap();
        seen
    });
    let dir = tempfile::tempdir().unwrap();
    let perms = &["group:behavior", "session:write"];
    write_remote_plugin(
        dir.path(),
        "bus",
        perms,
        &format!("nats:{subject}"),
        json!({}),
    );
    write_remote_plugin(
        dir.path(),
        "silent",
        perms,
        &format!("nats:{silent}"),
        json!({"timeout_ms": 5000}),
    );
    let host = host(dir.path());
    let mut state = state(json!([
        activity("bus", json!({})),
        activity("silent", json!({}))
    ]));
    let started = Instant::now();
    let events = evaluate_tick(&host, &mut state, &tick(1, 2));
    let took = started.elapsed();

    let ops: Vec<String> = responder.try_iter().map(|(op, _)| op).collect();
    // The guard's condition and effect, then the other NPC's condition.
    assert_eq!(
        ops,
        ["evaluate-condition", "apply-effect", "evaluate-condition"]
    );
    let evaluated = of_plugin(&events, kinds::CONDITION_EVALUATED, "bus");
    let results: Vec<&Value> = evaluated
        .iter()
        .map(|e| &e.payload.value()[keys::RESULT])
        .collect();
    assert_eq!(results, [&json!(true), &json!(false)]);
    assert_eq!(
        evaluated[0].provenance.plugin_endpoint.as_deref(),
        Some(format!("nats:{subject}").as_str())
    );
    let flag = of_plugin(&events, kinds::SESSION_FLAG_SET, "bus");
    assert_eq!(flag[0].payload.value()["key"], "plugin:bus:k");
    // No responders: failed at once, not after its 5 s deadline.
    let (kind, p) = failure(&events, "silent");
    assert_eq!(kind, kinds::PLUGIN_CALL_FAILED);
    assert_eq!(p[keys::REASON], "no_responders", "{p}");
    assert!(took < Duration::from_secs(3), "the tick took {took:?}");
}

#[test]
fn every_refusal_at_load_names_the_plugin_and_the_problem() {
    let refused = |extra: Value| {
        let dir = tempfile::tempdir().unwrap();
        write_remote_plugin(
            dir.path(),
            "oracle",
            &["group:behavior"],
            "http://127.0.0.1:9",
            extra,
        );
        format!("{:#}", source(dir.path()).load().err().expect("refused"))
    };
    let e = refused(json!({"token_env": "PROVENANT_TEST_NOT_SET_ANYWHERE"}));
    assert!(
        e.contains("plugin oracle")
            && e.contains("PROVENANT_TEST_NOT_SET_ANYWHERE, which is not set"),
        "{e}"
    );
    let e = refused(json!({"endpoint": "ftp://x"}));
    assert!(
        e.contains("plugin oracle") && e.contains("nats:<subject>"),
        "{e}"
    );
    let e = refused(json!({"timeout": 5}));
    assert!(e.contains("unknown field \"timeout\""), "{e}");
    // Registrations are checked against the permissions when the host
    // starts, before anything is sent.
    let dir = tempfile::tempdir().unwrap();
    write_remote_plugin(
        dir.path(),
        "oracle",
        &["session:read"],
        "http://127.0.0.1:9",
        json!({}),
    );
    let plugins = source(dir.path()).load().expect("it loads");
    let e = PluginHost::start(plugins, HostConfig::default())
        .err()
        .expect("refused")
        .to_string();
    assert!(
        e.contains("oracle") && e.contains("behavior:extend_conditions"),
        "{e}"
    );
}
