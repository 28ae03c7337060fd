//! The example plugins that ship with the binary. They use only their
//! context: its game time, its seeded RNG and its capabilities.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use provenant_host::context::Ctx;
use provenant_host::manifest::{Manifest, PluginKind};
use provenant_host::permissions::FailureMode;
use provenant_host::plugin_host::Plugin;
use provenant_host::registry::{PluginError, RegisterError, Registrar};

/// Every plugin compiled into this build.
pub fn builtin() -> Vec<Arc<dyn Plugin>> {
    vec![
        Arc::new(GameStealth),
        Arc::new(GameRomance),
        Arc::new(ExampleFlaky),
        Arc::new(ExampleNosy),
    ]
}

fn manifest(
    id: &str,
    name: &str,
    description: &str,
    permissions: &[&str],
    dependencies: &[&str],
) -> Manifest {
    Manifest {
        id: id.into(),
        name: name.into(),
        version: "1.0.0".into(),
        description: description.into(),
        author: "provenant".into(),
        kind: PluginKind::Feature,
        permissions: permissions.iter().map(|p| p.to_string()).collect(),
        dependencies: dependencies.iter().map(|d| d.to_string()).collect(),
        enabled: true,
    }
}

fn npc_id(ctx: &Ctx) -> Result<String, PluginError> {
    ctx.npc()
        .map(|n| n.npc_id.clone())
        .ok_or_else(|| PluginError::Failed("no NPC in context".into()))
}

fn number(params: &Value, key: &str, default: f64) -> f64 {
    params.get(key).and_then(Value::as_f64).unwrap_or(default)
}

/// `game-stealth`: disguises and suspicion, kept in its own flags.
pub struct GameStealth;

impl Plugin for GameStealth {
    fn manifest(&self) -> Manifest {
        manifest(
            "game-stealth",
            "Stealth",
            "NPCs notice disguises and grow suspicious",
            &[
                "group:behavior",
                "session:write",
                "event:emit",
                "behavior:configure_simulation",
            ],
            &[],
        )
    }

    fn register(&self, r: &mut Registrar<'_>) -> Result<(), RegisterError> {
        r.condition(
            "has_disguise",
            "the NPC wears a disguise (npc state `disguise`, or this plugin's flag disguise:<npc>)",
            &["npc_id"],
            |ctx, _params| {
                let npc = ctx
                    .npc()
                    .ok_or_else(|| PluginError::Failed("no NPC in context".into()))?;
                let in_state = npc.state.get("disguise").and_then(Value::as_bool);
                let flag_key = format!("disguise:{}", npc.npc_id);
                let flag = ctx.get_session_flag(flag_key)?.and_then(|v| v.as_bool());
                Ok(in_state.or(flag).unwrap_or(false))
            },
        )?;
        r.effect(
            "raise_suspicion",
            "adds `amount` to this plugin's flag suspicion:<npc>",
            json!({"amount": 1}),
            |ctx, params| {
                let npc = npc_id(ctx)?;
                let key = format!("suspicion:{npc}");
                let current = ctx
                    .get_session_flag(&key)?
                    .and_then(|v| v.as_f64())
                    .unwrap_or(0.0);
                let next = current + number(params, "amount", 1.0);
                ctx.set_session_flag(&key, json!(next))?;
                ctx.emit(
                    "suspicion_raised",
                    json!({"npc_id": npc, "suspicion": next}),
                )?;
                Ok(json!({"npc_id": npc, "suspicion": next}))
            },
        )?;
        r.simulation_config("stealth_defaults", "detection defaults", 100, |_ctx| {
            Ok(json!({"stealth": {"detection_radius": 5, "suspicion_decay": 0.1}}))
        })?;
        Ok(())
    }
}

/// The affinity of the shared relationship with `npc` (0 when there is none).
fn affinity(ctx: &mut Ctx, npc: &str) -> Result<f64, PluginError> {
    Ok(ctx
        .get_relationship(npc)?
        .and_then(|r| r.get("affinity").and_then(Value::as_f64))
        .unwrap_or(0.0))
}

/// `game-romance`: affinity in the shared relationships.
pub struct GameRomance;

impl Plugin for GameRomance {
    fn manifest(&self) -> Manifest {
        manifest(
            "game-romance",
            "Romance",
            "NPCs grow fond of the player",
            &[
                "group:behavior",
                "session:write",
                "event:subscribe",
                "db:read",
                "db:write",
                "behavior:configure_simulation",
            ],
            &[],
        )
    }

    fn register(&self, r: &mut Registrar<'_>) -> Result<(), RegisterError> {
        r.condition(
            "is_attracted",
            "the relationship's affinity is at or above `threshold`",
            &["npc_id"],
            |ctx, params| {
                let npc = npc_id(ctx)?;
                let affinity = affinity(ctx, &npc)?;
                Ok(affinity >= number(params, "threshold", 50.0))
            },
        )?;
        r.effect(
            "affinity_boost",
            "adds `amount` to the shared relationship's affinity",
            json!({"amount": 5}),
            |ctx, params| {
                let npc = npc_id(ctx)?;
                let affinity = affinity(ctx, &npc)?;
                let next = affinity + number(params, "amount", 5.0);
                ctx.update_relationship(&npc, json!({"affinity": next}))?;
                Ok(json!({"npc_id": npc, "affinity": next}))
            },
        )?;
        r.simulation_config("romance_pacing", "pacing of romance", 200, |_ctx| {
            Ok(json!({"stealth": {"detection_radius": 8}, "romance": {"pace": "slow"}}))
        })?;
        r.subscribe(&["plugin:game-stealth:suspicion_raised"], |ctx, _event| {
            let seen = ctx
                .storage_get("alarms_seen")?
                .and_then(|v| v.as_u64())
                .unwrap_or(0);
            ctx.storage_set("alarms_seen", json!(seen + 1))?;
            Ok(())
        })?;
        Ok(())
    }
}

/// `example-flaky`: a condition that fails or overruns its deadline at the
/// rates its params give, deterministically from its seeded RNG.
pub struct ExampleFlaky;

impl Plugin for ExampleFlaky {
    fn manifest(&self) -> Manifest {
        manifest(
            "example-flaky",
            "Flaky",
            "fails and overruns on purpose, to show isolation",
            &["group:behavior"],
            &[],
        )
    }

    fn register(&self, r: &mut Registrar<'_>) -> Result<(), RegisterError> {
        r.condition(
            "coin_flip",
            "true or false; fails at `fail_rate`, overruns by `overrun_ms` at `overrun_rate`, panics at `panic_rate`",
            &[],
            |ctx, params| {
                let draw = ctx.rng().unit();
                let fail = number(params, "fail_rate", 0.0);
                let overrun = number(params, "overrun_rate", 0.0);
                let panic = number(params, "panic_rate", 0.0);
                if draw < fail {
                    return Err(PluginError::Failed(format!("the coin fell off the table ({draw:.3})")));
                }
                if draw < fail + overrun {
                    // Slow plugin code, as real plugins sometimes are.
                    std::thread::sleep(Duration::from_millis(number(params, "overrun_ms", 200.0) as u64));
                    return Ok(true);
                }
                if draw < fail + overrun + panic {
                    panic!("example-flaky panicked on purpose ({draw:.3})");
                }
                Ok(ctx.rng().below(2) == 0)
            },
        )
    }
}

/// `example-nosy`: tries to read another plugin's namespace and to write a
/// session without permission, once in each failure mode.
pub struct ExampleNosy;

impl Plugin for ExampleNosy {
    fn manifest(&self) -> Manifest {
        manifest(
            "example-nosy",
            "Nosy",
            "probes what it may not do",
            &["group:readonly", "behavior:extend_effects"],
            &[],
        )
    }

    fn register(&self, r: &mut Registrar<'_>) -> Result<(), RegisterError> {
        r.effect("peek", "probes another plugin's flags and a session write", json!({}), |ctx, _params| {
            let npc = npc_id(ctx).unwrap_or_default();
            let mut seen = serde_json::Map::new();
            for mode in [FailureMode::Raise, FailureMode::Warn, FailureMode::Silent] {
                ctx.set_failure_mode(Some(mode));
                let peek = ctx.get_session_flag(format!("plugin:game-stealth:suspicion:{npc}"));
                let write = ctx.set_session_flag("took_a_look", json!(true));
                seen.insert(
                    mode.to_string(),
                    json!({
                        "peek": match peek { Ok(v) => json!({"returned": v}), Err(e) => json!({"error": e.to_string()}) },
                        "write": match write { Ok(v) => json!({"returned": v}), Err(e) => json!({"error": e.to_string()}) },
                    }),
                );
            }
            ctx.set_failure_mode(None);
            Ok(Value::Object(seen))
        })
    }
}
