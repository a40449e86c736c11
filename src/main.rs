//! The `smppd` command line.

use std::io::Read;
use std::process::ExitCode;

use anyhow::Context;
use bytes::{Bytes, BytesMut};
use clap::{CommandFactory, Parser, Subcommand};
use smppd::pdu::{Pdu, hex};

/// smppd: a native SMPP 3.4 carrier-connection engine.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the engine with a configuration file (default: the embedded defaults).
    Run {
        /// Path to config.toml.
        #[arg(long)]
        config: Option<std::path::PathBuf>,
    },
    /// Inspect and build SMPP PDUs.
    #[command(subcommand)]
    Pdu(PduCommand),
}

#[derive(Subcommand)]
enum PduCommand {
    /// Print a PDU given as hex (a whole frame, header included) as JSON.
    Decode {
        /// The PDU in hex; spaces, `_` and `:` are ignored, so it may span several
        /// arguments. `-` reads standard input.
        #[arg(required = true, num_args = 1..)]
        hex: Vec<String>,
    },
    /// Print the hex of a PDU given as JSON (the form `decode` prints).
    Encode {
        /// The PDU as JSON. `-` reads standard input.
        json: String,
    },
}

fn argument_or_stdin(value: String) -> anyhow::Result<String> {
    if value != "-" {
        return Ok(value);
    }
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .context("reading standard input")?;
    Ok(text)
}

fn decode(text: &str) -> anyhow::Result<String> {
    let octets = hex::decode(text).context("the argument is not hex")?;
    let pdu = Pdu::decode(&Bytes::from(octets)).context("not a valid PDU")?;
    // Serializing the PDU itself (not a `Value`) keeps the fields in spec order.
    Ok(serde_json::to_string_pretty(&pdu)?)
}

fn encode(text: &str) -> anyhow::Result<String> {
    let pdu = Pdu::from_json(text).context("not a PDU in JSON")?;
    let mut buf = BytesMut::new();
    pdu.encode(&mut buf);
    Ok(hex::encode(&buf))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { config: _ } => {
            // The engine's run loop is not part of this build yet: show what there is.
            let _ = Cli::command().print_help();
            Ok(())
        }
        Command::Pdu(PduCommand::Decode { hex }) => argument_or_stdin(hex.join(" "))
            .and_then(|t| decode(&t))
            .map(|out| println!("{out}")),
        Command::Pdu(PduCommand::Encode { json }) => argument_or_stdin(json)
            .and_then(|t| encode(&t))
            .map(|out| println!("{out}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("smppd: {e:#}");
            ExitCode::FAILURE
        }
    }
}
