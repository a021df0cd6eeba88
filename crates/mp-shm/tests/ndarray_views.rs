//! `ndarray` views of `Array`, `RawArray` and `SharedMemory` (feature
//! `ndarray`): shapes and alignment checked, rows written by other
//! processes seen through the views.
#![cfg(feature = "ndarray")]

mod common;

use common::fork;
use mp_shm::{Array, Error, RawArray, SharedMemory};
use ndarray::{Ix2, ShapeBuilder, array, s};

#[test]
fn array_guard_views_have_the_shape_asked_for() {
    let a = Array::from_slice(&(0..12).collect::<Vec<i32>>()).unwrap();
    {
        let g = a.lock();
        let m = g.view((3, 4)).unwrap();
        assert_eq!(m.shape(), [3, 4]);
        assert_eq!(m[[2, 1]], 9);
        let f = g.view((3, 4).f()).unwrap();
        assert_eq!(f[[2, 1]], 5); // column-major
        let cube = g.view([2, 3, 2]).unwrap();
        assert_eq!(cube[[1, 2, 1]], 11);
    }
    {
        let mut g = a.lock();
        let mut m = g.view_mut((4, 3)).unwrap();
        m.slice_mut(s![.., 0]).fill(-1);
    }
    assert_eq!(a.to_vec()[..4], [-1, 1, 2, -1]);
    assert_eq!(
        a.to_ndarray((2, 6)).unwrap(),
        array![[-1, 1, 2, -1, 4, 5], [-1, 7, 8, -1, 10, 11]]
    );
}

#[test]
fn shapes_that_do_not_cover_the_array_are_errors() {
    let a = Array::<f64>::zeroed(12).unwrap();
    let mut g = a.lock();
    for bad in [(3, 5), (2, 5), (0, 4), (13, 1)] {
        assert!(
            matches!(g.view(bad), Err(Error::Shape(_))),
            "{bad:?} accepted"
        );
        assert!(matches!(g.view_mut(bad), Err(Error::Shape(_))));
    }
    // Strides reaching past the end.
    assert!(matches!(
        g.view((3, 4).strides((5, 1))),
        Err(Error::Shape(_))
    ));
    drop(g);
    assert!(matches!(a.to_ndarray((5, 5)), Err(Error::Shape(_))));

    let r = RawArray::<u8>::zeroed(6).unwrap();
    // SAFETY: nobody else holds the array.
    unsafe {
        assert!(matches!(r.view((4, 2)), Err(Error::Shape(_))));
        assert!(matches!(r.view_mut((5, 1)), Err(Error::Shape(_))));
        assert_eq!(r.view((2, 3)).unwrap().shape(), [2, 3]);
    }
    assert!(matches!(r.to_ndarray((7,)), Err(Error::Shape(_))));
    let e = Array::<u8>::zeroed(0).unwrap();
    assert_eq!(e.lock().view((0, 3)).unwrap().len(), 0);
}

#[test]
fn raw_array_views_see_a_childs_rows() {
    let (rows, cols) = (8, 5);
    let r = RawArray::<f64>::zeroed(rows * cols).unwrap();
    let children: Vec<_> = (0..rows)
        .map(|i| {
            let r = r.clone();
            fork(move || {
                // Other children write other rows meanwhile: no view
                // here (it would cover their rows), the atomic setter.
                for j in 0..cols {
                    r.set(i * cols + j, (i * 10 + j) as f64);
                }
                0
            })
        })
        .collect();
    for c in children {
        assert_eq!(c.wait(), 0);
    }
    // SAFETY: every writer has exited.
    let m = unsafe { r.view::<Ix2>((rows, cols)).unwrap() };
    for i in 0..rows {
        assert_eq!(
            m.row(i).to_vec(),
            (0..cols).map(|j| (i * 10 + j) as f64).collect::<Vec<_>>()
        );
    }
    assert_eq!(r.to_ndarray((rows, cols)).unwrap(), m);
}

#[test]
fn locked_views_from_several_processes_fill_rows() {
    let (rows, cols) = (6, 1000);
    let a = Array::<u32>::zeroed(rows * cols).unwrap();
    let children: Vec<_> = (0..rows)
        .map(|i| {
            let a = a.clone();
            fork(move || {
                for round in 1..=50u32 {
                    let mut g = a.lock();
                    let mut m = g.view_mut((rows, cols)).unwrap();
                    // Whole-row read-modify-write under the lock: each
                    // round sees the previous one complete.
                    assert!(m.row(i).iter().all(|&x| x == round - 1));
                    m.row_mut(i).map_inplace(|x| *x += 1);
                }
                0
            })
        })
        .collect();
    for c in children {
        assert_eq!(c.wait(), 0);
    }
    assert!(a.to_ndarray((rows, cols)).unwrap().iter().all(|&x| x == 50));
}

#[test]
fn shared_memory_views_check_alignment_and_bounds() {
    let shm = SharedMemory::create_unique(100).unwrap();
    // SAFETY: no other handle writes or reads meanwhile.
    unsafe {
        assert!(matches!(
            shm.view::<f64, _>(4, (2, 2)),
            Err(Error::Misaligned {
                offset: 4,
                align: 8
            })
        ));
        assert!(matches!(
            shm.view_mut::<u32, _>(2, 3),
            Err(Error::Misaligned {
                offset: 2,
                align: 4
            })
        ));
        // 96 bytes from 4: 24 u32 fit, 25 do not.
        assert_eq!(shm.view::<u32, _>(4, (4, 6)).unwrap().len(), 24);
        assert!(matches!(
            shm.view::<u32, _>(4, (5, 5)),
            Err(Error::Shape(_))
        ));
        assert!(matches!(
            shm.view::<u8, _>(101, 0),
            Err(Error::OutOfBounds { .. })
        ));
        let mut m = shm.view_mut::<u16, _>(0, (5, 10)).unwrap();
        m.row_mut(4).fill(0xabcd);
    }
    let mut b = [0u8; 2];
    shm.read_at(98, &mut b).unwrap();
    assert_eq!(u16::from_ne_bytes(b), 0xabcd);
    let owned = shm.to_ndarray::<u16, _>(70, (2, 5)).unwrap();
    assert_eq!(owned, array![[0, 0, 0, 0, 0], [0xabcd; 5]]);
    // Custom strides: every other u16 of the first 8.
    let every_other = shm.to_ndarray::<u16, _>(0, (4,).strides((2,))).unwrap();
    assert_eq!(every_other.len(), 4);
    assert!(matches!(
        shm.to_ndarray::<u64, _>(8, 12),
        Err(Error::Shape(_))
    ));
    assert!(matches!(
        shm.to_ndarray::<u64, _>(3, 1),
        Err(Error::Misaligned { .. })
    ));
}

#[test]
fn shared_memory_view_sees_what_a_child_wrote() {
    let shm = SharedMemory::create_unique(4096).unwrap();
    let child = fork(|| {
        let other = SharedMemory::attach(shm.name()).unwrap();
        // SAFETY: the parent waits for this child before it looks.
        let mut m = unsafe { other.view_mut::<i64, _>(64, (4, 8)).unwrap() };
        for ((i, j), x) in m.indexed_iter_mut() {
            *x = (i * 100 + j) as i64;
        }
        0
    });
    assert_eq!(child.wait(), 0);
    // SAFETY: the only writer has exited.
    let m = unsafe { shm.view::<i64, _>(64, (4, 8)).unwrap() };
    assert_eq!(m[[3, 7]], 307);
    assert_eq!(
        m.sum(),
        (0..4)
            .map(|i| (0..8).map(|j| i * 100 + j).sum::<i64>())
            .sum()
    );
}
