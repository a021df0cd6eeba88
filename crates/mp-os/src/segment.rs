//! Shared mappings: anonymous memfd segments and named POSIX shared memory.
//!
//! # Anonymous segments
//!
//! [`Segment::anonymous`] creates a memfd (`memfd_create(2)`), sizes it and
//! maps it `MAP_SHARED` (memmap2's `map_anon` is `MAP_PRIVATE`, which a forked
//! child would copy rather than share). The segment has no name in any file
//! system: the kernel frees it when the last process closes its descriptor
//! and unmaps it, so a crash leaks nothing in `/dev/shm`.
//!
//! # Object layout
//!
//! Every shared object in the workspace (a lock, a value, a queue ring, ...)
//! lives in a segment that starts with a [`Header`]:
//!
//! ```text
//! offset  size  field
//!      0     4  magic        four ASCII bytes naming the object kind
//!      4     4  version      layout version of that kind
//!      8     8  payload_len  bytes after the header
//!     16     8  id           random and non-zero: tells this object from any other
//!     24     8  pending      handles sent through /proc that no receiver has
//!                            attached yet (see "Handles outside a transport")
//!     32    32  reserved     zero
//!     64     -  payload      the object's own #[repr(C)] layout
//! ```
//!
//! A process that attaches to a segment checks magic and version before it
//! touches the payload, so two builds with different layouts refuse to talk
//! instead of corrupting each other.
//!
//! # Handles outside a transport
//!
//! A segment serialized outside a descriptor transport travels as
//! `/proc/PID/fd/N` (see [`crate::handle`]), which the receiver checks
//! against the object's device and inode, and for an object segment
//! against its `id` as well: a receiver attaches to the very object that
//! was sent or gets an error, never another object. So that the common
//! case works (a value created, put into a queue and dropped at once), the
//! sender of an object segment keeps it alive in a small table of exports
//! until its receivers have attached: each send adds one to the header's
//! `pending` count (the serialized handle carries a non-zero ticket that
//! says so), each receiver takes one off once it has mapped the segment,
//! and the sender drops its entry (one per object, however many sends)
//! once `pending` is back to 0, the next time it creates an object or
//! drops a segment (not while it encodes a message: unmapping a large
//! segment takes milliseconds). A burst of sends is let go when its last
//! receiver attached. The count is shared by every process that sends the
//! object, so one sender may keep it longer than its own receivers need,
//! never shorter. The table holds at most 1,024 entries and 1 GiB of
//! segments, oldest out first (bytes that nobody decodes cannot pin
//! objects for ever). None of this helps
//! once the sending process has exited: its objects can then only be
//! reached through a process that still holds them, and the receiver's
//! error says so.
//!
//! # Seals
//!
//! A memfd that one holder shrinks kills every other holder that touches
//! the lost pages (`SIGBUS`). Anonymous segments are therefore sealed
//! (`F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL`) right after they are sized,
//! and a segment received from another process ([`Segment`]'s
//! `Deserialize`, [`Segment::check`]) must carry those seals and the size it
//! was mapped with: an unsealed or short object is an error, not a mapping
//! that a peer can pull from under us. Named objects (`/dev/shm`) cannot be
//! sealed; they are attached by name ([`Segment::open_named`]) or with
//! [`Segment::deserialize_named`], and anyone holding the name can resize
//! them, as with POSIX shared memory in any language.
//!
//! ```
//! use mp_os::segment::Segment;
//!
//! let seg = Segment::object(*b"DEMO", 1, 128)?;
//! seg.check(*b"DEMO", 1)?;
//! assert!(seg.check(*b"DEMO", 2).is_err());
//! assert_eq!(seg.payload_len(), 128);
//! # Ok::<(), std::io::Error>(())
//! ```

use std::cell::UnsafeCell;
use std::fmt;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::Once;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering::*};

use memmap2::{MmapOptions, MmapRaw};
use rustix::fs::{
    MemfdFlags, Mode, SealFlags, fcntl_add_seals, fcntl_get_seals, fstat, ftruncate, memfd_create,
};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::handle::{self, Fd};

/// The header every shared object starts with (see the module docs).
#[repr(C)]
#[derive(Debug)]
pub struct Header {
    magic: [u8; 4],
    version: u32,
    payload_len: u64,
    id: u64,
    pending: AtomicU64,
    _reserved: [u8; 32],
}

/// Size of [`Header`]: the payload starts this many bytes into a segment,
/// on a cache-line boundary.
pub const HEADER_SIZE: usize = 64;
const _: () = assert!(std::mem::size_of::<Header>() == HEADER_SIZE);

/// The seals every anonymous segment carries (see the module docs).
const RESIZE_SEALS: SealFlags = SealFlags::SHRINK
    .union(SealFlags::GROW)
    .union(SealFlags::SEAL);

/// A shared mapping of a memfd or a named shared-memory object.
///
/// Cloning is cheap (a reference count) and shares the same memory. The
/// mapping stays valid as long as any clone exists in this process.
///
/// A `Segment` is `Serialize`: serialized inside a transport that carries
/// file descriptors (process arguments, pipes to a child), it re-attaches to
/// the same memory on the other side; see [`crate::handle`].
///
/// ```
/// use mp_os::segment::Segment;
///
/// let seg = Segment::anonymous("doc", 64)?;
/// // SAFETY: the segment is 64 bytes and nobody else uses it yet.
/// unsafe { seg.as_ptr().write(7) };
/// let twin = seg.clone();
/// // SAFETY: same mapping, in bounds.
/// assert_eq!(unsafe { twin.as_ptr().read() }, 7);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct Segment {
    inner: Arc<Inner>,
}

struct Inner {
    map: MmapRaw,
    fd: OwnedFd,
    /// The header's `id` for an object segment, 0 otherwise.
    id: u64,
}

impl fmt::Debug for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Segment")
            .field("ptr", &self.as_ptr())
            .field("len", &self.len())
            .finish()
    }
}

fn raise_fd_limit_once() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Large objects and channels own one memfd each (small ones share
        // arenas): lift the soft limit on open files to the hard limit, as
        // a program with many channels needs.
        let lim = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        if let (Some(cur), Some(max)) = (lim.current, lim.maximum)
            && cur < max
        {
            let new = rustix::process::Rlimit {
                current: Some(max),
                maximum: Some(max),
            };
            let _ = rustix::process::setrlimit(rustix::process::Resource::Nofile, new);
        }
    });
}

impl Segment {
    /// Creates an anonymous shared segment of `len` bytes, zero-filled.
    ///
    /// `name` only labels the memfd (it shows in `/proc/PID/fd`); it need
    /// not be unique.
    ///
    /// # Errors
    ///
    /// `InvalidInput` when `len` is zero; the OS error when the memfd cannot
    /// be created, sized or mapped.
    pub fn anonymous(name: &str, len: usize) -> io::Result<Segment> {
        if len == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a shared segment cannot be empty",
            ));
        }
        raise_fd_limit_once();
        let fd = memfd_create(name, MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)?;
        ftruncate(&fd, len as u64)?;
        fcntl_add_seals(&fd, RESIZE_SEALS)?;
        Segment::map(fd, len)
    }

    /// Creates an anonymous segment holding an object: a [`Header`] with
    /// `magic` and `version`, followed by `payload_len` zeroed bytes.
    ///
    /// # Errors
    ///
    /// As [`Segment::anonymous`].
    pub fn object(magic: [u8; 4], version: u32, payload_len: usize) -> io::Result<Segment> {
        let name = format!("mp-{}", String::from_utf8_lossy(&magic).to_lowercase());
        sweep_exports();
        let mut seg = Segment::anonymous(&name, HEADER_SIZE + payload_len.max(1))?;
        let id = random_id();
        let header = Header {
            magic,
            version,
            payload_len: payload_len as u64,
            id,
            pending: AtomicU64::new(0),
            _reserved: [0; 32],
        };
        // SAFETY: the mapping is at least HEADER_SIZE bytes, page aligned,
        // and no other process can see it yet.
        unsafe { seg.as_ptr().cast::<Header>().write(header) };
        Arc::get_mut(&mut seg.inner)
            .expect("a new segment has one handle")
            .id = id;
        Ok(seg)
    }

    /// Maps an existing shared-memory descriptor (a memfd, or a named
    /// object opened with `shm_open`) over its whole size.
    ///
    /// # Errors
    ///
    /// `InvalidData` for an empty object; the OS error when it cannot be
    /// mapped.
    pub fn from_fd(fd: OwnedFd) -> io::Result<Segment> {
        let st = fstat(&fd)?;
        let len = usize::try_from(st.st_size).map_err(|_| io::Error::other("segment size"))?;
        if len == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the shared object has size 0",
            ));
        }
        Segment::map(fd, len)
    }

    fn map(fd: OwnedFd, len: usize) -> io::Result<Segment> {
        let file = File::from(fd);
        let map = MmapOptions::new().len(len).map_raw(&file)?;
        Ok(Segment {
            inner: Arc::new(Inner {
                map,
                fd: file.into(),
                id: 0,
            }),
        })
    }

    /// Creates a named POSIX shared-memory object (`/dev/shm/NAME`) of
    /// `len` bytes and maps it. Fails with `AlreadyExists` if the name is
    /// taken.
    ///
    /// # Errors
    ///
    /// `AlreadyExists`, `InvalidInput` (bad name or zero length), or the OS
    /// error.
    pub fn create_named(name: &str, len: usize) -> io::Result<Segment> {
        let name = shm_name(name)?;
        if len == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a shared segment cannot be empty",
            ));
        }
        let fd = rustix::shm::open(
            name.as_str(),
            rustix::shm::OFlags::CREATE | rustix::shm::OFlags::EXCL | rustix::shm::OFlags::RDWR,
            Mode::RUSR | Mode::WUSR,
        )?;
        if let Err(e) = ftruncate(&fd, len as u64) {
            let _ = rustix::shm::unlink(name.as_str());
            return Err(e.into());
        }
        Segment::map(fd, len)
    }

    /// Opens and maps an existing named shared-memory object.
    ///
    /// # Errors
    ///
    /// `NotFound` if no object has that name, or the OS error.
    pub fn open_named(name: &str) -> io::Result<Segment> {
        let name = shm_name(name)?;
        let fd = rustix::shm::open(name.as_str(), rustix::shm::OFlags::RDWR, Mode::empty())?;
        Segment::from_fd(fd)
    }

    /// Removes a named shared-memory object's name. Mappings stay valid.
    ///
    /// # Errors
    ///
    /// `NotFound` if no object has that name.
    pub fn unlink_named(name: &str) -> io::Result<()> {
        let name = shm_name(name)?;
        rustix::shm::unlink(name.as_str())?;
        Ok(())
    }

    /// Start of the mapping.
    pub fn as_ptr(&self) -> *mut u8 {
        self.inner.map.as_mut_ptr()
    }

    /// Length of the mapping in bytes.
    pub fn len(&self) -> usize {
        self.inner.map.len()
    }

    /// Always false: segments are never empty.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The descriptor behind the mapping.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.inner.fd.as_fd()
    }

    /// Whether two handles share the same mapping in this process.
    pub fn ptr_eq(&self, other: &Segment) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Checks the object [`Header`] (see the module docs).
    ///
    /// # Errors
    ///
    /// `InvalidData` when the segment is not sealed against resizing (see
    /// [`Segment::check_sealed`]), is too small, or holds another kind or
    /// version of object.
    pub fn check(&self, magic: [u8; 4], version: u32) -> io::Result<()> {
        self.check_sealed()?;
        if self.len() < HEADER_SIZE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "shared segment too small for a header",
            ));
        }
        // SAFETY: at least HEADER_SIZE bytes are mapped; the header is
        // written once by the creator before the segment is shared.
        let h = unsafe { &*self.as_ptr().cast::<Header>() };
        if h.magic != magic {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "shared segment holds a {:?} object, expected {:?}",
                    String::from_utf8_lossy(&h.magic),
                    String::from_utf8_lossy(&magic)
                ),
            ));
        }
        if h.version != version {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "shared object layout version {} (this build uses {version})",
                    h.version
                ),
            ));
        }
        if (h.payload_len as usize).saturating_add(HEADER_SIZE) > self.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "shared object larger than its segment",
            ));
        }
        Ok(())
    }

    /// Checks that the segment is a memfd sealed against resizing
    /// (`F_SEAL_SHRINK | F_SEAL_GROW`) whose size is still the size of the
    /// mapping: then no holder can shrink it under the others (see the
    /// module docs).
    ///
    /// ```
    /// use mp_os::segment::Segment;
    ///
    /// Segment::anonymous("sealed", 4096)?.check_sealed()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// `InvalidData` for a descriptor that is not a sealed memfd of the
    /// mapped size.
    pub fn check_sealed(&self) -> io::Result<()> {
        let bad = |m: String| io::Error::new(io::ErrorKind::InvalidData, m);
        let seals = fcntl_get_seals(self.fd())
            .map_err(|e| bad(format!("the shared segment is not a memfd ({e})")))?;
        if !seals.contains(SealFlags::SHRINK | SealFlags::GROW) {
            return Err(bad(
                "the shared segment is not sealed against resizing: another process could \
                 shrink it under us"
                    .into(),
            ));
        }
        let size = fstat(self.fd())?.st_size;
        if u64::try_from(size).ok() != Some(self.len() as u64) {
            return Err(bad(format!(
                "the shared segment has {size} bytes, {} were mapped",
                self.len()
            )));
        }
        Ok(())
    }

    /// Length of the payload after the header, as recorded in it, and never
    /// more than the mapping holds after the header (0 for a segment too
    /// small to have a header).
    pub fn payload_len(&self) -> usize {
        if self.len() < HEADER_SIZE {
            return 0;
        }
        // SAFETY: at least HEADER_SIZE bytes are mapped; `payload_len` is
        // written once by the creator before the segment is shared.
        let recorded = unsafe { (*self.as_ptr().cast::<Header>()).payload_len };
        usize::try_from(recorded).map_or(usize::MAX, |n| n.min(self.len() - HEADER_SIZE))
    }

    /// Start of the payload (just after the header), or `None` for a
    /// segment too small to hold a header (a segment that passed
    /// [`Segment::check`] never is). The payload is
    /// [`payload_len`](Segment::payload_len) bytes long; a typed view of
    /// it, with its bounds checked once, is an
    /// [`Object`](crate::object::Object).
    ///
    /// ```
    /// use mp_os::segment::Segment;
    ///
    /// let seg = Segment::object(*b"DEMO", 1, 8)?;
    /// let p = seg.payload().expect("an object segment has a header");
    /// // SAFETY: the payload holds 8 bytes, 64-byte aligned, unshared.
    /// unsafe { p.cast::<u64>().write(7) };
    /// assert!(Segment::anonymous("short", 16)?.payload().is_none());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn payload(&self) -> Option<NonNull<u8>> {
        if self.len() < HEADER_SIZE {
            return None;
        }
        // SAFETY: HEADER_SIZE is within (or one past the end of) the
        // mapping, and a pointer into a live mapping is not null.
        Some(unsafe { NonNull::new_unchecked(self.as_ptr().add(HEADER_SIZE)) })
    }
}

fn shm_name(name: &str) -> io::Result<String> {
    let bare = name.strip_prefix('/').unwrap_or(name);
    if bare.is_empty() || bare.len() > 250 || bare.contains('/') || bare.contains('\0') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid shared memory name {name:?}: use 1-250 characters without '/'"),
        ));
    }
    Ok(format!("/{bare}"))
}

#[derive(Serialize)]
struct WireOut<'a> {
    fd: Fd<BorrowedFd<'a>>,
    /// The header's `id` (0: not an object segment, nothing to check).
    id: u64,
    /// The export's ticket (0: none, inside a transport).
    ticket: u64,
}

#[derive(Deserialize)]
struct WireIn {
    fd: Fd<OwnedFd>,
    id: u64,
    ticket: u64,
}

/// Outside a transport, an object segment stays in the table of exports
/// until a receiver has attached (see the module docs).
impl Serialize for Segment {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let ticket = if self.inner.id != 0 && !handle::in_transport() {
            export(self)
        } else {
            0
        };
        let r = WireOut {
            fd: Fd(self.fd()),
            id: self.inner.id,
            ticket,
        }
        .serialize(s);
        if r.is_err() && ticket != 0 {
            // Nobody will receive it: as if it had been received.
            if let Some(h) = self.header() {
                h.ack();
            }
        }
        r
    }
}

/// Attaches to a segment sent by another process; it must be a memfd
/// sealed against resizing ([`Segment::check_sealed`]).
impl<'de> Deserialize<'de> for Segment {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Segment, D::Error> {
        let w = WireIn::deserialize(d)?;
        Segment::receive(w).map_err(handle::attach_error)
    }
}

impl Segment {
    /// Attaches to a segment sent by another process without requiring
    /// seals: for named shared memory, which cannot be sealed (any holder
    /// of the name may resize it). Object handles use the sealed
    /// `Deserialize` instead.
    ///
    /// ```
    /// use mp_os::segment::Segment;
    ///
    /// #[derive(serde::Deserialize)]
    /// struct Named {
    ///     #[serde(deserialize_with = "Segment::deserialize_named")]
    ///     seg: Segment,
    /// }
    /// let seg = Segment::anonymous("doc", 64)?;
    /// let bytes = postcard::to_allocvec(&(&seg,)).unwrap();
    /// let back: Named = postcard::from_bytes(&bytes).unwrap();
    /// assert_eq!(back.seg.len(), 64);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`handle::deserialize_fd`], and when the object is empty or
    /// cannot be mapped.
    pub fn deserialize_named<'de, D: Deserializer<'de>>(d: D) -> Result<Segment, D::Error> {
        // A named object has no header: `id` and `ticket` are 0 (and are
        // not trusted: nothing is read from an unsealed segment here).
        let w = WireIn::deserialize(d)?;
        Segment::from_fd(w.fd.0).map_err(serde::de::Error::custom)
    }

    /// Attaches to a received sealed segment; for an object segment, checks
    /// that it is the object that was sent and acknowledges its export.
    fn receive(w: WireIn) -> io::Result<Segment> {
        let mut seg = Segment::from_fd(w.fd.0)?;
        seg.check_sealed()?;
        if w.id == 0 {
            return Ok(seg);
        }
        let other = || {
            io::Error::new(
                io::ErrorKind::InvalidData,
                "the received descriptor refers to another shared object than the one sent \
                 (the sender let go of it before it was received)",
            )
        };
        let Some(h) = seg.header() else {
            return Err(other());
        };
        if h.id != w.id {
            return Err(other());
        }
        if w.ticket != 0 {
            // Tell the sender it may let go of its export (see the module
            // docs).
            h.ack();
        }
        Arc::get_mut(&mut seg.inner)
            .expect("a new segment has one handle")
            .id = w.id;
        Ok(seg)
    }

    /// The object header, if the segment is large enough for one.
    /// (A peer can write anything into it: only its atomics are relied
    /// on after the checks of `receive`.)
    fn header(&self) -> Option<&Header> {
        // SAFETY: at least HEADER_SIZE bytes are mapped, page aligned; the
        // plain fields are written once before the segment is shared, the
        // others are atomics.
        (self.len() >= HEADER_SIZE).then(|| unsafe { &*self.as_ptr().cast::<Header>() })
    }
}

// ------------------------------------------------------------- exports

impl Header {
    /// One handle sent through `/proc` was received (never below 0).
    fn ack(&self) {
        let _ = self
            .pending
            .fetch_update(AcqRel, Acquire, |p| p.checked_sub(1));
    }
}

/// An object segment serialized outside a transport, kept until its
/// receivers have attached (see the module docs).
struct Export {
    seg: Segment,
}

/// Most exports kept at once, and most bytes of segments; the oldest goes
/// first.
const MAX_EXPORTS: usize = 1024;
const MAX_EXPORT_BYTES: usize = 1 << 30;

/// The table of exports, behind a spin lock whose word is the pid of the
/// holding process: a child forked while another thread of its parent held
/// it takes it over (that thread does not exist in the child).
struct Exports {
    lock: AtomicU32,
    /// The process the list belongs to (a forked child starts afresh).
    owner: AtomicU32,
    /// Entries, for a cheap check before taking the lock.
    len: AtomicUsize,
    list: UnsafeCell<Vec<Export>>,
}

// SAFETY: `list` is only touched with `lock` held by this process.
unsafe impl Sync for Exports {}

static EXPORTS: Exports = Exports {
    lock: AtomicU32::new(0),
    owner: AtomicU32::new(0),
    len: AtomicUsize::new(0),
    list: UnsafeCell::new(Vec::new()),
};

fn with_exports<R>(f: impl FnOnce(&mut Vec<Export>) -> R) -> R {
    let me = std::process::id();
    loop {
        match EXPORTS.lock.compare_exchange_weak(0, me, Acquire, Relaxed) {
            Ok(_) => break,
            Err(held) if held != 0 && held != me => {
                // Held at fork time by a thread of the parent: the list may
                // be half-updated, so it is forgotten, not dropped.
                if EXPORTS
                    .lock
                    .compare_exchange(held, me, Acquire, Relaxed)
                    .is_ok()
                {
                    // SAFETY: we hold the lock now; nobody else in this
                    // process can (the parent's holder is not here).
                    std::mem::forget(std::mem::take(unsafe { &mut *EXPORTS.list.get() }));
                    EXPORTS.owner.store(me, Relaxed);
                    break;
                }
            }
            Err(_) => std::thread::yield_now(),
        }
    }
    // SAFETY: we hold the lock.
    let list = unsafe { &mut *EXPORTS.list.get() };
    if EXPORTS.owner.swap(me, Relaxed) != me {
        // Inherited from the parent: its exports are its own business.
        list.clear();
    }
    let r = f(list);
    EXPORTS.len.store(list.len(), Relaxed);
    EXPORTS.lock.store(0, Release);
    r
}

/// Drops the exports whose receivers have all attached.
fn sweep(list: &mut Vec<Export>) {
    list.retain(|e| e.seg.header().is_some_and(|h| h.pending.load(Acquire) != 0));
}

/// A cheap check first: one load when nothing is exported. Skipped while
/// this process's table is locked (a segment dropped by a sweep).
fn sweep_exports() {
    if EXPORTS.len.load(Relaxed) != 0 && EXPORTS.lock.load(Relaxed) != std::process::id() {
        with_exports(sweep);
    }
}

/// Keeps `seg` until its receivers have attached; returns the ticket the
/// handle carries (non-zero: acknowledge).
fn export(seg: &Segment) -> u64 {
    if let Some(h) = seg.header() {
        // Before the handle exists: a receiver never acknowledges a send
        // that was not counted.
        h.pending.fetch_add(1, AcqRel);
    }
    // No sweep here: this runs while a message is being encoded, and
    // dropping a swept segment unmaps it (milliseconds for a large one),
    // which would delay the message. The sender's next segment drop (the
    // sent handle's own, right after the message is written) sweeps.
    with_exports(|list| {
        if !list.iter().any(|e| Arc::ptr_eq(&e.seg.inner, &seg.inner)) {
            list.push(Export { seg: seg.clone() });
        }
        let mut bytes: usize = list.iter().map(|e| e.seg.len()).sum();
        while list.len() > MAX_EXPORTS || (bytes > MAX_EXPORT_BYTES && list.len() > 1) {
            bytes -= list.remove(0).seg.len();
        }
    });
    1
}

/// Sending a segment outside a transport keeps it in the table of exports
/// until its receivers have attached; dropping any segment lets go of
/// those whose receivers all did (see the module docs).
impl Drop for Segment {
    fn drop(&mut self) {
        sweep_exports();
    }
}

/// A random non-zero 64-bit value.
fn random_id() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    loop {
        // Each RandomState has fresh keys (random per thread, then stepped).
        let v = RandomState::new().hash_one((
            COUNTER.fetch_add(1, Relaxed),
            std::process::id(),
            crate::time::monotonic_ns(),
        ));
        if v != 0 {
            return v;
        }
    }
}

#[cfg(test)]
mod tests;
