//! Permissions: the 18 strings and 6 groups of the original plugin system,
//! exactly, and the failure mode of each capability.
//!
//! Unlike the original, an unknown permission or group is an error that
//! names it (the original dropped it silently).

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What a plugin may do. Written as its original string, e.g. `session:write`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Permission {
    WorldRead,
    SessionRead,
    SessionWrite,
    NpcRead,
    NpcWrite,
    BehaviorExtendConditions,
    BehaviorExtendEffects,
    BehaviorConfigureSimulation,
    GenerationSubmit,
    GenerationRead,
    LogEmit,
    EventSubscribe,
    EventEmit,
    AdminRoutes,
    DbRead,
    DbWrite,
    RedisRead,
    RedisWrite,
}

impl Permission {
    /// Every permission, in the original's order.
    pub const ALL: [Permission; 18] = [
        Permission::WorldRead,
        Permission::SessionRead,
        Permission::SessionWrite,
        Permission::NpcRead,
        Permission::NpcWrite,
        Permission::BehaviorExtendConditions,
        Permission::BehaviorExtendEffects,
        Permission::BehaviorConfigureSimulation,
        Permission::GenerationSubmit,
        Permission::GenerationRead,
        Permission::LogEmit,
        Permission::EventSubscribe,
        Permission::EventEmit,
        Permission::AdminRoutes,
        Permission::DbRead,
        Permission::DbWrite,
        Permission::RedisRead,
        Permission::RedisWrite,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Permission::WorldRead => "world:read",
            Permission::SessionRead => "session:read",
            Permission::SessionWrite => "session:write",
            Permission::NpcRead => "npc:read",
            Permission::NpcWrite => "npc:write",
            Permission::BehaviorExtendConditions => "behavior:extend_conditions",
            Permission::BehaviorExtendEffects => "behavior:extend_effects",
            Permission::BehaviorConfigureSimulation => "behavior:configure_simulation",
            Permission::GenerationSubmit => "generation:submit",
            Permission::GenerationRead => "generation:read",
            Permission::LogEmit => "log:emit",
            Permission::EventSubscribe => "event:subscribe",
            Permission::EventEmit => "event:emit",
            Permission::AdminRoutes => "admin:routes",
            Permission::DbRead => "db:read",
            Permission::DbWrite => "db:write",
            Permission::RedisRead => "redis:read",
            Permission::RedisWrite => "redis:write",
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A permission string or group that does not exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PermissionError {
    #[error("unknown permission {0:?} (known: {known})", known = known_permissions())]
    UnknownPermission(String),
    #[error("unknown permission group {0:?} (known: {known})", known = known_groups())]
    UnknownGroup(String),
}

fn known_permissions() -> String {
    Permission::ALL.map(|p| p.as_str()).join(", ")
}

fn known_groups() -> String {
    Group::ALL.map(|g| format!("group:{}", g.name())).join(", ")
}

impl FromStr for Permission {
    type Err = PermissionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Permission::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| PermissionError::UnknownPermission(s.to_owned()))
    }
}

impl TryFrom<String> for Permission {
    type Error = PermissionError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Permission> for String {
    fn from(p: Permission) -> String {
        p.as_str().to_owned()
    }
}

/// A named set of permissions, requested in a manifest as `group:<name>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Group {
    Readonly,
    Gameplay,
    Behavior,
    EventHandler,
    Generation,
    Admin,
}

impl Group {
    pub const ALL: [Group; 6] = [
        Group::Readonly,
        Group::Gameplay,
        Group::Behavior,
        Group::EventHandler,
        Group::Generation,
        Group::Admin,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Group::Readonly => "readonly",
            Group::Gameplay => "gameplay",
            Group::Behavior => "behavior",
            Group::EventHandler => "event_handler",
            Group::Generation => "generation",
            Group::Admin => "admin",
        }
    }

    /// The permissions the group grants.
    pub fn permissions(self) -> Vec<Permission> {
        use Permission::*;
        const READONLY: [Permission; 4] = [WorldRead, SessionRead, NpcRead, LogEmit];
        let extra: &[Permission] = match self {
            Group::Readonly => &[],
            Group::Gameplay => &[SessionWrite, NpcWrite],
            Group::Behavior => &[BehaviorExtendConditions, BehaviorExtendEffects],
            Group::EventHandler => return vec![EventSubscribe, LogEmit],
            Group::Generation => &[GenerationSubmit, GenerationRead],
            Group::Admin => &[AdminRoutes],
        };
        READONLY.iter().chain(extra).copied().collect()
    }
}

impl FromStr for Group {
    type Err = PermissionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Group::ALL
            .into_iter()
            .find(|g| g.name() == s)
            .ok_or_else(|| PermissionError::UnknownGroup(format!("group:{s}")))
    }
}

/// The permissions a manifest's `permissions` list grants: each entry is a
/// permission string or `group:<name>`. The first unknown entry is an error.
pub fn resolve(requested: &[String]) -> Result<BTreeSet<Permission>, PermissionError> {
    let mut granted = BTreeSet::new();
    for entry in requested {
        match entry.strip_prefix("group:") {
            Some(group) => granted.extend(group.parse::<Group>()?.permissions()),
            None => {
                granted.insert(entry.parse::<Permission>()?);
            }
        }
    }
    Ok(granted)
}

/// What a capability does when the plugin lacks its permission. Whatever the
/// mode, the denial is recorded in the log as a `PermissionDenied` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FailureMode {
    /// The call fails with an error naming plugin, permission and capability.
    Raise,
    /// The call returns nothing (none, false or empty) and a warning is logged.
    Warn,
    /// The call returns nothing, and nothing is logged.
    Silent,
}

impl fmt::Display for FailureMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FailureMode::Raise => "RAISE",
            FailureMode::Warn => "WARN",
            FailureMode::Silent => "SILENT",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_18_permission_strings_are_exactly_the_originals() {
        let strings: Vec<&str> = Permission::ALL.iter().map(|p| p.as_str()).collect();
        assert_eq!(
            strings,
            [
                "world:read",
                "session:read",
                "session:write",
                "npc:read",
                "npc:write",
                "behavior:extend_conditions",
                "behavior:extend_effects",
                "behavior:configure_simulation",
                "generation:submit",
                "generation:read",
                "log:emit",
                "event:subscribe",
                "event:emit",
                "admin:routes",
                "db:read",
                "db:write",
                "redis:read",
                "redis:write",
            ]
        );
        for p in Permission::ALL {
            assert_eq!(p.as_str().parse::<Permission>().unwrap(), p);
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(serde_json::from_str::<Permission>(&json).unwrap(), p);
        }
    }

    fn names(set: &BTreeSet<Permission>) -> Vec<&'static str> {
        let mut v: Vec<&str> = set.iter().map(|p| p.as_str()).collect();
        v.sort();
        v
    }

    #[test]
    fn the_6_groups_expand_as_in_the_original() {
        let expand = |g: &str| names(&resolve(&[format!("group:{g}")]).unwrap());
        let readonly = ["log:emit", "npc:read", "session:read", "world:read"];
        assert_eq!(expand("readonly"), readonly);
        let with = |extra: &[&'static str]| {
            let mut v: Vec<&str> = readonly.iter().chain(extra).copied().collect();
            v.sort();
            v
        };
        assert_eq!(expand("gameplay"), with(&["session:write", "npc:write"]));
        assert_eq!(
            expand("behavior"),
            with(&["behavior:extend_conditions", "behavior:extend_effects"])
        );
        assert_eq!(expand("event_handler"), ["event:subscribe", "log:emit"]);
        assert_eq!(
            expand("generation"),
            with(&["generation:submit", "generation:read"])
        );
        assert_eq!(expand("admin"), with(&["admin:routes"]));
    }

    #[test]
    fn unknown_permissions_and_groups_are_errors_that_name_them() {
        let err = resolve(&["world:read".into(), "world:destroy".into()]).unwrap_err();
        assert_eq!(
            err,
            PermissionError::UnknownPermission("world:destroy".into())
        );
        assert!(err.to_string().contains("\"world:destroy\""), "{err}");
        let err = resolve(&["group:superuser".into()]).unwrap_err();
        assert!(err.to_string().contains("group:superuser"), "{err}");
        assert!(err.to_string().contains("group:readonly"), "{err}");
    }

    #[test]
    fn groups_and_strings_combine() {
        let set = resolve(&["group:readonly".into(), "session:write".into()]).unwrap();
        assert!(set.contains(&Permission::SessionWrite));
        assert!(set.contains(&Permission::WorldRead));
        assert!(!set.contains(&Permission::NpcWrite));
    }
}
