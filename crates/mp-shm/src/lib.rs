//! mp-shm
