//! The archive of collected trains: `refs/konductor/archive`, one `trains/<N.P>.json`
//! per train. `gc` writes it; `status`, `log` and `retry` read it.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::git::store::Store;
use crate::model::tag::TrainId;
use crate::model::train::TagRecord;

/// The ref that holds archived trains.
pub const ARCHIVE_REF: &str = "refs/konductor/archive";

/// One archived train, as stored in `trains/<N.P>.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchivedTrain {
    /// `N.P`.
    pub train: String,
    /// Its state when archived.
    pub state: String,
    /// When it was archived (RFC 3339).
    pub archived_at: String,
    /// Who archived it.
    pub archived_by: String,
    /// Every tag of the train.
    pub tags: Vec<TagRecord>,
}

pub(crate) fn path_of(t: TrainId) -> String {
    format!("trains/{t}.json")
}

/// The archive's tip, fetched (full history: the next archive commit builds on it).
pub(crate) fn archive_tip(store: &Store) -> Result<Option<String>> {
    if store.fetch_ref(ARCHIVE_REF)? {
        Ok(store.ref_target(ARCHIVE_REF))
    } else {
        Ok(None)
    }
}

/// The archived record of one train, if the archive has it.
pub fn archived(store: &Store, t: TrainId) -> Result<Option<ArchivedTrain>> {
    let Some(tip) = archive_tip(store)? else {
        return Ok(None);
    };
    read_archived(store, &tip, t)
}

pub(crate) fn read_archived(store: &Store, tip: &str, t: TrainId) -> Result<Option<ArchivedTrain>> {
    match store.read_file_at(tip, &path_of(t))? {
        None => Ok(None),
        Some(data) => serde_json::from_slice(&data).map(Some).map_err(|e| {
            Error::Remote(format!(
                "the archive's record of train {t} is unreadable: {e}"
            ))
        }),
    }
}
