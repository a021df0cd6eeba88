//! `ShareableList` against a real CPython, both ways: Python attaches to a
//! list made here, reads it and writes to it; Rust attaches to a list
//! Python made, reads it and writes to it. Skips, saying why, when
//! `python3` is missing. Nothing is left in /dev/shm.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use mp_shm::{Item, ShareableList};

const SCRIPT: &str = r#"
import sys
from multiprocessing import shared_memory, resource_tracker

role = sys.argv[1]
ITEMS = ['howdy', b'HoWdY', -273.154, 100, None, True, 42, '', b'', 'h\u00e9llo',
         2**63 - 1, -2**63, 0.0, False, b'\x00\x01\xff']
LONG = '\u2713 not ASCII, longer than its characters \u2713'

if role == 'attach':
    sl = shared_memory.ShareableList(name=sys.argv[2])
    # 3.11 registers attached blocks too and would unlink this one at exit.
    resource_tracker.unregister(sl.shm._name, 'shared_memory')
    assert list(sl) == ITEMS + [LONG], list(sl)
    assert type(sl[5]) is bool and type(sl[3]) is int and type(sl[2]) is float
    print(sl.format, flush=True)
    sl[0] = 'py'
    sl[3] = 'abcdefgh'
    sl[4] = 7
    sl[5] = 1.25
    sl[1] = None
    sl[13] = True
    print(sl.format, flush=True)
    sl.shm.close()
else:
    sl = shared_memory.ShareableList(ITEMS)
    print(sl.shm.name, flush=True)
    print(sl.format, flush=True)
    assert sys.stdin.readline().strip() == 'done'
    after = list(ITEMS)
    after[0] = 'rust'
    after[3] = None
    after[2] = True
    after[6] = 'x'
    after[1] = 3.5
    after[9] = b'\xff\xfe'
    try:
        assert list(sl) == after, list(sl)
        assert type(sl[2]) is bool
        print(sl.format, flush=True)
    finally:
        sl.shm.close()
        sl.shm.unlink()
"#;

fn python_available() -> bool {
    match Command::new("python3")
        .args(["-c", "from multiprocessing import shared_memory"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(s) if s.success() => true,
        Ok(s) => {
            eprintln!("skipping: python3 cannot import multiprocessing.shared_memory ({s})");
            false
        }
        Err(e) => {
            eprintln!("skipping: python3 not found ({e})");
            false
        }
    }
}

fn items() -> Vec<Item> {
    vec![
        "howdy".into(),
        b"HoWdY".as_slice().into(),
        (-273.154).into(),
        100.into(),
        Item::None,
        true.into(),
        42.into(),
        "".into(),
        b"".as_slice().into(),
        "h\u{e9}llo".into(),
        i64::MAX.into(),
        i64::MIN.into(),
        0.0.into(),
        false.into(),
        vec![0u8, 1, 0xff].into(),
    ]
}

/// A python3 child, killed and reaped on drop.
struct Py {
    child: Child,
    out: BufReader<std::process::ChildStdout>,
}

impl Py {
    fn start(args: &[&str]) -> Py {
        let mut child = Command::new("python3")
            .args(["-c", SCRIPT])
            .args(args)
            .stdin(Stdio::piped())
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
        if s.is_empty() {
            let mut err = String::new();
            if let Some(mut e) = self.child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            panic!("python3 ended early:\n{err}");
        }
        s.trim_end().to_string()
    }

    fn finish(mut self) {
        let status = self.child.wait().unwrap();
        let mut err = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        assert!(status.success(), "python3 failed ({status}):\n{err}");
        assert!(!err.contains("leaked"), "python3 warned: {err}");
    }
}

impl Drop for Py {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn python_attaches_to_a_list_made_in_rust() {
    if !python_available() {
        return;
    }
    let long = "\u{2713} not ASCII, longer than its characters \u{2713}";
    let mut all = items();
    all.push(long.into());
    let sl = ShareableList::new(&all).unwrap();
    let before = sl.format().unwrap();
    let mut py = Py::start(&["attach", sl.name()]);
    assert_eq!(py.line(), before, "Python reads our formats");
    let after = py.line();
    py.finish();
    assert_eq!(sl.format().unwrap(), after);
    let mut want = all.clone();
    want[0] = "py".into();
    want[3] = "abcdefgh".into();
    want[4] = 7.into();
    want[5] = 1.25.into();
    want[1] = Item::None;
    want[13] = true.into();
    assert_eq!(sl.to_vec().unwrap(), want);
    let path = Path::new("/dev/shm").join(sl.name());
    assert!(
        path.exists(),
        "python3 must not unlink a block it attached to"
    );
    drop(sl);
    assert!(!path.exists(), "the creating list unlinks its block");
}

#[test]
fn rust_attaches_to_a_list_made_in_python() {
    if !python_available() {
        return;
    }
    let mut py = Py::start(&["create"]);
    let name = py.line();
    let path = Path::new("/dev/shm").join(&name);
    // Whatever happens, nothing stays in /dev/shm.
    struct Cleanup<'a>(&'a Path);
    impl Drop for Cleanup<'_> {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(self.0);
        }
    }
    let _cleanup = Cleanup(&path);
    let format = py.line();
    let sl = ShareableList::attach(&name).unwrap();
    assert_eq!(sl.format().unwrap(), format);
    assert_eq!(sl.to_vec().unwrap(), items());
    assert_eq!(
        sl.to_string(),
        format!(
            "ShareableList(['howdy', b'HoWdY', -273.154, 100, None, True, 42, '', b'', 'h\u{e9}llo', \
             9223372036854775807, -9223372036854775808, 0.0, False, b'\\x00\\x01\\xff'], name='{name}')"
        )
    );
    sl.set(0, "rust").unwrap();
    sl.set(3, ()).unwrap();
    sl.set(2, true).unwrap();
    sl.set(6, "x").unwrap();
    sl.set(1, 3.5).unwrap();
    sl.set(9, vec![0xffu8, 0xfe]).unwrap();
    assert!(sl.set(9, "longer than 8").is_err());
    writeln!(py.child.stdin.as_mut().unwrap(), "done").unwrap();
    let after = py.line();
    py.finish();
    assert_eq!(sl.format().unwrap(), after);
    drop(sl);
    assert!(!path.exists(), "python3 unlinked its block");
}
