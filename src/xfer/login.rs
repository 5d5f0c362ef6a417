//! The `login` card (reference section 5.3, src/login.c and src/xfer.c
//! check_login): the nonce is the SHA1 of every byte after the card's line,
//! so each message signs its own content; the signature is the SHA1 of the
//! nonce followed by the user's shared secret, SHA1("PROJECTCODE/LOGIN/PW").
//! Looking users up and granting capabilities is the server's business.
//!
//! Also the names of the environment variables that carry a hub login from
//! herd to its children: a secret in argv is readable by every local user
//! (`/proc/PID/cmdline`), the environment only by the process's owner.

use sha1::{Digest, Sha1};

use super::card::Card;
use super::error::LoginError;

/// Lowercase SHA1 hex of `data`.
pub fn sha1_hex(data: &[u8]) -> String {
    hex::encode(Sha1::digest(data))
}

/// The nonce of a login card: SHA1 hex of everything after its line.
pub fn nonce(after_login: &[u8]) -> String {
    sha1_hex(after_login)
}

/// Whether `s` is 40 hex digits, the form of a stored shared secret.
pub fn is_secret(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Fossil's shared secret for a cleartext password.
pub fn shared_secret(project_code: &str, user: &str, password: &str) -> String {
    sha1_hex(format!("{project_code}/{user}/{password}").as_bytes())
}

fn signature(nonce: &str, secret: &str) -> String {
    sha1_hex(format!("{nonce}{secret}").as_bytes())
}

/// Builds the login card that goes in front of `rest`, the rest of the
/// message exactly as it will be sent. A password that is already 40 hex is
/// used as the secret itself, as Fossil's client does.
pub fn build_login(user: &str, password: &str, project_code: &str, rest: &[u8]) -> Card {
    let nonce = nonce(rest);
    let secret = if is_secret(password) {
        password.to_ascii_lowercase()
    } else {
        shared_secret(project_code, user, password)
    };
    Card::Login {
        user: user.to_string(),
        signature: signature(&nonce, &secret),
        nonce,
    }
}

/// Whether a login is one of the capability-less identities whose signature
/// Fossil never checks.
pub fn is_anonymous(user: &str) -> bool {
    user == "anonymous" || user == "nobody"
}

/// Checks a login card: the nonce against `after_login`, then, unless the
/// user is anonymous or nobody, the signature against `stored_pw` (the
/// `user.pw` column: a 40-hex secret or a cleartext password; `None` when the
/// user may not log in). Cleartext passwords accept both the signature over
/// the derived secret and the one over the cleartext itself.
pub fn verify_login(
    user: &str,
    nonce_on_card: &str,
    signature_on_card: &str,
    after_login: &[u8],
    project_code: &str,
    stored_pw: Option<&str>,
) -> Result<(), LoginError> {
    if !nonce_on_card.eq_ignore_ascii_case(&nonce(after_login)) {
        return Err(LoginError::Nonce {
            user: user.to_string(),
        });
    }
    if is_anonymous(user) {
        return Ok(());
    }
    let Some(pw) = stored_pw.filter(|pw| !pw.is_empty()) else {
        return Err(LoginError::UnknownUser {
            user: user.to_string(),
        });
    };
    let sig = signature_on_card.to_ascii_lowercase();
    let ok = if is_secret(pw) {
        same(&sig, &signature(nonce_on_card, &pw.to_ascii_lowercase()))
    } else {
        same(&sig, &signature(nonce_on_card, pw))
            || same(
                &sig,
                &signature(nonce_on_card, &shared_secret(project_code, user, pw)),
            )
    };
    if ok {
        Ok(())
    } else {
        Err(LoginError::Signature {
            user: user.to_string(),
        })
    }
}

/// Compares two signatures in time independent of where they differ (as
/// Fossil's blob_constant_time_cmp), so response times leak nothing about
/// how much of a forged signature was right.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const PC: &str = "d0119d97d5ec4de58b41fc12bd6d374d9cbd9f7d";

    fn card_parts(card: &Card) -> (String, String) {
        match card {
            Card::Login {
                nonce, signature, ..
            } => (nonce.clone(), signature.clone()),
            other => panic!("not a login card: {other:?}"),
        }
    }

    #[test]
    fn cleartext_and_secret_passwords_verify() {
        let rest = b"pragma client-version 22100\npush a b\n# 1234\n";
        let (nonce, sig) = card_parts(&build_login("alice", "pw", PC, rest));
        assert_eq!(nonce, sha1_hex(rest));
        verify_login("alice", &nonce, &sig, rest, PC, Some("pw")).unwrap();
        let secret = shared_secret(PC, "alice", "pw");
        verify_login("alice", &nonce, &sig, rest, PC, Some(&secret)).unwrap();
        // A client holding the secret signs the same way.
        let (n2, s2) = card_parts(&build_login("alice", &secret, PC, rest));
        assert_eq!((n2, s2), (nonce.clone(), sig.clone()));
        // Fossil also accepts SHA1(nonce + cleartext) for a cleartext pw.
        let raw = sha1_hex(format!("{nonce}pw").as_bytes());
        verify_login("alice", &nonce, &raw, rest, PC, Some("pw")).unwrap();
    }

    #[test]
    fn wrong_nonce_signature_or_user_fail() {
        let rest = b"pull a b\n# 99\n";
        let (nonce, sig) = card_parts(&build_login("alice", "pw", PC, rest));
        assert_eq!(
            verify_login("alice", &nonce, &sig, b"pull a b\n# 98\n", PC, Some("pw")),
            Err(LoginError::Nonce {
                user: "alice".into()
            })
        );
        assert_eq!(
            verify_login("alice", &nonce, &sig, rest, PC, Some("other")),
            Err(LoginError::Signature {
                user: "alice".into()
            })
        );
        assert_eq!(
            verify_login("alice", &nonce, &sig, rest, PC, Some("")),
            Err(LoginError::UnknownUser {
                user: "alice".into()
            })
        );
        // anonymous skips the signature but not the nonce.
        verify_login("anonymous", &nonce, "junk", rest, PC, None).unwrap();
        assert!(same("ab", "ab") && !same("ab", "ac") && !same("ab", "abc"));
        assert!(verify_login("nobody", "junk", "junk", rest, PC, None).is_err());
    }
}
