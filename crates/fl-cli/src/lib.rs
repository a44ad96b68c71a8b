//! The `fl` command's library: config files, run folders, summaries, plots, benchmarks, sweeps.
//!
//! The binary (`src/main.rs`) only parses arguments and calls these functions; another
//! program can call them the same way.

pub mod alloc;
pub mod attack;
pub mod backdoor;
pub mod bench;
pub mod config;
pub mod grid;
pub mod mia;
pub mod mia_report;
pub mod mia_table;
pub mod model_poison;
pub mod plot;
pub mod progress;
pub mod run_dir;
pub mod runner;
pub mod summary;
pub mod sweep;
pub mod train;
