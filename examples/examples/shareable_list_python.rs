//! Rust and CPython sharing a `multiprocessing.shared_memory.ShareableList`:
//! the same block, in CPython's layout, opened by name from both sides.
//!
//! The example starts `python3` itself. Rust makes a list; Python attaches
//! to it by name, prints it, and changes two items, which Rust then sees.
//! Then Python makes a list; Rust attaches, prints it and changes an item,
//! which Python checks before it unlinks its block. Without `python3` the
//! example says so and exits 0.
//!
//! ```text
//! Rust made:        ['howdy', b'HoWdY', -273.154, 100, None, True, 42]
//! Python sees:      ['howdy', b'HoWdY', -273.154, 100, None, True, 42]
//! Python wrote:     ['hi', b'HoWdY', -273.154, 101, None, False, 42]
//! Python made:      ['Python', 3.11, None, True, b'\x00\x01']
//! Rust wrote:       ['Rust', 3.11, 2026, True, b'\x00\x01']
//! Python sees:      ['Rust', 3.11, 2026, True, b'\x00\x01']
//! ```

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use mp::shm::{Item, ShareableList};
use multiprocessing as mp;

const PYTHON: &str = r#"
import sys
from multiprocessing import shared_memory, resource_tracker

# Attach to Rust's list. Python 3.11 would unlink a block it merely attached
# to when it exits: tell its resource tracker to leave this one alone.
sl = shared_memory.ShareableList(name=sys.argv[1])
resource_tracker.unregister(sl.shm._name, 'shared_memory')
print(list(sl), flush=True)
sl[0] = 'hi'
sl[3] += 1
sl[5] = False
sl.shm.close()
print('written', flush=True)

mine = shared_memory.ShareableList(['Python', 3.11, None, True, b'\x00\x01'])
try:
    print(mine.shm.name, flush=True)
    assert sys.stdin.readline().strip() == 'done'
    print(list(mine), flush=True)
finally:
    mine.shm.close()
    mine.shm.unlink()
"#;

fn show(items: &[Item]) -> String {
    let items: Vec<String> = items.iter().map(Item::to_string).collect();
    format!("[{}]", items.join(", "))
}

fn main() -> Result<(), mp::Error> {
    let sl = ShareableList::new(&[
        "howdy".into(),
        b"HoWdY".as_slice().into(),
        (-273.154).into(),
        100.into(),
        Item::None,
        true.into(),
        42.into(),
    ])?;
    println!("Rust made:        {}", show(&sl.to_vec()?));

    let mut python = match Command::new("python3")
        .args(["-c", PYTHON, sl.name()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
    {
        Ok(p) => p,
        Err(e) => {
            println!("python3 is not available ({e}): this example shows Rust and CPython");
            println!("sharing a ShareableList, so it stops here.");
            return Ok(());
        }
    };
    let mut out = BufReader::new(python.stdout.take().expect("piped"));
    let mut line = || -> Result<String, mp::Error> {
        let mut s = String::new();
        out.read_line(&mut s)?;
        if s.is_empty() {
            return Err(std::io::Error::other("python3 ended early").into());
        }
        Ok(s.trim_end().to_string())
    };

    println!("Python sees:      {}", line()?);
    line()?; // "written"
    println!("Python wrote:     {}", show(&sl.to_vec()?));

    let name = line()?;
    let theirs = ShareableList::attach(&name)?;
    println!("Python made:      {}", show(&theirs.to_vec()?));
    theirs.set(0, "Rust")?;
    theirs.set(2, 2026)?;
    println!("Rust wrote:       {}", show(&theirs.to_vec()?));
    drop(theirs); // attached: closes, never unlinks
    writeln!(python.stdin.as_mut().expect("piped"), "done")?;
    println!("Python sees:      {}", line()?);

    let status = python.wait()?;
    if !status.success() {
        return Err(std::io::Error::other(format!("python3 failed: {status}")).into());
    }
    Ok(()) // `sl` made its block: dropping it unlinks it
}
