//! Waiting on a logged event: when the event a test waits for happens inside a call it cannot look into
//! (the device's client got the hub's 202 in the middle of a renewal), the test waits for the `tracing`
//! event the code logs at that moment.
//!
//! [`watch`] gives a [`Dispatch`] to run the code under (`WithSubscriber::with_subscriber` on its future)
//! and a [`Logged`] that waits, with a deadline, until an event whose message contains the text came.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tracing::field::{Field, Visit};
use tracing::{Dispatch, Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// Whether an event with the watched text was logged.
#[derive(Clone)]
pub struct Logged {
    text: &'static str,
    seen: Arc<AtomicBool>,
}

/// A dispatcher that notes events whose message contains `text`, and the handle that waits for one.
pub fn watch(text: &'static str) -> (Dispatch, Logged) {
    let logged = Logged {
        text,
        seen: Arc::new(AtomicBool::new(false)),
    };
    let layer = Watcher(logged.clone());
    (Dispatch::new(tracing_subscriber::registry().with(layer)), logged)
}

impl Logged {
    /// Whether the event came.
    pub fn seen(&self) -> bool {
        self.seen.load(Ordering::SeqCst)
    }

    /// Until the event came; panics after `limit` (blocking: from async code, in `spawn_blocking`).
    pub fn wait(&self, limit: Duration) {
        crate::wait::until_true(&format!("a log event saying {:?}", self.text), limit, || self.seen());
    }
}

struct Watcher(Logged);

/// The message of an event.
struct Message<'a>(&'a mut String);

impl Visit for Message<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            *self.0 = format!("{value:?}");
        }
    }
}

impl<S: Subscriber> Layer<S> for Watcher {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut message = String::new();
        event.record(&mut Message(&mut message));
        if message.contains(self.0.text) {
            self.0.seen.store(true, Ordering::SeqCst);
        }
    }
}
