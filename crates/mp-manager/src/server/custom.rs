//! Instances of registered types: their methods, a panic caught.

use super::wait::wrong;
use crate::error::RemoteError;
use crate::registry::ErasedObject;
use crate::wire::{Kind, Op, Reply};

/// Runs one method call on a registered type's instance.
pub(super) fn call(o: &mut dyn ErasedObject, op: Op) -> Result<Reply, RemoteError> {
    match op {
        Op::Custom(method, args) => {
            let r =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| o.call(&method, &args)));
            match r {
                Ok(Ok(b)) => Ok(Reply::Bytes(b)),
                Ok(Err(msg)) => Err(RemoteError::Custom(msg)),
                Err(_) => Err(RemoteError::Custom(format!("method '{method}' panicked"))),
            }
        }
        _ => wrong(Kind::Custom),
    }
}
