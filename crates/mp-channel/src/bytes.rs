//! `Bytes`: a byte buffer that crosses a channel at memcpy speed.

use std::fmt;
use std::ops::{Deref, DerefMut};

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A `Vec<u8>` that serializes as one block of bytes.
///
/// serde sees a `Vec<u8>` as a sequence: postcard then encodes and decodes
/// it one element at a time, about a nanosecond per byte. `Bytes` goes
/// through `serialize_bytes` instead, which postcard copies in one
/// `memcpy`, so a `Queue<Bytes>` moves large payloads at memory bandwidth.
/// The encoding is the same as a `Vec<u8>`'s (a varint length, then the
/// bytes), so a `Vec<u8>` sent by one side can be received as `Bytes` by
/// the other, and the reverse.
///
/// Use it for bulk bytes in a [`Queue`](crate::Queue) or inside your own
/// messages; a [`PipeEnd`](crate::PipeEnd) also has
/// [`send_bytes`](crate::PipeEnd::send_bytes) /
/// [`recv_bytes`](crate::PipeEnd::recv_bytes) without any encoding.
///
/// ```
/// use mp_channel::{Bytes, Queue};
///
/// let q: Queue<Bytes> = Queue::new()?;
/// q.put(Bytes::from(vec![7u8; 100_000]))?;
/// let b = q.get()?;
/// assert_eq!(b.len(), 100_000);
/// let v: Vec<u8> = b.into_vec();
/// assert!(v.iter().all(|&x| x == 7));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bytes(pub Vec<u8>);

impl Bytes {
    /// An empty buffer.
    ///
    /// ```
    /// assert!(mp_channel::Bytes::new().is_empty());
    /// ```
    pub const fn new() -> Self {
        Bytes(Vec::new())
    }

    /// The vector inside.
    ///
    /// ```
    /// let b = mp_channel::Bytes::from(&b"abc"[..]);
    /// assert_eq!(b.into_vec(), b"abc".to_vec());
    /// ```
    pub fn into_vec(self) -> Vec<u8> {
        self.0
    }
}

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bytes({} bytes)", self.0.len())
    }
}

impl Deref for Bytes {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.0
    }
}

impl DerefMut for Bytes {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }
}

impl AsRef<[u8]> for Bytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl From<Vec<u8>> for Bytes {
    fn from(v: Vec<u8>) -> Self {
        Bytes(v)
    }
}

impl From<&[u8]> for Bytes {
    fn from(v: &[u8]) -> Self {
        Bytes(v.to_vec())
    }
}

impl From<Bytes> for Vec<u8> {
    fn from(b: Bytes) -> Self {
        b.0
    }
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_byte_buf(BytesVisitor)
    }
}

struct BytesVisitor;

impl<'de> Visitor<'de> for BytesVisitor {
    type Value = Bytes;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a byte buffer")
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Bytes, E> {
        Ok(Bytes(v.to_vec()))
    }

    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Bytes, E> {
        Ok(Bytes(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Bytes, E> {
        Ok(Bytes(v.as_bytes().to_vec()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Bytes, A::Error> {
        // Formats that have no byte blocks send a sequence of numbers; cap
        // the reservation so a lying length hint cannot exhaust memory.
        let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 16));
        while let Some(b) = seq.next_element::<u8>()? {
            v.push(b);
        }
        Ok(Bytes(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_encoding_as_a_vec() {
        let v: Vec<u8> = (0..=255).cycle().take(1000).collect();
        let a = postcard::to_allocvec(&v).unwrap();
        let b = postcard::to_allocvec(&Bytes(v.clone())).unwrap();
        assert_eq!(a, b);
        let back: Bytes = postcard::from_bytes(&a).unwrap();
        assert_eq!(back.0, v);
        let back: Vec<u8> = postcard::from_bytes(&b).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn a_lying_length_is_an_error() {
        // length 1000, 3 bytes present
        let frame = [0xE8, 0x07, 1, 2, 3];
        assert!(postcard::from_bytes::<Bytes>(&frame).is_err());
        assert!(postcard::from_bytes::<Bytes>(&[]).is_err());
    }
}
