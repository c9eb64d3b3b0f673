//! Containing panics of third-party parsers.
//!
//! Fuzzing found inputs on which the RIFF reader of `symphonia` and the pickle reader of
//! `candle` panic (an index out of bounds) instead of returning an error. A damaged file must be
//! a clear error, never a crash, so those parsers run inside [`contain`]: a panic becomes an
//! error message, and its default report on stderr is silenced for the guarded call only (the
//! previous panic hook still reports every other panic).

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

/// Run `f`; a panic inside it becomes `Err` with the panic's message.
pub(crate) fn contain<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !QUIET.with(Cell::get) {
                previous(info);
            }
        }));
    });
    let was = QUIET.with(|q| q.replace(true));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    QUIET.with(|q| q.set(was));
    result.map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown failure".into())
    })
}
