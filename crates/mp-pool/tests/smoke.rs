use std::time::Instant;
use mp_pool::Pool;

fn double(x: u64) -> u64 { x * 2 + 1 }

#[test]
fn smoke() {
    let t = Instant::now();
    let pool = Pool::new(2).unwrap();
    eprintln!("start {:?}", t.elapsed());
    let t = Instant::now();
    let v = pool.map(double, 0..10u64).unwrap();
    eprintln!("map10 {:?}", t.elapsed());
    assert_eq!(v, (0..10).map(double).collect::<Vec<_>>());
    let items: Vec<u64> = (0..100_000).collect();
    for _ in 0..3 {
        let t = Instant::now();
        let v = pool.map(double, items.clone()).unwrap();
        eprintln!("map100k {:?}", t.elapsed());
        assert_eq!(v.len(), 100_000);
    }
    for _ in 0..2 {
        let t = Instant::now();
        let v = pool.map_chunked(double, items.clone(), 1).unwrap();
        eprintln!("map100k chunk1 {:?}", t.elapsed());
        assert_eq!(v[99_999], double(99_999));
    }
    let t = Instant::now();
    let n: usize = pool.imap(double, 0..20_000u64).unwrap().map(|r| r.unwrap()).count();
    eprintln!("imap 20k {:?}", t.elapsed());
    assert_eq!(n, 20_000);
    let t = Instant::now();
    pool.close();
    pool.join().unwrap();
    eprintln!("close+join {:?}", t.elapsed());
}
