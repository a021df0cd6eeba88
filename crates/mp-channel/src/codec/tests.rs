//! The codec writes what postcard writes and reads what postcard reads; the
//! block paths are taken where they should be and nowhere else; bad input
//! is an error, never a panic.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;

use proptest::prelude::*;
use serde::de::{DeserializeOwned, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use super::decode::names_serde_vec_visitor;
use super::encode::contiguous;
use super::*;

fn same<T: Serialize + DeserializeOwned + PartialEq + Debug>(v: &T) {
    let ours = to_extend(v, Vec::new()).unwrap();
    let theirs = postcard::to_allocvec(v).unwrap();
    assert_eq!(ours, theirs, "encoding of {v:?}");
    let mut buf = vec![0u8; ours.len()];
    assert_eq!(to_slice(v, &mut buf).unwrap(), &ours[..]);
    if !ours.is_empty() {
        let mut short = vec![0u8; ours.len() - 1];
        assert!(matches!(
            to_slice(v, &mut short),
            Err(Error::SerializeBufferFull)
        ));
    }
    assert_eq!(&from_bytes::<T>(&theirs).unwrap(), v);
    assert_eq!(&postcard::from_bytes::<T>(&ours).unwrap(), v);
    // Every truncation is an error (or, for a prefix that is itself a
    // complete value, a value), never a panic.
    for cut in 0..ours.len() {
        let _ = from_bytes::<T>(&ours[..cut]);
    }
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum Shape {
    Empty,
    Circle(f64),
    Pair(u16, i64),
    Image {
        w: u32,
        pixels: Vec<u8>,
        tag: Option<String>,
    },
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Record {
    id: u64,
    name: String,
    blob: Vec<u8>,
    samples: Vec<f64>,
    small: Vec<f32>,
    signed: Vec<i8>,
    words: Vec<u32>,
    nested: Vec<Vec<u8>>,
    shapes: Vec<Shape>,
    map: BTreeMap<String, Vec<u8>>,
    unit: (),
    array: [u8; 4],
    boxed: Box<[u8]>,
    c: char,
    t: (bool, i128, u128),
}

fn record(n: usize) -> Record {
    Record {
        id: u64::MAX - 3,
        name: "héllo".into(),
        blob: (0..n).map(|i| i as u8).collect(),
        samples: (0..n).map(|i| i as f64 * 0.5 - 3.25).collect(),
        small: vec![f32::NAN.copysign(1.0).min(1.0), -0.0, 1e-30],
        signed: vec![-128, -1, 0, 127],
        words: vec![0, 127, 128, 300, u32::MAX],
        nested: vec![vec![], vec![1], vec![2; 200]],
        shapes: vec![
            Shape::Empty,
            Shape::Circle(1.5),
            Shape::Pair(65535, i64::MIN),
            Shape::Image {
                w: 7,
                pixels: vec![9; 130],
                tag: Some("x".into()),
            },
        ],
        map: [("a".to_string(), vec![1, 2]), ("b".to_string(), vec![])]
            .into_iter()
            .collect(),
        unit: (),
        array: [1, 2, 3, 4],
        boxed: vec![5u8; 3].into_boxed_slice(),
        c: 'ß',
        t: (true, i128::MIN, u128::MAX),
    }
}

#[test]
fn values_encode_as_postcard_encodes_them() {
    for n in [0, 1, 127, 128, 1000, 70_000] {
        same(&record(n));
    }
    same(&(0u8..=255).collect::<Vec<u8>>());
    same(&vec![f64::INFINITY, -1.0, 3.5]);
    same(&String::from("plain"));
    same(&Some(vec![1u8, 2]));
    same(&None::<Vec<u8>>);
    let h: HashMap<u16, Vec<u8>> = [(1, vec![1]), (300, vec![2, 3])].into_iter().collect();
    let bytes = to_extend(&h, Vec::new()).unwrap();
    assert_eq!(from_bytes::<HashMap<u16, Vec<u8>>>(&bytes).unwrap(), h);
}

proptest! {
    #[test]
    fn random_values_match_postcard(
        blob in proptest::collection::vec(any::<u8>(), 0..600),
        floats in proptest::collection::vec(any::<f64>().prop_filter("not NaN", |f| !f.is_nan()), 0..80),
        ints in proptest::collection::vec(any::<i64>(), 0..40),
        text in ".{0,40}",
        big in any::<u128>(),
        small in any::<i16>(),
    ) {
        same(&(blob.clone(), floats, ints, text, big, small));
        same(&Shape::Image { w: blob.len() as u32, pixels: blob, tag: None });
    }

    #[test]
    fn garbage_is_an_error_or_a_value_never_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = from_bytes::<Record>(&bytes);
        let _ = from_bytes::<Vec<f64>>(&bytes);
        let _ = from_bytes::<Vec<u8>>(&bytes);
        let _ = from_bytes::<(String, char, bool, Option<u8>)>(&bytes);
        let _ = from_bytes::<Shape>(&bytes);
        // Where postcard accepts, we accept the same value.
        if let Ok(v) = postcard::from_bytes::<(u16, u32, u64, i32, Vec<u8>)>(&bytes) {
            prop_assert_eq!(from_bytes::<(u16, u32, u64, i32, Vec<u8>)>(&bytes).unwrap(), v);
        } else {
            prop_assert!(from_bytes::<(u16, u32, u64, i32, Vec<u8>)>(&bytes).is_err());
        }
    }
}

#[test]
fn a_huge_length_fails_before_allocating() {
    // 2^62 elements announced, three bytes present.
    let mut msg = to_extend(&(1u64 << 62), Vec::new()).unwrap();
    msg.extend([1, 2, 3]);
    assert!(matches!(
        from_bytes::<Vec<u8>>(&msg),
        Err(Error::DeserializeUnexpectedEnd)
    ));
    assert!(matches!(
        from_bytes::<Vec<f64>>(&msg),
        Err(Error::DeserializeUnexpectedEnd)
    ));
    assert!(from_bytes::<Vec<u32>>(&msg).is_err());
}

/// A user's visitor that produces a `Vec<u8>` of its own making (reversed):
/// the block path must not replace it.
#[derive(Debug, PartialEq)]
struct Reversed(Vec<u8>);

impl<'de> Deserialize<'de> for Reversed {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
                let mut v = Vec::new();
                while let Some(b) = seq.next_element::<u8>()? {
                    v.insert(0, b);
                }
                Ok(v)
            }
        }
        d.deserialize_seq(V).map(Reversed)
    }
}

#[test]
fn a_foreign_visitor_keeps_its_own_logic() {
    let msg = to_extend(&vec![1u8, 2, 3], Vec::new()).unwrap();
    assert_eq!(
        from_bytes::<Reversed>(&msg).unwrap(),
        Reversed(vec![3, 2, 1])
    );
}

/// Records the type name of the visitor serde's `Vec<T>` hands to
/// `deserialize_seq`.
struct Probe(Option<&'static str>);

impl<'de> Deserializer<'de> for &mut Probe {
    type Error = Error;
    fn deserialize_any<V: Visitor<'de>>(self, _v: V) -> Result<V::Value> {
        Err(Error::WontImplement)
    }
    fn deserialize_seq<V: Visitor<'de>>(self, _v: V) -> Result<V::Value> {
        self.0 = Some(std::any::type_name::<V>());
        Err(Error::WontImplement)
    }
    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

fn visitor_name<T: DeserializeOwned>() -> &'static str {
    let mut p = Probe(None);
    let _ = T::deserialize(&mut p);
    p.0.expect("Vec deserializes through deserialize_seq")
}

#[test]
fn serde_vec_visitors_are_recognised() {
    // If serde renames its visitor this fails, rather than the block path
    // silently falling back to element-by-element decoding.
    for (name, elem) in [
        (visitor_name::<Vec<u8>>(), "u8"),
        (visitor_name::<Vec<i8>>(), "i8"),
        (visitor_name::<Vec<f32>>(), "f32"),
        (visitor_name::<Vec<f64>>(), "f64"),
    ] {
        assert!(names_serde_vec_visitor(name, elem), "{name}");
    }
    assert!(!names_serde_vec_visitor(visitor_name::<Vec<u8>>(), "f64"));
    assert!(!names_serde_vec_visitor("my_crate::VecVisitor<u8>", "u8"));
}

#[test]
fn byte_and_float_slices_take_the_block_path() {
    let v = vec![1u8, 2, 3];
    assert_eq!(contiguous(&v.iter()), Some((&[1u8, 2, 3][..], 3)));
    let f = [1.5f64];
    assert_eq!(
        contiguous(&f.iter()).map(|(b, n)| (b.len(), n)),
        Some((8, 1))
    );
    let w = [1u32];
    assert!(contiguous(&w.iter()).is_none());
    assert!(contiguous(&v.clone().into_iter()).is_none());
}
