//! Proxies for registered user types.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::client::enc;
use crate::error::Error;
use crate::proxy::{Locked, lock_object, proxy_type};
use crate::wire::{Kind, Op};

proxy_type!(
    /// A proxy for an instance of a type registered with the server (see
    /// [`Registry`](crate::Registry)); wrap it in a typed struct of your
    /// own for a nicer API.
    ///
    /// ```
    /// # use mp_manager::{Call, CallResult, Manager, Registry, RemoteObject, Types};
    /// # struct Counter(i64);
    /// # impl RemoteObject for Counter {
    /// #     type Init = i64;
    /// #     fn create(n: i64) -> Self { Counter(n) }
    /// #     fn call(&mut self, call: Call<'_>) -> CallResult {
    /// #         match call.method() {
    /// #             "add" => call.reply(|n: i64| { self.0 += n; self.0 }),
    /// #             _ => Err(call.unknown()),
    /// #         }
    /// #     }
    /// # }
    /// # struct MyTypes;
    /// # impl Registry for MyTypes {
    /// #     fn register(t: &mut Types) { t.add::<Counter>("Counter"); }
    /// # }
    /// let m = Manager::builder().registry::<MyTypes>().start()?;
    /// let c = m.create("Counter", &10i64)?;
    /// assert_eq!(c.call::<_, i64>("add", &5i64)?, 15);
    /// assert!(c.call::<_, i64>("nope", &()).is_err());
    /// # Ok::<(), mp_manager::Error>(())
    /// ```
    CustomProxy[], Kind::Custom
);

impl CustomProxy {
    /// Calls `method` with `args` and decodes its result.
    ///
    /// # Errors
    ///
    /// `Remote(Method(e))` for the method's own errors, with their kind
    /// (`TypeError` for arguments that do not decode, `AttributeError`
    /// for an unknown method or one not exposed), connection and codec
    /// errors.
    pub fn call<A: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        method: &str,
        args: &A,
    ) -> Result<R, Error> {
        self.h
            .op(Op::Custom(method.to_string(), enc(args)?))?
            .value()
    }

    /// Holds the object's server-side lock across several calls; see
    /// [`Locked`].
    ///
    /// # Errors
    ///
    /// Connection errors.
    pub fn lock(&self) -> Result<Locked<Self>, Error> {
        lock_object(self, None)
    }
}
