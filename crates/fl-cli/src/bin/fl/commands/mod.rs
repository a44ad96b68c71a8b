//! One file per subcommand: its arguments and the call into the `fl_cli` library.

pub mod attack;
pub mod bench;
pub mod cluster;
pub mod demo;
pub mod experiment;
pub mod grid;
pub mod run;
pub mod sweep;
pub mod train;
