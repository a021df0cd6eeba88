//! Rust and CPython talking through `multiprocessing.connection`: the
//! same framing, the same authkey handshake, pickled values.
//!
//! The example starts `python3` itself. First Python listens on TCP
//! (127.0.0.1, a port of the system's choice) and Rust connects: Rust sends
//! a dict, Python answers with a tuple, then a 1 MiB byte string goes each
//! way. Then Rust listens on a Unix socket and Python connects: Python sends
//! a dict, Rust answers with a serde tuple. Both sides use the authkey
//! `b"secret"`. Without `python3` the example says so and exits 0.
//!
//! ```text
//! Rust -> Python: {"float": 2.5, "nothing": None, "ok": True, "primes": [2, 3, 5, 7], "who": "Rust"}
//! Python -> Rust: ("sum of primes", 17, b[1, 2, 3])
//! Rust -> Python: 1048576 bytes
//! Python -> Rust: 1048576 bytes, ours reversed: True
//! Python -> Rust: {"bytes": b[0, 1], "tuple": (1, "two", 3), "version": 3, "who": "Python"}
//! Rust -> Python: ("thanks", 42)
//! Python checked everything: True
//! ```

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use mp::connection::pickle::{HashableValue, Value};
use mp::connection::{Client, Codec, Listener};
use multiprocessing as mp;

const PYTHON: &str = r#"
import sys
from multiprocessing.connection import Listener, Client

key = b'secret'
with Listener(('127.0.0.1', 0), authkey=key) as l:
    print(l.address[1], flush=True)
    with l.accept() as c:
        d = c.recv()
        c.send(('sum of primes', sum(d['primes']), b'\x01\x02\x03'))
        data = c.recv_bytes()
        c.send_bytes(data[::-1])

with Client(sys.argv[1], authkey=key) as c:
    c.send({'who': 'Python', 'version': 3, 'tuple': (1, 'two', 3.0), 'bytes': b'\x00\x01'})
    assert c.recv() == ('thanks', 42)
print('done', flush=True)
"#;

fn main() -> Result<(), mp::Error> {
    let socket = std::env::temp_dir().join(format!("mp-connection-python-{}", std::process::id()));
    let listener = Listener::builder(socket.as_path())
        .authkey(b"secret")
        .codec(Codec::Pickle)
        .bind()?;

    let mut python = match Command::new("python3")
        .args(["-c", PYTHON])
        .arg(&socket)
        .stdout(Stdio::piped())
        .spawn()
    {
        Ok(p) => p,
        Err(e) => {
            println!("python3 is not available ({e}): this example shows Rust and CPython");
            println!("exchanging values through multiprocessing.connection, so it stops here.");
            return Ok(());
        }
    };
    let mut out = BufReader::new(python.stdout.take().expect("piped"));
    let mut line = String::new();
    out.read_line(&mut line)?;
    let port: u16 = line
        .trim()
        .parse()
        .map_err(|_| std::io::Error::other(format!("python3 did not print its port: {line:?}")))?;

    // Rust connects to Python's Listener.
    let conn = Client::new(format!("127.0.0.1:{port}"))
        .authkey(b"secret")
        .codec(Codec::Pickle)
        .connect()?;
    let key = |s: &str| HashableValue::String(s.to_string());
    let dict = Value::Dict(
        [
            (key("who"), Value::String("Rust".into())),
            (
                key("primes"),
                Value::List([2, 3, 5, 7].map(Value::I64).to_vec()),
            ),
            (key("float"), Value::F64(2.5)),
            (key("ok"), Value::Bool(true)),
            (key("nothing"), Value::None),
        ]
        .into(),
    );
    conn.send_py(&dict)?;
    println!("Rust -> Python: {dict}");
    println!("Python -> Rust: {}", conn.recv_py()?);
    let data: Vec<u8> = (0..1 << 20).map(|i| (i % 253) as u8).collect();
    conn.send_bytes(&data)?;
    println!("Rust -> Python: {} bytes", data.len());
    let mut back = conn.recv_bytes()?;
    back.reverse();
    println!(
        "Python -> Rust: {} bytes, ours reversed: {}",
        back.len(),
        if back == data { "True" } else { "False" }
    );
    conn.close();

    // Python connects to Rust's Listener (an error, not a hang, if it
    // never does).
    if mp::wait(&[&listener], Some(Duration::from_secs(60)))?.is_empty() {
        let _ = python.kill();
        let _ = python.wait();
        return Err(std::io::Error::other("python3 did not connect").into());
    }
    let conn = listener.accept()?;
    println!("Python -> Rust: {}", conn.recv_py()?);
    conn.send(&("thanks", 42))?;
    println!("Rust -> Python: (\"thanks\", 42)");

    line.clear();
    out.read_line(&mut line)?;
    let status = python.wait()?;
    println!(
        "Python checked everything: {}",
        if status.success() && line.trim() == "done" {
            "True"
        } else {
            "False"
        }
    );
    if !status.success() {
        return Err(std::io::Error::other(format!("python3 failed: {status}")).into());
    }
    Ok(())
}
