//! Typed proxies for the objects a manager server holds.

use std::fmt;
use std::ops::Deref;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::client::Handle;
use crate::error::Error;
use crate::wire::{Kind, Op};

pub(crate) mod collections;
pub(crate) mod custom;
pub(crate) mod queue;
pub(crate) mod sync;

/// A typed reference to an object in a manager's server.
///
/// Proxies are serde values: they travel in a process's arguments (under
/// every start method), inside values stored in other proxies (a list in a
/// dict writes through), and to other machines. A proxy carries the
/// server's address and authentication key, so whoever receives one can
/// connect; treat a serialized proxy as a secret.
pub trait Proxy: Clone + Serialize + DeserializeOwned + fmt::Debug + 'static {
    /// The kind of server object, for [`Manager::lookup`](crate::Manager::lookup).
    #[doc(hidden)]
    const KIND: Kind;
    #[doc(hidden)]
    fn from_handle(h: Handle) -> Self;
    #[doc(hidden)]
    fn handle(&self) -> &Handle;
}

macro_rules! proxy_type {
    ($(#[$m:meta])* $name:ident [$($g:ident),*], $kind:expr) => {
        $(#[$m])*
        pub struct $name<$($g),*> {
            h: $crate::client::Handle,
            _t: std::marker::PhantomData<fn() -> ($($g,)*)>,
        }

        impl<$($g),*> Clone for $name<$($g),*> {
            fn clone(&self) -> Self {
                Self { h: self.h.clone(), _t: std::marker::PhantomData }
            }
        }

        impl<$($g),*> std::fmt::Debug for $name<$($g),*> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.h)
            }
        }

        impl<$($g),*> PartialEq for $name<$($g),*> {
            /// Two proxies are equal when they refer to the same object.
            fn eq(&self, other: &Self) -> bool {
                self.h == other.h
            }
        }

        impl<$($g),*> serde::Serialize for $name<$($g),*> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                self.h.serialize(s)
            }
        }

        impl<'de, $($g),*> serde::Deserialize<'de> for $name<$($g),*> {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Ok(Self {
                    h: $crate::client::Handle::deserialize(d)?,
                    _t: std::marker::PhantomData,
                })
            }
        }

        impl<$($g: 'static),*> $crate::proxy::Proxy for $name<$($g),*> {
            const KIND: $crate::wire::Kind = $kind;
            fn from_handle(h: $crate::client::Handle) -> Self {
                Self { h, _t: std::marker::PhantomData }
            }
            fn handle(&self) -> &$crate::client::Handle {
                &self.h
            }
        }
    };
}
pub(crate) use proxy_type;

/// Holds a container's server-side lock: while it lives, requests from
/// other connections to the same object wait, so a series of calls made
/// through the guard (it dereferences to the proxy) is atomic.
///
/// The lock belongs to the guard's own connection: it is released when the
/// guard is dropped, and also when the process holding it dies (the server
/// sees the connection close). It is not recursive: locking the same object
/// again from inside the guard (through another proxy) waits for ever.
///
/// ```
/// let m = mp_manager::Manager::new()?;
/// let d = m.dict::<String, i64>()?;
/// {
///     let d = d.lock()?; // atomic read-modify-write
///     let n = d.get(&"hits".to_string())?.unwrap_or(0);
///     d.insert("hits".to_string(), n + 1)?;
/// }
/// assert_eq!(d.get(&"hits".to_string())?, Some(1));
/// # Ok::<(), mp_manager::Error>(())
/// ```
pub struct Locked<P: Proxy> {
    proxy: Option<P>,
}

impl<P: Proxy> fmt::Debug for Locked<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Locked").field(&self.proxy).finish()
    }
}

impl<P: Proxy> Deref for Locked<P> {
    type Target = P;
    fn deref(&self) -> &P {
        self.proxy.as_ref().expect("present until drop")
    }
}

impl<P: Proxy> Drop for Locked<P> {
    fn drop(&mut self) {
        if let Some(p) = self.proxy.take() {
            let h = p.handle().clone();
            drop(p);
            if h.op(Op::ObjUnlock).is_ok() {
                h.unpin();
            }
        }
    }
}

/// Takes `p`'s object lock on a connection of the guard's own.
pub(crate) fn lock_object<P: Proxy>(p: &P, timeout: Option<Duration>) -> Result<Locked<P>, Error> {
    let pinned = p.handle().pin()?;
    match pinned.op(Op::ObjLock(wire_timeout(timeout))) {
        Ok(_) => {}
        // Not taken (a timeout): the connection holds nothing.
        Err(e @ Error::Remote(_)) => {
            pinned.unpin();
            return Err(e);
        }
        Err(e) => return Err(e),
    }
    Ok(Locked {
        proxy: Some(P::from_handle(pinned)),
    })
}

pub(crate) fn wire_timeout(t: Option<Duration>) -> Option<u64> {
    t.map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}
