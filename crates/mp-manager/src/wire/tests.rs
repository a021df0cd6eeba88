//! The frame reader and the request decoder under hostile input.

use std::io::Cursor;

use proptest::prelude::*;

use super::*;

fn frame(body: &[u8]) -> Vec<u8> {
    let mut v = (body.len() as u32).to_le_bytes().to_vec();
    v.extend_from_slice(body);
    v
}

#[test]
fn frames_round_trip() {
    let mut out = Vec::new();
    let mut buf = Vec::new();
    write_frame(&mut out, &mut buf, b"hello").unwrap();
    let mut got = Vec::new();
    assert!(read_frame(&mut Cursor::new(&out), 16, &mut got).unwrap());
    assert_eq!(got, b"hello");
    // Clean end of stream before a frame.
    assert!(!read_frame(&mut Cursor::new(&[][..]), 16, &mut got).unwrap());
}

#[test]
fn oversized_and_truncated_frames_are_errors() {
    let mut got = Vec::new();
    let big = (u32::MAX).to_le_bytes();
    let e = read_frame(&mut Cursor::new(&big[..]), MAX_FRAME, &mut got).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    assert!(
        got.capacity() < 1 << 20,
        "no allocation for a claimed length"
    );
    let mut cut = frame(b"0123456789");
    cut.truncate(8);
    let e = read_frame(&mut Cursor::new(&cut), 64, &mut got).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    let e = read_frame(&mut Cursor::new(&[1u8, 0][..]), 64, &mut got).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
}

#[test]
fn tags_are_role_bound_and_verified() {
    let key = b"key";
    let n = nonce().unwrap();
    let t = tag(key, CLIENT_ROLE, &n);
    assert!(verify(key, CLIENT_ROLE, &n, &t));
    assert!(
        !verify(key, SERVER_ROLE, &n, &t),
        "a reflected tag is refused"
    );
    assert!(!verify(b"other", CLIENT_ROLE, &n, &t));
    assert!(!verify(key, CLIENT_ROLE, &n, &t[..31]));
    let mut bad = t;
    bad[5] ^= 1;
    assert!(!verify(key, CLIENT_ROLE, &n, &bad));
}

#[test]
fn trailing_bytes_and_unknown_variants_are_refused() {
    let mut b = postcard::to_allocvec(&Request::Ping).unwrap();
    assert_eq!(decode_request(&b), Ok(Request::Ping));
    b.push(0);
    assert!(matches!(
        decode_request(&b),
        Err(RemoteError::BadRequest(_))
    ));
    assert!(matches!(
        decode_request(&[200]),
        Err(RemoteError::BadRequest(_))
    ));
    assert!(matches!(
        decode_request(&[]),
        Err(RemoteError::BadRequest(_))
    ));
    // A byte string that claims more bytes than the frame holds.
    let liar = [2u8, 0xff, 0xff, 0xff, 0xff, 0x0f];
    assert!(decode_request(&liar).is_err());
}

fn sample_requests() -> Vec<Request> {
    vec![
        Request::Ping,
        Request::Create(Init::Dict(vec![(vec![1], vec![2, 3])])),
        Request::Create(Init::Custom {
            type_name: "T".into(),
            init: vec![9; 5],
        }),
        Request::Call {
            id: 7,
            op: Op::DictSet(vec![1, 2], vec![3]),
        },
        Request::Call {
            id: 1,
            op: Op::ListExtend(vec![vec![1], vec![2, 2]]),
        },
        Request::Call {
            id: 3,
            op: Op::Acquire((1, 2), Some(5)),
        },
        Request::Call {
            id: 3,
            op: Op::NsSet("x".into(), vec![0; 40]),
        },
        Request::Publish {
            name: "n".into(),
            id: 4,
        },
        Request::Lookup("n".into()),
    ]
}

#[test]
fn requests_round_trip() {
    for r in sample_requests() {
        let b = postcard::to_allocvec(&r).unwrap();
        assert_eq!(decode_request(&b), Ok(r));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Random bytes never panic the decoder.
    #[test]
    fn decoder_survives_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode_request(&bytes);
    }

    /// Valid requests with bytes flipped, cut or appended never panic the
    /// decoder, and whatever it accepts survives a round trip (postcard
    /// accepts overlong varints, so the bytes themselves may differ).
    #[test]
    fn decoder_survives_mutations(
        which in 0usize..9,
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
        cut in any::<usize>(),
        extra in proptest::collection::vec(any::<u8>(), 0..8),
    ) {
        let mut b = postcard::to_allocvec(&sample_requests()[which]).unwrap();
        for (at, x) in flips {
            let n = b.len();
            b[at % n] ^= x;
        }
        b.truncate(cut % (b.len() + 1));
        b.extend(extra);
        if let Ok(r) = decode_request(&b) {
            let again = postcard::to_allocvec(&r).unwrap();
            prop_assert_eq!(decode_request(&again), Ok(r));
        }
    }

    /// The frame reader never allocates more than arrives, and never
    /// panics, whatever the length prefix says.
    #[test]
    fn frame_reader_survives_random_input(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let mut got = Vec::new();
        if let Ok(true) = read_frame(&mut Cursor::new(&bytes), MAX_FRAME, &mut got) {
            prop_assert_eq!(&bytes[4..4 + got.len()], &got[..]);
        }
        prop_assert!(got.capacity() <= (1 << 16).max(bytes.len()));
    }
}
