//! A child's stdout reaches the parent's stdout once: nothing lost, nothing
//! doubled by a fork that copies an unflushed buffer.

use std::process::Command;

use mp_proc::{Process, StartMethod};

const ROLE: &str = "MP_PROC_TEST_OUTPUT_ROLE";

fn say(line: String) {
    println!("{line}");
    print!("partial-from-child ");
}

#[test]
#[ignore = "run by child_output_reaches_parent_once"]
fn output_role() {
    if std::env::var_os(ROLE).is_none() {
        return;
    }
    // SAFETY: the target only prints.
    unsafe { mp_proc::enable_fork() };
    print!("parent-before ");
    for m in StartMethod::ALL {
        let p = Process::new(say, format!("child says {m}")).start_method(m);
        p.start().unwrap();
        p.join().unwrap();
    }
    println!("parent-after");
}

#[test]
fn child_output_reaches_parent_once() {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .args([
            "--exact",
            "output_role",
            "--include-ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROLE, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.matches("parent-before").count(), 1, "{stdout}");
    assert_eq!(stdout.matches("parent-after").count(), 1, "{stdout}");
    assert_eq!(stdout.matches("partial-from-child").count(), 3, "{stdout}");
    for m in StartMethod::ALL {
        assert_eq!(
            stdout.matches(&format!("child says {m}\n")).count(),
            1,
            "{m}: {stdout}"
        );
    }
}
