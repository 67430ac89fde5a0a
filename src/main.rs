use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use tracing_subscriber::EnvFilter;

use visiond::config;

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
        /// Measure each model and its `variants` and recommend the most
        /// accurate one that sustains the load (the config's streams, or
        /// --cameras at --fps).
        #[arg(long)]
        pick: bool,
        /// With --pick: this many cameras ...
        #[arg(long, requires = "pick", requires = "fps", value_parser = clap::value_parser!(u32).range(1..))]
        cameras: Option<u32>,
        /// ... at this many analysed frames a second each.
        #[arg(long, requires = "cameras")]
        fps: Option<f64>,
    },
    /// Read a password on standard input (its first line) and print its
    /// argon2id hash, for `password_hash` under `http.users`.
    Passwd,
    /// Compare a variant of a detector with its reference on footage:
    /// agreement per label, speed per thread layout, size and memory.
    Eval(EvalArgs),
}

/// Knobs of `visiond eval`.
#[derive(clap::Args)]
struct EvalArgs {
    #[arg(short, long)]
    config: PathBuf,
    /// The model taken as the truth (a name under `models:`).
    #[arg(long)]
    reference: String,
    /// The model judged against it.
    #[arg(long)]
    variant: String,
    /// A clip, a photograph, or a folder of photographs (.jpg, .png).
    footage: PathBuf,
    /// Use every N-th frame of a clip.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    every: u32,
    /// Frames in all, at most.
    #[arg(long, default_value_t = 1000)]
    frames: usize,
    /// Score at which an object counts, on both sides.
    #[arg(long, default_value_t = 0.5)]
    min_score: f32,
    /// Frames per speed measurement (0: no speed).
    #[arg(long, default_value_t = 200)]
    speed_frames: usize,
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
        Command::Run { config } => {
            raise_file_limit();
            exit(run(&config))
        }
        Command::Check { config } => check(&config),
        Command::Passwd => exit(passwd().map(|hash| println!("{hash}"))),
        Command::Probe { uri, timeout } => exit(probe(&uri, timeout)),
        Command::Eval(args) => exit(eval(&args)),
        Command::Bench {
            config,
            model,
            frames,
            stream,
            layout,
            batch,
            pick,
            cameras,
            fps,
        } => exit(if pick {
            pick_variants(&config, model.as_deref(), frames, layout, cameras.zip(fps))
        } else {
            bench(
                &config,
                model.as_deref(),
                frames,
                stream.as_deref(),
                layout,
                batch.map(usize::from),
            )
        }),
    }
}

/// Success, or the error reported and failure.
fn exit(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            report(&e);
            ExitCode::FAILURE
        }
    }
}

/// `visiond probe`: what the source offers, printed.
fn probe(uri: &str, timeout: u64) -> anyhow::Result<()> {
    let result = visiond::source::SourceSpec::parse(uri)
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
            Ok(())
        }
        Err(e) => Err(e.context(visiond::redact::url(uri))),
    }
}

/// `visiond passwd`: the password from standard input, not echoed when it
/// is a terminal, never from the command line (where `ps` shows it).
fn passwd() -> anyhow::Result<String> {
    use std::io::IsTerminal as _;
    let terminal = std::io::stdin().is_terminal();
    let password = if terminal {
        eprint!("Password: ");
        let _quiet = Unechoed::new();
        read_line()?
    } else {
        read_line()?
    };
    if password.is_empty() {
        anyhow::bail!(
            "an empty password: type one, or pipe it in (printf '%s' \"$PW\" | visiond passwd)"
        );
    }
    visiond::password::hash_password(&password).map_err(anyhow::Error::msg)
}

fn read_line() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(line
        .strip_suffix('\n')
        .unwrap_or(&line)
        .trim_end_matches('\r')
        .to_string())
}

/// The terminal's echo off while it lives.
struct Unechoed(Option<libc::termios>);

impl Unechoed {
    fn new() -> Self {
        // SAFETY: tcgetattr/tcsetattr on standard input with a termios of
        // our own; on failure nothing is changed.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut t) != 0 {
                return Self(None);
            }
            let saved = t;
            t.c_lflag &= !libc::ECHO;
            t.c_lflag |= libc::ECHONL;
            if libc::tcsetattr(0, libc::TCSANOW, &t) != 0 {
                return Self(None);
            }
            Self(Some(saved))
        }
    }
}

impl Drop for Unechoed {
    fn drop(&mut self) {
        if let Some(saved) = &self.0 {
            // SAFETY: restores the attributes read in `new`.
            unsafe {
                libc::tcsetattr(0, libc::TCSANOW, saved);
            }
        }
    }
}

/// Each camera, MQTT, the spool and every status-page connection hold a
/// file descriptor; the usual soft limit of 1024 is a default from an age
/// of select(2), and the hard limit (systemd: 524288) is ours to take.
fn raise_file_limit() {
    // SAFETY: getrlimit/setrlimit with a struct of our own.
    unsafe {
        let mut l: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) == 0 && l.rlim_cur < l.rlim_max {
            l.rlim_cur = l.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &l);
        }
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
    // Every problem in one run: the file's, then the models' and their
    // labels', as far as the file could be read.
    let (loaded, problems) = match config::load_all(path) {
        Ok(l) => l,
        Err(e) => {
            println!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let Some(loaded) = loaded else {
        for p in problems {
            println!("{p}");
        }
        return ExitCode::FAILURE;
    };
    visiond::redact::register(&loaded.secrets);
    let (models, unloaded) = visiond::daemon::load_models_each(&loaded);
    // A label the model does not have would publish empty lists forever.
    let mut problems = problems;
    problems.extend(visiond::daemon::label_problems(&loaded, &models));
    problems.sort_by_key(|p| (p.pos.line, p.pos.col));
    problems.dedup();
    for p in &problems {
        println!("{p}");
    }
    for e in &unloaded {
        println!("{}: {e}", path.display());
    }
    if !problems.is_empty() || !unloaded.is_empty() {
        return ExitCode::FAILURE;
    }
    println!("{}: OK", path.display());
    summary(&loaded, &models);
    ExitCode::SUCCESS
}

/// What `check` found, for a config that is OK: the broker, the models,
/// the streams, the Home Assistant entities.
fn summary(
    loaded: &config::Loaded,
    models: &std::collections::HashMap<String, Vec<visiond::inference::Model>>,
) {
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
    let model = |name: &str| {
        let m = models.get(name)?.first()?;
        Some((m.task, m.labels.names()))
    };
    if let Some((d, streams)) = visiond::homeassistant::setup(loaded, model) {
        for (s, (topic, config)) in streams
            .iter()
            .zip(streams.iter().map(|s| d.stream_config(s)))
        {
            println!(
                "home assistant: {topic}: {} entities, labels [{}]",
                config.components.len(),
                s.labels.join(", ")
            );
        }
    }
}

fn eval(a: &EvalArgs) -> anyhow::Result<()> {
    if !(0.0..=1.0).contains(&a.min_score) {
        anyhow::bail!("--min-score {} is not between 0 and 1", a.min_score);
    }
    let loaded = config::load(&a.config)?;
    let opts = visiond::evaluate::Options {
        pick: visiond::evaluate::Pick {
            every: a.every as usize,
            limit: a.frames,
        },
        min_score: a.min_score,
        speed_frames: a.speed_frames,
    };
    let report = visiond::evaluate::evaluate(&loaded, &a.reference, &a.variant, &a.footage, opts)?;
    print!("{report}");
    Ok(())
}

/// `visiond bench --pick`: each model's candidates measured, one recommended.
fn pick_variants(
    path: &std::path::Path,
    model: Option<&str>,
    frames: usize,
    layout: Option<(usize, usize)>,
    cameras: Option<(u32, f64)>,
) -> anyhow::Result<()> {
    use visiond::evaluate::pick;
    let loaded = config::load(path)?;
    visiond::inference::runtime::init(loaded.config.onnxruntime.as_deref())?;
    let layouts = match layout {
        Some(l) => vec![l],
        None => visiond::bench::layouts(visiond::evaluate::cores()),
    };
    let models: Vec<_> = loaded
        .config
        .models
        .iter()
        .filter(|m| model.is_none_or(|n| n == m.name))
        .collect();
    if models.is_empty() {
        anyhow::bail!(
            "no model named {:?} in {}",
            model.unwrap_or(""),
            path.display()
        );
    }
    for m in models {
        let load = match cameras {
            Some((n, fps)) if fps.is_finite() && fps > 0.0 => f64::from(n) * fps,
            Some((_, fps)) => anyhow::bail!("--fps {fps} must be above 0"),
            None => pick::load_of(&loaded, &m.name),
        };
        let choice = pick::measure(m, load, &layouts, frames)?;
        print!("{choice}");
        let c = &choice.candidates[choice.chosen];
        if choice.sustained {
            println!("recommended for {}: {}\n", m.name, c.path.display());
        } else {
            println!(
                "no candidate of {} sustains {load:.1} frames/s here; the fastest is {}\n",
                m.name,
                c.path.display()
            );
        }
    }
    Ok(())
}

/// `visiond bench --stream`: one stream through the whole pipeline.
fn bench_stream(loaded: &config::Loaded, stream: &str, frames: usize) -> anyhow::Result<()> {
    let r = visiond::bench::stream(
        loaded,
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
    Ok(())
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
    let cores = visiond::inference::cores();
    if let Some(stream) = stream {
        return bench_stream(&loaded, stream, frames);
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
    visiond::inference::runtime::init(loaded.config.onnxruntime.as_deref())?;
    for name in names {
        let spec = loaded
            .model(&name)
            .ok_or_else(|| anyhow::anyhow!("no model named {name:?}"))?
            .spec();
        let max_batch = bench::max_batch(&spec)?;
        let batches: Vec<usize> = match batch {
            // bench::inference clamps it to what the model takes.
            Some(b) => vec![b],
            None if max_batch > 1 => vec![1, max_batch],
            None => vec![1],
        };
        let layouts = layout.map_or_else(|| bench::layouts(cores), |l| vec![l]);
        for (workers, threads) in layouts {
            for &batch in &batches {
                let r = bench::inference(&spec, workers, threads, batch, frames)?;
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
