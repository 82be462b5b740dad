//! What etcd's security flags ask of one port: its files, whether the other side must show
//! a certificate, which peers may connect, and the protocol versions and cipher suites.

use std::path::PathBuf;

use rustls::{SupportedCipherSuite, SupportedProtocolVersion};

use crate::config::Config;
use crate::error::{Error, Result};

/// The TLS of one port, as the flags give it (auto TLS already resolved to files).
#[derive(Debug, Clone)]
pub struct TlsSettings {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// The CA bundle that client certificates (and, on the peer port, other members'
    /// server certificates) must chain to.
    pub trusted_ca_file: Option<PathBuf>,
    pub crl_file: Option<PathBuf>,
    /// Refuse connections without a client certificate that chains to the trusted CA.
    pub client_cert_auth: bool,
    /// Certificates made by auto TLS: no CA can vouch for the other members' certificates,
    /// so dialing peers skips verification, as etcd's `InsecureSkipVerify` does.
    pub self_signed: bool,
    /// `--peer-cert-allowed-cn`: the Common Name a peer's client certificate must carry.
    pub allowed_cn: Option<String>,
    /// `--peer-cert-allowed-hostname`: a DNS or IP name a peer's certificate must carry.
    pub allowed_hostname: Option<String>,
    pub versions: Vec<&'static SupportedProtocolVersion>,
    /// TLS 1.2 suites to offer; empty: the provider's. TLS 1.3's suites are not
    /// configurable, as in Go.
    pub cipher_suites: Vec<SupportedCipherSuite>,
}

impl TlsSettings {
    /// The client port's TLS: from `--cert-file`/`--key-file` (or auto TLS, whose files
    /// the caller made), `None` when neither is set.
    pub fn client_port(
        cfg: &Config,
        auto_files: Option<(PathBuf, PathBuf)>,
    ) -> Result<Option<Self>> {
        let s = &cfg.security;
        let flags = PortFlags {
            cert_file: &s.cert_file,
            key_file: &s.key_file,
            trusted_ca_file: &s.trusted_ca_file,
            crl_file: &s.client_crl_file,
            client_cert_auth: s.client_cert_auth,
            allowed_cn: "",
            allowed_hostname: "",
        };
        TlsSettings::port(cfg, flags, auto_files)
    }

    /// The peer port's TLS, and the TLS members dial each other with.
    pub fn peer_port(cfg: &Config, auto_files: Option<(PathBuf, PathBuf)>) -> Result<Option<Self>> {
        let s = &cfg.security;
        let flags = PortFlags {
            cert_file: &s.peer_cert_file,
            key_file: &s.peer_key_file,
            trusted_ca_file: &s.peer_trusted_ca_file,
            crl_file: &s.peer_crl_file,
            client_cert_auth: s.peer_client_cert_auth,
            allowed_cn: &s.peer_cert_allowed_cn,
            allowed_hostname: &s.peer_cert_allowed_hostname,
        };
        TlsSettings::port(cfg, flags, auto_files)
    }

    /// A port's TLS from its flags (or auto TLS's files); `None` without either. etcd refuses
    /// cipher suites that no allowed version would use.
    fn port(
        cfg: &Config,
        flags: PortFlags<'_>,
        auto_files: Option<(PathBuf, PathBuf)>,
    ) -> Result<Option<Self>> {
        let s = &cfg.security;
        let (cert_file, key_file, self_signed) = match (flags.cert_file.is_empty(), auto_files) {
            (false, _) => (flags.cert_file.into(), flags.key_file.into(), false),
            (true, Some((cert, key))) => (cert, key, true),
            (true, None) => return Ok(None),
        };
        let settings = TlsSettings {
            cert_file,
            key_file,
            trusted_ca_file: non_empty(flags.trusted_ca_file),
            crl_file: non_empty(flags.crl_file),
            client_cert_auth: flags.client_cert_auth,
            self_signed,
            allowed_cn: non_empty(flags.allowed_cn),
            allowed_hostname: non_empty(flags.allowed_hostname),
            versions: versions(&s.tls_min_version, &s.tls_max_version)?,
            cipher_suites: cipher_suites(&s.cipher_suites)?,
        };
        if !settings.cipher_suites.is_empty() && settings.versions == [&rustls::version::TLS13] {
            return Err(Error::InvalidArgument(
                "cipher suites cannot be configured when only TLS1.3 is enabled".into(),
            ));
        }
        Ok(Some(settings))
    }
}

/// One port's certificate flags (`--cert-file` … or `--peer-cert-file` …).
struct PortFlags<'a> {
    cert_file: &'a str,
    key_file: &'a str,
    trusted_ca_file: &'a str,
    crl_file: &'a str,
    client_cert_auth: bool,
    allowed_cn: &'a str,
    allowed_hostname: &'a str,
}

fn non_empty<T: From<String>>(s: &str) -> Option<T> {
    (!s.is_empty()).then(|| T::from(s.to_owned()))
}

/// `--tls-min-version` .. `--tls-max-version` (empty max: the newest).
fn versions(min: &str, max: &str) -> Result<Vec<&'static SupportedProtocolVersion>> {
    let all = [
        ("TLS1.2", &rustls::version::TLS12),
        ("TLS1.3", &rustls::version::TLS13),
    ];
    let position = |name: &str| {
        all.iter()
            .position(|(n, _)| *n == name)
            .ok_or_else(|| Error::InvalidArgument(format!("unknown TLS version {name:?}")))
    };
    let lo = position(min)?;
    let hi = if max.is_empty() {
        all.len() - 1
    } else {
        position(max)?
    };
    if lo > hi {
        return Err(Error::InvalidArgument(format!(
            "min version ({min}) is greater than max version ({max})"
        )));
    }
    Ok(all[lo..=hi].iter().map(|(_, v)| *v).collect())
}

/// `--cipher-suites`, named as Go's crypto/tls names them. rustls (with ring) has only
/// the AEAD suites with forward secrecy; any other name is refused as etcd refuses an
/// unknown one.
pub fn cipher_suites(names: &[String]) -> Result<Vec<SupportedCipherSuite>> {
    use rustls::crypto::ring::cipher_suite as cs;
    names
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(|name| {
            Ok(match name {
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" => {
                    cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
                }
                "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" => {
                    cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
                }
                "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305"
                | "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256" => {
                    cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
                }
                "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" => {
                    cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
                }
                "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" => {
                    cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
                }
                "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305"
                | "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256" => {
                    cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
                }
                _ => {
                    return Err(Error::InvalidArgument(format!(
                        "unexpected TLS cipher suite {name:?}"
                    )));
                }
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_span_min_to_max() {
        assert_eq!(versions("TLS1.2", "").unwrap().len(), 2);
        assert_eq!(versions("TLS1.3", "").unwrap().len(), 1);
        assert_eq!(versions("TLS1.2", "TLS1.2").unwrap().len(), 1);
        assert!(versions("TLS1.3", "TLS1.2").is_err());
    }

    #[test]
    fn unknown_cipher_suite_is_refused_with_etcds_words() {
        let ok = cipher_suites(&["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256".into()]).unwrap();
        assert_eq!(ok.len(), 1);
        let err = cipher_suites(&["TLS_RSA_WITH_RC4_128_SHA".into()]).unwrap_err();
        assert!(
            err.to_string()
                .contains("unexpected TLS cipher suite \"TLS_RSA_WITH_RC4_128_SHA\""),
            "{err}"
        );
    }
}
