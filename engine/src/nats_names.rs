//! The NATS names the engine and its clients share: the subjects, streams
//! and consumer of one deployment, and the header that carries a relayed
//! event's position. A leaf: pure naming, no connection.
//!
//! Ticks arrive on `PROVENANT_TICKS` (subjects `provenant.ticks.<world_id>`)
//! through the durable pull consumer `provenant-engine`; the relay publishes
//! the log to `PROVENANT_EVENTS` (subjects
//! `provenant.events.<world_id or _>.<plugin_id or engine>.<kind>`). A prefix
//! other than `provenant` renames all of them (tests use one each).

use provenant_events::{Event, EventKind, PluginId, WorldId};

/// The header that carries an event's log position on the events stream.
pub const POSITION_HEADER: &str = "Provenant-Position";

/// The subjects, streams and consumer of one deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsNames {
    prefix: String,
}

impl NatsNames {
    /// `prefix` is 1 to 32 characters of `[a-z0-9_-]`.
    pub fn new(prefix: &str) -> anyhow::Result<Self> {
        let ok = !prefix.is_empty()
            && prefix.len() <= 32
            && prefix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        anyhow::ensure!(
            ok,
            "invalid NATS prefix {prefix:?}: expected 1 to 32 characters of [a-z0-9_-]"
        );
        Ok(NatsNames {
            prefix: prefix.to_owned(),
        })
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn upper(&self) -> String {
        self.prefix.to_ascii_uppercase().replace('-', "_")
    }

    /// `PROVENANT_TICKS` for the default prefix.
    pub fn ticks_stream(&self) -> String {
        format!("{}_TICKS", self.upper())
    }

    /// `PROVENANT_EVENTS` for the default prefix.
    pub fn events_stream(&self) -> String {
        format!("{}_EVENTS", self.upper())
    }

    /// The subject a game publishes a world's ticks on.
    /// `<PREFIX>_ANCHORS`: the log's head, published periodically.
    pub fn anchors_stream(&self) -> String {
        format!("{}_ANCHORS", self.upper())
    }

    /// `<prefix>.anchors`
    pub fn anchors_subject(&self) -> String {
        format!("{}.anchors", self.prefix)
    }

    pub fn ticks_subject(&self, world: &str) -> String {
        format!("{}.ticks.{world}", self.prefix)
    }

    pub fn ticks_wildcard(&self) -> String {
        format!("{}.ticks.>", self.prefix)
    }

    pub fn events_wildcard(&self) -> String {
        format!("{}.events.>", self.prefix)
    }

    /// `<prefix>.events.<world_id or _>.<plugin_id or engine>.<kind>`.
    pub fn event_subject(&self, event: &Event) -> String {
        self.subject_of(
            event.world_id.as_ref(),
            event.plugin_id.as_ref(),
            &event.kind,
        )
    }

    /// [`event_subject`](Self::event_subject) from the routing fields.
    pub fn subject_of(
        &self,
        world: Option<&WorldId>,
        plugin: Option<&PluginId>,
        kind: &EventKind,
    ) -> String {
        format!(
            "{}.events.{}.{}.{}",
            self.prefix,
            world.map_or("_", |w| w.as_str()),
            plugin.map_or("engine", |p| p.as_str()),
            kind.as_str()
        )
    }

    /// The prefix of every durable consumer of ticks the engines create.
    pub fn consumer(&self) -> String {
        format!("{}-engine", self.prefix)
    }

    /// The consumer of partition `k`'s ticks while its lease is at `epoch`:
    /// each takeover creates its own (the previous holder's, deleted, can
    /// no longer deliver to it even if it wakes up).
    pub fn partition_consumer(&self, k: u32, epoch: u64) -> String {
        format!("{}-p{k}-e{epoch}", self.consumer())
    }

    /// Whether `name` is one of partition `k`'s consumers (of any epoch);
    /// the plain [`consumer`](Self::consumer) of a single-engine release
    /// counts as partition 0's.
    pub fn is_partition_consumer(&self, name: &str, k: u32) -> bool {
        let base = self.consumer();
        (k == 0 && name == base)
            || name
                .strip_prefix(&format!("{base}-p{k}-e"))
                .is_some_and(|e| !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()))
    }

    /// The subjects the ticks stream takes: `<prefix>.ticks.>` with one
    /// partition, `<prefix>.ticks.*` (one token, the world) with more.
    pub fn ticks_subjects(&self, partitions: u32) -> String {
        if partitions == 1 {
            self.ticks_wildcard()
        } else {
            format!("{}.ticks.*", self.prefix)
        }
    }

    /// With more than one partition, the ticks stream files a world's ticks
    /// under `<prefix>.part.<k>.<world>` (NATS server 2.10+ computes `k`
    /// with the engines' hash): the transform's source and destination.
    pub fn ticks_transform(&self, partitions: u32) -> Option<(String, String)> {
        (partitions > 1).then(|| {
            (
                format!("{}.ticks.*", self.prefix),
                format!(
                    "{}.part.{{{{partition({partitions},1)}}}}.{{{{wildcard(1)}}}}",
                    self.prefix
                ),
            )
        })
    }

    /// The subjects of partition `k`'s ticks as the stream holds them.
    pub fn partition_filter(&self, k: u32, partitions: u32) -> String {
        if partitions == 1 {
            self.ticks_wildcard()
        } else {
            format!("{}.part.{k}.*", self.prefix)
        }
    }

    /// Where the engine announces each tick it acknowledged (core NATS, not
    /// stored): `<prefix>.acked.<world_id>`, body the tick's outcome.
    pub fn acked_subject(&self, world: &str) -> String {
        format!("{}.acked.{world}", self.prefix)
    }

    pub fn acked_wildcard(&self) -> String {
        format!("{}.acked.>", self.prefix)
    }

    /// The name of the relay's checkpoint in the log: the position of the
    /// last event acknowledged by the events stream.
    pub fn relay_checkpoint(&self) -> String {
        format!("relay:{}", self.events_stream())
    }

    /// The world a ticks subject names, as published
    /// (`<prefix>.ticks.<world>`) or as filed under its partition
    /// (`<prefix>.part.<k>.<world>`).
    pub fn subject_world<'a>(&self, subject: &'a str) -> Option<&'a str> {
        let rest = subject.strip_prefix(&self.prefix)?;
        if let Some(world) = rest.strip_prefix(".ticks.") {
            return Some(world);
        }
        let (k, world) = rest.strip_prefix(".part.")?.split_once('.')?;
        (!k.is_empty() && k.bytes().all(|b| b.is_ascii_digit())).then_some(world)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_prefix() {
        let n = NatsNames::new("provenant").unwrap();
        assert_eq!(n.ticks_stream(), "PROVENANT_TICKS");
        assert_eq!(n.events_stream(), "PROVENANT_EVENTS");
        assert_eq!(n.ticks_subject("w1"), "provenant.ticks.w1");
        assert_eq!(n.subject_world("provenant.ticks.w1"), Some("w1"));
        assert_eq!(n.subject_world("other.ticks.w1"), None);
        let t = NatsNames::new("t-1a").unwrap();
        assert_eq!(t.events_stream(), "T_1A_EVENTS");
        assert_eq!(t.consumer(), "t-1a-engine");
        assert_eq!(t.partition_consumer(3, 12), "t-1a-engine-p3-e12");
        assert!(t.is_partition_consumer("t-1a-engine-p3-e12", 3));
        assert!(!t.is_partition_consumer("t-1a-engine-p3-e12", 4));
        assert!(!t.is_partition_consumer("t-1a-engine-p31-e1", 3));
        assert!(t.is_partition_consumer("t-1a-engine", 0));
        assert!(!t.is_partition_consumer("t-1a-engine", 1));
        assert_eq!(n.subject_world("provenant.part.7.w1"), Some("w1"));
        assert_eq!(n.subject_world("provenant.part.x.w1"), None);
        assert_eq!(n.ticks_transform(1), None);
        assert_eq!(
            n.ticks_transform(8),
            Some((
                "provenant.ticks.*".to_owned(),
                "provenant.part.{{partition(8,1)}}.{{wildcard(1)}}".to_owned()
            ))
        );
        assert_eq!(n.partition_filter(2, 8), "provenant.part.2.*");
        assert_eq!(n.partition_filter(0, 1), "provenant.ticks.>");
        for bad in ["", "A", "a.b", "a*", &"x".repeat(33)] {
            assert!(NatsNames::new(bad).is_err(), "{bad:?}");
        }
    }
}
