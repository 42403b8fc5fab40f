//! Keys of signed checkpoints: the Ed25519 signing key the operator holds (PKCS#8 PEM, as
//! `sovra audit keygen`, `openssl genpkey -algorithm ed25519` and Helm's
//! `genPrivateKey "ed25519"` write it), its public key (SPKI PEM), and the C2SP signed-note
//! verifier key that witnesses and `sovra audit verify --key` take:
//!
//! ```text
//! <key name>+<key ID, 8 hex digits>+<base64(0x01 || 32-byte public key)>
//! ```
//!
//! The key ID is the first four bytes of SHA-256(key name || 0x0A || 0x01 || public key), so
//! the same key under another name is another verifier key. Sovra names its key after the
//! checkpoint origin (tlog-checkpoint: the key name SHOULD match the origin line).
//!
//! All cryptography is `ed25519-dalek`'s (signatures checked with `verify_strict`) and the
//! `pkcs8`/`spki` crates' (PEM and DER); this file only moves bytes between formats.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signature, Signer as _, VerifyingKey};
use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;
use zeroize::Zeroizing;

/// The signed-note signature type of Ed25519.
pub const ED25519: u8 = 0x01;

/// The operator's private key. Its `Debug` never shows the key.
#[derive(Clone)]
pub struct SigningKey(ed25519_dalek::SigningKey);

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SigningKey")
            .field(&self.public_key().to_string())
            .finish()
    }
}

impl SigningKey {
    /// A new key from the operating system's random number generator.
    pub fn generate() -> Result<Self, String> {
        let mut seed = Zeroizing::new([0u8; 32]);
        getrandom::fill(seed.as_mut_slice())
            .map_err(|e| format!("no randomness from the operating system: {e}"))?;
        Ok(Self(ed25519_dalek::SigningKey::from_bytes(&seed)))
    }

    /// Reads the PKCS#8 PEM key file at `path`.
    pub fn read(path: &std::path::Path) -> Result<Self, crate::Error> {
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|source| {
            crate::Error::ReadFile {
                path: path.to_owned(),
                source,
            }
        })?);
        Self::from_pkcs8_pem(&text).map_err(|message| crate::Error::SigningKey {
            path: path.to_owned(),
            message,
        })
    }

    /// Reads a PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`) Ed25519 key.
    pub fn from_pkcs8_pem(text: &str) -> Result<Self, String> {
        ed25519_dalek::SigningKey::from_pkcs8_pem(text.trim())
            .map(Self)
            .map_err(|e| format!("not a PKCS#8 PEM Ed25519 private key: {e}"))
    }

    /// The key as PKCS#8 v1 PEM (the seed only, like OpenSSL and Go write it).
    pub fn to_pkcs8_pem(&self) -> Result<Zeroizing<String>, String> {
        let bytes = ed25519_dalek::pkcs8::KeypairBytes {
            secret_key: self.0.to_bytes(),
            public_key: None,
        };
        bytes
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| format!("could not encode the private key: {e}"))
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// The Ed25519 signature of `message`.
    pub(crate) fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.0.sign(message).to_bytes()
    }
}

/// An Ed25519 public key; displayed as SPKI PEM (`-----BEGIN PUBLIC KEY-----`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    pub fn from_pem(text: &str) -> Result<Self, String> {
        VerifyingKey::from_public_key_pem(text.trim())
            .map(Self)
            .map_err(|e| format!("not a PEM Ed25519 public key: {e}"))
    }

    /// The signed-note key ID of this key under `name`.
    pub fn key_id(&self, name: &str) -> u32 {
        key_id(name, &self.0)
    }

    /// This key under `name`, as a note verifier key.
    pub fn verifier(&self, name: &str) -> Result<VerifierKey, String> {
        check_key_name(name)?;
        Ok(VerifierKey {
            name: name.to_owned(),
            id: key_id(name, &self.0),
            key: self.0,
        })
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.to_public_key_pem(LineEnding::LF) {
            Ok(pem) => f.write_str(&pem),
            Err(_) => Err(fmt::Error),
        }
    }
}

/// A named public key, as C2SP signed notes identify signers: the name and key ID on a
/// signature line select the key, the key checks the signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifierKey {
    name: String,
    id: u32,
    key: VerifyingKey,
}

impl VerifierKey {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn key_id(&self) -> u32 {
        self.id
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.key)
    }

    /// Whether `signature` (64 bytes) is this key's signature of `message`, checked with
    /// `verify_strict` (no malleable or small-order-key signatures).
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        Signature::from_slice(signature)
            .is_ok_and(|sig| self.key.verify_strict(message, &sig).is_ok())
    }
}

impl fmt::Display for VerifierKey {
    /// `<name>+<hex key ID>+<base64(0x01 || public key)>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut typed = Vec::with_capacity(33);
        typed.push(ED25519);
        typed.extend_from_slice(self.key.as_bytes());
        write!(f, "{}+{:08x}+{}", self.name, self.id, BASE64.encode(typed))
    }
}

impl FromStr for VerifierKey {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        // The base64 key may itself contain `+`: only the first two separate.
        let mut parts = text.splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err("a verifier key is <name>+<hex key ID>+<base64 key>".to_owned());
        };
        check_key_name(name)?;
        if id.len() != 8 {
            return Err(format!("key ID {id:?} is not 8 hex digits"));
        }
        let id = u32::from_str_radix(id, 16).map_err(|_| format!("key ID {id:?} is not hex"))?;
        let typed = BASE64
            .decode(key)
            .map_err(|e| format!("the key is not base64: {e}"))?;
        let Some((&ED25519, bytes)) = typed.split_first() else {
            return Err("not an Ed25519 (type 0x01) verifier key".to_owned());
        };
        let bytes: &[u8; 32] = bytes
            .try_into()
            .map_err(|_| "an Ed25519 public key is 32 bytes".to_owned())?;
        let key = VerifyingKey::from_bytes(bytes)
            .map_err(|_| "not a valid Ed25519 public key".to_owned())?;
        if key_id(name, &key) != id {
            return Err(format!(
                "key ID {id:08x} does not belong to this name and key (it should be {:08x})",
                key_id(name, &key)
            ));
        }
        Ok(Self {
            name: name.to_owned(),
            id,
            key,
        })
    }
}

/// What `sovra audit verify --key` trusts: a verifier key (name and key), or a bare public key,
/// which is then taken under the name Sovra signs with, the checkpoint's origin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrustedKey {
    Verifier(VerifierKey),
    Public(PublicKey),
}

impl TrustedKey {
    /// A verifier key string or a PEM public key.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.contains("-----BEGIN") {
            return PublicKey::from_pem(text).map(Self::Public);
        }
        text.parse().map(Self::Verifier)
    }

    /// The verifier key for checkpoints of `origin`.
    pub fn for_origin(&self, origin: &str) -> Result<VerifierKey, String> {
        match self {
            Self::Verifier(key) => Ok(key.clone()),
            Self::Public(key) => key.verifier(origin),
        }
    }
}

impl fmt::Display for TrustedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Verifier(key) => write!(f, "{key}"),
            Self::Public(key) => {
                let bytes = BASE64.encode(key.0.as_bytes());
                write!(f, "public key {bytes}")
            }
        }
    }
}

/// SHA-256(name || 0x0A || 0x01 || key)[:4], big-endian.
fn key_id(name: &str, key: &VerifyingKey) -> u32 {
    let mut hasher = Sha256::new();
    hasher.update(name.as_bytes());
    hasher.update([b'\n', ED25519]);
    hasher.update(key.as_bytes());
    let digest = hasher.finalize();
    let mut id = [0u8; 4];
    id.copy_from_slice(digest.get(..4).unwrap_or(&[0; 4]));
    u32::from_be_bytes(id)
}

/// Key names (and so origins) are non-empty and contain no spaces, `+` or control characters.
pub fn check_key_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the key name is empty".to_owned());
    }
    if let Some(c) = name
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || *c == '+')
    {
        return Err(format!("the key name {name:?} contains {c:?}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8032 test 1 key and the verifier key the Go `note` package makes of it under a name.
    const RFC8032_SEED: [u8; 32] = [
        0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a, 0xf4, 0x92, 0xec, 0x2c,
        0xc4, 0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32, 0x69, 0x19, 0x70, 0x3b, 0xac, 0x03, 0x1c, 0xae,
        0x7f, 0x60,
    ];

    fn rfc_key() -> SigningKey {
        SigningKey(ed25519_dalek::SigningKey::from_bytes(&RFC8032_SEED))
    }

    #[test]
    fn a_generated_key_survives_pkcs8_pem_and_its_public_key_spki_pem() {
        let key = SigningKey::generate().unwrap();
        let pem = key.to_pkcs8_pem().unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{}", *pem);
        let again = SigningKey::from_pkcs8_pem(&pem).unwrap();
        assert_eq!(again.public_key(), key.public_key());
        let public = key.public_key().to_string();
        assert!(
            public.starts_with("-----BEGIN PUBLIC KEY-----\n"),
            "{public}"
        );
        assert_eq!(PublicKey::from_pem(&public).unwrap(), key.public_key());
    }

    #[test]
    fn an_openssl_pkcs8_key_is_read() {
        // `openssl genpkey -algorithm ed25519` for the RFC 8032 test 1 seed (Go and Helm's
        // genPrivateKey write the same v1 form).
        let pem = "-----BEGIN PRIVATE KEY-----\n\
                   MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n\
                   -----END PRIVATE KEY-----\n";
        let key = SigningKey::from_pkcs8_pem(pem).unwrap();
        assert_eq!(key.public_key(), rfc_key().public_key());
        assert_eq!(*key.to_pkcs8_pem().unwrap(), pem);
    }

    #[test]
    fn the_debug_form_of_a_signing_key_shows_only_its_public_key() {
        let debug = format!("{:?}", rfc_key());
        assert!(debug.contains("BEGIN PUBLIC KEY"), "{debug}");
        assert!(!debug.contains("PRIVATE"), "{debug}");
    }

    #[test]
    fn a_verifier_key_names_the_key_with_the_c2sp_key_id_and_round_trips() {
        // Computed independently: SHA-256("example.com/log\n\x01" || key)[:4] and
        // base64(0x01 || key) of the RFC 8032 test 1 public key.
        let verifier = rfc_key().public_key().verifier("example.com/log").unwrap();
        assert_eq!(verifier.key_id(), 0xcc71_4670);
        let text = verifier.to_string();
        assert_eq!(
            text,
            "example.com/log+cc714670+AddamAGCsQq31Uv+08lkBzoO4XLz2qYjJa8CGmj3B1Ea"
        );
        assert_eq!(text.parse::<VerifierKey>().unwrap(), verifier);
    }

    #[test]
    fn a_verifier_key_with_a_wrong_id_or_name_is_refused() {
        let text = rfc_key()
            .public_key()
            .verifier("example.com/log")
            .unwrap()
            .to_string();
        let renamed = text.replacen("example.com/log", "example.com/other", 1);
        assert!(
            renamed
                .parse::<VerifierKey>()
                .unwrap_err()
                .contains("does not belong")
        );
        assert!("a b+00000000+AQ==".parse::<VerifierKey>().is_err());
        assert!("name+zz+AQ==".parse::<VerifierKey>().is_err());
        assert!(rfc_key().public_key().verifier("with+plus").is_err());
    }

    #[test]
    fn signatures_verify_only_for_their_message_and_key() {
        let key = rfc_key();
        let verifier = key.public_key().verifier("example.com/log").unwrap();
        let sig = key.sign(b"text\n");
        assert!(verifier.verifies(b"text\n", &sig));
        assert!(!verifier.verifies(b"text!\n", &sig));
        assert!(!verifier.verifies(b"text\n", &sig[..63]));
        let other = SigningKey::generate()
            .unwrap()
            .public_key()
            .verifier("example.com/log")
            .unwrap();
        assert!(!other.verifies(b"text\n", &sig));
    }

    #[test]
    fn a_trusted_key_is_a_verifier_key_or_a_pem_public_key() {
        let key = rfc_key().public_key();
        let pem = TrustedKey::parse(&key.to_string()).unwrap();
        assert_eq!(pem, TrustedKey::Public(key));
        assert_eq!(
            pem.for_origin("sovra.dev/x").unwrap(),
            key.verifier("sovra.dev/x").unwrap()
        );
        let named = key.verifier("sovra.dev/y").unwrap();
        let parsed = TrustedKey::parse(&format!("{named}\n")).unwrap();
        assert_eq!(parsed.for_origin("sovra.dev/x").unwrap(), named);
        assert!(TrustedKey::parse("nonsense").is_err());
    }
}
