//! A lock that a forked child can take back.
//!
//! Under the fork start method the child is a copy of a possibly
//! multi-threaded parent: a `std::sync::Mutex` that another thread held at
//! the moment of `fork` stays locked in the child forever. The few statics
//! this crate touches in a forked child (its children list, its identity,
//! its fork-server connection) use `mp_os`'s fork-safe lock instead, and
//! the child resets them right after `fork`, before it touches them (see
//! `fork::start`).

pub(crate) use mp_os::fork::ForkSafeMutex;
