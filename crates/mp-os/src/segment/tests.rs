use super::*;

#[test]
fn zero_length_is_an_error() {
    assert_eq!(
        Segment::anonymous("t", 0).unwrap_err().kind(),
        io::ErrorKind::InvalidInput
    );
}

#[test]
fn header_round_trip_and_mismatch() {
    let seg = Segment::object(*b"TEST", 3, 10).unwrap();
    seg.check(*b"TEST", 3).unwrap();
    assert_eq!(
        seg.check(*b"NOPE", 3).unwrap_err().kind(),
        io::ErrorKind::InvalidData
    );
    assert_eq!(
        seg.check(*b"TEST", 4).unwrap_err().kind(),
        io::ErrorKind::InvalidData
    );
}

#[test]
fn serde_in_process_reattaches_same_memory() {
    let seg = Segment::anonymous("t", 4096).unwrap();
    // SAFETY: in bounds, not shared with another thread.
    unsafe { seg.as_ptr().add(10).write(42) };
    let (bytes, fds) = handle::collect_fds(|| postcard::to_allocvec(&seg));
    let bytes = bytes.unwrap();
    let back: Segment = handle::provide_fds(fds, || postcard::from_bytes(&bytes)).unwrap();
    assert!(!back.ptr_eq(&seg));
    // SAFETY: in bounds of the 4096-byte mapping.
    assert_eq!(unsafe { back.as_ptr().add(10).read() }, 42);
}

#[test]
fn serde_without_transport_uses_proc_path() {
    let seg = Segment::anonymous("t", 4096).unwrap();
    // SAFETY: in bounds.
    unsafe { seg.as_ptr().write(9) };
    let bytes = postcard::to_allocvec(&seg).unwrap();
    let back: Segment = postcard::from_bytes(&bytes).unwrap();
    // SAFETY: in bounds.
    assert_eq!(unsafe { back.as_ptr().read() }, 9);
}

#[test]
fn named_errors_are_distinct() {
    let name = format!("mp-os-test-{}", std::process::id());
    assert_eq!(
        Segment::open_named(&name).unwrap_err().kind(),
        io::ErrorKind::NotFound
    );
    let a = Segment::create_named(&name, 100).unwrap();
    assert_eq!(
        Segment::create_named(&name, 100).unwrap_err().kind(),
        io::ErrorKind::AlreadyExists
    );
    let b = Segment::open_named(&name).unwrap();
    // SAFETY: both map the same 100-byte object.
    unsafe {
        a.as_ptr().write(5);
        assert_eq!(b.as_ptr().read(), 5);
    }
    Segment::unlink_named(&name).unwrap();
    assert_eq!(
        Segment::unlink_named(&name).unwrap_err().kind(),
        io::ErrorKind::NotFound
    );
    assert_eq!(
        Segment::create_named("a/b", 1).unwrap_err().kind(),
        io::ErrorKind::InvalidInput
    );
}
