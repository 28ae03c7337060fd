//! Who may do what over HTTP: a token per role (`game`, `reader`,
//! `admin`), and which roles each route admits. Pure: the middleware in
//! `http` and the OpenAPI document both ask [`required`], so the two
//! cannot disagree.

use axum::http::Method;
use subtle::ConstantTimeEq;

pub use crate::secret::Secret;

/// A role a token stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Sends ticks, configures worlds and reads them back.
    Game,
    /// Reads: events, sessions, worlds, `/metrics`.
    Reader,
    /// Everything, the admin API included.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Game, Role::Reader, Role::Admin];

    pub fn name(self) -> &'static str {
        match self {
            Role::Game => "game",
            Role::Reader => "reader",
            Role::Admin => "admin",
        }
    }
}

/// The tokens of the roles that have one.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    pub game: Option<Secret>,
    pub reader: Option<Secret>,
    pub admin: Option<Secret>,
}

impl Tokens {
    /// No token at all: every route is open (on a loopback address only).
    pub fn is_empty(&self) -> bool {
        self.game.is_none() && self.reader.is_none() && self.admin.is_none()
    }

    fn get(&self, role: Role) -> Option<&Secret> {
        match role {
            Role::Game => self.game.as_ref(),
            Role::Reader => self.reader.as_ref(),
            Role::Admin => self.admin.as_ref(),
        }
    }

    /// The roles whose token is shorter than 16 characters: easy to guess.
    pub fn short(&self) -> Vec<Role> {
        Role::ALL
            .into_iter()
            .filter(|r| self.get(*r).is_some_and(|t| t.expose().len() < 16))
            .collect()
    }

    /// Two roles with one token would make a request's role ambiguous.
    pub fn check(&self) -> Result<(), String> {
        for (i, a) in Role::ALL.iter().enumerate() {
            for b in &Role::ALL[i + 1..] {
                if let (Some(x), Some(y)) = (self.get(*a), self.get(*b))
                    && x == y
                {
                    return Err(format!(
                        "the {} and {} tokens are the same: give each role a token of its own",
                        a.name(),
                        b.name()
                    ));
                }
            }
        }
        Ok(())
    }

    /// The role whose token `given` is. Every configured token is compared,
    /// in constant time over SHA-256 digests (so neither the position of
    /// the first differing byte nor the tokens' lengths show in the time).
    pub fn role_of(&self, given: &str) -> Option<Role> {
        let given = crate::secret::digest_of(given);
        let mut found = None;
        for role in Role::ALL {
            if let Some(token) = self.get(role)
                && bool::from(token.digest().ct_eq(&given[..]))
            {
                found = Some(role);
            }
        }
        found
    }
}

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Open to anyone (liveness and readiness, for probes).
    Open,
    /// A token of one of these roles (admin is always among them).
    Roles(&'static [Role]),
}

impl Access {
    pub fn admits(self, role: Role) -> bool {
        match self {
            Access::Open => true,
            Access::Roles(roles) => roles.contains(&role),
        }
    }
}

const ADMIN: &[Role] = &[Role::Admin];
const GAME: &[Role] = &[Role::Game, Role::Admin];
const READER: &[Role] = &[Role::Reader, Role::Admin];
const GAME_OR_READER: &[Role] = &[Role::Game, Role::Reader, Role::Admin];

/// What a request for `path` with `method` needs once any token is set.
/// Unknown routes need a token too (of any role for a read, admin for
/// anything else), so that nothing answers a stranger but the probes.
pub fn required(method: &Method, path: &str) -> Access {
    let read = *method == Method::GET || *method == Method::HEAD;
    match path {
        "/livez" | "/readyz" => Access::Open,
        _ if path.starts_with("/admin/") || path == "/admin" => Access::Roles(ADMIN),
        "/v1/ticks" if *method == Method::POST => Access::Roles(GAME),
        // `/v1/worlds/{id}` exactly: a route added below it gets the
        // default rules (reads for readers, the rest for the admin) until
        // it is given its own.
        _ if path
            .strip_prefix("/v1/worlds/")
            .is_some_and(|id| !id.is_empty() && !id.contains('/')) =>
        {
            match *method {
                Method::GET | Method::HEAD => Access::Roles(GAME_OR_READER),
                Method::PUT => Access::Roles(GAME),
                _ => Access::Roles(ADMIN),
            }
        }
        "/openapi.json" if read => Access::Roles(GAME_OR_READER),
        _ if read => Access::Roles(READER),
        _ => Access::Roles(ADMIN),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Tokens {
        Tokens {
            game: Secret::new("g-token"),
            reader: Secret::new("r-token"),
            admin: Secret::new("a-token"),
        }
    }

    #[test]
    fn a_token_is_its_role_and_nothing_else() {
        let t = tokens();
        assert_eq!(t.role_of("g-token"), Some(Role::Game));
        assert_eq!(t.role_of("r-token"), Some(Role::Reader));
        assert_eq!(t.role_of("a-token"), Some(Role::Admin));
        assert_eq!(t.role_of("a-toke"), None);
        assert_eq!(t.role_of(""), None);
        let admin_only = Tokens {
            admin: Secret::new("x"),
            ..Default::default()
        };
        assert_eq!(admin_only.role_of("g-token"), None);
        assert_eq!(t.short(), Role::ALL);
    }

    #[test]
    fn two_roles_cannot_share_a_token() {
        let mut t = tokens();
        t.reader = Secret::new("a-token");
        let err = t.check().unwrap_err();
        assert!(err.contains("reader and admin"), "{err}");
        assert!(!err.contains("a-token"), "{err}");
        assert!(tokens().check().is_ok());
    }

    #[test]
    fn debug_never_shows_a_secret() {
        let shown = format!("{:?}", tokens());
        assert!(!shown.contains("token\""), "{shown}");
        for secret in ["g-token", "r-token", "a-token"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(Secret::new("").is_none());
    }

    #[test]
    fn each_route_admits_its_roles() {
        use Role::*;
        let cases: &[(Method, &str, &[Role])] = &[
            (Method::POST, "/v1/ticks", &[Game, Admin]),
            (Method::PUT, "/v1/worlds/w", &[Game, Admin]),
            (Method::GET, "/v1/worlds/w", &[Game, Reader, Admin]),
            (Method::GET, "/v1/events", &[Reader, Admin]),
            (Method::GET, "/v1/sessions/w/s", &[Reader, Admin]),
            (Method::GET, "/metrics", &[Reader, Admin]),
            (Method::GET, "/openapi.json", &[Game, Reader, Admin]),
            (Method::GET, "/admin/plugins/list", &[Admin]),
            (Method::POST, "/admin/plugins/metrics/reset", &[Admin]),
            (Method::GET, "/nowhere", &[Reader, Admin]),
            (Method::DELETE, "/v1/events", &[Admin]),
            (Method::POST, "/v1/worlds/w", &[Admin]),
            (Method::DELETE, "/v1/worlds/w", &[Admin]),
            (Method::HEAD, "/v1/worlds/w", &[Game, Reader, Admin]),
            (Method::OPTIONS, "/v1/worlds/w", &[Admin]),
            (Method::PUT, "/v1/worlds/w/sessions/s", &[Admin]),
            (Method::GET, "/v1/worlds/w/sessions/s", &[Reader, Admin]),
            (Method::PUT, "/v1/worlds/", &[Admin]),
            (Method::GET, "//admin/plugins/list", &[Reader, Admin]),
            (Method::GET, "/admin", &[Admin]),
            (Method::HEAD, "/admin/plugins/list", &[Admin]),
            (Method::OPTIONS, "/v1/ticks", &[Admin]),
            (Method::GET, "/v1/ticks", &[Reader, Admin]),
        ];
        for (method, path, roles) in cases {
            let access = required(method, path);
            for role in Role::ALL {
                assert_eq!(
                    access.admits(role),
                    roles.contains(&role),
                    "{method} {path} for {role:?}"
                );
            }
        }
        assert_eq!(required(&Method::GET, "/livez"), Access::Open);
        assert_eq!(required(&Method::GET, "/readyz"), Access::Open);
    }
}
