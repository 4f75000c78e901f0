//! The chat page in a real browser: headless Chromium, driven over WebDriver, against the real
//! server on a loopback port. Each test is one thing a person does with the page.
//!
//! Needs Debian's `chromium` and `chromium-driver`; without them each test prints
//! `SKIPPED: chromium/chromedriver not installed` and passes, unless `WSCHAT_REQUIRE_BROWSER=1`
//! (CI). With `WSCHAT_SCREENSHOT=docs/screenshot.png` the screenshot test also writes the page as
//! a desktop and a phone would show it (`docs/screenshot.png`, `docs/screenshot-phone.png`).

mod common;
mod common_browser;

use std::path::PathBuf;
use std::time::Duration;

use common::peer::Peer;
use common::TestServer;
use common_browser::{run, PHONE, WAIT};
use serde_json::json;

/// Two people in one room: what one sends, the other sees, once, with its author and time.
#[test]
fn a_message_sent_in_one_page_appears_in_the_other() {
    run(|browser| async move {
        let server = TestServer::start().await;
        let alice = browser.chat_page(&server.base(), "tea", "alice").await;
        let bob = browser.chat_page(&server.base(), "tea", "bob").await;

        alice.send("Hello Bob, kettle's on").await;
        bob.wait_for_text("Hello Bob, kettle's on").await;
        bob.send("Lovely, two sugars").await;
        alice.wait_for_text("Lovely, two sugars").await;

        for page in [&alice, &bob] {
            let shown = page.messages().await;
            let pairs: Vec<(&str, &str)> = shown
                .iter()
                .map(|m| (m.from.as_str(), m.text.as_str()))
                .collect();
            assert_eq!(
                pairs,
                [
                    ("alice", "Hello Bob, kettle's on"),
                    ("bob", "Lovely, two sugars")
                ]
            );
            assert_eq!(shown[0].id + 1, shown[1].id, "ids follow each other");
        }
        // The sender's own message is marked as theirs, and the message box is empty again.
        assert_eq!(
            alice
                .eval("return document.querySelectorAll('#log .msg.mine').length;")
                .await,
            json!(1)
        );
        assert_eq!(
            alice
                .eval("return document.getElementById('message-input').value;")
                .await,
            json!("")
        );
        // A timestamp in the reader's local time, with the exact instant in `datetime`.
        let time = bob
            .eval(
                "const t = document.querySelector('#log .msg time'); \
                 return [t.textContent, !isNaN(Date.parse(t.dateTime))];",
            )
            .await;
        assert_eq!(time[1], json!(true), "datetime is a date: {time}");
        assert!(!time[0].as_str().unwrap_or_default().is_empty());
        server.stop().await;
    });
}

/// Someone who opens the room later sees what was said before they came, in order.
#[test]
fn a_late_joiner_sees_the_history() {
    run(|browser| async move {
        let server = TestServer::start().await;
        let alice = browser
            .chat_page(&server.base(), "book-club", "alice")
            .await;
        for text in ["Chapter one was slow", "But the ending!", "No spoilers"] {
            alice.send(text).await;
            alice.wait_for_text(text).await;
        }

        let carol = browser
            .chat_page(&server.base(), "book-club", "carol")
            .await;
        carol.wait_for_text("No spoilers").await;
        assert_eq!(
            carol.texts().await,
            ["Chapter one was slow", "But the ending!", "No spoilers"]
        );
        server.stop().await;
    });
}

/// Chromium offers permessage-deflate on every socket: the page's connection negotiates it,
/// messages flow both ways compressed, and a 100-message history arrives whole in one
/// compressed welcome.
#[test]
fn the_page_talks_compressed_and_a_long_history_arrives_intact() {
    run(|browser| async move {
        let server = TestServer::start().await;
        let mut poster = Peer::join(server.addr, "deflate", "poster").await;
        let texts: Vec<String> = (0..100)
            .map(|i| format!("history line {i}: the same words compress well"))
            .collect();
        for text in &texts {
            poster.say(text).await;
        }
        poster.wait_echo(&texts[99]).await;
        let alice = browser.chat_page(&server.base(), "deflate", "alice").await;
        alice.wait_for_text(&texts[99]).await;
        assert_eq!(alice.texts().await, texts, "the whole history, in order");
        let extensions = alice.eval("return window.wschatDebug.extensions();").await;
        assert_eq!(
            extensions,
            json!("permessage-deflate; server_no_context_takeover; client_no_context_takeover")
        );
        let bob = browser.chat_page(&server.base(), "deflate", "bob").await;
        bob.wait_for_text(&texts[99]).await;
        let before = server
            .metrics()
            .await
            .value("wschat_deflate_compressions_total");
        let long = "Compressed on its way to Bob, and to Alice's own page. ".repeat(3);
        alice.send(long.trim()).await;
        bob.wait_for_text(long.trim()).await;
        bob.send("And back, inflated by the server").await;
        alice
            .wait_for_text("And back, inflated by the server")
            .await;
        let metrics = server.metrics().await;
        assert_eq!(metrics.value("wschat_deflate_connections_total"), 2.0);
        assert!(metrics.value("wschat_deflate_compressions_total") > before);
        server.stop().await;
    });
}

/// Who is online follows arrivals and departures live, with a notice for each; someone typing
/// shows as a hint that goes away by itself.
#[test]
fn join_leave_and_typing_show_in_the_other_page() {
    run(|browser| async move {
        let server = TestServer::start().await;
        let alice = browser.chat_page(&server.base(), "garden", "alice").await;
        assert_eq!(alice.users().await, ["alice"]);

        let mut bob = Peer::join(server.addr, "garden", "bob").await;
        alice
            .wait_until(
                "bob is listed as online",
                "[...document.querySelectorAll('#users li')].some(li => li.textContent === 'bob')",
            )
            .await;
        alice
            .wait_until(
                "a join notice",
                "[...document.querySelectorAll('#log .notice')].some(n => n.textContent === 'bob joined')",
            )
            .await;
        assert_eq!(alice.users().await, ["alice", "bob"]);
        assert_eq!(
            alice
                .eval("return document.getElementById('user-count').textContent;")
                .await,
            json!("2")
        );

        // Typing: the hint appears, then fades by itself when no more typing events come.
        bob.typing().await;
        alice
            .wait_until(
                "the typing hint shows",
                "document.getElementById('typing').classList.contains('visible') \
                 && document.getElementById('typing').textContent === 'bob is typing…'",
            )
            .await;
        alice
            .wait_until(
                "the typing hint fades",
                "!document.getElementById('typing').classList.contains('visible')",
            )
            .await;

        // And the page's own typing reaches the others (throttled, so one event is enough).
        let input = alice
            .client
            .find(fantoccini::Locator::Id("message-input"))
            .await
            .expect("the message box");
        input.send_keys("hmm").await.expect("type");
        let typing = loop {
            let ev = bob.event().await;
            if ev["type"] == "typing" {
                break ev;
            }
        };
        assert_eq!(typing["name"], "alice");

        bob.close().await;
        alice
            .wait_until(
                "a leave notice",
                "[...document.querySelectorAll('#log .notice')].some(n => n.textContent === 'bob left')",
            )
            .await;
        alice
            .wait_until(
                "bob is no longer listed",
                "document.getElementById('user-count').textContent === '1'",
            )
            .await;
        assert_eq!(alice.users().await, ["alice"]);
        server.stop().await;
    });
}

/// Markup in a message or a nickname is shown as the characters typed; nothing runs, no element
/// is created. (The server's Content-Security-Policy would block the handler anyway; the check
/// that no `<img>` exists is what catches a page that renders with `innerHTML`.)
#[test]
fn html_in_a_message_is_shown_as_text_and_runs_nothing() {
    run(|browser| async move {
        let server = TestServer::start().await;
        let bob = browser.chat_page(&server.base(), "safe", "bob").await;
        let alice = browser.chat_page(&server.base(), "safe", "alice").await;

        let payload = "<img src=x onerror=\"window.pwned=1\"><b>bold?</b>";
        alice.send(payload).await;
        bob.wait_for_text(payload).await;

        // A nickname is user-supplied too.
        let evil_name = "<img src=x onerror=pwned=2>";
        let mut mallory = Peer::join(server.addr, "safe", evil_name).await;
        mallory.say("<script>window.pwned=3</script>").await;
        bob.wait_for_text("<script>window.pwned=3</script>").await;
        // Give an image error handler every chance to have fired.
        bob.send("after the payloads").await;
        bob.wait_for_text("after the payloads").await;

        let shown = bob.messages().await;
        assert_eq!(shown[0].text, payload);
        assert_eq!(shown[1].from, evil_name);
        assert!(bob.users().await.iter().any(|u| u == evil_name));
        let verdict = bob
            .eval(
                "return { pwned: window.pwned === undefined ? null : window.pwned, \
                          imgs: document.querySelectorAll('#log img, #users img').length, \
                          bolds: document.querySelectorAll('#log b').length, \
                          scripts: document.querySelectorAll('#log script').length };",
            )
            .await;
        assert_eq!(
            verdict,
            json!({ "pwned": null, "imgs": 0, "bolds": 0, "scripts": 0 })
        );
        mallory.close().await;
        server.stop().await;
    });
}

/// The page's connection drops while someone keeps talking: the page reconnects by itself with
/// `since=<last id>` and shows every message it missed, once each, in order.
#[test]
fn a_dropped_socket_reconnects_and_shows_every_missed_message_once() {
    run(|browser| async move {
        let server = TestServer::start().await;
        let page = browser.chat_page(&server.base(), "ops", "alice").await;
        let mut bob = Peer::join(server.addr, "ops", "bob").await;

        let before: Vec<String> = (1..=3).map(|i| format!("before {i}")).collect();
        for text in &before {
            bob.say(text).await;
        }
        page.wait_for_text("before 3").await;

        // Drop the socket and hold the reconnect off for 2 s, so the next messages are certainly
        // sent while the page is away.
        page.eval("window.wschatDebug.dropSocket(2000);").await;
        page.wait_until(
            "the page notices the drop",
            "document.getElementById('status').dataset.state === 'reconnecting'",
        )
        .await;
        let missed: Vec<String> = (1..=5).map(|i| format!("while away {i}")).collect();
        for text in &missed {
            bob.say(text).await;
        }
        bob.wait_echo("while away 5").await;
        assert_eq!(page.status().await, "reconnecting", "still away");

        page.wait_online("alice").await;
        page.wait_for_text("while away 5").await;
        let after: Vec<String> = (1..=3).map(|i| format!("after {i}")).collect();
        for text in &after {
            bob.say(text).await;
        }
        page.wait_for_text("after 3").await;

        let expected: Vec<String> = [before, missed, after].concat();
        assert_eq!(page.texts().await, expected, "every message once, in order");
        let ids: Vec<u64> = page.messages().await.iter().map(|m| m.id).collect();
        assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "ids: {ids:?}");
        let stats = page.stats().await;
        assert_eq!(stats["welcomes"], 2, "one reconnect: {stats}");
        assert_eq!(
            stats["replayed"], 5,
            "the missed ones came from the replay: {stats}"
        );
        // With `since=` the server sends only what was missed; without it the page would be sent
        // (and have to drop) the whole history again.
        assert_eq!(stats["duplicatesDropped"], 0, "{stats}");
        bob.close().await;
        server.stop().await;
    });
}

/// The server goes away and comes back on the same address: the page notices, keeps retrying with
/// backoff, reconnects by itself, says history may be missing, and chatting works again.
#[test]
fn restarting_the_server_leads_the_page_to_reconnect() {
    run(|browser| async move {
        let server = TestServer::start().await;
        let addr = server.addr;
        let page = browser.chat_page(&server.base(), "lobby", "alice").await;
        page.send("before the restart").await;
        page.wait_for_text("before the restart").await;

        server.stop().await;
        page.wait_until(
            "the page notices the server is gone",
            "document.getElementById('status').dataset.state === 'reconnecting'",
        )
        .await;

        let mut config = wschat::Config::for_tests();
        config.addr = addr;
        let server = TestServer::with_config(config).await;
        // The backoff may be a few seconds into its schedule by now: allow more than one step.
        page.wait_until_for(
            "the page reconnects",
            "document.getElementById('status').dataset.state === 'online'",
            WAIT * 2,
        )
        .await;
        // The new server numbers the room from 1 again: the page says history may be missing...
        page.wait_until(
            "a notice about missing history",
            "document.querySelectorAll('#log .notice.gap').length === 1",
        )
        .await;
        // ...and does not take new messages for old ones.
        page.send("after the restart").await;
        page.wait_for_text("after the restart").await;
        let shown = page.messages().await;
        assert_eq!(
            shown.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(),
            ["before the restart", "after the restart"]
        );
        assert_eq!(shown[1].id, 1, "the restarted server's first message");
        server.stop().await;
    });
}

/// The room is in the address: a link opens it, the form switches it (and the address follows),
/// Back returns to the previous room, and rooms do not leak into each other.
#[test]
fn the_room_is_in_the_address_and_can_be_switched() {
    run(|browser| async move {
        let server = TestServer::start().await;
        let mut bob = Peer::join(server.addr, "beta", "bob").await;
        bob.say("only in beta").await;
        bob.wait_echo("only in beta").await;

        // Someone stays in alpha: a room is dropped, history and all, when its last user leaves.
        let carol = Peer::join(server.addr, "alpha", "carol").await;
        let page = browser.chat_page(&server.base(), "alpha", "alice").await;
        page.send("only in alpha").await;
        page.wait_for_text("only in alpha").await;
        assert_eq!(
            page.eval("return document.getElementById('room-input').value;")
                .await,
            json!("alpha")
        );

        // Switch with the form, using the keyboard alone: select the room field, type, Enter.
        let room = page
            .client
            .find(fantoccini::Locator::Id("room-input"))
            .await
            .expect("the room field");
        room.clear().await.expect("clear the room field");
        let enter: char = fantoccini::key::Key::Enter.into();
        room.send_keys(&format!("beta{enter}"))
            .await
            .expect("type a room");
        page.wait_for_text("only in beta").await;
        page.wait_online("alice").await;
        assert_eq!(page.texts().await, ["only in beta"]);
        assert_eq!(
            page.eval("return location.hash;").await,
            json!("#beta"),
            "the address names the room"
        );
        assert_eq!(
            page.eval("return document.activeElement.id;").await,
            json!("message-input"),
            "after joining, typing goes to the message box"
        );

        // Back returns to alpha, whose history comes back from the server.
        page.client.back().await.expect("go back");
        page.wait_for_text("only in alpha").await;
        assert_eq!(page.texts().await, ["only in alpha"]);
        assert_eq!(page.eval("return location.hash;").await, json!("#alpha"));
        bob.close().await;
        carol.close().await;
        server.stop().await;
    });
}

/// The log follows new messages while the reader is at the bottom; once they scroll up to read,
/// new messages no longer move it, and a button offers to jump down.
#[test]
fn scrolling_follows_new_messages_unless_the_reader_scrolled_up() {
    run(|browser| async move {
        let server = TestServer::start().await;
        let page = browser.chat_page(&server.base(), "busy", "alice").await;
        let mut bob = Peer::join(server.addr, "busy", "bob").await;
        for i in 1..=40 {
            bob.say(&format!("line {i}")).await;
        }
        page.wait_for_text("line 40").await;
        let at_bottom = "(() => { const l = document.getElementById('log'); \
                         return l.scrollHeight - l.scrollTop - l.clientHeight < 2; })()";
        page.wait_until("the log follows to the bottom", at_bottom)
            .await;

        page.eval("document.getElementById('log').scrollTop = 0;")
            .await;
        bob.say("line 41").await;
        page.wait_for_text("line 41").await;
        assert_eq!(
            page.eval("return document.getElementById('log').scrollTop;")
                .await,
            json!(0),
            "the reader's place is kept"
        );
        assert_eq!(
            page.eval("return document.getElementById('jump').hidden;")
                .await,
            json!(false),
            "a button offers the new messages"
        );

        page.client
            .find(fantoccini::Locator::Id("jump"))
            .await
            .expect("the jump button")
            .click()
            .await
            .expect("click it");
        page.wait_until("back at the bottom", at_bottom).await;
        bob.close().await;
        server.stop().await;
    });
}

/// On a phone-sized screen nothing overflows sideways, even with a 300-letter word; with
/// `WSCHAT_SCREENSHOT` set, writes what a desktop and a phone show for the README.
#[test]
fn the_page_fits_a_phone_and_screenshots_are_saved() {
    run(|browser| async move {
        let server = TestServer::start().await;
        let base = server.base();
        let alice = browser.chat_page(&base, "lobby", "alice").await;
        let mut bob = Peer::join(server.addr, "lobby", "bob").await;
        let mut carol = Peer::join(server.addr, "lobby", "carol").await;
        let lines: [(&str, &str); 7] = [
            ("bob", "Morning! Did the deploy go out?"),
            ("alice", "Yes, 09:40. The new frame reader is live."),
            ("carol", "Nice. Memory per idle connection dropped a lot."),
            ("carol", "Graphs: https://example.invalid/dashboards/wschat/connections-per-core-and-memory-per-idle-socket"),
            ("bob", "<b>Is markup shown as text?</b> It is."),
            ("alice", "Lunch at 12:30?"),
            ("alice", "Usual place, long words like Donaudampfschifffahrtsgesellschaftskapitän wrap."),
        ];
        for (who, text) in lines {
            match who {
                "bob" => bob.say(text).await,
                "carol" => carol.say(text).await,
                _ => alice.send(text).await,
            }
            alice.wait_for_text(text).await;
        }
        let phone = browser.chat_page_sized(&base, "lobby", "dave", PHONE).await;
        phone.wait_for_text(lines[6].1).await;

        if let Some(path) = std::env::var_os("WSCHAT_SCREENSHOT").map(PathBuf::from) {
            // Someone typing, so the picture shows the hint too.
            carol.typing().await;
            alice
                .wait_until(
                    "the typing hint shows",
                    "document.getElementById('typing').classList.contains('visible')",
                )
                .await;
            // Let the hint finish fading in.
            tokio::time::sleep(Duration::from_millis(700)).await;
            alice.screenshot(&path).await;
            let stem = path.file_stem().unwrap_or_default().to_string_lossy();
            let phone_path = path.with_file_name(format!("{stem}-phone.png"));
            phone.screenshot(&phone_path).await;
            println!(
                "screenshots written to {} and {}",
                path.display(),
                phone_path.display()
            );
        }
        bob.say(&"a".repeat(300)).await;
        phone.wait_for_text(&"a".repeat(300)).await;
        let widths = phone
            .eval("return [document.documentElement.scrollWidth, window.innerWidth];")
            .await;
        assert!(
            widths[0].as_u64() <= widths[1].as_u64() && widths[1].as_u64() == Some(390),
            "no sideways scrolling on a phone: [scrollWidth, innerWidth] = {widths}"
        );

        bob.close().await;
        carol.close().await;
        server.stop().await;
    });
}

/// The page checks input against the limits of the server it talks to (`GET /limits`), not
/// against the defaults: a name longer than the default is fine where the server allows it, and
/// a message over this server's smaller text limit is stopped by the page with the right number.
#[test]
fn the_page_checks_input_against_the_servers_limits() {
    run(|browser| async move {
        let config = wschat::Config {
            max_name_len: 40,
            max_text_len: 10,
            ..wschat::Config::for_tests()
        };
        let server = TestServer::with_config(config).await;
        let long_name = "n".repeat(36); // over the default 32, within this server's 40
        let page = browser
            .chat_page(&server.base(), "limits", &long_name)
            .await;
        page.send("short").await;
        page.wait_for_text("short").await;
        page.send("far more than ten bytes").await;
        page.wait_until(
            "the page's own too-long hint",
            "document.getElementById('send-hint').textContent.includes('at most 10 bytes')",
        )
        .await;
        assert_eq!(page.texts().await, ["short"], "the long one was not sent");
    });
}
