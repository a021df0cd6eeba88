//! Under loom, headers are loom atomics and payload bytes loom cells
//! (so that loom checks the payload hand-off for races).

use loom::cell::UnsafeCell;

use super::Ring;
use super::layout::{HDR, RecHeader};

pub(crate) struct Store {
    pub(crate) hdrs: Vec<RecHeader>,
    pub(crate) bytes: Vec<UnsafeCell<u8>>,
}

impl Store {
    pub(crate) fn new(cap: u64) -> Store {
        use crate::sync::{AtomicU32, AtomicU64};
        let hdrs = (0..cap / HDR)
            .map(|_| RecHeader {
                stamp: AtomicU64::new(0),
                len: AtomicU32::new(0),
                tid: AtomicU32::new(0),
            })
            .collect();
        let bytes = (0..cap).map(|_| UnsafeCell::new(0)).collect();
        Store { hdrs, bytes }
    }
}

impl Ring {
    pub(crate) fn new_loom(ctl: *const super::RingCtl, cap: u64, counted: bool) -> Ring {
        Ring {
            ctl,
            store: Store::new(cap),
            cap,
            mask: cap - 1,
            max_frag: cap / 2 - HDR,
            efd: -1,
            counted,
            released_cache: crate::sync::AtomicU64::new(0),
            gets_cache: crate::sync::AtomicU64::new(0),
            streaming: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub(super) fn hdr(&self, pos: u64) -> &RecHeader {
        &self.store.hdrs[((pos & self.mask) / HDR) as usize]
    }

    pub(super) unsafe fn put(&self, pos: u64, off: u64, src: &[u8]) {
        let base = ((pos & self.mask) + HDR + off) as usize;
        for (i, b) in src.iter().enumerate() {
            // SAFETY: loom checks the exclusive access.
            self.store.bytes[base + i].with_mut(|p| unsafe { *p = *b });
        }
    }

    pub(super) unsafe fn with_payload<R>(
        &self,
        pos: u64,
        off: u64,
        len: u64,
        f: impl FnOnce(&[u8]) -> R,
    ) -> R {
        let base = ((pos & self.mask) + HDR + off) as usize;
        let v: Vec<u8> = (0..len as usize)
            .map(|i| {
                // SAFETY: loom checks the access.
                self.store.bytes[base + i].with(|p| unsafe { *p })
            })
            .collect();
        f(&v)
    }
}
