//! Instances of registered types: their methods (only the exposed ones, if
//! the type was registered with a list), a panic caught.

use super::wait::wrong;
use crate::error::{ExceptionKind, MethodError, RemoteError};
use crate::registry::{ErasedObject, Exposed};
use crate::wire::{Kind, Op, Reply};

/// An instance of a registered type.
pub(super) struct Custom {
    pub(super) object: Box<dyn ErasedObject>,
    /// The type's name, for errors.
    pub(super) type_name: String,
    pub(super) exposed: Exposed,
}

fn method_error(kind: ExceptionKind, message: String) -> RemoteError {
    RemoteError::Method(MethodError::new(kind, message))
}

/// Runs one method call on a registered type's instance.
pub(super) fn call(c: &mut Custom, op: Op) -> Result<Reply, RemoteError> {
    match op {
        Op::Custom(method, _) if c.exposed.is_some_and(|e| !e.contains(&method.as_str())) => {
            Err(method_error(
                ExceptionKind::Attribute,
                format!("method '{method}' of '{}' is not exposed", c.type_name),
            ))
        }
        Op::Custom(method, args) => {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                c.object.call(&method, &args)
            }));
            match r {
                Ok(Ok(b)) => Ok(Reply::Bytes(b)),
                Ok(Err(e)) => Err(RemoteError::Method(e)),
                Err(_) => Err(method_error(
                    ExceptionKind::Other,
                    format!("method '{method}' panicked"),
                )),
            }
        }
        _ => wrong(Kind::Custom),
    }
}
