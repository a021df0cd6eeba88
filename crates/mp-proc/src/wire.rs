//! What travels between a parent, the fork server and a child: the
//! messages, and the environment variables that name their sockets.
//!
//! All messages are postcard frames sent with [`mp_os::fdpass`]; file
//! descriptors of handles in the arguments travel beside them as described
//! in [`mp_os::handle`].

use serde::{Deserialize, Serialize};

use crate::function::RawFunction;
use crate::start_method::StartMethod;

/// Bumped whenever a message below changes shape.
pub(crate) const WIRE_VERSION: u32 = 7;

/// The environment variable that tells a spawned child which inherited
/// descriptor is its bootstrap socket (read by the entry hook).
pub(crate) const BOOT_FD_VAR: &str = "MP_PROC_BOOT_FD";

/// The environment variable that tells the fork server which inherited
/// descriptor is its socket to the parent (read by the entry hook).
pub(crate) const FORKSERVER_FD_VAR: &str = "MP_PROC_FORKSERVER_FD";

/// Most bytes a bootstrap or result frame may have (1 GiB): a larger length
/// prefix is treated as corruption.
pub(crate) const MAX_FRAME: usize = 1 << 30;

/// Everything a child needs to run its target.
#[derive(Serialize, Deserialize, Debug)]
pub(crate) struct Bootstrap {
    pub(crate) version: u32,
    /// The target (absent for a closure run by fork).
    pub(crate) func: Option<RawFunction>,
    pub(crate) name: String,
    pub(crate) ident: u64,
    pub(crate) daemon: bool,
    /// The start method that made the child (its `get_start_method()`).
    pub(crate) method: StartMethod,
    pub(crate) parent_pid: u32,
    /// The parent's liveness token (`mp_os::liveness`): pid and start-time
    /// stamp, so that `parent_process().is_alive()` is not fooled by a
    /// reused pid.
    pub(crate) parent_token: u32,
    pub(crate) parent_name: String,
    /// postcard bytes of the arguments.
    pub(crate) args: Vec<u8>,
    /// The level of `log_to_stderr` in the parent, if it installed it
    /// (`log::LevelFilter as usize`): the child installs it too.
    pub(crate) log_level: Option<u8>,
}

/// How the target ended, sent from the child to the parent.
#[derive(Serialize, Deserialize, Debug)]
pub(crate) enum Outcome {
    /// postcard bytes of the return value (its descriptors ride along).
    Returned(Vec<u8>),
    /// The panic message.
    Panicked(String),
    /// The child could not run the target (bad arguments, ...).
    Failed(String),
}

/// The first frame a new fork server reads: what to run once before it
/// serves (`set_forkserver_preload`), as an offset from the anchor.
#[derive(Serialize, Deserialize, Debug)]
pub(crate) struct ServerSetup {
    pub(crate) version: u32,
    pub(crate) preload: Option<i64>,
}

/// The fork server's first frame to its parent, once it has run the preload
/// and is ready to serve: its pid.
#[derive(Serialize, Deserialize, Debug)]
pub(crate) struct ServerReady {
    pub(crate) version: u32,
    pub(crate) pid: i32,
}

/// A request to the fork server. Descriptors: the child's end of its
/// bootstrap socket, its stdin, stdout and stderr, then the handles'.
#[derive(Serialize, Deserialize, Debug)]
pub(crate) struct ForkRequest {
    pub(crate) version: u32,
    pub(crate) bootstrap: Vec<u8>,
}

/// The first frame a fork-server child sends its parent, before it runs
/// anything: its pid. A parent whose server failed in the middle of a
/// request learns from it whether the child exists, and which it is.
#[derive(Serialize, Deserialize, Debug)]
pub(crate) struct Hello {
    pub(crate) version: u32,
    pub(crate) pid: i32,
}

/// The fork server's answer.
#[derive(Serialize, Deserialize, Debug)]
pub(crate) enum ForkReply {
    Started { pid: i32 },
    Failed(String),
}
