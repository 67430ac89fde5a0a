//! Passwords of the status page's users: argon2id hashes in PHC form. The
//! config check, `visiond passwd` and the page's gate share these, so none
//! of them depends on another.

use argon2::password_hash::{PasswordHash, PasswordVerifier, SaltString};
use argon2::{Argon2, PasswordHasher};

/// Why a configured hash cannot be used, if it cannot.
pub fn hash_problem(phc: &str) -> Option<String> {
    match PasswordHash::new(phc) {
        Err(e) => Some(format!(
            "not a password hash ({e}): make one with `visiond passwd`"
        )),
        Ok(h) if !h.algorithm.as_str().starts_with("argon2") => Some(format!(
            "{} is not an argon2 hash: make one with `visiond passwd`",
            h.algorithm
        )),
        Ok(_) => None,
    }
}

/// `visiond passwd`: an argon2id hash (the crate's defaults, OWASP's
/// recommendation) of `password` with a fresh random salt.
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt: [u8; 16] = rand::random();
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Whether `password` matches the hash `phc` (false for a malformed hash).
pub fn verify(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_makes_an_argon2id_hash_that_verifies_and_check_takes() {
        let h = hash_password("correct horse").expect("hash");
        assert!(h.starts_with("$argon2id$v=19$"), "{h}");
        assert_eq!(hash_problem(&h), None);
        assert!(verify("correct horse", &h));
        assert!(!verify("correct horsE", &h));
        assert!(!verify("correct horse", "hunter2"));
        assert_ne!(h, hash_password("correct horse").expect("hash"), "salted");
        assert!(hash_problem("hunter2").is_some());
        let scrypt = "$scrypt$ln=16,r=8,p=1$aM15713r3Xsvxbi31lqr1Q$nFNh2CVHVjNldFVKDHDlm4CbdRSCdEBsjjJxD+iCs5E";
        assert!(hash_problem(scrypt).is_some(), "{scrypt}");
    }
}
