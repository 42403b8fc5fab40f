//! One audit line: what the caller supplies ([`AuditEntry`]), what is written
//! ([`AuditRecord`]), and the hashing that links lines into a chain.
//!
//! A line's bytes must be reproducible from the record, so [`AuditRecord`] is a struct (fixed
//! field order), `None` is always written as `null` (fixed shape), and `time` is always written
//! in UTC with exactly six fractional digits. [`canonical_line`] is the only serializer; the
//! verifier re-serializes every parsed line and treats any difference as an edit.

use crate::Error;
use jiff::Timestamp;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;

/// `prev` of the first line of a trail: 64 zeros.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The decision an audit line records. Serialized as the CamelCase variant name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AuditAction {
    /// A workload was placed onto a cluster and pools.
    Placed,
    /// A workload was moved to another cluster or pools.
    Moved,
    /// No target satisfied the workload's class; nothing was placed.
    Refused,
    /// A running Pod or placement breaks its class (also in `audit` enforcement).
    Violation,
    /// A cluster or pool stopped meeting the requirements it was chosen for.
    SovereigntyLost,
    /// A workload's placement was removed (deletion or scale to nothing).
    Released,
    /// A signed checkpoint of the lines before this one (see [`crate::audit::Checkpoint`]).
    Checkpoint,
}

impl AuditAction {
    /// Every action, in declaration order.
    pub const ALL: [AuditAction; 7] = [
        Self::Placed,
        Self::Moved,
        Self::Refused,
        Self::Violation,
        Self::SovereigntyLost,
        Self::Released,
        Self::Checkpoint,
    ];

    /// The CamelCase name written to the trail.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Placed => "Placed",
            Self::Moved => "Moved",
            Self::Refused => "Refused",
            Self::Violation => "Violation",
            Self::SovereigntyLost => "SovereigntyLost",
            Self::Released => "Released",
            Self::Checkpoint => "Checkpoint",
        }
    }
}

impl fmt::Display for AuditAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AuditAction {
    type Err = String;

    /// Accepts the CamelCase name in any case, and kebab/snake case (`sovereignty-lost`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted: String = s
            .chars()
            .filter(|c| *c != '-' && *c != '_')
            .collect::<String>()
            .to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|a| a.as_str().to_ascii_lowercase() == wanted)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|a| a.as_str()).collect();
                format!(
                    "unknown audit action {s:?}; expected one of {}",
                    names.join(", ")
                )
            })
    }
}

/// The Kubernetes object a decision is about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef {
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    pub uid: Option<String>,
}

impl ObjectRef {
    /// Reference to any Kubernetes resource with a static kind (CRDs and k8s-openapi types).
    pub fn from_resource<K>(obj: &K) -> Self
    where
        K: kube::Resource<DynamicType = ()>,
    {
        let meta = obj.meta();
        Self {
            kind: K::kind(&()).into_owned(),
            namespace: meta.namespace.clone(),
            name: meta.name.clone().unwrap_or_default(),
            uid: meta.uid.clone(),
        }
    }

    /// `namespace/name`, or `name` for cluster-scoped objects.
    pub fn qualified_name(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}/{}", self.name),
            None => self.name.clone(),
        }
    }
}

/// What a caller supplies for one decision; the trail adds `seq`, `time`, `actor` and `prev`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    pub action: AuditAction,
    pub object: ObjectRef,
    /// Sensitivity class name.
    pub class: Option<String>,
    /// SovereignCluster name the decision is about.
    pub cluster: Option<String>,
    /// Node pools chosen (or lost).
    pub pools: Vec<String>,
    /// Why: reason codes and messages from the placement engine.
    pub reasons: Vec<String>,
}

impl AuditEntry {
    /// An entry with no class, cluster, pools or reasons; fill in the fields that apply.
    pub fn new(action: AuditAction, object: ObjectRef) -> Self {
        Self {
            action,
            object,
            class: None,
            cluster: None,
            pools: Vec::new(),
            reasons: Vec::new(),
        }
    }
}

/// One line of the trail, exactly as written. Field order is the line's byte order; every
/// field but `checkpoint` is always written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// 1 for the first line, then +1 per line.
    pub seq: u64,
    /// When the decision was recorded (UTC, microseconds).
    #[serde(
        serialize_with = "serialize_time",
        deserialize_with = "deserialize_time"
    )]
    pub time: Timestamp,
    /// Who recorded it: `sovra/<pod identity>`.
    pub actor: String,
    pub action: AuditAction,
    pub object: ObjectRef,
    pub class: Option<String>,
    pub cluster: Option<String>,
    pub pools: Vec<String>,
    pub reasons: Vec<String>,
    /// On `Checkpoint` lines only: the signed note (C2SP tlog-checkpoint) committing to the
    /// lines before this one. The one field left out when empty, so that lines written before
    /// checkpoints existed keep their exact bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<String>,
    /// SHA-256 (lowercase hex) of the previous line's bytes without its newline;
    /// [`GENESIS_HASH`] on the first line.
    pub prev: String,
}

impl AuditRecord {
    pub(crate) fn new(
        seq: u64,
        time: Timestamp,
        actor: &str,
        entry: AuditEntry,
        prev: String,
    ) -> Self {
        Self {
            seq,
            time: truncate_to_micros(time),
            actor: actor.to_owned(),
            action: entry.action,
            object: entry.object,
            class: entry.class,
            cluster: entry.cluster,
            pools: entry.pools,
            reasons: entry.reasons,
            checkpoint: None,
            prev,
        }
    }

    /// The `Checkpoint` line at `seq`: `note` is the signed checkpoint of lines 1 to `seq - 1`,
    /// `origin` names the trail (the line's object is `AuditTrail/<origin>`).
    pub(crate) fn checkpoint(
        seq: u64,
        time: Timestamp,
        actor: &str,
        origin: &str,
        note: String,
        prev: String,
    ) -> Self {
        let object = ObjectRef {
            kind: CHECKPOINT_KIND.to_owned(),
            namespace: None,
            name: origin.to_owned(),
            uid: None,
        };
        let mut record = Self::new(
            seq,
            time,
            actor,
            AuditEntry::new(AuditAction::Checkpoint, object),
            prev,
        );
        record.checkpoint = Some(note);
        record
    }
}

/// The object kind of `Checkpoint` lines: the trail itself.
pub const CHECKPOINT_KIND: &str = "AuditTrail";

/// The exact bytes of a record's line, without the newline.
pub fn canonical_line(record: &AuditRecord) -> Result<String, Error> {
    serde_json::to_string(record).map_err(|e| Error::Serialize {
        what: "audit record",
        message: e.to_string(),
    })
}

/// SHA-256 of a line's bytes (without its newline), as 64 lowercase hex digits.
pub fn line_hash(line: &[u8]) -> String {
    let digest = Sha256::digest(line);
    let mut hex = String::with_capacity(64);
    for byte in digest {
        use fmt::Write as _;
        // Writing to a String cannot fail.
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

/// The trail stores microseconds: enough to order decisions, and short enough to read.
fn truncate_to_micros(time: Timestamp) -> Timestamp {
    Timestamp::from_microsecond(time.as_microsecond()).unwrap_or(time)
}

const TIME_PRINTER: jiff::fmt::temporal::DateTimePrinter =
    jiff::fmt::temporal::DateTimePrinter::new().precision(Some(6));

/// A time as the trail writes it: UTC, `Z`, six fractional digits.
pub fn format_time(time: &Timestamp) -> String {
    TIME_PRINTER.timestamp_to_string(time)
}

fn serialize_time<S: Serializer>(time: &Timestamp, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format_time(time))
}

fn deserialize_time<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Timestamp, D::Error> {
    let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
    text.parse().map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> AuditRecord {
        let mut entry = AuditEntry::new(
            AuditAction::Placed,
            ObjectRef {
                kind: "SovereignWorkload".into(),
                namespace: Some("ministry-fin".into()),
                name: "tax-assessment".into(),
                uid: Some("0b6f".into()),
            },
        );
        entry.class = Some("confidential".into());
        entry.cluster = Some("rijkscloud-nl".into());
        entry.pools = vec!["gov-confidential".into()];
        entry.reasons = vec!["all requirements met".into()];
        AuditRecord::new(
            12,
            "2026-11-23T18:00:00.123456789Z".parse().unwrap(),
            "sovra/sovra-0",
            entry,
            GENESIS_HASH.into(),
        )
    }

    #[test]
    fn line_has_fixed_field_order_and_microsecond_utc_time() {
        let line = canonical_line(&record()).unwrap();
        assert_eq!(
            line,
            r#"{"seq":12,"time":"2026-11-23T18:00:00.123456Z","actor":"sovra/sovra-0","action":"Placed","object":{"kind":"SovereignWorkload","namespace":"ministry-fin","name":"tax-assessment","uid":"0b6f"},"class":"confidential","cluster":"rijkscloud-nl","pools":["gov-confidential"],"reasons":["all requirements met"],"prev":"0000000000000000000000000000000000000000000000000000000000000000"}"#
        );
    }

    #[test]
    fn a_checkpoint_line_carries_its_note_and_other_lines_have_no_checkpoint_field() {
        assert!(!canonical_line(&record()).unwrap().contains("checkpoint"));
        let line = canonical_line(&AuditRecord::checkpoint(
            13,
            "2026-11-23T18:00:01Z".parse().unwrap(),
            "sovra/sovra-0",
            "sovra.dev/x/sovra-0",
            "note\n".into(),
            GENESIS_HASH.into(),
        ))
        .unwrap();
        assert_eq!(
            line,
            r#"{"seq":13,"time":"2026-11-23T18:00:01.000000Z","actor":"sovra/sovra-0","action":"Checkpoint","object":{"kind":"AuditTrail","namespace":null,"name":"sovra.dev/x/sovra-0","uid":null},"class":null,"cluster":null,"pools":[],"reasons":[],"checkpoint":"note\n","prev":"0000000000000000000000000000000000000000000000000000000000000000"}"#
        );
        let parsed: AuditRecord = serde_json::from_str(&line).unwrap();
        assert_eq!(canonical_line(&parsed).unwrap(), line);
    }

    #[test]
    fn whole_second_times_still_have_six_fraction_digits() {
        let mut r = record();
        r.time = "2026-11-23T18:00:00Z".parse().unwrap();
        assert!(
            canonical_line(&r)
                .unwrap()
                .contains(r#""time":"2026-11-23T18:00:00.000000Z""#)
        );
    }

    #[test]
    fn parsing_and_reserializing_a_line_gives_the_same_bytes() {
        let line = canonical_line(&record()).unwrap();
        let parsed: AuditRecord = serde_json::from_str(&line).unwrap();
        assert_eq!(canonical_line(&parsed).unwrap(), line);
        assert_eq!(parsed, record());
    }

    #[test]
    fn line_hash_is_lowercase_hex_sha256() {
        assert_eq!(
            line_hash(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(GENESIS_HASH.len(), 64);
    }

    #[test]
    fn actions_display_and_parse_as_camel_case_names() {
        for action in AuditAction::ALL {
            assert_eq!(action.to_string().parse::<AuditAction>(), Ok(action));
            assert_eq!(
                serde_json::to_string(&action).unwrap(),
                format!("\"{action}\"")
            );
        }
        assert_eq!(
            "sovereignty-lost".parse::<AuditAction>(),
            Ok(AuditAction::SovereigntyLost)
        );
        assert!("Deleted".parse::<AuditAction>().is_err());
    }
}
