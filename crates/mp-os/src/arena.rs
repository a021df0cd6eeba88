//! Shared arenas: many small objects in one memfd.
//!
//! A lock or a value needs a few dozen bytes; giving each one a memfd of its
//! own would cost a descriptor per object, and a process would run out of
//! descriptors after about a thousand of them. Small objects
//! ([`Object::create`](crate::object::Object::create) with a payload of at
//! most [`MAX_PAYLOAD`] bytes) therefore live in slots of shared arenas: one
//! memfd of 1 MiB cut into slots of one size, so that 60,000 objects cost a
//! handful of descriptors in every process that holds them.
//!
//! ```
//! use mp_os::object::{Kind, Object};
//!
//! let a = Object::create(Kind::new(*b"DEMO", 1), 7u64, 0)?;
//! let b = Object::create(Kind::new(*b"DEMO", 1), 8u64, 0)?;
//! // Two objects, one arena (same segment, different slots).
//! assert!(a.segment().ptr_eq(b.segment()));
//! assert_ne!(a.offset(), b.offset());
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # Layout (version 1)
//!
//! The arena is a sealed memfd segment with the usual object header (magic
//! `AREN`), then the arena head, then the slots:
//!
//! ```text
//! offset  size  field
//!      0    64  segment header (magic AREN, version 1)
//!     64     4  slot_size      bytes per slot, one of 128, 256, 512, 1024, 2048, 4096
//!     68     4  slots          number of slots: (segment length - 128) / slot_size
//!     72     4  bump           slots handed out at least once (0..=slots)
//!     76     4  reserved
//!     80     8  free           free list: (tag << 32) | (index + 1), 0 when empty
//!     88     8  live           slots in use now, in every process (a debug counter)
//!     96    32  reserved
//!    128     -  slot i at 128 + i * slot_size, 64-byte aligned
//! ```
//!
//! Each slot starts with a 64-byte slot header, then the object's payload:
//!
//! ```text
//! offset  size  field
//!      0     8  state        (generation << 32) | count: holders of the slot
//!      8     8  tickets      (generation << 32) | handles serialized and not yet received
//!     16     4  next         free-list link: index + 1 of the next free slot, 0 at the end
//!     20     4  magic        the object's kind (four ASCII bytes)
//!     24     4  version      the kind's layout version
//!     28     4  payload_len  bytes of payload (at most slot_size - 64)
//!     32    32  reserved
//!     64     -  payload      the object's own #[repr(C)] layout
//! ```
//!
//! A process checks what it reads from an arena that it did not create
//! (header, slot size and count against the mapping, slot index in bounds,
//! kind and length of the slot) and keeps its own copy of the geometry, so
//! that a peer writing garbage into shared memory can make an attach fail,
//! never make this process read or write outside the mapping.
//!
//! # Lifetime
//!
//! A slot's `count` is the number of processes that hold it, plus the
//! handles on their way to a receiver: each process counts once per slot
//! however many handles it has (a table of its own counts per arena), and
//! gives its count back when its last handle goes. When the count reaches
//! 0 the slot goes back to the free list and its generation is bumped in
//! the same atomic step. A handle carries the generation it was made for,
//! and attaching checks it together with a non-zero count, so a stale
//! handle (its object freed, the slot maybe reused) fails with an error and
//! never attaches to another object.
//!
//! A serialized handle holds a count while it travels: serializing takes a
//! ticket (one more count, and one more in `tickets`, whose high half is
//! the generation the tickets belong to), and a receiver adopts one ticket
//! of its generation as its process's count (or gives it back if the
//! process holds the slot already). Bytes decoded more often than they
//! were serialized (a carrier that delivers them twice) attach without a
//! ticket while the object lives; bytes never decoded keep their ticket's
//! count, so the slot leaks until the arena is gone. The sender keeps the
//! arena mapped for as long as it lives, so that a receiver that re-opens
//! its descriptor through `/proc` finds it.
//!
//! A forked child holds what its parent held: just before a `fork` the
//! parent adds one to the count of every slot it holds, on the child's
//! behalf, and the child gives all its counts back when it runs the exit
//! hooks ([`exit::run`](crate::exit::run), which an `mp-proc` child runs
//! before it leaves; handles it uses after that are not counted any more).
//! A process killed with `SIGKILL`, or a child that leaves with `_exit`
//! without running the exit hooks, leaks its slots until the arena itself
//! is gone (the kernel frees the memfd when no process maps it any more).
//! A child made by a raw `clone` (which runs no `prepare` handler) was not
//! counted: the handles it inherited are not its own and it never gives
//! them back.
//! (So an object dropped by a parent lives on in a forked child that
//! outlives it, a long-lived worker for instance, until that child exits.)
//!
//! Each process keeps the arenas it allocates from, and those it sent
//! handles into, for as long as it lives; another arena it received is
//! unmapped (and its descriptor closed) when the last handle into it goes.
//! A generation is 32 bits: a handle kept while one slot is freed and
//! reused 2^32 times could attach again.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::*};
use std::sync::{Arc, Weak};

use crate::fork::{self, ForkSafeGuard, ForkSafeMutex, Hooks, Rank};
use crate::segment::{HEADER_SIZE, Segment};

/// Magic of an arena segment.
const ARENA_MAGIC: [u8; 4] = *b"AREN";
/// Layout version of an arena (see the module docs).
const ARENA_VERSION: u32 = 1;
/// Bytes of an arena segment.
const ARENA_LEN: usize = 1 << 20;
/// Bytes of a slot header.
const SLOT_HEADER: usize = 64;
/// Offset of slot 0.
const FIRST_SLOT: usize = HEADER_SIZE + 64;
/// The slot sizes, one arena per size.
const CLASSES: [usize; 6] = [128, 256, 512, 1024, 2048, 4096];
/// The largest payload an arena slot holds; larger objects get a segment
/// of their own.
pub const MAX_PAYLOAD: usize = 4096 - SLOT_HEADER;

/// The arena head, after the segment header.
#[repr(C)]
struct ArenaHead {
    slot_size: u32,
    slots: u32,
    bump: AtomicU32,
    _reserved: u32,
    free: AtomicU64,
    live: AtomicU64,
    _reserved2: [u8; 32],
}
const _: () = assert!(std::mem::size_of::<ArenaHead>() == 64);

/// The header of a slot.
#[repr(C)]
struct SlotHead {
    state: AtomicU64,
    tickets: AtomicU64,
    next: AtomicU32,
    magic: AtomicU32,
    version: AtomicU32,
    payload_len: AtomicU32,
    _reserved: [u32; 8],
}
const _: () = assert!(std::mem::size_of::<SlotHead>() == SLOT_HEADER);

const fn count(state: u64) -> u32 {
    state as u32
}

const fn generation(state: u64) -> u32 {
    (state >> 32) as u32
}

fn invalid(m: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, m.into())
}

/// One arena mapped in this process, with the geometry checked once.
struct ArenaMap {
    seg: Segment,
    /// Device and inode of the memfd: the registry's key.
    key: (u64, u64),
    slot_size: usize,
    slots: u32,
}

impl ArenaMap {
    fn head(&self) -> &ArenaHead {
        // SAFETY: the segment is at least FIRST_SLOT bytes (checked when
        // mapped), page aligned; the plain fields are read once when the
        // arena is mapped, the others are atomics.
        unsafe { &*self.seg.as_ptr().add(HEADER_SIZE).cast::<ArenaHead>() }
    }

    /// Slot `i`'s header; `i < self.slots` (callers check).
    fn slot(&self, i: u32) -> &SlotHead {
        assert!(i < self.slots, "arena slot index out of bounds");
        // SAFETY: slot i lies wholly in the mapping (slots were checked
        // against its length), 64-byte aligned; a SlotHead is atomics and
        // integers only, any bits are valid.
        unsafe { &*self.slot_ptr(i).cast::<SlotHead>() }
    }

    fn slot_ptr(&self, i: u32) -> *mut u8 {
        // SAFETY: FIRST_SLOT + i * slot_size is within the mapping for
        // every i < slots (checked when mapped).
        unsafe {
            self.seg
                .as_ptr()
                .add(FIRST_SLOT + i as usize * self.slot_size)
        }
    }

    /// Takes a free slot (free list first, then never used ones), or `None`
    /// when the arena is full.
    fn pop(&self) -> Option<u32> {
        let h = self.head();
        loop {
            let top = h.free.load(Acquire);
            let Some(i) = (top as u32).checked_sub(1) else {
                break;
            };
            if i >= self.slots {
                // A corrupt list: use only the slots never handed out.
                break;
            }
            let next = self.slot(i).next.load(Relaxed);
            let tag = (top >> 32).wrapping_add(1);
            if h.free
                .compare_exchange_weak(top, (tag << 32) | u64::from(next), AcqRel, Acquire)
                .is_ok()
            {
                return Some(i);
            }
        }
        h.bump
            .fetch_update(AcqRel, Acquire, |b| (b < self.slots).then(|| b + 1))
            .ok()
    }

    /// Puts slot `i` back on the free list.
    fn push(&self, i: u32) {
        let h = self.head();
        let mut top = h.free.load(Acquire);
        loop {
            self.slot(i).next.store(top as u32, Relaxed);
            let tag = (top >> 32).wrapping_add(1);
            match h
                .free
                .compare_exchange_weak(top, (tag << 32) | u64::from(i + 1), AcqRel, Acquire)
            {
                Ok(_) => return,
                Err(now) => top = now,
            }
        }
    }

    /// Gives one count of slot `i` back; frees the slot at 0.
    fn release(&self, i: u32) {
        let s = self.slot(i);
        let mut cur = s.state.load(Acquire);
        loop {
            let new = match count(cur) {
                0 => return, // corrupt: nothing to give back
                1 => u64::from(generation(cur).wrapping_add(1)) << 32,
                _ => cur - 1,
            };
            match s.state.compare_exchange_weak(cur, new, AcqRel, Acquire) {
                Ok(_) if count(cur) == 1 => {
                    let _ = self
                        .head()
                        .live
                        .fetch_update(AcqRel, Acquire, |n| n.checked_sub(1));
                    self.push(i);
                    return;
                }
                Ok(_) => return,
                Err(now) => cur = now,
            }
        }
    }

    /// Adds one count to slot `i` if it still holds generation `era`.
    fn retain(&self, i: u32, era: u32) -> bool {
        self.slot(i)
            .state
            .fetch_update(AcqRel, Acquire, |s| {
                (generation(s) == era && count(s) != 0 && count(s) != u32::MAX).then(|| s + 1)
            })
            .is_ok()
    }
}

impl fmt::Debug for ArenaMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Arena")
            .field("slot_size", &self.slot_size)
            .field("slots", &self.slots)
            .finish()
    }
}

/// This process's counts in one arena.
struct Entry {
    map: Weak<ArenaMap>,
    key: (u64, u64),
    /// Handles of this process per slot (the process holds one count of
    /// each slot whose entry is non-zero).
    local: Vec<u32>,
}

/// Everything a process knows about arenas, behind one lock.
struct State {
    /// Bumped when this process's counts stop being its own (after
    /// [`exit::run`](crate::exit::run), in a child of a raw `clone`):
    /// handles made before then give nothing back.
    epoch: u64,
    entries: Vec<Entry>,
    /// The arenas this process allocates from, per slot size.
    own: [Vec<Arc<ArenaMap>>; CLASSES.len()],
    /// Other arenas this process sent handles into.
    kept: Vec<Arc<ArenaMap>>,
}

static STATE: ForkSafeMutex<State> = ForkSafeMutex::new(State {
    epoch: 0,
    entries: Vec::new(),
    own: [const { Vec::new() }; CLASSES.len()],
    kept: Vec::new(),
});

/// Set by the prepare handler of a fork: the child's counts were taken.
static COUNTED: AtomicBool = AtomicBool::new(false);
/// Set in a forked child whose counts were taken: it gives them back when
/// it exits.
static FORKED: AtomicBool = AtomicBool::new(false);

static HOOKS: Hooks = Hooks::new(Rank::Objects)
    .prepare(before_fork)
    .parent(after_fork_in_parent)
    .child(after_fork_in_child);
static CLONE_HOOKS: Hooks = Hooks::new(Rank::Objects).child(after_any_child);

fn lock() -> ForkSafeGuard<'static, State> {
    static HOOKED: AtomicBool = AtomicBool::new(false);
    if !HOOKED.load(Acquire) {
        fork::register(&HOOKS);
        fork::register(&CLONE_HOOKS);
        crate::exit::at_exit(release_all);
        HOOKED.store(true, Release);
    }
    STATE.lock()
}

impl State {
    fn entry(&mut self, key: (u64, u64)) -> Option<&mut Entry> {
        self.entries.iter_mut().find(|e| e.key == key)
    }
}

fn before_fork() {
    let st = STATE.lock();
    for e in &st.entries {
        if let Some(map) = e.map.upgrade() {
            for (i, &n) in e.local.iter().enumerate() {
                if n != 0 {
                    // The child's count: the process holds the slot, so
                    // its generation cannot change.
                    map.slot(i as u32).state.fetch_add(1, AcqRel);
                }
            }
            // Dropping `map` cannot unmap: the entry has live handles or
            // the arena is this process's own, or it drops a mapping,
            // which takes no lock.
        }
    }
    COUNTED.store(true, Relaxed);
    st.keep_locked();
}

fn after_fork_in_parent() {
    COUNTED.store(false, Relaxed);
    // SAFETY: held by the guard `before_fork` kept, taken back once here.
    drop(unsafe { STATE.take_over() });
}

fn after_fork_in_child() {
    FORKED.store(true, Relaxed);
    // SAFETY: held by the guard `before_fork` kept, taken back once here.
    drop(unsafe { STATE.take_over() });
}

/// After every child start, forked or cloned: a child whose counts the
/// prepare step did not take holds nothing of its own.
fn after_any_child() {
    if COUNTED.swap(false, Relaxed) {
        return;
    }
    // SAFETY: in a child, first use of the lock here (a single thread);
    // the data is fixed up below.
    unsafe { STATE.reset_after_fork() };
    let mut st = STATE.lock();
    st.epoch += 1;
    for e in &mut st.entries {
        e.local.iter_mut().for_each(|n| *n = 0);
    }
    FORKED.store(false, Relaxed);
}

/// Gives back every count a forked child holds (it is exiting).
fn release_all() {
    if !FORKED.load(Relaxed) {
        return;
    }
    let mut st = lock();
    st.epoch += 1;
    for e in &mut st.entries {
        if let Some(map) = e.map.upgrade() {
            for (i, n) in e.local.iter_mut().enumerate() {
                if *n != 0 {
                    *n = 0;
                    map.release(i as u32);
                }
            }
        }
    }
}

/// This process's handle on one slot; the last clone gives the process's
/// count back.
pub(crate) struct SlotRef {
    map: Arc<ArenaMap>,
    index: u32,
    era: u32,
    epoch: u64,
}

impl fmt::Debug for SlotRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slot")
            .field("arena", &self.map)
            .field("index", &self.index)
            .field("generation", &self.era)
            .finish()
    }
}

impl Drop for SlotRef {
    fn drop(&mut self) {
        let mut st = lock();
        if st.epoch != self.epoch {
            return;
        }
        let Some(e) = st.entry(self.map.key) else {
            return;
        };
        let n = &mut e.local[self.index as usize];
        if *n > 0 {
            *n -= 1;
            if *n == 0 {
                self.map.release(self.index);
            }
        }
    }
}

impl SlotRef {
    /// The arena segment.
    pub(crate) fn segment(&self) -> &Segment {
        &self.map.seg
    }

    /// Start of the payload (64-byte aligned).
    pub(crate) fn payload(&self) -> NonNull<u8> {
        // SAFETY: inside the slot, which is inside the mapping.
        unsafe { NonNull::new_unchecked(self.map.slot_ptr(self.index).add(SLOT_HEADER)) }
    }

    /// The payload length recorded in the slot, never more than it holds.
    pub(crate) fn payload_len(&self) -> usize {
        let n = self.map.slot(self.index).payload_len.load(Relaxed) as usize;
        n.min(self.map.slot_size - SLOT_HEADER)
    }

    /// Magic and version recorded in the slot.
    pub(crate) fn kind(&self) -> ([u8; 4], u32) {
        let s = self.map.slot(self.index);
        (s.magic.load(Relaxed).to_le_bytes(), s.version.load(Relaxed))
    }

    /// The descriptor of the arena and its identity, slot index and
    /// generation: what a serialized handle carries (see [`ticket`]).
    pub(crate) fn wire(&self) -> (BorrowedFd<'_>, (u64, u64), u32, u32) {
        (self.map.seg.fd(), self.map.key, self.index, self.era)
    }
}

/// A new slot of at least `payload_len` bytes for an object of kind
/// `magic`/`version`, zero-filled; `None` when the payload is larger than
/// [`MAX_PAYLOAD`].
pub(crate) fn alloc(
    magic: [u8; 4],
    version: u32,
    payload_len: usize,
) -> io::Result<Option<Arc<SlotRef>>> {
    let Some(class) = CLASSES
        .iter()
        .position(|&c| payload_len.max(1) <= c - SLOT_HEADER)
    else {
        return Ok(None);
    };
    let mut st = lock();
    let epoch = st.epoch;
    loop {
        let found = st.own[class]
            .iter()
            .rev()
            .find_map(|m| m.pop().map(|i| (m.clone(), i)));
        let (map, i) = match found {
            Some(f) => f,
            None => {
                let map = Arc::new(new_arena(CLASSES[class])?);
                st.entries.retain(|e| e.map.strong_count() != 0);
                st.entries.push(Entry {
                    map: Arc::downgrade(&map),
                    key: map.key,
                    local: vec![0; map.slots as usize],
                });
                st.own[class].push(map);
                continue;
            }
        };
        let s = map.slot(i);
        let cur = s.state.load(Acquire);
        if count(cur) != 0
            || s.state
                .compare_exchange(cur, cur + 1, AcqRel, Acquire)
                .is_err()
        {
            // A slot in use on the free list (a peer wrote garbage): leave it.
            continue;
        }
        s.tickets.store(u64::from(generation(cur)) << 32, Relaxed);
        s.magic.store(u32::from_le_bytes(magic), Relaxed);
        s.version.store(version, Relaxed);
        s.payload_len.store(payload_len as u32, Relaxed);
        // SAFETY: the payload of slot i lies in the mapping, and the slot is
        // ours alone until a handle to it is shared.
        unsafe {
            map.slot_ptr(i)
                .add(SLOT_HEADER)
                .write_bytes(0, map.slot_size - SLOT_HEADER)
        };
        map.head().live.fetch_add(1, AcqRel);
        st.entry(map.key).expect("own arenas have an entry").local[i as usize] = 1;
        return Ok(Some(Arc::new(SlotRef {
            map,
            index: i,
            era: generation(cur),
            epoch,
        })));
    }
}

fn new_arena(slot_size: usize) -> io::Result<ArenaMap> {
    let seg = Segment::object(ARENA_MAGIC, ARENA_VERSION, ARENA_LEN - HEADER_SIZE)?;
    let slots = ((ARENA_LEN - FIRST_SLOT) / slot_size) as u32;
    let head = ArenaHead {
        slot_size: slot_size as u32,
        slots,
        bump: AtomicU32::new(0),
        _reserved: 0,
        free: AtomicU64::new(0),
        live: AtomicU64::new(0),
        _reserved2: [0; 32],
    };
    // SAFETY: the segment is ARENA_LEN bytes, the head lies after its
    // header, and no other process can see it yet.
    unsafe {
        seg.as_ptr()
            .add(HEADER_SIZE)
            .cast::<ArenaHead>()
            .write(head)
    };
    let key = identity(seg.fd())?;
    Ok(ArenaMap {
        seg,
        key,
        slot_size,
        slots,
    })
}

fn identity(fd: BorrowedFd<'_>) -> io::Result<(u64, u64)> {
    let st = rustix::fs::fstat(fd)?;
    // The fields are `c_ulong` on some targets.
    #[allow(clippy::useless_conversion)]
    Ok((u64::from(st.st_dev), u64::from(st.st_ino)))
}

/// Maps a received arena descriptor (or finds it mapped already, and then
/// closes `fd`) and checks its geometry.
fn map_received(st: &mut State, fd: OwnedFd) -> io::Result<Arc<ArenaMap>> {
    let key = identity(fd.as_fd())?;
    if let Some(map) = st.entry(key).and_then(|e| e.map.upgrade()) {
        return Ok(map);
    }
    let seg = Segment::from_fd(fd)?;
    seg.check(ARENA_MAGIC, ARENA_VERSION)?;
    if seg.len() < FIRST_SLOT {
        return Err(invalid("shared arena too small for its head"));
    }
    // SAFETY: at least FIRST_SLOT bytes are mapped; the two plain fields
    // are copied once and checked below.
    let (slot_size, slots) = unsafe {
        let h = &*seg.as_ptr().add(HEADER_SIZE).cast::<ArenaHead>();
        (h.slot_size as usize, h.slots)
    };
    if !CLASSES.contains(&slot_size) || slots as usize != (seg.len() - FIRST_SLOT) / slot_size {
        return Err(invalid(format!(
            "corrupt shared arena: {slots} slots of {slot_size} bytes in {} bytes",
            seg.len()
        )));
    }
    let map = Arc::new(ArenaMap {
        seg,
        key,
        slot_size,
        slots,
    });
    st.entries.retain(|e| e.map.strong_count() != 0);
    st.entries.push(Entry {
        map: Arc::downgrade(&map),
        key,
        local: vec![0; slots as usize],
    });
    Ok(map)
}

/// Attaches to slot `index` of generation `era` of the arena `fd` that a
/// peer sent; `ticket`: the handle carries one (see the module docs).
///
/// # Errors
///
/// `InvalidData` when the arena is not one, the index is out of bounds,
/// or the slot no longer holds the object that was sent.
pub(crate) fn receive(fd: OwnedFd, index: u32, era: u32, ticket: bool) -> io::Result<Arc<SlotRef>> {
    let mut st = lock();
    let map = map_received(&mut st, fd)?;
    if index >= map.slots {
        return Err(invalid(format!(
            "shared arena slot {index} out of bounds ({} slots)",
            map.slots
        )));
    }
    let epoch = st.epoch;
    let e = st.entry(map.key).expect("mapped above");
    let n = &mut e.local[index as usize];
    let s = map.slot(index);
    // A ticket of this generation: a count that this process adopts.
    let adopted = ticket
        && s.tickets
            .fetch_update(AcqRel, Acquire, |t| {
                (generation(t) == era && count(t) != 0).then(|| t - 1)
            })
            .is_ok();
    let ok = match (adopted, *n != 0) {
        (true, false) => true,
        (true, true) => {
            // Held already (so the count stays above 0): the ticket's
            // count goes back.
            map.release(index);
            true
        }
        // Held already: its generation cannot change meanwhile.
        (false, true) => generation(s.state.load(Acquire)) == era,
        (false, false) => map.retain(index, era),
    };
    if !ok {
        return Err(invalid(
            "the shared object was freed before this handle was received (every process let \
             go of it); keep a handle alive until the receiver has it",
        ));
    }
    *n += 1;
    drop(st);
    Ok(Arc::new(SlotRef {
        map,
        index,
        era,
        epoch,
    }))
}

/// Takes a ticket for a handle about to be serialized (see the module
/// docs).
///
/// # Errors
///
/// `InvalidData` when this process no longer holds the slot (it ran its
/// exit hooks) and the object was freed meanwhile.
pub(crate) fn ticket(slot: &SlotRef) -> io::Result<()> {
    let mut st = lock();
    let held = st.epoch == slot.epoch
        && st
            .entry(slot.map.key)
            .is_some_and(|e| e.local[slot.index as usize] != 0);
    let s = slot.map.slot(slot.index);
    if held {
        s.state.fetch_add(1, AcqRel);
    } else if !slot.map.retain(slot.index, slot.era) {
        return Err(invalid("the shared object was freed"));
    }
    s.tickets.fetch_add(1, AcqRel);
    let own = st.own.iter().flatten().any(|m| Arc::ptr_eq(m, &slot.map));
    if !own && !st.kept.iter().any(|m| Arc::ptr_eq(m, &slot.map)) {
        st.kept.push(slot.map.clone());
    }
    Ok(())
}

/// Gives back a ticket whose handle was never sent.
pub(crate) fn unticket(slot: &SlotRef) {
    let s = slot.map.slot(slot.index);
    let era = slot.era;
    if s.tickets
        .fetch_update(AcqRel, Acquire, |t| {
            (generation(t) == era && count(t) != 0).then(|| t - 1)
        })
        .is_ok()
    {
        slot.map.release(slot.index);
    }
}

/// Slots in use now in every arena this process maps, counted by every
/// process that uses them (a debug counter: tests check that objects are
/// freed).
///
/// ```
/// use mp_os::object::{Kind, Object};
///
/// let before = mp_os::arena::live_slots();
/// let o = Object::create(Kind::new(*b"LIVE", 1), 0u32, 0)?;
/// assert!(mp_os::arena::live_slots() > before || before > 0);
/// drop(o);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn live_slots() -> u64 {
    let st = lock();
    let maps: Vec<_> = st.entries.iter().filter_map(|e| e.map.upgrade()).collect();
    drop(st);
    maps.iter().map(|m| m.head().live.load(Acquire)).sum()
}

/// Arenas mapped in this process now (each holds one descriptor).
///
/// ```
/// let _ = mp_os::arena::arenas_mapped();
/// ```
pub fn arenas_mapped() -> usize {
    let st = lock();
    st.entries
        .iter()
        .filter(|e| e.map.strong_count() != 0)
        .count()
}

#[cfg(test)]
mod tests;
