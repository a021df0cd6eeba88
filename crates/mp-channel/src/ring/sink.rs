//! Where a reader puts a message: the `Sink` trait and the sinks the
//! handles use (which the loom model, without handles, does not).
#![cfg_attr(loom, allow(dead_code))]

use std::marker::PhantomData;
use std::mem::MaybeUninit;

use serde::de::DeserializeOwned;

/// Why a read failed.
#[derive(Debug)]
pub(crate) enum RingReadError {
    Timeout,
    Disconnected,
    TooShort(u64),
    Corrupt(&'static str),
    Decode(postcard::Error),
}

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
    fn start(&mut self, total: u64) -> Result<StreamBuf<'_>, RingReadError>;
    /// The streamed message is complete.
    ///
    /// # Safety
    ///
    /// Every one of the `total` bytes of the buffer `start` returned was
    /// written (with [`StreamBuf::copy_in`]).
    unsafe fn finish(&mut self, total: u64) -> Result<Self::Out, RingReadError>;
    /// A message is being taken for this sink (called under `rlock`,
    /// before the take is counted in `gets`).
    fn claimed(&mut self) {}
    /// The streamed message claimed for this sink was dropped (its writer
    /// died or gave up; counted in `dropped` just before).
    fn dropped(&mut self) {}
}

/// The buffer a streamed message is copied into, fragment by fragment.
/// Write-only, so that it can be memory nobody has written yet: a sink
/// that hands out spare capacity owns those bytes only once every one was
/// copied in (see [`Sink::finish`]).
pub(crate) struct StreamBuf<'a>(&'a mut [MaybeUninit<u8>]);

impl<'a> StreamBuf<'a> {
    /// A buffer over memory that may be uninitialized.
    pub(crate) fn uninit(bytes: &'a mut [MaybeUninit<u8>]) -> Self {
        StreamBuf(bytes)
    }

    /// A buffer over initialized bytes (a caller's slice).
    pub(crate) fn init(bytes: &'a mut [u8]) -> Self {
        // SAFETY: `MaybeUninit<u8>` has the layout of `u8`, and a
        // `StreamBuf` only ever writes initialized bytes (`copy_in`), so
        // the slice stays initialized.
        StreamBuf(unsafe { &mut *(std::ptr::from_mut(bytes) as *mut [MaybeUninit<u8>]) })
    }

    /// Copies `src` to `off..off + src.len()` (in bounds, or it panics);
    /// `nt`: around the caches (see `copy_out`).
    pub(crate) fn copy_in(&mut self, off: usize, src: &[u8], nt: bool) {
        copy_out(&mut self.0[off..off + src.len()], src, nt);
    }
}

/// The largest buffer a thread keeps between messages for encoding a value
/// or assembling a streamed one (one of each). A fresh buffer of a
/// megabyte costs its page faults, and the kernel's zeroing of them, on
/// every message (the allocator hands large blocks back to the system
/// when they are freed): a 1 MiB `Queue` round trip took 5.6 ms with fresh
/// buffers and 1.2 ms with kept ones (see the crate README). A larger
/// buffer is given back after its message, so a thread that once moved a
/// gigabyte keeps none of it.
pub(crate) const KEEP_SCRATCH: usize = 8 << 20;

thread_local! {
    /// This thread's buffer for streamed messages (see [`KEEP_SCRATCH`]).
    static RX_SCRATCH: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Decodes a `T` (straight from the ring when the message is in one record;
/// a streamed message is assembled in the thread's kept buffer).
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

impl<T> Drop for DecodeSink<T> {
    fn drop(&mut self) {
        if self.buf.capacity() != 0 && self.buf.capacity() <= KEEP_SCRATCH {
            let buf = std::mem::take(&mut self.buf);
            // A thread being torn down has no buffer to keep.
            let _ = RX_SCRATCH.try_with(|s| s.set(buf));
        }
    }
}

/// A buffer of `total` bytes for a streamed message: the spare capacity
/// of `buf`, emptied first, never zero-filled (the fragments overwrite
/// every byte; `filled` makes them the vector's). `total` comes from shared
/// memory, where a buggy or hostile writer may have put any length: memory
/// the allocator gives for a large buffer is fresh pages, mapped as the
/// fragments are copied in, so a length that no fragments follow costs
/// address space, not memory; a length the allocator cannot give is an
/// error.
fn spare(buf: &mut Vec<u8>, total: u64) -> Result<StreamBuf<'_>, RingReadError> {
    let n = usize::try_from(total)
        .map_err(|_| RingReadError::Corrupt("message length out of range"))?;
    buf.clear();
    buf.try_reserve_exact(n)
        .map_err(|_| RingReadError::Corrupt("message too large to allocate"))?;
    Ok(StreamBuf::uninit(&mut buf.spare_capacity_mut()[..n]))
}

/// The `total` bytes `spare` handed out are written: they become `buf`'s.
///
/// # Safety
///
/// As [`Sink::finish`]: all `total` bytes of the buffer `spare(buf, total)`
/// returned were written.
unsafe fn filled(buf: &mut Vec<u8>, total: u64) {
    // SAFETY: `spare` reserved `total` bytes of capacity (so `total` fits
    // in usize and the capacity), and the caller wrote all of them.
    unsafe { buf.set_len(total as usize) };
}

impl<T: DeserializeOwned> Sink for DecodeSink<T> {
    type Out = T;
    fn whole(&mut self, bytes: &[u8]) -> Result<T, RingReadError> {
        crate::codec::from_bytes(bytes).map_err(RingReadError::Decode)
    }
    fn start(&mut self, total: u64) -> Result<StreamBuf<'_>, RingReadError> {
        if self.buf.capacity() == 0 {
            self.buf = RX_SCRATCH.try_with(|s| s.take()).unwrap_or_default();
        }
        spare(&mut self.buf, total)
    }
    unsafe fn finish(&mut self, total: u64) -> Result<T, RingReadError> {
        // SAFETY: the caller wrote the buffer `start` gave (`spare`).
        unsafe { filled(&mut self.buf, total) };
        crate::codec::from_bytes(&self.buf).map_err(RingReadError::Decode)
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
    fn start(&mut self, total: u64) -> Result<StreamBuf<'_>, RingReadError> {
        Ok(StreamBuf::init(&mut self.0[..total as usize]))
    }
    unsafe fn finish(&mut self, total: u64) -> Result<usize, RingReadError> {
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
    fn start(&mut self, total: u64) -> Result<StreamBuf<'_>, RingReadError> {
        spare(&mut self.0, total)
    }
    unsafe fn finish(&mut self, total: u64) -> Result<Vec<u8>, RingReadError> {
        // SAFETY: the caller wrote the buffer `start` gave (`spare`).
        unsafe { filled(&mut self.0, total) };
        Ok(std::mem::take(&mut self.0))
    }
}

/// Copies `src` into `dst` (same length); `nt`: with non-temporal stores,
/// which write whole lines to memory without first reading them into the
/// cache (a third less memory traffic for a destination that does not fit
/// in the caches anyway).
pub(super) fn copy_out(dst: &mut [MaybeUninit<u8>], src: &[u8], nt: bool) {
    assert_eq!(dst.len(), src.len());
    #[cfg(all(target_arch = "x86_64", not(loom)))]
    if nt && dst.len() >= 4096 {
        use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_sfence, _mm_stream_si128};
        let n = dst.len();
        // Unaligned head and tail by plain copies, the 16-aligned middle in
        // blocks of 64 bytes.
        let head = (dst.as_ptr() as usize).wrapping_neg() & 15;
        let body = (n - head) & !63;
        copy_plain(&mut dst[..head], &src[..head]);
        // SAFETY: `head + body <= n` for both slices; `d` is 16-aligned;
        // unaligned loads; SSE2 is part of x86-64. The fence orders the
        // non-temporal stores before whatever the caller does next
        // (releasing the record, returning the buffer).
        unsafe {
            let mut d = dst.as_mut_ptr().add(head).cast::<__m128i>();
            let mut s = src.as_ptr().add(head).cast::<__m128i>();
            let end = d.add(body / 16);
            while d < end {
                let a = _mm_loadu_si128(s);
                let b = _mm_loadu_si128(s.add(1));
                let c = _mm_loadu_si128(s.add(2));
                let e = _mm_loadu_si128(s.add(3));
                _mm_stream_si128(d, a);
                _mm_stream_si128(d.add(1), b);
                _mm_stream_si128(d.add(2), c);
                _mm_stream_si128(d.add(3), e);
                d = d.add(4);
                s = s.add(4);
            }
            _mm_sfence();
        }
        copy_plain(&mut dst[head + body..], &src[head + body..]);
        return;
    }
    let _ = nt;
    copy_plain(dst, src);
}

/// `dst.copy_from_slice(src)` into memory that may be uninitialized.
fn copy_plain(dst: &mut [MaybeUninit<u8>], src: &[u8]) {
    assert_eq!(dst.len(), src.len());
    // SAFETY: both are valid for `src.len()` bytes, and `dst` is borrowed
    // mutably, so they do not overlap.
    unsafe {
        std::ptr::copy_nonoverlapping(src.as_ptr(), dst.as_mut_ptr().cast::<u8>(), src.len());
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn receive_streamed(total: usize) {
        let mut sink = DecodeSink::<Vec<u8>>::new();
        let mut buf = sink.start(total as u64).unwrap();
        // A postcard `Vec<u8>` of `total` bytes in all: its varint length,
        // then the bytes.
        let msg = (1..=5)
            .map(|k| vec![7u8; total - k])
            .map(|v| postcard::to_allocvec(&v).unwrap())
            .find(|m| m.len() == total)
            .unwrap();
        buf.copy_in(0, &msg, false);
        // SAFETY: every byte of the buffer was written just above.
        let v = unsafe { sink.finish(total as u64) }.unwrap();
        assert!(v.len() >= total - 5);
    }

    fn kept() -> usize {
        RX_SCRATCH.with(|s| {
            let v = s.take();
            let c = v.capacity();
            s.set(v);
            c
        })
    }

    #[test]
    fn a_streamed_messages_buffer_is_kept_up_to_the_cap_and_reused() {
        RX_SCRATCH.with(|s| s.take());
        receive_streamed(1 << 20);
        let cap = kept();
        assert!(cap >= 1 << 20, "kept {cap} bytes");
        receive_streamed(1 << 19);
        assert_eq!(kept(), cap, "the kept buffer was not reused");
        receive_streamed(KEEP_SCRATCH + 4);
        assert_eq!(kept(), 0, "a buffer over the cap was kept");
    }
}
