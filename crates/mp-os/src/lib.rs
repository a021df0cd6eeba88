//! The operating-system layer under every `multiprocessing` crate.
//!
//! ```
//! use mp_os::segment::Segment;
//!
//! // An anonymous shared segment: a memfd mapped MAP_SHARED. It survives
//! // fork, travels to other processes as a handle, and is freed by the
//! // kernel when the last process lets go of it.
//! let seg = Segment::anonymous("doc-example", 4096)?;
//! assert_eq!(seg.len(), 4096);
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! This crate exists so that the public crates form a line without cycles:
//! `mp-sync` needs shared memory for its futex words and `mp-shm` needs
//! `mp-sync` for the lock of a synchronized `Value`, so the pieces both use
//! live here, decided once:
//!
//! * [`segment`]: anonymous (memfd) and named (`/dev/shm`) shared mappings and
//!   the versioned header every shared object starts with;
//! * [`object`]: a typed object in a segment, checked once (kind, version,
//!   bounds), that locks, values and channels are built on;
//! * [`arena`]: the shared arenas that hold small objects, many to a
//!   descriptor;
//! * [`futex`]: process-shared futex waits with `CLOCK_MONOTONIC` deadlines,
//!   the short spin that precedes them and the slice a waiter sleeps
//!   before it looks for dead peers;
//! * [`time`]: the [`Deadline`](time::Deadline) type every blocking call takes;
//! * [`handle`]: how a handle holding a file descriptor is serialized, so that
//!   it can travel in a process's arguments or over a socket and re-attach on
//!   the other side;
//! * [`fdpass`]: framed messages with `SCM_RIGHTS` file descriptors over Unix
//!   sockets;
//! * [`liveness`]: telling a dead thread or process from a slow one;
//! * [`lockword`]: lock words in shared memory that a waiter takes over
//!   when their holder dies;
//! * [`wait`]: waiting for any of several objects (channel ends, queues,
//!   processes) with `poll(2)` on their readiness descriptors;
//! * [`exit`]: hooks to run before the process exits (a queue's buffered
//!   values are flushed), which a child started by `mp-proc` runs too;
//! * [`fork`]: the one `pthread_atfork` registration, the ordered hooks it
//!   runs in a forked child (fresh ids, a channel's registrations), and a
//!   lock that a forked child can take back.
//!
//! Linux only: memfd, futex, pidfd and `/proc` are Linux interfaces.

#![cfg(target_os = "linux")]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod arena;
pub mod exit;
pub mod fdpass;
pub mod fork;
pub mod futex;
pub mod handle;
pub mod liveness;
pub mod lockword;
pub mod object;
pub mod segment;
pub mod time;
pub mod wait;
