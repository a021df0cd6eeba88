//! Dict, list, Namespace and Value proxies.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::client::{dec, enc_stored, unexpected};
use crate::error::{Error, RemoteError};
use crate::proxy::{Locked, lock_object, proxy_type};
use crate::wire::{Kind, Op, Reply};

/// What a stored key or value must be.
pub trait Storable: Serialize + DeserializeOwned + 'static {}
impl<T: Serialize + DeserializeOwned + 'static> Storable for T {}

proxy_type!(
    /// A dict in the manager's server: Python's `DictProxy`.
    ///
    /// Keys are compared by their encoded (postcard) bytes, so two keys are
    /// the same key exactly when they encode the same; for integers,
    /// strings, tuples and derived types of those that is ordinary
    /// equality (not for floats: `0.0` and `-0.0` are two keys). Iteration
    /// order is insertion order, as in Python. Every method is one round
    /// trip and atomic on its own; [`lock`](DictProxy::lock) makes a series
    /// of calls atomic.
    ///
    /// ```
    /// let m = mp_manager::Manager::new()?;
    /// let d = m.dict::<i32, i32>()?;
    /// d.insert(1, 10)?;
    /// d.insert(2, 20)?;
    /// assert_eq!(d.get(&1)?, Some(10));
    /// assert_eq!(d.len()?, 2);
    /// assert!(d.contains_key(&2)?);
    /// assert_eq!(d.remove(&1)?, Some(10));
    /// assert_eq!(d.items()?, vec![(2, 20)]);
    /// # Ok::<(), mp_manager::Error>(())
    /// ```
    DictProxy[K, V], Kind::Dict
);

impl<K: Storable, V: Storable> DictProxy<K, V> {
    /// The value for `key`, if any.
    ///
    /// # Errors
    ///
    /// Connection errors ([`Error::ServerGone`], ...) and decode errors;
    /// the same for every method below.
    pub fn get(&self, key: &K) -> Result<Option<V>, Error> {
        self.h.op(Op::DictGet(enc_stored(key)?))?.maybe()
    }

    /// The value for `key`, or [`RemoteError::MissingKey`] (Python's
    /// `d[key]`).
    ///
    /// # Errors
    ///
    /// `Remote(MissingKey)` when there is no such key.
    pub fn item(&self, key: &K) -> Result<V, Error> {
        self.get(key)?.ok_or(Error::Remote(RemoteError::MissingKey))
    }

    /// Sets `key` to `value` and returns the previous value.
    ///
    /// # Errors
    ///
    /// As [`get`](DictProxy::get).
    pub fn insert(&self, key: K, value: V) -> Result<Option<V>, Error> {
        self.h
            .op(Op::DictSet(enc_stored(&key)?, enc_stored(&value)?))?
            .maybe()
    }

    /// Removes `key` and returns its value, if it was there.
    ///
    /// # Errors
    ///
    /// As [`get`](DictProxy::get).
    pub fn remove(&self, key: &K) -> Result<Option<V>, Error> {
        self.h.op(Op::DictRemove(enc_stored(key)?))?.maybe()
    }

    /// Removes `key` and returns its value, or [`RemoteError::MissingKey`]
    /// (Python's `d.pop(key)`).
    ///
    /// # Errors
    ///
    /// `Remote(MissingKey)` when there is no such key.
    pub fn pop(&self, key: &K) -> Result<V, Error> {
        self.remove(key)?
            .ok_or(Error::Remote(RemoteError::MissingKey))
    }

    /// Whether `key` is present.
    ///
    /// # Errors
    ///
    /// As [`get`](DictProxy::get).
    pub fn contains_key(&self, key: &K) -> Result<bool, Error> {
        self.h.op(Op::DictContains(enc_stored(key)?))?.bool()
    }

    /// The number of items.
    ///
    /// # Errors
    ///
    /// As [`get`](DictProxy::get).
    pub fn len(&self) -> Result<usize, Error> {
        Ok(self.h.op(Op::Len)?.count()? as usize)
    }

    /// Whether the dict is empty.
    ///
    /// # Errors
    ///
    /// As [`get`](DictProxy::get).
    pub fn is_empty(&self) -> Result<bool, Error> {
        Ok(self.len()? == 0)
    }

    /// A snapshot of the items, in insertion order.
    ///
    /// # Errors
    ///
    /// As [`get`](DictProxy::get).
    pub fn items(&self) -> Result<Vec<(K, V)>, Error> {
        self.h.op(Op::DictItems)?.pairs()
    }

    /// A snapshot of the keys, in insertion order.
    ///
    /// # Errors
    ///
    /// As [`get`](DictProxy::get).
    pub fn keys(&self) -> Result<Vec<K>, Error> {
        self.h.op(Op::DictKeys)?.seq()
    }

    /// A snapshot of the values, in insertion order.
    ///
    /// # Errors
    ///
    /// As [`get`](DictProxy::get).
    pub fn values(&self) -> Result<Vec<V>, Error> {
        self.h.op(Op::DictValues)?.seq()
    }

    /// A snapshot as a `BTreeMap` (Python's `d.copy()`), handy for printing:
    /// `{0: 0, 1: 2}`.
    ///
    /// # Errors
    ///
    /// As [`get`](DictProxy::get).
    pub fn copy(&self) -> Result<BTreeMap<K, V>, Error>
    where
        K: Ord,
    {
        Ok(self.items()?.into_iter().collect())
    }

    /// Inserts every item, in one round trip.
    ///
    /// # Errors
    ///
    /// As [`get`](DictProxy::get).
    pub fn update(&self, items: impl IntoIterator<Item = (K, V)>) -> Result<(), Error> {
        let items = items
            .into_iter()
            .map(|(k, v)| Ok((enc_stored(&k)?, enc_stored(&v)?)))
            .collect::<Result<Vec<_>, Error>>()?;
        self.h.op(Op::DictUpdate(items))?.ok()
    }

    /// The value for `key`, inserting `default` first if it is missing
    /// (Python's `setdefault`).
    ///
    /// # Errors
    ///
    /// As [`get`](DictProxy::get).
    pub fn setdefault(&self, key: K, default: V) -> Result<V, Error> {
        self.h
            .op(Op::DictSetDefault(enc_stored(&key)?, enc_stored(&default)?))?
            .value()
    }

    /// Removes and returns the most recently inserted item.
    ///
    /// # Errors
    ///
    /// `Remote(MissingKey)` when the dict is empty.
    pub fn popitem(&self) -> Result<(K, V), Error> {
        match self.h.op(Op::DictPopItem)? {
            Reply::Pair(k, v) => Ok((dec(&k)?, dec(&v)?)),
            r => Err(unexpected(r)),
        }
    }

    /// Removes every item.
    ///
    /// # Errors
    ///
    /// As [`get`](DictProxy::get).
    pub fn clear(&self) -> Result<(), Error> {
        self.h.op(Op::Clear)?.ok()
    }

    /// Holds the dict's server-side lock until the guard is dropped; see
    /// [`Locked`].
    ///
    /// # Errors
    ///
    /// As [`get`](DictProxy::get).
    pub fn lock(&self) -> Result<Locked<Self>, Error> {
        lock_object(self, None)
    }

    /// As [`lock`](DictProxy::lock), giving up after `timeout`.
    ///
    /// # Errors
    ///
    /// `Remote(Timeout)` when the timeout passed.
    pub fn lock_timeout(&self, timeout: Duration) -> Result<Locked<Self>, Error> {
        lock_object(self, Some(timeout))
    }
}

proxy_type!(
    /// A list in the manager's server: Python's `ListProxy`.
    ///
    /// Indexes are `i64` and may be negative (counted from the end), as in
    /// Python. `remove`, `index`, `count` and `contains` compare encoded
    /// bytes (see [`DictProxy`] for what that means). Every method is one
    /// round trip and atomic on its own; [`lock`](ListProxy::lock) makes a
    /// series of calls atomic.
    ///
    /// ```
    /// let m = mp_manager::Manager::new()?;
    /// let l = m.list_from(vec![3, 1, 2])?;
    /// l.append(0)?;
    /// assert_eq!(l.get(-1)?, 0);
    /// l.sort()?;
    /// assert_eq!(l.to_vec()?, vec![0, 1, 2, 3]);
    /// assert_eq!(l.pop()?, 3);
    /// assert_eq!(l.index(&2)?, 2);
    /// # Ok::<(), mp_manager::Error>(())
    /// ```
    ListProxy[T], Kind::List
);

impl<T: Storable> ListProxy<T> {
    /// The item at `index`.
    ///
    /// # Errors
    ///
    /// `Remote(IndexOutOfRange)`, connection and decode errors.
    pub fn get(&self, index: i64) -> Result<T, Error> {
        self.h.op(Op::ListGet(index))?.value()
    }

    /// Replaces the item at `index`.
    ///
    /// # Errors
    ///
    /// `Remote(IndexOutOfRange)`, connection and encode errors.
    pub fn set(&self, index: i64, value: T) -> Result<(), Error> {
        self.h.op(Op::ListSet(index, enc_stored(&value)?))?.ok()
    }

    /// Appends an item and returns the new length.
    ///
    /// # Errors
    ///
    /// Connection and encode errors; the same for the methods below unless
    /// they say more.
    pub fn append(&self, value: T) -> Result<usize, Error> {
        Ok(self.h.op(Op::ListAppend(enc_stored(&value)?))?.count()? as usize)
    }

    /// Appends every item, in one round trip, and returns the new length.
    ///
    /// # Errors
    ///
    /// As [`append`](ListProxy::append).
    pub fn extend(&self, values: impl IntoIterator<Item = T>) -> Result<usize, Error> {
        let v = values
            .into_iter()
            .map(|x| enc_stored(&x))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(self.h.op(Op::ListExtend(v))?.count()? as usize)
    }

    /// Inserts before `index` (clamped to the list, as Python does).
    ///
    /// # Errors
    ///
    /// As [`append`](ListProxy::append).
    pub fn insert(&self, index: i64, value: T) -> Result<(), Error> {
        self.h.op(Op::ListInsert(index, enc_stored(&value)?))?.ok()
    }

    /// Removes and returns the last item.
    ///
    /// # Errors
    ///
    /// `Remote(IndexOutOfRange)` for an empty list.
    pub fn pop(&self) -> Result<T, Error> {
        self.h.op(Op::ListPop(None))?.value()
    }

    /// Removes and returns the item at `index`.
    ///
    /// # Errors
    ///
    /// `Remote(IndexOutOfRange)`.
    pub fn pop_at(&self, index: i64) -> Result<T, Error> {
        self.h.op(Op::ListPop(Some(index)))?.value()
    }

    /// Deletes the item at `index` (Python's `del l[i]`).
    ///
    /// # Errors
    ///
    /// `Remote(IndexOutOfRange)`.
    pub fn delete(&self, index: i64) -> Result<(), Error> {
        self.h.op(Op::ListDelete(index))?.ok()
    }

    /// Removes the first item equal to `value`.
    ///
    /// # Errors
    ///
    /// `Remote(NotInList)` when there is none.
    pub fn remove(&self, value: &T) -> Result<(), Error> {
        self.h.op(Op::ListRemove(enc_stored(value)?))?.ok()
    }

    /// The position of the first item equal to `value`.
    ///
    /// # Errors
    ///
    /// `Remote(NotInList)` when there is none.
    pub fn index(&self, value: &T) -> Result<usize, Error> {
        Ok(self.h.op(Op::ListIndex(enc_stored(value)?))?.count()? as usize)
    }

    /// How many items equal `value`.
    ///
    /// # Errors
    ///
    /// As [`append`](ListProxy::append).
    pub fn count(&self, value: &T) -> Result<usize, Error> {
        Ok(self.h.op(Op::ListCount(enc_stored(value)?))?.count()? as usize)
    }

    /// Whether an item equals `value`.
    ///
    /// # Errors
    ///
    /// As [`append`](ListProxy::append).
    pub fn contains(&self, value: &T) -> Result<bool, Error> {
        self.h.op(Op::ListContains(enc_stored(value)?))?.bool()
    }

    /// The number of items.
    ///
    /// # Errors
    ///
    /// As [`append`](ListProxy::append).
    pub fn len(&self) -> Result<usize, Error> {
        Ok(self.h.op(Op::Len)?.count()? as usize)
    }

    /// Whether the list is empty.
    ///
    /// # Errors
    ///
    /// As [`append`](ListProxy::append).
    pub fn is_empty(&self) -> Result<bool, Error> {
        Ok(self.len()? == 0)
    }

    /// A snapshot of the whole list (Python's `l[:]`); iterate over it.
    ///
    /// # Errors
    ///
    /// As [`append`](ListProxy::append).
    pub fn to_vec(&self) -> Result<Vec<T>, Error> {
        self.h.op(Op::ListSnapshot)?.seq()
    }

    /// A snapshot of `l[start..end]` with Python's slice rules (negative
    /// positions count from the end, out-of-range ones are clamped).
    ///
    /// # Errors
    ///
    /// As [`append`](ListProxy::append).
    pub fn slice(&self, start: i64, end: i64) -> Result<Vec<T>, Error> {
        self.h.op(Op::ListSlice(start, end))?.seq()
    }

    /// Replaces the whole contents.
    ///
    /// # Errors
    ///
    /// As [`append`](ListProxy::append).
    pub fn replace(&self, values: impl IntoIterator<Item = T>) -> Result<(), Error> {
        let v = values
            .into_iter()
            .map(|x| enc_stored(&x))
            .collect::<Result<Vec<_>, _>>()?;
        self.h.op(Op::ListReplace(v))?.ok()
    }

    /// Removes every item.
    ///
    /// # Errors
    ///
    /// As [`append`](ListProxy::append).
    pub fn clear(&self) -> Result<(), Error> {
        self.h.op(Op::Clear)?.ok()
    }

    /// Reverses the list in place.
    ///
    /// # Errors
    ///
    /// As [`append`](ListProxy::append).
    pub fn reverse(&self) -> Result<(), Error> {
        self.h.op(Op::ListReverse)?.ok()
    }

    /// Sorts the list by `T`'s order. The server only has bytes, so the
    /// sort runs here: under the list's lock, the items are fetched, sorted
    /// and stored back (three round trips, atomic). It takes the list's
    /// lock, so do not call it through a [`Locked`] guard of the same list
    /// (the lock is not recursive).
    ///
    /// # Errors
    ///
    /// As [`append`](ListProxy::append).
    pub fn sort(&self) -> Result<(), Error>
    where
        T: Ord,
    {
        self.sort_by(|a, b| a.cmp(b))
    }

    /// Sorts with a comparator, as [`sort`](ListProxy::sort) does.
    ///
    /// # Errors
    ///
    /// As [`append`](ListProxy::append).
    pub fn sort_by(&self, mut cmp: impl FnMut(&T, &T) -> std::cmp::Ordering) -> Result<(), Error> {
        let g = self.lock()?;
        let mut v = g.to_vec()?;
        v.sort_by(&mut cmp);
        g.replace(v)
    }

    /// Holds the list's server-side lock until the guard is dropped; see
    /// [`Locked`].
    ///
    /// # Errors
    ///
    /// As [`append`](ListProxy::append).
    pub fn lock(&self) -> Result<Locked<Self>, Error> {
        lock_object(self, None)
    }

    /// As [`lock`](ListProxy::lock), giving up after `timeout`.
    ///
    /// # Errors
    ///
    /// `Remote(Timeout)` when the timeout passed.
    pub fn lock_timeout(&self, timeout: Duration) -> Result<Locked<Self>, Error> {
        lock_object(self, Some(timeout))
    }
}

proxy_type!(
    /// Named attributes of any serde type: Python's `Namespace` proxy.
    ///
    /// Getting an attribute returns a copy: changing that copy (say,
    /// pushing to a `Vec` read from the namespace) changes nothing in the
    /// server until it is `set` again — the same caveat as Python's
    /// mutable namespace values. Use a [`ListProxy`] stored in the
    /// namespace for a list that several processes change.
    ///
    /// ```
    /// use mp_manager::{Error, RemoteError};
    ///
    /// let m = mp_manager::Manager::new()?;
    /// let ns = m.namespace()?;
    /// let missing = ns.get::<String>("value").unwrap_err();
    /// assert!(matches!(missing, Error::Remote(RemoteError::NoSuchAttribute(_))));
    /// assert_eq!(missing.to_string(), "'Namespace' object has no attribute 'value'");
    /// ns.set("value", &"This is the value")?;
    /// assert_eq!(ns.get::<String>("value")?, "This is the value");
    /// # Ok::<(), mp_manager::Error>(())
    /// ```
    NamespaceProxy[], Kind::Namespace
);

impl NamespaceProxy {
    /// Sets attribute `name`.
    ///
    /// # Errors
    ///
    /// Connection and encode errors.
    pub fn set<T: Serialize + ?Sized>(&self, name: &str, value: &T) -> Result<(), Error> {
        self.h
            .op(Op::NsSet(name.to_string(), enc_stored(value)?))?
            .ok()
    }

    /// Attribute `name`, decoded as a `T`.
    ///
    /// # Errors
    ///
    /// `Remote(NoSuchAttribute(name))` when it is not set; decode errors
    /// when it is not a `T`.
    pub fn get<T: DeserializeOwned>(&self, name: &str) -> Result<T, Error> {
        self.h.op(Op::NsGet(name.to_string()))?.value()
    }

    /// Removes attribute `name`.
    ///
    /// # Errors
    ///
    /// `Remote(NoSuchAttribute(name))` when it is not set.
    pub fn del(&self, name: &str) -> Result<(), Error> {
        self.h.op(Op::NsDel(name.to_string()))?.ok()
    }

    /// Whether attribute `name` is set.
    ///
    /// # Errors
    ///
    /// Connection errors.
    pub fn contains(&self, name: &str) -> Result<bool, Error> {
        Ok(self.names()?.iter().any(|n| n == name))
    }

    /// The attribute names, sorted.
    ///
    /// # Errors
    ///
    /// Connection errors.
    pub fn names(&self) -> Result<Vec<String>, Error> {
        match self.h.op(Op::NsItems)? {
            Reply::Named(v) => Ok(v.into_iter().map(|(n, _)| n).collect()),
            r => Err(unexpected(r)),
        }
    }

    /// Holds the namespace's server-side lock until the guard is dropped;
    /// see [`Locked`].
    ///
    /// # Errors
    ///
    /// Connection errors.
    pub fn lock(&self) -> Result<Locked<Self>, Error> {
        lock_object(self, None)
    }
}

proxy_type!(
    /// One value in the manager's server: Python's `Manager().Value`.
    ///
    /// ```
    /// let m = mp_manager::Manager::new()?;
    /// let v = m.value(1.5f64)?;
    /// v.set(2.5)?;
    /// assert_eq!(v.get()?, 2.5);
    /// assert_eq!(v.update(|x| x * 2.0)?, 5.0);
    /// # Ok::<(), mp_manager::Error>(())
    /// ```
    ValueProxy[T], Kind::Value
);

impl<T: Storable> ValueProxy<T> {
    /// The value.
    ///
    /// # Errors
    ///
    /// Connection and decode errors.
    pub fn get(&self) -> Result<T, Error> {
        self.h.op(Op::ValueGet)?.value()
    }

    /// Sets the value and returns the previous one.
    ///
    /// # Errors
    ///
    /// Connection and codec errors.
    pub fn set(&self, value: T) -> Result<T, Error> {
        self.h.op(Op::ValueSet(enc_stored(&value)?))?.value()
    }

    /// Replaces the value with `f(value)` atomically (under the value's
    /// lock, so not through a [`Locked`] guard of the same value) and
    /// returns the new value.
    ///
    /// # Errors
    ///
    /// Connection and codec errors.
    pub fn update(&self, f: impl FnOnce(T) -> T) -> Result<T, Error>
    where
        T: Clone,
    {
        let g = self.lock()?;
        let new = f(g.get()?);
        g.set(new.clone())?;
        Ok(new)
    }

    /// Holds the value's server-side lock until the guard is dropped; see
    /// [`Locked`].
    ///
    /// # Errors
    ///
    /// Connection errors.
    pub fn lock(&self) -> Result<Locked<Self>, Error> {
        lock_object(self, None)
    }
}

proxy_type!(
    /// A fixed-length array in the manager's server: Python's
    /// `Manager().Array(typecode, sequence)`, the item type being `T`.
    ///
    /// Indexes are `i64` and may be negative, as in Python; the length
    /// never changes.
    ///
    /// ```
    /// let m = mp_manager::Manager::new()?;
    /// let a = m.array(vec![0i32; 4])?;
    /// a.set(1, 7)?;
    /// assert_eq!(a.slice(0, 2)?, vec![0, 7]);
    /// assert!(a.get(4).is_err()); // IndexError
    /// # Ok::<(), mp_manager::Error>(())
    /// ```
    ArrayProxy[T], Kind::Array
);

impl<T: Storable> ArrayProxy<T> {
    /// The item at `index`.
    ///
    /// # Errors
    ///
    /// `Remote(IndexOutOfRange)`, connection and decode errors.
    pub fn get(&self, index: i64) -> Result<T, Error> {
        self.h.op(Op::ListGet(index))?.value()
    }

    /// Replaces the item at `index`.
    ///
    /// # Errors
    ///
    /// `Remote(IndexOutOfRange)`, connection and encode errors.
    pub fn set(&self, index: i64, value: T) -> Result<(), Error> {
        self.h.op(Op::ListSet(index, enc_stored(&value)?))?.ok()
    }

    /// The number of items.
    ///
    /// # Errors
    ///
    /// Connection errors.
    pub fn len(&self) -> Result<usize, Error> {
        Ok(self.h.op(Op::Len)?.count()? as usize)
    }

    /// Whether the array has no items.
    ///
    /// # Errors
    ///
    /// Connection errors.
    pub fn is_empty(&self) -> Result<bool, Error> {
        Ok(self.len()? == 0)
    }

    /// A copy of `a[start..end]` with Python's slice rules.
    ///
    /// # Errors
    ///
    /// Connection and decode errors.
    pub fn slice(&self, start: i64, end: i64) -> Result<Vec<T>, Error> {
        self.h.op(Op::ListSlice(start, end))?.seq()
    }

    /// A copy of every item (Python's `a.tolist()`, `a[:]`).
    ///
    /// # Errors
    ///
    /// Connection and decode errors.
    pub fn to_vec(&self) -> Result<Vec<T>, Error> {
        self.h.op(Op::ListSnapshot)?.seq()
    }
}
