//! Merchant secrets at rest: KOMOJU secret keys and webhook secret tokens are sealed
//! with AES-256-GCM before they reach the database, and masked whenever shown.
//!
//! The key is derived from `APP_SECRET` with HKDF-SHA256 (info
//! `cafe24-komoju/merchant-secrets/v1`). The associated data binds a ciphertext to its
//! mall and column (`{mall_id}\x1f{column}`), so a sealed value copied to another
//! merchant or another column does not open. A fresh random 96-bit nonce is drawn for
//! every seal. Stored form: `v1:` + base64(nonce ‖ ciphertext ‖ tag).
//!
//! Plaintext secrets are held in [`SecretString`], whose `Debug` prints a placeholder;
//! this module never logs.

use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload};
use aes_gcm::{AeadCore, Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hkdf::Hkdf;
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

const PREFIX: &str = "v1:";

/// Why a sealed secret did not open. Carries no secret material.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error("sealed secret is malformed")]
    Malformed,
    #[error(
        "sealed secret does not open with this key and mall (tampered, or APP_SECRET changed)"
    )]
    Unopenable,
    /// AES-GCM refused to encrypt (only possible for inputs of 64 GiB and more): nothing
    /// is stored rather than a nonce without its ciphertext.
    #[error("secret could not be sealed")]
    SealFailed,
}

/// A 32-byte key for one purpose, derived from `APP_SECRET` with HKDF-SHA256 (salt
/// `cafe24-komoju`, `info` naming the purpose and its version): the sealing key, the
/// order keys' and the operator tokens' each have their own, so none passes for another.
pub fn derive_key(app_secret: &SecretString, info: &str) -> [u8; 32] {
    let mut key = [0u8; 32];
    let hk = Hkdf::<Sha256>::new(
        Some(b"cafe24-komoju"),
        app_secret.expose_secret().as_bytes(),
    );
    if hk.expand(info.as_bytes(), &mut key).is_err() {
        unreachable!("HKDF-SHA256 can expand to 32 bytes");
    }
    key
}

/// Seals and opens merchant secrets with the key derived from `APP_SECRET`.
#[derive(Clone)]
pub struct SecretBox {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

impl SecretBox {
    /// Derives the sealing key from the application secret.
    pub fn new(app_secret: &SecretString) -> SecretBox {
        let key = derive_key(app_secret, "cafe24-komoju/merchant-secrets/v1");
        SecretBox {
            cipher: Aes256Gcm::new(&key.into()),
        }
    }

    /// Seals `plaintext` for `mall_id`'s `column`; returns the stored form
    /// (`PREFIX` + base64(nonce · ciphertext · tag)). Errors: [`SecretError::SealFailed`].
    pub fn seal(
        &self,
        mall_id: &str,
        column: &str,
        plaintext: &SecretString,
    ) -> Result<String, SecretError> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let aad = aad(mall_id, column);
        let sealed = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext.expose_secret().as_bytes(),
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| SecretError::SealFailed)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(format!("{PREFIX}{}", STANDARD.encode(out)))
    }

    /// Opens a value sealed by [`SecretBox::seal`] for the same mall and column.
    pub fn open(
        &self,
        mall_id: &str,
        column: &str,
        stored: &str,
    ) -> Result<SecretString, SecretError> {
        let b64 = stored.strip_prefix(PREFIX).ok_or(SecretError::Malformed)?;
        let raw = STANDARD.decode(b64).map_err(|_| SecretError::Malformed)?;
        if raw.len() < 12 + 16 {
            return Err(SecretError::Malformed);
        }
        let (nonce, ct) = raw.split_at(12);
        let aad = aad(mall_id, column);
        let plain = self
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| SecretError::Unopenable)?;
        String::from_utf8(plain)
            .map(SecretString::from)
            .map_err(|_| SecretError::Malformed)
    }
}

fn aad(mall_id: &str, column: &str) -> String {
    format!("{mall_id}\u{1f}{column}")
}

/// A random token of `bytes` random bytes from the OS, base64url without padding
/// (OAuth `state`, session ids, `public_ref`s).
pub fn random_token(bytes: usize) -> String {
    use aes_gcm::aead::rand_core::RngCore;
    let mut buf = vec![0u8; bytes];
    OsRng.fill_bytes(&mut buf);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

/// SHA-256 of `value`, hex: how a `state` nonce is stored.
pub fn sha256_hex(value: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(value.as_bytes()))
}

/// Masks a secret for display: a well-known prefix (`sk_test_`, `sk_live_`, `sk_`,
/// `whsec_`) and the last four characters of secrets long enough to spare them
/// (`sk_test_…cdef`); `****` otherwise. Nothing else of the secret is shown.
pub fn mask(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    if chars.len() < 16 {
        return "****".to_owned();
    }
    let prefix = ["sk_test_", "sk_live_", "sk_", "whsec_"]
        .into_iter()
        .find(|p| secret.starts_with(p))
        .unwrap_or("");
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{prefix}…{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sbox(secret: &str) -> SecretBox {
        SecretBox::new(&SecretString::from(secret.to_owned()))
    }

    #[test]
    fn seals_and_opens_for_the_same_mall_and_column() {
        let b = sbox("an-app-secret-of-at-least-32-bytes!!");
        let sealed = b
            .seal(
                "demomall",
                "komoju_secret_key",
                &SecretString::from("sk_test_abc".to_owned()),
            )
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(sealed.starts_with("v1:"));
        assert!(!sealed.contains("sk_test_abc"));
        let opened = b
            .open("demomall", "komoju_secret_key", &sealed)
            .map(|s| s.expose_secret().to_owned());
        assert_eq!(opened.as_deref(), Ok("sk_test_abc"));
    }

    #[test]
    fn another_mall_or_column_or_key_does_not_open() {
        let b = sbox("an-app-secret-of-at-least-32-bytes!!");
        let sealed = b
            .seal(
                "demomall",
                "komoju_secret_key",
                &SecretString::from("sk_test_abc".to_owned()),
            )
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            b.open("othermall", "komoju_secret_key", &sealed).err(),
            Some(SecretError::Unopenable)
        );
        assert_eq!(
            b.open("demomall", "komoju_webhook_secret", &sealed).err(),
            Some(SecretError::Unopenable)
        );
        let other = sbox("another-app-secret-of-at-least-32-bytes");
        assert_eq!(
            other.open("demomall", "komoju_secret_key", &sealed).err(),
            Some(SecretError::Unopenable)
        );
    }

    #[test]
    fn tampered_ciphertext_fails() {
        let b = sbox("an-app-secret-of-at-least-32-bytes!!");
        let sealed = b
            .seal(
                "demomall",
                "c",
                &SecretString::from("sk_test_abc".to_owned()),
            )
            .unwrap_or_else(|e| panic!("{e}"));
        let mut raw = STANDARD.decode(&sealed[3..]).unwrap_or_default();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        let tampered = format!("v1:{}", STANDARD.encode(raw));
        assert_eq!(
            b.open("demomall", "c", &tampered).err(),
            Some(SecretError::Unopenable)
        );
        assert_eq!(
            b.open("demomall", "c", "v1:!!").err(),
            Some(SecretError::Malformed)
        );
        assert_eq!(
            b.open("demomall", "c", "sk_test_abc").err(),
            Some(SecretError::Malformed)
        );
    }

    #[test]
    fn nonces_are_fresh() {
        let b = sbox("an-app-secret-of-at-least-32-bytes!!");
        let s = SecretString::from("same".to_owned());
        let seen: std::collections::HashSet<String> = (0..1000)
            .map(|_| b.seal("m", "c", &s).unwrap_or_else(|e| panic!("{e}")))
            .collect();
        assert_eq!(seen.len(), 1000);
    }

    #[test]
    fn masks_keep_only_a_prefix_and_the_last_four() {
        assert_eq!(mask("sk_test_1234567890abcdef"), "sk_test_…cdef");
        assert_eq!(mask("whsec_0123456789abcdef"), "whsec_…cdef");
        assert_eq!(mask("whsec_sandbox_demomall"), "whsec_…mall");
        assert_eq!(mask("abc_defghijklmnopqrs"), "…pqrs");
        assert_eq!(mask("short"), "****");
        assert!(!mask("sk_live_supersecretvalue99").contains("supersecret"));
    }
}
