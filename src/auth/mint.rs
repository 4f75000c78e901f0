//! `wschat token`: signs a token, so a learner can try auth with two terminals and the tests need
//! no other program. A real deployment signs tokens in its own backend, with its own JWT library;
//! this is that backend's few lines, as a command.
//!
//! ```text
//! wschat token --auth-secret-file secret.txt --sub alice --room lobby --room 'dm-alice-*' --ttl 1h
//! ```

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Parser;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::value::RawValue;

use super::{Claims, Secret};

/// The arguments of `wschat token`.
#[derive(Parser, Debug)]
#[command(
    name = "wschat token",
    bin_name = "wschat token",
    about = "Print a signed token for a server started with --auth-secret or --auth-public-key"
)]
pub struct TokenArgs {
    /// The nickname (`sub` claim).
    #[arg(long)]
    pub sub: String,

    /// A room the token grants (repeatable): an exact name, or a prefix ending in `*`
    /// (`dm-alice-*`); `*` alone grants every room. None: the token grants no room.
    #[arg(long = "room")]
    pub rooms: Vec<String>,

    /// How long the token is valid (`exp` = now + this), e.g. `90s`, `15m`, `1h`.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1h")]
    pub ttl: Duration,

    /// Make the token valid only from this long after now (`nbf`), e.g. `10m`. For trying the
    /// "not yet valid" answer.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub not_before: Option<Duration>,

    /// `info` claim: a JSON object passed to the room with the user's `join`, e.g.
    /// `{"color":"#c0392b"}`.
    #[arg(long)]
    pub info: Option<String>,

    /// HMAC secret to sign with (`HS256`); the server's `--auth-secret`.
    #[arg(long, env = "WSCHAT_AUTH_SECRET", hide_env_values = true)]
    pub auth_secret: Option<Secret>,

    /// File holding the HMAC secret (one trailing newline ignored); the server's
    /// `--auth-secret-file`.
    #[arg(long)]
    pub auth_secret_file: Option<PathBuf>,

    /// Ed25519 or RSA private key in PEM to sign with (`EdDSA` or `RS256`); the server is given
    /// the matching public key with `--auth-public-key`.
    #[arg(long)]
    pub auth_private_key: Option<PathBuf>,
}

/// Signs `claims` with an HMAC `secret` (`HS256`).
pub fn sign_hs256(secret: &[u8], claims: &Claims) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .expect("HMAC signing cannot fail")
}

/// Signs `claims` with a private key in PEM: Ed25519 (`EdDSA`) or RSA (`RS256`).
pub fn sign_with_pem(pem: &[u8], claims: &Claims) -> Result<String, String> {
    let (algorithm, key) = if let Ok(key) = EncodingKey::from_ed_pem(pem) {
        (Algorithm::EdDSA, key)
    } else if let Ok(key) = EncodingKey::from_rsa_pem(pem) {
        (Algorithm::RS256, key)
    } else {
        return Err("the private key is neither Ed25519 nor RSA in PEM".into());
    };
    jsonwebtoken::encode(&Header::new(algorithm), claims, &key).map_err(|e| e.to_string())
}

/// Claims for `sub` granting `rooms`, valid from now for `ttl`.
pub fn claims(sub: &str, rooms: &[&str], ttl: Duration) -> Claims {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    Claims {
        sub: sub.to_owned(),
        exp: now + ttl.as_secs().max(1),
        nbf: None,
        iat: Some(now),
        rooms: rooms.iter().map(|r| r.to_string()).collect(),
        info: None,
    }
}

/// Runs `wschat token`: the token, or why not.
pub fn run(args: TokenArgs) -> Result<String, String> {
    let rooms: Vec<&str> = args.rooms.iter().map(String::as_str).collect();
    let mut claims = claims(&args.sub, &rooms, args.ttl);
    if let Some(delay) = args.not_before {
        let nbf = claims.iat.unwrap_or_default() + delay.as_secs();
        claims.nbf = Some(nbf);
        claims.exp = claims.exp.max(nbf + 1);
    }
    if let Some(info) = args.info {
        let info = RawValue::from_string(info).map_err(|e| format!("--info is not JSON: {e}"))?;
        if !info.get().trim_start().starts_with('{') {
            return Err("--info must be a JSON object".into());
        }
        claims.info = Some(info);
    }
    match (
        args.auth_secret,
        args.auth_secret_file,
        args.auth_private_key,
    ) {
        (Some(secret), None, None) => Ok(sign_hs256(secret.expose().as_bytes(), &claims)),
        (None, Some(path), None) => Ok(sign_hs256(&super::read_secret_file(&path)?, &claims)),
        (None, None, Some(path)) => {
            let pem =
                std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            sign_with_pem(&pem, &claims)
        }
        _ => Err(
            "give exactly one of --auth-secret (or WSCHAT_AUTH_SECRET), --auth-secret-file, \
             --auth-private-key"
                .into(),
        ),
    }
}
