//! Password hashes: Argon2id (RFC 9106) in the PHC string format, salted per account; and app
//! passwords, which the server makes with 120 random bits and so keeps as plain SHA-256 (a slow
//! hash protects guessable passwords only).

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

use crate::StoreError;

/// Hashes `password` with Argon2id and a fresh 16-byte salt from OpenSSL's CSPRNG.
pub fn hash(password: &str) -> Result<String, StoreError> {
    if password.is_empty() {
        return Err(StoreError::Invalid("the password is empty".into()));
    }
    let mut salt = [0u8; 16];
    openssl::rand::rand_bytes(&mut salt)
        .map_err(|e| StoreError::Backend(format!("random salt: {e}")))?;
    let salt =
        SaltString::encode_b64(&salt).map_err(|e| StoreError::Backend(format!("salt: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| StoreError::Backend(format!("password hash: {e}")))
}

/// Whether `password` matches `stored` (a PHC string). A malformed hash never matches.
pub fn verify(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Spends the time of one verification, so that unknown addresses answer as slowly as known
/// ones (no account enumeration by timing).
pub fn verify_dummy(password: &str) {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let h = DUMMY.get_or_init(|| hash("kurier-dummy-password").unwrap_or_default());
    let _ = verify(password, h);
}

/// The account of `row` (stored hash, account) if the password matches and it is enabled.
pub fn check_account(
    password: &str,
    row: Option<(String, crate::Account)>,
) -> Option<crate::Account> {
    match row {
        Some((hash, account)) => (verify(password, &hash) && account.enabled).then_some(account),
        None => {
            verify_dummy(password);
            None
        }
    }
}

/// Argon2 verifications running at once: one per core. More would only make each wait longer
/// for a CPU, while tokio's blocking pool (and with it the store's SQLite calls) fills up.
fn verifiers() -> &'static tokio::sync::Semaphore {
    static POOL: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        tokio::sync::Semaphore::new(cores)
    })
}

/// `check_account` on the bounded verifier pool, holding no lock of the store: the caller
/// fetched `row` and released the database before this (issue 16: 300 concurrent logins
/// stalled SMTP deliveries while Argon2 ran under SQLite's connection mutex).
pub async fn check_account_off_thread(
    password: String,
    row: Option<(String, crate::Account)>,
) -> Result<Option<crate::Account>, StoreError> {
    let _permit = verifiers()
        .acquire()
        .await
        .map_err(|e| StoreError::Backend(format!("password verifier pool: {e}")))?;
    tokio::task::spawn_blocking(move || check_account(&password, row))
        .await
        .map_err(|e| StoreError::Backend(format!("password verification failed: {e}")))
}

/// How the store keeps an app password: SHA-256, hex.
pub fn app_secret(password: &str) -> String {
    openssl::sha::sha256(password.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A new app password: 24 letters from an unambiguous alphabet in four groups
/// (`abcd-efgh-…`), about 120 bits.
pub fn new_app_password() -> Result<String, StoreError> {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    let mut raw = [0u8; 24];
    openssl::rand::rand_bytes(&mut raw)
        .map_err(|e| StoreError::Backend(format!("no random numbers: {e}")))?;
    let letters: Vec<char> = raw
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect();
    Ok(letters
        .chunks(6)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn hash_and_verify() {
        let h = super::hash("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(super::verify("correct horse", &h));
        assert!(!super::verify("wrong", &h));
        assert!(!super::verify("correct horse", "not a hash"));
        assert_ne!(h, super::hash("correct horse").unwrap(), "salted");
        assert!(super::hash("").is_err());
    }

    #[test]
    fn app_passwords_are_long_random_and_kept_as_sha256() {
        let a = super::new_app_password().unwrap();
        assert_eq!(a.len(), 27);
        assert_eq!(a.split('-').count(), 4);
        assert_ne!(a, super::new_app_password().unwrap());
        assert_eq!(
            super::app_secret("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
