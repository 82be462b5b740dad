//! Finding the server binary the harness runs: `oxcd-failpoints`, the `oxcd` server built
//! with the `failpoints` feature, so that every scenario can arm fail points.
//!
//! `cargo test` does not build another package's binaries, so the harness builds it itself,
//! once per process: `cargo build -p oxcd --bin oxcd-failpoints --features failpoints`, in
//! the target dir and profile of the running executable (found from
//! `std::env::current_exe()`: `target/<profile>/deps/<test>` or `target/<profile>/<bin>`).
//! When it is up to date this takes a second; the first time it compiles the `oxcd` crate
//! once more with the feature. The result lands in `target/<profile>/oxcd-failpoints`, a
//! name no plain build writes. `OXCD_E2E_BINARY=/path/to/oxcd-failpoints` skips the build.

use std::path::{Path, PathBuf};
use std::process::Command;

use tokio::sync::OnceCell;

use crate::error::{Error, Result};

/// Names a prebuilt server binary to use instead of building one.
pub const BINARY_VAR: &str = "OXCD_E2E_BINARY";

const BINARY_NAME: &str = "oxcd-failpoints";

/// The server binary, built on first use.
pub async fn server_binary() -> Result<PathBuf> {
    static BINARY: OnceCell<PathBuf> = OnceCell::const_new();
    BINARY
        .get_or_try_init(|| async {
            if let Some(path) = std::env::var_os(BINARY_VAR) {
                return Ok(PathBuf::from(path));
            }
            tokio::task::spawn_blocking(build)
                .await
                .map_err(|e| Error::Binary(format!("build task failed: {e}")))?
        })
        .await
        .cloned()
}

/// Where cargo put the running executable: the target dir and the profile's directory name.
fn target_layout() -> Result<(PathBuf, String)> {
    let exe = std::env::current_exe()?;
    let mut dir = exe
        .parent()
        .ok_or_else(|| Error::Binary(format!("{} has no directory", exe.display())))?;
    if dir.file_name().is_some_and(|name| name == "deps") {
        dir = dir.parent().unwrap_or(dir);
    }
    let profile = dir
        .file_name()
        .and_then(|name| name.to_str())
        .ok_or_else(|| Error::Binary(format!("no profile directory above {}", exe.display())))?
        .to_owned();
    let target = dir
        .parent()
        .ok_or_else(|| Error::Binary(format!("no target directory above {}", dir.display())))?;
    Ok((target.to_path_buf(), profile))
}

fn build() -> Result<PathBuf> {
    let (target, profile) = target_layout()?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    // Cargo sets CARGO_MANIFEST_DIR for the tests it runs. It is read at run time first:
    // the compile-time value names whichever checkout first built this test binary, and
    // cargo reuses that binary for another checkout of the same sources sharing the target
    // dir.
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    let workspace = manifest_dir
        .parent()
        .ok_or_else(|| Error::Binary("the e2e crate has no parent directory".into()))?;
    let cargo_profile = if profile == "debug" { "dev" } else { &profile };
    let output = Command::new(&cargo)
        .current_dir(workspace)
        .env("CARGO_TARGET_DIR", &target)
        .args(["build", "--quiet", "-p", "oxcd", "--bin", BINARY_NAME])
        .args(["--features", "failpoints", "--profile", cargo_profile])
        .output()
        .map_err(|e| Error::Binary(format!("running {}: {e}", Path::new(&cargo).display())))?;
    if !output.status.success() {
        return Err(Error::Binary(format!(
            "cargo build of {BINARY_NAME} failed ({}); set {BINARY_VAR} to a built binary to skip it:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    let binary = target.join(&profile).join(BINARY_NAME);
    if !binary.exists() {
        return Err(Error::Binary(format!(
            "cargo built {BINARY_NAME} but {} does not exist",
            binary.display()
        )));
    }
    Ok(binary)
}
