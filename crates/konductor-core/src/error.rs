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

/// The exit code for a failed command, from its error and the causes behind it, outermost
/// first (`anyhow::Error::chain`). A broken pipe on the outermost error (the reader went
/// away, as with `| head`) is not a failure. Otherwise the first cause Konductor knows
/// decides; anything else is an internal error.
pub fn exit_code_for<'a>(
    chain: impl IntoIterator<Item = &'a (dyn std::error::Error + 'static)>,
) -> i32 {
    let mut chain = chain.into_iter().peekable();
    let broken_pipe = chain
        .peek()
        .and_then(|e| e.downcast_ref::<std::io::Error>())
        .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe);
    if broken_pipe {
        return exit_codes::OK;
    }
    chain
        .find_map(|c| {
            if let Some(e) = c.downcast_ref::<Error>() {
                Some(e.exit_code())
            } else if c.is::<crate::model::sdd::SddError>() || c.is::<crate::model::tag::TagError>()
            {
                Some(exit_codes::BAD_INPUT)
            } else {
                None
            }
        })
        .unwrap_or(exit_codes::INTERNAL)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit_codes::{BAD_INPUT, CONFLICT, INTERNAL, OK};

    /// An error with a cause, as `anyhow`'s context adds one.
    #[derive(Debug)]
    struct Context(&'static str, Box<dyn std::error::Error + 'static>);
    impl std::fmt::Display for Context {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }
    impl std::error::Error for Context {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&*self.1)
        }
    }

    fn code(e: &(dyn std::error::Error + 'static)) -> i32 {
        exit_code_for(std::iter::successors(Some(e), |e| e.source()))
    }

    #[test]
    fn the_first_known_cause_decides() {
        assert_eq!(code(&Error::input("bad")), BAD_INPUT);
        let wrapped = Context("while ticking", Box::new(Error::Conflict("moved".into())));
        assert_eq!(code(&wrapped), CONFLICT);
        let tag_err = "release=x".parse::<crate::model::tag::Tag>().unwrap_err();
        assert_eq!(code(&Context("reading tags", Box::new(tag_err))), BAD_INPUT);
        assert_eq!(code(&std::io::Error::other("disk on fire")), INTERNAL);
    }

    #[test]
    fn a_broken_pipe_is_not_a_failure() {
        let pipe = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        assert_eq!(code(&pipe), OK);
        // Only when it is what failed, not a cause deep down.
        assert_eq!(code(&Context("pushing", Box::new(pipe))), INTERNAL);
    }
}
