//! `sovra audit verify / show / keygen / verifier-key`.

use crate::Error;
use crate::audit::{
    AuditAction, ExternalCheckpoint, PublicKey, ShowFilter, SigningKey, TrustedKey,
    verify_evidence_file,
};
use clap::Subcommand;
use serde_json::Value;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The key pair's file names in `keygen --out-dir`.
pub const PRIVATE_KEY_FILE: &str = "audit-signing-key.pem";
pub const PUBLIC_KEY_FILE: &str = "audit-signing-key.pub.pem";

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify the hash chain, the signed checkpoints in the file (with --key) and that each
    /// given checkpoint is a prefix of the file; exits 1 and names what failed.
    Verify {
        file: PathBuf,
        /// The public key: a verifier key (`<name>+<key ID>+<key>`, as a string or in a file)
        /// or a PEM public key file. Without it checkpoint signatures are not verified.
        #[arg(long)]
        key: Option<String>,
        /// A checkpoint kept outside the trail: a signed-note file, or the
        /// `sovra-audit-checkpoint` ConfigMap as YAML or JSON (every checkpoint in it); `-`
        /// reads standard input (`kubectl exec -i`). Repeatable.
        #[arg(long = "checkpoint")]
        checkpoints: Vec<PathBuf>,
    },
    /// Print the trail as a table, optionally filtered.
    Show {
        file: PathBuf,
        /// `namespace/name` or `name` of a workload.
        #[arg(long)]
        workload: Option<String>,
        #[arg(long)]
        class: Option<String>,
        /// Only this action, e.g. `placed`, `sovereignty-lost`, `checkpoint`.
        #[arg(long)]
        action: Option<AuditAction>,
    },
    /// Write a new Ed25519 key pair for signing checkpoints: the private key (PKCS#8 PEM,
    /// mode 0600) and the public key (PEM); with --name also print its verifier key.
    Keygen {
        /// Directory for audit-signing-key.pem and audit-signing-key.pub.pem.
        #[arg(long, default_value = ".")]
        out_dir: PathBuf,
        /// The checkpoint origin the key signs for, e.g. `sovra.dev/<kube-system UID>/sovra-0`.
        #[arg(long)]
        name: Option<String>,
    },
    /// Print the verifier key (`<name>+<key ID>+<key>`) of a private or public PEM key
    /// under a checkpoint origin, for witnesses and `verify --key`.
    VerifierKey {
        /// A PEM private (PKCS#8) or public key file.
        key: PathBuf,
        /// The checkpoint origin, e.g. `sovra.dev/<kube-system UID>/sovra-0`.
        #[arg(long)]
        name: String,
    },
}

pub fn execute(command: AuditCommand) -> Result<ExitCode, Error> {
    match command {
        AuditCommand::Verify {
            file,
            key,
            checkpoints,
        } => {
            let key = key.as_deref().map(trusted_key).transpose()?;
            let mut external = Vec::new();
            for path in &checkpoints {
                external.extend(external_checkpoints(path)?);
            }
            let report = verify_evidence_file(&file, key.as_ref(), &external)?;
            super::emit(&format!("{report}\n"));
            Ok(if report.is_ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        AuditCommand::Show {
            file,
            workload,
            class,
            action,
        } => {
            let filter = ShowFilter {
                workload,
                class,
                action,
            };
            super::emit(&crate::audit::show_file(&file, &filter)?);
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Keygen { out_dir, name } => {
            super::emit(&keygen(&out_dir, name.as_deref())?);
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::VerifierKey { key, name } => {
            let public = read_public_key(&key)?;
            let verifier = public
                .verifier(&name)
                .map_err(|message| key_error(&key, message))?;
            super::emit(&format!("{verifier}\n"));
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Writes a new key pair into `dir`; never overwrites a key. Returns what to tell the user.
pub fn keygen(dir: &Path, name: Option<&str>) -> Result<String, Error> {
    let key = SigningKey::generate().map_err(|message| key_error(dir, message))?;
    let private = dir.join(PRIVATE_KEY_FILE);
    let public = dir.join(PUBLIC_KEY_FILE);
    let pem = key
        .to_pkcs8_pem()
        .map_err(|message| key_error(&private, message))?;
    let verifier = name
        .map(|n| key.public_key().verifier(n))
        .transpose()
        .map_err(|message| key_error(&private, message))?;
    std::fs::create_dir_all(dir).map_err(|source| Error::WriteFile {
        path: dir.to_owned(),
        source,
    })?;
    write_new(&private, pem.as_bytes(), 0o600)?;
    write_new(&public, key.public_key().to_string().as_bytes(), 0o644)?;
    let mut out = format!(
        "private key: {} (keep it secret: it signs checkpoints)\npublic key:  {}\n",
        private.display(),
        public.display()
    );
    match verifier {
        Some(v) => out.push_str(&format!("verifier key: {v}\n")),
        None => out.push_str(&format!(
            "verifier key: sovra audit verifier-key {} --name <origin>\n",
            public.display()
        )),
    }
    out.push_str(&format!(
        "store it for the chart (auditLog.signingKey.existingSecret=sovra-audit-signing-key):\n  \
         kubectl -n sovra-system create secret generic sovra-audit-signing-key \
         --from-file=signing-key.pem={}\n",
        private.display()
    ));
    Ok(out)
}

/// Creates `path` with `mode`; an existing file is an error, not overwritten.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), Error> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let write_error = |source| Error::WriteFile {
        path: path.to_owned(),
        source,
    };
    let mut file = options.open(path).map_err(write_error)?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(write_error)
}

/// `--key`: a verifier key string, or a file with a verifier key or a PEM public key.
fn trusted_key(value: &str) -> Result<TrustedKey, Error> {
    if let Ok(key) = TrustedKey::parse(value) {
        return Ok(key);
    }
    let path = Path::new(value);
    let text = std::fs::read_to_string(path).map_err(|source| Error::ReadFile {
        path: path.to_owned(),
        source,
    })?;
    if text.contains("PRIVATE KEY") {
        return Err(key_error(
            path,
            "a private key: give the public key (audit-signing-key.pub.pem) or a verifier key"
                .to_owned(),
        ));
    }
    TrustedKey::parse(&text).map_err(|message| key_error(path, message))
}

fn read_public_key(path: &Path) -> Result<PublicKey, Error> {
    let text = zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|source| {
        Error::ReadFile {
            path: path.to_owned(),
            source,
        }
    })?);
    if text.contains("PRIVATE KEY") {
        return SigningKey::from_pkcs8_pem(&text)
            .map(|k| k.public_key())
            .map_err(|message| key_error(path, message));
    }
    PublicKey::from_pem(&text).map_err(|message| key_error(path, message))
}

/// The checkpoints in `path`: one signed note, or each of a ConfigMap's values that is one.
fn external_checkpoints(path: &Path) -> Result<Vec<ExternalCheckpoint>, Error> {
    let read_error = |source| Error::ReadFile {
        path: path.to_owned(),
        source,
    };
    let text = if path == Path::new("-") {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).map_err(read_error)?;
        text
    } else {
        std::fs::read_to_string(path).map_err(read_error)?
    };
    let config_map = serde_norway::from_str::<Value>(&text)
        .ok()
        .filter(|v| v.get("kind").and_then(Value::as_str) == Some("ConfigMap"));
    let Some(config_map) = config_map else {
        return Ok(vec![ExternalCheckpoint {
            source: format!("file {}", path.display()),
            note: text,
            of_many: false,
        }]);
    };
    let name = config_map
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("?");
    let data = config_map.get("data").and_then(Value::as_object);
    Ok(data
        .into_iter()
        .flatten()
        .filter(|(key, _)| key.ends_with(crate::controller::CHECKPOINT_KEY_SUFFIX))
        .filter_map(|(key, value)| {
            Some(ExternalCheckpoint {
                source: format!("ConfigMap {name} key {key} in {}", path.display()),
                note: value.as_str()?.to_owned(),
                of_many: true,
            })
        })
        .collect())
}

fn key_error(path: &Path, message: String) -> Error {
    Error::SigningKey {
        path: path.to_owned(),
        message,
    }
}
