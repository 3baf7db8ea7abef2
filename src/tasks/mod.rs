//! `docs/TASKS.md`, the repository's task table: lossless editing, typed rows, and the protocol's
//! rules (consistency, next task, deadlock, variance).

mod lint;
mod model;
mod plan;
mod table;
mod variance;

pub use lint::{fix_blocks, lint};
pub use model::{
    Diagnostic, IssueRef, Status, Task, Tokens, is_valid_id, parse_id_list, parse_timestamp,
    read_tasks, validate_cell,
};
pub use plan::{Blocker, NextTasks, Waiting, plan};
pub use table::{TableError, TaskTable};
pub use variance::{Level, Variance, learning_entry, level, ratio, variances};
