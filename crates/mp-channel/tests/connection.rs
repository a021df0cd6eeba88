//! `connection`: Listener / Client between Rust peers, and against a real
//! CPython in both directions (Unix path, abstract name, TCP on 127.0.0.1;
//! right and wrong authkey; 3.11's HMAC-MD5 handshake and 3.12's
//! `{sha256}` one). The Python tests skip, saying why, when `python3` is
//! missing.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use mp_channel::connection::pickle::{HashableValue as H, Value as V};
use mp_channel::connection::{
    Address, Client, Codec, Connection, ConnectionError, Listener, client,
};
use mp_channel::wait;

const LONG: Duration = Duration::from_secs(60);

fn temp_path(tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    std::env::temp_dir().join(format!("mp-conn-{tag}-{}-{nanos}", std::process::id()))
}

fn abstract_name(tag: &str) -> String {
    let p = temp_path(tag);
    p.file_name().unwrap().to_string_lossy().into_owned()
}

/// Receives one message, failing instead of hanging when none comes.
fn recv_within(conn: &Connection) -> Result<Vec<u8>, ConnectionError> {
    assert!(
        conn.poll_timeout(Some(LONG)).unwrap(),
        "no message within {LONG:?}"
    );
    conn.recv_bytes()
}

// ---------------------------------------------------------------------------
// Rust to Rust.

fn rust_pair(address: Address, key: Option<&[u8]>) -> (Connection, Connection) {
    let listener = Listener::bind(address, key).unwrap();
    let address = listener.address().clone();
    let key = key.map(<[u8]>::to_vec);
    let t = thread::spawn(move || client(address, key.as_deref()).unwrap());
    let server = listener.accept().unwrap();
    (server, t.join().unwrap())
}

fn exchange(a: &Connection, b: Connection) -> Connection {
    a.send(&("ping", 7u32, vec![1.5f64, -2.0])).unwrap();
    assert_eq!(
        b.recv::<(String, u32, Vec<f64>)>().unwrap(),
        ("ping".to_string(), 7, vec![1.5, -2.0])
    );
    let big: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
    let sender = {
        let big = big.clone();
        thread::spawn(move || {
            b.send_bytes(&big).unwrap();
            b
        })
    };
    assert_eq!(a.recv_bytes().unwrap(), big);
    let b = sender.join().unwrap();
    b.send_bytes(b"").unwrap();
    assert_eq!(a.recv_bytes().unwrap(), b"");
    b
}

#[test]
fn rust_peers_over_a_unix_path_with_a_key() {
    let path = temp_path("unix");
    let (a, b) = rust_pair(Address::Unix(path.clone()), Some(b"key"));
    let b = exchange(&a, b);
    exchange(&b, a);
    assert!(!path.exists(), "the listener removes its socket file");
}

#[test]
fn rust_peers_over_an_abstract_name_and_tcp() {
    let name = format!("\0{}", abstract_name("abs"));
    let (a, b) = rust_pair(Address::from(name.as_str()), Some(b"key"));
    exchange(&a, b);
    let (a, b) = rust_pair(Address::from("127.0.0.1:0"), Some(b"key"));
    exchange(&a, b);
    let (a, b) = rust_pair(Address::from("127.0.0.1:0"), None);
    exchange(&b, a);
}

#[test]
fn a_wrong_key_fails_on_both_sides_and_the_listener_goes_on() {
    let listener = Listener::bind("127.0.0.1:0", Some(b"right")).unwrap();
    let address = listener.address().clone();
    let t = {
        let address = address.clone();
        thread::spawn(move || client(address, Some(b"wrong")))
    };
    let server = listener.accept();
    assert!(
        matches!(server, Err(ConnectionError::Authentication(_))),
        "{server:?}"
    );
    let c = t.join().unwrap();
    assert!(
        matches!(c, Err(ConnectionError::Authentication(_))),
        "{c:?}"
    );
    // A client without a key does not get in either.
    let t = {
        let address = address.clone();
        thread::spawn(move || {
            let c = client(address, None).unwrap();
            // It sees the challenge and goes away.
            let _ = c.recv_bytes();
        })
    };
    assert!(matches!(
        listener.accept(),
        Err(ConnectionError::Authentication(_))
    ));
    t.join().unwrap();
    // The right key still works.
    let t = thread::spawn(move || client(address, Some(b"right")).unwrap());
    let server = listener.accept().unwrap();
    let c = t.join().unwrap();
    exchange(&server, c);
}

#[test]
fn a_silent_client_makes_accept_fail_not_hang() {
    let listener = Listener::builder(temp_path("silent"))
        .authkey(b"k")
        .auth_timeout(Some(Duration::from_millis(300)))
        .bind()
        .unwrap();
    let Address::Unix(path) = listener.address().clone() else {
        unreachable!()
    };
    let _silent = std::os::unix::net::UnixStream::connect(&path).unwrap();
    let start = Instant::now();
    let r = listener.accept();
    assert!(
        matches!(r, Err(ConnectionError::Authentication(_))),
        "{r:?}"
    );
    assert!(start.elapsed() < LONG);
}

#[test]
fn eof_bad_length_and_wait() {
    let (a, b) = rust_pair(Address::from("127.0.0.1:0"), None);
    let (c, d) = rust_pair(Address::Unix(temp_path("wait")), None);
    assert_eq!(
        wait(&[&a, &c], Some(Duration::from_millis(20))).unwrap(),
        Vec::<usize>::new()
    );
    d.send_bytes(b"x").unwrap();
    assert_eq!(wait(&[&a, &c], Some(LONG)).unwrap(), vec![1]);
    assert_eq!(c.recv_bytes().unwrap(), b"x");
    b.send_bytes(&[0; 300]).unwrap();
    assert!(matches!(
        a.recv_bytes_max(256),
        Err(ConnectionError::BadMessageLength { len: 300, max: 256 })
    ));
    d.close();
    assert!(
        c.poll_timeout(Some(LONG)).unwrap(),
        "end of file is readable"
    );
    assert!(matches!(c.recv_bytes(), Err(ConnectionError::Eof)));
    // Nobody listens.
    let gone = temp_path("gone");
    assert!(matches!(client(gone, None), Err(ConnectionError::Io(_))));
    // A listener is waitable: ready when a client is waiting.
    let l = Listener::bind("127.0.0.1:0", None).unwrap();
    assert!(
        wait(&[&l], Some(Duration::from_millis(20)))
            .unwrap()
            .is_empty()
    );
    let _c = client(l.address().clone(), None).unwrap();
    assert_eq!(wait(&[&l], Some(LONG)).unwrap(), vec![0]);
}

// ---------------------------------------------------------------------------
// Against CPython.

const SCRIPT: &str = r#"
import hmac, os, sys
from multiprocessing.connection import Listener, Client, AuthenticationError

role, family, addr, key, mode = sys.argv[1:6]
key = key.encode()

EXPECTED = {'none': None, 'bool': True, 'false': False, 'int': -7, 'big': 2**70,
            'float': 1.5, 'str': 'h\u00e9llo \u2713', 'bytes': b'\x00\xff',
            'list': [1, 'a', None], 'tuple': (1, 2.5, None),
            'dict': {'k': [b'v'], 3: 'int key'}}
REPLY = ('from python', EXPECTED, 2**64 + 1, -0.25)

def m_deliver(c):
    msg = b'{sha256}' + os.urandom(40)
    c.send_bytes(b'#CHALLENGE#' + msg)
    ok = c.recv_bytes(256) == b'{sha256}' + hmac.new(key, msg, 'sha256').digest()
    c.send_bytes(b'#WELCOME#' if ok else b'#FAILURE#')
    if not ok:
        raise AuthenticationError('digest received was wrong')

def m_answer(c):
    msg = c.recv_bytes(256)
    assert msg.startswith(b'#CHALLENGE#{sha256}'), msg
    msg = msg[len(b'#CHALLENGE#'):]
    c.send_bytes(b'{sha256}' + hmac.new(key, msg, 'sha256').digest())
    if c.recv_bytes(256) != b'#WELCOME#':
        raise AuthenticationError('digest sent was rejected')

if family == 'tcp':
    address = ('127.0.0.1', int(addr))
elif family == 'abstract':
    address = '\0' + addr
else:
    address = addr
authkey = key if mode == 'legacy' else None

try:
    if role == 'listen':
        with Listener(address, authkey=authkey) as l:
            print(l.address[1] if family == 'tcp' else 'ready', flush=True)
            c = l.accept()
            if mode == 'modern':
                m_deliver(c)
                m_answer(c)
    else:
        c = Client(address, authkey=authkey)
        if mode == 'modern':
            m_answer(c)
            m_deliver(c)
except AuthenticationError as e:
    print('auth-failed', e, flush=True)
    sys.exit(0)

obj = c.recv()
assert obj == EXPECTED, obj
assert obj['bool'] is True and obj['false'] is False
assert type(obj['tuple']) is tuple and type(obj['list']) is list, obj
assert type(obj['bytes']) is bytes and type(obj['big']) is int, obj
c.send(REPLY)
data = c.recv_bytes()
c.send_bytes(data[::-1])
buf = bytearray(4)
try:
    c.recv_bytes_into(buf)
    raise SystemExit('expected BufferTooShort')
except Exception as e:
    assert type(e).__name__ == 'BufferTooShort', e
    c.send_bytes(e.args[0])
t = c.recv()
assert t == ('abc', 5, [1.0], None), t
c.send({'answer': 42, 'name': 'py'})
try:
    c.recv()
except EOFError:
    print('eof', flush=True)
"#;

fn python_available() -> bool {
    match Command::new("python3")
        .args(["-c", "import multiprocessing.connection"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(s) if s.success() => true,
        Ok(s) => {
            eprintln!("skipping: python3 cannot import multiprocessing.connection ({s})");
            false
        }
        Err(e) => {
            eprintln!("skipping: python3 not found ({e})");
            false
        }
    }
}

/// A python3 child, killed and reaped on drop.
struct Py {
    child: Child,
    out: BufReader<std::process::ChildStdout>,
}

impl Py {
    fn start(role: &str, family: &str, addr: &str, key: &str, mode: &str) -> Py {
        let mut child = Command::new("python3")
            .args(["-c", SCRIPT, role, family, addr, key, mode])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start python3");
        let out = BufReader::new(child.stdout.take().unwrap());
        Py { child, out }
    }

    fn line(&mut self) -> String {
        let mut s = String::new();
        self.out.read_line(&mut s).unwrap();
        s.trim_end().to_string()
    }

    /// The rest of its output and its exit status; panics with its stderr
    /// when it failed.
    fn finish(mut self) -> String {
        let mut rest = String::new();
        self.out.read_to_string(&mut rest).unwrap();
        let status = self.child.wait().unwrap();
        let mut err = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        assert!(status.success(), "python3 failed ({status}):\n{err}");
        rest
    }
}

impl Drop for Py {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn s(x: &str) -> V {
    V::String(x.to_string())
}

fn big(x: &str) -> V {
    V::Int(x.parse::<num_bigint::BigInt>().unwrap())
}

fn expected() -> V {
    let mut inner = BTreeMap::new();
    inner.insert(
        H::String("k".into()),
        V::List(vec![V::Bytes(b"v".to_vec())]),
    );
    inner.insert(H::I64(3), s("int key"));
    let mut d = BTreeMap::new();
    d.insert(H::String("none".into()), V::None);
    d.insert(H::String("bool".into()), V::Bool(true));
    d.insert(H::String("false".into()), V::Bool(false));
    d.insert(H::String("int".into()), V::I64(-7));
    d.insert(H::String("big".into()), big("1180591620717411303424"));
    d.insert(H::String("float".into()), V::F64(1.5));
    d.insert(H::String("str".into()), s("h\u{e9}llo \u{2713}"));
    d.insert(H::String("bytes".into()), V::Bytes(vec![0, 0xff]));
    d.insert(
        H::String("list".into()),
        V::List(vec![V::I64(1), s("a"), V::None]),
    );
    d.insert(
        H::String("tuple".into()),
        V::Tuple(vec![V::I64(1), V::F64(2.5), V::None]),
    );
    d.insert(H::String("dict".into()), V::Dict(inner));
    V::Dict(d)
}

/// The Rust half of the script's exchange.
fn talk_to_python(conn: &Connection) {
    assert_eq!(conn.codec(), Codec::Pickle);
    conn.send_py(&expected()).unwrap();
    assert!(conn.poll_timeout(Some(LONG)).unwrap());
    let reply = conn.recv_py().unwrap();
    assert_eq!(
        reply,
        V::Tuple(vec![
            s("from python"),
            expected(),
            big("18446744073709551617"),
            V::F64(-0.25)
        ])
    );
    let data: Vec<u8> = (0..1 << 20).map(|i| (i * 7 % 256) as u8).collect();
    conn.send_bytes(&data).unwrap();
    let mut back = recv_within(conn).unwrap();
    back.reverse();
    assert_eq!(back, data);
    conn.send_bytes(b"longer than four").unwrap();
    assert_eq!(recv_within(conn).unwrap(), b"longer than four");
    // Serde types through the Pickle codec.
    conn.send(&("abc", 5i64, vec![1.0f64], None::<i32>))
        .unwrap();
    assert!(conn.poll_timeout(Some(LONG)).unwrap());
    let answer: Answer = conn.recv().unwrap();
    assert_eq!(
        answer,
        Answer {
            answer: 42,
            name: "py".into()
        }
    );
}

#[derive(Debug, PartialEq, serde::Deserialize)]
struct Answer {
    answer: i64,
    name: String,
}

fn rust_client_to_python_listener(family: &str, mode: &str, py_key: &str, rust_key: &[u8]) {
    if !python_available() {
        return;
    }
    let (addr, path) = match family {
        "unix" => {
            let p = temp_path("py-l");
            (p.to_string_lossy().into_owned(), Some(p))
        }
        "abstract" => (abstract_name("py-l"), None),
        _ => ("0".to_string(), None),
    };
    let mut py = Py::start("listen", family, &addr, py_key, mode);
    let first = py.line();
    let address = match family {
        "tcp" => Address::from(format!("127.0.0.1:{first}")),
        "abstract" => Address::Abstract(addr.into_bytes()),
        _ => Address::Unix(path.clone().unwrap()),
    };
    let conn = Client::new(address)
        .authkey(rust_key)
        .codec(Codec::Pickle)
        .connect();
    if py_key.as_bytes() != rust_key {
        assert!(
            matches!(conn, Err(ConnectionError::Authentication(_))),
            "{conn:?}"
        );
        assert!(py.finish().starts_with("auth-failed"));
        return;
    }
    let conn = conn.unwrap();
    talk_to_python(&conn);
    conn.close();
    assert_eq!(py.finish().trim(), "eof");
    if let Some(p) = path {
        assert!(!p.exists(), "python removes its socket file");
    }
}

fn python_client_to_rust_listener(family: &str, mode: &str, py_key: &str, rust_key: &[u8]) {
    if !python_available() {
        return;
    }
    let address = match family {
        "unix" => Address::Unix(temp_path("rs-l")),
        "abstract" => Address::Abstract(abstract_name("rs-l").into_bytes()),
        _ => Address::from("127.0.0.1:0"),
    };
    let listener = Listener::builder(address)
        .authkey(rust_key)
        .codec(Codec::Pickle)
        .bind()
        .unwrap();
    let addr = match listener.address() {
        Address::Unix(p) => p.to_string_lossy().into_owned(),
        Address::Abstract(n) => String::from_utf8(n.clone()).unwrap(),
        Address::Tcp(a) => a.port().to_string(),
    };
    let py = Py::start("connect", family, &addr, py_key, mode);
    assert_eq!(
        wait(&[&listener], Some(LONG)).unwrap(),
        vec![0],
        "python3 did not connect"
    );
    let conn = listener.accept();
    if py_key.as_bytes() != rust_key {
        assert!(
            matches!(conn, Err(ConnectionError::Authentication(_))),
            "{conn:?}"
        );
        assert!(py.finish().starts_with("auth-failed"));
        return;
    }
    let conn = conn.unwrap();
    talk_to_python(&conn);
    drop(conn);
    assert_eq!(py.finish().trim(), "eof");
}

#[test]
fn python_listener_unix_legacy_handshake() {
    rust_client_to_python_listener("unix", "legacy", "secret", b"secret");
}

#[test]
fn python_listener_tcp_legacy_handshake() {
    rust_client_to_python_listener("tcp", "legacy", "secret", b"secret");
}

#[test]
fn python_listener_abstract_sha256_handshake() {
    rust_client_to_python_listener("abstract", "modern", "secret", b"secret");
}

#[test]
fn python_listener_tcp_sha256_handshake() {
    rust_client_to_python_listener("tcp", "modern", "secret", b"secret");
}

#[test]
fn python_listener_rejects_a_wrong_key() {
    rust_client_to_python_listener("unix", "legacy", "secret", b"wrong");
    rust_client_to_python_listener("tcp", "legacy", "secret", b"wrong");
    rust_client_to_python_listener("tcp", "modern", "secret", b"wrong");
}

#[test]
fn python_client_unix_legacy_handshake() {
    python_client_to_rust_listener("unix", "legacy", "secret", b"secret");
}

#[test]
fn python_client_tcp_legacy_handshake() {
    python_client_to_rust_listener("tcp", "legacy", "secret", b"secret");
}

#[test]
fn python_client_abstract_sha256_handshake() {
    python_client_to_rust_listener("abstract", "modern", "secret", b"secret");
}

#[test]
fn python_client_tcp_sha256_handshake() {
    python_client_to_rust_listener("tcp", "modern", "secret", b"secret");
}

#[test]
fn rust_listener_rejects_a_python_client_with_a_wrong_key() {
    python_client_to_rust_listener("unix", "legacy", "wrong", b"secret");
    python_client_to_rust_listener("tcp", "legacy", "wrong", b"secret");
    python_client_to_rust_listener("tcp", "modern", "wrong", b"secret");
}

#[test]
fn poll_without_timeout_returns_at_once_as_python() {
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    let (a, b) = (Connection::from(a), Connection::from(b));
    // Nothing comes while `a` is open: a poll that waited would not return.
    let (tx, rx) = std::sync::mpsc::channel();
    let t = thread::spawn(move || {
        tx.send(b.poll().unwrap()).unwrap();
        b
    });
    assert_eq!(rx.recv_timeout(LONG), Ok(false));
    let b = t.join().unwrap();
    a.send_bytes(b"x").unwrap();
    assert!(b.poll_timeout(None).unwrap(), "a message is waiting");
    assert!(b.poll().unwrap());
    assert_eq!(b.recv_bytes().unwrap(), b"x");
    drop(a);
    assert!(b.poll().unwrap(), "end of file is readable");
}
