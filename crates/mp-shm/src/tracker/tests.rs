use super::*;

#[test]
fn program_variable_round_trips() {
    let p = Program {
        root_pid: 4242,
        root_start: 987_654,
        nonce: 0x0123_4567_89ab_cdef_0011_2233_4455_6677,
        exe: (66, 1_234_567),
    };
    assert_eq!(Program::decode(&p.encode()), Some(p.clone()));
    assert!(p.address().starts_with("mp-shm-tracker-v1-"));
    assert!(p.address().contains("-4242-"));
    // another protocol version, garbage, a missing or extra field
    assert_eq!(Program::decode(&p.encode().replacen('1', "2", 1)), None);
    assert_eq!(Program::decode("1:x:2:3:4:5"), None);
    assert_eq!(Program::decode("1:1:2:3:4"), None);
    assert_eq!(Program::decode(&format!("{}:9", p.encode())), None);
    assert_eq!(Program::decode("1:0:2:3:4:5"), None);
}

#[test]
fn this_process_belongs_to_a_program() {
    // The hook ran before the test harness's `main`.
    assert!(HOOK_RAN.load(Ordering::SeqCst));
    let p = program().expect("the hook sets the program variable");
    assert!(may_start_tracker(&p));
}

#[test]
fn messages_parse_and_reject_bad_names() {
    let m = message(MSG_REGISTER, "/abc", (1, 2));
    assert_eq!(server::parse(&m), Some((MSG_REGISTER, &b"abc"[..], (1, 2))));
    let m = message(MSG_UNREGISTER, "x", (u64::MAX, 0));
    assert_eq!(
        server::parse(&m),
        Some((MSG_UNREGISTER, &b"x"[..], (u64::MAX, 0)))
    );
    for bad in ["", "a/b", "..", "."] {
        assert_eq!(
            server::parse(&message(MSG_REGISTER, bad, (1, 2))),
            None,
            "{bad:?}"
        );
    }
    assert_eq!(
        server::parse(&message(MSG_REGISTER, &"n".repeat(251), (1, 2))),
        None
    );
    assert!(server::parse(&message(MSG_REGISTER, &"n".repeat(250), (1, 2))).is_some());
    assert_eq!(server::parse(&m[..10]), None);
}

#[test]
fn start_time_of_self_is_known() {
    assert!(start_time(std::process::id()).is_some_and(|t| t > 0));
    assert!(exe_id().is_some());
}
