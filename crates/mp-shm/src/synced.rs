//! The lock-and-borrow-flag machinery shared by `Value` and `Array`.
//!
//! The data is guarded by a recursive lock: the `RawRLock` embedded in the
//! object's own segment, or an `RLock` chosen by the user (`with_lock`,
//! Python's `lock=` argument), which may guard several objects. A guard
//! that hands out `&mut` to the data marks it borrowed with the token of
//! its thread in the object's borrow flag (the embedded lock's `pinned`
//! word), so that a nested access from the same thread panics instead of
//! aliasing; under a chosen lock it also counts itself in that lock's
//! `pinned` word, so that a `Condition` over the chosen lock refuses to
//! release it while a guard is alive.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use mp_sync::{Deadline, RLock, RLockGuard, RawRLock, TryAcquireError};
use serde::{Deserializer, Serialize, Serializer};

use crate::block::{Block, LOCK_OFFSET};
use crate::error::Error;
use crate::shm_safe::ShmSafe;

/// Offset of the `pinned` word in a `RawRLock` (mp-sync's documented
/// layout).
const PINNED: usize = 20;
const _: () = assert!(std::mem::size_of::<RawRLock>() == 24);

/// A block with its recursive lock.
pub(crate) struct Synced<T> {
    pub(crate) block: Block<T>,
    pub(crate) lock: RLock,
    /// Whether `lock` was chosen by the user (not the embedded one).
    chosen: bool,
}

impl<T> Clone for Synced<T> {
    fn clone(&self) -> Self {
        Synced {
            block: self.block.clone(),
            lock: self.lock.clone(),
            chosen: self.chosen,
        }
    }
}

impl<T> Synced<T> {
    pub(crate) fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (&self.block, self.chosen.then_some(&self.lock)).serialize(s)
    }
}

/// The lock is held by this thread and the data is not borrowed.
pub(crate) struct Held<'a> {
    pub(crate) guard: RLockGuard<'a>,
    pub(crate) died: Option<u32>,
}

impl<T: ShmSafe> Synced<T> {
    /// A new object guarded by its embedded lock, or by `chosen`.
    pub(crate) fn create(magic: [u8; 4], len: usize, chosen: Option<RLock>) -> Result<Self, Error> {
        let block = Block::create(magic, len)?;
        // SAFETY: LOCK_OFFSET is inside the fresh, unshared object, 8-byte
        // aligned, reserved for the lock by the block layout (written even
        // when a chosen lock guards the data: its `pinned` word is the
        // borrow flag).
        let own = unsafe {
            block
                .object()
                .as_ptr()
                .cast::<u8>()
                .add(LOCK_OFFSET)
                .cast::<RawRLock>()
                .write(RawRLock::new());
            RLock::within(block.object(), LOCK_OFFSET)
        };
        let (lock, is_chosen) = match chosen {
            Some(l) => (l, true),
            None => (own, false),
        };
        block
            .lock_kind()
            .store(u32::from(is_chosen), Ordering::Relaxed);
        Ok(Synced {
            block,
            lock,
            chosen: is_chosen,
        })
    }

    /// Re-attaches a received block and its chosen lock, if it has one.
    fn from_parts(block: Block<T>, chosen: Option<RLock>) -> Result<Self, &'static str> {
        let kind = block.lock_kind().load(Ordering::Relaxed);
        match (kind, chosen) {
            (0, None) => {
                // SAFETY: a block that passed `Block::checked` for a
                // synchronized kind has a RawRLock written by `create` at
                // LOCK_OFFSET.
                let lock = unsafe { RLock::within(block.object(), LOCK_OFFSET) };
                Ok(Synced {
                    block,
                    lock,
                    chosen: false,
                })
            }
            (1, Some(lock)) => Ok(Synced {
                block,
                lock,
                chosen: true,
            }),
            _ => Err("the shared object's lock kind does not match its handle"),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
        magic: [u8; 4],
    ) -> Result<Self, D::Error> {
        struct Seed<T>([u8; 4], std::marker::PhantomData<T>);
        impl<'de, T: ShmSafe> serde::de::Visitor<'de> for Seed<T> {
            type Value = (Block<T>, Option<RLock>);
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a shared object and its lock")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                let block = seq
                    .next_element_seed(BlockSeed::<T>(self.0, std::marker::PhantomData))?
                    .ok_or_else(|| serde::de::Error::invalid_length(0, &self))?;
                let lock = seq
                    .next_element::<Option<RLock>>()?
                    .ok_or_else(|| serde::de::Error::invalid_length(1, &self))?;
                Ok((block, lock))
            }
        }
        struct BlockSeed<T>([u8; 4], std::marker::PhantomData<T>);
        impl<'de, T: ShmSafe> serde::de::DeserializeSeed<'de> for BlockSeed<T> {
            type Value = Block<T>;
            fn deserialize<D2: Deserializer<'de>>(self, d: D2) -> Result<Block<T>, D2::Error> {
                Block::deserialize_as(d, self.0)
            }
        }
        let (block, lock) = d.deserialize_tuple(2, Seed::<T>(magic, std::marker::PhantomData))?;
        Self::from_parts(block, lock).map_err(serde::de::Error::custom)
    }

    /// The received block of a synchronized kind, checked for one element
    /// (for `Value`).
    pub(crate) fn block_len(&self) -> usize {
        self.block.len()
    }

    /// Acquires the lock (until `deadline`; `None`: do not wait). A dead
    /// holder is recovered from: its borrow flag is cleared.
    pub(crate) fn acquire(&self, deadline: Option<Deadline>) -> Result<Held<'_>, Error> {
        let r = match deadline {
            None => self.lock.try_acquire(),
            Some(d) => self.lock.acquire_deadline(d),
        };
        match r {
            Ok(guard) => Ok(Held { guard, died: None }),
            Err(TryAcquireError::OwnerDied(d)) => {
                let died = Some(d.dead_tid());
                // The dead holder may have died inside a guard of this
                // object (a guard of another object under the same chosen
                // lock leaves a dead thread's token, which is not ours).
                self.block.borrowed().store(0, Ordering::Relaxed);
                Ok(Held {
                    guard: d.into_inner(),
                    died,
                })
            }
            Err(TryAcquireError::WouldBlock) => Err(mp_sync::Error::WouldBlock.into()),
            Err(TryAcquireError::Timeout) => Err(mp_sync::Error::Timeout.into()),
        }
    }

    /// Acquires the lock, blocking; never fails.
    pub(crate) fn acquire_blocking(&self) -> Held<'_> {
        match self.acquire(Some(Deadline::never())) {
            Ok(h) => h,
            Err(_) => unreachable!("a wait without deadline does not fail"),
        }
    }

    /// Whether a guard of this thread borrows the data (the lock is held).
    #[inline]
    pub(crate) fn borrowed_by_me(&self) -> bool {
        self.block.borrowed().load(Ordering::Relaxed) == mp_os::liveness::current_token()
    }

    /// Panics if a guard of this thread borrows the data.
    #[inline]
    pub(crate) fn assert_not_borrowed(&self) {
        assert!(
            !self.borrowed_by_me(),
            "the shared value is borrowed by a guard of this thread (lock() / update()); use the guard"
        );
    }

    /// The chosen lock's `pinned` word.
    fn chosen_pin(&self) -> Option<&AtomicU32> {
        self.chosen.then(|| {
            let raw: &RawRLock = &self.lock;
            // SAFETY: `pinned` is the u32 at offset 20 of a RawRLock
            // (mp-sync's documented layout), used only atomically.
            unsafe {
                &*(raw as *const RawRLock)
                    .cast::<u8>()
                    .add(PINNED)
                    .cast::<AtomicU32>()
            }
        })
    }

    /// Marks the data borrowed by a new guard (the lock is held).
    pub(crate) fn borrow(&self) {
        let me = mp_os::liveness::current_token();
        assert!(
            self.block.borrowed().swap(me, Ordering::Relaxed) != me,
            "the shared value is already borrowed by a guard of this thread"
        );
        if let Some(pin) = self.chosen_pin() {
            pin.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn unborrow(&self) {
        self.block.borrowed().store(0, Ordering::Relaxed);
        if let Some(pin) = self.chosen_pin() {
            let _ = pin.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |p| p.checked_sub(1));
        }
    }

    pub(crate) fn deadline(timeout: Duration) -> Option<Deadline> {
        Some(Deadline::after(Some(timeout)))
    }
}
