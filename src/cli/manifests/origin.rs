//! Every problem names where it was found, down to the item of a `kind: List`, so a CI log
//! points at the document to fix; and an object given twice names both places.

use crate::Error;
use std::fmt;
use std::path::PathBuf;

/// Where a document (or an item of a `kind: List`) was read.
#[derive(Clone, Debug)]
pub(super) struct Origin {
    pub(super) path: PathBuf,
    pub(super) document: usize,
    pub(super) item: Option<usize>,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} document {}", self.path.display(), self.document)?;
        match self.item {
            Some(item) => write!(f, " items[{item}]"),
            None => Ok(()),
        }
    }
}

impl Origin {
    pub(super) fn error(&self, message: impl fmt::Display) -> Error {
        Error::InvalidManifest {
            path: self.path.clone(),
            document: self.document,
            message: match self.item {
                Some(item) => format!("items[{item}]: {message}"),
                None => message.to_string(),
            },
        }
    }
}
