//! The codec of channel values: postcard's wire format, byte for byte, with
//! runs of bytes and floats copied as one block.
//!
//! serde sees a `Vec<u8>` (or `&[u8]`, `Vec<f64>`, ...) as a sequence and
//! codes it element by element: through postcard that is a call and a
//! bounds check per byte, about 1 ns a byte each way, where a copy costs a
//! few hundredths of that. This codec writes exactly what postcard writes
//! (so either side may be postcard, and the tests compare the two on random
//! values), but:
//!
//! - when serde asks it to serialize a sequence whose iterator is a slice
//!   iterator over `u8`, `i8`, `f32` or `f64` (what `Vec<T>`, `[T]` and
//!   `Box<[T]>` hand over), it copies the slice's bytes at once (floats are
//!   little-endian in postcard, as in memory on every target this crate
//!   builds for);
//! - when serde asks it for a sequence on behalf of serde's own `Vec<T>`
//!   visitor for those element types, it builds the vector from the block
//!   directly (a visitor of anyone else runs as usual).
//!
//! Types are recognised through `typeid` (type ids without a `'static`
//! bound); the visitor by its type name as well, so that a user's visitor
//! that happens to produce a `Vec<u8>` keeps its own logic. Bad input fails
//! with postcard's errors, before anything is allocated for it.

#![cfg_attr(loom, allow(dead_code))]

use std::mem::ManuallyDrop;

use postcard::Error;
use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};
use serde::ser::{self, Serialize};

type Result<T, E = Error> = std::result::Result<T, E>;

/// Encodes `value` into `buf`; returns the used part.
///
/// # Errors
///
/// `SerializeBufferFull` when it does not fit; the value's own errors.
pub(crate) fn to_slice<'b, T: Serialize + ?Sized>(
    value: &T,
    buf: &'b mut [u8],
) -> Result<&'b mut [u8]> {
    let mut ser = Ser {
        out: SliceOut { buf, pos: 0 },
    };
    value.serialize(&mut ser)?;
    let SliceOut { buf, pos } = ser.out;
    Ok(&mut buf[..pos])
}

/// Appends the encoding of `value` to `out`.
///
/// # Errors
///
/// The value's own errors (a sequence of unknown length, a custom error).
pub(crate) fn to_extend<T: Serialize + ?Sized>(value: &T, out: Vec<u8>) -> Result<Vec<u8>> {
    let mut ser = Ser { out };
    value.serialize(&mut ser)?;
    Ok(ser.out)
}

/// Decodes a value from the start of `bytes` (trailing bytes are ignored,
/// as postcard's `from_bytes` does).
///
/// # Errors
///
/// postcard's decoding errors for input that is not a valid encoding.
pub(crate) fn from_bytes<'a, T: de::Deserialize<'a>>(bytes: &'a [u8]) -> Result<T> {
    T::deserialize(&mut De { input: bytes })
}

// ---------------------------------------------------------------- output

trait Out {
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

struct SliceOut<'b> {
    buf: &'b mut [u8],
    pos: usize,
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

struct Ser<O> {
    out: O,
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
fn contiguous<It>(iter: &It) -> Option<(&[u8], usize)> {
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

// -------------------------------------------------------- deserializer

struct De<'de> {
    input: &'de [u8],
}

impl<'de> De<'de> {
    #[inline]
    fn pop(&mut self) -> Result<u8> {
        let (&b, rest) = self
            .input
            .split_first()
            .ok_or(Error::DeserializeUnexpectedEnd)?;
        self.input = rest;
        Ok(b)
    }

    #[inline]
    fn take(&mut self, n: usize) -> Result<&'de [u8]> {
        if n > self.input.len() {
            return Err(Error::DeserializeUnexpectedEnd);
        }
        let (head, rest) = self.input.split_at(n);
        self.input = rest;
        Ok(head)
    }

    /// A LEB128 varint of a `bits`-bit integer (16, 32, 64 or 128: never a
    /// multiple of 7), accepted as postcard does: at most `ceil(bits / 7)`
    /// bytes, the last of which may not carry bits beyond the type.
    #[inline]
    fn varint(&mut self, bits: u32) -> Result<u128> {
        let max_bytes = bits.div_ceil(7);
        let max_last = (1u8 << (bits % 7)).wrapping_sub(1);
        let mut out = 0u128;
        for i in 0..max_bytes {
            let b = self.pop()?;
            out |= u128::from(b & 0x7F) << (7 * i);
            if b & 0x80 == 0 {
                if i == max_bytes - 1 && b > max_last {
                    return Err(Error::DeserializeBadVarint);
                }
                return Ok(out);
            }
        }
        Err(Error::DeserializeBadVarint)
    }

    #[inline]
    fn u16(&mut self) -> Result<u16> {
        Ok(self.varint(16)? as u16)
    }
    #[inline]
    fn u32(&mut self) -> Result<u32> {
        Ok(self.varint(32)? as u32)
    }
    #[inline]
    fn u64(&mut self) -> Result<u64> {
        match self.input.first() {
            Some(&b) if b < 0x80 => {
                self.input = &self.input[1..];
                Ok(u64::from(b))
            }
            _ => Ok(self.varint(64)? as u64),
        }
    }
    #[inline]
    fn usize(&mut self) -> Result<usize> {
        usize::try_from(self.u64()?).map_err(|_| Error::DeserializeBadVarint)
    }
}

/// Whether `V` is serde's own `Vec<T>` visitor (so that building the vector
/// from a block is exactly what it would do).
fn is_serde_vec_visitor<'de, V: Visitor<'de>, T>() -> bool {
    if typeid::of::<V::Value>() != typeid::of::<Vec<T>>() {
        return false;
    }
    names_serde_vec_visitor(std::any::type_name::<V>(), std::any::type_name::<T>())
}

/// Whether a visitor's type name is serde's `...::VecVisitor<elem>`.
fn names_serde_vec_visitor(name: &str, elem: &str) -> bool {
    name.starts_with("serde")
        && name
            .strip_suffix('>')
            .and_then(|n| n.strip_suffix(elem))
            .is_some_and(|n| n.ends_with("::VecVisitor<"))
}

/// `v` as `V::Value`, which the caller checked is `Vec<T>`.
///
/// # Safety
///
/// `typeid::of::<V::Value>() == typeid::of::<Vec<T>>()`.
unsafe fn cast_vec<'de, V: Visitor<'de>, T>(v: Vec<T>) -> V::Value {
    let v = ManuallyDrop::new(v);
    // SAFETY: the same type (by the caller's contract); `v` is not dropped
    // here, so ownership moves into the copy.
    unsafe { std::mem::transmute_copy::<Vec<T>, V::Value>(&v) }
}

/// A vector of `len` plain numbers from their little-endian bytes.
fn vec_from_le<T: Copy>(bytes: &[u8], len: usize) -> Vec<T> {
    debug_assert_eq!(bytes.len(), len * std::mem::size_of::<T>());
    let mut v = Vec::<T>::with_capacity(len);
    // SAFETY: the vector has room for `len` elements, i.e. `bytes.len()`
    // bytes; T is `f32` or `f64` (every bit pattern valid) in memory order
    // equal to little-endian on this target (checked by the caller); the
    // regions do not overlap.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), v.as_mut_ptr().cast::<u8>(), bytes.len());
        v.set_len(len);
    }
    v
}

impl<'de> de::Deserializer<'de> for &mut De<'de> {
    type Error = Error;

    fn is_human_readable(&self) -> bool {
        false
    }

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value> {
        Err(Error::WontImplement)
    }
    #[inline]
    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.pop()? {
            0 => visitor.visit_bool(false),
            1 => visitor.visit_bool(true),
            _ => Err(Error::DeserializeBadBool),
        }
    }
    #[inline]
    fn deserialize_i8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_i8(self.pop()? as i8)
    }
    #[inline]
    fn deserialize_i16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let n = self.u16()?;
        visitor.visit_i16(((n >> 1) as i16) ^ -((n & 1) as i16))
    }
    #[inline]
    fn deserialize_i32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let n = self.u32()?;
        visitor.visit_i32(((n >> 1) as i32) ^ -((n & 1) as i32))
    }
    #[inline]
    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let n = self.u64()?;
        visitor.visit_i64(((n >> 1) as i64) ^ -((n & 1) as i64))
    }
    #[inline]
    fn deserialize_i128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let n = self.varint(128)?;
        visitor.visit_i128(((n >> 1) as i128) ^ -((n & 1) as i128))
    }
    #[inline]
    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_u8(self.pop()?)
    }
    #[inline]
    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_u16(self.u16()?)
    }
    #[inline]
    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_u32(self.u32()?)
    }
    #[inline]
    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_u64(self.u64()?)
    }
    #[inline]
    fn deserialize_u128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_u128(self.varint(128)?)
    }
    #[inline]
    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let b = self.take(4)?;
        visitor.visit_f32(f32::from_le_bytes(b.try_into().expect("4 bytes")))
    }
    #[inline]
    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let b = self.take(8)?;
        visitor.visit_f64(f64::from_le_bytes(b.try_into().expect("8 bytes")))
    }
    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let n = self.usize()?;
        if n > 4 {
            return Err(Error::DeserializeBadChar);
        }
        let c = std::str::from_utf8(self.take(n)?)
            .map_err(|_| Error::DeserializeBadChar)?
            .chars()
            .next()
            .ok_or(Error::DeserializeBadChar)?;
        visitor.visit_char(c)
    }
    #[inline]
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let n = self.usize()?;
        let s = std::str::from_utf8(self.take(n)?).map_err(|_| Error::DeserializeBadUtf8)?;
        visitor.visit_borrowed_str(s)
    }
    #[inline]
    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_str(visitor)
    }
    #[inline]
    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let n = self.usize()?;
        visitor.visit_borrowed_bytes(self.take(n)?)
    }
    #[inline]
    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_bytes(visitor)
    }
    #[inline]
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.pop()? {
            0 => visitor.visit_none(),
            1 => visitor.visit_some(self),
            _ => Err(Error::DeserializeBadOption),
        }
    }
    #[inline]
    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_unit()
    }
    #[inline]
    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        visitor.visit_unit()
    }
    #[inline]
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        visitor.visit_newtype_struct(self)
    }
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let len = self.usize()?;
        if is_serde_vec_visitor::<V, u8>() {
            let v = self.take(len)?.to_vec();
            // SAFETY: checked by is_serde_vec_visitor.
            return Ok(unsafe { cast_vec::<V, u8>(v) });
        }
        if is_serde_vec_visitor::<V, i8>() {
            let v: Vec<i8> = self.take(len)?.iter().map(|&b| b as i8).collect();
            // SAFETY: checked by is_serde_vec_visitor.
            return Ok(unsafe { cast_vec::<V, i8>(v) });
        }
        if cfg!(target_endian = "little") {
            if is_serde_vec_visitor::<V, f64>() {
                let n = len.checked_mul(8).ok_or(Error::DeserializeUnexpectedEnd)?;
                let v = vec_from_le::<f64>(self.take(n)?, len);
                // SAFETY: checked by is_serde_vec_visitor.
                return Ok(unsafe { cast_vec::<V, f64>(v) });
            }
            if is_serde_vec_visitor::<V, f32>() {
                let n = len.checked_mul(4).ok_or(Error::DeserializeUnexpectedEnd)?;
                let v = vec_from_le::<f32>(self.take(n)?, len);
                // SAFETY: checked by is_serde_vec_visitor.
                return Ok(unsafe { cast_vec::<V, f32>(v) });
            }
        }
        visitor.visit_seq(Access { de: self, len })
    }
    #[inline]
    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value> {
        visitor.visit_seq(Access { de: self, len })
    }
    #[inline]
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value> {
        self.deserialize_tuple(len, visitor)
    }
    #[inline]
    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let len = self.usize()?;
        visitor.visit_map(Access { de: self, len })
    }
    #[inline]
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        self.deserialize_tuple(fields.len(), visitor)
    }
    #[inline]
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        visitor.visit_enum(self)
    }
    fn deserialize_identifier<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value> {
        Err(Error::WontImplement)
    }
    fn deserialize_ignored_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value> {
        Err(Error::WontImplement)
    }
}

/// Elements of a sequence, tuple or map: `len` of them.
struct Access<'a, 'de> {
    de: &'a mut De<'de>,
    len: usize,
}

impl<'de> de::SeqAccess<'de> for Access<'_, 'de> {
    type Error = Error;
    #[inline]
    fn next_element_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<Option<S::Value>> {
        if self.len == 0 {
            return Ok(None);
        }
        self.len -= 1;
        seed.deserialize(&mut *self.de).map(Some)
    }
    #[inline]
    fn size_hint(&self) -> Option<usize> {
        // No preallocation beyond what the input could hold.
        (self.len <= self.de.input.len()).then_some(self.len)
    }
}

impl<'de> de::MapAccess<'de> for Access<'_, 'de> {
    type Error = Error;
    #[inline]
    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>> {
        if self.len == 0 {
            return Ok(None);
        }
        self.len -= 1;
        seed.deserialize(&mut *self.de).map(Some)
    }
    #[inline]
    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value> {
        seed.deserialize(&mut *self.de)
    }
    #[inline]
    fn size_hint(&self) -> Option<usize> {
        (self.len <= self.de.input.len()).then_some(self.len)
    }
}

impl<'de> de::EnumAccess<'de> for &mut De<'de> {
    type Error = Error;
    type Variant = Self;
    #[inline]
    fn variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<(S::Value, Self)> {
        let index = self.u32()?;
        let v = seed.deserialize(index.into_deserializer())?;
        Ok((v, self))
    }
}

impl<'de> de::VariantAccess<'de> for &mut De<'de> {
    type Error = Error;
    #[inline]
    fn unit_variant(self) -> Result<()> {
        Ok(())
    }
    #[inline]
    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value> {
        seed.deserialize(self)
    }
    #[inline]
    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value> {
        de::Deserializer::deserialize_tuple(self, len, visitor)
    }
    #[inline]
    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        de::Deserializer::deserialize_tuple(self, fields.len(), visitor)
    }
}

#[cfg(test)]
mod tests;
