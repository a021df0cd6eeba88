//! `SharedMemory`: named shared memory for unrelated processes.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use mp_os::segment::Segment;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Error;
use crate::tracker;

const OWNED: u8 = 0;
const PERSISTENT: u8 = 1;
const UNLINKED: u8 = 2;

/// The creator's claim on the name; unlinks it when the last clone of the
/// creating handle goes, unless unlinked or made persistent.
struct NameOwner {
    name: String,
    state: AtomicU8,
    /// Device and inode of the object, when the program's tracker
    /// registered the name (see `tracker`).
    tracked: Option<(u64, u64)>,
}

impl NameOwner {
    /// The name no longer needs the tracker: it was unlinked here, or it
    /// is to outlive the program.
    fn untrack(&self) {
        if let Some(id) = self.tracked {
            tracker::unregister(&self.name, id);
        }
    }
}

impl Drop for NameOwner {
    fn drop(&mut self) {
        if self.state.load(Ordering::Acquire) == OWNED {
            let _ = Segment::unlink_named(&self.name);
            self.untrack();
        }
    }
}

/// A named block of shared memory (`/dev/shm/NAME`) that unrelated
/// processes open by name: Python's
/// `multiprocessing.shared_memory.SharedMemory`.
///
/// ```
/// use mp_shm::SharedMemory;
///
/// let name = format!("mp-shm-doc-{}", std::process::id());
/// let shm = SharedMemory::create(&name, 4096)?;   // owns the name
/// shm.write_at(0, b"hello")?;
///
/// let other = SharedMemory::attach(&name)?;       // e.g. in another process
/// let mut buf = [0u8; 5];
/// other.read_at(0, &mut buf)?;
/// assert_eq!(&buf, b"hello");
/// other.close();
///
/// shm.unlink()?;                                   // or let Drop do it
/// # Ok::<(), mp_shm::Error>(())
/// ```
///
/// # Ownership of the name
///
/// The handle returned by [`create`](SharedMemory::create) (and its clones)
/// owns the name: when the last of them is dropped or
/// [`close`](SharedMemory::close)d, the name is unlinked unless
/// [`unlink`](SharedMemory::unlink) already did it or
/// [`into_persistent`](SharedMemory::into_persistent) asked to keep it (for
/// a creator that exits and leaves the memory to processes that attach
/// later). Handles from [`attach`](SharedMemory::attach) or from
/// deserialization never unlink. Unlinking removes the name only: every
/// mapping stays valid until its handle goes.
///
/// # Names left behind
///
/// A creator that is killed, or that exits without dropping its handle
/// (`std::process::exit`, `_exit`, a forked child), cannot unlink. As
/// Python's resource tracker does, the program's *tracker* — a small
/// process started by the program's first `create` and shared by all its
/// processes (children started by spawn, forkserver or fork included) —
/// unlinks every name they created and left behind once the program has
/// ended: its first process and every process that created or attached a
/// name (and every fork of one) have exited. Until then the names stay, so that other
/// processes of the program can still attach.
/// [`into_persistent`](SharedMemory::into_persistent) and
/// [`unlink`](SharedMemory::unlink) take a name out of the tracker's care,
/// and the tracker never unlinks a name whose object is not the one that
/// was registered. The crate README describes how it works and its
/// limits. (Objects that need no name, [`RawArray`](crate::RawArray) etc.,
/// live in memfds that vanish with their last user and need no tracker.)
///
/// # Byte access
///
/// Other processes may write the memory at any moment, so the safe
/// [`read_at`](SharedMemory::read_at) / [`write_at`](SharedMemory::write_at)
/// copy with relaxed atomic loads and stores (8 bytes at a time where
/// aligned): no data race, but no atomicity across words either — order
/// your accesses with a lock or an event. [`as_slice`](SharedMemory::as_slice)
/// and [`as_mut_slice`](SharedMemory::as_mut_slice) give plain slices, for
/// callers who guarantee that nobody writes concurrently.
#[derive(Clone)]
pub struct SharedMemory {
    seg: Segment,
    name: String,
    owner: Option<Arc<NameOwner>>,
}

fn map_err(e: io::Error, name: &str) -> Error {
    let name = name.to_string();
    match e.kind() {
        io::ErrorKind::AlreadyExists => Error::AlreadyExists { name },
        io::ErrorKind::NotFound => Error::NotFound { name },
        io::ErrorKind::InvalidInput => Error::InvalidName { name },
        _ => Error::Os(e),
    }
}

fn check_name(name: &str) -> Result<(), Error> {
    let bare = name.strip_prefix('/').unwrap_or(name);
    if bare.is_empty() || bare.len() > 250 || bare.contains('/') || bare.contains('\0') {
        return Err(Error::InvalidName {
            name: name.to_string(),
        });
    }
    Ok(())
}

impl SharedMemory {
    /// Creates a named shared-memory object of `size` zeroed bytes; this
    /// handle owns the name (see the type docs). A leading `/` in `name`
    /// is optional.
    ///
    /// The name is registered with the program's tracker, which the first
    /// call starts (see "Names left behind" in the type docs). Tracking is
    /// best effort: when the tracker cannot be started or does not answer,
    /// the block is created all the same and
    /// [`is_tracked`](SharedMemory::is_tracked) says `false`.
    ///
    /// # Errors
    ///
    /// [`Error::ZeroSize`], [`Error::InvalidName`],
    /// [`Error::AlreadyExists`] when the name is taken, or [`Error::Os`].
    pub fn create(name: &str, size: usize) -> Result<SharedMemory, Error> {
        check_name(name)?;
        if size == 0 {
            return Err(Error::ZeroSize);
        }
        tracker::prepare();
        let seg = Segment::create_named(name, size).map_err(|e| map_err(e, name))?;
        let tracked = tracker::object_id(seg.fd()).filter(|&id| tracker::register(name, id));
        let owner = NameOwner {
            name: name.to_string(),
            state: AtomicU8::new(OWNED),
            tracked,
        };
        Ok(SharedMemory {
            seg,
            name: name.to_string(),
            owner: Some(Arc::new(owner)),
        })
    }

    /// Creates a shared-memory object with a fresh name (`mp-PID-N-RANDOM`,
    /// Python's `SharedMemory(create=True, size=n)`).
    ///
    /// # Errors
    ///
    /// As [`create`](SharedMemory::create).
    pub fn create_unique(size: usize) -> Result<SharedMemory, Error> {
        use std::sync::atomic::AtomicU32;
        static N: AtomicU32 = AtomicU32::new(0);
        loop {
            let nonce = mp_os::time::monotonic_ns() ^ (std::process::id() as u64).rotate_left(32);
            let name = format!(
                "mp-{}-{}-{:08x}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed),
                nonce as u32
            );
            match SharedMemory::create(&name, size) {
                Err(Error::AlreadyExists { .. }) => continue,
                r => return r,
            }
        }
    }

    /// Opens an existing named object (it never unlinks the name).
    ///
    /// While this process runs, the program's tracker (if one runs) does
    /// not consider the program ended (see "Names left behind" in the type
    /// docs).
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`], [`Error::InvalidName`], or [`Error::Os`].
    pub fn attach(name: &str) -> Result<SharedMemory, Error> {
        check_name(name)?;
        let seg = Segment::open_named(name).map_err(|e| map_err(e, name))?;
        tracker::hold();
        Ok(SharedMemory {
            seg,
            name: name.to_string(),
            owner: None,
        })
    }

    /// The name, as given to `create` or `attach`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The size in bytes.
    pub fn size(&self) -> usize {
        self.seg.len()
    }

    /// Whether this handle created (and so owns) the name.
    pub fn is_owner(&self) -> bool {
        self.owner.is_some()
    }

    /// Whether the program's tracker will unlink this name if it is left
    /// behind when the program ends: the handle created it, the tracker
    /// registered it, and it was neither unlinked nor made persistent.
    ///
    /// ```
    /// use mp_shm::SharedMemory;
    ///
    /// let shm = SharedMemory::create_unique(4096)?;
    /// assert!(shm.is_tracked());
    /// let name = shm.name().to_string();
    /// let kept = shm.into_persistent();
    /// assert!(!kept.is_tracked());
    /// kept.unlink()?;
    /// assert!(!SharedMemory::attach(&name).is_ok());
    /// # Ok::<(), mp_shm::Error>(())
    /// ```
    pub fn is_tracked(&self) -> bool {
        self.owner
            .as_ref()
            .is_some_and(|o| o.tracked.is_some() && o.state.load(Ordering::Acquire) == OWNED)
    }

    fn range(&self, offset: usize, len: usize) -> Result<(), Error> {
        match offset.checked_add(len) {
            Some(end) if end <= self.size() => Ok(()),
            _ => Err(Error::OutOfBounds {
                offset,
                end: offset.saturating_add(len),
                size: self.size(),
            }),
        }
    }

    /// Copies `buf.len()` bytes at `offset` into `buf`.
    ///
    /// # Errors
    ///
    /// [`Error::OutOfBounds`] when the range does not fit.
    pub fn read_at(&self, offset: usize, buf: &mut [u8]) -> Result<(), Error> {
        self.range(offset, buf.len())?;
        let base = self.seg.as_ptr();
        let mut i = 0;
        while i < buf.len() {
            let at = offset + i;
            // SAFETY: `at` is inside the mapping (range checked above).
            let p = unsafe { base.add(at) };
            if at.is_multiple_of(8) && i + 8 <= buf.len() {
                // SAFETY: 8 bytes in bounds, 8-aligned (the mapping is page
                // aligned); every safe access to this memory is atomic.
                let w = unsafe { (*p.cast::<AtomicU64>()).load(Ordering::Relaxed) };
                buf[i..i + 8].copy_from_slice(&w.to_ne_bytes());
                i += 8;
            } else {
                // SAFETY: in bounds; every safe access is atomic.
                buf[i] = unsafe { (*p.cast::<AtomicU8>()).load(Ordering::Relaxed) };
                i += 1;
            }
        }
        Ok(())
    }

    /// Copies `data` to `offset`.
    ///
    /// # Errors
    ///
    /// [`Error::OutOfBounds`] when the range does not fit.
    pub fn write_at(&self, offset: usize, data: &[u8]) -> Result<(), Error> {
        self.range(offset, data.len())?;
        let base = self.seg.as_ptr();
        let mut i = 0;
        while i < data.len() {
            let at = offset + i;
            // SAFETY: `at` is inside the mapping (range checked above).
            let p = unsafe { base.add(at) };
            if at.is_multiple_of(8) && i + 8 <= data.len() {
                let mut w = [0u8; 8];
                w.copy_from_slice(&data[i..i + 8]);
                // SAFETY: as in `read_at`.
                unsafe { (*p.cast::<AtomicU64>()).store(u64::from_ne_bytes(w), Ordering::Relaxed) };
                i += 8;
            } else {
                // SAFETY: as in `read_at`.
                unsafe { (*p.cast::<AtomicU8>()).store(data[i], Ordering::Relaxed) };
                i += 1;
            }
        }
        Ok(())
    }

    /// The bytes as a slice.
    ///
    /// # Safety
    ///
    /// While the slice lives, no thread of any process writes the memory
    /// (through any handle, `write_at` included).
    pub unsafe fn as_slice(&self) -> &[u8] {
        // SAFETY: the mapping is `size` bytes and lives as long as `self`;
        // no writer by the caller's contract.
        unsafe { std::slice::from_raw_parts(self.seg.as_ptr(), self.size()) }
    }

    /// The bytes as a mutable slice.
    ///
    /// # Safety
    ///
    /// While the slice lives, no other thread of any process reads or writes
    /// the memory, and this thread makes no other reference to it.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn as_mut_slice(&self) -> &mut [u8] {
        // SAFETY: as in `as_slice`; exclusive by the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.seg.as_ptr(), self.size()) }
    }

    /// Pointer to the first byte in this process's mapping.
    pub fn as_ptr(&self) -> *mut u8 {
        self.seg.as_ptr()
    }

    /// Removes the name, so that no new process can attach; mappings stay
    /// valid. Only the creating handle (or a clone of it) may unlink.
    ///
    /// # Errors
    ///
    /// [`Error::NotOwner`] for a handle that attached;
    /// [`Error::AlreadyUnlinked`] when this handle's name was unlinked
    /// already; [`Error::NotFound`] when someone else removed the name.
    pub fn unlink(&self) -> Result<(), Error> {
        let owner = self.owner.as_ref().ok_or_else(|| Error::NotOwner {
            name: self.name.clone(),
        })?;
        if owner.state.swap(UNLINKED, Ordering::AcqRel) == UNLINKED {
            return Err(Error::AlreadyUnlinked {
                name: self.name.clone(),
            });
        }
        let r = Segment::unlink_named(&self.name).map_err(|e| map_err(e, &self.name));
        // Unlinked here or by someone else: either way the tracker has
        // nothing left to do for this object.
        owner.untrack();
        r
    }

    /// Keeps the name when the creating handles go and after the program
    /// ends: neither `Drop` nor the program's tracker unlinks it (Python's
    /// `SharedMemory(..., track=False)`); `unlink` still works.
    ///
    /// ```
    /// use mp_shm::SharedMemory;
    ///
    /// let name = format!("mp-shm-doc-persist-{}", std::process::id());
    /// drop(SharedMemory::create(&name, 64)?.into_persistent());
    /// let again = SharedMemory::attach(&name)?;   // still there
    /// drop(again);
    /// mp_os::segment::Segment::unlink_named(&name)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn into_persistent(self) -> SharedMemory {
        if let Some(o) = &self.owner
            && o.state
                .compare_exchange(OWNED, PERSISTENT, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            o.untrack();
        }
        self
    }

    /// Unmaps this handle's view (Python's `close()`); the name is unlinked
    /// if this was the last creating handle (see the type docs).
    pub fn close(self) {
        drop(self);
    }
}

impl fmt::Debug for SharedMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedMemory")
            .field("name", &self.name)
            .field("size", &self.size())
            .field("owner", &self.is_owner())
            .finish()
    }
}

#[derive(Serialize)]
struct WireRef<'a> {
    seg: &'a Segment,
    name: &'a str,
}

#[derive(Deserialize)]
struct Wire {
    // Named objects cannot be sealed against resizing (see mp_os::segment).
    #[serde(deserialize_with = "Segment::deserialize_named")]
    seg: Segment,
    name: String,
}

/// Serializes the mapping and the name; the deserialized handle maps the
/// same memory and is an attacher (it never unlinks).
impl Serialize for SharedMemory {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        WireRef {
            seg: &self.seg,
            name: &self.name,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for SharedMemory {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = Wire::deserialize(d)?;
        check_name(&w.name).map_err(serde::de::Error::custom)?;
        Ok(SharedMemory {
            seg: w.seg,
            name: w.name,
            owner: None,
        })
    }
}
