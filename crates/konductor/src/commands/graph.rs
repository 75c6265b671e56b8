use std::path::PathBuf;

use clap::{Args, ValueEnum};
use konductor_core::error::Error;

use crate::out;

/// Print the step graph for Graphviz (dot) or Mermaid
#[derive(Debug, Args)]
pub struct GraphArgs {
    /// The step graph
    #[arg(long, default_value = "sdd.yaml", value_name = "FILE")]
    pub sdd: PathBuf,
    /// Only the part of the graph this target needs
    #[arg(long, value_name = "STEP")]
    pub target: Option<String>,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Dot)]
    pub format: Format,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Dot,
    Mermaid,
}

pub fn cmd_graph(args: GraphArgs) -> anyhow::Result<i32> {
    let sdd = super::load_sdd(&args.sdd)?;
    let steps: Vec<_> = match &args.target {
        Some(t) => {
            sdd.check_target(t).map_err(Error::Input)?;
            sdd.closure(t)
        }
        None => sdd.topo_order(),
    };
    let shape = |s: &konductor_core::sdd::Step| {
        if s.is_virtual {
            "virtual"
        } else if s.manual {
            "manual"
        } else {
            "job"
        }
    };
    match args.format {
        Format::Dot => {
            out!("digraph sdd {{");
            out!("  rankdir=LR;");
            out!("  node [shape=box, style=rounded];");
            for s in &steps {
                let attrs = match shape(s) {
                    "virtual" => ", shape=ellipse, style=dashed",
                    "manual" => ", shape=hexagon",
                    _ => "",
                };
                out!("  \"{}\" [label=\"{}\"{attrs}];", s.name, s.name);
            }
            for s in &steps {
                for d in &s.needs {
                    out!("  \"{d}\" -> \"{}\";", s.name);
                }
            }
            out!("}}");
        }
        Format::Mermaid => {
            out!("flowchart LR");
            for s in &steps {
                let id = s.name.replace('-', "_");
                match shape(s) {
                    "virtual" => out!("  {id}([{}])", s.name),
                    "manual" => out!("  {id}{{{{{}}}}}", s.name),
                    _ => out!("  {id}[{}]", s.name),
                }
            }
            for s in &steps {
                for d in &s.needs {
                    out!("  {} --> {}", d.replace('-', "_"), s.name.replace('-', "_"));
                }
            }
        }
    }
    Ok(0)
}
