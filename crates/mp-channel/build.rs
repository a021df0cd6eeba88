//! Declares the `loom` cfg (the loom model of the ring runs under
//! `RUSTFLAGS="--cfg loom"`).

fn main() {
    println!("cargo::rustc-check-cfg=cfg(loom)");
}
