//! A spinner on stderr for long steps (hidden when stderr is not a terminal).

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// Run `f` while a spinner shows `message` and the elapsed time.
pub fn with_spinner<T>(message: &str, f: impl FnOnce() -> T) -> T {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(message.to_string());
    bar.enable_steady_tick(Duration::from_millis(120));
    let out = f();
    bar.finish_and_clear();
    out
}
