//! Writing to stderr without panicking. `eprintln!` panics when the write
//! fails, and a child's stderr is a log file, which fails when its disk is
//! full: a leaf-agent reporting why it stops would then die of a panic
//! (exit status 101) instead of exiting with its code. [`say!`](crate::say)
//! writes the same line and drops a failed write: stdout's JSON lines and
//! the exit code still tell herd what happened.

use std::io::Write;

/// Writes `args` to stderr, ignoring a failed write.
pub fn write(args: std::fmt::Arguments<'_>) {
    let _ = std::io::stderr().lock().write_fmt(args);
}

/// `eprintln!` that never panics: a failed write to stderr is dropped.
#[macro_export]
macro_rules! say {
    () => {
        $crate::stderr::write(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::stderr::write(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `eprint!` that never panics.
#[macro_export]
macro_rules! say_partial {
    ($($arg:tt)*) => {
        $crate::stderr::write(format_args!($($arg)*))
    };
}

#[cfg(test)]
mod tests {
    #[test]
    fn saying_to_a_closed_or_full_stderr_does_not_panic() {
        // The macro expands to a write whose error is dropped; here it
        // only has to compile and run.
        crate::say!("{} {}", "one", 2);
        crate::say!();
        crate::say_partial!("x");
    }
}
