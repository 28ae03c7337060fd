//! What the NATS server applied, against what the engine asked for.
//!
//! `get_or_create` returns a stream or consumer that already exists as it
//! is, whatever it was created with, and a server older than a field
//! silently drops it (the nats-server in Debian 12 is 2.9, which ignores
//! everything added since). So the engine reads back the configuration the
//! server reports and refuses to start when a field it relies on differs:
//! running on a work-queue stream that is not one, or a consumer that waits
//! another time before redelivering, would break its guarantees quietly.

use std::fmt::Debug;

use async_nats::jetstream::{consumer, stream};

/// One field the server holds otherwise than asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub field: &'static str,
    pub wanted: String,
    pub applied: String,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} is {} where provenant needs {}",
            self.field, self.applied, self.wanted
        )
    }
}

fn differ<T: PartialEq + Debug>(
    out: &mut Vec<Mismatch>,
    field: &'static str,
    wanted: &T,
    applied: &T,
) {
    if wanted != applied {
        out.push(Mismatch {
            field,
            wanted: format!("{wanted:?}"),
            applied: format!("{applied:?}"),
        });
    }
}

/// A field the client leaves out when it has its default value, so that
/// the server picks its own: compared only when the engine set it.
fn differ_if_set<T: PartialEq + Debug + Default>(
    out: &mut Vec<Mismatch>,
    field: &'static str,
    wanted: &T,
    applied: &T,
) {
    if *wanted != T::default() {
        differ(out, field, wanted, applied);
    }
}

/// The fields of a stream the engine relies on that the server holds
/// otherwise.
pub fn stream_mismatches(wanted: &stream::Config, applied: &stream::Config) -> Vec<Mismatch> {
    let mut out = Vec::new();
    differ(&mut out, "subjects", &wanted.subjects, &applied.subjects);
    differ(&mut out, "retention", &wanted.retention, &applied.retention);
    // A server before 2.10 drops it: ticks would not be filed by partition.
    differ(
        &mut out,
        "subject_transform",
        &wanted.subject_transform,
        &applied.subject_transform,
    );
    differ_if_set(
        &mut out,
        "max_message_size",
        &wanted.max_message_size,
        &applied.max_message_size,
    );
    differ_if_set(
        &mut out,
        "duplicate_window",
        &wanted.duplicate_window,
        &applied.duplicate_window,
    );
    differ(&mut out, "storage", &wanted.storage, &applied.storage);
    if wanted.num_replicas > 1 {
        differ(
            &mut out,
            "num_replicas",
            &wanted.num_replicas,
            &applied.num_replicas,
        );
    }
    differ(&mut out, "discard", &wanted.discard, &applied.discard);
    out
}

/// The fields of the tick consumer the engine relies on that the server
/// holds otherwise.
pub fn consumer_mismatches(
    wanted: &consumer::pull::Config,
    applied: &consumer::Config,
) -> Vec<Mismatch> {
    let mut out = Vec::new();
    differ(
        &mut out,
        "durable_name",
        &wanted.durable_name,
        &applied.durable_name,
    );
    differ(
        &mut out,
        "ack_policy",
        &wanted.ack_policy,
        &applied.ack_policy,
    );
    differ_if_set(&mut out, "ack_wait", &wanted.ack_wait, &applied.ack_wait);
    differ_if_set(
        &mut out,
        "max_ack_pending",
        &wanted.max_ack_pending,
        &applied.max_ack_pending,
    );
    differ_if_set(
        &mut out,
        "filter_subject",
        &wanted.filter_subject,
        &applied.filter_subject,
    );
    differ(
        &mut out,
        "deliver_policy",
        &wanted.deliver_policy,
        &applied.deliver_policy,
    );
    out
}

/// The refusal: which stream or consumer, which fields, and what to do.
pub fn refusal(what: &str, server_version: &str, mismatches: &[Mismatch]) -> String {
    let fields: Vec<String> = mismatches.iter().map(ToString::to_string).collect();
    format!(
        "the NATS server (version {server_version}) holds {what} otherwise than provenant needs: {}. \
         Either it existed before with another configuration (delete it, or give this engine its own \
         --nats-prefix), or the server ignores the field (provenant supports nats-server 2.9 and newer with one partition, 2.10 and newer with more)",
        fields.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn ticks() -> stream::Config {
        stream::Config {
            name: "t".into(),
            subjects: vec!["p.ticks.*".into()],
            retention: stream::RetentionPolicy::WorkQueue,
            max_message_size: 2048,
            ..Default::default()
        }
    }

    #[test]
    fn a_stream_as_asked_has_no_mismatch_and_its_description_does_not_count() {
        let applied = stream::Config {
            description: Some("another".into()),
            ..ticks()
        };
        assert_eq!(stream_mismatches(&ticks(), &applied), vec![]);
    }

    #[test]
    fn a_field_left_to_the_server_is_not_compared() {
        // Not set: the client leaves it out and the server picks its own.
        let applied = stream::Config {
            duplicate_window: Duration::from_secs(120),
            ..ticks()
        };
        assert_eq!(stream_mismatches(&ticks(), &applied), vec![]);
        let wanted = stream::Config {
            max_message_size: 0,
            ..ticks()
        };
        let applied = stream::Config {
            max_message_size: -1,
            ..ticks()
        };
        assert_eq!(stream_mismatches(&wanted, &applied), vec![]);
    }

    #[test]
    fn each_field_the_engine_relies_on_is_named_with_both_values() {
        let wanted = stream::Config {
            duplicate_window: Duration::from_secs(120),
            ..ticks()
        };
        let applied = stream::Config {
            retention: stream::RetentionPolicy::Limits,
            duplicate_window: Duration::from_secs(60),
            ..ticks()
        };
        let found = stream_mismatches(&wanted, &applied);
        let fields: Vec<&str> = found.iter().map(|m| m.field).collect();
        assert_eq!(fields, ["retention", "duplicate_window"]);
        assert_eq!(found[0].wanted, "WorkQueue");
        assert_eq!(found[0].applied, "Limits");
        let text = refusal("the stream t", "2.9.10", &found);
        assert!(
            text.contains("version 2.9.10")
                && text.contains("retention is Limits where provenant needs WorkQueue")
                && text.contains("--nats-prefix"),
            "{text}"
        );
    }

    #[test]
    fn a_consumer_that_waits_another_time_is_a_mismatch() {
        let wanted = consumer::pull::Config {
            durable_name: Some("engine".into()),
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: Duration::from_secs(10),
            max_ack_pending: 4096,
            filter_subject: "p.ticks.*".into(),
            ..Default::default()
        };
        let applied = consumer::Config {
            durable_name: Some("engine".into()),
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: Duration::from_secs(30),
            max_ack_pending: 4096,
            filter_subject: "p.ticks.*".into(),
            ..Default::default()
        };
        let found = consumer_mismatches(&wanted, &applied);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].field, "ack_wait");
    }
}
