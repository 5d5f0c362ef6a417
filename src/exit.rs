//! The exit codes of herd's programs (`herd`, `hub`, `leaf-agent`), one
//! set for all three.

/// The job was done: the trial passed every check, the leaf ended every
/// task, the hub stopped cleanly.
pub const EXIT_OK: u8 = 0;
/// It ran, and something failed: a trial's check, a leaf stopped early.
pub const EXIT_FAILED: u8 = 1;
/// It could not run: bad flags or an unusable environment (a used work
/// directory, a repository whose trunk forked, a hub or NATS unreachable
/// at start).
pub const EXIT_USAGE: u8 = 2;
