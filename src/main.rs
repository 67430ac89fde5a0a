use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use tracing_subscriber::EnvFilter;

use visiond::config::{self, ConfigError};

#[derive(Parser)]
#[command(
    version,
    about = "Camera streams in, MobileNet-family inference, MQTT events out"
)]
struct Cli {
    /// Log level or filter (EnvFilter syntax, e.g. `info,visiond=debug`).
    #[arg(long, global = true, env = "VISIOND_LOG", default_value = "info")]
    log_level: String,
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon.
    Run {
        #[arg(short, long, default_value = config::DEFAULT_PATH)]
        config: PathBuf,
    },
    /// Validate the config and load every model it names.
    Check {
        #[arg(short, long)]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli);
    match cli.command {
        Command::Run { config } => match run(&config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                report(&e);
                ExitCode::FAILURE
            }
        },
        Command::Check { config } => check(&config),
    }
}

fn init_logging(cli: &Cli) {
    let filter = EnvFilter::try_new(&cli.log_level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Json => builder.json().with_current_span(true).init(),
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
}

fn report(e: &anyhow::Error) {
    let text = visiond::redact::text(&format!("{e:#}"));
    tracing::error!("{text}");
    eprintln!("visiond: {text}");
}

fn run(path: &std::path::Path) -> anyhow::Result<()> {
    let loaded = config::load(path)?;
    visiond::daemon::run(loaded).context("visiond run")
}

fn check(path: &std::path::Path) -> ExitCode {
    let loaded = match config::load(path) {
        Ok(l) => l,
        Err(ConfigError::Invalid { problems }) => {
            for p in problems {
                println!("{p}");
            }
            return ExitCode::FAILURE;
        }
        Err(e) => {
            println!("{e}");
            return ExitCode::FAILURE;
        }
    };
    visiond::redact::register(&loaded.secrets);
    let models = match visiond::daemon::load_models(&loaded) {
        Ok(m) => m,
        Err(e) => {
            println!("{}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    };
    println!("{}: OK", path.display());
    println!(
        "node {} -> {}",
        loaded.node,
        visiond::redact::url(&loaded.config.mqtt.url)
    );
    let mut names: Vec<_> = models.keys().collect();
    names.sort();
    for name in names {
        let m = &models[name];
        println!(
            "model {name}: {} input {}x{} {:?} {:?}, {} labels",
            m.task,
            m.input.width,
            m.input.height,
            m.input.layout,
            m.input.dtype,
            m.labels.len()
        );
    }
    for s in &loaded.config.streams {
        let spec = s.source_spec().map(|s| s.to_string()).unwrap_or_default();
        let fps = s
            .fps
            .map_or("every frame".to_string(), |f| format!("{f} fps"));
        println!("stream {}: {spec} -> {} ({fps})", s.name, s.model);
    }
    ExitCode::SUCCESS
}
