//! A page that uses the official Socket.IO client in a real browser chats with the wschat page.
//!
//! The Socket.IO page (`tests/socketio/page.html`) is another app's: it is served from its own
//! origin by a few lines of HTTP here, with the client script from the npm package
//! (`tests/socketio/node_modules/socket.io-client/dist/`, no CDN), and connects to wschat across
//! origins, so wschat is started with that origin allowed (`--allowed-origin`).
//!
//! Needs Chromium (see `browser_chat.rs`) and `npm ci` in `tests/socketio/`; without them it says
//! `SKIPPED` and passes, unless `WSCHAT_REQUIRE_BROWSER=1` / `WSCHAT_REQUIRE_SOCKETIO=1` (CI).

mod common;
mod common_browser;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use common::TestServer;
use common_browser::{run, Page, DESKTOP};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use wschat::Config;

fn socketio_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/socketio")
}

/// Serves `page.html` at `/` and the client's `dist/` files by name, one request per connection,
/// on a loopback port, until the test ends.
async fn serve_other_app() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let request = String::from_utf8_lossy(&request);
                let path = request.split(' ').nth(1).unwrap_or("/");
                let path = path.split('?').next().unwrap_or("/");
                let dir = socketio_dir();
                let (file, kind) = match path {
                    "/" => (dir.join("page.html"), "text/html; charset=utf-8"),
                    name if !name[1..].contains(['/', '\\']) && name.ends_with(".js") => (
                        dir.join("node_modules/socket.io-client/dist")
                            .join(&name[1..]),
                        "text/javascript",
                    ),
                    _ => (PathBuf::new(), ""),
                };
                let response = match std::fs::read(&file) {
                    Ok(body) => {
                        let mut out = format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            body.len()
                        )
                        .into_bytes();
                        out.extend_from_slice(&body);
                        out
                    }
                    Err(_) => {
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                            .to_vec()
                    }
                };
                let _ = stream.write_all(&response).await;
            });
        }
    });
    addr
}

#[test]
fn a_socketio_page_and_the_wschat_page_chat_in_one_room() {
    if !socketio_dir()
        .join("node_modules/socket.io-client/dist/socket.io.min.js")
        .is_file()
    {
        if std::env::var("WSCHAT_REQUIRE_SOCKETIO").is_ok_and(|v| v == "1") {
            panic!("WSCHAT_REQUIRE_SOCKETIO=1 but tests/socketio/node_modules is missing (npm ci)");
        }
        eprintln!("SKIPPED: the Socket.IO client is not installed (cd tests/socketio && npm ci)");
        return;
    }
    run(|browser| async move {
        let other_app = serve_other_app().await;
        let config = Config {
            allowed_origins: vec![format!("http://{other_app}")],
            ..Config::for_tests()
        };
        let server = TestServer::with_config(config).await;
        let wschat_page = browser.chat_page(&server.base(), "flask", "native").await;

        let client = browser.session(DESKTOP).await;
        client
            .goto(&format!(
                "http://{other_app}/?server={}&room=flask&name=ported",
                server.base()
            ))
            .await
            .expect("open the Socket.IO page");
        let sio_page = Page { client };
        sio_page
            .wait_until("the Socket.IO page is welcomed", "window.state.welcome")
            .await;
        assert_eq!(
            sio_page.eval("return window.state.welcome.room;").await,
            json!("flask")
        );
        wschat_page
            .wait_until(
                "the Socket.IO user is in the page's Online list",
                "[...document.querySelectorAll('#users li')].some(li => li.textContent === 'ported')",
            )
            .await;

        sio_page
            .eval("window.say('hello from Socket.IO'); return 0;")
            .await;
        wschat_page.wait_for_text("hello from Socket.IO").await;
        sio_page
            .wait_until("the ack came back", "window.state.acks.length === 1")
            .await;

        wschat_page.send("hello from the wschat page").await;
        sio_page
            .wait_until(
                "the native message arrived",
                "window.state.messages.some(m => m.text === 'hello from the wschat page')",
            )
            .await;
        // One message, one id, on both wires.
        let ack_id = sio_page.eval("return window.state.acks[0].id;").await;
        let shown = wschat_page.messages().await;
        assert_eq!(shown[0].from, "ported");
        assert_eq!(json!(shown[0].id), ack_id);
        assert_eq!(
            sio_page.eval("return window.state.messages[1].from;").await,
            json!("native")
        );
    });
}
