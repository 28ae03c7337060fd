//! `provenant audit anchors`: every anchor on NATS with its signature
//! checked, then the log verified against the newest one that is the
//! engine's.
//!
//! The newest is the one with the highest position among those signed by
//! the key given, whatever the order they were published in: an old anchor
//! published again after the log was cut (a replay) does not hide the newer
//! ones, and is reported. An anchor not signed by the key (unsigned, another
//! key, a signature that does not verify) is reported and never trusted.

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, consumer};
use clap::Args;
use futures_util::StreamExt;
use provenant_events::Head;
use serde_json::{Value, json};

use super::verify::{VerifyCommandConfig, VerifyOutcome, print_outcome, verify};
use crate::anchor::{self, AnchorError};
use crate::commands::args::{DbArgs, NatsAuthArgs};
use crate::error_text::error_text;
use crate::nats_names::NatsNames;

#[derive(Debug, Args)]
pub struct AnchorsArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// The NATS server the engine publishes its anchors to.
    #[arg(long, value_name = "URL", env = "NATS_URL", hide_env_values = true)]
    pub nats_url: String,
    #[command(flatten)]
    pub nats_auth: NatsAuthArgs,
    /// The engine's --nats-prefix: anchors are read from <PREFIX>_ANCHORS.
    #[arg(long, env = "PROVENANT_NATS_PREFIX", default_value = "provenant")]
    pub nats_prefix: String,
    /// The public key (PEM) the engine signs its anchors with. Without it
    /// signatures are not checked and the newest anchor is trusted as is.
    #[arg(long, value_name = "FILE", env = "PROVENANT_ANCHOR_PUBLIC_KEY")]
    pub anchor_public_key: Option<std::path::PathBuf>,
    /// Print JSON instead of text: {anchors: [...], verify: {...}}.
    #[arg(long)]
    pub json: bool,
}

/// What one anchor on the stream is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Status {
    /// Signed by the key given.
    Valid,
    /// Read without a key: nothing checked.
    Unchecked,
    /// Unsigned, published before the first signed anchor (before the
    /// engine had a key): shown, not trusted, not a fault.
    BeforeKey,
    /// A copy of an anchor published before (the same signature).
    Replayed { of: u64 },
    /// Not to be trusted, and why.
    Refused(String),
}

struct Seen {
    sequence: u64,
    head: Option<Head>,
    at: String,
    instance: String,
    status: Status,
}

/// `provenant audit anchors`: 0 the log holds the newest anchor and every
/// anchor checks; 1 the log does not hold it (cut or changed), or an anchor
/// is forged or replayed; 2 could not run.
pub async fn run(args: AnchorsArgs) -> ExitCode {
    match anchors(&args).await {
        Ok(code) => code,
        Err(e) => {
            if args.json {
                println!("{}", json!({"status": "error", "error": error_text(&e)}));
            } else {
                eprintln!("error: {}", error_text(&e));
            }
            ExitCode::from(2)
        }
    }
}

async fn anchors(args: &AnchorsArgs) -> anyhow::Result<ExitCode> {
    let key = args
        .anchor_public_key
        .as_deref()
        .map(anchor::read_verifying_key)
        .transpose()?;
    let names = NatsNames::new(&args.nats_prefix)?;
    let messages = read_all(args, &names.anchors_stream()).await?;
    let seen = judge(&messages, key.as_ref());
    let trusted = seen
        .iter()
        .filter(|s| matches!(s.status, Status::Valid | Status::Unchecked))
        .filter_map(|s| s.head.map(|h| (h, s.sequence)))
        .max_by_key(|(h, _)| h.position);
    let mut faults = seen
        .iter()
        .filter(|s| matches!(s.status, Status::Replayed { .. } | Status::Refused(_)))
        .count();
    if !args.json {
        for s in &seen {
            let head = s.head.map_or("-".to_owned(), |h| h.to_string());
            let status = match &s.status {
                Status::Valid => "signed".to_owned(),
                Status::Unchecked => "not checked (no key given)".to_owned(),
                Status::BeforeKey => "unsigned, from before the first signed anchor".to_owned(),
                Status::Replayed { of } => format!("REPLAYED (a copy of #{of})"),
                Status::Refused(why) => format!("REFUSED: {why}"),
            };
            println!(
                "#{:<6} {head:<80} {} {} {status}",
                s.sequence, s.at, s.instance
            );
        }
    }
    let Some((newest, sequence)) = trusted else {
        anyhow::bail!(
            "no anchor to trust among the {} on {}",
            seen.len(),
            names.anchors_stream()
        );
    };
    if !args.json {
        println!(
            "verifying the log against anchor #{sequence} (position {})",
            newest.position
        );
    }
    let outcome = match verify(&VerifyCommandConfig {
        database_url: args.db.database_url.clone(),
        expect_head: Some(newest),
        json: false,
    })
    .await
    {
        Ok(report) if report.intact() => VerifyOutcome::Intact(report),
        Ok(report) => VerifyOutcome::Tampered(report),
        Err(e) => VerifyOutcome::CouldNotRun(e),
    };
    let verified = match &outcome {
        VerifyOutcome::Intact(r) | VerifyOutcome::Tampered(r) => json!({
            "status": if r.intact() { "intact" } else { "tampered" },
            "count": r.count,
            "head": r.head.to_string(),
            "violation": r.violation,
        }),
        VerifyOutcome::CouldNotRun(e) => json!({"status": "error", "error": error_text(e)}),
    };
    if !args.json {
        print_outcome(&outcome, false);
    }
    // The newest anchor proves the chain up to it; every other trusted
    // anchor must name the same event at its position, or the log was cut
    // and grew again on another chain (a fork).
    let forks = match &outcome {
        VerifyOutcome::Intact(_) => forks(args, &seen, newest).await?,
        _ => Vec::new(),
    };
    faults += forks.len();
    if !args.json {
        for fork in &forks {
            println!("FORK: {fork}");
        }
    }
    if args.json {
        let anchors: Vec<Value> = seen
            .iter()
            .map(|s| {
                let (status, detail) = match &s.status {
                    Status::Valid => ("signed", Value::Null),
                    Status::Unchecked => ("unchecked", Value::Null),
                    Status::BeforeKey => ("before_key", Value::Null),
                    Status::Replayed { of } => ("replayed", json!({"copy_of": of})),
                    Status::Refused(why) => ("refused", json!(why)),
                };
                json!({"sequence": s.sequence, "head": s.head.map(|h| h.to_string()),
                       "at": s.at, "engine_instance": s.instance,
                       "status": status, "detail": detail})
            })
            .collect();
        println!(
            "{}",
            json!({"anchors": anchors, "newest": {"sequence": sequence, "head": newest.to_string()},
                   "verify": verified, "forks": forks, "faults": faults})
        );
    } else if faults > 0 {
        println!("{faults} anchor(s) on the stream are not the engine's: see above");
    }
    Ok(match outcome {
        VerifyOutcome::CouldNotRun(_) => ExitCode::from(2),
        VerifyOutcome::Tampered(_) => ExitCode::from(1),
        VerifyOutcome::Intact(_) if faults > 0 => ExitCode::from(1),
        VerifyOutcome::Intact(_) => ExitCode::SUCCESS,
    })
}

/// Every message of the stream as it is now: (sequence, payload).
async fn read_all(args: &AnchorsArgs, stream: &str) -> anyhow::Result<Vec<(u64, Vec<u8>)>> {
    let shown = crate::nats_connect::shown_url(&args.nats_url);
    let client = args
        .nats_auth
        .auth()
        .options()
        .await?
        .name("provenant-audit")
        .connection_timeout(Duration::from_secs(5))
        .connect(&args.nats_url)
        .await
        .with_context(|| format!("cannot connect to NATS at {shown}"))?;
    let js = jetstream::new(client);
    let mut handle = js
        .get_stream(stream)
        .await
        .with_context(|| format!("no stream {stream} at {shown}"))?;
    let last = handle
        .info()
        .await
        .with_context(|| format!("cannot read {stream}'s state"))?
        .state
        .last_sequence;
    let mut out = Vec::new();
    if handle.cached_info().state.messages == 0 {
        return Ok(out);
    }
    let consumer = handle
        .create_consumer(consumer::pull::OrderedConfig::default())
        .await
        .with_context(|| format!("cannot read {stream}"))?;
    let mut messages = consumer
        .messages()
        .await
        .with_context(|| format!("cannot read {stream}"))?;
    let read = async {
        while let Some(message) = messages.next().await {
            let message = message.with_context(|| format!("cannot read {stream}"))?;
            let sequence = message.info().map_or(0, |i| i.stream_sequence);
            out.push((sequence, message.payload.to_vec()));
            if sequence >= last {
                break;
            }
        }
        anyhow::Ok(())
    };
    tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .with_context(|| format!("reading {stream} took more than 60 s"))??;
    Ok(out)
}

/// The trusted anchors whose head is not the log's event at their
/// position, each said in a line.
async fn forks(args: &AnchorsArgs, seen: &[Seen], newest: Head) -> anyhow::Result<Vec<String>> {
    let log = super::reading::open_read_only(&args.db.database_url).await?;
    let mut checked: HashMap<u64, String> = HashMap::new();
    let mut out = Vec::new();
    for s in seen {
        let (Some(head), Status::Valid | Status::Unchecked) = (s.head, &s.status) else {
            continue;
        };
        if head == newest || head.position == 0 {
            continue;
        }
        let hash = match checked.get(&head.position) {
            Some(hash) => hash.clone(),
            None => {
                let events = log
                    .read_forward(head.position - 1, 1)
                    .await
                    .map_err(super::reading::cannot_read)?;
                let hash = events
                    .first()
                    .filter(|e| e.position == head.position)
                    .map_or_else(|| "nothing".to_owned(), |e| e.hash.to_string());
                checked.insert(head.position, hash.clone());
                hash
            }
        };
        if hash != head.hash.to_string() {
            out.push(format!(
                "anchor #{} says position {} is {}, the log holds {hash} there",
                s.sequence, head.position, head.hash
            ));
        }
    }
    log.close().await;
    Ok(out)
}

/// Each message's status, in the order published.
fn judge(messages: &[(u64, Vec<u8>)], key: Option<&ed25519_dalek::VerifyingKey>) -> Vec<Seen> {
    let mut signatures: HashMap<String, u64> = HashMap::new();
    let mut out = Vec::new();
    for (sequence, payload) in messages {
        let value: Result<Value, _> = serde_json::from_slice(payload);
        let parsed = value
            .as_ref()
            .map_err(|e| AnchorError::Malformed(e.to_string()))
            .and_then(|v| anchor::parse(v).map(|a| (v, a)));
        let (value, found) = match parsed {
            Ok(found) => found,
            Err(e) => {
                out.push(Seen {
                    sequence: *sequence,
                    head: None,
                    at: "-".into(),
                    instance: "-".into(),
                    status: Status::Refused(e.to_string()),
                });
                continue;
            }
        };
        let status = match key {
            None => Status::Unchecked,
            Some(key) => match anchor::verify(value, key) {
                Err(AnchorError::Unsigned) if signatures.is_empty() => Status::BeforeKey,
                Err(e) => Status::Refused(e.to_string()),
                Ok(_) => {
                    let signature = value["signature"]["value"].as_str().unwrap_or_default();
                    match signatures.get(signature) {
                        Some(first) => Status::Replayed { of: *first },
                        None => {
                            signatures.insert(signature.to_owned(), *sequence);
                            Status::Valid
                        }
                    }
                }
            },
        };
        out.push(Seen {
            sequence: *sequence,
            head: Some(found.head),
            at: found.at,
            instance: found.engine_instance,
            status,
        });
    }
    out
}
