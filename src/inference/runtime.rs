//! Finding and loading the ONNX Runtime shared library (ort `load-dynamic`).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::error::ModelError;

static LOADED: OnceLock<Result<(PathBuf, ort::environment::Environment), String>> = OnceLock::new();

/// Where the Debian package and the project's set-up put the library, in
/// the order they are tried after `onnxruntime:` and `ORT_DYLIB_PATH`.
/// Places only root can write come first: the service may write its state
/// directory (`VISIOND_CACHE=/var/lib/visiond` in the unit), and a library
/// planted there must not be loaded at the next start.
pub fn candidates() -> Vec<PathBuf> {
    let mut c = vec![PathBuf::from("/usr/lib/visiond/libonnxruntime.so")];
    if let Ok(exe) = std::env::current_exe()
        && let Some(dir) = exe.parent()
    {
        c.push(dir.join("libonnxruntime.so"));
    }
    // The set-up's cache, for a development checkout.
    let cache = std::env::var_os("VISIOND_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/visiond")));
    if let Some(cache) = cache {
        c.push(cache.join("onnxruntime/libonnxruntime.so"));
    }
    c
}

/// Loads ONNX Runtime once per process; later calls return the first outcome.
pub fn init(configured: Option<&Path>) -> Result<PathBuf, ModelError> {
    load(configured).map(|(p, _)| p.clone())
}

/// The environment sessions are built in; loads ONNX Runtime from the
/// default places if [`init`] was not called.
pub fn environment() -> Result<&'static ort::environment::Environment, ModelError> {
    load(None).map(|(_, e)| e)
}

fn load(
    configured: Option<&Path>,
) -> Result<&'static (PathBuf, ort::environment::Environment), ModelError> {
    LOADED
        .get_or_init(|| {
            let path = configured
                .map(Path::to_path_buf)
                .or_else(|| std::env::var_os("ORT_DYLIB_PATH").map(PathBuf::from))
                .or_else(|| candidates().into_iter().find(|p| p.is_file()))
                .ok_or_else(|| {
                    format!(
                        "ONNX Runtime library not found; run scripts/setup-assets.sh, or set `onnxruntime:` in the config or ORT_DYLIB_PATH (looked in {})",
                        candidates()
                            .iter()
                            .map(|p| p.display().to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })?;
            if !path.is_file() {
                return Err(format!("ONNX Runtime library {} not found", path.display()));
            }
            let builder = ort::init_from(&path)
                .map_err(|e| format!("cannot load ONNX Runtime from {}: {e}", path.display()))?;
            let env = builder
                .with_name("visiond")
                .with_telemetry(false)
                .build()
                .map_err(|e| format!("ONNX Runtime environment: {e}"))?;
            if int8_saturates() {
                tracing::info!(
                    "this CPU has no VNNI: quantised models run their integer nodes as float (exact, slower)"
                );
            }
            Ok((path, env))
        })
        .as_ref()
        .map_err(|e| ModelError::Runtime(e.clone()))
}

/// Whether ONNX Runtime's u8 x s8 products are summed in pairs into 16 bits
/// that saturate on this CPU: x86 without VNNI (AVX2 or AVX-512 alone) uses
/// VPMADDUBSW. There, a model quantised with full 8-bit weights (the
/// EfficientNet-Lite0 of the set-up, from its TFLite original) answers
/// wrongly, so sessions run its quantised nodes as float instead
/// (`session.disable_quant_qdq`): exact on every CPU, at float speed. ARM
/// widens instead, and VNNI sums in 32 bits.
pub fn int8_saturates() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        !(std::arch::is_x86_feature_detected!("avx512vnni")
            || std::arch::is_x86_feature_detected!("avxvnni"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_packaged_library_comes_before_any_writable_cache() {
        let c = candidates();
        assert_eq!(c[0], Path::new("/usr/lib/visiond/libonnxruntime.so"));
        assert!(!c.iter().any(|p| p.starts_with("/var/lib")), "{c:?}");
    }
}
