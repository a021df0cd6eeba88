//! The authentication handshake, as CPython's
//! `Lib/multiprocessing/connection.py` runs it.

use std::io;
use std::time::Duration;

use hmac::{Hmac, Mac};

use super::error::{ConnectionError, Result};
use super::messages::Connection;

// ---------------------------------------------------------------------------
// The handshake, as CPython's Lib/multiprocessing/connection.py.

const CHALLENGE: &[u8] = b"#CHALLENGE#";
const WELCOME: &[u8] = b"#WELCOME#";
const FAILURE: &[u8] = b"#FAILURE#";
/// Random bytes in a challenge sent from here (CPython 3.12's length).
const MESSAGE_LENGTH: usize = 40;
/// The challenge length of CPython 3.11 and older (no digest prefix).
const MD5ONLY_MESSAGE_LENGTH: usize = 20;
/// The bare HMAC-MD5 answer of CPython 3.11 and older.
const MD5_DIGEST_LEN: usize = 16;
/// The longest digest name CPython allows (`sha3_384`).
const MAX_DIGEST_LEN: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Digest {
    Md5,
    Sha256,
    Sha384,
}

impl Digest {
    fn name(self) -> &'static str {
        match self {
            Digest::Md5 => "md5",
            Digest::Sha256 => "sha256",
            Digest::Sha384 => "sha384",
        }
    }

    fn hmac(self, key: &[u8], message: &[u8]) -> Vec<u8> {
        fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], message: &[u8]) -> Vec<u8> {
            // HMAC takes keys of any length: this cannot fail.
            let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(key)
                .expect("HMAC accepts every key length");
            mac.update(message);
            mac.finalize().into_bytes().to_vec()
        }
        match self {
            Digest::Md5 => run::<Hmac<md5::Md5>>(key, message),
            Digest::Sha256 => run::<Hmac<sha2::Sha256>>(key, message),
            Digest::Sha384 => run::<Hmac<sha2::Sha384>>(key, message),
        }
    }
}

fn auth_error(msg: String) -> ConnectionError {
    ConnectionError::Authentication(msg)
}

/// CPython's `_get_digest_name_and_payload`: `None` for the legacy
/// unprefixed form (16 or 20 bytes), else the `{digest}` prefix.
fn digest_and_payload(message: &[u8]) -> Result<(Option<Digest>, &[u8])> {
    if message.len() == MD5ONLY_MESSAGE_LENGTH || message.len() == MD5_DIGEST_LEN {
        return Ok((None, message));
    }
    if message.first() == Some(&b'{') {
        let end = message.len().min(MAX_DIGEST_LEN + 2);
        if let Some(curly) = message[1..end].iter().position(|&b| b == b'}') {
            let curly = curly + 1;
            let digest = match &message[1..curly] {
                b"md5" => Some(Digest::Md5),
                b"sha256" => Some(Digest::Sha256),
                b"sha384" => Some(Digest::Sha384),
                b"sha3_256" | b"sha3_384" => {
                    return Err(auth_error(format!(
                        "digest {} is not supported here (md5, sha256, sha384 are)",
                        String::from_utf8_lossy(&message[1..curly])
                    )));
                }
                _ => None,
            };
            if let Some(d) = digest {
                return Ok((Some(d), &message[curly + 1..]));
            }
        }
    }
    Err(auth_error(
        "unsupported message length, missing digest prefix, or unsupported digest".into(),
    ))
}

/// CPython's `_create_response`.
fn create_response(authkey: &[u8], message: &[u8]) -> Result<Vec<u8>> {
    match digest_and_payload(message)?.0 {
        None => Ok(Digest::Md5.hmac(authkey, message)),
        Some(d) => {
            let mut out = format!("{{{}}}", d.name()).into_bytes();
            out.extend_from_slice(&d.hmac(authkey, message));
            Ok(out)
        }
    }
}

/// CPython's `_verify_challenge`, in constant time.
fn verify_challenge(authkey: &[u8], message: &[u8], response: &[u8]) -> Result<()> {
    let (digest, mac) = digest_and_payload(response)?;
    let digest = digest.unwrap_or(Digest::Md5);
    let expected = digest.hmac(authkey, message);
    if expected.len() != mac.len() {
        return Err(auth_error(format!(
            "expected {} of length {}, got {}",
            digest.name(),
            expected.len(),
            mac.len()
        )));
    }
    let diff = expected
        .iter()
        .zip(mac)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    if diff != 0 {
        return Err(auth_error("digest received was wrong".into()));
    }
    Ok(())
}

impl Connection {
    /// CPython's `deliver_challenge`: sends a `{sha256}` challenge and
    /// checks the answer.
    fn deliver_challenge(&self, authkey: &[u8]) -> Result<()> {
        let mut message = Vec::with_capacity(8 + MESSAGE_LENGTH);
        message.extend_from_slice(b"{sha256}");
        let mut random = [0u8; MESSAGE_LENGTH];
        getrandom::fill(&mut random).map_err(|e| io::Error::other(e.to_string()))?;
        message.extend_from_slice(&random);
        let mut challenge = CHALLENGE.to_vec();
        challenge.extend_from_slice(&message);
        self.send_bytes(&challenge)?;
        let response = self.recv_bytes_max(256)?;
        match verify_challenge(authkey, &message, &response) {
            Ok(()) => self.send_bytes(WELCOME),
            Err(e) => {
                let _ = self.send_bytes(FAILURE);
                Err(e)
            }
        }
    }

    /// CPython's `answer_challenge`: answers in the form the challenge
    /// used.
    fn answer_challenge(&self, authkey: &[u8]) -> Result<()> {
        let message = self.recv_bytes_max(256)?;
        let Some(message) = message.strip_prefix(CHALLENGE) else {
            return Err(auth_error(format!(
                "protocol error, expected a challenge, got {:?}",
                String::from_utf8_lossy(&message)
            )));
        };
        if message.len() < MD5ONLY_MESSAGE_LENGTH {
            return Err(auth_error(format!(
                "challenge too short: {} bytes",
                message.len()
            )));
        }
        let digest = create_response(authkey, message)?;
        self.send_bytes(&digest)?;
        let response = self.recv_bytes_max(256)?;
        if response != WELCOME {
            return Err(auth_error("digest sent was rejected".into()));
        }
        Ok(())
    }

    /// Runs the handshake within `timeout`; `listener_side` delivers the
    /// first challenge.
    pub(super) fn authenticate(
        &self,
        authkey: &[u8],
        listener_side: bool,
        timeout: Option<Duration>,
    ) -> Result<()> {
        self.stream.set_read_timeout(timeout)?;
        self.stream.set_write_timeout(timeout)?;
        let r = if listener_side {
            self.deliver_challenge(authkey)
                .and_then(|()| self.answer_challenge(authkey))
        } else {
            self.answer_challenge(authkey)
                .and_then(|()| self.deliver_challenge(authkey))
        };
        let r = r.map_err(|e| match e {
            ConnectionError::Io(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                auth_error(format!(
                    "the peer did not finish the handshake within {timeout:?}"
                ))
            }
            ConnectionError::Eof => {
                auth_error("the peer closed the connection during the handshake".into())
            }
            e => e,
        });
        r?;
        self.stream.set_read_timeout(None)?;
        self.stream.set_write_timeout(None)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_parsing_follows_cpython() {
        assert_eq!(digest_and_payload(&[7; 20]).unwrap().0, None);
        assert_eq!(digest_and_payload(&[7; 16]).unwrap().0, None);
        let (d, p) =
            digest_and_payload(b"{sha256}0123456789012345678901234567890123456789").unwrap();
        assert_eq!(d, Some(Digest::Sha256));
        assert_eq!(p.len(), 40);
        assert!(digest_and_payload(b"{sha3_256}0123456789012345678901").is_err());
        assert!(digest_and_payload(b"{whirlpool}0123456789012345678901").is_err());
        assert!(digest_and_payload(&[7; 21]).is_err());
    }

    #[test]
    fn responses_take_the_challenge_form() {
        let legacy = [9u8; 20];
        assert_eq!(create_response(b"k", &legacy).unwrap().len(), 16);
        verify_challenge(b"k", &legacy, &create_response(b"k", &legacy).unwrap()).unwrap();
        let modern = b"{sha256}0123456789012345678901234567890123456789";
        let r = create_response(b"k", modern).unwrap();
        assert!(r.starts_with(b"{sha256}"));
        assert_eq!(r.len(), 8 + 32);
        verify_challenge(b"k", modern, &r).unwrap();
        // A legacy client's bare HMAC-MD5 of the prefixed message is accepted.
        verify_challenge(b"k", modern, &Digest::Md5.hmac(b"k", modern)).unwrap();
        assert!(verify_challenge(b"other", modern, &r).is_err());
        // Known answer (Python: hmac.new(b"key", b"The quick brown fox jumps over the lazy dog", "md5")).
        assert_eq!(
            Digest::Md5.hmac(b"key", b"The quick brown fox jumps over the lazy dog"),
            [
                0x80, 0x07, 0x07, 0x13, 0x46, 0x3e, 0x77, 0x49, 0xb9, 0x0c, 0x2d, 0xc2, 0x49, 0x11,
                0xe2, 0x75
            ]
        );
    }
}
