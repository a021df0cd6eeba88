//! Declares the `loom` cfg (the loom model of the condition's wait/notify
//! protocol runs under `RUSTFLAGS="--cfg loom"`).

fn main() {
    println!("cargo::rustc-check-cfg=cfg(loom)");
}
