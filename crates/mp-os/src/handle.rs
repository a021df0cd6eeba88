//! How handles that hold file descriptors travel between processes.
//!
//! Handles in this workspace (shared values, locks, queues, pipe ends,
//! segments) are serde values. Most of them are a shared-memory segment, and
//! a segment is a file descriptor. A descriptor cannot be written as bytes,
//! so serialization goes through one of two routes, decided here once for
//! every crate:
//!
//! 1. **Inside a transport** that can carry descriptors (the arguments of a
//!    new process, the bootstrap socket of a child, a manager connection),
//!    the sender wraps serialization in [`collect_fds`]: each descriptor is
//!    duplicated into a side table and only its index is written. The
//!    transport sends the table with `SCM_RIGHTS` (or lets a forked child
//!    inherit it), and the receiver wraps deserialization in
//!    [`provide_fds`], where each index takes its descriptor back.
//! 2. **Outside any transport** (a handle sent through a shared-memory queue,
//!    or serialized by a user), the sender writes its liveness token (pid
//!    and start-time stamp), the descriptor number and the identity of the
//!    object (device and inode), and the receiver opens `/proc/PID/fd/N`.
//!    This re-opens a memfd or shared-memory object of a process of the same
//!    user while that process is alive; it does not work for sockets or
//!    eventfds, and the error says so. What the link names is checked before
//!    it is opened (a regular file with the recorded identity), so a forged
//!    handle cannot make the receiver open a FIFO, a terminal or a device.
//!
//! # The rule for the `/proc` route
//!
//! A descriptor number is reused as soon as its owner closes it, so the
//! receiver checks that the object it opened has the identity the sender
//! recorded: a decoded handle is the very object that was sent, or an error
//! that says why (the sender exited, or it let go of the object before the
//! receiver attached); never another object. Object segments
//! ([`Segment`](crate::segment::Segment)) also keep themselves alive in the
//! sender until a receiver has attached, so dropping a value right after
//! putting it into a queue is fine while the sending process lives (see
//! `segment`). Inside a transport (1.) none of this applies: the
//! descriptors themselves travel. A receiver that does not trust its peer
//! uses [`provide_fds_strict`], which refuses the `/proc` form.
//!
//! Device and inode name one object among the live ones; memfd and tmpfs
//! inode numbers are not handed out again soon after an object dies, and
//! object segments carry a random 64-bit id that is checked as well.
//!
//! ```
//! use std::os::fd::AsFd;
//! use mp_os::handle;
//!
//! let file = std::fs::File::open("/dev/null")?;
//! // A descriptor in a serde value: `Fd` (or `serialize_fd` in a
//! // `serialize_with`).
//! let (bytes, fds) = handle::collect_fds(|| postcard::to_allocvec(&handle::Fd(file.as_fd())));
//! assert_eq!(fds.len(), 1); // the descriptor went to the side table
//! assert!(bytes.is_ok());
//! # Ok::<(), std::io::Error>(())
//! ```

use std::cell::RefCell;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

thread_local! {
    static SINK: RefCell<Option<Sink>> = const { RefCell::new(None) };
    static SOURCE: RefCell<Option<Source>> = const { RefCell::new(None) };
    static LAST_ERROR: RefCell<Option<String>> = const { RefCell::new(None) };
    static HANDED_NEXT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Records why a handle could not be re-attached on this thread, for
/// [`take_attach_error`].
fn note_error(message: &str) {
    LAST_ERROR.with(|e| *e.borrow_mut() = Some(message.to_string()));
}

/// A deserialization error for a handle that cannot be re-attached, whose
/// message [`take_attach_error`] keeps for formats that drop it.
///
/// ```
/// let e: postcard::Error = mp_os::handle::attach_error("the segment is too small");
/// assert!(matches!(e, postcard::Error::SerdeDeCustom));
/// assert_eq!(mp_os::handle::take_attach_error().unwrap(), "the segment is too small");
/// ```
pub fn attach_error<E: serde::de::Error>(message: impl std::fmt::Display) -> E {
    let m = message.to_string();
    note_error(&m);
    E::custom(m)
}

/// Why the last handle that failed to re-attach on this thread failed, and
/// forgets it. Formats such as postcard drop the message of a custom
/// deserialization error; a channel that gets a decoding error asks here so
/// that its error can say why (the sender exited, it let go of the object,
/// the descriptor is not the object that was sent, ...).
///
/// ```
/// use mp_os::handle;
/// use mp_os::segment::Segment;
///
/// let seg = Segment::anonymous("doc", 64)?;
/// let bytes = postcard::to_allocvec(&seg).unwrap();
/// let r = handle::provide_fds_strict(Vec::new(), || postcard::from_bytes::<Segment>(&bytes));
/// assert!(r.is_err());
/// assert!(handle::take_attach_error().unwrap().contains("/proc"));
/// assert!(handle::take_attach_error().is_none());
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn take_attach_error() -> Option<String> {
    LAST_ERROR.with(|e| e.borrow_mut().take())
}

/// The descriptor table a sender installed.
struct Sink {
    fds: Vec<OwnedFd>,
    /// Descriptors sent once for several handles ([`serialize_shared_fd`]):
    /// the caller's key and the index.
    shared: Vec<((u64, u64), u32)>,
    /// The transits the caller keeps ([`collect_handles`]); `None` for
    /// [`collect_fds`].
    keep: Option<Vec<Box<dyn Transit>>>,
}

/// The descriptor table a receiver installed.
struct Source {
    table: Vec<Option<OwnedFd>>,
    /// Refuse the `/proc` form (an untrusted peer).
    strict: bool,
    /// The sender handed the bytes' [`Transits`] over to this process.
    handed: bool,
}

/// The wire form of a descriptor inside a serialized handle.
#[derive(Serialize, Deserialize, Debug)]
enum WireFd {
    /// Index into the descriptor table sent beside the bytes.
    Passed(u32),
    /// Re-open `/proc/{pid}/fd/{fd}` (pid = the tid part of `token`), and
    /// check that it is still the object `dev`/`ino`.
    Proc {
        token: u32,
        fd: i32,
        dev: u64,
        ino: u64,
    },
    /// Index into the descriptor table, which other handles of the same
    /// bytes may name too: each takes a duplicate.
    Shared(u32),
}

/// Runs `f` (which serializes handles) with a descriptor table installed,
/// and returns its result with the descriptors that the serialized bytes
/// refer to, in index order. Nested calls each get their own table.
///
/// A channel handle serialized here stays connected while its bytes travel
/// (the sender registers once more on its behalf) until a receiver decodes
/// it, which releases that registration: decode such bytes exactly once,
/// or, for a carrier that may deliver them to no receiver or to several,
/// use [`collect_handles`].
pub fn collect_fds<R>(f: impl FnOnce() -> R) -> (R, Vec<OwnedFd>) {
    let (r, sink) = collect(None, f);
    (r, sink.fds)
}

/// As [`collect_fds`], and also returns the [`Transits`] of the handles
/// serialized: what keeps their objects connected while the bytes travel.
/// The caller owns them for as long as the bytes may still be decoded
/// (the carrier: a process's arguments, a task, a message) and drops them,
/// or hands them to the process that received the bytes, when that is
/// over; receivers release nothing. Whatever happens to the carrier
/// (never sent, sent to a process that dies first, decoded by several
/// processes), each registration is released exactly once.
///
/// ```
/// use mp_os::handle;
///
/// let seg = mp_os::segment::Segment::anonymous("doc", 64)?;
/// let (bytes, fds, transits) = handle::collect_handles(|| postcard::to_allocvec(&seg));
/// assert!(bytes.is_ok());
/// assert_eq!(fds.len(), 1);
/// assert!(transits.is_empty()); // a segment needs no registration
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn collect_handles<R>(f: impl FnOnce() -> R) -> (R, Vec<OwnedFd>, Transits) {
    let (r, sink) = collect(Some(Vec::new()), f);
    (r, sink.fds, Transits(sink.keep.unwrap_or_default()))
}

fn collect<R>(keep: Option<Vec<Box<dyn Transit>>>, f: impl FnOnce() -> R) -> (R, Sink) {
    let sink = Sink {
        fds: Vec::new(),
        shared: Vec::new(),
        keep,
    };
    let saved = SINK.with(|s| s.borrow_mut().replace(sink));
    let r = f();
    let sink = SINK
        .with(|s| std::mem::replace(&mut *s.borrow_mut(), saved))
        .expect("installed above");
    (r, sink)
}

/// What keeps a serialized handle's object connected while its bytes
/// travel (a channel end registers once more as a reader or writer): see
/// [`collect_handles`]. Dropping it releases the registration in the
/// process that made it.
pub trait Transit: Send + Sync {
    /// The bytes went to the process whose liveness token is `token`
    /// (`None`: it has already exited): move the registration to it, so
    /// that it lasts as long as that process instead of this one.
    fn hand_over(&self, token: Option<u32>);
}

/// The [`Transit`]s of one serialization ([`collect_handles`]).
///
/// ```
/// let t = mp_os::handle::Transits::default();
/// assert!(t.is_empty());
/// t.hand_over(std::process::id());
/// ```
#[derive(Default)]
pub struct Transits(Vec<Box<dyn Transit>>);

impl std::fmt::Debug for Transits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Transits").field(&self.0.len()).finish()
    }
}

impl Transits {
    /// Whether there is nothing to keep.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The bytes went to process `pid` (a child just started with them):
    /// the registrations now last as long as that process does.
    pub fn hand_over(self, pid: u32) {
        if self.0.is_empty() {
            return;
        }
        let token = crate::liveness::token_of(pid);
        for t in &self.0 {
            t.hand_over(token);
        }
    }

    /// Adds `other`'s transits to these.
    pub fn extend(&mut self, other: Transits) {
        self.0.extend(other.0);
    }
}

/// Says that the next [`provide_fds`] on this thread decodes bytes whose
/// [`Transits`] the sender handed over to this process
/// ([`Transits::hand_over`]: a child decoding its arguments); `false`
/// cancels it. A handle decoded there takes the handed-over registration
/// as its own ([`handed_over`]), so that the process holds the object once,
/// not twice.
///
/// ```
/// mp_os::handle::expect_handed_over(true);
/// assert!(mp_os::handle::provide_fds(Vec::new(), mp_os::handle::handed_over));
/// assert!(!mp_os::handle::provide_fds(Vec::new(), mp_os::handle::handed_over));
/// ```
pub fn expect_handed_over(on: bool) {
    HANDED_NEXT.with(|h| h.set(on));
}

/// Whether the bytes being decoded on this thread came with
/// [`Transits`] that were handed over to this process (see
/// [`expect_handed_over`]).
pub fn handed_over() -> bool {
    SOURCE.with(|s| s.borrow().as_ref().is_some_and(|s| s.handed))
}

/// Whether the descriptor table being collected on this thread keeps
/// [`Transit`]s ([`collect_handles`]); if so, a handle passes its transit
/// with [`keep_in_transit`] and the receiver releases nothing.
pub fn keeps_transits() -> bool {
    SINK.with(|s| s.borrow().as_ref().is_some_and(|s| s.keep.is_some()))
}

/// Hands `t` to the collection running on this thread; gives it back when
/// that collection does not keep transits (see [`keeps_transits`]).
///
/// # Errors
///
/// `t` itself when there is no such collection.
pub fn keep_in_transit(t: Box<dyn Transit>) -> Result<(), Box<dyn Transit>> {
    SINK.with(
        |s| match s.borrow_mut().as_mut().and_then(|s| s.keep.as_mut()) {
            Some(keep) => {
                keep.push(t);
                Ok(())
            }
            None => Err(t),
        },
    )
}

/// Runs `f` (which deserializes handles) with `fds` as the descriptor table
/// that [`collect_fds`] produced on the sending side. Descriptors that `f`
/// does not take are closed when it returns.
pub fn provide_fds<R>(fds: Vec<OwnedFd>, f: impl FnOnce() -> R) -> R {
    provide(fds, false, f)
}

/// As [`provide_fds`], for bytes from a peer that is not trusted: a handle
/// that names a descriptor of some process (`/proc/PID/fd/N`) instead of
/// one passed beside the bytes is refused, so the peer cannot make this
/// process open another process's objects.
///
/// ```
/// use mp_os::handle;
/// use mp_os::segment::Segment;
///
/// let seg = Segment::anonymous("doc", 64)?;
/// let bytes = postcard::to_allocvec(&seg).unwrap(); // the /proc form
/// let r = handle::provide_fds_strict(Vec::new(), || postcard::from_bytes::<Segment>(&bytes));
/// assert!(r.is_err());
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn provide_fds_strict<R>(fds: Vec<OwnedFd>, f: impl FnOnce() -> R) -> R {
    provide(fds, true, f)
}

fn provide<R>(fds: Vec<OwnedFd>, strict: bool, f: impl FnOnce() -> R) -> R {
    let table = fds.into_iter().map(Some).collect();
    let handed = HANDED_NEXT.with(|h| h.replace(false));
    let saved = SOURCE.with(|s| {
        s.borrow_mut().replace(Source {
            table,
            strict,
            handed,
        })
    });
    let r = f();
    SOURCE.with(|s| *s.borrow_mut() = saved);
    r
}

/// Whether a descriptor table is being collected on this thread (a handle
/// that cannot travel by `/proc` can refuse early when it is not).
pub fn in_transport() -> bool {
    SINK.with(|s| s.borrow().is_some())
}

/// Serializes a descriptor as described in the module docs.
///
/// # Errors
///
/// The serializer's error, or a custom error if the descriptor cannot be
/// duplicated.
pub fn serialize_fd<S: Serializer>(fd: BorrowedFd<'_>, s: S) -> Result<S::Ok, S::Error> {
    let wire = SINK.with(|sink| -> Result<WireFd, std::io::Error> {
        let mut sink = sink.borrow_mut();
        match sink.as_mut() {
            Some(sink) => {
                sink.fds.push(fd.try_clone_to_owned()?);
                Ok(WireFd::Passed((sink.fds.len() - 1) as u32))
            }
            None => {
                let (dev, ino) = identity(&rustix::fs::fstat(fd)?);
                Ok(WireFd::Proc {
                    token: crate::liveness::process_token(),
                    fd: fd.as_raw_fd(),
                    dev,
                    ino,
                })
            }
        }
    });
    match wire {
        Ok(w) => w.serialize(s),
        Err(e) => Err(serde::ser::Error::custom(format!(
            "cannot pass a file descriptor: {e}"
        ))),
    }
}

/// As [`serialize_fd`], for a descriptor that many handles of one message
/// may hold (the memfd of a shared arena): inside a transport it is sent
/// once per message, whatever the number of handles, so that a message
/// with thousands of handles carries a handful of descriptors. `key` names
/// the object behind `fd` (its device and inode); the receiver gets a
/// descriptor of its own for each handle.
///
/// ```
/// use std::os::fd::AsFd;
/// use mp_os::handle;
///
/// #[derive(serde::Serialize)]
/// struct Twice<'a>(
///     #[serde(serialize_with = "shared")] &'a std::fs::File,
///     #[serde(serialize_with = "shared")] &'a std::fs::File,
/// );
/// fn shared<S: serde::Serializer>(f: &&std::fs::File, s: S) -> Result<S::Ok, S::Error> {
///     handle::serialize_shared_fd(f.as_fd(), (1, 2), s)
/// }
/// let file = std::fs::File::open("/dev/null")?;
/// let (bytes, fds) = handle::collect_fds(|| postcard::to_allocvec(&Twice(&file, &file)));
/// assert_eq!(fds.len(), 1);
/// let (a, b): (handle::Fd<std::os::fd::OwnedFd>, handle::Fd<std::os::fd::OwnedFd>) =
///     handle::provide_fds(fds, || postcard::from_bytes(&bytes.unwrap())).unwrap();
/// # drop((a, b));
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Errors
///
/// As [`serialize_fd`].
pub fn serialize_shared_fd<S: Serializer>(
    fd: BorrowedFd<'_>,
    key: (u64, u64),
    s: S,
) -> Result<S::Ok, S::Error> {
    let index = SINK.with(|sink| -> Result<Option<u32>, std::io::Error> {
        let mut sink = sink.borrow_mut();
        let Some(sink) = sink.as_mut() else {
            return Ok(None);
        };
        if let Some(&(_, i)) = sink.shared.iter().find(|(k, _)| *k == key) {
            return Ok(Some(i));
        }
        sink.fds.push(fd.try_clone_to_owned()?);
        let i = (sink.fds.len() - 1) as u32;
        sink.shared.push((key, i));
        Ok(Some(i))
    });
    match index {
        Ok(Some(i)) => WireFd::Shared(i).serialize(s),
        Ok(None) => serialize_fd(fd, s),
        Err(e) => Err(serde::ser::Error::custom(format!(
            "cannot pass a file descriptor: {e}"
        ))),
    }
}

/// Deserializes a descriptor written by [`serialize_fd`] or
/// [`serialize_shared_fd`].
///
/// # Errors
///
/// A custom error when the index is not in the table (a corrupt or foreign
/// message, or an index used twice); for the `/proc` form, when the
/// receiver is strict ([`provide_fds_strict`]), when the sender has exited,
/// when it no longer holds the object (the descriptor is closed, or now
/// refers to another object), or when the object cannot be re-opened (a
/// socket or an eventfd).
pub fn deserialize_fd<'de, D: Deserializer<'de>>(d: D) -> Result<OwnedFd, D::Error> {
    use serde::de::Error;
    match WireFd::deserialize(d)? {
        WireFd::Passed(i) => SOURCE.with(|src| {
            let mut src = src.borrow_mut();
            let src = src.as_mut().ok_or_else(|| {
                D::Error::custom(
                    "a handle refers to a passed file descriptor, but none were received",
                )
            })?;
            src.table
                .get_mut(i as usize)
                .and_then(Option::take)
                .ok_or_else(|| D::Error::custom(format!("passed file descriptor #{i} is missing")))
        }),
        WireFd::Shared(i) => SOURCE.with(|src| {
            let src = src.borrow();
            let fd = src
                .as_ref()
                .and_then(|src| src.table.get(i as usize))
                .and_then(Option::as_ref)
                .ok_or_else(|| {
                    D::Error::custom(format!("passed file descriptor #{i} is missing"))
                })?;
            fd.try_clone()
                .map_err(|e| D::Error::custom(format!("cannot duplicate a descriptor: {e}")))
        }),
        WireFd::Proc {
            token,
            fd,
            dev,
            ino,
        } => {
            if SOURCE.with(|s| s.borrow().as_ref().is_some_and(|s| s.strict)) {
                return Err(attach_error(
                    "a handle names a descriptor of another process (/proc/PID/fd/N); this \
                     receiver only accepts descriptors passed with the message",
                ));
            }
            open_proc(token, fd, dev, ino).map_err(attach_error)
        }
    }
}

/// A file descriptor as a serde value: written with [`serialize_fd`] and
/// read back with [`deserialize_fd`], so that it travels as the module
/// docs say. `T` is whatever holds the descriptor: a `BorrowedFd` or a
/// `&File` to send, an `OwnedFd`, `File` or `Arc<OwnedFd>` to receive
/// (anything `AsFd` serializes, anything `From<OwnedFd>` deserializes).
///
/// ```
/// use std::os::fd::{AsFd, OwnedFd};
/// use mp_os::handle::{self, Fd};
///
/// let file = std::fs::File::open("/dev/null")?;
/// let (bytes, fds) = handle::collect_fds(|| postcard::to_allocvec(&Fd(file.as_fd())));
/// let back: Fd<OwnedFd> =
///     handle::provide_fds(fds, || postcard::from_bytes(&bytes.unwrap())).unwrap();
/// assert_ne!(back.0.as_fd().as_raw_fd(), file.as_fd().as_raw_fd()); // a duplicate
/// # use std::os::fd::AsRawFd;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Fd<T>(pub T);

impl<T: AsFd> Serialize for Fd<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_fd(self.0.as_fd(), s)
    }
}

impl<'de, T: From<OwnedFd>> Deserialize<'de> for Fd<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Fd<T>, D::Error> {
        deserialize_fd(d).map(|fd| Fd(T::from(fd)))
    }
}

/// Device and inode: which object a descriptor refers to.
// The fields are `c_ulong` on some targets.
#[allow(clippy::useless_conversion)]
fn identity(st: &rustix::fs::Stat) -> (u64, u64) {
    (u64::from(st.st_dev), u64::from(st.st_ino))
}

/// Re-opens descriptor `fd` of the process `token` names and checks that it
/// is still the object `dev`/`ino`, a regular file (memfd, shared-memory
/// object), both before opening it and after.
fn open_proc(token: u32, fd: i32, dev: u64, ino: u64) -> Result<OwnedFd, String> {
    let pid = crate::liveness::token_tid(token);
    let path = format!("/proc/{pid}/fd/{fd}");
    let gone = || !crate::liveness::token_alive(token);
    let let_go = || {
        format!(
            "cannot re-attach a handle: process {pid} let go of it before it was received \
             ({path} no longer refers to the object it sent); keep a handle alive until the \
             receiver has it, or send it in a process's arguments"
        )
    };
    let exited = || {
        format!(
            "cannot re-attach a handle: process {pid}, which sent it, has exited; handles \
             travel reliably in a process's arguments, and otherwise only while the sending \
             process is alive"
        )
    };
    let cannot = |e: std::io::Error| {
        format!(
            "cannot re-attach a handle through {path} ({e}); only memfds and shared-memory \
             objects can be re-opened this way: other descriptors travel in a process's \
             arguments"
        )
    };
    // What the descriptor is, before opening it: a forged handle must not
    // make this process open a FIFO (which blocks), a terminal (which could
    // become its controlling terminal) or a device. `stat` follows the link
    // to the object itself.
    let is_object = |st: &rustix::fs::Stat| {
        identity(st) == (dev, ino)
            && rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::RegularFile
    };
    match rustix::fs::stat(&path) {
        Ok(st) if is_object(&st) => {}
        Ok(st) if identity(&st) == (dev, ino) => {
            return Err(cannot(std::io::Error::other("not a regular file")));
        }
        // The number was reused: the sender closed the object, or (with
        // the same pid) a new process holds another object there.
        Ok(_) => return Err(if gone() { exited() } else { let_go() }),
        Err(_) if gone() => return Err(exited()),
        Err(rustix::io::Errno::NOENT) => return Err(let_go()),
        Err(e) => return Err(cannot(e.into())),
    }
    // The number may name another object by now: never block or take a
    // terminal on open, and check again what was opened.
    let flags = rustix::fs::OFlags::NOCTTY | rustix::fs::OFlags::NONBLOCK;
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(flags.bits() as i32)
        .open(&path)
    {
        Ok(f) => f,
        Err(_) if gone() => return Err(exited()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(let_go()),
        Err(e) => return Err(cannot(e)),
    };
    let st = rustix::fs::fstat(&file).map_err(|e| format!("cannot re-attach a handle: {e}"))?;
    if !is_object(&st) {
        return Err(if gone() { exited() } else { let_go() });
    }
    // Regular files ignore O_NONBLOCK; cleared all the same, so that the
    // descriptor is what a plain open gives.
    rustix::fs::fcntl_setfl(&file, rustix::fs::OFlags::empty())
        .map_err(|e| format!("cannot re-attach a handle: {e}"))?;
    Ok(OwnedFd::from(file))
}
