use super::*;
use std::os::fd::{AsFd, OwnedFd};

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

#[test]
fn anonymous_segments_cannot_be_resized() {
    let seg = Segment::object(*b"TEST", 1, 100).unwrap();
    let len = seg.len() as u64;
    for size in [0, 10, len - 1, len + 1, len * 2] {
        let e = ftruncate(seg.fd(), size).unwrap_err();
        assert_eq!(e, rustix::io::Errno::PERM, "ftruncate to {size}");
    }
    // Nor can the seals be changed.
    assert!(fcntl_add_seals(seg.fd(), SealFlags::WRITE).is_err());
    seg.check(*b"TEST", 1).unwrap();
    assert_eq!(fstat(seg.fd()).unwrap().st_size as u64, len);
}

/// A memfd made by hand, with a valid object header: what a buggy or
/// hostile peer could send instead of a segment of ours.
fn forged(len: u64, seal: bool) -> OwnedFd {
    let flags = if seal {
        MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING
    } else {
        MemfdFlags::CLOEXEC
    };
    let fd = memfd_create("forged", flags).unwrap();
    ftruncate(&fd, len).unwrap();
    if len >= HEADER_SIZE as u64 {
        let mut h = [0u8; 16];
        h[..4].copy_from_slice(b"TEST");
        h[4..8].copy_from_slice(&1u32.to_ne_bytes());
        h[8..16].copy_from_slice(&(len - HEADER_SIZE as u64).to_ne_bytes());
        rustix::io::pwrite(&fd, &h, 0).unwrap();
    }
    if seal {
        fcntl_add_seals(&fd, RESIZE_SEALS).unwrap();
    }
    fd
}

fn receive(fd: OwnedFd) -> Result<Segment, postcard::Error> {
    let seg = Segment::from_fd(fd).unwrap();
    let (bytes, fds) = handle::collect_fds(|| postcard::to_allocvec(&seg));
    handle::provide_fds(fds, || postcard::from_bytes::<Segment>(&bytes.unwrap()))
}

#[test]
fn attach_refuses_unsealed_or_short_segments() {
    // The well-formed, sealed forgery is accepted: the checks are not
    // refusing everything.
    let ok = receive(forged(4096, true)).unwrap();
    ok.check(*b"TEST", 1).unwrap();
    assert_eq!(ok.payload_len(), 4096 - HEADER_SIZE);

    // Unsealed: a peer could shrink it under us.
    assert!(receive(forged(4096, false)).is_err());
    let unsealed = Segment::from_fd(forged(4096, false)).unwrap();
    let e = unsealed.check_sealed().unwrap_err().to_string();
    assert!(e.contains("not sealed against resizing"), "{e}");
    assert_eq!(
        unsealed.check(*b"TEST", 1).unwrap_err().kind(),
        io::ErrorKind::InvalidData
    );

    // Sealed but shorter than a header: attaching works (it is a valid
    // segment), but it holds no object, and nothing reads a header there.
    let short = receive(forged(10, true)).unwrap();
    assert_eq!(short.payload_len(), 0);
    assert_eq!(
        short.check(*b"TEST", 1).unwrap_err().kind(),
        io::ErrorKind::InvalidData
    );
    assert!(short.payload().is_none());

    // A header that claims more payload than the segment holds.
    let fd = forged(200, false);
    let mut h = [0u8; 8];
    h.copy_from_slice(&10_000u64.to_ne_bytes());
    rustix::io::pwrite(&fd, &h, 8).unwrap();
    let liar = Segment::from_fd(fd).unwrap();
    assert_eq!(liar.payload_len(), 200 - HEADER_SIZE);
}

#[test]
fn a_segment_resized_after_mapping_is_refused() {
    // Sealing after the receiver mapped it does not help: the size must
    // still be the mapped one.
    let fd = memfd_create("late", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING).unwrap();
    ftruncate(&fd, 8192).unwrap();
    let seg = Segment::from_fd(fd.try_clone().unwrap()).unwrap();
    ftruncate(&fd, 4096).unwrap();
    fcntl_add_seals(&fd, RESIZE_SEALS).unwrap();
    let e = seg.check_sealed().unwrap_err().to_string();
    assert!(e.contains("4096 bytes, 8192 were mapped"), "{e}");
}

#[test]
fn proc_route_never_attaches_to_another_object() {
    // A segment without an object header is not kept for the receiver:
    // once dropped, its descriptor number goes to the next object.
    let a = Segment::anonymous("first", 4096).unwrap();
    // SAFETY: in bounds, not shared.
    unsafe { a.as_ptr().write(1) };
    let n = std::os::fd::AsRawFd::as_raw_fd(&a.fd());
    let bytes = postcard::to_allocvec(&a).unwrap();
    drop(a);
    let b = Segment::anonymous("second", 4096).unwrap();
    // SAFETY: in bounds, not shared.
    unsafe { b.as_ptr().write(2) };
    if std::os::fd::AsRawFd::as_raw_fd(&b.fd()) == n {
        // The number now names `b`: decoding must refuse, not attach to it.
        assert!(postcard::from_bytes::<Segment>(&bytes).is_err());
    }
    // Closed and not reused: refused too.
    drop(b);
    let _hold: Vec<_> = (0..4)
        .map(|_| std::fs::File::open("/dev/null").unwrap())
        .collect();
    assert!(postcard::from_bytes::<Segment>(&bytes).is_err());
}

#[test]
fn proc_route_checks_the_identity_of_any_descriptor() {
    // A bare memfd (not a Segment, so nothing keeps it for the receiver).
    type In = Fd<OwnedFd>;
    let id = |fd: BorrowedFd<'_>| {
        let st = fstat(fd).unwrap();
        (st.st_dev, st.st_ino)
    };
    let first = memfd_create("first", MemfdFlags::CLOEXEC).unwrap();
    let n = std::os::fd::AsRawFd::as_raw_fd(&first);
    let bytes = postcard::to_allocvec(&Fd(first.as_fd())).unwrap();
    // Still held: the same object comes back.
    let back: In = postcard::from_bytes(&bytes).unwrap();
    assert_eq!(id(first.as_fd()), id(back.0.as_fd()));
    drop((first, back));
    // The number reused by another object (or, with tests running on other
    // threads, by some other object, or free): refused.
    let second = memfd_create("second", MemfdFlags::CLOEXEC).unwrap();
    let _ = std::os::fd::AsRawFd::as_raw_fd(&second) == n;
    assert!(postcard::from_bytes::<In>(&bytes).is_err());
}

#[test]
fn proc_route_refuses_what_is_not_a_regular_file_without_opening_it() {
    use std::os::unix::fs::OpenOptionsExt;
    use std::time::Duration;
    type In = Fd<OwnedFd>;
    let dir = std::env::temp_dir().join(format!("mp-os-fifo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("f");
    let _ = std::fs::remove_file(&fifo);
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
    )
    .unwrap();
    // Held open by this process (no writer-reader pairing needed).
    let held = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(&fifo)
        .unwrap();
    let null = std::fs::File::open("/dev/null").unwrap();
    let forged = [
        postcard::to_allocvec(&Fd(held.as_fd())).unwrap(),
        postcard::to_allocvec(&Fd(null.as_fd())).unwrap(),
    ];
    // A receiver that opened the FIFO could block: decode on a thread.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for bytes in forged {
            let r = postcard::from_bytes::<In>(&bytes).map(|Fd(fd)| drop(fd));
            tx.send(r.is_err()).unwrap();
        }
    });
    for what in ["a FIFO", "a device"] {
        let refused = rx.recv_timeout(Duration::from_secs(30)).expect("blocked");
        assert!(refused, "{what} was re-opened");
    }
    drop((held, null));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_burst_of_sends_is_let_go_once_every_receiver_attached() {
    let seg = Segment::object(*b"TEST", 1, 8).unwrap();
    // More sends of one object than there were acknowledgement slots.
    let sent: Vec<_> = (0..10)
        .map(|_| postcard::to_allocvec(&seg).unwrap())
        .collect();
    let weak = Arc::downgrade(&seg.inner);
    drop(seg);
    assert!(weak.upgrade().is_some(), "kept for its receivers");
    let back: Vec<Segment> = sent
        .iter()
        .map(|b| postcard::from_bytes(b).unwrap())
        .collect();
    // Nothing else is exported or created here: dropping a segment sweeps.
    drop(back);
    assert!(
        weak.upgrade().is_none(),
        "every receiver attached, yet the sender still holds the object"
    );
}

#[test]
fn an_object_outlives_its_handle_until_a_receiver_attached() {
    let seg = Segment::object(*b"TEST", 1, 8).unwrap();
    // SAFETY: in bounds of the payload, not shared yet.
    unsafe { seg.payload().unwrap().cast::<u64>().write(77) };
    let bytes = postcard::to_allocvec(&seg).unwrap();
    assert_eq!(Arc::strong_count(&seg.inner), 2, "kept in the exports");
    let weak = Arc::downgrade(&seg.inner);
    drop(seg);
    // Other objects take descriptor numbers meanwhile.
    let _others: Vec<_> = (0..4)
        .map(|_| Segment::object(*b"TEST", 1, 8).unwrap())
        .collect();
    let back: Segment = postcard::from_bytes(&bytes).unwrap();
    back.check(*b"TEST", 1).unwrap();
    // SAFETY: as above; the receiver's mapping of the same memory.
    assert_eq!(unsafe { back.payload().unwrap().cast::<u64>().read() }, 77);
    // The receiver acknowledged: the next object creation sweeps the
    // export, and only the receiver's mapping is left.
    assert!(weak.upgrade().is_some());
    let _next = Segment::object(*b"TEST", 1, 8).unwrap();
    assert!(weak.upgrade().is_none(), "the export was released");
    // The ticket is spent: decoding the same bytes again is an error (the
    // sender let go), whatever the number refers to now.
    drop(back);
    assert!(postcard::from_bytes::<Segment>(&bytes).is_err());
}

#[test]
fn a_forged_object_id_is_refused() {
    let seg = Segment::object(*b"TEST", 1, 8).unwrap();
    let (bytes, fds) = handle::collect_fds(|| postcard::to_allocvec(&seg));
    let mut bytes = bytes.unwrap();
    // Wire: Passed(0) = [0, 0], then the id as a varint: flip a bit of it.
    bytes[2] ^= 1;
    let r = handle::provide_fds(fds, || postcard::from_bytes::<Segment>(&bytes));
    assert!(r.is_err());
}

#[test]
fn a_strict_receiver_refuses_the_proc_form() {
    let seg = Segment::object(*b"TEST", 1, 8).unwrap();
    let bytes = postcard::to_allocvec(&seg).unwrap();
    assert!(
        handle::provide_fds_strict(Vec::new(), || postcard::from_bytes::<Segment>(&bytes)).is_err()
    );
    // The same bytes are fine for a trusting receiver.
    assert!(postcard::from_bytes::<Segment>(&bytes).is_ok());
    // Passed descriptors are fine for a strict one.
    let (bytes, fds) = handle::collect_fds(|| postcard::to_allocvec(&seg));
    assert!(
        handle::provide_fds_strict(fds, || postcard::from_bytes::<Segment>(&bytes.unwrap()))
            .is_ok()
    );
}

#[test]
fn exports_that_nobody_receives_are_bounded() {
    // In a child process: the flood would evict other tests' exports.
    // One-time set-up first, so that the child does not inherit it half
    // done by another test thread.
    drop(Segment::object(*b"TEST", 1, 8).unwrap());
    // SAFETY: the child only runs this code (no locks held by other
    // threads are needed) and leaves with `_exit`.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        let ok = std::panic::catch_unwind(|| {
            // Many sends of one object: one entry.
            let seg = Segment::object(*b"TEST", 1, 8).unwrap();
            for _ in 0..MAX_EXPORTS + 100 {
                let _ = postcard::to_allocvec(&seg).unwrap();
            }
            let one = Arc::strong_count(&seg.inner) == 2;
            drop(seg);
            // Many objects: the oldest go.
            let kept: Vec<_> = (0..MAX_EXPORTS + 100)
                .map(|_| {
                    let seg = Segment::object(*b"TEST", 1, 8).unwrap();
                    let _ = postcard::to_allocvec(&seg).unwrap();
                    Arc::downgrade(&seg.inner)
                })
                .collect();
            let alive = kept.iter().filter(|w| w.upgrade().is_some()).count();
            // Big objects (sparse: nothing is touched): bounded by bytes.
            let big: Vec<_> = (0..3)
                .map(|_| {
                    let seg = Segment::object(*b"TEST", 1, 600 << 20).unwrap();
                    let _ = postcard::to_allocvec(&seg).unwrap();
                    Arc::downgrade(&seg.inner)
                })
                .collect();
            let big_alive = big.iter().filter(|w| w.upgrade().is_some()).count();
            one && alive == MAX_EXPORTS && big_alive == 1
        });
        // SAFETY: leaving the child without running the harness.
        unsafe { libc::_exit(if matches!(ok, Ok(true)) { 0 } else { 1 }) };
    }
    let mut status = 0;
    // SAFETY: reaping our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
}
