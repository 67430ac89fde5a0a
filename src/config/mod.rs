//! The YAML configuration: its shape (types.rs, documented on each field and
//! published as docs/schema/config.schema.json), `${VAR}` values (env.rs),
//! loading (load.rs) and validation (validate.rs) that reports every problem
//! as `FILE:LINE:COL: message`.

mod env;
mod load;
mod locate;
mod schema;
mod settings;
mod stream;
mod types;
mod validate;

#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::PathBuf;

pub use load::{load, load_all, parse};
pub use locate::{Locator, Pos};
pub use schema::schema;
pub use settings::{HttpSettings, SettingsError, StreamSettings, default_min_score, mqtt};
pub use stream::parse_stream;
pub use types::*;
pub use validate::{check_classify, check_labels, valid_name};

/// Where `visiond run` looks when no `-c` is given.
pub const DEFAULT_PATH: &str = "/etc/visiond/visiond.yaml";

/// One problem in a configuration file.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub file: PathBuf,
    pub pos: Pos,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.pos.line,
            self.pos.col,
            self.message
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: cannot read: {source}", file.display())]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{}", problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n"))]
    Invalid { problems: Vec<Problem> },
}

/// A loaded, validated configuration with everything resolved: node name,
/// client id, absolute paths. `secrets` holds the values that must never be
/// logged.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    pub file: PathBuf,
    pub config: Config,
    pub node: String,
    pub client_id: String,
    pub secrets: Vec<String>,
    /// Where each node sits in `file` (positions in the file as written,
    /// before `${VAR}` values), for problems found later (`check_labels`).
    pub locator: Locator,
}

impl Loaded {
    pub fn model(&self, name: &str) -> Option<&ModelConfig> {
        self.config.models.iter().find(|m| m.name == name)
    }

    /// A problem at the node `path` (`streams[0].labels[1]`), or the
    /// closest enclosing node.
    pub fn problem_at(&self, path: &str, message: String) -> Problem {
        Problem {
            file: self.file.clone(),
            pos: self.locator.nearest(path),
            message,
        }
    }
}
