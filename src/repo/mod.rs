//! Fossil-format repositories written and read with rusqlite.

pub mod encode;
