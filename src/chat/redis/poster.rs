//! The poster: the one task that sends this process's posts to Redis, in the order they were
//! made, as many as are waiting in one pipeline.
//!
//! Under load, posts queue while the previous round trip is in flight; taking all of them (up to
//! [`MOST_PER_PIPELINE`]) and writing them in one pipeline costs one round trip and one write for
//! the lot instead of one each, so the poster keeps up with a rate that one-at-a-time could not.
//! Order is kept: one connection, commands in queue order, and Redis runs them in the order they
//! arrive. At low rates a pipeline holds one post, as before.
//!
//! Each post succeeds or fails on its own (`ignore_errors`): a post Redis refuses is answered to
//! its sender alone, and the others in its pipeline are delivered. Scripts are sent as `EVALSHA`;
//! a Redis that does not know the script (restarted without its data) refuses each of them with
//! `NOSCRIPT` without running it, so the poster loads the script and sends those posts again, in
//! their order.
//!
//! Rejected: one `MULTI` transaction per pipeline (one refused post would cost the others their
//! delivery, and atomicity across posts buys nothing: each post's script is atomic already); a
//! pipeline per room (a sender's order across rooms does not matter, but one pipeline already
//! costs one round trip whatever rooms it touches).

use std::sync::Weak;
use std::time::Instant;

use redis::{Cmd, ErrorKind, RedisResult, ServerErrorKind, Value};
use tokio::sync::mpsc;

use super::{channel, key, Post, Posted, RedisEngine};

/// Most posts in one pipeline: bounds the request one pipeline writes (posts are a few hundred
/// bytes, so about 100 KiB) and how long the one after it waits.
const MOST_PER_PIPELINE: usize = 256;

/// Runs every queued post, pipeline by pipeline, until the engine is gone.
pub(super) async fn run(engine: Weak<RedisEngine>, mut posts: mpsc::Receiver<Post>) {
    let mut batch = Vec::with_capacity(MOST_PER_PIPELINE);
    while posts.recv_many(&mut batch, MOST_PER_PIPELINE).await > 0 {
        let Some(engine) = engine.upgrade() else {
            return;
        };
        engine.run_batch(&batch).await;
        batch.clear();
    }
}

impl RedisEngine {
    /// Sends `batch` in one pipeline; posts refused for want of the script are sent again once
    /// it is loaded; every post that still fails is answered to its sender.
    async fn run_batch(&self, batch: &[Post]) {
        let not_run = self.send(batch.iter()).await;
        if not_run.is_empty() {
            return;
        }
        if let Err(error) = self.post_script.load_async(&mut self.conn.clone()).await {
            self.give_up(not_run, &error.to_string());
            return;
        }
        let still = self.send(not_run.iter().copied()).await;
        self.give_up(still, "script not loaded");
    }

    /// One pipeline of `posts`. Returns those Redis did not run for want of the script; every
    /// other failure is answered here.
    async fn send<'a>(&self, posts: impl Iterator<Item = &'a Post> + Clone) -> Vec<&'a Post> {
        let started = Instant::now();
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        let mut messages = 0;
        for post in posts.clone() {
            messages += usize::from(matches!(post.what, Posted::Message { .. }));
            pipe.add_command(self.command(post));
        }
        let results: RedisResult<Vec<RedisResult<Value>>> =
            pipe.query_async(&mut self.conn.clone()).await;
        let results = match results {
            Ok(results) => results,
            Err(error) => {
                self.give_up(posts.collect(), &error.to_string());
                return Vec::new();
            }
        };
        let round_trip = started.elapsed().as_secs_f64();
        let kind = if messages > 0 {
            &self.metrics.post
        } else {
            &self.metrics.publish
        };
        kind.observe(round_trip);
        let mut not_run = Vec::new();
        for (post, result) in posts.zip(results) {
            match result {
                // A message's script answers its id: its sender may be waiting for it (an ack).
                Ok(Value::Int(id)) => self.posted(post, id as u64),
                Ok(_) => {}
                Err(error) if error.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                    not_run.push(post)
                }
                Err(error) => self.give_up(vec![post], &error.to_string()),
            }
        }
        not_run
    }

    /// The command that makes `post`: the post script for a message, a `PUBLISH` for a relay.
    fn command(&self, post: &Post) -> Cmd {
        match &post.what {
            Posted::Message {
                before_id,
                after_id,
                ..
            } => {
                let mut cmd = redis::cmd("EVALSHA");
                cmd.arg(self.post_script.get_hash())
                    .arg(2)
                    .arg(key(&post.room, "id"))
                    .arg(key(&post.room, "history"))
                    .arg(before_id)
                    .arg(after_id)
                    .arg(self.history)
                    .arg(channel(&post.room));
                cmd
            }
            Posted::Relay(payload) => {
                let mut cmd = redis::cmd("PUBLISH");
                cmd.arg(channel(&post.room)).arg(&payload[..]);
                cmd
            }
        }
    }

    /// `posts` reached nobody: logged, counted, and each message's sender told.
    fn give_up(&self, posts: Vec<&Post>, error: &str) {
        for post in posts {
            tracing::error!(room = %post.room, %error, "redis post failed: not delivered");
            self.metrics.post_failures.inc();
            self.failed(post);
        }
    }
}
