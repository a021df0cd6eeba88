//! The deserializer: postcard's decoding, with serde's own `Vec` of bytes
//! or floats built from one block.

use std::mem::ManuallyDrop;

use postcard::Error;
use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};

use super::Result;

// -------------------------------------------------------- deserializer

pub(super) struct De<'de> {
    pub(super) input: &'de [u8],
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
pub(super) fn names_serde_vec_visitor(name: &str, elem: &str) -> bool {
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
