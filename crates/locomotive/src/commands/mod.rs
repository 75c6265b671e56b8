//! One module per subcommand.

pub mod publish_manifests;
pub mod set_step_state;
