//! `meterflow config reference`: the tables of `docs/pipeline.md`, read off
//! the config types, so the doc can be refreshed from the code.

#[derive(Debug, Clone, clap::Subcommand)]
pub enum ConfigCommand {
    /// Every section and key of a pipeline file as Markdown tables.
    Reference,
}

pub fn run(command: ConfigCommand) -> anyhow::Result<()> {
    match command {
        ConfigCommand::Reference => print!("{}", meterflow::pipeline::reference::markdown()),
    }
    Ok(())
}
