//! Where a reader puts a message: the `Sink` trait and the sinks the
//! handles use (which the loom model, without handles, does not).
#![cfg_attr(loom, allow(dead_code))]

use std::marker::PhantomData;

use serde::de::DeserializeOwned;

use super::read::RingReadError;

/// Where a reader puts a message.
pub(crate) trait Sink {
    type Out;
    /// Largest message accepted; a larger one stays in the ring.
    fn limit(&self) -> u64 {
        u64::MAX
    }
    /// A message in one record, straight from the ring.
    fn whole(&mut self, bytes: &[u8]) -> Result<Self::Out, RingReadError>;
    /// A streamed message of `total` bytes: the buffer to fill.
    fn start(&mut self, total: u64) -> Result<&mut [u8], RingReadError>;
    /// The streamed message is complete.
    fn finish(&mut self, total: u64) -> Result<Self::Out, RingReadError>;
    /// A message is being taken for this sink (called under `rlock`,
    /// before the take is counted in `gets`).
    fn claimed(&mut self) {}
    /// The streamed message claimed for this sink was dropped (its writer
    /// died or gave up; counted in `dropped` just before).
    fn dropped(&mut self) {}
}

/// Decodes a `T` (straight from the ring when the message is in one record).
pub(crate) struct DecodeSink<T> {
    buf: Vec<u8>,
    _t: PhantomData<fn() -> T>,
}

impl<T> DecodeSink<T> {
    pub(crate) fn new() -> Self {
        DecodeSink {
            buf: Vec::new(),
            _t: PhantomData,
        }
    }
}

/// A buffer of `total` bytes for a streamed message. `total` comes from
/// shared memory, where a buggy or hostile writer may have put any length:
/// a new buffer is zeroed memory from the allocator (fresh pages for a
/// large one, mapped as the fragments are copied in), so a length that no
/// fragments follow costs address space, not memory; one the allocator
/// cannot give is an error.
fn alloc(buf: &mut Vec<u8>, total: u64) -> Result<&mut [u8], RingReadError> {
    let n = usize::try_from(total)
        .map_err(|_| RingReadError::Corrupt("message length out of range"))?;
    if n > buf.capacity() {
        *buf = zeroed(n)?;
    } else {
        buf.clear();
        buf.resize(n, 0);
    }
    Ok(&mut buf[..])
}

/// `n > 0` zero bytes.
fn zeroed(n: usize) -> Result<Vec<u8>, RingReadError> {
    let too_large = || RingReadError::Corrupt("message too large to allocate");
    let layout = std::alloc::Layout::array::<u8>(n).map_err(|_| too_large())?;
    // SAFETY: `layout` has a non-zero size (`n > 0`).
    let p = unsafe { std::alloc::alloc_zeroed(layout) };
    if p.is_null() {
        return Err(too_large());
    }
    // SAFETY: `p` comes from the global allocator with the layout of `n`
    // bytes, all initialized (zeroed); the vector owns it from here.
    Ok(unsafe { Vec::from_raw_parts(p, n, n) })
}

impl<T: DeserializeOwned> Sink for DecodeSink<T> {
    type Out = T;
    fn whole(&mut self, bytes: &[u8]) -> Result<T, RingReadError> {
        postcard::from_bytes(bytes).map_err(RingReadError::Decode)
    }
    fn start(&mut self, total: u64) -> Result<&mut [u8], RingReadError> {
        alloc(&mut self.buf, total)
    }
    fn finish(&mut self, _total: u64) -> Result<T, RingReadError> {
        postcard::from_bytes(&self.buf).map_err(RingReadError::Decode)
    }
}

/// Copies the message into a caller's buffer (too short: the message stays).
pub(crate) struct SliceSink<'a>(pub(crate) &'a mut [u8]);

impl Sink for SliceSink<'_> {
    type Out = usize;
    fn limit(&self) -> u64 {
        self.0.len() as u64
    }
    fn whole(&mut self, bytes: &[u8]) -> Result<usize, RingReadError> {
        self.0[..bytes.len()].copy_from_slice(bytes);
        Ok(bytes.len())
    }
    fn start(&mut self, total: u64) -> Result<&mut [u8], RingReadError> {
        Ok(&mut self.0[..total as usize])
    }
    fn finish(&mut self, total: u64) -> Result<usize, RingReadError> {
        Ok(total as usize)
    }
}

/// Copies the message into a new vector.
pub(crate) struct VecSink(pub(crate) Vec<u8>);

impl Sink for VecSink {
    type Out = Vec<u8>;
    fn whole(&mut self, bytes: &[u8]) -> Result<Vec<u8>, RingReadError> {
        Ok(bytes.to_vec())
    }
    fn start(&mut self, total: u64) -> Result<&mut [u8], RingReadError> {
        alloc(&mut self.0, total)
    }
    fn finish(&mut self, _total: u64) -> Result<Vec<u8>, RingReadError> {
        Ok(std::mem::take(&mut self.0))
    }
}
