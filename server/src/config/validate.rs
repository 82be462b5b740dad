//! Validation with etcd's checks and messages: derived defaults, URLs, raft timing,
//! request limits, logger, TLS files and the bootstrap `--initial-cluster`.

use std::collections::HashSet;
use std::net::SocketAddr;

use url::Url;

use super::Config;
use super::clustering::{ClusterState, DEFAULT_INITIAL_CLUSTER};
use super::error::ConfigError;
use super::member::DEFAULT_NAME;
use super::urls::{
    check_bind_urls, check_host_urls, initial_cluster_from_name, parse_initial_cluster,
    socket_addrs, url_display, urls_map_string,
};

/// etcd's upper bound for `--election-timeout`, in milliseconds.
pub const MAX_ELECTION_MS: u64 = 50_000;

impl Config {
    /// Fill derived defaults (etcd's behaviour) and check the configuration.
    ///
    /// * `data_dir` "" becomes `"<name>.etcd"`;
    /// * `initial_cluster` "" (or etcd's default while `--name` is not
    ///   "default") becomes `"<name>=<url>"` for each initial advertise peer URL.
    ///
    /// Idempotent; [`Config::load`] already calls it. The checks run in etcd's order, so
    /// a configuration with several faults reports the one etcd would.
    pub fn validate(&mut self) -> Result<(), ConfigError> {
        self.fill_derived_defaults()?;
        self.check_urls()?;
        self.check_raft_timing()?;
        if self.advertise_client_urls_missing {
            return Err(ConfigError::Invalid(
                "--advertise-client-urls is required when --listen-client-urls is set explicitly"
                    .into(),
            ));
        }
        self.auto_compaction()?;
        self.check_request_limits()?;
        self.check_logger()?;
        self.check_tls()?;
        // Like etcd, the initial cluster only matters to a member that has no data yet (and
        // not at all to one that bootstraps through a discovery service, or to a proxy,
        // which needs only its peer URLs).
        if self.clustering.discovery.is_empty()
            && self.proxy.proxy == super::ProxyMode::Off
            && !self
                .data_dir_path()
                .join("member")
                .join("identity")
                .exists()
        {
            self.verify_initial_cluster()?;
        }
        Ok(())
    }

    fn fill_derived_defaults(&mut self) -> Result<(), ConfigError> {
        if self.member.data_dir.is_empty() {
            self.member.data_dir = format!("{}.etcd", self.member.name);
        }
        // The derived --initial-cluster is built from these URLs: reject bad ones first.
        self.initial_advertise_peer_url_list()?;
        if self.clustering.initial_cluster.is_empty()
            || (self.member.name != DEFAULT_NAME
                && self.clustering.initial_cluster == DEFAULT_INITIAL_CLUSTER)
        {
            self.clustering.initial_cluster = initial_cluster_from_name(
                &self.member.name,
                &self.clustering.initial_advertise_peer_urls,
            );
        }
        Ok(())
    }

    fn check_urls(&self) -> Result<(), ConfigError> {
        // Bind URLs must be IP literals or localhost.
        socket_addrs(&self.listen_peer_url_list()?)?;
        check_bind_urls(&self.listen_client_url_list()?)?;
        check_bind_urls(&self.listen_metrics_url_list()?)?;
        check_host_urls(&self.initial_advertise_peer_url_list()?)?;
        check_host_urls(&self.advertise_client_url_list()?)?;
        // `--cors`: `*`, or origins as etcd's URL flags take them (scheme://host:port).
        let cors = self.security.cors.as_str();
        if !cors.is_empty() && cors != "*" {
            super::urls::parse_urls("cors", cors, super::urls::CLIENT_URL_SCHEMES, true)?;
        }
        Ok(())
    }

    fn check_raft_timing(&self) -> Result<(), ConfigError> {
        if self.member.heartbeat_interval == 0 {
            return Err(ConfigError::Invalid(format!(
                "--heartbeat-interval must be >0 (set to {}ms)",
                self.member.heartbeat_interval
            )));
        }
        if self.member.election_timeout == 0 {
            return Err(ConfigError::Invalid(format!(
                "--election-timeout must be >0 (set to {}ms)",
                self.member.election_timeout
            )));
        }
        if 5 * self.member.heartbeat_interval > self.member.election_timeout {
            return Err(ConfigError::Invalid(format!(
                "--election-timeout[{}ms] should be at least as 5 times as --heartbeat-interval[{}ms]",
                self.member.election_timeout, self.member.heartbeat_interval
            )));
        }
        if self.member.election_timeout > MAX_ELECTION_MS {
            return Err(ConfigError::Invalid(format!(
                "--election-timeout[{}ms] is too long, and should be set less than {}ms",
                self.member.election_timeout, MAX_ELECTION_MS
            )));
        }
        Ok(())
    }

    fn check_request_limits(&self) -> Result<(), ConfigError> {
        if self.member.max_request_bytes == 0 {
            return Err(ConfigError::Invalid(format!(
                "--max-request-bytes must be >0 (set to {})",
                self.member.max_request_bytes
            )));
        }
        if self.member.max_txn_ops == 0 {
            return Err(ConfigError::Invalid(format!(
                "--max-txn-ops must be >0 (set to {})",
                self.member.max_txn_ops
            )));
        }
        Ok(())
    }

    fn check_logger(&self) -> Result<(), ConfigError> {
        match self.logging.logger.as_str() {
            "zap" => Ok(()),
            "capnslog" => Err(ConfigError::Invalid(
                "--logger=capnslog is removed in v3.5".into(),
            )),
            other => Err(ConfigError::Invalid(format!(
                "unknown logger option {other:?}"
            ))),
        }
    }

    /// etcd's bootstrap checks on `--initial-cluster` (`VerifyBootstrap` /
    /// `VerifyJoinExisting`): the local name must be present, a new member's
    /// URLs must match `--initial-advertise-peer-urls`, and no URL may appear
    /// twice. (etcd skips these when the member restarts from an existing WAL.)
    pub fn verify_initial_cluster(&self) -> Result<(), ConfigError> {
        let members = parse_initial_cluster(&self.clustering.initial_cluster)?;
        let cluster_str = urls_map_string(&members);
        if cluster_str.is_empty() {
            return Err(ConfigError::Invalid(
                "initial cluster unset and no discovery URL found".into(),
            ));
        }
        let local: Vec<Url> = members
            .iter()
            .filter(|(n, _)| *n == self.member.name)
            .map(|(_, u)| u.clone())
            .collect();
        if local.is_empty() {
            return Err(ConfigError::Invalid(format!(
                "couldn't find local name {:?} in the initial cluster configuration",
                self.member.name
            )));
        }
        if self.clustering.initial_cluster_state == ClusterState::New {
            let apurls = self.initial_advertise_peer_url_list()?;
            advertise_matches_cluster(&self.member.name, &apurls, &local)?;
        }
        let mut seen = HashSet::new();
        for (_, u) in &members {
            if !seen.insert(u.as_str().to_owned()) {
                return Err(ConfigError::Invalid(format!(
                    "initial cluster {cluster_str} has duplicate url"
                )));
            }
        }
        Ok(())
    }

    /// Cert and key come in pairs, and a TLS listener needs a certificate (or auto TLS).
    fn check_tls(&self) -> Result<(), ConfigError> {
        for (cert, key) in [
            (&self.security.cert_file, &self.security.key_file),
            (&self.security.peer_cert_file, &self.security.peer_key_file),
        ] {
            if cert.is_empty() != key.is_empty() {
                return Err(ConfigError::Invalid(format!(
                    "KeyFile and CertFile must both be present[key: {key}, cert: {cert}]"
                )));
            }
        }
        let client_tls = !self.security.cert_file.is_empty() || self.security.auto_tls;
        for u in self.listen_client_url_list()? {
            if matches!(u.scheme(), "https" | "unixs") && !client_tls {
                return Err(ConfigError::Invalid(format!(
                    "TLS key/cert (--cert-file, --key-file) must be provided for client url {} with HTTPS scheme",
                    url_display(&u)
                )));
            }
        }
        for u in self.listen_metrics_url_list()? {
            if u.scheme() == "https" && !client_tls {
                return Err(ConfigError::Invalid(format!(
                    "TLS key/cert (--cert-file, --key-file) must be provided for metrics url {} with HTTPS scheme",
                    url_display(&u)
                )));
            }
        }
        let peer_tls = !self.security.peer_cert_file.is_empty() || self.security.peer_auto_tls;
        for u in self.listen_peer_url_list()? {
            if u.scheme() == "https" && !peer_tls {
                return Err(ConfigError::Invalid(format!(
                    "TLS key/cert (--peer-cert-file, --peer-key-file) must be provided for peer url {} with HTTPS scheme",
                    url_display(&u)
                )));
            }
        }
        Ok(())
    }
}

/// etcd's `advertiseMatchesCluster`.
fn advertise_matches_cluster(name: &str, apurls: &[Url], local: &[Url]) -> Result<(), ConfigError> {
    let set = |us: &[Url]| -> Vec<String> {
        let mut v: Vec<String> = us.iter().map(url_display).collect();
        v.sort();
        v.dedup();
        v
    };
    let (ap, init) = (set(apurls), set(local));
    if ap == init {
        return Ok(());
    }
    // Fall back to comparing resolved addresses (localhost == 127.0.0.1).
    let resolved = |us: &[Url]| -> Option<Vec<(String, SocketAddr)>> {
        let addrs = socket_addrs(us).ok()?;
        let mut v: Vec<(String, SocketAddr)> = us
            .iter()
            .map(|u| u.scheme().to_owned())
            .zip(addrs)
            .collect();
        v.sort();
        v.dedup();
        Some(v)
    };
    if let (Some(a), Some(b)) = (resolved(apurls), resolved(local))
        && a == b
    {
        return Ok(());
    }
    let ap_str = ap.join(",");
    let missing: Vec<String> = init
        .iter()
        .filter(|u| !ap.contains(u))
        .map(|u| format!("{name}={u}"))
        .collect();
    if !missing.is_empty() {
        return Err(ConfigError::Invalid(format!(
            "--initial-cluster has {} but missing from --initial-advertise-peer-urls={ap_str}",
            missing.join(",")
        )));
    }
    let umap = ap
        .iter()
        .map(|u| format!("{name}={u}"))
        .collect::<Vec<_>>()
        .join(",");
    let missing: Vec<String> = ap.iter().filter(|u| !init.contains(u)).cloned().collect();
    if !missing.is_empty() {
        return Err(ConfigError::Invalid(format!(
            "--initial-advertise-peer-urls has {} but missing from --initial-cluster={umap}",
            missing.join(",")
        )));
    }
    Err(ConfigError::Invalid(format!(
        "failed to resolve {ap_str} to match --initial-cluster={umap}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::{err, load, load_env};

    #[test]
    fn cors_takes_a_star_or_origins_with_ports_as_etcd_does() {
        assert!(load(&["--cors", "*"]).is_ok());
        assert!(load(&["--cors", "http://a.example:8080,https://b.example:443"]).is_ok());
        let e = err(&["--cors", "http://example.org"]);
        assert!(e.contains("does not have the form \"host:port\""), "{e}");
    }

    #[test]
    fn name_derives_data_dir_and_initial_cluster() {
        let c = load(&[
            "--name",
            "n1",
            "--initial-advertise-peer-urls",
            "http://127.0.0.1:12380",
        ])
        .unwrap();
        assert_eq!(c.member.data_dir, "n1.etcd");
        assert_eq!(c.clustering.initial_cluster, "n1=http://127.0.0.1:12380");
        let m = c.initial_cluster_members().unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].0, "n1");

        let c = load(&["--initial-cluster="]).unwrap();
        assert_eq!(
            c.clustering.initial_cluster,
            "default=http://localhost:2380"
        );
    }

    #[test]
    fn validation_messages() {
        assert_eq!(
            err(&["--election-timeout=400"]),
            "--election-timeout[400ms] should be at least as 5 times as --heartbeat-interval[100ms]"
        );
        assert_eq!(
            err(&["--election-timeout=60000", "--heartbeat-interval=1000"]),
            "--election-timeout[60000ms] is too long, and should be set less than 50000ms"
        );
        assert_eq!(
            err(&["--heartbeat-interval=0"]),
            "--heartbeat-interval must be >0 (set to 0ms)"
        );
        assert!(load(&["--election-timeout=500"]).is_ok());
        assert_eq!(
            err(&[
                "--name",
                "x",
                "--initial-cluster",
                "y=http://localhost:2380"
            ]),
            "couldn't find local name \"x\" in the initial cluster configuration"
        );
        assert_eq!(
            err(&["--initial-cluster", "default=http://10.0.0.1:2380"]),
            "--initial-cluster has default=http://10.0.0.1:2380 but missing from --initial-advertise-peer-urls=http://localhost:2380"
        );
        assert_eq!(
            err(&["--initial-advertise-peer-urls=http://localhost:2380,http://10.0.0.2:2380",]),
            "--initial-advertise-peer-urls has http://10.0.0.2:2380 but missing from --initial-cluster=default=http://10.0.0.2:2380,default=http://localhost:2380"
        );
        // localhost and 127.0.0.1 match after resolution.
        assert!(load(&["--initial-cluster=default=http://127.0.0.1:2380"]).is_ok());
        // Joining an existing cluster does not require advertise URLs to match.
        assert!(
            load(&[
                "--initial-cluster-state=existing",
                "--initial-cluster=default=http://10.0.0.1:2380,b=http://10.0.0.2:2380",
            ])
            .is_ok()
        );
        assert_eq!(
            err(&["--initial-cluster=default=http://localhost:2380,b=http://localhost:2380"]),
            "initial cluster b=http://localhost:2380,default=http://localhost:2380 has duplicate url"
        );
        assert!(Config::default().clustering.initial_cluster_state == "new");
        assert_eq!(ClusterState::Existing.to_string(), "existing");
        let e = err(&["--initial-cluster-state=bogus"]);
        assert!(e.contains("possible values: new, existing"), "{e}");
        let e = err(&["--log-level=verbose"]);
        assert!(e.contains("possible values"), "{e}");
        assert!(load(&["--log-level=DEBUG"]).is_ok());
        assert_eq!(
            err(&["--logger=capnslog"]),
            "--logger=capnslog is removed in v3.5"
        );
        assert_eq!(err(&["--logger=foo"]), "unknown logger option \"foo\"");
        assert_eq!(
            err(&["--max-request-bytes=0"]),
            "--max-request-bytes must be >0 (set to 0)"
        );
        assert_eq!(
            err(&["--listen-client-urls=http://127.0.0.1:2379"]),
            "--advertise-client-urls is required when --listen-client-urls is set explicitly"
        );
        assert!(load_env(&[], &[("ETCD_LISTEN_CLIENT_URLS", "http://127.0.0.1:2379")]).is_err());
        assert_eq!(
            err(&[
                "--listen-client-urls=https://127.0.0.1:2379",
                "--advertise-client-urls=https://127.0.0.1:2379"
            ]),
            "TLS key/cert (--cert-file, --key-file) must be provided for client url https://127.0.0.1:2379 with HTTPS scheme"
        );
        assert!(
            load(&[
                "--listen-client-urls=https://127.0.0.1:2379",
                "--advertise-client-urls=https://127.0.0.1:2379",
                "--auto-tls"
            ])
            .is_ok()
        );
        assert_eq!(
            err(&["--cert-file=a.pem"]),
            "KeyFile and CertFile must both be present[key: , cert: a.pem]"
        );
        // Validation of a hand-built config is idempotent.
        let mut c = Config::default();
        c.validate().unwrap();
        c.validate().unwrap();
        assert_eq!(c.member.data_dir, "default.etcd");
    }
}
