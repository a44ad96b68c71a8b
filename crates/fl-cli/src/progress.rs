//! Progress bars for long work (rounds of a run, cells of a sweep), hidden when output is not
//! a terminal.

use indicatif::{ProgressBar, ProgressStyle};

/// A bar over `len` rounds showing the latest accuracy and the ETA.
pub fn rounds_bar(len: u64, what: &str) -> ProgressBar {
    counter_bar(len, what, "round")
}

/// A bar over `len` items called `unit` ("round", "cell") with a message and the ETA.
pub fn counter_bar(len: u64, what: &str, unit: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{{prefix}} [{{bar:30}}] {unit} {{pos}}/{{len}} {{msg}} ({{elapsed}} elapsed, ETA {{eta}})"
        ))
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_prefix(what.to_string());
    bar
}
