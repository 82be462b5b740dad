//! `--auto-tls` / `--peer-auto-tls`: a self-signed certificate for the listen URLs' hosts,
//! written under the data dir as etcd's `transport.SelfCert` does (`fixtures/client`,
//! `fixtures/peer`), so the port then reads it like any other certificate files.

use std::path::{Path, PathBuf};

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, SanType};

use crate::error::{Error, Result};

/// Writes `cert.pem` and `key.pem` for `hosts` into `dir`, valid for `years` from now,
/// and returns their paths. An existing pair is kept, as etcd keeps its fixtures.
pub fn self_signed(dir: &Path, hosts: &[String], years: u32) -> Result<(PathBuf, PathBuf)> {
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    if cert_path.exists() && key_path.exists() {
        return Ok((cert_path, key_path));
    }
    std::fs::create_dir_all(dir)?;
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, "etcd");
    params.distinguished_name = name;
    let now = time_now();
    params.not_before = now;
    params.not_after = now + std::time::Duration::from_secs(u64::from(years.max(1)) * 365 * 86_400);
    params.subject_alt_names = hosts
        .iter()
        .map(
            |h| match h.trim_matches(['[', ']']).parse::<std::net::IpAddr>() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) => h
                    .clone()
                    .try_into()
                    .map(SanType::DnsName)
                    .map_err(|e| Error::InvalidArgument(format!("host {h}: {e}"))),
            },
        )
        .collect::<Result<_>>()?;
    params.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let key = KeyPair::generate().map_err(Error::internal)?;
    let cert = params.self_signed(&key).map_err(Error::internal)?;
    std::fs::write(&cert_path, cert.pem())?;
    write_private(&key_path, key.serialize_pem().as_bytes())?;
    Ok((cert_path, key_path))
}

fn time_now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

/// A key file only its owner can read.
fn write_private(path: &Path, contents: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(contents)?;
    Ok(())
}
