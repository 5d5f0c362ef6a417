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

/// How a program ends without doing its job: its exit code and the one
/// line that says why, printed once, by [`finish`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The exit code.
    pub code: u8,
    /// Why, one line.
    pub why: String,
    /// The program (or subcommand) the line names, when not the binary's.
    who: Option<&'static str>,
}

impl Failure {
    /// Bad flags or an unusable environment ([`EXIT_USAGE`]).
    pub fn usage(why: impl Into<String>) -> Failure {
        Failure {
            code: EXIT_USAGE,
            why: why.into(),
            who: None,
        }
    }

    /// It ran, and something failed ([`EXIT_FAILED`]).
    pub fn failed(why: impl Into<String>) -> Failure {
        Failure {
            code: EXIT_FAILED,
            why: why.into(),
            who: None,
        }
    }

    /// Names `who` (a subcommand: "herd compare") in the line.
    pub fn by(mut self, who: &'static str) -> Failure {
        self.who.get_or_insert(who);
        self
    }
}

/// Ends `program`: an exit code as it is, or a failure's line printed once
/// on stderr (`program: why`) and its code.
pub fn finish(program: &str, result: Result<u8, Failure>) -> std::process::ExitCode {
    match result {
        Ok(code) => std::process::ExitCode::from(code),
        Err(f) => {
            crate::say!("{}: {}", f.who.unwrap_or(program), f.why);
            std::process::ExitCode::from(f.code)
        }
    }
}
