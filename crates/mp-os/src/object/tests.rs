use super::*;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};

#[repr(C)]
struct Head {
    word: AtomicU32,
    n: u32,
    big: AtomicU64,
}
// SAFETY: repr(C), integers and atomics only.
unsafe impl Plain for Head {}

const KIND: Kind = Kind::new(*b"TEST", 3);

fn head(n: u32) -> Head {
    Head {
        word: AtomicU32::new(7),
        n,
        big: AtomicU64::new(0),
    }
}

#[test]
fn create_then_attach_sees_the_same_head() {
    let o = Object::create_own(KIND, head(5), 100).unwrap();
    assert_eq!(o.offset(), HEADER_SIZE);
    assert_eq!(o.payload_len(), size_of::<Head>() + 100);
    let twin = Object::<Head>::attach(o.segment().clone(), KIND).unwrap();
    assert_eq!(twin.head().n, 5);
    twin.head().big.store(9, Relaxed);
    assert_eq!(o.head().big.load(Relaxed), 9);
}

#[test]
fn the_payload_length_in_the_header_is_what_it_was() {
    // Byte-identical headers to a plain object segment of the same length.
    let o = Object::create_own(KIND, 0u64, 56).unwrap();
    let seg = Segment::object(KIND.magic, KIND.version, 64).unwrap();
    assert_eq!(o.segment().len(), seg.len());
    assert_eq!(o.payload_len(), seg.payload_len());
}

#[test]
fn attach_rejects_another_magic_or_version() {
    let o = Object::create_own(KIND, head(1), 0).unwrap();
    let e = Object::<Head>::attach(o.segment().clone(), Kind::new(*b"NOPE", 3)).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    assert!(e.to_string().contains("TEST"), "{e}");
    let e = Object::<Head>::attach(o.segment().clone(), Kind::new(*b"TEST", 4)).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    assert!(e.to_string().contains("version"), "{e}");
}

#[test]
fn attach_rejects_a_payload_too_short_for_the_layout() {
    // The right kind, but 8 bytes of payload where a Head needs 16.
    let seg = Segment::object(KIND.magic, KIND.version, 8).unwrap();
    let e = Object::<Head>::attach(seg.clone(), KIND).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    assert!(e.to_string().contains("too small"), "{e}");
    // Long enough for a u64: fine.
    Object::<u64>::attach(seg, KIND).unwrap();
}

#[test]
fn attach_rejects_a_segment_without_a_header() {
    let short = Segment::anonymous("short", 16).unwrap();
    let e = Object::<u32>::attach(short, KIND).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidData);
}

#[test]
fn at_checks_bounds_alignment_and_the_header() {
    let seg = Segment::object(*b"HOST", 1, 64).unwrap();
    let end = seg.len();
    assert!(Object::<Head>::at(seg.clone(), HEADER_SIZE).is_ok());
    assert!(Object::<Head>::at(seg.clone(), end - size_of::<Head>()).is_ok());
    assert!(Object::<Head>::at(seg.clone(), end - size_of::<Head>() + 8).is_err());
    assert!(Object::<Head>::at(seg.clone(), HEADER_SIZE + 4).is_err());
    assert!(Object::<Head>::at(seg.clone(), 0).is_err());
    assert!(Object::<Head>::at(seg, usize::MAX - 7).is_err());
}

#[test]
fn region_stays_inside_the_payload() {
    let o = Object::create(KIND, head(1), 48).unwrap();
    let len = o.payload_len();
    assert!(o.region(0, len).is_some());
    assert!(o.region(len, 0).is_some());
    assert!(o.region(len, 1).is_none());
    assert!(o.region(1, len).is_none());
    assert!(o.region(usize::MAX, 1).is_none());
}

#[test]
fn serde_round_trip_checks_the_kind() {
    let o = Object::create(KIND, head(3), 0).unwrap();
    let (bytes, fds) = handle::collect_fds(|| postcard::to_allocvec(&o).unwrap());
    let back = handle::provide_fds(fds, || {
        let mut de = postcard::Deserializer::from_bytes(&bytes);
        Object::<Head>::deserialize_as(&mut de, KIND)
    })
    .unwrap();
    assert_eq!(back.head().n, 3);
    let (bytes, fds) = handle::collect_fds(|| postcard::to_allocvec(&o).unwrap());
    let wrong = handle::provide_fds(fds, || {
        let mut de = postcard::Deserializer::from_bytes(&bytes);
        Object::<Head>::deserialize_as(&mut de, Kind::new(*b"TEST", 9))
    });
    assert!(wrong.is_err());
    assert!(handle::take_attach_error().unwrap().contains("version"));
}

#[test]
fn small_objects_share_an_arena_large_ones_do_not() {
    let a = Object::create(KIND, head(1), 0).unwrap();
    let b = Object::create(KIND, head(2), 0).unwrap();
    assert!(a.segment().ptr_eq(b.segment()));
    assert_ne!(a.offset(), b.offset());
    assert_eq!(a.payload_len(), size_of::<Head>());
    assert_eq!(b.head().n, 2);
    let big = Object::create(KIND, head(3), crate::arena::MAX_PAYLOAD).unwrap();
    assert_eq!(big.offset(), HEADER_SIZE);
    assert!(!big.segment().ptr_eq(a.segment()));
    // An own segment's object is attached through its segment.
    Object::<Head>::attach(big.segment().clone(), KIND).unwrap();
}

#[test]
fn a_part_keeps_its_object_and_travels_with_its_offset() {
    let o = Object::create(KIND, head(4), 16).unwrap();
    let word = o.part::<AtomicU64>(size_of::<Head>() + 8).unwrap();
    word.head().store(77, Relaxed);
    drop(o);
    let (bytes, fds) = handle::collect_fds(|| postcard::to_allocvec(&word).unwrap());
    let back = handle::provide_fds(fds, || {
        let mut de = postcard::Deserializer::from_bytes(&bytes);
        Object::<AtomicU64>::deserialize_any(&mut de)
    })
    .unwrap();
    assert_eq!(back.head().load(Relaxed), 77);
    assert!(back.ptr_eq(&word));
}
