//! The serializer: postcard's encoding, with slices of bytes and floats
//! copied as one block.

use postcard::Error;
use serde::ser::{self, Serialize};

use super::Result;

// ---------------------------------------------------------------- output

pub(super) trait Out {
    fn put(&mut self, b: u8) -> Result<()>;
    fn put_all(&mut self, b: &[u8]) -> Result<()>;
}

impl Out for Vec<u8> {
    #[inline]
    fn put(&mut self, b: u8) -> Result<()> {
        self.push(b);
        Ok(())
    }
    #[inline]
    fn put_all(&mut self, b: &[u8]) -> Result<()> {
        self.extend_from_slice(b);
        Ok(())
    }
}

pub(super) struct SliceOut<'b> {
    pub(super) buf: &'b mut [u8],
    pub(super) pos: usize,
}

impl Out for SliceOut<'_> {
    #[inline]
    fn put(&mut self, b: u8) -> Result<()> {
        let slot = self
            .buf
            .get_mut(self.pos)
            .ok_or(Error::SerializeBufferFull)?;
        *slot = b;
        self.pos += 1;
        Ok(())
    }
    #[inline]
    fn put_all(&mut self, b: &[u8]) -> Result<()> {
        let end = self
            .pos
            .checked_add(b.len())
            .filter(|&e| e <= self.buf.len());
        let end = end.ok_or(Error::SerializeBufferFull)?;
        self.buf[self.pos..end].copy_from_slice(b);
        self.pos = end;
        Ok(())
    }
}

// ---------------------------------------------------------- serializer

pub(super) struct Ser<O> {
    pub(super) out: O,
}

impl<O: Out> Ser<O> {
    #[inline]
    fn varint(&mut self, mut v: u128) -> Result<()> {
        let mut buf = [0u8; 19];
        let mut i = 0;
        loop {
            let b = (v & 0x7F) as u8;
            v >>= 7;
            if v == 0 {
                buf[i] = b;
                i += 1;
                break;
            }
            buf[i] = b | 0x80;
            i += 1;
        }
        self.out.put_all(&buf[..i])
    }

    #[inline]
    fn varint64(&mut self, v: u64) -> Result<()> {
        if v < 0x80 {
            return self.out.put(v as u8);
        }
        self.varint(u128::from(v))
    }
}

/// The bytes of a slice iterator over `u8`, `i8`, `f32` or `f64` (as
/// postcard would write its elements), with the element count.
pub(super) fn contiguous<It>(iter: &It) -> Option<(&[u8], usize)> {
    let id = typeid::of::<It>();
    if id == typeid::of::<std::slice::Iter<'static, u8>>() {
        // SAFETY: `It` is `slice::Iter<'_, u8>` (equal type ids, lifetimes
        // erased); the slice lives as long as the borrow of `iter`.
        let s = unsafe { &*std::ptr::from_ref(iter).cast::<std::slice::Iter<'_, u8>>() }.as_slice();
        return Some((s, s.len()));
    }
    if id == typeid::of::<std::slice::Iter<'static, i8>>() {
        // SAFETY: as above, for `i8`; `i8` and `u8` have one layout.
        let s = unsafe { &*std::ptr::from_ref(iter).cast::<std::slice::Iter<'_, i8>>() }.as_slice();
        return Some((bytes_of(s), s.len()));
    }
    if cfg!(target_endian = "little") {
        if id == typeid::of::<std::slice::Iter<'static, f64>>() {
            // SAFETY: as above, for `f64`.
            let s = unsafe { &*std::ptr::from_ref(iter).cast::<std::slice::Iter<'_, f64>>() }
                .as_slice();
            return Some((bytes_of(s), s.len()));
        }
        if id == typeid::of::<std::slice::Iter<'static, f32>>() {
            // SAFETY: as above, for `f32`.
            let s = unsafe { &*std::ptr::from_ref(iter).cast::<std::slice::Iter<'_, f32>>() }
                .as_slice();
            return Some((bytes_of(s), s.len()));
        }
    }
    None
}

/// The bytes of a slice of plain numbers.
fn bytes_of<T: Copy>(s: &[T]) -> &[u8] {
    // SAFETY: called only for `i8`, `f32`, `f64`: no padding, every byte
    // initialized; the length in bytes cannot overflow (it is the slice's
    // size in memory).
    unsafe { std::slice::from_raw_parts(s.as_ptr().cast::<u8>(), std::mem::size_of_val(s)) }
}

impl<O: Out> ser::Serializer for &mut Ser<O> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    fn is_human_readable(&self) -> bool {
        false
    }

    #[inline]
    fn serialize_bool(self, v: bool) -> Result<()> {
        self.out.put(u8::from(v))
    }
    #[inline]
    fn serialize_i8(self, v: i8) -> Result<()> {
        self.out.put(v as u8)
    }
    #[inline]
    fn serialize_i16(self, v: i16) -> Result<()> {
        self.varint64(((v << 1) ^ (v >> 15)) as u16 as u64)
    }
    #[inline]
    fn serialize_i32(self, v: i32) -> Result<()> {
        self.varint64(((v << 1) ^ (v >> 31)) as u32 as u64)
    }
    #[inline]
    fn serialize_i64(self, v: i64) -> Result<()> {
        self.varint64(((v << 1) ^ (v >> 63)) as u64)
    }
    #[inline]
    fn serialize_i128(self, v: i128) -> Result<()> {
        self.varint(((v << 1) ^ (v >> 127)) as u128)
    }
    #[inline]
    fn serialize_u8(self, v: u8) -> Result<()> {
        self.out.put(v)
    }
    #[inline]
    fn serialize_u16(self, v: u16) -> Result<()> {
        self.varint64(u64::from(v))
    }
    #[inline]
    fn serialize_u32(self, v: u32) -> Result<()> {
        self.varint64(u64::from(v))
    }
    #[inline]
    fn serialize_u64(self, v: u64) -> Result<()> {
        self.varint64(v)
    }
    #[inline]
    fn serialize_u128(self, v: u128) -> Result<()> {
        self.varint(v)
    }
    #[inline]
    fn serialize_f32(self, v: f32) -> Result<()> {
        self.out.put_all(&v.to_le_bytes())
    }
    #[inline]
    fn serialize_f64(self, v: f64) -> Result<()> {
        self.out.put_all(&v.to_le_bytes())
    }
    #[inline]
    fn serialize_char(self, v: char) -> Result<()> {
        let mut buf = [0u8; 4];
        self.serialize_str(v.encode_utf8(&mut buf))
    }
    #[inline]
    fn serialize_str(self, v: &str) -> Result<()> {
        self.serialize_bytes(v.as_bytes())
    }
    #[inline]
    fn serialize_bytes(self, v: &[u8]) -> Result<()> {
        self.varint64(v.len() as u64)?;
        self.out.put_all(v)
    }
    #[inline]
    fn serialize_none(self) -> Result<()> {
        self.out.put(0)
    }
    #[inline]
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<()> {
        self.out.put(1)?;
        value.serialize(self)
    }
    #[inline]
    fn serialize_unit(self) -> Result<()> {
        Ok(())
    }
    #[inline]
    fn serialize_unit_struct(self, _name: &'static str) -> Result<()> {
        Ok(())
    }
    #[inline]
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        index: u32,
        _v: &'static str,
    ) -> Result<()> {
        self.varint64(u64::from(index))
    }
    #[inline]
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<()> {
        value.serialize(self)
    }
    #[inline]
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
        value: &T,
    ) -> Result<()> {
        self.varint64(u64::from(index))?;
        value.serialize(self)
    }
    #[inline]
    fn serialize_seq(self, len: Option<usize>) -> Result<Self> {
        self.varint64(len.ok_or(Error::SerializeSeqLengthUnknown)? as u64)?;
        Ok(self)
    }
    #[inline]
    fn serialize_tuple(self, _len: usize) -> Result<Self> {
        Ok(self)
    }
    #[inline]
    fn serialize_tuple_struct(self, _name: &'static str, _len: usize) -> Result<Self> {
        Ok(self)
    }
    #[inline]
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self> {
        self.varint64(u64::from(index))?;
        Ok(self)
    }
    #[inline]
    fn serialize_map(self, len: Option<usize>) -> Result<Self> {
        self.serialize_seq(len)
    }
    #[inline]
    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Self> {
        Ok(self)
    }
    #[inline]
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self> {
        self.varint64(u64::from(index))?;
        Ok(self)
    }

    fn collect_seq<I>(self, iter: I) -> Result<()>
    where
        I: IntoIterator,
        I::Item: Serialize,
    {
        let iter = iter.into_iter();
        if let Some((bytes, count)) = contiguous(&iter) {
            self.varint64(count as u64)?;
            return self.out.put_all(bytes);
        }
        let len = match iter.size_hint() {
            (lo, Some(hi)) if lo == hi => Some(lo),
            _ => None,
        };
        let mut seq = ser::Serializer::serialize_seq(self, len)?;
        for item in iter {
            ser::SerializeSeq::serialize_element(&mut seq, &item)?;
        }
        ser::SerializeSeq::end(seq)
    }
}

macro_rules! compound {
    ($trait:ident, $method:ident $(, $key:ident)?) => {
        impl<O: Out> ser::$trait for &mut Ser<O> {
            type Ok = ();
            type Error = Error;
            #[inline]
            fn $method<T: Serialize + ?Sized>(&mut self, $($key: &'static str,)? value: &T) -> Result<()> {
                $(let _ = $key;)?
                value.serialize(&mut **self)
            }
            #[inline]
            fn end(self) -> Result<()> {
                Ok(())
            }
        }
    };
}

compound!(SerializeSeq, serialize_element);
compound!(SerializeTuple, serialize_element);
compound!(SerializeTupleStruct, serialize_field);
compound!(SerializeTupleVariant, serialize_field);
compound!(SerializeStruct, serialize_field, _key);
compound!(SerializeStructVariant, serialize_field, _key);

impl<O: Out> ser::SerializeMap for &mut Ser<O> {
    type Ok = ();
    type Error = Error;
    #[inline]
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<()> {
        key.serialize(&mut **self)
    }
    #[inline]
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        value.serialize(&mut **self)
    }
    #[inline]
    fn end(self) -> Result<()> {
        Ok(())
    }
}
