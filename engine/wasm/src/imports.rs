//! What a component may import: the interfaces of `provenant:plugin@0.1.0`
//! whose area its permissions grant, and nothing else (no WASI).

use std::collections::BTreeSet;

use provenant_host::permissions::Permission;

use crate::bindings::{PACKAGE, VERSION};
use crate::error::Problem;

/// Each interface a plugin may import, and the permissions that grant it
/// (any one of them; none needed for `types` and `call`). A capability call
/// still checks its own permission.
pub const AREAS: [(&str, &[Permission]); 9] = [
    ("types", &[]),
    ("call", &[]),
    ("world-read", &[Permission::WorldRead]),
    ("session-read", &[Permission::SessionRead]),
    ("session-write", &[Permission::SessionWrite]),
    ("npc", &[Permission::NpcRead, Permission::NpcWrite]),
    ("storage", &[Permission::DbRead, Permission::DbWrite]),
    ("log", &[Permission::LogEmit]),
    ("events", &[Permission::EventEmit]),
];

/// Whether a component holding `granted` may import `name` (as the
/// component names it, e.g. `provenant:plugin/session-read@0.1.0`).
pub fn check(name: &str, granted: &BTreeSet<Permission>) -> Result<(), Problem> {
    let unknown = |why: String| Problem::UnknownImport {
        name: name.to_owned(),
        why,
    };
    let (path, version) = name.split_once('@').unwrap_or((name, ""));
    let (package, interface) = path.split_once('/').unwrap_or((path, ""));
    if package != PACKAGE {
        return Err(unknown(if package.starts_with("wasi:") {
            "plugins get no WASI (no clock, randomness, filesystem, network or environment); \
             game time and seeded randomness come from provenant:plugin/call"
                .into()
        } else {
            format!("a plugin imports only the interfaces of {PACKAGE}@{VERSION}")
        }));
    }
    if version != VERSION {
        return Err(unknown(format!(
            "this engine provides {PACKAGE}@{VERSION}, not version {version:?}"
        )));
    }
    let Some((_, needs)) = AREAS.iter().find(|(area, _)| *area == interface) else {
        return Err(unknown(format!(
            "{PACKAGE}@{VERSION} has no interface {interface:?}"
        )));
    };
    if needs.is_empty() || needs.iter().any(|p| granted.contains(p)) {
        Ok(())
    } else {
        Err(Problem::ImportNotGranted {
            interface: name.to_owned(),
            needs: needs
                .iter()
                .map(|p| p.as_str())
                .collect::<Vec<_>>()
                .join(" or "),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imports_are_granted_by_area_and_anything_else_is_named() {
        let granted: BTreeSet<Permission> = [Permission::NpcRead].into();
        let name = |i: &str| format!("provenant:plugin/{i}@0.1.0");
        assert!(check(&name("call"), &granted).is_ok());
        assert!(check(&name("types"), &granted).is_ok());
        assert!(check(&name("npc"), &granted).is_ok());
        let e = check(&name("session-write"), &granted)
            .unwrap_err()
            .to_string();
        assert!(e.contains("needs session:write"), "{e}");
        let e = check("wasi:cli/environment@0.2.0", &granted)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no WASI"), "{e}");
        let e = check("provenant:plugin/npc@0.2.0", &granted)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not version \"0.2.0\""), "{e}");
        let e = check(&name("clock"), &granted).unwrap_err().to_string();
        assert!(e.contains("no interface \"clock\""), "{e}");
        assert!(check("env", &granted).is_err());
    }
}
