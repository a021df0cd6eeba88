//! `Array<u8>` as a C `char` array: Python's `Array('c', n)` with its
//! `value` and `raw` attributes.

use crate::array::Array;
use crate::error::Error;

impl Array<u8> {
    /// The bytes up to the first NUL, or all of them if there is none
    /// (Python's `value` of a `c_char` array), read under the lock.
    ///
    /// ```
    /// let name = mp_shm::Array::<u8>::zeroed(16)?;
    /// name.set_value(b"worker-1")?;
    /// assert_eq!(name.value(), b"worker-1");
    /// assert_eq!(name.raw().len(), 16);            // raw: every byte
    /// # Ok::<(), mp_shm::Error>(())
    /// ```
    ///
    /// # Panics
    ///
    /// When an [`ArrayGuard`](crate::ArrayGuard) of this thread is alive.
    pub fn value(&self) -> Vec<u8> {
        let mut v = self.to_vec();
        if let Some(nul) = v.iter().position(|&b| b == 0) {
            v.truncate(nul);
        }
        v
    }

    /// Writes `bytes` and, if there is room, a NUL after them (Python's
    /// `a.value = b"..."`); the bytes after that NUL are left as they were.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when `bytes` is longer than the array
    /// (Python's `ValueError: byte string too long`); nothing is written.
    ///
    /// # Panics
    ///
    /// As [`value`](Array::value).
    pub fn set_value(&self, bytes: &[u8]) -> Result<(), Error> {
        let mut g = self.lock();
        if bytes.len() > g.len() {
            return Err(Error::InvalidArgument("byte string too long"));
        }
        g[..bytes.len()].copy_from_slice(bytes);
        if let Some(b) = g.get_mut(bytes.len()) {
            *b = 0;
        }
        Ok(())
    }

    /// Every byte, NULs included (Python's `raw`), read under the lock.
    ///
    /// ```
    /// let a = mp_shm::Array::from_slice(b"ab\0cd")?;
    /// assert_eq!(a.value(), b"ab");
    /// assert_eq!(a.raw(), b"ab\0cd");
    /// a.set_raw(b"xyz")?;                           // no NUL added
    /// assert_eq!(a.raw(), b"xyzcd");
    /// # Ok::<(), mp_shm::Error>(())
    /// ```
    ///
    /// # Panics
    ///
    /// As [`value`](Array::value).
    pub fn raw(&self) -> Vec<u8> {
        self.to_vec()
    }

    /// Writes `bytes` at the start, without a NUL (Python's `a.raw =
    /// b"..."`); the rest is left as it was.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when `bytes` is longer than the array;
    /// nothing is written.
    ///
    /// # Panics
    ///
    /// As [`value`](Array::value).
    pub fn set_raw(&self, bytes: &[u8]) -> Result<(), Error> {
        let mut g = self.lock();
        if bytes.len() > g.len() {
            return Err(Error::InvalidArgument("byte string too long"));
        }
        g[..bytes.len()].copy_from_slice(bytes);
        Ok(())
    }
}
