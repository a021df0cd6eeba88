//! Twin of the "PIPE" program of seed 000 and of the Pipe program of seed
//! 001 (GeeksforGeeks), the same program: a sender process sends messages
//! through one end of a `Pipe`, up to `"END"`; a receiver process prints
//! what arrives at the other end until `"END"`.
//!
//! The two processes run at the same time, so how the lines interleave
//! depends on scheduling; each process prints its own lines in order. The
//! tutorial shows:
//!
//! ```text
//! Sent the message: hello
//! Sent the message: hey
//! Sent the message: hru?
//! Received the message: hello
//! Sent the message: END
//! Received the message: hey
//! Received the message: hru?
//! ```

use multiprocessing as mp;

/// Sends messages to the other end of the pipe.
fn sender((conn, msgs): (mp::PipeEnd, Vec<String>)) {
    for msg in msgs {
        conn.send(&msg).expect("send");
        println!("Sent the message: {msg}");
    }
    conn.close();
}

/// Prints the messages received from the other end of the pipe.
fn receiver(conn: mp::PipeEnd) {
    loop {
        let msg: String = conn.recv().expect("recv");
        if msg == "END" {
            break;
        }
        println!("Received the message: {msg}");
    }
}

fn main() -> Result<(), mp::Error> {
    mp::init();
    // messages to be sent
    let msgs: Vec<String> = ["hello", "hey", "hru?", "END"].map(String::from).to_vec();

    // creating a pipe
    let (parent_conn, child_conn) = mp::pipe()?;

    // creating new processes
    let p1 = mp::Process::new(sender, (parent_conn, msgs));
    let p2 = mp::Process::new(receiver, child_conn);

    // running processes
    p1.start()?;
    p2.start()?;

    // wait until processes finish
    p1.join()?;
    p2.join()?;
    Ok(())
}
