//! mp-pool: not built yet.
