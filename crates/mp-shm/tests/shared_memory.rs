//! Named SharedMemory: errors, ownership of the name, cross-process use.

mod common;

use std::path::Path;

use common::fork;
use mp_shm::{Error, SharedMemory};

fn name(tag: &str) -> String {
    format!("mp-shm-test-{}-{tag}", std::process::id())
}

fn exists(name: &str) -> bool {
    Path::new("/dev/shm").join(name).exists()
}

#[test]
fn errors_are_distinct() {
    let n = name("errors");
    assert!(matches!(
        SharedMemory::attach(&n),
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(SharedMemory::create(&n, 0), Err(Error::ZeroSize)));
    assert!(matches!(
        SharedMemory::create("a/b", 10),
        Err(Error::InvalidName { .. })
    ));
    assert!(matches!(
        SharedMemory::create("", 10),
        Err(Error::InvalidName { .. })
    ));
    assert!(matches!(
        SharedMemory::attach(&"x".repeat(300)),
        Err(Error::InvalidName { .. })
    ));
    let shm = SharedMemory::create(&n, 100).unwrap();
    assert!(exists(&n));
    assert!(matches!(
        SharedMemory::create(&n, 100),
        Err(Error::AlreadyExists { .. })
    ));
    let other = SharedMemory::attach(&n).unwrap();
    assert!(!other.is_owner());
    assert!(matches!(other.unlink(), Err(Error::NotOwner { .. })));
    assert!(matches!(
        shm.write_at(95, &[0; 6]),
        Err(Error::OutOfBounds { .. })
    ));
    assert!(matches!(
        shm.read_at(usize::MAX, &mut [0; 2]),
        Err(Error::OutOfBounds { .. })
    ));
    shm.unlink().unwrap();
    assert!(!exists(&n));
    assert!(matches!(shm.unlink(), Err(Error::AlreadyUnlinked { .. })));
    // mappings stay valid after unlink
    shm.write_at(0, b"ok").unwrap();
    let mut b = [0; 2];
    other.read_at(0, &mut b).unwrap();
    assert_eq!(&b, b"ok");
    // someone else removed the name
    let n2 = name("gone");
    let shm2 = SharedMemory::create(&n2, 10).unwrap();
    mp_os::segment::Segment::unlink_named(&n2).unwrap();
    assert!(matches!(shm2.unlink(), Err(Error::NotFound { .. })));
}

#[test]
fn creator_unlinks_on_drop_and_close() {
    let n = name("drop");
    let shm = SharedMemory::create(&n, 10).unwrap();
    let clone = shm.clone();
    drop(shm);
    assert!(exists(&n), "a clone of the creator still owns the name");
    let attached = SharedMemory::attach(&n).unwrap();
    clone.close();
    assert!(!exists(&n));
    attached.close();

    let n = name("persist");
    let shm = SharedMemory::create(&n, 10).unwrap().into_persistent();
    drop(shm);
    assert!(exists(&n));
    let again = SharedMemory::attach(&n).unwrap();
    assert!(matches!(again.unlink(), Err(Error::NotOwner { .. })));
    mp_os::segment::Segment::unlink_named(&n).unwrap();
    assert!(!exists(&n));
}

#[test]
fn unrelated_process_attaches_by_name() {
    let n = name("byname");
    let shm = SharedMemory::create(&n, 1 << 16).unwrap();
    let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    shm.write_at(3, &data).unwrap();
    let child = fork(|| {
        let other = match SharedMemory::attach(&n) {
            Ok(o) => o,
            Err(_) => return 2,
        };
        let mut buf = vec![0; 1000];
        other.read_at(3, &mut buf).unwrap();
        if buf != (0..=255u8).cycle().take(1000).collect::<Vec<u8>>() {
            return 3;
        }
        other.write_at(5000, b"from the child").unwrap();
        if other.unlink().is_ok() {
            return 4;
        }
        0
    });
    assert_eq!(child.wait(), 0);
    let mut buf = [0; 14];
    shm.read_at(5000, &mut buf).unwrap();
    assert_eq!(&buf, b"from the child");
    // SAFETY: the child is gone; nobody else writes.
    assert_eq!(unsafe { &shm.as_slice()[5000..5004] }, b"from");
    assert_eq!(shm.size(), 1 << 16);
    assert_eq!(shm.name(), n);
    drop(shm);
    assert!(!exists(&n));
}

#[test]
fn serialized_handle_is_an_attacher_on_the_same_memory() {
    let n = name("serde");
    let shm = SharedMemory::create(&n, 64).unwrap();
    let (bytes, fds) = mp_os::handle::collect_fds(|| postcard::to_allocvec(&shm).unwrap());
    let back: SharedMemory =
        mp_os::handle::provide_fds(fds, || postcard::from_bytes(&bytes)).unwrap();
    assert!(!back.is_owner());
    back.write_at(1, &[9]).unwrap();
    let mut b = [0];
    shm.read_at(1, &mut b).unwrap();
    assert_eq!(b, [9]);
    drop(back);
    assert!(exists(&n));
    let proc_bytes = postcard::to_allocvec(&shm).unwrap();
    let child = fork(|| {
        let s: SharedMemory = postcard::from_bytes(&proc_bytes).unwrap();
        s.write_at(2, &[8]).unwrap();
        0
    });
    assert_eq!(child.wait(), 0);
    shm.read_at(2, &mut b).unwrap();
    assert_eq!(b, [8]);
    drop(shm);
    assert!(!exists(&n));
}

#[test]
fn unique_names() {
    let a = SharedMemory::create_unique(10).unwrap();
    let b = SharedMemory::create_unique(10).unwrap();
    assert_ne!(a.name(), b.name());
    let (na, nb) = (a.name().to_string(), b.name().to_string());
    assert!(exists(&na) && exists(&nb));
    drop((a, b));
    assert!(!exists(&na) && !exists(&nb));
}

#[test]
fn byte_access_unaligned_edges() {
    let n = name("edges");
    let shm = SharedMemory::create(&n, 100).unwrap();
    for off in 0..9 {
        for len in [0usize, 1, 7, 8, 9, 17, 40] {
            let data: Vec<u8> = (0..len).map(|i| (i + off) as u8 ^ 0x5a).collect();
            shm.write_at(off, &data).unwrap();
            let mut back = vec![0; len];
            shm.read_at(off, &mut back).unwrap();
            assert_eq!(back, data);
        }
    }
    drop(shm);
    assert!(!exists(&n));
}
