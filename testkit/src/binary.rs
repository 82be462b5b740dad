//! Which server binary a member runs, and building it when cargo has not.
//!
//! - [`oxcd`]: the plain server. The server's own integration tests find it in
//!   `CARGO_BIN_EXE_oxcd`, which cargo sets (at build and at run time) for the tests of the
//!   package the binary belongs to. Other crates' tests (the load generator's) do not get it,
//!   and `cargo test` does not build another package's binaries: it is built here.
//! - [`oxcd_failpoints`]: `oxcd-failpoints`, the server built with the `failpoints` feature,
//!   so that every robustness scenario can arm fail points. Always built here, unless
//!   `OXCD_E2E_BINARY=/path/to/oxcd-failpoints` names one.
//! - [`oxcdctl`]: the command-line client, built here unless cargo set
//!   `CARGO_BIN_EXE_oxcdctl` (the tests of its own package).
//! - [`ETCD`]: Debian's etcd 3.4, the reference that tests compare oxcd against.
//!
//! Building happens once per process: `cargo build -p oxcd --bin <name>` (with
//! `--features failpoints` for the fail-point build), in the target dir and profile of the
//! running executable (found from `std::env::current_exe()`: `target/<profile>/deps/<test>`
//! or `target/<profile>/<bin>`). When it is up to date this takes a second; the first time it
//! compiles the `oxcd` crate (once more, with the feature, for `oxcd-failpoints`). The result
//! lands in `target/<profile>/<name>`; `oxcd-failpoints` is a name no plain build writes, so
//! the two builds never overwrite each other.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use crate::error::{Error, Result};

/// Names a prebuilt `oxcd-failpoints` binary to use instead of building one.
pub const FAILPOINTS_BINARY_VAR: &str = "OXCD_E2E_BINARY";

/// Debian's etcd 3.4 (package etcd-server).
pub const ETCD: &str = "/usr/bin/etcd";

/// The plain `oxcd` server binary.
pub fn oxcd() -> Result<PathBuf> {
    static BINARY: Mutex<Option<PathBuf>> = Mutex::new(None);
    once(&BINARY, || match std::env::var_os("CARGO_BIN_EXE_oxcd") {
        Some(path) => Ok(PathBuf::from(path)),
        None => build("oxcd", &[]),
    })
}

/// The `oxcd-failpoints` server binary (the `failpoints` feature), built on first use.
pub fn oxcd_failpoints() -> Result<PathBuf> {
    static BINARY: Mutex<Option<PathBuf>> = Mutex::new(None);
    once(&BINARY, || match std::env::var_os(FAILPOINTS_BINARY_VAR) {
        Some(path) => Ok(PathBuf::from(path)),
        None => build("oxcd-failpoints", &["--features", "failpoints"]),
    })
}

/// `oxcdctl`, the command-line client (package `oxcdctl`), built on first use: its tests
/// and the server's compare it with Debian's etcdctl.
pub fn oxcdctl() -> Result<PathBuf> {
    static BINARY: Mutex<Option<PathBuf>> = Mutex::new(None);
    once(&BINARY, || {
        match std::env::var_os("CARGO_BIN_EXE_oxcdctl") {
            Some(path) => Ok(PathBuf::from(path)),
            None => build_in("oxcdctl", "oxcdctl", &[]),
        }
    })
}

/// Debian's etcd; panics if it is missing (CI installs it).
pub fn etcd() -> PathBuf {
    assert!(
        Path::new(ETCD).exists(),
        "{ETCD} is missing: install Debian's etcd-server package (apt-get install etcd-server)"
    );
    PathBuf::from(ETCD)
}

/// `find`'s answer, found once per process. A std Mutex, held while building: concurrent
/// tests wait for the one build rather than start their own; a failed build is tried again.
fn once(cell: &Mutex<Option<PathBuf>>, find: impl FnOnce() -> Result<PathBuf>) -> Result<PathBuf> {
    let mut found = cell.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(path) = &*found {
        return Ok(path.clone());
    }
    let path = find()?;
    *found = Some(path.clone());
    Ok(path)
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

fn build(name: &str, features: &[&str]) -> Result<PathBuf> {
    build_in("oxcd", name, features)
}

/// Builds the binary `name` of `package`.
fn build_in(package: &str, name: &str, features: &[&str]) -> Result<PathBuf> {
    let (target, profile) = target_layout()?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    // Cargo sets CARGO_MANIFEST_DIR for the tests it runs. It is read at run time first:
    // the compile-time value names whichever checkout first built this test binary, and
    // cargo reuses that binary for another checkout of the same sources sharing the target
    // dir. Any member's directory will do: cargo finds the workspace from it.
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    let cargo_profile = if profile == "debug" { "dev" } else { &profile };
    let output = Command::new(&cargo)
        .current_dir(&manifest_dir)
        .env("CARGO_TARGET_DIR", &target)
        .args(["build", "--quiet", "-p", package, "--bin", name])
        .args(features)
        .args(["--profile", cargo_profile])
        .output()
        .map_err(|e| Error::Binary(format!("running {}: {e}", Path::new(&cargo).display())))?;
    if !output.status.success() {
        let skip = if name == "oxcd-failpoints" {
            format!("; set {FAILPOINTS_BINARY_VAR} to a built binary to skip it")
        } else {
            String::new()
        };
        return Err(Error::Binary(format!(
            "cargo build of {name} failed ({}){skip}:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    let binary = target.join(&profile).join(name);
    if !binary.exists() {
        return Err(Error::Binary(format!(
            "cargo built {name} but {} does not exist",
            binary.display()
        )));
    }
    Ok(binary)
}
