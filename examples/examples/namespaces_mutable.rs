//! Twin of `multiprocessing_namespaces_mutable.py` in seed 004 (PyMOTW-3
//! "Shared Namespaces"): changing a list held in a `Manager` Namespace in
//! place does not change the Namespace.
//!
//! ```text
//! Before event: []
//! After event : []
//! ```
//!
//! In Python `ns.my_list.append(...)` appends to a copy that the proxy
//! returned; here `ns.get("my_list")` returns a `Vec` that is a copy, and
//! pushing to it changes nothing on the server. To update the list, store
//! it again (`ns.set("my_list", &list)`), or keep a manager list
//! (`ListProxy`) in the Namespace.

use mp_examples::py_str_list;
use multiprocessing as mp;
use multiprocessing::manager::NamespaceProxy;

fn producer((ns, event): (NamespaceProxy, mp::Event)) {
    // DOES NOT UPDATE GLOBAL VALUE!
    let mut my_list: Vec<String> = ns.get("my_list").expect("my_list");
    my_list.push("This is the value".to_string());
    event.set();
}

fn consumer((ns, event): (NamespaceProxy, mp::Event)) {
    let my_list = || ns.get::<Vec<String>>("my_list").expect("my_list");
    println!("Before event: {}", py_str_list(my_list()));
    event.wait();
    println!("After event : {}", py_str_list(my_list()));
}

fn main() -> Result<(), mp::Error> {
    mp::init();
    let mgr = mp::Manager::new()?;
    let namespace = mgr.namespace()?;
    namespace.set("my_list", &Vec::<String>::new())?;
    let event = mp::Event::new()?;
    let p = mp::Process::new(producer, (namespace.clone(), event.clone()));
    let c = mp::Process::new(consumer, (namespace.clone(), event.clone()));

    c.start()?;
    p.start()?;

    c.join()?;
    p.join()?;
    Ok(())
}
