//! `konductor`: advances release trains through the step graph in `sdd.yaml`, with git
//! tags as the only state. See `docs/`.

mod cli;
mod commands;
mod render;

fn main() {
    std::process::exit(cli::run());
}
