//! mp-sync
