//! Who may use a name and enter a room: signed tokens (JWT, RFC 7519), off by default.
//!
//! The application's backend signs a short-lived token naming a user (`sub`) and the rooms it may
//! join; wschat only verifies it. It stores no users and no passwords, so any number of wschat
//! processes can verify the same token with nothing shared but the key. The claims and the room
//! grammar are [`claims`]; the `wschat token` tool that signs tokens for people and tests is
//! [`mint`].
//!
//! Signatures and the standard claims are the `jsonwebtoken` crate's: a hand-rolled HMAC or
//! Ed25519 check would teach nothing about WebSockets and risk everything about security. What
//! the project decides is only what the claims mean ([`Verifier::verify`]) and how each refusal is
//! answered ([`AuthError`]).
//!
//! Keys and algorithms: `--auth-secret` (or `--auth-secret-file`, or `WSCHAT_AUTH_SECRET`) is an
//! HMAC key for `HS256`; `--auth-public-key FILE.pem` is an Ed25519 (`EdDSA`) or RSA (`RS256`)
//! public key, so only the backend holds the private key. Both may be given. A token's `alg`
//! header picks the key, and a token whose `alg` has no key here is refused: an `HS256` token is
//! never checked against the RSA public key (the classic algorithm-confusion attack).

pub mod claims;
pub mod mint;

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{HeaderMap, AUTHORIZATION};
use http::StatusCode;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::value::RawValue;

pub use claims::{Claims, RoomPattern};

/// The close code sent when a connection's token expires while it is open. An application code
/// (RFC 6455 section 7.4.2 leaves 4000-4999 to applications): the client should fetch a fresh
/// token and reconnect, which no standard code says.
pub const TOKEN_EXPIRED: u16 = 4001;

/// How far in the future a token's `nbf` may be and still be accepted: the backend's clock may
/// run a little ahead of this server's. `exp` gets no leeway: a token is refused at the upgrade,
/// and an open connection closed, at the second its `exp` names, so the two never disagree and
/// "a connection never outlives its token" holds to the second. (A backend whose clock lags
/// should issue tokens a few seconds longer.)
pub const NBF_LEEWAY: Duration = Duration::from_secs(5);

/// Shortest HMAC secret accepted, in bytes: RFC 7518 section 3.2, "A key of the same size as the
/// hash output (for instance, 256 bits for "HS256") or larger MUST be used".
pub const MIN_SECRET_BYTES: usize = 32;

/// Why a token was refused. [`AuthError::status`], [`AuthError::reason`] (the one-line body) and
/// [`AuthError::label`] (the metrics label) are the one place each becomes an answer. No variant
/// carries any part of the token, so no answer, log line or metric can repeat it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    /// No `?token=` and no `Authorization: Bearer`.
    Missing,
    /// Not three base64url parts, or claims that are not JSON of the right shape (no `sub` or
    /// `exp`, an `info` that is not a small object).
    Malformed,
    /// The signature does not match this server's key.
    BadSignature,
    /// The `alg` header names an algorithm this server has no key for (or `none`).
    WrongAlgorithm,
    /// `exp` has passed.
    Expired,
    /// `nbf` is more than [`NBF_LEEWAY`] ahead.
    NotYetValid,
    /// A valid token that does not grant the requested room.
    RoomNotAllowed,
}

impl AuthError {
    pub fn status(self) -> StatusCode {
        match self {
            AuthError::RoomNotAllowed => StatusCode::FORBIDDEN,
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            AuthError::Missing => "token required: pass ?token= or an Authorization: Bearer header",
            AuthError::Malformed => "token is not a well-formed wschat token",
            AuthError::BadSignature => "token signature does not verify",
            AuthError::WrongAlgorithm => "token algorithm not accepted by this server",
            AuthError::Expired => "token expired",
            AuthError::NotYetValid => "token not yet valid (its nbf is in the future)",
            AuthError::RoomNotAllowed => "token does not grant this room",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            AuthError::Missing => "missing",
            AuthError::Malformed => "malformed",
            AuthError::BadSignature => "bad_signature",
            AuthError::WrongAlgorithm => "wrong_algorithm",
            AuthError::Expired => "expired",
            AuthError::NotYetValid => "not_yet_valid",
            AuthError::RoomNotAllowed => "room_not_allowed",
        }
    }

    /// Every variant, for metrics that show all of them from the start.
    pub const ALL: [AuthError; 7] = [
        AuthError::Missing,
        AuthError::Malformed,
        AuthError::BadSignature,
        AuthError::WrongAlgorithm,
        AuthError::Expired,
        AuthError::NotYetValid,
        AuthError::RoomNotAllowed,
    ];
}

/// What a verified token allows a connection.
#[derive(Debug)]
pub struct Grant {
    /// `sub`: the nickname the connection speaks as.
    pub nick: String,
    /// `rooms`: patterns, see [`RoomPattern`].
    pub rooms: Vec<String>,
    /// `exp`: when the connection must end.
    pub expires: SystemTime,
    /// `info`, as signed: passed to the room's `join` events.
    pub info: Option<Box<RawValue>>,
}

impl Grant {
    /// `exp` as a deadline on the monotonic clock the connection's timer uses. Taken once, at
    /// the upgrade: should the wall clock be stepped later, the connection still ends when the
    /// token's lifetime, as measured then, has passed.
    pub fn deadline(&self) -> tokio::time::Instant {
        let left = self
            .expires
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        tokio::time::Instant::now() + left
    }

    /// `Ok` if some entry of `rooms` allows `room`.
    pub fn check_room(&self, room: &str) -> Result<(), AuthError> {
        if claims::rooms_allow(&self.rooms, room) {
            Ok(())
        } else {
            Err(AuthError::RoomNotAllowed)
        }
    }
}

/// One key and the algorithm it verifies.
struct Key {
    algorithm: Algorithm,
    key: DecodingKey,
    validation: Validation,
}

/// Verifies tokens with the keys from the configuration. Built once at start; shared by every
/// connection; holds no state that changes, so verification takes no lock.
pub struct Verifier {
    keys: Vec<Key>,
}

impl std::fmt::Debug for Verifier {
    /// The algorithms only: a `Debug` print must never show a key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let algorithms: Vec<_> = self.keys.iter().map(|k| k.algorithm).collect();
        f.debug_struct("Verifier")
            .field("algorithms", &algorithms)
            .finish()
    }
}

impl Verifier {
    /// A verifier for `HS256` tokens signed with `secret` (at least [`MIN_SECRET_BYTES`]).
    pub fn hmac(secret: &[u8]) -> Result<Verifier, String> {
        let mut verifier = Verifier { keys: Vec::new() };
        verifier.add_secret(secret)?;
        Ok(verifier)
    }

    /// A verifier for `EdDSA` or `RS256` tokens, whichever `pem` is a public key for.
    pub fn public_key(pem: &[u8]) -> Result<Verifier, String> {
        let mut verifier = Verifier { keys: Vec::new() };
        verifier.add_public_key(pem)?;
        Ok(verifier)
    }

    fn add_secret(&mut self, secret: &[u8]) -> Result<(), String> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(format!(
                "the auth secret must be at least {MIN_SECRET_BYTES} bytes (RFC 7518 section 3.2); \
                 `openssl rand -hex 32` makes one"
            ));
        }
        self.add(Algorithm::HS256, DecodingKey::from_secret(secret));
        Ok(())
    }

    fn add_public_key(&mut self, pem: &[u8]) -> Result<(), String> {
        if let Ok(key) = DecodingKey::from_ed_pem(pem) {
            self.add(Algorithm::EdDSA, key);
        } else if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
            self.add(Algorithm::RS256, key);
        } else {
            return Err(
                "the auth public key is neither an Ed25519 nor an RSA public key in PEM".into(),
            );
        }
        Ok(())
    }

    fn add(&mut self, algorithm: Algorithm, key: DecodingKey) {
        let mut validation = Validation::new(algorithm);
        // `exp` is required (the crate's default) and checked with no leeway; `nbf` is checked
        // here with its own leeway (see `NBF_LEEWAY`); `aud` and `iss` are the backend's business.
        validation.leeway = 0;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        self.keys.push(Key {
            algorithm,
            key,
            validation,
        });
    }

    /// The verifier the flags ask for: `None` (auth off) when no key flag is given.
    pub fn from_config(config: &crate::Config) -> Result<Option<Verifier>, String> {
        let secret = match (&config.auth_secret, &config.auth_secret_file) {
            (Some(_), Some(_)) => {
                return Err("give --auth-secret or --auth-secret-file, not both".into())
            }
            (Some(secret), None) => Some(secret.expose().as_bytes().to_vec()),
            (None, Some(path)) => Some(read_secret_file(path)?),
            (None, None) => None,
        };
        let public_key = match &config.auth_public_key {
            Some(path) => Some(
                std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?,
            ),
            None => None,
        };
        if secret.is_none() && public_key.is_none() {
            return Ok(None);
        }
        let mut verifier = Verifier { keys: Vec::new() };
        if let Some(secret) = secret {
            verifier.add_secret(&secret)?;
        }
        if let Some(pem) = public_key {
            verifier.add_public_key(&pem)?;
        }
        Ok(Some(verifier))
    }

    /// Checks `token`'s signature and claims, and that it grants `room`. The one entry point for
    /// every wire protocol: `/ws` takes the token from the query or a header, Socket.IO from its
    /// CONNECT packet's auth object; all pass the bare token string here.
    pub fn verify(&self, token: &str, room: &str) -> Result<Grant, AuthError> {
        let grant = self.verify_token(token)?;
        grant.check_room(room)?;
        Ok(grant)
    }

    /// Checks `token`'s signature and claims, whatever room it is for.
    pub fn verify_token(&self, token: &str) -> Result<Grant, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Malformed)?;
        let key = self
            .keys
            .iter()
            .find(|k| k.algorithm == header.alg)
            .ok_or(AuthError::WrongAlgorithm)?;
        let claims = jsonwebtoken::decode::<Claims>(token, &key.key, &key.validation)
            .map_err(|e| from_jwt_error(e.kind()))?
            .claims;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        // The crate accepts `exp == now`; a token is dead from its `exp` second on.
        if claims.exp <= now.as_secs() {
            return Err(AuthError::Expired);
        }
        if claims
            .nbf
            .is_some_and(|nbf| Duration::from_secs(nbf) > now + NBF_LEEWAY)
        {
            return Err(AuthError::NotYetValid);
        }
        if let Some(info) = &claims.info {
            let text = info.get();
            if text.len() > claims::MAX_INFO_BYTES || !text.starts_with('{') {
                return Err(AuthError::Malformed);
            }
        }
        Ok(Grant {
            nick: claims.sub,
            rooms: claims.rooms,
            expires: UNIX_EPOCH + Duration::from_secs(claims.exp),
            info: claims.info,
        })
    }
}

/// The crate's error, as the answer it earns. Only the kind is read, never its text (which
/// could quote a claim).
fn from_jwt_error(kind: &ErrorKind) -> AuthError {
    match kind {
        ErrorKind::InvalidSignature => AuthError::BadSignature,
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => AuthError::WrongAlgorithm,
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        _ => AuthError::Malformed,
    }
}

/// Reads an HMAC secret from a file: its bytes, less one trailing newline (what `echo` and
/// editors add).
fn read_secret_file(path: &std::path::Path) -> Result<Vec<u8>, String> {
    let mut bytes =
        std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if bytes.ends_with(b"\n") {
        bytes.pop();
        if bytes.ends_with(b"\r") {
            bytes.pop();
        }
    }
    Ok(bytes)
}

/// The token a request carries: `Authorization: Bearer TOKEN` (for clients that can set
/// headers), else `?token=TOKEN` (browsers cannot set headers on a WebSocket). `None` if neither.
pub fn request_token<'a>(headers: &'a HeaderMap, query: &'a str) -> Option<Cow<'a, str>> {
    let bearer = headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| Cow::Borrowed(token.trim()));
    bearer
        .or_else(|| {
            form_urlencoded::parse(query.as_bytes())
                .find(|(key, _)| key == "token")
                .map(|(_, value)| value)
        })
        .filter(|token| !token.is_empty())
}

/// An HMAC secret from the command line or the environment. `Debug` never shows it, so a
/// `{:?}` of the configuration (or a panic message holding one) cannot leak it.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// The secret itself, for building the key; the only way to read it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_owned()))
    }
}

#[cfg(test)]
mod tests;
