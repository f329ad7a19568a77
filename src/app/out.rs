//! The commands' stdout and stderr, written without ever panicking.
//!
//! Guarantees:
//! * A reader that closes the pipe early (`hubpulse query … | head -1`) ends the command
//!   quietly with exit 0, on every command: a write that fails with `BrokenPipe` becomes
//!   [`AppError::StdoutClosed`], which `app::run` turns into success, with nothing on stderr.
//!   Rust ignores SIGPIPE, so without this a write fails (`println!` panics: exit 101).
//! * Any other write failure (a full disk behind a redirect) is a runtime error naming stdout.
//! * Warnings and the final error line go to stderr through [`warn`] / [`error_line`], which
//!   drop a failed write (stderr closed too, `2>&1 | head`) instead of panicking.

use std::fmt::Display;
use std::io::{self, BufWriter, Write};

use super::AppError;

/// Buffered stdout that remembers whether the reader went away.
pub struct Out {
    w: BufWriter<io::Stdout>,
    closed: bool,
}

impl Out {
    pub fn stdout() -> Out {
        Out {
            w: BufWriter::with_capacity(1 << 16, io::stdout()),
            closed: false,
        }
    }

    /// One line (a newline is added).
    pub fn line(&mut self, s: impl Display) -> Result<(), AppError> {
        writeln!(self, "{s}").map_err(|e| self.error(e))
    }

    /// Text as it is.
    pub fn text(&mut self, s: &str) -> Result<(), AppError> {
        self.write_all(s.as_bytes()).map_err(|e| self.error(e))
    }

    /// Push what is buffered to the reader (the demo's progress lines, the end of a command).
    pub fn flush_now(&mut self) -> Result<(), AppError> {
        self.flush().map_err(|e| self.error(e))
    }

    /// The error for a failed write: a closed pipe (seen here or by a writer layered on top,
    /// e.g. Arrow's CSV writer, which reports it as a string) ends the command quietly.
    pub fn error(&self, e: impl Display) -> AppError {
        if self.closed {
            AppError::StdoutClosed
        } else {
            AppError::Runtime(format!("stdout: {e}"))
        }
    }

    fn note(&mut self, e: io::Error) -> io::Error {
        if e.kind() == io::ErrorKind::BrokenPipe {
            self.closed = true;
        }
        e
    }
}

impl Write for Out {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.closed {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        self.w.write(buf).map_err(|e| self.note(e))
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.closed {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        self.w.flush().map_err(|e| self.note(e))
    }
}

/// `hubpulse: warning: …` on stderr (one line; a closed stderr drops it).
pub fn warn(msg: impl Display) {
    let _ = writeln!(io::stderr().lock(), "hubpulse: warning: {msg}");
}

/// The one error line `main` prints before exiting non-zero (a closed stderr drops it).
pub fn error_line(msg: &str) {
    let first = msg.lines().next().unwrap_or("");
    let _ = writeln!(io::stderr().lock(), "hubpulse: {first}");
}
