//! Signed checkpoints in the C2SP formats, so that transparency-log tooling and witnesses can
//! read them: a `tlog-checkpoint` body (origin, tree size, root hash) signed as a
//! `signed-note` with Ed25519:
//!
//! ```text
//! sovra.dev/5f0c.../sovra-0
//! 200
//! 3q2+7w...=
//!
//! — sovra.dev/5f0c.../sovra-0 Az3grl...
//! ```
//!
//! Sovra's trail is a hash chain, not a Merkle tree: the tree size is the number of lines the
//! checkpoint commits to (lines 1 to N) and the root hash is the chain head, the SHA-256 of
//! line N. Since every line holds the hash of the one before, the head commits to all N lines.
//! The signature line is `— <key name> base64(key ID || signature)`, the key name is the
//! origin, and the signed text is the body including its final newline. Pure: no IO.

use super::signing_key::{SigningKey, VerifierKey, check_key_name};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use std::fmt;

/// At most this many signature lines are read (the signed-note spec asks for at least 16).
const MAX_SIGNATURES: usize = 16;
/// A checkpoint longer than this is not read.
pub const MAX_NOTE_BYTES: usize = 16 * 1024;

/// What a checkpoint states: origin, tree size and root hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's identity, e.g. `sovra.dev/<kube-system UID>/<replica>`.
    pub origin: String,
    /// How many lines of the trail it commits to.
    pub tree_size: u64,
    /// SHA-256 of line `tree_size` (the chain head).
    pub root_hash: [u8; 32],
}

impl Checkpoint {
    /// A checkpoint of `tree_size` lines whose last line hashes to `head` (64 hex digits).
    pub fn new(origin: &str, tree_size: u64, head: &str) -> Result<Self, String> {
        check_key_name(origin).map_err(|e| format!("bad origin: {e}"))?;
        Ok(Self {
            origin: origin.to_owned(),
            tree_size,
            root_hash: hex_to_hash(head)?,
        })
    }

    /// The head as the trail writes hashes: 64 lowercase hex digits.
    pub fn head(&self) -> String {
        self.root_hash.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The note text: origin, tree size and base64 root hash, each on a line.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.tree_size,
            BASE64.encode(self.root_hash)
        )
    }

    /// Reads a note text (extension lines are allowed and ignored, as the spec says).
    pub fn parse_body(text: &str) -> Result<Self, String> {
        let lines: Vec<&str> = text
            .strip_suffix('\n')
            .ok_or("the checkpoint text does not end in a newline")?
            .split('\n')
            .collect();
        let [origin, size, hash, extensions @ ..] = lines.as_slice() else {
            return Err("a checkpoint has an origin, a tree size and a root hash line".to_owned());
        };
        if extensions.iter().any(|l| l.is_empty()) {
            return Err("a checkpoint has no empty lines".to_owned());
        }
        check_key_name(origin).map_err(|e| format!("bad origin: {e}"))?;
        let canonical = *size == "0" || (!size.starts_with('0') && !size.starts_with('+'));
        let tree_size: u64 = size
            .parse()
            .ok()
            .filter(|_| canonical)
            .ok_or_else(|| format!("tree size {size:?} is not a decimal number"))?;
        let root = BASE64
            .decode(hash)
            .map_err(|e| format!("root hash {hash:?} is not base64: {e}"))?;
        let root_hash: [u8; 32] = root
            .try_into()
            .map_err(|_| format!("root hash {hash:?} is not 32 bytes"))?;
        Ok(Self {
            origin: (*origin).to_owned(),
            tree_size,
            root_hash,
        })
    }

    /// Signs the body with `key` under the origin's name.
    pub fn sign(&self, key: &SigningKey) -> SignedCheckpoint {
        let text = self.body();
        let signature = key.sign(text.as_bytes()).to_vec();
        SignedCheckpoint {
            checkpoint: self.clone(),
            signatures: vec![NoteSignature {
                name: self.origin.clone(),
                key_id: key.public_key().key_id(&self.origin),
                signature,
            }],
            text,
        }
    }
}

impl fmt::Display for Checkpoint {
    /// `tree size 200, head 3f1c...` for reports.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tree size {}, head {}", self.tree_size, self.head())
    }
}

/// One signature line of a note.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteSignature {
    pub name: String,
    pub key_id: u32,
    /// The signature bytes after the key ID.
    pub signature: Vec<u8>,
}

/// A checkpoint with its note text (exactly as signed) and signature lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedCheckpoint {
    pub checkpoint: Checkpoint,
    /// The signed text: the body, ending in a newline.
    pub text: String,
    pub signatures: Vec<NoteSignature>,
}

impl SignedCheckpoint {
    /// Reads a signed note whose text is a checkpoint.
    pub fn parse(note: &str) -> Result<Self, String> {
        if note.len() > MAX_NOTE_BYTES {
            return Err(format!("longer than {MAX_NOTE_BYTES} bytes"));
        }
        if note.chars().any(|c| c.is_control() && c != '\n') {
            return Err("contains control characters other than newline".to_owned());
        }
        // The text ends at the last blank line; the signature lines follow it.
        let split = note
            .rfind("\n\n")
            .ok_or("not a signed note: no blank line before the signatures")?;
        let (text, rest) = note.split_at(split + 1);
        let lines = rest
            .strip_prefix('\n')
            .and_then(|l| l.strip_suffix('\n'))
            .ok_or("not a signed note: the signature lines must end in a newline")?;
        let mut signatures = Vec::new();
        for line in lines.split('\n') {
            if signatures.len() == MAX_SIGNATURES {
                return Err(format!("more than {MAX_SIGNATURES} signatures"));
            }
            signatures.push(parse_signature_line(line)?);
        }
        Ok(Self {
            checkpoint: Checkpoint::parse_body(text)?,
            text: text.to_owned(),
            signatures,
        })
    }

    /// Whether `key` signed this note: a signature line with its name and key ID must exist
    /// and verify. Signatures by other keys are ignored, as the spec requires.
    pub fn verify(&self, key: &VerifierKey) -> Result<(), String> {
        let mut from_key = self
            .signatures
            .iter()
            .filter(|s| s.name == key.name() && s.key_id == key.key_id())
            .peekable();
        if from_key.peek().is_none() {
            let names: Vec<String> = self
                .signatures
                .iter()
                .map(|s| format!("{}+{:08x}", s.name, s.key_id))
                .collect();
            return Err(format!(
                "not signed by {}+{:08x} (signed by {})",
                key.name(),
                key.key_id(),
                names.join(", ")
            ));
        }
        if from_key.all(|s| key.verifies(self.text.as_bytes(), &s.signature)) {
            Ok(())
        } else {
            Err(format!(
                "the signature of {}+{:08x} does not verify: the checkpoint was altered or forged",
                key.name(),
                key.key_id()
            ))
        }
    }
}

impl fmt::Display for SignedCheckpoint {
    /// The note as C2SP writes it: text, blank line, `— name base64(id || sig)` lines.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)?;
        f.write_str("\n")?;
        for s in &self.signatures {
            let mut blob = s.key_id.to_be_bytes().to_vec();
            blob.extend_from_slice(&s.signature);
            writeln!(f, "\u{2014} {} {}", s.name, BASE64.encode(blob))?;
        }
        Ok(())
    }
}

fn parse_signature_line(line: &str) -> Result<NoteSignature, String> {
    let rest = line
        .strip_prefix("\u{2014} ")
        .ok_or_else(|| format!("signature line {line:?} does not start with an em dash"))?;
    let (name, blob) = rest
        .split_once(' ')
        .ok_or_else(|| format!("signature line {line:?} has no signature"))?;
    check_key_name(name)?;
    let blob = BASE64
        .decode(blob)
        .map_err(|e| format!("signature of {name} is not base64: {e}"))?;
    let (id, signature) = blob
        .split_first_chunk::<4>()
        .ok_or_else(|| format!("signature of {name} is shorter than a key ID"))?;
    Ok(NoteSignature {
        name: name.to_owned(),
        key_id: u32::from_be_bytes(*id),
        signature: signature.to_vec(),
    })
}

fn hex_to_hash(hex: &str) -> Result<[u8; 32], String> {
    let bad = || format!("{hex:?} is not 64 hex digits");
    if hex.len() != 64 || !hex.is_ascii() {
        return Err(bad());
    }
    let mut hash = [0u8; 32];
    for (byte, pair) in hash.iter_mut().zip(hex.as_bytes().chunks(2)) {
        let pair = std::str::from_utf8(pair).map_err(|_| bad())?;
        *byte = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
    }
    Ok(hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "3f1c0a9b2e4d5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8";

    fn key() -> SigningKey {
        SigningKey::from_pkcs8_pem(
            "-----BEGIN PRIVATE KEY-----\n\
             MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n\
             -----END PRIVATE KEY-----\n",
        )
        .unwrap()
    }

    fn checkpoint() -> Checkpoint {
        Checkpoint::new("sovra.dev/5f0c/sovra-0", 200, HEAD).unwrap()
    }

    #[test]
    fn the_body_is_origin_tree_size_and_base64_root_hash_lines() {
        let body = checkpoint().body();
        assert_eq!(
            body,
            "sovra.dev/5f0c/sovra-0\n200\nPxwKmy5NX2BxgpOktcbX6PkKGyw9Tl9gcYKTpLXG1+g=\n"
        );
        assert_eq!(Checkpoint::parse_body(&body).unwrap(), checkpoint());
        assert_eq!(checkpoint().head(), HEAD);
    }

    #[test]
    fn a_signed_checkpoint_is_a_c2sp_signed_note_that_parses_and_verifies() {
        let signed = checkpoint().sign(&key());
        let text = signed.to_string();
        let (body, sig) = text.split_once("\n\n").unwrap();
        assert_eq!(format!("{body}\n"), checkpoint().body());
        assert!(sig.starts_with("\u{2014} sovra.dev/5f0c/sovra-0 "), "{sig}");
        assert!(sig.ends_with('\n') && sig.lines().count() == 1, "{sig}");
        let parsed = SignedCheckpoint::parse(&text).unwrap();
        assert_eq!(parsed, signed);
        let verifier = key().public_key().verifier(&checkpoint().origin).unwrap();
        assert_eq!(parsed.verify(&verifier), Ok(()));
        // The signature blob is key ID (4 bytes) then the 64-byte Ed25519 signature.
        assert_eq!(parsed.signatures[0].key_id, verifier.key_id());
        assert_eq!(parsed.signatures[0].signature.len(), 64);
    }

    #[test]
    fn an_altered_checkpoint_fails_its_signature() {
        let text = checkpoint().sign(&key()).to_string();
        let altered = text.replacen("\n200\n", "\n201\n", 1);
        let parsed = SignedCheckpoint::parse(&altered).unwrap();
        let verifier = key().public_key().verifier(&checkpoint().origin).unwrap();
        let error = parsed.verify(&verifier).unwrap_err();
        assert!(error.contains("does not verify"), "{error}");
    }

    #[test]
    fn a_checkpoint_signed_by_another_key_is_not_signed_by_ours() {
        let forged = checkpoint().sign(&SigningKey::generate().unwrap());
        let verifier = key().public_key().verifier(&checkpoint().origin).unwrap();
        let error = forged.verify(&verifier).unwrap_err();
        assert!(
            error.starts_with("not signed by sovra.dev/5f0c/sovra-0+"),
            "{error}"
        );
    }

    #[test]
    fn signatures_of_unknown_keys_are_ignored_next_to_ours() {
        let mut signed = checkpoint().sign(&key());
        let witness = checkpoint().sign(&SigningKey::generate().unwrap());
        let mut cosig = witness.signatures[0].clone();
        cosig.name = "witness.example/w1".into();
        signed.signatures.push(cosig);
        let parsed = SignedCheckpoint::parse(&signed.to_string()).unwrap();
        let verifier = key().public_key().verifier(&checkpoint().origin).unwrap();
        assert_eq!(parsed.verify(&verifier), Ok(()));
    }

    #[test]
    fn malformed_notes_and_bodies_are_refused_with_a_reason() {
        let good = checkpoint().sign(&key()).to_string();
        for (note, why) in [
            (good.replace("\n\n", "\n"), "no blank line"),
            (good.trim_end().to_owned(), "end in a newline"),
            (good.replace('\u{2014}', "-"), "em dash"),
            (good.replace("\n200\n", "\n0200\n"), "not a decimal"),
            (good.replace("\n200\n", "\n-1\n"), "not a decimal"),
            (good.replace("PxwK", "!!"), "not base64"),
            (
                good.replace("\n200\n", "\n200\u{7}\n"),
                "control characters",
            ),
            (
                "sovra\n1\n\n\u{2014} a AAAAAAAA\n".to_owned(),
                "origin, a tree size",
            ),
        ] {
            let error = SignedCheckpoint::parse(&note).unwrap_err();
            assert!(error.contains(why), "{why}: {error}");
        }
        assert!(Checkpoint::new("has space", 1, HEAD).is_err());
        assert!(Checkpoint::new("o", 1, "abc").is_err());
    }

    #[test]
    fn extension_lines_are_kept_in_the_signed_text() {
        let text = "o\n1\nPxwKmy5NX2BxgpOktcbX6PkKGyw9Tl9gcYKTpLXG1+g=\next\n";
        let parsed = Checkpoint::parse_body(text).unwrap();
        assert_eq!(parsed.tree_size, 1);
    }
}
