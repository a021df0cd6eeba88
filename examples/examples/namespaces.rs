//! Twin of `multiprocessing_namespaces.py` in seed 004 (PyMOTW-3 "Shared
//! Namespaces"): a producer sets an attribute of a `Manager` Namespace and
//! then an `Event`; a consumer reads the attribute before the event (it is
//! not there yet) and after it.
//!
//! ```text
//! Before event, error: 'Namespace' object has no attribute 'value'
//! After event: This is the value
//! ```
//!
//! Python's `AttributeError` is `RemoteError::NoSuchAttribute`, whose
//! message is Python's.
//!
//! In Python the first line comes from a race: the consumer is started
//! first and usually reads before the producer writes, but nothing makes
//! it so. Here the producer often wins that race (it would print
//! `Before event: This is the value`), so the twin makes the tutorial's
//! order explicit with a second event, `checked`, which the consumer sets
//! after its first read and the producer waits for before writing.

use multiprocessing as mp;
use multiprocessing::manager::NamespaceProxy;

fn producer((ns, event, checked): (NamespaceProxy, mp::Event, mp::Event)) {
    checked.wait(); // not in Python: let the consumer look first
    ns.set("value", "This is the value").expect("set");
    event.set();
}

fn consumer((ns, event, checked): (NamespaceProxy, mp::Event, mp::Event)) {
    match ns.get::<String>("value") {
        Ok(value) => println!("Before event: {value}"),
        Err(err) => println!("Before event, error: {err}"),
    }
    checked.set();
    event.wait();
    println!("After event: {}", ns.get::<String>("value").expect("value"));
}

fn main() -> Result<(), mp::Error> {
    mp::init();
    let mgr = mp::Manager::new()?;
    let namespace = mgr.namespace()?;
    let event = mp::Event::new()?;
    let checked = mp::Event::new()?;
    let p = mp::Process::new(
        producer,
        (namespace.clone(), event.clone(), checked.clone()),
    );
    let c = mp::Process::new(
        consumer,
        (namespace.clone(), event.clone(), checked.clone()),
    );

    c.start()?;
    p.start()?;

    c.join()?;
    p.join()?;
    Ok(())
}
