//! One handle's registration as a writer and/or reader of a channel, and
//! how registrations follow `fork`.
//!
//! Every handle value (a `PipeEnd`, a `Queue`, each clone) holds one
//! [`Attach`]: it adds the current process to the writers' and/or readers'
//! holder tables of its rings, and removes it when dropped or closed. A
//! `fork` duplicates handle values into the child without running any Rust
//! code, so a fork hook (`mp_os::fork`) registers every live `Attach` again
//! under the child's pid, the way `fork` duplicates file descriptors:
//! a pipe end inherited by a child keeps the pipe connected even after the
//! parent drops its copy.

use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering::*};
use std::sync::{Arc, Once, Weak};

use crate::chan::Chan;
use crate::holders::{Holders, OVERFLOW};
use crate::ring::{Ring, WaitMode, Waiter};
use mp_os::fork::{ForkSafeMutex, Hooks, Rank};
use mp_os::futex::AdaptiveSpin;
use mp_os::time::Deadline;

/// This process's liveness token (pid and start-time stamp, see
/// `mp_os::liveness`), the id it registers under in holder tables. Cached;
/// the cache is reset in a forked child. (The files below this one ask
/// `mp_os` directly.)
pub(crate) fn process_token() -> u32 {
    mp_os::liveness::process_token()
}

/// Every live handle of this process, and what a fork in progress holds.
struct Registry {
    list: Vec<Weak<Attach>>,
    /// The handles alive when a fork began, kept alive until the fork
    /// handlers of both sides are done with them: a handle that another
    /// thread drops meanwhile must not be dropped inside the prepare
    /// handler, after its registration for the child was made (the child
    /// would never see the handle, and that registration, under the
    /// parent's token, would keep the channel connected for good).
    held: Vec<Arc<Attach>>,
}

/// Held by the prepare handler across a fork, so that both sides see the
/// same handles (see `mp_os::fork`).
static REGISTRY: ForkSafeMutex<Registry> = ForkSafeMutex::new(Registry {
    list: Vec::new(),
    held: Vec::new(),
});

fn with_registry<R>(f: impl FnOnce(&mut Vec<Weak<Attach>>) -> R) -> R {
    f(&mut REGISTRY.lock().list)
}

/// The fork hooks of channel handles (see the module docs).
static FORK_HOOKS: Hooks = Hooks::new(Rank::Objects)
    .prepare(fork_prepare)
    .parent(fork_parent)
    .child(fork_child);

fn fork_prepare() {
    let mut guard = REGISTRY.lock();
    // Register the future child under our pid now, so that the channel
    // never looks abandoned between fork and the child's handler (which
    // moves these registrations to the child's pid).
    let pid = process_token();
    let reg = &mut *guard;
    reg.held.extend(reg.list.iter().filter_map(Weak::upgrade));
    for a in &reg.held {
        a.fork_prepare(pid);
    }
    // Kept across the fork; the parent and child handlers take it back.
    guard.keep_locked();
}

fn fork_parent() {
    // SAFETY: the prepare handler of this fork kept the lock.
    let mut reg = unsafe { REGISTRY.take_over() };
    let held = std::mem::take(&mut reg.held);
    for a in &held {
        // The child owns these registrations now.
        a.fork_w.store(0, Relaxed);
        a.fork_r.store(0, Relaxed);
    }
    drop(reg);
    // Handles that other threads dropped meanwhile go now.
    drop(held);
}

fn fork_child() {
    // The `mp_os::liveness` hook ran first: this is the child's token.
    let pid = process_token();
    // SAFETY: the prepare handler of this fork kept the lock; the child
    // has only this thread.
    let mut reg = unsafe { REGISTRY.take_over() };
    let held = std::mem::take(&mut reg.held);
    for a in &held {
        a.on_fork(pid);
        // What the parent buffered is the parent's to write.
        a.chan.feed.after_fork();
    }
    drop(reg);
    drop(held);
}

/// The exit hook of queues (`mp_os::exit`): waits until what this process
/// put into each queue it still holds is in the ring, unless no other
/// process can read it (see `Feed::flush`).
pub(crate) fn flush_all_at_exit() {
    let handles: Vec<Arc<Attach>> =
        with_registry(|list| list.iter().filter_map(Weak::upgrade).collect());
    let mut chans: Vec<Arc<Chan>> = Vec::new();
    for a in &handles {
        if a.chan.feed.backlog() > 0 && !chans.iter().any(|c| Arc::ptr_eq(c, &a.chan)) {
            chans.push(a.chan.clone());
        }
    }
    drop(handles);
    for c in chans {
        c.feed.flush(&c, true);
    }
}

/// A handle's registration on a channel.
pub(crate) struct Attach {
    pub(crate) chan: Arc<Chan>,
    pub(crate) send: Option<u8>,
    pub(crate) recv: Option<u8>,
    wrole: AtomicU32,
    rrole: AtomicU32,
    fork_w: AtomicU32,
    fork_r: AtomicU32,
    mode: AtomicU8,
    spin: AdaptiveSpin,
    last_slow: AtomicU64,
}

impl std::fmt::Debug for Attach {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attach")
            .field("send", &self.send)
            .field("recv", &self.recv)
            .field("closed", &self.closed())
            .finish_non_exhaustive()
    }
}

impl Attach {
    /// Registers a new handle (roles `send`/`recv` are ring indexes).
    pub(crate) fn new(
        chan: Arc<Chan>,
        send: Option<u8>,
        recv: Option<u8>,
        mode: WaitMode,
    ) -> Arc<Attach> {
        Attach::with_roles(chan, send, recv, true, true, mode)
    }

    fn with_roles(
        chan: Arc<Chan>,
        send: Option<u8>,
        recv: Option<u8>,
        reg_send: bool,
        reg_recv: bool,
        mode: WaitMode,
    ) -> Arc<Attach> {
        mp_os::fork::register(&FORK_HOOKS);
        if chan.kind == crate::chan::KIND_QUEUE {
            // What this process buffers is flushed before it exits.
            static EXIT_HOOK: Once = Once::new();
            EXIT_HOOK.call_once(|| mp_os::exit::at_exit(flush_all_at_exit));
        }
        let pid = process_token();
        let wrole = send
            .filter(|_| reg_send)
            .map_or(0, |i| chan.ring(i).ctl().writers.add(pid));
        let rrole = recv
            .filter(|_| reg_recv)
            .map_or(0, |i| chan.ring(i).ctl().readers.add(pid));
        let a = Arc::new(Attach {
            chan,
            send,
            recv,
            wrole: AtomicU32::new(wrole),
            rrole: AtomicU32::new(rrole),
            fork_w: AtomicU32::new(0),
            fork_r: AtomicU32::new(0),
            mode: AtomicU8::new(mode.to_u8()),
            spin: AdaptiveSpin::new(),
            last_slow: AtomicU64::new(0),
        });
        let weak = Arc::downgrade(&a);
        with_registry(|list| {
            if list.len() >= 64 && list.len().is_power_of_two() {
                list.retain(|w| w.strong_count() > 0);
            }
            list.push(weak);
        });
        a
    }

    /// Another registration on the same channel with the same roles (for
    /// `Clone`); closed roles stay closed.
    pub(crate) fn duplicate(&self) -> Arc<Attach> {
        Attach::with_roles(
            self.chan.clone(),
            self.send,
            self.recv,
            self.can_send(),
            self.can_recv(),
            self.mode(),
        )
    }

    /// This handle's registrations were handed over to this process by the
    /// sender's [`TransitGuard`] (a child decoding its arguments): keep one
    /// per role instead of two. If the hand-over has not happened yet, this
    /// drops the one just made, and the guard's arrives in its place (the
    /// sender keeps its own until then, so the side never looks
    /// abandoned); in the rare case that this handle is dropped before
    /// that, the handed-over registration lasts until the process exits.
    pub(crate) fn take_handed_over(&self) {
        let me = process_token();
        if let Some(i) = self.send.filter(|_| self.can_send()) {
            self.chan.ring(i).ctl().writers.remove(me);
        }
        if let Some(i) = self.recv.filter(|_| self.can_recv()) {
            self.chan.ring(i).ctl().readers.remove(me);
        }
    }

    /// Drops the transit registration a sender kept for this handle.
    pub(crate) fn release_transit(&self, pid: u32) {
        if pid == 0 {
            return;
        }
        if let Some(i) = self.send {
            self.chan.ring(i).ctl().writers.remove(pid);
        }
        if let Some(i) = self.recv {
            self.chan.ring(i).ctl().readers.remove(pid);
        }
    }

    /// A registration for each open role, owned by a [`TransitGuard`]
    /// that the carrier of a serialized handle keeps
    /// (`mp_os::handle::collect_handles`); `None` when a holder table is
    /// full (the handle then travels unguarded).
    pub(crate) fn transit_guard(&self) -> Option<TransitGuard> {
        let me = process_token();
        let g = TransitGuard {
            chan: self.chan.clone(),
            send: self.send.filter(|_| self.can_send()),
            recv: self.recv.filter(|_| self.can_recv()),
            owner: me,
            wrole: AtomicU32::new(0),
            rrole: AtomicU32::new(0),
        };
        for (_, holders, role) in g.sides() {
            let r = holders.add(me);
            role.store(r, Relaxed);
            if r & OVERFLOW != 0 {
                return None; // dropping `g` releases what it holds
            }
        }
        Some(g)
    }

    /// Adds a transit registration (kept until the receiver attaches).
    pub(crate) fn add_transit(&self) -> u32 {
        let pid = process_token();
        if let Some(i) = self.send.filter(|_| self.can_send()) {
            let r = self.chan.ring(i).ctl().writers.add(pid);
            if r & OVERFLOW != 0 {
                self.chan.ring(i).ctl().writers.remove(r);
                return 0;
            }
        }
        if let Some(i) = self.recv.filter(|_| self.can_recv()) {
            let r = self.chan.ring(i).ctl().readers.add(pid);
            if r & OVERFLOW != 0 {
                self.chan.ring(i).ctl().readers.remove(r);
                return 0;
            }
        }
        pid
    }

    /// Before fork (parent): one more registration per open role, under
    /// the parent's pid, handed over to the child.
    fn fork_prepare(&self, pid: u32) {
        if let Some(i) = self.send
            && self.wrole.load(Relaxed) != 0
        {
            self.fork_w
                .store(self.chan.ring(i).ctl().writers.add(pid), Relaxed);
        }
        if let Some(i) = self.recv
            && self.rrole.load(Relaxed) != 0
        {
            self.fork_r
                .store(self.chan.ring(i).ctl().readers.add(pid), Relaxed);
        }
    }

    /// After fork (child): move the handed-over registrations to our pid.
    fn on_fork(&self, pid: u32) {
        if let Some(i) = self.send {
            let h = &self.chan.ring(i).ctl().writers;
            let t = self.fork_w.swap(0, Relaxed);
            if t != 0 {
                self.wrole.store(h.add(pid), Relaxed);
                h.remove(t);
            } else {
                self.wrole.store(0, Relaxed);
            }
        }
        if let Some(i) = self.recv {
            let h = &self.chan.ring(i).ctl().readers;
            let t = self.fork_r.swap(0, Relaxed);
            if t != 0 {
                self.rrole.store(h.add(pid), Relaxed);
                h.remove(t);
            } else {
                self.rrole.store(0, Relaxed);
            }
        }
    }

    /// Whether a readiness check should look for dead peers now (at most
    /// once per `SLICE` per handle).
    pub(crate) fn slow_check_due(&self) -> bool {
        let now = mp_os::time::monotonic_ns();
        let last = self.last_slow.load(Relaxed);
        now.saturating_sub(last) > crate::ring::SLICE.as_nanos() as u64
            && self
                .last_slow
                .compare_exchange(last, now, Relaxed, Relaxed)
                .is_ok()
    }

    pub(crate) fn can_send(&self) -> bool {
        self.send.is_some() && self.wrole.load(Relaxed) != 0
    }

    pub(crate) fn can_recv(&self) -> bool {
        self.recv.is_some() && self.rrole.load(Relaxed) != 0
    }

    pub(crate) fn closed(&self) -> bool {
        !self.can_send() && !self.can_recv()
    }

    pub(crate) fn mode(&self) -> WaitMode {
        WaitMode::from_u8(self.mode.load(Relaxed))
    }

    pub(crate) fn set_mode(&self, m: WaitMode) {
        self.mode.store(m.to_u8(), Relaxed);
    }

    #[inline]
    pub(crate) fn waiter(&self, deadline: Deadline) -> Waiter<'_> {
        Waiter {
            deadline,
            mode: self.mode(),
            spin: &self.spin,
            me: crate::sync::tid(),
        }
    }

    pub(crate) fn send_ring(&self) -> Option<&Ring> {
        self.send.map(|i| self.chan.ring(i))
    }

    pub(crate) fn recv_ring(&self) -> Option<&Ring> {
        self.recv.map(|i| self.chan.ring(i))
    }

    /// Stops being a writer.
    pub(crate) fn close_send(&self) {
        if let Some(i) = self.send {
            release(
                &self.wrole,
                &self.chan.ring(i).ctl().writers,
                self.chan.ring(i),
            );
        }
    }

    /// Stops being a reader.
    pub(crate) fn close_recv(&self) {
        if let Some(i) = self.recv {
            release(
                &self.rrole,
                &self.chan.ring(i).ctl().readers,
                self.chan.ring(i),
            );
        }
    }
}

/// The `transit` of a handle's wire form whose carrier keeps a
/// [`TransitGuard`] (no liveness token has bit 31 set).
pub(crate) const GUARDED: u32 = 1 << 31;

/// The registrations that keep a channel connected while a serialized
/// handle travels: made by the sender, owned by the carrier of the bytes
/// (a process's arguments, a pool's initializer or task), and released
/// exactly once: when the carrier drops it (in the process that made it),
/// or by the death of the process it was handed over to.
pub(crate) struct TransitGuard {
    chan: Arc<Chan>,
    send: Option<u8>,
    recv: Option<u8>,
    /// The process that registered (a forked copy of the guard is inert).
    owner: u32,
    wrole: AtomicU32,
    rrole: AtomicU32,
}

impl TransitGuard {
    /// (ring, holder table, role word) for each role held.
    fn sides(&self) -> impl Iterator<Item = (u8, &Holders, &AtomicU32)> {
        let w = self
            .send
            .map(|i| (i, &self.chan.ring(i).ctl().writers, &self.wrole));
        let r = self
            .recv
            .map(|i| (i, &self.chan.ring(i).ctl().readers, &self.rrole));
        // Reader first (see `Attach`'s drop).
        r.into_iter().chain(w)
    }

    fn release(&self) {
        if process_token() != self.owner {
            return;
        }
        for (i, holders, role) in self.sides() {
            let r = role.swap(0, AcqRel);
            if r != 0 {
                holders.remove(r);
                self.chan.ring(i).notify_all();
            }
        }
    }
}

impl mp_os::handle::Transit for TransitGuard {
    fn hand_over(&self, token: Option<u32>) {
        if process_token() != self.owner {
            return;
        }
        if let Some(t) = token {
            // The receiving process's registration first, then ours goes:
            // the side never looks abandoned in between. It is released
            // when that process dies (a dead holder is pruned).
            for (_, holders, role) in self.sides() {
                if role.load(Relaxed) == 0 {
                    continue;
                }
                let r = holders.add(t);
                if r & OVERFLOW != 0 {
                    // Never pruned: give up the guard instead.
                    holders.remove(r);
                }
            }
        }
        self.release();
    }
}

impl Drop for TransitGuard {
    fn drop(&mut self) {
        self.release();
    }
}

fn release(role: &AtomicU32, holders: &Holders, ring: &Ring) {
    let r = role.swap(0, AcqRel);
    if r != 0 && (r & !OVERFLOW) == process_token() {
        holders.remove(r);
        ring.notify_all();
    }
}

impl Drop for Attach {
    fn drop(&mut self) {
        // Reader first, as `PipeEnd::close`: once a peer sees the writer
        // gone, the reader is gone too.
        self.close_recv();
        self.close_send();
    }
}
