//! Who refers to which object: the sessions (client processes) and what
//! each holds, published names, proxies in transit, pins; and so which
//! objects nobody refers to any more.
//!
//! An object lives while its count is above zero or it is pinned. The count
//! is the number of sessions holding a proxy of it (each session at most
//! once: the client counts its own proxies and tells the server of its
//! first and its last), names it is published under, and transit tokens
//! (a proxy serialized for another process, until the receiver claims the
//! token or the sender's session ends). A proxy serialized into a value
//! stored in another object pins its object until the server exits: the
//! server keeps values as bytes and cannot see the proxies inside them.
//!
//! Pure bookkeeping: it returns the objects to free, and the caller frees
//! them.

use std::collections::{HashMap, HashSet};

/// A client process's connections: a random id the client names in the
/// handshake, or each connection its own when it names none. A session
/// ends when its last connection closes: the objects it referred to are
/// released, and the tasks it took from joinable queues and never marked
/// done are handed to `join` to write off.
#[derive(Default)]
struct Session {
    conns: usize,
    /// Joinable queues its closed connections got items from.
    queues: HashSet<u64>,
    /// Objects it holds proxies of.
    refs: HashSet<u64>,
    /// Transit tokens it made that no receiver claimed yet.
    tokens: HashSet<u64>,
}

/// What a session left when it ended.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Ended {
    /// Joinable queues its connections got items from.
    pub(super) queues: HashSet<u64>,
    /// Objects nobody refers to any more.
    pub(super) free: Vec<u64>,
}

#[derive(Default)]
pub(super) struct Book {
    sessions: HashMap<u64, Session>,
    /// Every live object's count (see the module's docs).
    count: HashMap<u64, u64>,
    /// Objects kept until the server exits.
    pinned: HashSet<u64>,
    /// Transit tokens: the object, and the session that made the token.
    transits: HashMap<u64, (u64, u64)>,
    next_token: u64,
    names: HashMap<String, u64>,
}

impl Book {
    /// A connection of `session` opened.
    pub(super) fn join(&mut self, session: u64) {
        self.sessions.entry(session).or_default().conns += 1;
    }

    /// A connection of `session` closed, having got items from the joinable
    /// `queues`. When it was the session's last, what the session left.
    pub(super) fn leave(&mut self, session: u64, queues: &mut HashSet<u64>) -> Option<Ended> {
        let s = self.sessions.get_mut(&session)?;
        s.queues.extend(queues.drain());
        s.conns -= 1;
        if s.conns > 0 {
            return None;
        }
        let s = self.sessions.remove(&session)?;
        let mut free = Vec::new();
        for id in s.refs {
            free.extend(self.release(id));
        }
        for token in s.tokens {
            if let Some((id, _)) = self.transits.remove(&token) {
                free.extend(self.release(id));
            }
        }
        Some(Ended {
            queues: s.queues,
            free,
        })
    }

    /// A new object, referred to by `session` (its creator).
    pub(super) fn created(&mut self, session: u64, id: u64) {
        self.count.insert(id, 0);
        let _ = self.hold(session, id);
    }

    /// Whether `id` is alive.
    pub(super) fn alive(&self, id: u64) -> bool {
        self.count.contains_key(&id)
    }

    /// How many objects are alive.
    pub(super) fn objects(&self) -> usize {
        self.count.len()
    }

    /// `session` holds a proxy of `id` (once, however many it holds).
    /// `false` when there is no such object.
    pub(super) fn hold(&mut self, session: u64, id: u64) -> bool {
        if !self.alive(id) {
            return false;
        }
        let Some(s) = self.sessions.get_mut(&session) else {
            return true; // a session that ended meanwhile holds nothing
        };
        if s.refs.insert(id) {
            *self.count.get_mut(&id).expect("alive") += 1;
        }
        true
    }

    /// `session` holds no proxy of `id` any more; the object, if that
    /// frees it.
    pub(super) fn unhold(&mut self, session: u64, id: u64) -> Option<u64> {
        let s = self.sessions.get_mut(&session)?;
        if s.refs.remove(&id) {
            self.release(id)
        } else {
            None
        }
    }

    /// A transit token for a proxy of `id` that `session` serializes.
    /// `None` when there is no such object.
    pub(super) fn export(&mut self, session: u64, id: u64) -> Option<u64> {
        let n = self.count.get_mut(&id)?;
        *n += 1;
        self.next_token += 1;
        let token = self.next_token;
        self.transits.insert(token, (id, session));
        if let Some(s) = self.sessions.get_mut(&session) {
            s.tokens.insert(token);
        }
        Some(token)
    }

    /// The receiver of a proxy claims its transit token; the object, if
    /// that frees it (it does not when the claimer holds it: call
    /// [`hold`](Book::hold) first).
    pub(super) fn claim(&mut self, token: u64) -> Option<u64> {
        let (id, from) = self.transits.remove(&token)?;
        if let Some(s) = self.sessions.get_mut(&from) {
            s.tokens.remove(&token);
        }
        self.release(id)
    }

    /// Keeps `id` until the server exits. `false` when there is no such
    /// object.
    pub(super) fn pin(&mut self, id: u64) -> bool {
        if !self.alive(id) {
            return false;
        }
        self.pinned.insert(id);
        true
    }

    /// Publishes `id` under `name` (a reference, as long as the name
    /// names it); the object the name named before, if that frees it.
    /// `Err` when there is no such object.
    pub(super) fn publish(&mut self, name: String, id: u64) -> Result<Option<u64>, ()> {
        *self.count.get_mut(&id).ok_or(())? += 1;
        Ok(self
            .names
            .insert(name, id)
            .and_then(|old| self.release(old)))
    }

    /// The object published under `name`.
    pub(super) fn lookup(&self, name: &str) -> Option<u64> {
        self.names.get(name).copied()
    }

    /// One reference fewer to `id`; the object, if that was the last.
    fn release(&mut self, id: u64) -> Option<u64> {
        let n = self.count.get_mut(&id)?;
        *n = n.saturating_sub(1);
        if *n == 0 && !self.pinned.contains(&id) {
            self.count.remove(&id);
            Some(id)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_object_lives_while_a_session_name_token_or_pin_refers_to_it() {
        let mut b = Book::default();
        b.join(1);
        b.join(2);
        b.created(1, 10);
        assert!(b.hold(2, 10));
        assert!(b.hold(2, 10), "a session counts once");
        assert_eq!(b.unhold(1, 10), None);
        assert_eq!(b.unhold(2, 10), Some(10));
        assert!(!b.alive(10));
        assert!(!b.hold(1, 10), "freed");

        // In transit: the sender lets go before the receiver holds it.
        b.created(1, 11);
        let t = b.export(1, 11).unwrap();
        assert_eq!(b.unhold(1, 11), None);
        assert!(b.hold(2, 11));
        assert_eq!(b.claim(t), None);
        assert_eq!(b.claim(t), None, "claimed once");
        assert_eq!(b.unhold(2, 11), Some(11));

        // A token no one claims is given back when its sender ends.
        b.created(1, 12);
        b.export(1, 12).unwrap();
        assert_eq!(b.unhold(1, 12), None);
        b.join(3);
        b.created(3, 13);
        assert!(b.publish("n".into(), 13).is_ok());
        assert!(b.pin(12));
        let ended = b.leave(3, &mut HashSet::new()).unwrap();
        assert!(ended.free.is_empty(), "published");
        // Republishing the name releases the old object.
        b.created(1, 14);
        assert_eq!(b.publish("n".into(), 14), Ok(Some(13)));
        let ended = b.leave(1, &mut HashSet::from([7])).unwrap();
        assert_eq!(ended.queues, HashSet::from([7]));
        assert!(ended.free.is_empty(), "12 is pinned, 14 published");
        assert_eq!(b.objects(), 2);
    }

    #[test]
    fn a_session_ends_with_its_last_connection() {
        let mut b = Book::default();
        b.join(1);
        b.join(1);
        b.created(1, 5);
        assert_eq!(b.leave(1, &mut HashSet::new()), None);
        assert!(b.alive(5));
        let ended = b.leave(1, &mut HashSet::new()).unwrap();
        assert_eq!(ended.free, [5]);
        assert_eq!(b.leave(1, &mut HashSet::new()), None, "gone");
    }
}
