//! User types with methods, served by a manager: Python's
//! `BaseManager.register`.

use std::collections::HashMap;
use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{ExceptionKind, MethodError};

/// What a registered object's method returns: the postcard bytes of its
/// result, or an error of a kind (`KeyError`, `TypeError`, ...) for the
/// caller.
pub type CallResult = Result<Vec<u8>, MethodError>;

/// A type whose instances live in the manager's server process and are
/// used through a [`CustomProxy`](crate::CustomProxy) (Python's
/// `BaseManager.register(typeid, callable)`).
///
/// ```
/// use mp_manager::{Call, CallResult, RemoteObject};
///
/// /// A counter that lives in the server.
/// struct Counter(i64);
///
/// impl RemoteObject for Counter {
///     type Init = i64;
///     fn create(start: i64) -> Self {
///         Counter(start)
///     }
///     fn call(&mut self, call: Call<'_>) -> CallResult {
///         match call.method() {
///             "add" => call.reply(|n: i64| {
///                 self.0 += n;
///                 self.0
///             }),
///             "get" => call.reply(|(): ()| self.0),
///             _ => Err(call.unknown()),
///         }
///     }
/// }
/// ```
pub trait RemoteObject: Send + 'static {
    /// What `create` takes (sent by the client that creates the object).
    type Init: DeserializeOwned;
    /// Builds a new instance in the server.
    fn create(init: Self::Init) -> Self;
    /// Runs one method call. Calls on one object are serialized (the
    /// server holds the object's lock while this runs).
    ///
    /// # Errors
    ///
    /// A [`MethodError`] the client receives as
    /// [`RemoteError::Method`](crate::RemoteError::Method), kind and
    /// message intact.
    fn call(&mut self, call: Call<'_>) -> CallResult;
}

/// One method call on a [`RemoteObject`]: the method name and its encoded
/// arguments.
#[derive(Debug)]
pub struct Call<'a> {
    method: &'a str,
    args: &'a [u8],
}

impl<'a> Call<'a> {
    /// The method's name.
    pub fn method(&self) -> &'a str {
        self.method
    }

    /// Decodes the arguments.
    ///
    /// # Errors
    ///
    /// A `TypeError` naming the method when the bytes are not an `A`.
    pub fn args<A: DeserializeOwned>(&self) -> Result<A, MethodError> {
        postcard::from_bytes(self.args).map_err(|e| {
            MethodError::new(
                ExceptionKind::Type,
                format!("bad arguments for method '{}': {e}", self.method),
            )
        })
    }

    /// Decodes the arguments, runs `f` on them and encodes its result.
    ///
    /// # Errors
    ///
    /// As [`args`](Call::args), or when the result cannot be encoded.
    pub fn reply<A: DeserializeOwned, R: Serialize>(self, f: impl FnOnce(A) -> R) -> CallResult {
        let a = self.args::<A>()?;
        encode_result(&f(a))
    }

    /// The error for a method the type does not have: an
    /// `AttributeError`.
    pub fn unknown(&self) -> MethodError {
        MethodError::new(
            ExceptionKind::Attribute,
            format!("no method named '{}'", self.method),
        )
    }
}

/// Encodes a method's result (for [`RemoteObject::call`] implementations
/// that do not use [`Call::reply`]).
///
/// # Errors
///
/// The encoder's message, as an `Exception`.
pub fn encode_result<R: Serialize>(r: &R) -> CallResult {
    postcard::to_allocvec(r).map_err(|e| format!("cannot encode the result: {e}").into())
}

/// The type-erased form the server keeps.
pub(crate) trait ErasedObject: Send {
    fn call(&mut self, method: &str, args: &[u8]) -> CallResult;
}

impl<T: RemoteObject> ErasedObject for T {
    fn call(&mut self, method: &str, args: &[u8]) -> CallResult {
        RemoteObject::call(self, Call { method, args })
    }
}

/// A new instance, or why there is none.
pub(crate) type Made = Result<Box<dyn ErasedObject>, MethodError>;

type Factory = fn(&[u8]) -> Made;

fn factory<T: RemoteObject>(init: &[u8]) -> Made {
    let init: T::Init = postcard::from_bytes(init)
        .map_err(|e| MethodError::new(ExceptionKind::Type, format!("bad initial value: {e}")))?;
    Ok(Box::new(T::create(init)))
}

/// The methods of a registered type that clients may call: all of them,
/// or those listed (Python's `exposed`).
pub(crate) type Exposed = Option<&'static [&'static str]>;

/// The table of registered types a server knows, filled by a
/// [`Registry`].
#[derive(Default)]
pub struct Types {
    map: HashMap<String, (Factory, Exposed)>,
}

impl fmt::Debug for Types {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.map.keys()).finish()
    }
}

impl Types {
    /// Registers `T` under `name`, every method callable; a later
    /// registration of the same name replaces it.
    pub fn add<T: RemoteObject>(&mut self, name: &str) -> &mut Self {
        self.map.insert(name.to_string(), (factory::<T>, None));
        self
    }

    /// Registers `T` under `name` with only the methods `exposed`
    /// callable (Python's `register(typeid, callable, exposed=(...))`):
    /// a call of another method gets an `AttributeError`
    /// ([`RemoteError::Method`](crate::RemoteError::Method)) without
    /// reaching the object.
    ///
    /// ```
    /// use mp_manager::{Call, CallResult, Error, ExceptionKind, Manager, RemoteError};
    /// use mp_manager::{Registry, RemoteObject, Types};
    ///
    /// struct Account(i64);
    /// impl RemoteObject for Account {
    ///     type Init = i64;
    ///     fn create(n: i64) -> Self { Account(n) }
    ///     fn call(&mut self, call: Call<'_>) -> CallResult {
    ///         match call.method() {
    ///             "balance" => call.reply(|(): ()| self.0),
    ///             "reset" => call.reply(|(): ()| self.0 = 0),
    ///             _ => Err(call.unknown()),
    ///         }
    ///     }
    /// }
    /// struct MyTypes;
    /// impl Registry for MyTypes {
    ///     fn register(t: &mut Types) {
    ///         t.add_exposed::<Account>("Account", &["balance"]);
    ///     }
    /// }
    ///
    /// let m = Manager::builder().registry::<MyTypes>().start()?;
    /// let a = m.create("Account", &10i64)?;
    /// assert_eq!(a.call::<_, i64>("balance", &())?, 10);
    /// match a.call::<_, ()>("reset", &()) {
    ///     Err(Error::Remote(RemoteError::Method(e))) => assert_eq!(e.kind, ExceptionKind::Attribute),
    ///     other => panic!("{other:?}"),
    /// }
    /// assert_eq!(a.call::<_, i64>("balance", &())?, 10);
    /// # Ok::<(), mp_manager::Error>(())
    /// ```
    pub fn add_exposed<T: RemoteObject>(
        &mut self,
        name: &str,
        exposed: &'static [&'static str],
    ) -> &mut Self {
        self.map
            .insert(name.to_string(), (factory::<T>, Some(exposed)));
        self
    }

    pub(crate) fn create(&self, name: &str, init: &[u8]) -> Option<(Made, Exposed)> {
        self.map.get(name).map(|(f, exposed)| (f(init), *exposed))
    }
}

/// The set of user types a manager's server can create.
///
/// The server is another process (started through `mp_proc`, possibly by
/// re-executing the program), so the types are named by a type that
/// implements this trait, not by values registered at run time: the server
/// process calls `register` itself.
///
/// ```
/// use mp_manager::{Call, CallResult, Manager, Registry, RemoteObject, Types};
///
/// struct Maths;
/// impl RemoteObject for Maths {
///     type Init = ();
///     fn create(_: ()) -> Self { Maths }
///     fn call(&mut self, call: Call<'_>) -> CallResult {
///         match call.method() {
///             "add" => call.reply(|(a, b): (i64, i64)| a + b),
///             "mul" => call.reply(|(a, b): (i64, i64)| a * b),
///             _ => Err(call.unknown()),
///         }
///     }
/// }
///
/// struct MyTypes;
/// impl Registry for MyTypes {
///     fn register(types: &mut Types) {
///         types.add::<Maths>("Maths");
///     }
/// }
///
/// let m = Manager::builder().registry::<MyTypes>().start()?;
/// let maths = m.create("Maths", &())?;
/// assert_eq!(maths.call::<_, i64>("add", &(1, 2))?, 3);
/// assert_eq!(maths.call::<_, i64>("mul", &(3, 4))?, 12);
/// # Ok::<(), mp_manager::Error>(())
/// ```
pub trait Registry: 'static {
    /// Adds the types to `types`.
    fn register(types: &mut Types);
}

/// No user types.
impl Registry for () {
    fn register(_: &mut Types) {}
}
