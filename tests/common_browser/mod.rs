//! Harness for the browser tests: real headless Chromium, driven over WebDriver. The server and
//! the plain WebSocket "other users" are the ones every integration test uses (`tests/common`).
//!
//! Each test calls [`run`] with an async body. `run` takes a process-wide lock (the tests share two
//! cores, and two Chromium instances per test are plenty), starts its own chromedriver on a free
//! loopback port, runs the body on a fresh tokio runtime, then closes every browser session and
//! kills the chromedriver it started, by PID, even when the body panicked.
//!
//! When Chromium or chromedriver is not installed the test prints `SKIPPED` and passes, unless
//! `WSCHAT_REQUIRE_BROWSER=1` (set by CI), which turns the absence into a failure.
//!
//! Waiting is always "poll a condition until it holds or a generous deadline passes": never a
//! fixed sleep followed by an assertion, which is either slow or flaky.
#![allow(dead_code)] // Each test binary uses a different subset.

use std::future::Future;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fantoccini::wd::Capabilities;
use fantoccini::{Client, ClientBuilder, Locator};
use futures_util::FutureExt;
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};

/// How long a wait polls before it gives up. Generous: CI machines are slow and shared, and a
/// passing wait returns as soon as its condition holds, so the bound costs nothing when green.
pub const WAIT: Duration = Duration::from_secs(15);

/// Interval between two polls of a condition.
const POLL: Duration = Duration::from_millis(50);

/// Serializes the browser tests of one test binary (see the module doc).
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Distinguishes the temporary profile directories of one process.
static PROFILE_SEQ: AtomicUsize = AtomicUsize::new(0);

// ------------------------------------------------------------------------------------------------
// Finding and starting the browser.

/// Where Chromium and chromedriver are, if both are installed.
struct Tools {
    chromium: PathBuf,
    chromedriver: PathBuf,
}

/// Looks for the binaries: `WSCHAT_CHROMIUM` / `WSCHAT_CHROMEDRIVER` if set, else the usual names
/// on `PATH` (Debian's packages put them in /usr/bin).
fn find_tools() -> Option<Tools> {
    let from_env = |var: &str| std::env::var_os(var).map(PathBuf::from);
    let chromium = from_env("WSCHAT_CHROMIUM").or_else(|| {
        ["chromium", "chromium-browser", "google-chrome"]
            .iter()
            .find_map(|name| on_path(name))
    })?;
    let chromedriver = from_env("WSCHAT_CHROMEDRIVER").or_else(|| on_path("chromedriver"))?;
    (chromium.is_file() && chromedriver.is_file()).then_some(Tools {
        chromium,
        chromedriver,
    })
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// A chromedriver this process started; dropping it kills that process (and the Chromium
/// instances it launched, which share its process group).
struct DriverProcess {
    child: Child,
    url: String,
}

impl DriverProcess {
    fn start(tools: &Tools) -> DriverProcess {
        let port = free_port();
        let mut command = Command::new(&tools.chromedriver);
        command
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // Its own process group, so the cleanup can reach the browsers it spawned.
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", tools.chromedriver.display()));
        let driver = DriverProcess {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        // chromedriver listens within a few hundred milliseconds; poll its port.
        let deadline = Instant::now() + WAIT;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen on {addr} within {WAIT:?}"
            );
            std::thread::sleep(POLL);
        }
        driver
    }
}

impl Drop for DriverProcess {
    fn drop(&mut self) {
        let pid = self.child.id();
        // The process group we created for chromedriver: any Chromium left behind by a failed
        // test dies with it. Signalled by its id, never by name.
        #[cfg(unix)]
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback port: bind port 0, read it, release it. chromedriver takes it a moment later;
/// the window for another process to grab it in between is negligible on a test machine.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

// ------------------------------------------------------------------------------------------------
// Running a test.

/// Runs one browser test body (see the module doc). Returns without running it when the browser
/// is missing and not required.
pub fn run<F, Fut>(body: F)
where
    F: FnOnce(Browser) -> Fut,
    Fut: Future<Output = ()>,
{
    // A panicking test poisons the lock; the next test may still run.
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());

    let Some(tools) = find_tools() else {
        if std::env::var("WSCHAT_REQUIRE_BROWSER").is_ok_and(|v| v == "1") {
            panic!(
                "WSCHAT_REQUIRE_BROWSER=1 but chromium/chromedriver is not installed \
                 (apt-get install -y chromium chromium-driver)"
            );
        }
        // Straight to stderr, once per test binary: `println!` in a passing test is captured by
        // the test harness and never shown, and the point is that nobody misses the skip.
        static SAID: AtomicBool = AtomicBool::new(false);
        if !SAID.swap(true, Ordering::Relaxed) {
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: chromium/chromedriver not installed (browser tests in {})",
                module_path!().split("::").next().unwrap_or("this file")
            );
        }
        return;
    };

    let driver = DriverProcess::start(&tools);
    let browser = Browser {
        inner: Arc::new(BrowserInner {
            webdriver_url: driver.url.clone(),
            chromium: tools.chromium,
            sessions: Mutex::new(Vec::new()),
            profiles: Mutex::new(Vec::new()),
        }),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let (outcome, problems) = runtime.block_on(async {
        let outcome = AssertUnwindSafe(body(browser.clone())).catch_unwind().await;
        (outcome, browser.close_all().await)
    });
    drop(runtime);
    browser.remove_profiles();
    drop(driver);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    // Checked for every test: an inline style or script the Content-Security-Policy blocked, or
    // an exception in app.js, fails the test even if what it looked at happened to work.
    assert!(
        problems.is_empty(),
        "the page logged problems in the browser console:\n  {}",
        problems.join("\n  ")
    );
}

/// Chromium's console entries for one session that show a broken page: Content-Security-Policy
/// violations (`security`) and uncaught exceptions or errors logged by the page (`javascript`,
/// and `console-api` at SEVERE). Network errors are not among them: a refused WebSocket while
/// the server restarts is expected.
async fn console_problems(client: &Client) -> Vec<String> {
    let Ok(Ok(entries)) =
        tokio::time::timeout(Duration::from_secs(10), client.issue_cmd(BrowserLog)).await
    else {
        return vec!["could not read the browser console".to_string()];
    };
    entries
        .as_array()
        .into_iter()
        .flatten()
        .filter(|entry| {
            let source = entry["source"].as_str().unwrap_or_default();
            let severe = entry["level"] == "SEVERE";
            matches!(source, "security" | "javascript") || (source == "console-api" && severe)
        })
        .map(|entry| entry["message"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// chromedriver's (non-W3C) command that returns and clears the browser console's entries:
/// `POST /session/{id}/se/log` with `{"type":"browser"}`; each entry has `level`, `source`,
/// `message` and `timestamp`.
#[derive(Debug)]
struct BrowserLog;

impl fantoccini::wd::WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({ "type": "browser" }).to_string()),
        )
    }
}

/// Opens browser sessions (each a separate Chromium with a fresh profile, so two pages are two
/// independent users) and cleans them up when the test ends.
#[derive(Clone)]
pub struct Browser {
    inner: Arc<BrowserInner>,
}

struct BrowserInner {
    webdriver_url: String,
    chromium: PathBuf,
    sessions: Mutex<Vec<Client>>,
    profiles: Mutex<Vec<PathBuf>>,
}

/// Window sizes the tests use: a laptop, and a phone in portrait.
pub const DESKTOP: (u32, u32) = (1200, 760);
pub const PHONE: (u32, u32) = (390, 760);

impl Browser {
    /// A new headless Chromium session with the given window size, on a blank page.
    pub async fn session(&self, (width, height): (u32, u32)) -> Client {
        let profile = std::env::temp_dir().join(format!(
            "wschat-browser-{}-{}",
            std::process::id(),
            PROFILE_SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&profile);
        std::fs::create_dir_all(&profile).expect("create a Chromium profile directory");
        self.inner.profiles.lock().unwrap().push(profile.clone());

        let args = vec![
            "--headless".to_string(),
            // Root in a container has no user namespace for Chromium's sandbox.
            "--no-sandbox".to_string(),
            "--disable-gpu".to_string(),
            // /dev/shm is small in containers; Chromium falls back to /tmp.
            "--disable-dev-shm-usage".to_string(),
            // Only loopback traffic: no update checks, sync, metrics or QUIC probes.
            "--disable-background-networking".to_string(),
            "--disable-component-update".to_string(),
            "--disable-sync".to_string(),
            "--disable-quic".to_string(),
            "--no-first-run".to_string(),
            "--no-default-browser-check".to_string(),
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", profile.display()),
        ];
        let mut options = json!({ "binary": self.inner.chromium, "args": args });
        if width < 500 {
            // Headless windows are at least 500 px wide; a phone needs device emulation (which
            // also gives it a touch screen and a phone's viewport rules).
            options["mobileEmulation"] = json!({
                "deviceMetrics": { "width": width, "height": height, "pixelRatio": 2, "touch": true }
            });
        }
        let mut caps = Capabilities::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert("goog:chromeOptions".into(), options);
        // Keep the browser console, so every test can check the page logged no error.
        caps.insert("goog:loggingPrefs".into(), json!({ "browser": "ALL" }));
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&self.inner.webdriver_url)
            .await
            .unwrap_or_else(|e| panic!("cannot open a Chromium session: {e}"));
        self.inner.sessions.lock().unwrap().push(client.clone());
        client
    }

    /// A page of the chat at `base` (e.g. `http://127.0.0.1:PORT`) in `room`, as `name`.
    ///
    /// The nickname is placed in the page's localStorage before the chat loads (on a same-origin
    /// asset), so the page's very first connection already uses it: no `guest-N` comes and goes.
    pub async fn chat_page(&self, base: &str, room: &str, name: &str) -> Page {
        self.chat_page_sized(base, room, name, DESKTOP).await
    }

    pub async fn chat_page_sized(
        &self,
        base: &str,
        room: &str,
        name: &str,
        size: (u32, u32),
    ) -> Page {
        let client = self.session(size).await;
        client
            .goto(&format!("{base}/favicon.svg"))
            .await
            .expect("open the favicon");
        client
            .execute(
                "localStorage.setItem('wschat.name', arguments[0]);",
                vec![json!(name)],
            )
            .await
            .expect("set the nickname");
        client
            .goto(&format!("{base}/#{room}"))
            .await
            .expect("open the chat page");
        let page = Page { client };
        page.wait_online(name).await;
        page
    }

    /// Closes every session this test opened (Chromium exits with its session), and returns
    /// what the pages logged that a working page never does (see [`console_problems`]).
    async fn close_all(&self) -> Vec<String> {
        let sessions: Vec<Client> = std::mem::take(&mut *self.inner.sessions.lock().unwrap());
        let mut problems = Vec::new();
        for client in sessions {
            problems.extend(console_problems(&client).await);
            let _ = tokio::time::timeout(Duration::from_secs(10), client.close()).await;
        }
        problems
    }

    fn remove_profiles(&self) {
        for dir in self.inner.profiles.lock().unwrap().drain(..) {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Talking to a page.

/// One message as the page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    pub id: u64,
    pub from: String,
    pub text: String,
}

/// A chat page in one browser session.
pub struct Page {
    pub client: Client,
}

impl Page {
    /// Runs `script` (a function body; use `return`) in the page and returns its result.
    pub async fn eval(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Polls the JavaScript expression `condition` until it is truthy; panics after [`WAIT`] with
    /// `what` and the page's log, which is usually what explains the failure.
    pub async fn wait_until(&self, what: &str, condition: &str) {
        self.wait_until_for(what, condition, WAIT).await
    }

    pub async fn wait_until_for(&self, what: &str, condition: &str, limit: Duration) {
        let script = format!("return !!({condition});");
        let deadline = Instant::now() + limit;
        loop {
            if self.eval(&script).await == Value::Bool(true) {
                return;
            }
            if Instant::now() >= deadline {
                let log = self.log_text().await;
                let status = self.status().await;
                panic!(
                    "timed out after {limit:?} waiting until {what}\n  condition: {condition}\n  \
                     status: {status}\n  log:\n{log}"
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until the page says it is connected as `name`.
    pub async fn wait_online(&self, name: &str) {
        let condition = format!(
            "document.getElementById('status').dataset.state === 'online' \
             && window.wschatDebug.stats().you === {}",
            json!(name)
        );
        self.wait_until(&format!("the page is online as {name}"), &condition)
            .await;
    }

    /// The connection state: `connecting`, `online` or `reconnecting`.
    pub async fn status(&self) -> String {
        let v = self
            .eval("return document.getElementById('status').dataset.state;")
            .await;
        v.as_str().unwrap_or_default().to_string()
    }

    /// Types `text` into the message box and presses Enter, as a person would.
    pub async fn send(&self, text: &str) {
        let input = self
            .client
            .find(Locator::Id("message-input"))
            .await
            .expect("the message box");
        let enter: char = fantoccini::key::Key::Enter.into();
        input
            .send_keys(&format!("{text}{enter}"))
            .await
            .expect("type a message");
    }

    /// Every message in the log, in order.
    pub async fn messages(&self) -> Vec<Shown> {
        let v = self
            .eval(
                "return [...document.querySelectorAll('#log li.msg')].map(li => ({ \
                   id: Number(li.dataset.id), \
                   from: li.querySelector('.from').textContent, \
                   text: li.querySelector('.text').textContent }));",
            )
            .await;
        v.as_array()
            .expect("an array of messages")
            .iter()
            .map(|m| Shown {
                id: m["id"].as_u64().unwrap_or_default(),
                from: m["from"].as_str().unwrap_or_default().to_string(),
                text: m["text"].as_str().unwrap_or_default().to_string(),
            })
            .collect()
    }

    /// The texts of the messages in the log, in order.
    pub async fn texts(&self) -> Vec<String> {
        self.messages().await.into_iter().map(|m| m.text).collect()
    }

    /// Waits until a message with exactly this text is in the log.
    pub async fn wait_for_text(&self, text: &str) {
        let condition = format!(
            "[...document.querySelectorAll('#log li.msg .text')].some(e => e.textContent === {})",
            json!(text)
        );
        self.wait_until(&format!("the log shows {text:?}"), &condition)
            .await;
    }

    /// The names in the "Online" list.
    pub async fn users(&self) -> Vec<String> {
        let v = self
            .eval(
                "return [...document.querySelectorAll('#users li:not(.more)')]\
                 .map(li => li.textContent);",
            )
            .await;
        serde_json::from_value(v).expect("a list of names")
    }

    /// The page's counters (see `wschatDebug.stats` in static/app.js).
    pub async fn stats(&self) -> Value {
        self.eval("return window.wschatDebug.stats();").await
    }

    /// Every line of the log as text, for failure messages.
    pub async fn log_text(&self) -> String {
        let v = self
            .eval(
                "return [...document.querySelectorAll('#log li')]\
                 .map(li => '    ' + li.textContent).join('\\n');",
            )
            .await;
        v.as_str().unwrap_or_default().to_string()
    }

    /// A PNG of the window.
    pub async fn screenshot(&self, path: &Path) {
        let png = self.client.screenshot().await.expect("take a screenshot");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("create the screenshot's directory");
        }
        std::fs::write(path, png).expect("write the screenshot");
    }
}
