//! Python's `Manager().Array`, `BoundedSemaphore`, `register(...,
//! exposed=...)`, and registered methods' errors that keep their kind.

use std::sync::OnceLock;

use mp_manager::{
    ArrayProxy, Call, CallResult, Error, ExceptionKind, ListProxy, Manager, MethodError, Registry,
    RemoteError, RemoteObject, Types,
};

fn remote(e: Error) -> RemoteError {
    match e {
        Error::Remote(r) => r,
        other => panic!("expected a remote error, got {other:?}"),
    }
}

fn method(e: Error) -> MethodError {
    match remote(e) {
        RemoteError::Method(m) => m,
        other => panic!("expected a method error, got {other:?}"),
    }
}

/// A stock of named items that lives in the server.
struct Stock(std::collections::HashMap<String, u32>);

impl RemoteObject for Stock {
    type Init = Vec<(String, u32)>;
    fn create(items: Self::Init) -> Self {
        Stock(items.into_iter().collect())
    }
    fn call(&mut self, call: Call<'_>) -> CallResult {
        match call.method() {
            "take" => {
                let (name, n): (String, u32) = call.args()?;
                let have = self
                    .0
                    .get_mut(&name)
                    .ok_or_else(|| MethodError::new(ExceptionKind::Key, format!("'{name}'")))?;
                if *have < n {
                    return Err(MethodError::new(
                        ExceptionKind::Value,
                        format!("only {have} left"),
                    ));
                }
                *have -= n;
                mp_manager::encode_result(&*have)
            }
            "count" => call.reply(|name: String| self.0.get(&name).copied()),
            "clear" => call.reply(|(): ()| self.0.clear()),
            "fail" => Err("plain message".into()),
            "panic" => panic!("boom"),
            _ => Err(call.unknown()),
        }
    }
}

struct Types2;
impl Registry for Types2 {
    fn register(t: &mut Types) {
        t.add::<Stock>("Stock");
        t.add_exposed::<Stock>("ReadOnlyStock", &["count"]);
    }
}

fn manager() -> &'static Manager {
    static M: OnceLock<Manager> = OnceLock::new();
    M.get_or_init(|| Manager::builder().registry::<Types2>().start().unwrap())
}

#[test]
fn array_reads_and_writes_items_in_place_with_a_fixed_length() {
    let m = manager();
    let a: ArrayProxy<i64> = m.array(vec![1, 2, 3, 4]).unwrap();
    assert_eq!(a.len().unwrap(), 4);
    assert!(!a.is_empty().unwrap());
    a.set(0, 10).unwrap();
    a.set(-1, 40).unwrap();
    assert_eq!(a.get(-1).unwrap(), 40);
    assert_eq!(a.to_vec().unwrap(), [10, 2, 3, 40]);
    assert_eq!(a.slice(1, 3).unwrap(), [2, 3]);
    assert_eq!(a.slice(-2, 100).unwrap(), [3, 40]);
    assert_eq!(a.slice(3, 1).unwrap(), Vec::<i64>::new());
    assert_eq!(remote(a.get(4).unwrap_err()), RemoteError::IndexOutOfRange);
    assert_eq!(
        remote(a.set(-5, 0).unwrap_err()),
        RemoteError::IndexOutOfRange
    );
    assert_eq!(a.len().unwrap(), 4, "the length never changes");
    // An empty one, and a lookup as the wrong kind.
    assert!(m.array(Vec::<u8>::new()).unwrap().is_empty().unwrap());
    m.publish("array", &a).unwrap();
    assert!(matches!(
        m.lookup::<ListProxy<i64>>("array"),
        Err(Error::WrongKind { .. })
    ));
    assert_eq!(m.lookup::<ArrayProxy<i64>>("array").unwrap(), a);
}

#[test]
fn a_bounded_semaphore_refuses_a_release_above_its_initial_value() {
    let m = manager();
    let s = m.bounded_semaphore(2).unwrap();
    assert_eq!(
        remote(s.release().unwrap_err()),
        RemoteError::ReleasedTooOften
    );
    let a = s.acquire().unwrap();
    let b = s.acquire().unwrap();
    assert!(s.try_acquire().unwrap().is_none());
    drop(a);
    s.release().unwrap(); // b's unit, by hand
    assert_eq!(
        remote(s.release().unwrap_err()),
        RemoteError::ReleasedTooOften
    );
    // b's guard releasing too would exceed the bound: refused as well, and
    // the units stay at two.
    assert_eq!(
        remote(b.release().unwrap_err()),
        RemoteError::ReleasedTooOften
    );
    let g: Vec<_> = (0..2).map(|_| s.acquire().unwrap()).collect();
    assert!(s.try_acquire().unwrap().is_none());
    drop(g);
    // A plain semaphore has no bound.
    let plain = m.semaphore(0).unwrap();
    plain.release().unwrap();
    plain.release().unwrap();
    assert!(plain.try_acquire().unwrap().is_some());
}

#[test]
fn registered_methods_errors_keep_their_kind() {
    let m = manager();
    let s = m
        .create("Stock", &vec![("apples".to_string(), 3u32)])
        .unwrap();
    assert_eq!(s.call::<_, u32>("take", &("apples", 2u32)).unwrap(), 1);
    let e = method(s.call::<_, u32>("take", &("pears", 1u32)).unwrap_err());
    assert_eq!(e.kind, ExceptionKind::Key);
    assert_eq!(e.to_string(), "KeyError: 'pears'");
    let e = method(s.call::<_, u32>("take", &("apples", 5u32)).unwrap_err());
    assert_eq!(
        (e.kind, e.message.as_str()),
        (ExceptionKind::Value, "only 1 left")
    );
    let e = method(s.call::<_, u32>("take", &7u8).unwrap_err());
    assert_eq!(e.kind, ExceptionKind::Type, "{e}");
    let e = method(s.call::<_, ()>("nope", &()).unwrap_err());
    assert_eq!(e.kind, ExceptionKind::Attribute);
    let e = method(s.call::<_, ()>("fail", &()).unwrap_err());
    assert_eq!(
        (e.kind, e.message.as_str()),
        (ExceptionKind::Other, "plain message")
    );
    let e = method(s.call::<_, ()>("panic", &()).unwrap_err());
    assert_eq!(e.kind, ExceptionKind::Other);
    assert!(e.message.contains("panicked"), "{e}");
    // The object still serves.
    assert_eq!(
        s.call::<_, Option<u32>>("count", &"apples").unwrap(),
        Some(1)
    );
    // Creation errors keep theirs too.
    let e = method(m.create("Stock", &"not a list").unwrap_err());
    assert_eq!(e.kind, ExceptionKind::Type);
    assert_eq!(
        remote(m.create("Nope", &()).unwrap_err()),
        RemoteError::UnknownType("Nope".into())
    );
}

#[test]
fn only_exposed_methods_can_be_called() {
    let m = manager();
    let s = m
        .create("ReadOnlyStock", &vec![("apples".to_string(), 3u32)])
        .unwrap();
    assert_eq!(
        s.call::<_, Option<u32>>("count", &"apples").unwrap(),
        Some(3)
    );
    for name in ["take", "clear", "nope"] {
        let e = method(s.call::<_, ()>(name, &()).unwrap_err());
        assert_eq!(e.kind, ExceptionKind::Attribute, "{name}");
        assert!(e.message.contains("not exposed"), "{e}");
    }
    // Refused before the object ran anything.
    assert_eq!(
        s.call::<_, Option<u32>>("count", &"apples").unwrap(),
        Some(3)
    );
}
