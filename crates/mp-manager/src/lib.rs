//! mp-manager: not built yet.
