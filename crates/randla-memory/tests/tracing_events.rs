//! With the `tracing` feature, every finished `MemoryMonitor` scope is a `tracing` event carrying
//! its name and figures, seen by whatever subscriber the program installed.
#![cfg(feature = "tracing")]

use std::sync::{Arc, Mutex};

use randla_memory::MemoryMonitor;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// An event: its target and its fields as `name=value` strings.
type Captured = (String, Vec<String>);

/// Every event seen.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<Captured>>>);

struct Fields(Vec<String>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push(format!("{}={value:?}", field.name()));
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut f = Fields(Vec::new());
        event.record(&mut f);
        self.0
            .lock()
            .unwrap()
            .push((event.metadata().target().to_string(), f.0));
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[test]
fn a_finished_scope_is_a_tracing_event() {
    let capture = Capture::default();
    tracing::subscriber::with_default(capture.clone(), || {
        let mon = MemoryMonitor::new("forward pass");
        let v = vec![1u8; 1 << 20];
        std::hint::black_box(&v);
        let r = mon.report();
        assert_eq!(r.name, "forward pass");
        // Dropped without report(): also an event.
        drop(MemoryMonitor::new("second scope"));
    });
    let events = capture.0.lock().unwrap();
    assert_eq!(events.len(), 2, "{events:?}");
    let (target, fields) = &events[0];
    assert_eq!(target, "randla_memory");
    assert!(
        fields.iter().any(|f| f == "scope=forward pass"),
        "{fields:?}"
    );
    assert!(
        fields.iter().any(|f| f.starts_with("wall_s=")),
        "{fields:?}"
    );
    assert!(
        fields
            .iter()
            .any(|f| f.starts_with("message=forward pass:")),
        "{fields:?}"
    );
    assert!(
        events[1].1.iter().any(|f| f == "scope=second scope"),
        "{:?}",
        events[1]
    );
}
