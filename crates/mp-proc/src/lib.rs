//! mp-proc: not built yet.
