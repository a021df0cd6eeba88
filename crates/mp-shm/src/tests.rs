use super::*;

#[test]
fn handles_are_send_sync_clone() {
    fn check<T: Send + Sync + Clone>() {}
    check::<Value<u64>>();
    check::<Array<f64>>();
    check::<RawValue<i32>>();
    check::<RawArray<[u8; 3]>>();
    check::<SharedMemory>();
}

#[test]
fn value_get_set_update_guard() {
    let v = Value::new(1u32).unwrap();
    v.set(2);
    assert_eq!(v.get(), 2);
    assert_eq!(
        v.update(|x| {
            *x += 1;
            *x * 10
        }),
        30
    );
    {
        let mut g = v.lock();
        *g += 1;
        assert_eq!(*g, 4);
        assert!(g.owner_died().is_none());
    }
    {
        let _l = v.get_lock().acquire().unwrap();
        v.set(v.get() + 1);
    }
    assert_eq!(v.get(), 5);
}

#[test]
#[should_panic(expected = "borrowed")]
fn value_get_under_own_guard_panics() {
    let v = Value::new(1u8).unwrap();
    let _g = v.lock();
    let _ = v.get();
}

#[test]
fn condition_refuses_to_wait_under_a_value_guard() {
    let v = Value::new(0u32).unwrap();
    let cond = mp_sync::Condition::with_lock(v.get_lock().clone()).unwrap();
    let g = v.lock();
    let mut cg = cond.acquire().unwrap();
    assert!(matches!(
        cg.wait_timeout(std::time::Duration::from_millis(1)),
        Err(mp_sync::Error::InvalidArgument(_))
    ));
    drop(cg);
    drop(g);
    let mut cg = cond.acquire().unwrap();
    assert!(
        !cg.wait_timeout(std::time::Duration::from_millis(1))
            .unwrap()
    );
}

#[test]
fn array_basics() {
    let a = Array::from_slice(&[1i16, 2, 3]).unwrap();
    assert_eq!(a.len(), 3);
    assert_eq!(a.get(2), 3);
    a.set(0, 7);
    assert_eq!(a.to_vec(), [7, 2, 3]);
    a.update(|s| s.sort());
    assert_eq!(&*a.lock(), &[2, 3, 7]);
    let empty = Array::<u8>::zeroed(0).unwrap();
    assert!(empty.is_empty());
    assert!(empty.to_vec().is_empty());
}

#[test]
#[should_panic(expected = "index out of bounds")]
fn array_out_of_bounds_panics() {
    let a = Array::<u8>::zeroed(2).unwrap();
    a.get(2);
}

#[test]
fn raw_kinds() {
    let v = RawValue::new(-5i64).unwrap();
    assert_eq!(v.get(), -5);
    v.set(9);
    assert_eq!(v.get(), 9);
    let p = RawValue::new([1.0f32; 3]).unwrap();
    // SAFETY: nobody else accesses `p`.
    unsafe {
        p.write([2.0; 3]);
        assert_eq!(p.read(), [2.0; 3]);
    }
    let a = RawArray::<f64>::zeroed(3).unwrap();
    a.set(1, 1.5);
    assert_eq!(a.to_vec(), [0.0, 1.5, 0.0]);
    // SAFETY: nobody else accesses `a`.
    unsafe {
        a.as_mut_slice()[2] = 3.0;
        assert_eq!(a.as_slice(), &[0.0, 1.5, 3.0]);
    }
}

#[test]
fn over_aligned_type() {
    #[repr(C, align(256))]
    #[derive(Clone, Copy)]
    struct Big([u64; 4]);
    // SAFETY: repr(C), integers only.
    unsafe impl ShmSafe for Big {}
    let v = Value::new(Big([1, 2, 3, 4])).unwrap();
    assert_eq!(v.as_ptr() as usize % 256, 0);
    assert_eq!(v.get().0, [1, 2, 3, 4]);
}

#[test]
fn wrong_type_or_kind_is_a_deserialization_error() {
    let v = Value::new(1u32).unwrap();
    let bytes = postcard::to_allocvec(&v).unwrap();
    assert!(postcard::from_bytes::<Value<u64>>(&bytes).is_err());
    assert!(postcard::from_bytes::<Array<u32>>(&bytes).is_err());
    assert!(postcard::from_bytes::<RawValue<u32>>(&bytes).is_err());
    let back: Value<u32> = postcard::from_bytes(&bytes).unwrap();
    assert_eq!(back.get(), 1);
}
