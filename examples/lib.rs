//! Small helpers shared by the Rust twins of the seed tutorial programs.
//!
//! The twins themselves are the examples of this package (one file per
//! program, catalogued in `SEEDS.md`): run one with
//! `cargo run -p mp-examples --example NAME`.

use std::fmt;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsFd;

use mp_os::handle::Fd;
use serde::{Deserialize, Serialize};

/// Python's spelling of a bool (`True` / `False`), so that the twins print
/// the same lines as the tutorials.
///
/// ```
/// assert_eq!(mp_examples::py_bool(true), "True");
/// assert_eq!(mp_examples::py_bool(false), "False");
/// ```
pub fn py_bool(b: bool) -> &'static str {
    if b { "True" } else { "False" }
}

/// Formats items the way Python prints a list of strings: `['a', 'b']`.
///
/// ```
/// assert_eq!(mp_examples::py_str_list(["0", "1"]), "['0', '1']");
/// assert_eq!(mp_examples::py_str_list(Vec::<String>::new()), "[]");
/// ```
pub fn py_str_list<I>(items: I) -> String
where
    I: IntoIterator,
    I::Item: fmt::Display,
{
    let inner: Vec<String> = items.into_iter().map(|s| format!("'{s}'")).collect();
    format!("[{}]", inner.join(", "))
}

/// A writable stream that travels to a child process in a target's
/// arguments, as Python passes `sys.stdout` in `args=(lock, sys.stdout)`.
///
/// It is a duplicate of a file descriptor; in a child it writes to the same
/// open file (the parent's stdout, say). Each `write` is one `write(2)`, so
/// a line written with one `write_all` is not split by other writers.
///
/// ```
/// use std::io::Write;
///
/// let mut out = mp_examples::SharedStream::stdout()?;
/// out.write_all(b"written through a shared stream\n")?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SharedStream {
    file: Fd<File>,
}

impl SharedStream {
    /// A stream onto this process's standard output.
    ///
    /// # Errors
    ///
    /// When the descriptor cannot be duplicated.
    pub fn stdout() -> io::Result<SharedStream> {
        let fd = io::stdout().as_fd().try_clone_to_owned()?;
        Ok(SharedStream {
            file: Fd(File::from(fd)),
        })
    }
}

impl Write for SharedStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.0.flush()
    }
}
