//! Every `--flag` the documentation names exists: the server's flags from its own clap
//! definition (and `wschat token`'s from its own), the swarm's from its argument struct, and a short list of other tools' flags the
//! docs use in commands (cargo, criterion, the fanout example). A renamed or removed flag that a
//! doc still mentions fails here, not in a reader's terminal.

use std::collections::BTreeSet;

use clap::CommandFactory;
use wschat::Config;

/// Flags of the other commands the docs show (`cargo`, criterion's harness, the swarm's example
/// server, `scripts/`, `loadtest/idle_deflate.py`), which are not the server's or the swarm's.
const OTHER_TOOLS: &[&str] = &[
    "--workspace",
    "--release",
    "--bench",
    "--test",
    "--lib",
    "--examples",
    "--all-targets",
    "--no-run",
    "--help",
    "--check",
    "--full",
    "--quick",
    "--measurement-time",
    "--profile-time",
    "--batch-us",
    "--read-buffer",
    // redis-server, in "Running more than one server".
    "--port",
    "--save",
    "--appendonly",
    // loadtest/idle_deflate.py, the idle-memory measurement with a deflate-capable client.
    "--rooms-per-client",
    "--no-deflate",
];

/// The files whose flags are checked (and every `docs/learn/*.md`).
const DOCS: &[&str] = &[
    "README.md",
    "benches/README.md",
    "loadtest/README.md",
    "src/config.rs",
];

/// `--name` tokens in `text`, with their line numbers.
fn flags_in(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let bytes = line.as_bytes();
        let mut i = 0;
        while let Some(at) = line[i..].find("--") {
            let start = i + at;
            let before = start.checked_sub(1).map(|b| bytes[b]);
            let mut end = start + 2;
            while end < bytes.len()
                && (bytes[end].is_ascii_lowercase()
                    || bytes[end].is_ascii_digit()
                    || bytes[end] == b'-')
            {
                end += 1;
            }
            let name = line[start..end].trim_end_matches('-');
            // A flag starts a word and has a letter after the dashes (not `---`, not `a--b`).
            let starts_word = before.is_none_or_space();
            if starts_word && name.len() > 2 && bytes[start + 2].is_ascii_lowercase() {
                found.push((n + 1, name.to_owned()));
            }
            i = end.max(start + 2);
        }
    }
    found
}

trait SpaceOrNone {
    fn is_none_or_space(&self) -> bool;
}

impl SpaceOrNone for Option<u8> {
    fn is_none_or_space(&self) -> bool {
        match self {
            None => true,
            Some(b) => !(b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_'),
        }
    }
}

/// The swarm's long flags: each `pub field` of its argument struct, as clap names it.
fn swarm_flags(root: &str) -> BTreeSet<String> {
    let cli = std::fs::read_to_string(format!("{root}/loadtest/src/cli.rs")).expect("cli.rs");
    let mut flags = BTreeSet::new();
    let mut pending_long = false;
    for line in cli.lines() {
        let line = line.trim();
        if line.starts_with("#[arg(") && line.contains("long") {
            pending_long = true;
            if let Some(rest) = line.split("long = \"").nth(1) {
                flags.insert(format!("--{}", rest.split('"').next().unwrap_or_default()));
                pending_long = false;
            }
        } else if pending_long && line.starts_with("pub ") {
            let field = line["pub ".len()..].split(':').next().unwrap_or_default();
            flags.insert(format!("--{}", field.replace('_', "-")));
            pending_long = false;
        }
    }
    flags
}

#[test]
fn every_flag_the_docs_name_exists() {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut known: BTreeSet<String> = Config::command()
        .get_arguments()
        .filter_map(|arg| arg.get_long().map(|long| format!("--{long}")))
        .collect();
    // `wschat token`'s own flags (`wschat::auth::mint`).
    known.extend(
        wschat::auth::mint::TokenArgs::command()
            .get_arguments()
            .filter_map(|arg| arg.get_long().map(|long| format!("--{long}"))),
    );
    let swarm = swarm_flags(root);
    assert!(swarm.contains("--clients"), "the swarm's flags were found");
    known.extend(swarm);
    known.extend(OTHER_TOOLS.iter().map(|f| f.to_string()));
    let mut unknown = Vec::new();
    // The learner's chapters, whichever there are.
    let mut docs: Vec<String> = DOCS.iter().map(|d| d.to_string()).collect();
    let mut chapters: Vec<String> = std::fs::read_dir(format!("{root}/docs/learn"))
        .expect("docs/learn")
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".md"))
        .map(|name| format!("docs/learn/{name}"))
        .collect();
    assert!(!chapters.is_empty(), "the chapters were found");
    chapters.sort();
    docs.extend(chapters);
    for doc in &docs {
        let text = std::fs::read_to_string(format!("{root}/{doc}")).expect(doc);
        for (line, flag) in flags_in(&text) {
            if !known.contains(&flag) {
                unknown.push(format!("{doc}:{line}: {flag}"));
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "flags no command has:\n{}",
        unknown.join("\n")
    );
}

#[test]
fn the_scanner_finds_flags_and_only_flags() {
    let found: Vec<String> =
        flags_in("run `wschat --echo --max-rooms 5`; a--b, ---, --, -x, (--addr)")
            .into_iter()
            .map(|(_, f)| f)
            .collect();
    assert_eq!(found, ["--echo", "--max-rooms", "--addr"]);
}
