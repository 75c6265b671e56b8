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
