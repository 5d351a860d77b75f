//! Resource ids that sort by creation time, even within one millisecond.

use std::sync::Mutex;

use ulid::{Generator, Ulid};

static GENERATOR: Mutex<Generator> = Mutex::new(Generator::new());

/// A ULID strictly greater than every ULID this process generated before. Within one
/// millisecond the generator increments the random part; if that ever overflows, a fresh
/// random ULID still identifies the resource uniquely, only its order is lost.
pub(crate) fn next_ulid() -> Ulid {
    let mut generator = GENERATOR
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    generator.generate().unwrap_or_else(|_| Ulid::generate())
}
