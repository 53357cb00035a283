//! Who may call what: bearer tokens with roles, read from a file, checked on every request
//! before a handler runs.
//!
//! - Roles are ordered: `read` < `write` < `admin`; a token may do what its role and every
//!   lower role may. `GET /healthz` is open; other `GET`s need `read`; `PUT`/`DELETE` of
//!   keys need `write`; membership, leader transfer and every route not listed here need
//!   `admin` (so a route added later is closed until someone opens it on purpose).
//! - Tokens are compared through their SHA-256 digests, every entry every time, so the time
//!   a check takes says nothing about how much of a guess was right.
//! - A client session belongs to the principal that uses it: the `client-id` a caller sends
//!   is replaced by a digest of (principal, client-id) before the command reaches the log
//!   ([`session_client_id`]). Two principals sending the same `client-id` thus get two
//!   different sessions on every node, across leader changes, with no state machine change:
//!   nobody can advance or poison another principal's session.
//!
//! The token file (TOML) lists one `[[tokens]]` table per token:
//!
//! ```toml
//! [[tokens]]
//! principal = "ops"        # a name for logs and session ownership
//! role = "admin"           # read, write or admin
//! token = "a-long-random-secret-of-at-least-16-characters"
//! ```
//!
//! Several tokens may share a principal (rotation: add the new token, move clients over,
//! remove the old one, restart nodes one at a time); their sessions are then shared too.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::Request;
use axum::http::{HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::server::error::{ApiError, ErrorCode};

/// What a token may do; each role includes the ones below it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads, lists, status, members, metrics.
    Read,
    /// Also puts and deletes.
    Write,
    /// Also membership changes and leadership transfer.
    Admin,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Write => "write",
            Role::Admin => "admin",
        }
    }
}

/// Shortest token accepted: 16 characters of a random token are ~96 bits or more.
pub const TOKEN_CHARS_MIN: usize = 16;

/// Why a token file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    /// The file could not be read.
    #[error("cannot read token file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML of the expected shape, or an entry is unusable.
    #[error("token file {path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenFile {
    #[serde(default)]
    tokens: Vec<TokenEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    principal: String,
    role: Role,
    token: String,
}

/// One known token, kept only as its digest.
struct Known {
    principal: Arc<str>,
    role: Role,
    digest: [u8; 32],
}

/// The access policy of a node: open (an `--insecure` node) or a set of tokens.
pub struct Auth {
    tokens: Option<Vec<Known>>,
}

/// The caller of a request, as the authorization step found it; handlers read it from the
/// request's extensions. `None` inside: an open (`--insecure`) node.
#[derive(Clone, Debug, Default)]
pub struct Principal(pub Option<Arc<str>>);

/// Who sent a request and the credentials it arrived with, stored as the request's one
/// extension (one allocation per request): handlers read the principal, and a follower
/// forwarding the request to the leader presents the credentials again (the leader checks
/// them itself).
#[derive(Clone, Debug, Default)]
pub struct Caller {
    /// The principal the token names.
    pub principal: Principal,
    /// The `Authorization` header as sent (it shares the request's bytes).
    pub authorization: Option<HeaderValue>,
}

fn digest(token: &[u8]) -> [u8; 32] {
    let hash = ring::digest::digest(&ring::digest::SHA256, token);
    let mut out = [0u8; 32];
    out.copy_from_slice(hash.as_ref());
    out
}

/// Equality of two digests without an early exit.
fn digests_equal(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tokens = self.tokens.as_ref().map(Vec::len);
        f.debug_struct("Auth").field("tokens", &tokens).finish()
    }
}

impl Auth {
    /// Everyone may do everything: for `--insecure` nodes only.
    pub fn open() -> Self {
        Auth { tokens: None }
    }

    /// The tokens of the TOML file at `path`.
    pub fn from_file(path: &Path) -> Result<Self, TokenFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| TokenFileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text).map_err(|message| TokenFileError::Invalid {
            path: path.to_path_buf(),
            message,
        })
    }

    /// The tokens of a token file's text.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        let file: TokenFile = toml::from_str(text).map_err(|e| e.to_string())?;
        if file.tokens.is_empty() {
            return Err("no [[tokens]] entry: nobody could call the API".into());
        }
        let mut known: Vec<Known> = Vec::with_capacity(file.tokens.len());
        for (n, entry) in file.tokens.into_iter().enumerate() {
            if entry.principal.trim().is_empty() {
                return Err(format!("token {}: empty principal", n + 1));
            }
            if entry.token.chars().count() < TOKEN_CHARS_MIN || entry.token.contains(' ') {
                return Err(format!(
                    "token {} ({}): a token needs at least {TOKEN_CHARS_MIN} characters and no spaces",
                    n + 1,
                    entry.principal
                ));
            }
            let digest = digest(entry.token.as_bytes());
            if known.iter().any(|k| digests_equal(&k.digest, &digest)) {
                return Err(format!(
                    "token {} ({}) is listed twice",
                    n + 1,
                    entry.principal
                ));
            }
            known.push(Known {
                principal: Arc::from(entry.principal.as_str()),
                role: entry.role,
                digest,
            });
        }
        Ok(Auth {
            tokens: Some(known),
        })
    }

    /// Whether requests need a token.
    pub fn is_enforced(&self) -> bool {
        self.tokens.is_some()
    }

    /// The principal and role of a presented token; checks every entry.
    fn lookup(&self, token: &str) -> Option<(Arc<str>, Role)> {
        let presented = digest(token.as_bytes());
        let mut found = None;
        for known in self.tokens.as_deref().unwrap_or_default() {
            if digests_equal(&known.digest, &presented) {
                found = Some((Arc::clone(&known.principal), known.role));
            }
        }
        found
    }

    /// Decides a request: the caller's principal, or the error to answer with.
    pub fn check(
        &self,
        method: &Method,
        path: &str,
        authorization: Option<&HeaderValue>,
    ) -> Result<Principal, ApiError> {
        if self.tokens.is_none() {
            return Ok(Principal(None));
        }
        let Some(needed) = required_role(method, path) else {
            return Ok(Principal(None));
        };
        let token = authorization
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::Unauthorized,
                    "this route needs `Authorization: Bearer <token>`",
                )
            })?;
        let (principal, role) = self.lookup(token).ok_or_else(|| {
            ApiError::new(ErrorCode::Unauthorized, "the bearer token is not valid")
        })?;
        if role < needed {
            tracing::debug!(%principal, %method, path, "refused: role {} < {}", role.as_str(), needed.as_str());
            return Err(ApiError::new(
                ErrorCode::Forbidden,
                format!(
                    "{method} {path} needs the {} role; this token has {}",
                    needed.as_str(),
                    role.as_str()
                ),
            ));
        }
        Ok(Principal(Some(principal)))
    }
}

/// The role a request needs; `None` for the open health check.
pub fn required_role(method: &Method, path: &str) -> Option<Role> {
    if path == "/healthz" {
        return None;
    }
    let admin_route = path.starts_with("/v1/members")
        || path.starts_with("/v1/leader")
        || path.starts_with("/v1/snapshot");
    Some(match *method {
        Method::GET | Method::HEAD if !admin_route || path == "/v1/members" => Role::Read,
        Method::GET | Method::HEAD => Role::Admin,
        Method::PUT | Method::DELETE if path.starts_with("/v1/kv/") => Role::Write,
        _ => Role::Admin,
    })
}

/// Authorizes `request` and records its [`Caller`] in its extensions (`None`), or gives the 401/403 answer to send instead of running the handler.
pub fn refusal(auth: &Auth, request: &mut Request) -> Option<Response> {
    // A cloned header value shares the request's bytes (a reference count, no copy).
    let authorization = request.headers().get(header::AUTHORIZATION).cloned();
    match auth.check(
        request.method(),
        request.uri().path(),
        authorization.as_ref(),
    ) {
        Ok(principal) => {
            request.extensions_mut().insert(Caller {
                principal,
                authorization,
            });
            None
        }
        Err(error) => {
            let unauthorized = error.code == ErrorCode::Unauthorized;
            let mut response = error.into_response();
            if unauthorized {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"raft-kv\""),
                );
            }
            Some(response)
        }
    }
}

/// The session id the log sees for `client_id` sent by `principal`: the id itself on an
/// open node, else the first 8 bytes of SHA-256 over a domain tag, the principal and the id.
/// Finding another principal's session would take a second preimage of SHA-256 truncated
/// to 64 bits.
pub fn session_client_id(principal: &Principal, client_id: u64) -> u64 {
    let Some(name) = &principal.0 else {
        return client_id;
    };
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    context.update(b"raft-kv session v1\0");
    context.update(name.as_bytes());
    context.update(b"\0");
    context.update(&client_id.to_be_bytes());
    let hash = context.finish();
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash.as_ref()[..8]);
    u64::from_be_bytes(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
[[tokens]]
principal = "ops"
role = "admin"
token = "admin-token-0123456789"

[[tokens]]
principal = "app"
role = "write"
token = "write-token-0123456789"

[[tokens]]
principal = "dash"
role = "read"
token = "read-token-0123456789"
"#;

    fn bearer(token: &str) -> HeaderValue {
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap()
    }

    /// Goal: each role reaches exactly its routes; no token or a wrong one gets 401, a weak
    /// role 403, and the health check stays open.
    #[test]
    fn roles_gate_routes() {
        let auth = Auth::from_toml(FILE).unwrap();
        let read = bearer("read-token-0123456789");
        let write = bearer("write-token-0123456789");
        let admin = bearer("admin-token-0123456789");
        let code = |method: Method, path: &str, token: Option<&HeaderValue>| {
            auth.check(&method, path, token).err().map(|e| e.code)
        };
        assert_eq!(code(Method::GET, "/healthz", None), None);
        assert_eq!(
            code(Method::GET, "/v1/kv/a", None),
            Some(ErrorCode::Unauthorized)
        );
        let wrong = bearer("not-a-token-0123456789");
        assert_eq!(
            code(Method::GET, "/v1/kv/a", Some(&wrong)),
            Some(ErrorCode::Unauthorized)
        );
        assert_eq!(code(Method::GET, "/v1/kv/a", Some(&read)), None);
        assert_eq!(code(Method::GET, "/metrics", Some(&read)), None);
        assert_eq!(code(Method::GET, "/v1/members", Some(&read)), None);
        assert_eq!(
            code(Method::PUT, "/v1/kv/a", Some(&read)),
            Some(ErrorCode::Forbidden)
        );
        assert_eq!(code(Method::PUT, "/v1/kv/a", Some(&write)), None);
        assert_eq!(code(Method::DELETE, "/v1/kv/a", Some(&write)), None);
        for (method, path) in [
            (Method::POST, "/v1/members"),
            (Method::DELETE, "/v1/members/2"),
            (Method::POST, "/v1/leader/transfer"),
            (Method::POST, "/v1/some-future-route"),
        ] {
            assert_eq!(
                code(method.clone(), path, Some(&write)),
                Some(ErrorCode::Forbidden)
            );
            assert_eq!(code(method, path, Some(&admin)), None);
        }
    }

    /// Goal: an open node lets everything through; a bad file is refused with a reason.
    #[test]
    fn open_nodes_and_bad_files() {
        let open = Auth::open();
        assert!(open.check(&Method::POST, "/v1/members", None).is_ok());
        assert!(Auth::from_toml("").is_err());
        let short = "[[tokens]]\nprincipal = \"a\"\nrole = \"read\"\ntoken = \"short\"\n";
        assert!(Auth::from_toml(short).unwrap_err().contains("16"));
        let twice = format!(
            "{FILE}\n[[tokens]]\nprincipal = \"x\"\nrole = \"read\"\ntoken = \"read-token-0123456789\"\n"
        );
        assert!(Auth::from_toml(&twice).unwrap_err().contains("twice"));
    }

    /// Goal: the same client id of two principals maps to two sessions; one principal keeps
    /// its session across calls; open nodes keep ids as sent.
    #[test]
    fn sessions_belong_to_principals() {
        let alice = Principal(Some(Arc::from("alice")));
        let bob = Principal(Some(Arc::from("bob")));
        assert_ne!(session_client_id(&alice, 7), session_client_id(&bob, 7));
        assert_eq!(session_client_id(&alice, 7), session_client_id(&alice, 7));
        assert_ne!(session_client_id(&alice, 7), session_client_id(&alice, 8));
        assert_eq!(session_client_id(&Principal(None), 7), 7);
    }
}
