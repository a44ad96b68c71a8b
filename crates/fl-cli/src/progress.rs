//! Progress bars for long work (rounds of a run), hidden when output is not a terminal.

use indicatif::{ProgressBar, ProgressStyle};

/// A bar over `len` rounds showing the latest accuracy and the ETA.
pub fn rounds_bar(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix} [{bar:30}] round {pos}/{len} {msg} ({elapsed} elapsed, ETA {eta})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_prefix(what.to_string());
    bar
}
