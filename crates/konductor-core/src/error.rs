//! The core's error type. Every variant maps to one exit code.

use crate::exit_codes;
use crate::model::sdd::SddError;
use crate::model::tag::TagError;

/// Anything an operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The step graph is invalid.
    #[error(transparent)]
    Sdd(#[from] SddError),
    /// A tag given as input is malformed.
    #[error(transparent)]
    Tag(#[from] TagError),
    /// Some other input is wrong, or the train's state refuses the request.
    #[error("{0}")]
    Input(String),
    /// The remote or git failed.
    #[error("{0}")]
    Remote(String),
    /// The remote rejected the credentials.
    #[error("{0}")]
    Auth(String),
    /// A concurrent change won.
    #[error("{0}")]
    Conflict(String),
    /// A local file could not be read or written.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// The exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Sdd(_) | Error::Tag(_) | Error::Input(_) => exit_codes::BAD_INPUT,
            Error::Remote(_) => exit_codes::REMOTE,
            Error::Auth(_) => exit_codes::AUTH,
            Error::Conflict(_) => exit_codes::CONFLICT,
            Error::Io { .. } => exit_codes::BAD_INPUT,
        }
    }

    /// An input error.
    pub fn input(msg: impl Into<String>) -> Self {
        Error::Input(msg.into())
    }
}

/// Result with the core's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
