//! Python's `multiprocessing.log_to_stderr` and `get_logger`, on the `log`
//! crate's facade.
//!
//! The crates of the workspace emit records where Python's
//! `multiprocessing.util` logs, through `log`'s macros: nothing is
//! formatted, and the cost is one relaxed load of `log`'s maximum level,
//! unless a logger is installed and the level enables the record. Any
//! `log` backend (`env_logger`, `tracing-log`, ...) receives them;
//! [`log_to_stderr`] installs a small one formatted as Python's.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use log::{Level, LevelFilter, Log, Metadata, Record};

/// Whether the logger installed is this module's.
static OURS: AtomicBool = AtomicBool::new(false);

struct StderrLogger;

static LOGGER: StderrLogger = StderrLogger;

/// Python's level names (`SUBDEBUG` is multiprocessing's level below
/// `DEBUG`).
fn level_name(l: Level) -> &'static str {
    match l {
        Level::Error => "ERROR",
        Level::Warn => "WARNING",
        Level::Info => "INFO",
        Level::Debug => "DEBUG",
        Level::Trace => "SUBDEBUG",
    }
}

impl Log for StderrLogger {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        m.level() <= log::max_level()
    }

    fn log(&self, r: &Record<'_>) {
        if !self.enabled(r.metadata()) {
            return;
        }
        // One write per line, so that lines of several processes do not
        // interleave within a line.
        let line = format!(
            "[{}/{}] {}\n",
            level_name(r.level()),
            crate::info::current_process().name(),
            r.args()
        );
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {
        let _ = std::io::stderr().flush();
    }
}

/// Logs the records of every crate to standard error, formatted as
/// Python's `[LEVEL/ProcessName] message` (Python's
/// `multiprocessing.log_to_stderr(level)`), and returns the logger.
///
/// The stderr logger is installed only if no `log` logger is installed
/// yet; then `level` becomes `log`'s maximum level, and the children
/// started afterwards (whatever their start method) install it too, at the
/// same level, as Python passes the level to spawned children. If another
/// logger is installed, it is left alone, with its level, and receives the
/// records. Calling it again changes the level.
///
/// ```
/// use log::LevelFilter;
///
/// mp_proc::log_to_stderr(LevelFilter::Info);
/// assert_eq!(log::max_level(), LevelFilter::Info);
/// // A child then prints, for example:
/// // [INFO/Process-1] child process calling its target
/// // [INFO/Process-1] process exiting with exitcode 0
/// ```
pub fn log_to_stderr(level: LevelFilter) -> &'static dyn Log {
    if log::set_logger(&LOGGER).is_ok() {
        OURS.store(true, Ordering::Release);
    }
    if OURS.load(Ordering::Acquire) {
        log::set_max_level(level);
    }
    log::logger()
}

/// The logger the records go to (Python's `multiprocessing.get_logger()`):
/// `log`'s global logger, a no-op one until a logger is installed.
///
/// ```
/// let logger = mp_proc::get_logger();
/// logger.flush();
/// ```
pub fn get_logger() -> &'static dyn Log {
    log::logger()
}

/// The level a child should install, if this process installed the stderr
/// logger.
pub(crate) fn child_level() -> Option<u8> {
    OURS.load(Ordering::Acquire)
        .then(|| log::max_level() as usize as u8)
}

/// In a new child: installs the stderr logger at the parent's level.
pub(crate) fn install_in_child(level: Option<u8>) {
    let Some(level) = level else { return };
    let level = LevelFilter::iter()
        .find(|l| *l as usize == level as usize)
        .unwrap_or(LevelFilter::Info);
    log_to_stderr(level);
}
