//! `service.metrics_textfile`: the metrics written for `node_exporter`'s textfile collector,
//! atomically (a temporary file in the same directory, then a rename), so a reader sees the
//! old file or the new one and never half of one.

use std::io::Write;
use std::path::Path;

use super::exposition::encode;
use super::families::Families;

/// How often the file is rewritten.
pub const EVERY: std::time::Duration = std::time::Duration::from_secs(15);

/// Writes the metrics to `path` atomically.
pub fn write(path: &Path, families: &Families) -> std::io::Result<()> {
    let text = encode(families);
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map_or_else(|| "metrics".into(), |n| n.to_string_lossy().into_owned());
    // node_exporter reads only `*.prom`: the temporary name must not end so.
    let temporary = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result
}
