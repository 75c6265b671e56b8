//! Exit codes shared by `konductor` and `locomotive`. The same table is in
//! `docs/exit-codes.md`; a test keeps the two in step.

/// Success.
pub const OK: i32 = 0;
/// An unexpected internal error (a bug): please report it.
pub const INTERNAL: i32 = 1;
/// Bad input: arguments, `sdd.yaml`, tags, or a request the train's state refuses.
pub const BAD_INPUT: i32 = 2;
/// The remote or git failed: unreachable, push rejected, repository broken.
pub const REMOTE: i32 = 3;
/// The remote rejected the credentials.
pub const AUTH: i32 = 4;
/// A concurrent change won (e.g. a deploy tag moved meanwhile); nothing was overwritten.
pub const CONFLICT: i32 = 5;
/// A check found problems (`doctor`).
pub const CHECK_FAILED: i32 = 6;

/// Every code with its name and meaning, for docs and tests.
pub const TABLE: &[(i32, &str, &str)] = &[
    (OK, "ok", "success"),
    (INTERNAL, "internal", "an unexpected internal error (a bug)"),
    (
        BAD_INPUT,
        "bad-input",
        "bad arguments, SDD, tags, or a request the train's state refuses",
    ),
    (
        REMOTE,
        "remote",
        "the remote or git failed: unreachable, rejected, broken",
    ),
    (AUTH, "auth", "the remote rejected the credentials"),
    (
        CONFLICT,
        "conflict",
        "a concurrent change won; nothing was overwritten",
    ),
    (
        CHECK_FAILED,
        "check-failed",
        "a check found problems (`doctor`)",
    ),
];

/// The exit code for a failed command, from its error and the causes behind it, outermost
/// first (`anyhow::Error::chain`). A broken pipe on the outermost error (the reader went
/// away, as with `| head`) is not a failure. Otherwise the first cause Konductor knows
/// decides; anything else is an internal error.
pub fn for_error<'a>(
    chain: impl IntoIterator<Item = &'a (dyn std::error::Error + 'static)>,
) -> i32 {
    let mut chain = chain.into_iter().peekable();
    let broken_pipe = chain
        .peek()
        .and_then(|e| e.downcast_ref::<std::io::Error>())
        .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe);
    if broken_pipe {
        return OK;
    }
    chain
        .find_map(|c| {
            if let Some(e) = c.downcast_ref::<crate::error::Error>() {
                Some(e.exit_code())
            } else if c.is::<crate::model::sdd::SddError>() || c.is::<crate::model::tag::TagError>()
            {
                Some(BAD_INPUT)
            } else {
                None
            }
        })
        .unwrap_or(INTERNAL)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

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
        for_error(std::iter::successors(Some(e), |e| e.source()))
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
