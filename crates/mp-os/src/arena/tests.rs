use super::*;
use crate::handle;
use crate::object::{Kind, Object};

const KIND: Kind = Kind::new(*b"ARNT", 1);

fn slot_of(o: &Object<u64>) -> Arc<SlotRef> {
    o.slot().expect("a small object lives in an arena").clone()
}

fn round_trip(o: &Object<u64>) -> Object<u64> {
    let (bytes, fds) = handle::collect_fds(|| postcard::to_allocvec(o).unwrap());
    handle::provide_fds(fds, || {
        let mut de = postcard::Deserializer::from_bytes(&bytes);
        Object::<u64>::deserialize_as(&mut de, KIND)
    })
    .unwrap()
}

fn count_of(slot: &SlotRef) -> u32 {
    count(slot.map.slot(slot.index).state.load(Acquire))
}

#[test]
fn many_objects_take_few_arenas() {
    let objs: Vec<_> = (0..20_000u64)
        .map(|i| Object::create(KIND, i, 0).unwrap())
        .collect();
    let mut segs: Vec<_> = objs.iter().map(|o| o.segment().as_ptr()).collect();
    segs.sort();
    segs.dedup();
    assert!(segs.len() <= 20_000 / 8_000 + 2, "{} arenas", segs.len());
    assert!(objs.iter().enumerate().all(|(i, o)| *o.head() == i as u64));
}

#[test]
fn a_process_counts_once_per_slot() {
    let o = Object::create(KIND, 5u64, 0).unwrap();
    let slot = slot_of(&o);
    let twins: Vec<_> = (0..3).map(|_| round_trip(&o)).collect();
    assert!(twins.iter().all(|t| t.ptr_eq(&o)));
    assert_eq!(count_of(&slot), 1);
    assert_eq!(count(slot.map.slot(slot.index).tickets.load(Acquire)), 0);
    drop(twins);
    drop(o);
    assert_eq!(count_of(&slot), 1, "still held by `slot`");
}

#[test]
fn a_freed_slot_is_never_attached_by_a_stale_handle() {
    let o = Object::create(KIND, 1u64, 0).unwrap();
    let slot = slot_of(&o);
    let (index, era) = (slot.index, slot.era);
    let map = slot.map.clone();
    let fd = || map.seg.fd().try_clone_to_owned().unwrap();
    drop((o, slot));
    let mut held = Vec::new();
    let mut reused = None;
    for _ in 0..100_000 {
        let n = Object::create(KIND, 2u64, 0).unwrap();
        let s = slot_of(&n);
        if Arc::ptr_eq(&s.map, &map) && s.index == index {
            reused = Some((n, s));
            break;
        }
        held.push(n);
    }
    let (n, s) = reused.expect("the slot is reused");
    assert_ne!(s.era, era);
    let e = receive(fd(), index, era, false).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    assert!(e.to_string().contains("freed"), "{e}");
    assert_eq!(*n.head(), 2);
}

#[test]
fn out_of_bounds_and_foreign_descriptors_are_refused() {
    let o = Object::create(KIND, 1u64, 0).unwrap();
    let slot = slot_of(&o);
    let fd = slot.map.seg.fd().try_clone_to_owned().unwrap();
    let e = receive(fd, slot.map.slots, 0, false).unwrap_err();
    assert!(e.to_string().contains("out of bounds"), "{e}");
    let plain = Segment::object(*b"NOPE", 1, 4096).unwrap();
    let fd = plain.fd().try_clone_to_owned().unwrap();
    assert!(receive(fd, 0, 0, false).is_err());
}

#[test]
fn a_wrong_kind_is_refused() {
    let o = Object::create(KIND, 1u64, 0).unwrap();
    let (bytes, fds) = handle::collect_fds(|| postcard::to_allocvec(&o).unwrap());
    let r = handle::provide_fds(fds, || {
        let mut de = postcard::Deserializer::from_bytes(&bytes);
        Object::<u64>::deserialize_as(&mut de, Kind::new(*b"ARNT", 2))
    });
    assert!(r.is_err());
    assert!(handle::take_attach_error().unwrap().contains("version"));
    let (bytes, fds) = handle::collect_fds(|| postcard::to_allocvec(&o).unwrap());
    let r = handle::provide_fds(fds, || {
        let mut de = postcard::Deserializer::from_bytes(&bytes);
        Object::<[u64; 2]>::deserialize_as(&mut de, KIND)
    });
    assert!(r.is_err());
    assert!(handle::take_attach_error().unwrap().contains("too small"));
}
