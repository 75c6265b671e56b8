//! One module per subcommand.

pub mod meta;
pub mod set_step_state;
