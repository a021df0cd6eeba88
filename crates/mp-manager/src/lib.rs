//! Managers: a server process that holds dicts, lists, Namespaces, queues
//! and locks that many processes read and change through proxies, locally
//! or from other machines over TCP. Python's `multiprocessing.Manager`.
//!
//! ```
//! use mp_proc::Process;
//! use mp_manager::{ListProxy, Manager};
//!
//! fn insert_record((record, records): ((String, u32), ListProxy<(String, u32)>)) {
//!     records.append(record).unwrap();
//! }
//!
//! fn main() -> Result<(), mp_manager::Error> {
//!     mp_proc::init(); // children run their target here and never return
//!     let manager = Manager::new()?;
//!     let records = manager.list_from(vec![("Sam".to_string(), 10), ("Adam".to_string(), 9)])?;
//!     let p = Process::new(insert_record, (("Jeff".to_string(), 8), records.clone()));
//!     p.start()?;
//!     p.join()?;
//!     for (name, score) in records.to_vec()? {
//!         println!("Name: {name}\nScore: {score}\n");
//!     }
//!     assert_eq!(records.len()?, 3);
//!     Ok(())
//! }
//! ```
//!
//! # Proxies
//!
//! [`Manager::dict`], [`list`](Manager::list), [`namespace`](Manager::namespace),
//! [`value`](Manager::value), [`queue`](Manager::queue),
//! [`joinable_queue`](Manager::joinable_queue), [`lock`](Manager::lock),
//! [`rlock`](Manager::rlock), [`semaphore`](Manager::semaphore),
//! [`bounded_semaphore`](Manager::bounded_semaphore),
//! [`array`](Manager::array),
//! [`event`](Manager::event), [`condition`](Manager::condition),
//! [`barrier`](Manager::barrier) and [`create`](Manager::create) (a
//! [registered type](Registry)) return typed proxies. Every proxy method is
//! one request and one reply, atomic on the server. A proxy is a serde value
//! (address, key, object id): it travels to child processes in their
//! arguments, and a proxy stored inside another object comes back as a
//! proxy to the same object, so a list inside a dict writes through.
//!
//! Objects are reference-counted as Python's: the server frees one when
//! the last proxy of it, in any process, is dropped, or its process exits
//! or dies (see [`Manager`]'s docs for proxies in transit and proxies
//! stored inside other objects).
//!
//! For several operations in a row without interference, a container's
//! `lock()` returns a [`Locked`] guard that holds the object's server-side
//! lock; it is released on drop or when the holding process dies.
//!
//! # Transport and security
//!
//! A local manager listens on a Unix socket in the abstract namespace; a
//! remote one ([`Manager::serve`], [`Manager::connect`]) on TCP. Either way
//! each connection starts with a mutual HMAC-SHA256 challenge on the
//! authentication key, before the server decodes any request. Frames are
//! length-limited and requests decoded with limits: a malformed request
//! gets an error reply, an oversized or truncated frame closes that
//! connection, and the server keeps serving the others. See the crate's
//! README for the wire protocol.
//!
//! A local server lets in only processes of its own user and root (checked
//! with `SO_PEERCRED`: the abstract namespace has no file permissions). A
//! connection has 1 s to prove the key, and few may be trying at once per
//! peer address, so idle connections cannot crowd out a good client. A TCP
//! manager refuses an empty key ([`Error::EmptyAuthkey`]), and both sides
//! use TCP keepalive, so that a peer whose host vanished is dropped, and
//! what it held released, within the peer timeout
//! ([`ManagerBuilder::peer_timeout`], 30 s by default). A
//! [`JoinableQueueProxy::join`] writes off the tasks of clients that went
//! away (`RemoteError::TasksLost`) instead of waiting for them for ever.
//!
//! Linux only.

#![cfg(target_os = "linux")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod addr;
mod client;
mod error;
mod manager;
mod proxy;
mod registry;
mod server;
mod shm_manager;
mod transport;
mod wire;

pub use addr::Address;
pub use error::{Error, ExceptionKind, MethodError, RemoteError};
pub use manager::{Manager, ManagerBuilder};
pub use proxy::collections::{
    ArrayProxy, DictProxy, ListProxy, NamespaceProxy, Storable, ValueProxy,
};
pub use proxy::custom::CustomProxy;
pub use proxy::queue::{JoinableQueueProxy, QueueProxy};
pub use proxy::sync::{
    AcquireGuard, BarrierProxy, ConditionGuard, ConditionProxy, EventProxy, LockProxy, RLockProxy,
    SemaphoreProxy,
};
pub use proxy::{Locked, Proxy};
pub use registry::{Call, CallResult, Registry, RemoteObject, Types, encode_result};
pub use shm_manager::SharedMemoryManager;

/// Implementation details that public trait signatures mention.
#[doc(hidden)]
pub mod __private {
    pub use crate::client::Handle;
    pub use crate::wire::Kind;
}
