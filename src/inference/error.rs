//! What can go wrong with a model: loading it, its description against the
//! config, running it.

#[derive(Debug, Clone, thiserror::Error)]
pub enum ModelError {
    #[error("{0}")]
    Runtime(String),
    #[error("model {model:?}: cannot load: {message}")]
    Load { model: String, message: String },
    #[error("model {model:?}: the config contradicts the model: {message}")]
    Mismatch { model: String, message: String },
    #[error("model {model:?}: unsupported: {message}")]
    Unsupported { model: String, message: String },
    #[error("model {model:?}: inference failed: {message}")]
    Run { model: String, message: String },
}
