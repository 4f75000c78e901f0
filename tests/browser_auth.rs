//! The chat page against a server that requires signed tokens (`--auth-secret`): a token in the
//! address, a token typed into the page, refusals shown in words, and a token that expires while
//! the page is open. Headless Chromium, as in `browser_chat.rs` (which says how it is skipped).

mod common;
mod common_browser;

use std::time::Duration;

use common::TestServer;
use common_browser::{run, Page, DESKTOP};
use serde_json::json;
use wschat::auth::mint::{claims, sign_hs256};
use wschat::Config;

const SECRET: &str = "a browser-test secret, 32 bytes or more";

async fn server() -> TestServer {
    TestServer::with_config(Config {
        auth_secret: Some(SECRET.parse().unwrap()),
        ..Config::for_tests()
    })
    .await
}

fn token(sub: &str, rooms: &[&str], ttl: Duration) -> String {
    sign_hs256(SECRET.as_bytes(), &claims(sub, rooms, ttl))
}

/// Opens `base/#hash` in a fresh browser session, without waiting for anything.
async fn open(browser: &common_browser::Browser, base: &str, hash: &str) -> Page {
    let client = browser.session(DESKTOP).await;
    client
        .goto(&format!("{base}/#{hash}"))
        .await
        .expect("open the chat page");
    Page { client }
}

async fn token_prompt(page: &Page) -> String {
    page.eval("return document.getElementById('token-why').textContent;")
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// A token in the address joins under its `sub`, and leaves the address at once.
#[test]
fn a_token_in_the_address_joins_as_its_user_and_leaves_the_address() {
    run(|browser| async move {
        let server = server().await;
        let token = token("alice", &["tea"], Duration::from_secs(600));
        let page = open(&browser, &server.base(), &format!("tea&token={token}")).await;
        page.wait_online("alice").await;
        assert_eq!(page.eval("return location.hash;").await, json!("#tea"));
        assert_eq!(
            page.eval("return document.getElementById('token-form').hidden;")
                .await,
            json!(true)
        );
        page.send("signed in").await;
        page.wait_for_text("signed in").await;
    });
}

/// No token: the page asks for one. A token for another room: the page says, in words, that it
/// is not allowed. A good token typed in: online.
#[test]
fn the_page_asks_for_a_token_and_says_why_one_was_refused() {
    run(|browser| async move {
        let server = server().await;
        let page = open(&browser, &server.base(), "tea").await;
        page.wait_until(
            "the page asks for a token",
            "!document.getElementById('token-form').hidden",
        )
        .await;
        assert_eq!(
            token_prompt(&page).await,
            "This server needs a token to join."
        );

        let enter = |token: String| {
            let page = &page;
            async move {
                page.eval(&format!(
                    "const input = document.getElementById('token-input'); input.value = {}; \
                     document.getElementById('token-form').requestSubmit(); return true;",
                    json!(token)
                ))
                .await;
            }
        };
        enter(token("bob", &["coffee"], Duration::from_secs(600))).await;
        page.wait_until(
            "the refusal is explained",
            "document.getElementById('token-why').textContent.includes('403')",
        )
        .await;
        assert_eq!(
            token_prompt(&page).await,
            "Not allowed here: token does not grant this room (403)."
        );

        let mut expired = claims("bob", &["tea"], Duration::from_secs(600));
        expired.exp -= 1200;
        enter(sign_hs256(SECRET.as_bytes(), &expired)).await;
        page.wait_until(
            "the expired token is explained",
            "document.getElementById('token-why').textContent.includes('401')",
        )
        .await;
        assert_eq!(
            token_prompt(&page).await,
            "The server refused your token: token expired (401)."
        );

        enter(token("bob", &["tea"], Duration::from_secs(600))).await;
        page.wait_online("bob").await;
    });
}

/// When the token expires the server closes with 4001, and the page asks for a fresh one rather
/// than reconnecting with the dead one. The short token is minted only once the page is loaded
/// and waiting, so a slow browser start cannot use up its life.
#[test]
fn an_expiring_token_makes_the_page_ask_again() {
    run(|browser| async move {
        let server = server().await;
        let page = open(&browser, &server.base(), "tea").await;
        page.wait_until(
            "the page asks for a token",
            "!document.getElementById('token-form').hidden",
        )
        .await;
        let token = token("carol", &["tea"], Duration::from_secs(3));
        page.eval(&format!(
            "document.getElementById('token-input').value = {}; \
             document.getElementById('token-form').requestSubmit(); return true;",
            json!(token)
        ))
        .await;
        page.wait_until(
            "the page asks for a fresh token",
            "document.getElementById('token-why').textContent.includes('expired')",
        )
        .await;
        assert_eq!(
            token_prompt(&page).await,
            "Your token expired. Paste a fresh one to carry on.",
            "closed by the server with 4001, not refused at the upgrade"
        );
        assert_eq!(
            page.eval("return window.wschatDebug.stats().you;").await,
            json!("carol"),
            "it was online as the token's user before"
        );
        assert_eq!(
            page.eval("return sessionStorage.getItem('wschat.token');")
                .await,
            json!(null),
            "the dead token is forgotten"
        );
    });
}
