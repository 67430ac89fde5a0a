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
    /// Open a source, print what it delivers (codec, size, frame rate), exit.
    Probe {
        /// rtsp://, file://, v4l2://, http(s)://, test:// or gst:<launch>.
        uri: String,
        /// Seconds to wait for the source.
        #[arg(long, default_value_t = 10)]
        timeout: u64,
    },
    /// Measure inference throughput and latency per thread layout, or one
    /// stream end to end (`--stream`).
    Bench {
        #[arg(short, long)]
        config: PathBuf,
        /// Only this model (default: every model in the config).
        #[arg(long)]
        model: Option<String>,
        /// Frames per measurement.
        #[arg(long, default_value_t = 300)]
        frames: usize,
        /// Run this stream (source, decode, inference, payload) instead.
        #[arg(long)]
        stream: Option<String>,
        /// Only this thread layout, WORKERSxTHREADS (e.g. 2x1); default: a
        /// session using every core, one single-thread session per core, one thread.
        #[arg(long, value_parser = parse_layout)]
        layout: Option<(usize, usize)>,
        /// Only this batch size (default: 1 and the largest the model takes).
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
        batch: Option<u16>,
    },
}

/// `2x1` -> (2 workers, 1 thread).
fn parse_layout(s: &str) -> Result<(usize, usize), String> {
    let bad = || format!("{s:?} is not WORKERSxTHREADS with both at least 1, e.g. 2x1");
    let (w, t) = s.split_once('x').ok_or_else(bad)?;
    match (w.trim().parse(), t.trim().parse()) {
        (Ok(w), Ok(t)) if w > 0 && t > 0 => Ok((w, t)),
        _ => Err(bad()),
    }
}

fn main() -> ExitCode {
    limit_malloc_arenas();
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
        Command::Probe { uri, timeout } => {
            let result = visiond::source::SourceSpec::parse(&uri)
                .map_err(anyhow::Error::msg)
                .and_then(|spec| {
                    Ok(visiond::source::probe(
                        &spec,
                        std::time::Duration::from_secs(timeout),
                    )?)
                });
            match result {
                Ok(r) => {
                    print!("{r}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    report(&e.context(visiond::redact::url(&uri)));
                    ExitCode::FAILURE
                }
            }
        }
        Command::Bench {
            config,
            model,
            frames,
            stream,
            layout,
            batch,
        } => match bench(
            &config,
            model.as_deref(),
            frames,
            stream.as_deref(),
            layout,
            batch.map(usize::from),
        ) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                report(&e);
                ExitCode::FAILURE
            }
        },
    }
}

/// glibc gives each thread that allocates an arena of its own; with
/// GStreamer's and ONNX Runtime's threads that is about 100 MiB of RSS for
/// nothing (measured: 290 -> 180 MiB on one 720p stream). Two arenas cost no
/// measurable speed. MALLOC_ARENA_MAX, when set, wins.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: called first thing in main, before any other thread exists.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

fn init_logging(cli: &Cli) {
    // ONNX Runtime narrates every session at info; keep it to warnings
    // unless the filter names it.
    let spec = if cli.log_level.contains("ort") {
        cli.log_level.clone()
    } else {
        format!("{},ort=warn", cli.log_level)
    };
    let filter = EnvFilter::try_new(&spec).unwrap_or_else(|_| EnvFilter::new("info,ort=warn"));
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
    // A label the model does not have would publish empty lists forever.
    let label_problems = visiond::daemon::label_problems(&loaded, &models);
    if !label_problems.is_empty() {
        for p in label_problems {
            println!("{p}");
        }
        return ExitCode::FAILURE;
    }
    println!("{}: OK", path.display());
    println!(
        "node {} -> {}",
        loaded.node,
        visiond::redact::url(&loaded.config.mqtt.url)
    );
    let mut names: Vec<_> = models.keys().collect();
    names.sort();
    for name in names {
        let Some(m) = models[name].first() else {
            continue;
        };
        println!(
            "model {name}: {} on {}, input {}x{} {:?} {:?} {:?} {:?}, {} labels, {} workers",
            m.task,
            m.provider,
            m.input.width,
            m.input.height,
            m.input.layout,
            m.input.dtype,
            m.input.colour,
            m.input.resize,
            m.labels.len(),
            models[name].len()
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

fn bench(
    path: &std::path::Path,
    model: Option<&str>,
    frames: usize,
    stream: Option<&str>,
    layout: Option<(usize, usize)>,
    batch: Option<usize>,
) -> anyhow::Result<()> {
    use visiond::bench;
    let loaded = config::load(path)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if let Some(stream) = stream {
        let r = bench::stream(
            &loaded,
            stream,
            frames as u64,
            std::time::Duration::from_secs(600),
        )?;
        println!(
            "| stream | frames | seconds | frames/s | CPU ms/frame | latency p50 ms | latency p99 ms | RSS MiB | peak RSS MiB |"
        );
        println!("|---|---|---|---|---|---|---|---|---|");
        println!(
            "| {} | {} | {:.2} | {:.1} | {:.2} | {:.1} | {:.1} | {:.0} | {:.0} |",
            r.stream,
            r.frames,
            r.seconds,
            r.fps,
            r.cpu_ms_per_frame,
            r.latency_p50_ms,
            r.latency_p99_ms,
            r.rss_mib,
            r.peak_rss_mib
        );
        println!(
            "\nsnapshots: {} sent, {:.2} ms each to convert, draw and encode; {:.1} µs a frame in the stage besides",
            r.snapshots, r.snapshot_ms, r.snapshot_frame_us
        );
        return Ok(());
    }
    let names: Vec<String> = match model {
        Some(m) => vec![m.to_string()],
        None => loaded
            .config
            .models
            .iter()
            .map(|m| m.name.clone())
            .collect(),
    };
    println!(
        "{cores} cores; {frames} frames per row; latency per run (a run takes `batch` frames)"
    );
    println!(
        "| model | workers x threads | batch | frames/s | latency p50 ms | latency p99 ms | CPU ms/frame |"
    );
    println!("|---|---|---|---|---|---|---|");
    for name in names {
        let max_batch = loaded
            .model(&name)
            .map(|_| bench::max_batch(&loaded, &name))
            .transpose()?
            .unwrap_or(1);
        let batches: Vec<usize> = match batch {
            // bench::inference clamps it to what the model takes.
            Some(b) => vec![b],
            None if max_batch > 1 => vec![1, max_batch],
            None => vec![1],
        };
        let layouts = layout.map_or_else(|| bench::layouts(cores), |l| vec![l]);
        for (workers, threads) in layouts {
            for &batch in &batches {
                let r = bench::inference(&loaded, &name, workers, threads, batch, frames)?;
                println!(
                    "| {} | {} x {} | {} | {:.1} | {:.2} | {:.2} | {:.2} |",
                    r.model,
                    r.workers,
                    r.threads,
                    r.batch,
                    r.fps,
                    r.p50_ms,
                    r.p99_ms,
                    r.cpu_ms_per_frame
                );
            }
        }
    }
    Ok(())
}
