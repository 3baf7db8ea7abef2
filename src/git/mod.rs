//! The one git layer: reading objects, trees, the index and ranges (`read`), and the bot's
//! mirror of a repository's trunk that it commits the task table to (`mirror`).

pub mod mirror;
pub mod read;

pub use mirror::{CommitError, Identity, Learning, Mirror, RowChange};
