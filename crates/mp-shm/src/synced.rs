//! The lock-and-borrow-flag machinery shared by `Value` and `Array`.

use std::sync::atomic::Ordering;
use std::time::Duration;

use mp_sync::{Deadline, RLock, RLockGuard, RawRLock, TryAcquireError};

use crate::block::{Block, LOCK_OFFSET};
use crate::error::Error;
use crate::shm_safe::ShmSafe;

/// A block with its recursive lock.
pub(crate) struct Synced<T> {
    pub(crate) block: Block<T>,
    pub(crate) lock: RLock,
}

impl<T> Clone for Synced<T> {
    fn clone(&self) -> Self {
        Synced {
            block: self.block.clone(),
            lock: self.lock.clone(),
        }
    }
}

/// The lock is held by this thread and the data is not borrowed.
pub(crate) struct Held<'a> {
    pub(crate) guard: RLockGuard<'a>,
    pub(crate) died: Option<u32>,
}

impl<T: ShmSafe> Synced<T> {
    pub(crate) fn create(magic: [u8; 4], len: usize) -> Result<Self, Error> {
        let block = Block::create(magic, len)?;
        // SAFETY: LOCK_OFFSET is inside the fresh, unshared segment, 8-byte
        // aligned, reserved for the lock by the block layout.
        let lock = unsafe {
            block
                .segment()
                .as_ptr()
                .add(LOCK_OFFSET)
                .cast::<RawRLock>()
                .write(RawRLock::new());
            RLock::from_segment(block.segment().clone(), LOCK_OFFSET)
        };
        Ok(Synced { block, lock })
    }

    pub(crate) fn from_block(block: Block<T>) -> Self {
        // SAFETY: a block that passed `Block::attach` for a synchronized
        // kind has a RawRLock written by `create` at LOCK_OFFSET.
        let lock = unsafe { RLock::from_segment(block.segment().clone(), LOCK_OFFSET) };
        Synced { block, lock }
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
                // The dead holder may have died inside a guard.
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

    /// Panics if a guard of this thread borrows the data.
    #[inline]
    pub(crate) fn assert_not_borrowed(&self) {
        assert!(
            self.block.borrowed().load(Ordering::Relaxed) == 0,
            "the shared value is borrowed by a guard of this thread (lock() / update()); use the guard"
        );
    }

    /// Marks the data borrowed by a new guard (the lock is held).
    pub(crate) fn borrow(&self) {
        assert!(
            self.block.borrowed().swap(1, Ordering::Relaxed) == 0,
            "the shared value is already borrowed by a guard of this thread"
        );
    }

    pub(crate) fn unborrow(&self) {
        self.block.borrowed().store(0, Ordering::Relaxed);
    }

    pub(crate) fn deadline(timeout: Duration) -> Option<Deadline> {
        Some(Deadline::after(Some(timeout)))
    }
}
