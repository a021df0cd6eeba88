//! mp-channel: not built yet.
