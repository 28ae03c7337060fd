//! Plugin manifests and the order plugins load in.
//!
//! [`plan_load`] is pure: given every manifest the build carries and the
//! settings, it decides which plugins load, in dependency order, with which
//! permissions, or refuses to start with an error that names the plugin and
//! the problem.

use std::collections::{BTreeMap, BTreeSet};

use provenant_events::{IdError, PluginId};
use serde::{Deserialize, Serialize};

use crate::permissions::{Permission, PermissionError, resolve};

/// What a plugin says about itself. Ids are kept as written so that a
/// malformed one can be reported, not lost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub id: String,
    pub name: String,
    pub version: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub author: String,
    pub kind: PluginKind,
    /// Permission strings and `group:<name>` entries.
    #[serde(default)]
    pub permissions: Vec<String>,
    /// Ids of plugins that must load before this one.
    #[serde(default)]
    pub dependencies: Vec<String>,
    #[serde(default = "default_true")]
    pub enabled: bool,
}

fn default_true() -> bool {
    true
}

/// The original's plugin kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PluginKind {
    /// Extends behavior in-process (conditions, effects, config, handlers).
    Feature,
    /// Adds admin routes.
    Route,
    /// A feature served by another process, called over HTTP or NATS
    /// (crate `provenant-remote`, docs/remote-plugins.md).
    RemoteFeature,
}

impl std::fmt::Display for PluginKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PluginKind::Feature => "feature",
            PluginKind::Route => "route",
            PluginKind::RemoteFeature => "remote_feature",
        })
    }
}

/// Which plugins may load at all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginSettings {
    /// When set, only these plugins load.
    #[serde(default)]
    pub allowlist: Option<BTreeSet<String>>,
    /// These plugins never load.
    #[serde(default)]
    pub denylist: BTreeSet<String>,
}

/// Why start-up is refused. Each names the plugin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    #[error("plugin {id:?} has a malformed id: {source}")]
    MalformedId {
        id: String,
        #[source]
        source: IdError,
    },
    #[error("plugin {plugin}: {source}")]
    Permission {
        plugin: PluginId,
        #[source]
        source: PermissionError,
    },
    #[error("plugin {plugin} is declared twice")]
    Duplicate { plugin: PluginId },
    #[error("plugin {plugin} depends on {dependency:?}, which is not a plugin of this build")]
    MissingDependency {
        plugin: PluginId,
        dependency: String,
    },
    #[error("plugin {plugin} depends on {dependency}, which does not load: {why}")]
    DependencyNotLoaded {
        plugin: PluginId,
        dependency: PluginId,
        why: SkipReason,
    },
    #[error("plugins depend on each other in a cycle: {}", cycle.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(" -> "))]
    Cycle { cycle: Vec<PluginId> },
}

/// Why a plugin that is part of the build does not load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    Disabled,
    Denylisted,
    NotAllowlisted,
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SkipReason::Disabled => "it is disabled in its manifest",
            SkipReason::Denylisted => "it is on the denylist",
            SkipReason::NotAllowlisted => "it is not on the allowlist",
        })
    }
}

/// A plugin that loads, with what it was granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedPlugin {
    pub id: PluginId,
    pub manifest: Manifest,
    pub granted: BTreeSet<Permission>,
}

/// The outcome of planning: plugins to load, in order, and those skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadPlan {
    pub order: Vec<PlannedPlugin>,
    pub skipped: Vec<(PluginId, SkipReason)>,
}

/// Validates every manifest (ids, permissions), applies the settings and
/// orders the plugins that load so that each comes after its dependencies
/// (ties broken by id, so the order is stable).
pub fn plan_load(manifests: &[Manifest], settings: &PluginSettings) -> Result<LoadPlan, LoadError> {
    let mut by_id: BTreeMap<PluginId, (&Manifest, BTreeSet<Permission>)> = BTreeMap::new();
    for m in manifests {
        let id = PluginId::new(m.id.clone()).map_err(|source| LoadError::MalformedId {
            id: m.id.clone(),
            source,
        })?;
        let granted = resolve(&m.permissions).map_err(|source| LoadError::Permission {
            plugin: id.clone(),
            source,
        })?;
        if by_id.insert(id.clone(), (m, granted)).is_some() {
            return Err(LoadError::Duplicate { plugin: id });
        }
    }
    // Dependencies must name plugins of the build.
    let mut deps: BTreeMap<PluginId, Vec<PluginId>> = BTreeMap::new();
    for (id, (m, _)) in &by_id {
        let mut list = Vec::new();
        for dep in &m.dependencies {
            match PluginId::new(dep.clone()) {
                Ok(d) if by_id.contains_key(&d) => list.push(d),
                _ => {
                    return Err(LoadError::MissingDependency {
                        plugin: id.clone(),
                        dependency: dep.clone(),
                    });
                }
            }
        }
        deps.insert(id.clone(), list);
    }
    if let Some(cycle) = find_cycle(&deps) {
        return Err(LoadError::Cycle { cycle });
    }

    let skip_reason = |id: &PluginId, m: &Manifest| {
        if settings.denylist.contains(id.as_str()) {
            Some(SkipReason::Denylisted)
        } else if settings
            .allowlist
            .as_ref()
            .is_some_and(|allow| !allow.contains(id.as_str()))
        {
            Some(SkipReason::NotAllowlisted)
        } else if !m.enabled {
            Some(SkipReason::Disabled)
        } else {
            None
        }
    };
    let mut skipped = Vec::new();
    let mut loading = BTreeSet::new();
    for (id, (m, _)) in &by_id {
        match skip_reason(id, m) {
            Some(reason) => skipped.push((id.clone(), reason)),
            None => {
                loading.insert(id.clone());
            }
        }
    }
    // A plugin whose dependency does not load cannot load either: refuse,
    // rather than start without something a plugin relies on.
    for id in &loading {
        for dep in &deps[id] {
            if let Some((_, why)) = skipped.iter().find(|(s, _)| s == dep) {
                return Err(LoadError::DependencyNotLoaded {
                    plugin: id.clone(),
                    dependency: dep.clone(),
                    why: *why,
                });
            }
        }
    }

    // Kahn's algorithm over the loading plugins, smallest id first.
    let mut order = Vec::with_capacity(loading.len());
    let mut done: BTreeSet<PluginId> = BTreeSet::new();
    while done.len() < loading.len() {
        let next = loading
            .iter()
            .find(|id| !done.contains(*id) && deps[*id].iter().all(|d| done.contains(d)))
            .cloned();
        let Some(id) = next else {
            // Unreachable: cycles were refused above.
            break;
        };
        let (m, granted) = &by_id[&id];
        order.push(PlannedPlugin {
            id: id.clone(),
            manifest: (*m).clone(),
            granted: granted.clone(),
        });
        done.insert(id);
    }
    Ok(LoadPlan { order, skipped })
}

/// A dependency cycle, as the path that closes it, if there is one.
fn find_cycle(deps: &BTreeMap<PluginId, Vec<PluginId>>) -> Option<Vec<PluginId>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Visiting,
        Done,
    }
    fn visit(
        id: &PluginId,
        deps: &BTreeMap<PluginId, Vec<PluginId>>,
        marks: &mut BTreeMap<PluginId, Mark>,
        path: &mut Vec<PluginId>,
    ) -> Option<Vec<PluginId>> {
        match marks.get(id) {
            Some(Mark::Done) => return None,
            Some(Mark::Visiting) => {
                let start = path.iter().position(|p| p == id).unwrap_or(0);
                let mut cycle = path[start..].to_vec();
                cycle.push(id.clone());
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(id.clone(), Mark::Visiting);
        path.push(id.clone());
        for dep in deps.get(id).into_iter().flatten() {
            if let Some(cycle) = visit(dep, deps, marks, path) {
                return Some(cycle);
            }
        }
        path.pop();
        marks.insert(id.clone(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for id in deps.keys() {
        let mut path = Vec::new();
        if let Some(cycle) = visit(id, deps, &mut marks, &mut path) {
            return Some(cycle);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(id: &str, deps: &[&str]) -> Manifest {
        Manifest {
            id: id.into(),
            name: id.into(),
            version: "1.0.0".into(),
            description: String::new(),
            author: String::new(),
            kind: PluginKind::Feature,
            permissions: vec!["group:readonly".into()],
            dependencies: deps.iter().map(|d| d.to_string()).collect(),
            enabled: true,
        }
    }

    fn ids(plan: &LoadPlan) -> Vec<&str> {
        plan.order.iter().map(|p| p.id.as_str()).collect()
    }

    #[test]
    fn plugins_load_after_their_dependencies() {
        let plan = plan_load(
            &[
                manifest("c", &["b"]),
                manifest("a", &[]),
                manifest("b", &["a"]),
                manifest("d", &["a", "c"]),
            ],
            &PluginSettings::default(),
        )
        .unwrap();
        assert_eq!(ids(&plan), ["a", "b", "c", "d"]);
        assert!(plan.order[0].granted.contains(&Permission::WorldRead));
    }

    #[test]
    fn a_cycle_is_refused_and_named() {
        let err = plan_load(
            &[
                manifest("a", &["c"]),
                manifest("b", &["a"]),
                manifest("c", &["b"]),
            ],
            &PluginSettings::default(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "plugins depend on each other in a cycle: a -> c -> b -> a"
        );
        let err =
            plan_load(&[manifest("self", &["self"])], &PluginSettings::default()).unwrap_err();
        assert!(matches!(err, LoadError::Cycle { .. }), "{err}");
    }

    #[test]
    fn a_missing_dependency_names_plugin_and_dependency() {
        let err = plan_load(&[manifest("a", &["ghost"])], &PluginSettings::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "plugin a depends on \"ghost\", which is not a plugin of this build"
        );
    }

    #[test]
    fn an_unknown_permission_refuses_to_start() {
        let mut m = manifest("a", &[]);
        m.permissions.push("session:wrte".into());
        let err = plan_load(&[m], &PluginSettings::default()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("plugin a: unknown permission \"session:wrte\""),
            "{err}"
        );
    }

    #[test]
    fn a_malformed_or_duplicate_id_refuses_to_start() {
        let err =
            plan_load(&[manifest("game.stealth", &[])], &PluginSettings::default()).unwrap_err();
        assert!(
            err.to_string()
                .contains("\"game.stealth\" has a malformed id"),
            "{err}"
        );
        let err = plan_load(
            &[manifest("a", &[]), manifest("a", &[])],
            &PluginSettings::default(),
        )
        .unwrap_err();
        assert_eq!(
            err,
            LoadError::Duplicate {
                plugin: PluginId::new("a").unwrap()
            }
        );
    }

    #[test]
    fn settings_and_enabled_decide_what_loads() {
        let mut off = manifest("off", &[]);
        off.enabled = false;
        let all = [
            manifest("a", &[]),
            manifest("b", &[]),
            manifest("c", &[]),
            off,
        ];
        let settings = PluginSettings {
            allowlist: Some(["a", "b", "off"].map(String::from).into()),
            denylist: ["b"].map(String::from).into(),
        };
        let plan = plan_load(&all, &settings).unwrap();
        assert_eq!(ids(&plan), ["a"]);
        let skipped: Vec<(&str, SkipReason)> = plan
            .skipped
            .iter()
            .map(|(id, r)| (id.as_str(), *r))
            .collect();
        assert_eq!(
            skipped,
            [
                ("b", SkipReason::Denylisted),
                ("c", SkipReason::NotAllowlisted),
                ("off", SkipReason::Disabled)
            ]
        );
    }

    #[test]
    fn a_plugin_whose_dependency_is_skipped_refuses_to_start() {
        let settings = PluginSettings {
            denylist: ["a"].map(String::from).into(),
            ..PluginSettings::default()
        };
        let err = plan_load(&[manifest("a", &[]), manifest("b", &["a"])], &settings).unwrap_err();
        assert_eq!(
            err.to_string(),
            "plugin b depends on a, which does not load: it is on the denylist"
        );
    }
}
