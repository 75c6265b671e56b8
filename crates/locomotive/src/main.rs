//! `locomotive`: what CI jobs call to report their state to Konductor. See `docs/`.

mod cli;
mod commands;

fn main() {
    std::process::exit(cli::run());
}
