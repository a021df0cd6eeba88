//! `ShareableList`: CPython's `multiprocessing.shared_memory.ShareableList`,
//! block for block, so that Rust and Python processes share one list.
//!
//! # The block layout (CPython's, unversioned)
//!
//! A named shared-memory block of `8 + 8(N+1) + D + 8N + N` bytes, all
//! integers in native byte order (little-endian on every Linux target this
//! crate builds for), where N is the number of items and D the size of the
//! data area:
//!
//! | offset | size | content |
//! |---|---|---|
//! | 0 | 8 | N, a signed 64-bit integer |
//! | 8 | 8(N+1) | `offsets[0..=N]`: where each item's slot starts in the data area (`offsets[0] = 0`, `offsets[N] = D`) |
//! | 8(N+2) | D | the data area: item `i` in `offsets[i]..offsets[i+1]` |
//! | 8(N+2) + D | 8N | each item's `struct` format, 8 bytes padded with NUL |
//! | 8(N+2) + D + 8N | N | each item's back-transform code (a signed byte) |
//!
//! | Python type | format | slot | code | stored |
//! |---|---|---|---|---|
//! | `int` | `q` | 8 | 0 | signed 64-bit |
//! | `float` | `d` | 8 | 0 | IEEE double |
//! | `bool` | `xxxxxxx?` | 8 | 0 | byte 7 is 0 or 1, bytes 0-6 are 0 |
//! | `str` | `{n}s` | n | 1 | UTF-8, padded with NUL |
//! | `bytes` | `{n}s` | n | 2 | the bytes, padded with NUL |
//! | `None` | `xxxxxx?x` | 8 | 3 | 8 zero bytes |
//!
//! A `str` or `bytes` slot is `8 * (len / 8 + 1)` bytes (at least one NUL
//! after the value), fixed when the list is created: setting a longer value
//! later fails, and any item may be replaced by an item of another type
//! that fits in its slot (an `int` in a `str` slot keeps the slot's size).
//! As in Python, trailing NUL bytes of a `str` or `bytes` value are lost
//! (the reader strips them).
//!
//! Where CPython 3.11 sizes a `str` slot by its number of characters (and
//! silently truncates a non-ASCII string that does not fit), this module
//! sizes it by its UTF-8 length; the layout stays the same, so either side
//! reads the other's list.
//!
//! # Concurrency
//!
//! As in Python there is no lock: reads and writes are word-wise atomic
//! copies (no data race), but an item written while another process reads
//! it may be read torn. Guard writers with a [`Lock`](mp_sync::Lock) when
//! several processes write.

use std::fmt;

use crate::error::Error;
use crate::shared_memory::SharedMemory;

const ALIGNMENT: usize = 8;
/// The longest format that fits in its 8-byte cell: a slot of at most
/// 9,999,999 bytes (`"9999999s"`).
const MAX_SLOT: usize = 9_999_999;

/// One item of a [`ShareableList`]: the Python types it can hold (a serde
/// value too).
///
/// ```
/// use mp_shm::Item;
/// assert_eq!(Item::from(3), Item::Int(3));
/// assert_eq!(Item::from("a"), Item::Str("a".into()));
/// assert_eq!(Item::from(()), Item::None);
/// ```
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Item {
    /// `int` (64-bit, as CPython's `q` format).
    Int(i64),
    /// `float`.
    Float(f64),
    /// `bool`.
    Bool(bool),
    /// `str`.
    Str(String),
    /// `bytes`.
    Bytes(Vec<u8>),
    /// `None`.
    None,
}

impl fmt::Display for Item {
    /// As Python's `repr`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Item::Int(i) => write!(f, "{i}"),
            Item::Float(x) if x.is_finite() && x.fract() == 0.0 && x.abs() < 1e16 => {
                write!(f, "{x:.1}")
            }
            Item::Float(x) => write!(f, "{x}"),
            Item::Bool(b) => f.write_str(if *b { "True" } else { "False" }),
            Item::Str(s) => write!(f, "'{}'", s.replace('\\', "\\\\").replace('\'', "\\'")),
            Item::Bytes(b) => {
                f.write_str("b'")?;
                for &c in b {
                    match c {
                        b'\\' => f.write_str("\\\\")?,
                        b'\'' => f.write_str("\\'")?,
                        0x20..=0x7e => write!(f, "{}", c as char)?,
                        _ => write!(f, "\\x{c:02x}")?,
                    }
                }
                f.write_str("'")
            }
            Item::None => f.write_str("None"),
        }
    }
}

macro_rules! from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Item {
            fn from(v: $t) -> Item {
                Item::Int(i64::from(v))
            }
        }
    )*};
}
from_int!(i8, i16, i32, i64, u8, u16, u32);

impl From<f64> for Item {
    fn from(v: f64) -> Item {
        Item::Float(v)
    }
}

impl From<f32> for Item {
    fn from(v: f32) -> Item {
        Item::Float(f64::from(v))
    }
}

impl From<bool> for Item {
    fn from(v: bool) -> Item {
        Item::Bool(v)
    }
}

impl From<&str> for Item {
    fn from(v: &str) -> Item {
        Item::Str(v.to_string())
    }
}

impl From<String> for Item {
    fn from(v: String) -> Item {
        Item::Str(v)
    }
}

impl From<&[u8]> for Item {
    fn from(v: &[u8]) -> Item {
        Item::Bytes(v.to_vec())
    }
}

impl From<Vec<u8>> for Item {
    fn from(v: Vec<u8>) -> Item {
        Item::Bytes(v)
    }
}

impl From<()> for Item {
    fn from((): ()) -> Item {
        Item::None
    }
}

impl<T: Into<Item>> From<Option<T>> for Item {
    fn from(v: Option<T>) -> Item {
        v.map_or(Item::None, Into::into)
    }
}

impl Item {
    /// The format of this item in a slot of `slot` bytes.
    fn format(&self, slot: usize) -> String {
        match self {
            Item::Int(_) => "q".into(),
            Item::Float(_) => "d".into(),
            Item::Bool(_) => "xxxxxxx?".into(),
            Item::None => "xxxxxx?x".into(),
            Item::Str(_) | Item::Bytes(_) => format!("{slot}s"),
        }
    }

    fn code(&self) -> i8 {
        match self {
            Item::Int(_) | Item::Float(_) | Item::Bool(_) => 0,
            Item::Str(_) => 1,
            Item::Bytes(_) => 2,
            Item::None => 3,
        }
    }

    /// The bytes to store: 8 for the fixed-size types, the encoded value
    /// for `str` and `bytes`.
    fn encoded(&self) -> Vec<u8> {
        match self {
            Item::Int(i) => i.to_ne_bytes().to_vec(),
            Item::Float(x) => x.to_ne_bytes().to_vec(),
            Item::Bool(b) => {
                let mut w = vec![0; 8];
                w[7] = u8::from(*b);
                w
            }
            Item::None => vec![0; 8],
            Item::Str(s) => s.as_bytes().to_vec(),
            Item::Bytes(b) => b.clone(),
        }
    }

    /// The slot CPython gives this item when the list is created.
    fn initial_slot(&self) -> usize {
        match self {
            Item::Str(s) => ALIGNMENT * (s.len() / ALIGNMENT + 1),
            Item::Bytes(b) => ALIGNMENT * (b.len() / ALIGNMENT + 1),
            _ => ALIGNMENT,
        }
    }
}

/// A fixed-length list of `int`, `float`, `bool`, `str`, `bytes` and
/// `None` items in named shared memory, in CPython's layout: Python's
/// `multiprocessing.shared_memory.ShareableList`. A Python process attaches
/// with `ShareableList(name=...)` to a list made here, and
/// [`attach`](ShareableList::attach) opens one a Python process made.
///
/// ```
/// use mp_shm::{Item, ShareableList};
///
/// let sl = ShareableList::new(&[Item::from("howdy"), 42.into(), (-3.5).into(), true.into(), ().into()])?;
/// // Python: ShareableList(name=sl.name())
/// let other = ShareableList::attach(sl.name())?;
/// other.set(1, 43)?;
/// other.set(0, "hi")?;                       // fits in the 8-byte slot
/// assert_eq!(sl.get(1)?, Item::Int(43));
/// assert_eq!(sl.get(0)?, Item::Str("hi".into()));
/// assert!(sl.set(0, "much longer than eight").is_err());
/// assert_eq!(sl.format()?, "8sqdxxxxxxx?xxxxxx?x");
/// assert_eq!(sl.to_string(), format!("ShareableList(['hi', 43, -3.5, True, None], name='{}')", sl.name()));
/// # Ok::<(), mp_shm::Error>(())
/// ```
///
/// The list owns its block like [`SharedMemory`]: the list that created it
/// (and its clones) unlinks the name when the last of them goes, unless
/// [`into_persistent`](ShareableList::into_persistent) was called; an
/// attached list never unlinks. See the module source for the layout.
#[derive(Clone)]
pub struct ShareableList {
    shm: SharedMemory,
    len: usize,
    /// `offsets[0..=len]`, read once (they never change).
    offsets: Vec<usize>,
}

impl ShareableList {
    /// Creates a list of `items` in a block with a fresh name (Python's
    /// `ShareableList(sequence)`).
    ///
    /// # Errors
    ///
    /// [`Error::ItemTooLarge`] for a `str` or `bytes` item of more than
    /// 9,999,998 bytes (its format would not fit in 8 characters, as in
    /// Python), or as [`SharedMemory::create`].
    pub fn new(items: &[Item]) -> Result<ShareableList, Error> {
        ShareableList::create_in(items, SharedMemory::create_unique)
    }

    /// Creates a list of `items` in a block named `name` (Python's
    /// `ShareableList(sequence, name=name)`).
    ///
    /// # Errors
    ///
    /// As [`new`](ShareableList::new); [`Error::AlreadyExists`] when the
    /// name is taken.
    pub fn create(name: &str, items: &[Item]) -> Result<ShareableList, Error> {
        ShareableList::create_in(items, |size| SharedMemory::create(name, size))
    }

    fn create_in(
        items: &[Item],
        make: impl FnOnce(usize) -> Result<SharedMemory, Error>,
    ) -> Result<ShareableList, Error> {
        let n = items.len();
        let mut offsets = Vec::with_capacity(n + 1);
        offsets.push(0usize);
        for (index, item) in items.iter().enumerate() {
            let slot = item.initial_slot();
            if slot > MAX_SLOT {
                return Err(Error::ItemTooLarge {
                    index,
                    len: item.encoded().len(),
                    capacity: MAX_SLOT - 1,
                });
            }
            offsets.push(offsets[index] + slot);
        }
        let data = offsets[n];
        let size = 8 + 8 * (n + 1) + data + 8 * n + n;
        let shm = make(size)?;
        let mut header = Vec::with_capacity(8 * (n + 2));
        header.extend_from_slice(&(n as i64).to_ne_bytes());
        for &o in &offsets {
            header.extend_from_slice(&(o as i64).to_ne_bytes());
        }
        shm.write_at(0, &header)?;
        let list = ShareableList {
            shm,
            len: n,
            offsets,
        };
        for (i, item) in items.iter().enumerate() {
            list.store(i, item, &item.format(list.slot(i)))?;
        }
        Ok(list)
    }

    /// Opens the list in the block named `name`, made by this crate or by
    /// CPython (Python's `ShareableList(name=name)`).
    ///
    /// # Errors
    ///
    /// As [`SharedMemory::attach`]; [`Error::CorruptList`] when the block
    /// does not hold a list (its length or offsets do not fit in it).
    pub fn attach(name: &str) -> Result<ShareableList, Error> {
        ShareableList::from_shared_memory(SharedMemory::attach(name)?)
    }

    /// The list held in `shm` (attached or created elsewhere).
    ///
    /// # Errors
    ///
    /// [`Error::CorruptList`] when the block does not hold a list.
    pub fn from_shared_memory(shm: SharedMemory) -> Result<ShareableList, Error> {
        let corrupt = |what: String| Error::CorruptList {
            name: shm.name().to_string(),
            what,
        };
        let size = shm.size();
        let mut w = [0u8; 8];
        shm.read_at(0, &mut w)
            .map_err(|_| corrupt(format!("{size} bytes is too small")))?;
        let n = i64::from_ne_bytes(w);
        // 8 + 8(n+1) + 8n + n <= size.
        let n = usize::try_from(n)
            .ok()
            .filter(|&n| n <= size / 17)
            .ok_or_else(|| corrupt(format!("length {n} does not fit in {size} bytes")))?;
        let mut raw = vec![0u8; 8 * (n + 1)];
        shm.read_at(8, &mut raw)
            .map_err(|_| corrupt(format!("length {n} does not fit in {size} bytes")))?;
        let offsets: Vec<usize> = raw
            .chunks_exact(8)
            .map(|c| usize::try_from(i64::from_ne_bytes(c.try_into().expect("8 bytes"))))
            .collect::<Result<_, _>>()
            .map_err(|_| corrupt("a negative offset".into()))?;
        if offsets[0] != 0 || offsets.windows(2).any(|p| p[1] < p[0]) {
            return Err(corrupt("offsets out of order".into()));
        }
        if 8 * (n + 2) + offsets[n] + 9 * n > size {
            return Err(corrupt(format!(
                "the data area of {} bytes does not fit in {size} bytes",
                offsets[n]
            )));
        }
        Ok(ShareableList {
            shm,
            len: n,
            offsets,
        })
    }

    fn data_start(&self) -> usize {
        (self.len + 2) * 8
    }

    fn formats_start(&self) -> usize {
        self.data_start() + self.offsets[self.len]
    }

    fn codes_start(&self) -> usize {
        self.formats_start() + self.len * 8
    }

    fn slot(&self, i: usize) -> usize {
        self.offsets[i + 1] - self.offsets[i]
    }

    fn check_index(&self, index: usize) -> Result<(), Error> {
        if index >= self.len {
            return Err(Error::IndexOutOfRange {
                index,
                len: self.len,
            });
        }
        Ok(())
    }

    fn corrupt(&self, what: String) -> Error {
        Error::CorruptList {
            name: self.shm.name().to_string(),
            what,
        }
    }

    /// Writes format, code and value of item `i`.
    /// Nothing is written when the format does not fit its 8-byte cell
    /// (a `str` or `bytes` value in a slot of 10,000,000 bytes or more, which
    /// only a block made elsewhere can have): that is
    /// [`Error::ItemTooLarge`].
    fn store(&self, i: usize, item: &Item, format: &str) -> Result<(), Error> {
        if format.len() > 8 {
            return Err(Error::ItemTooLarge {
                index: i,
                len: item.encoded().len(),
                capacity: MAX_SLOT - 1,
            });
        }
        let mut cell = [0u8; 8];
        cell[..format.len()].copy_from_slice(format.as_bytes());
        self.shm.write_at(self.formats_start() + 8 * i, &cell)?;
        self.shm
            .write_at(self.codes_start() + i, &[item.code() as u8])?;
        let start = self.data_start() + self.offsets[i];
        let mut value = item.encoded();
        if matches!(item, Item::Str(_) | Item::Bytes(_)) {
            // `{n}s` pads with NUL to n bytes.
            value.resize(self.slot(i), 0);
        }
        self.shm.write_at(start, &value)
    }

    /// The format stored for item `i`.
    fn format_at(&self, i: usize) -> Result<String, Error> {
        let mut cell = [0u8; 8];
        self.shm.read_at(self.formats_start() + 8 * i, &mut cell)?;
        let end = cell.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
        String::from_utf8(cell[..end].to_vec())
            .map_err(|_| self.corrupt(format!("item {i} has a format that is not text")))
    }

    /// The number of items (Python's `len(sl)`).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the list has no items.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The name of the block (Python's `sl.shm.name`).
    pub fn name(&self) -> &str {
        self.shm.name()
    }

    /// The block holding the list.
    pub fn shm(&self) -> &SharedMemory {
        &self.shm
    }

    /// Item `index` (Python's `sl[index]`).
    ///
    /// # Errors
    ///
    /// [`Error::IndexOutOfRange`]; [`Error::CorruptList`] when the item's
    /// format, code or text is not one CPython writes.
    pub fn get(&self, index: usize) -> Result<Item, Error> {
        self.check_index(index)?;
        let format = self.format_at(index)?;
        let mut code = [0u8; 1];
        self.shm.read_at(self.codes_start() + index, &mut code)?;
        let start = self.data_start() + self.offsets[index];
        let read = |n: usize| -> Result<Vec<u8>, Error> {
            let mut v = vec![0u8; n];
            self.shm.read_at(start, &mut v)?;
            Ok(v)
        };
        let word = || -> Result<[u8; 8], Error> { Ok(read(8)?.try_into().expect("8 bytes")) };
        let bad = || {
            self.corrupt(format!(
                "item {index} has format {format:?} with code {}",
                code[0] as i8
            ))
        };
        Ok(match (code[0] as i8, format.as_str()) {
            (3, _) => Item::None,
            (0, "q") => Item::Int(i64::from_ne_bytes(word()?)),
            (0, "d") => Item::Float(f64::from_ne_bytes(word()?)),
            (0, "xxxxxxx?") => Item::Bool(word()?[7] != 0),
            (1 | 2, f) => {
                let n: usize = f
                    .strip_suffix('s')
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(bad)?;
                if start + n > self.formats_start() {
                    return Err(bad());
                }
                let mut v = read(n)?;
                let end = v.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
                v.truncate(end);
                if code[0] == 1 {
                    Item::Str(String::from_utf8(v).map_err(|_| {
                        self.corrupt(format!("item {index} is a str that is not UTF-8"))
                    })?)
                } else {
                    Item::Bytes(v)
                }
            }
            _ => return Err(bad()),
        })
    }

    /// Replaces item `index` (Python's `sl[index] = value`). A `str` or
    /// `bytes` value must fit in the item's slot (fixed when the list was
    /// made: 8 bytes for a number, `bool` or `None`).
    ///
    /// # Errors
    ///
    /// [`Error::IndexOutOfRange`]; [`Error::ItemTooLarge`] when the value
    /// does not fit, or when a `str` or `bytes` value goes into a slot of
    /// 10,000,000 bytes or more whose format is not already `{n}s` (a block
    /// made elsewhere: the format would not fit in 8 characters); the list is
    /// unchanged.
    pub fn set(&self, index: usize, value: impl Into<Item>) -> Result<(), Error> {
        let item = value.into();
        self.check_index(index)?;
        let slot = self.slot(index);
        let format = match &item {
            Item::Str(_) | Item::Bytes(_) => {
                let len = item.encoded().len();
                if len > slot {
                    return Err(Error::ItemTooLarge {
                        index,
                        len,
                        capacity: slot,
                    });
                }
                let current = self.format_at(index)?;
                if current.ends_with('s') {
                    current
                } else {
                    item.format(slot)
                }
            }
            _ => item.format(slot),
        };
        self.store(index, &item, &format)
    }

    /// Every item, in order (Python's `list(sl)`).
    ///
    /// # Errors
    ///
    /// As [`get`](ShareableList::get).
    pub fn to_vec(&self) -> Result<Vec<Item>, Error> {
        (0..self.len).map(|i| self.get(i)).collect()
    }

    /// The formats of every item, concatenated (Python's `sl.format`).
    ///
    /// # Errors
    ///
    /// [`Error::CorruptList`] when a format is not text.
    pub fn format(&self) -> Result<String, Error> {
        (0..self.len).map(|i| self.format_at(i)).collect()
    }

    /// How many items equal `value` (Python's `sl.count(value)`, but
    /// without Python's `True == 1 == 1.0`: items of different variants
    /// are different).
    ///
    /// # Errors
    ///
    /// As [`get`](ShareableList::get).
    pub fn count(&self, value: &Item) -> Result<usize, Error> {
        Ok(self.to_vec()?.iter().filter(|i| *i == value).count())
    }

    /// The first index of `value` (Python's `sl.index(value)`; `None` where
    /// Python raises `ValueError`; variants compared as in
    /// [`count`](ShareableList::count)).
    ///
    /// # Errors
    ///
    /// As [`get`](ShareableList::get).
    pub fn index(&self, value: &Item) -> Result<Option<usize>, Error> {
        for i in 0..self.len {
            if self.get(i)? == *value {
                return Ok(Some(i));
            }
        }
        Ok(None)
    }

    /// Keeps the block's name when the creating lists go (see
    /// [`SharedMemory::into_persistent`]).
    pub fn into_persistent(self) -> ShareableList {
        ShareableList {
            shm: self.shm.into_persistent(),
            len: self.len,
            offsets: self.offsets,
        }
    }

    /// Removes the block's name (Python's `sl.shm.unlink()`).
    ///
    /// # Errors
    ///
    /// As [`SharedMemory::unlink`].
    pub fn unlink(&self) -> Result<(), Error> {
        self.shm.unlink()
    }
}

impl fmt::Debug for ShareableList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShareableList")
            .field("name", &self.name())
            .field("len", &self.len)
            .finish()
    }
}

/// As Python's `repr`: `ShareableList([...], name='...')`.
impl fmt::Display for ShareableList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ShareableList([")?;
        for i in 0..self.len {
            if i > 0 {
                f.write_str(", ")?;
            }
            match self.get(i) {
                Ok(item) => write!(f, "{item}")?,
                Err(_) => f.write_str("<corrupt>")?,
            }
        }
        write!(f, "], name='{}')", self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(tag: &str) -> String {
        format!("mp-sl-{tag}-{}", std::process::id())
    }

    #[test]
    fn layout_matches_cpython_byte_for_byte() {
        // Python 3.11: ShareableList(['howdy', b'HoWdY', -273.154, 100,
        // None, True, 42]).shm.buf.tobytes().hex(): 191 bytes.
        let sl = ShareableList::create(
            &name("layout"),
            &[
                "howdy".into(),
                b"HoWdY".as_slice().into(),
                (-273.154).into(),
                100.into(),
                Item::None,
                true.into(),
                42.into(),
            ],
        )
        .unwrap();
        let expected = "0700000000000000\
            0000000000000000 0800000000000000 1000000000000000 1800000000000000 \
            2000000000000000 2800000000000000 3000000000000000 3800000000000000\
            686f776479000000 486f576459000000 5839b4c8761271c0 6400000000000000 \
            0000000000000000 0000000000000001 2a00000000000000 \
            3873000000000000 3873000000000000 6400000000000000 7100000000000000 \
            7878787878783f78 787878787878783f 7100000000000000 \
            01020000030000";
        let expected: Vec<u8> = expected
            .split_whitespace()
            .collect::<String>()
            .as_bytes()
            .chunks(2)
            .map(|h| u8::from_str_radix(std::str::from_utf8(h).unwrap(), 16).unwrap())
            .collect();
        let mut got = vec![0u8; sl.shm().size()];
        sl.shm().read_at(0, &mut got).unwrap();
        assert_eq!(got.len(), expected.len());
        assert_eq!(got, expected);
    }

    #[test]
    fn set_keeps_slots_and_rejects_what_does_not_fit() {
        let sl = ShareableList::new(&["abc".into(), 1.into(), Item::None]).unwrap();
        sl.set(0, 5).unwrap();
        assert_eq!(sl.get(0).unwrap(), Item::Int(5));
        sl.set(0, "123456789").unwrap_err();
        sl.set(0, "12345678").unwrap(); // a full slot, as Python allows
        assert_eq!(sl.get(0).unwrap(), Item::Str("12345678".into()));
        assert_eq!(sl.format().unwrap(), "8sqxxxxxx?x");
        sl.set(1, b"xy".as_slice()).unwrap();
        assert_eq!(sl.get(1).unwrap(), Item::Bytes(b"xy".to_vec()));
        sl.set(2, false).unwrap();
        assert_eq!(sl.get(2).unwrap(), Item::Bool(false));
        assert!(matches!(
            sl.set(3, 1),
            Err(Error::IndexOutOfRange { index: 3, len: 3 })
        ));
        let long = "x".repeat(9);
        assert!(matches!(
            sl.set(2, long.as_str()),
            Err(Error::ItemTooLarge {
                index: 2,
                len: 9,
                capacity: 8
            })
        ));
        assert_eq!(sl.get(2).unwrap(), Item::Bool(false), "unchanged");
        assert_eq!(sl.count(&Item::Int(5)).unwrap(), 0);
        assert_eq!(sl.index(&Item::Bool(false)).unwrap(), Some(2));
        let empty = ShareableList::new(&[]).unwrap();
        assert!(empty.is_empty());
        assert_eq!(empty.shm().size(), 16);
        assert_eq!(ShareableList::attach(empty.name()).unwrap().len(), 0);
    }

    #[test]
    fn a_str_into_a_slot_too_big_for_its_format_is_an_error() {
        // One item, an int in a slot of 10,000,000 bytes: a block made
        // elsewhere, since `{slot}s` would take 9 characters.
        let slot = 10_000_000usize;
        let size = 8 + 8 * 2 + slot + 8 + 1;
        let shm = SharedMemory::create(&name("bigslot"), size).unwrap();
        let mut header = Vec::new();
        header.extend_from_slice(&1i64.to_ne_bytes());
        header.extend_from_slice(&0i64.to_ne_bytes());
        header.extend_from_slice(&(slot as i64).to_ne_bytes());
        shm.write_at(0, &header).unwrap();
        shm.write_at(24, &7i64.to_ne_bytes()).unwrap();
        shm.write_at(24 + slot, b"q\0\0\0\0\0\0\0").unwrap();
        shm.write_at(24 + slot + 8, &[0]).unwrap();
        let sl = ShareableList::attach(shm.name()).unwrap();
        assert_eq!(sl.get(0).unwrap(), Item::Int(7));
        assert!(matches!(
            sl.set(0, "x"),
            Err(Error::ItemTooLarge {
                index: 0,
                len: 1,
                ..
            })
        ));
        assert_eq!(sl.get(0).unwrap(), Item::Int(7), "unchanged");
        assert_eq!(sl.format().unwrap(), "q");
        sl.set(0, 8).unwrap();
        assert_eq!(sl.get(0).unwrap(), Item::Int(8));
    }

    #[test]
    fn a_block_that_is_not_a_list_is_an_error() {
        let shm = SharedMemory::create(&name("corrupt"), 64).unwrap();
        shm.write_at(0, &1000i64.to_ne_bytes()).unwrap();
        assert!(matches!(
            ShareableList::attach(shm.name()),
            Err(Error::CorruptList { .. })
        ));
        shm.write_at(0, &(-1i64).to_ne_bytes()).unwrap();
        assert!(matches!(
            ShareableList::attach(shm.name()),
            Err(Error::CorruptList { .. })
        ));
        // One item whose offsets run past the block.
        shm.write_at(0, &1i64.to_ne_bytes()).unwrap();
        shm.write_at(16, &4096i64.to_ne_bytes()).unwrap();
        assert!(matches!(
            ShareableList::attach(shm.name()),
            Err(Error::CorruptList { .. })
        ));
        // A valid header with a bad code.
        shm.write_at(16, &8i64.to_ne_bytes()).unwrap();
        let sl = ShareableList::attach(shm.name()).unwrap();
        shm.write_at(24 + 8, b"q\0\0\0\0\0\0\0").unwrap();
        shm.write_at(24 + 16, &[9]).unwrap();
        assert!(matches!(sl.get(0), Err(Error::CorruptList { .. })));
    }
}
