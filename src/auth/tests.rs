use std::time::Duration;

use super::mint::{claims, sign_hs256};
use super::*;

const SECRET: &[u8] = b"a test secret of thirty-two bytes";

fn verifier() -> Verifier {
    Verifier::hmac(SECRET).unwrap()
}

#[test]
fn a_valid_token_grants_its_rooms_and_names_its_user() {
    let token = sign_hs256(
        SECRET,
        &claims("alice", &["dm-alice-*"], Duration::from_secs(60)),
    );
    let grant = verifier().verify(&token, "dm-alice-bob").unwrap();
    assert_eq!(grant.nick, "alice");
    assert_eq!(
        verifier().verify(&token, "lobby").err(),
        Some(AuthError::RoomNotAllowed)
    );
}

#[test]
fn each_refusal_has_its_own_answer() {
    let v = verifier();
    let other = sign_hs256(
        b"another secret, also thirty-two bytes",
        &claims("a", &["*"], Duration::from_secs(60)),
    );
    assert_eq!(v.verify_token(&other).err(), Some(AuthError::BadSignature));
    assert_eq!(
        v.verify_token("not.a.jwt").err(),
        Some(AuthError::Malformed)
    );
    assert_eq!(v.verify_token("").err(), Some(AuthError::Malformed));
    let mut expired = claims("a", &["*"], Duration::from_secs(60));
    expired.exp -= 120;
    assert_eq!(
        v.verify_token(&sign_hs256(SECRET, &expired)).err(),
        Some(AuthError::Expired)
    );
    let mut early = claims("a", &["*"], Duration::from_secs(600));
    early.nbf = early.iat.map(|now| now + 60);
    assert_eq!(
        v.verify_token(&sign_hs256(SECRET, &early)).err(),
        Some(AuthError::NotYetValid)
    );
    let mut slightly_early = claims("a", &["*"], Duration::from_secs(600));
    slightly_early.nbf = slightly_early.iat.map(|now| now + 2);
    assert!(
        v.verify_token(&sign_hs256(SECRET, &slightly_early)).is_ok(),
        "within NBF_LEEWAY"
    );
    // `alg: none`, unsigned: the header names no key this server has.
    let unsigned = format!(
        "{}.{}.",
        base64url(br#"{"alg":"none","typ":"JWT"}"#),
        base64url(br#"{"sub":"a","exp":99999999999,"rooms":["*"]}"#)
    );
    assert_eq!(v.verify_token(&unsigned).err(), Some(AuthError::Malformed));
    // HS512 parses but has no key here.
    let hs512 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(Algorithm::HS512),
        &claims("a", &["*"], Duration::from_secs(60)),
        &jsonwebtoken::EncodingKey::from_secret(SECRET),
    )
    .unwrap();
    assert_eq!(
        v.verify_token(&hs512).err(),
        Some(AuthError::WrongAlgorithm)
    );
}

#[test]
fn a_token_without_exp_is_refused() {
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(Algorithm::HS256),
        &serde_json::json!({"sub": "a", "rooms": ["*"]}),
        &jsonwebtoken::EncodingKey::from_secret(SECRET),
    )
    .unwrap();
    assert_eq!(
        verifier().verify_token(&token).err(),
        Some(AuthError::Malformed)
    );
}

#[test]
fn info_must_be_a_small_object() {
    let with_info = |info: &str| {
        let mut c = claims("a", &["*"], Duration::from_secs(60));
        c.info = Some(RawValue::from_string(info.into()).unwrap());
        verifier().verify_token(&sign_hs256(SECRET, &c))
    };
    let grant = with_info(r##"{"color":"#c0392b"}"##).unwrap();
    assert_eq!(grant.info.unwrap().get(), r##"{"color":"#c0392b"}"##);
    assert_eq!(with_info("\"x\"").err(), Some(AuthError::Malformed));
    let big = format!(r#"{{"x":"{}"}}"#, "y".repeat(300));
    assert_eq!(with_info(&big).err(), Some(AuthError::Malformed));
}

#[test]
fn public_keys_verify_their_own_algorithm_only() {
    let keys = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keys/");
    let read = |name: &str| std::fs::read(format!("{keys}{name}")).unwrap();
    let claims = claims("a", &["*"], Duration::from_secs(60));
    let rs256 = super::mint::sign_with_pem(&read("rsa_private.pem"), &claims).unwrap();
    let eddsa = super::mint::sign_with_pem(&read("ed25519_private.pem"), &claims).unwrap();
    let rsa = Verifier::public_key(&read("rsa_public.pem")).unwrap();
    let ed = Verifier::public_key(&read("ed25519_public.pem")).unwrap();
    assert!(rsa.verify_token(&rs256).is_ok());
    assert!(ed.verify_token(&eddsa).is_ok());
    assert_eq!(
        rsa.verify_token(&eddsa).err(),
        Some(AuthError::WrongAlgorithm)
    );
    assert_eq!(
        ed.verify_token(&rs256).err(),
        Some(AuthError::WrongAlgorithm)
    );
    assert!(Verifier::public_key(b"not a key").is_err());
}

#[test]
fn short_secrets_are_refused() {
    assert!(Verifier::hmac(b"hunter2").is_err());
}

#[test]
fn the_token_comes_from_the_header_or_the_query() {
    let mut headers = HeaderMap::new();
    assert_eq!(
        request_token(&headers, "room=a&token=q.q.q").as_deref(),
        Some("q.q.q")
    );
    assert_eq!(request_token(&headers, "room=a&token=").as_deref(), None);
    assert_eq!(request_token(&headers, "room=a").as_deref(), None);
    headers.insert(AUTHORIZATION, "Bearer h.h.h".parse().unwrap());
    assert_eq!(
        request_token(&headers, "token=q.q.q").as_deref(),
        Some("h.h.h")
    );
    headers.insert(AUTHORIZATION, "Basic abc".parse().unwrap());
    assert_eq!(request_token(&headers, "").as_deref(), None);
}

#[test]
fn debug_never_shows_a_secret() {
    let secret: Secret = "s3cr3t-value".parse().unwrap();
    assert!(!format!("{secret:?}").contains("s3cr3t"));
    assert!(!format!("{:?}", verifier()).contains("thirty-two"));
}

fn base64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[test]
fn the_flags_decide_the_keys() {
    let public = std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/keys/ed25519_public.pem"
    ));
    let private = std::fs::read(public.with_file_name("ed25519_private.pem")).unwrap();
    let off = crate::Config::for_tests();
    assert!(
        Verifier::from_config(&off).unwrap().is_none(),
        "off by default"
    );
    let both = crate::Config {
        auth_secret: Some(Secret(String::from_utf8(SECRET.to_vec()).unwrap())),
        auth_public_key: Some(public),
        ..crate::Config::for_tests()
    };
    let verifier = Verifier::from_config(&both).unwrap().expect("on");
    let claims = claims("a", &["*"], Duration::from_secs(60));
    assert!(verifier.verify_token(&sign_hs256(SECRET, &claims)).is_ok());
    let eddsa = super::mint::sign_with_pem(&private, &claims).unwrap();
    assert!(
        verifier.verify_token(&eddsa).is_ok(),
        "the alg picks the key"
    );
    let twice = crate::Config {
        auth_secret_file: Some("/nonexistent".into()),
        ..both
    };
    assert!(
        Verifier::from_config(&twice).is_err(),
        "one secret, not two"
    );
}
