//! The YAML config file in etcd's format, read into `(flag, value)` pairs that loading
//! passes to the command-line parser. Keys are flag names; TLS settings sit under
//! `client-transport-security` / `peer-transport-security`; unknown keys are ignored,
//! like etcd.

use std::path::Path;

use serde_yaml::{Mapping, Value};

use super::error::ConfigError;
use super::load::FlagTable;

/// Duration-valued flags: in the YAML file an integer value means nanoseconds.
const DURATION_FLAGS: &[&str] = &[
    "grpc-keepalive-min-time",
    "grpc-keepalive-interval",
    "grpc-keepalive-timeout",
    "experimental-watch-progress-notify-interval",
    "experimental-corrupt-check-time",
];

/// Flatten etcd's YAML config into `(flag-name, value)` pairs understood by
/// the command-line parser.
pub(super) fn yaml_to_flag_values(
    path: &Path,
    text: &str,
    flags: &FlagTable,
) -> Result<Vec<(String, String)>, ConfigError> {
    let perr = |message: String| ConfigError::ParseFile {
        path: path.to_owned(),
        message,
    };
    let doc: Value = serde_yaml::from_str(text).map_err(|e| perr(e.to_string()))?;
    let map = match doc {
        Value::Null => return Ok(Vec::new()),
        Value::Mapping(m) => m,
        _ => return Err(perr("top level must be a mapping".into())),
    };
    let mut out = Vec::new();
    let mut push = |flag: &str, v: &Value| -> Result<(), ConfigError> {
        if let Some(s) = yaml_scalar(flag, v, flags.bool_flags.contains(flag)).map_err(&perr)? {
            out.push((flag.to_owned(), s));
        }
        Ok(())
    };
    for (k, v) in &map {
        let Some(key) = k.as_str() else {
            return Err(perr(format!("non-string key {k:?}")));
        };
        match key {
            "client-transport-security" | "peer-transport-security" => {
                let peer = key == "peer-transport-security";
                let sub: &Mapping = match v {
                    Value::Null => continue,
                    Value::Mapping(m) => m,
                    _ => return Err(perr(format!("{key} must be a mapping"))),
                };
                for (k2, v2) in sub {
                    let Some(flag) = k2.as_str().and_then(|k2| transport_security_flag(peer, k2))
                    else {
                        continue; // unknown keys are ignored, like etcd
                    };
                    push(flag, v2)?;
                }
            }
            "config-file" => {}
            k if flags.long_to_id.contains_key(k) => push(k, v)?,
            _ => {} // unknown keys are ignored, like etcd
        }
    }
    Ok(out)
}

/// The flag for `key` under `client-transport-security` (or `peer-transport-security`
/// when `peer`), as etcd's `securityConfig` names its fields.
fn transport_security_flag(peer: bool, key: &str) -> Option<&'static str> {
    Some(match (peer, key) {
        (false, "cert-file") => "cert-file",
        (false, "key-file") => "key-file",
        (false, "client-cert-auth") => "client-cert-auth",
        (false, "trusted-ca-file") => "trusted-ca-file",
        (false, "auto-tls") => "auto-tls",
        (false, "crl-file") => "client-crl-file",
        (true, "cert-file") => "peer-cert-file",
        (true, "key-file") => "peer-key-file",
        (true, "client-cert-auth") => "peer-client-cert-auth",
        (true, "trusted-ca-file") => "peer-trusted-ca-file",
        (true, "auto-tls") => "peer-auto-tls",
        (true, "crl-file") => "peer-crl-file",
        (true, "allowed-cn") => "peer-cert-allowed-cn",
        (true, "allowed-hostname") => "peer-cert-allowed-hostname",
        _ => return None,
    })
}

/// One YAML value as the text its flag takes on the command line; a list becomes the
/// comma-separated form that etcd's list flags accept.
fn yaml_scalar(flag: &str, v: &Value, is_bool: bool) -> Result<Option<String>, String> {
    Ok(match v {
        Value::Null => None,
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => {
            if DURATION_FLAGS.contains(&flag) && (n.is_i64() || n.is_u64()) {
                Some(format!("{n}ns"))
            } else {
                Some(n.to_string())
            }
        }
        Value::String(s) => {
            // YAML 1.1 booleans, as accepted by etcd's YAML decoder.
            let s = if is_bool {
                match s.as_str() {
                    "yes" | "Yes" | "YES" | "on" | "On" | "ON" | "y" | "Y" => "true".to_owned(),
                    "no" | "No" | "NO" | "off" | "Off" | "OFF" | "n" | "N" => "false".to_owned(),
                    _ => s.clone(),
                }
            } else {
                s.clone()
            };
            Some(s)
        }
        Value::Sequence(seq) => {
            let mut parts = Vec::new();
            for item in seq {
                if let Some(s) = yaml_scalar(flag, item, is_bool)? {
                    parts.push(s);
                }
            }
            Some(parts.join(","))
        }
        Value::Mapping(_) => return Err(format!("{flag} must be a scalar or a list")),
        Value::Tagged(t) => return yaml_scalar(flag, &t.value, is_bool),
    })
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    use crate::config::tests::{load, load_env, yaml_file};
    use crate::config::{AutoCompaction, ClusterState, ConfigError, LogLevel, MetricsLevel};

    #[test]
    fn config_file_fills_unset_values_only() {
        let f = yaml_file(
            r#"
name: 'file-name'
data-dir: /file/data
wal-dir: /file/wal
snapshot-count: 777
heartbeat-interval: 50
election-timeout: 500
listen-client-urls: http://127.0.0.1:3379
advertise-client-urls: http://127.0.0.1:3379
listen-peer-urls: http://127.0.0.1:3380
initial-advertise-peer-urls: http://127.0.0.1:3380
initial-cluster: file-name=http://127.0.0.1:3381,flag-name=http://127.0.0.1:3380
initial-cluster-state: 'existing'
initial-cluster-token: 'file-token'
auto-compaction-mode: periodic
auto-compaction-retention: "1"
enable-v2: true
log-level: debug
log-outputs: [stderr]
cipher-suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384]
grpc-keepalive-min-time: 3000000000
experimental-watch-progress-notify-interval: 7s
strict-reconfig-check: false
unknown-key: ignored
client-transport-security:
  cert-file: /c.pem
  key-file: /k.pem
  client-cert-auth: true
  trusted-ca-file: /ca.pem
  auto-tls: false
peer-transport-security:
  cert-file: /pc.pem
  key-file: /pk.pem
  client-cert-auth: yes
  trusted-ca-file: /pca.pem
  auto-tls: false
"#,
        );
        let path = f.path().to_str().unwrap().to_owned();
        let c = load_env(
            &[
                "--config-file",
                &path,
                "--name=flag-name",
                "--snapshot-count=5",
            ],
            &[("ETCD_INITIAL_CLUSTER_TOKEN", "env-token")],
        )
        .unwrap();
        // flags win
        assert_eq!(c.member.name, "flag-name");
        assert_eq!(c.member.snapshot_count, 5);
        // env wins over file
        assert_eq!(c.clustering.initial_cluster_token, "env-token");
        // file fills the rest
        assert_eq!(c.member.data_dir, "/file/data");
        assert_eq!(c.wal_dir_path(), Some(PathBuf::from("/file/wal")));
        assert_eq!(
            (c.member.heartbeat_interval, c.member.election_timeout),
            (50, 500)
        );
        assert_eq!(
            c.listen_client_addrs().unwrap(),
            vec!["127.0.0.1:3379".parse().unwrap()]
        );
        assert_eq!(c.clustering.initial_cluster_state, ClusterState::Existing);
        assert_eq!(
            c.auto_compaction().unwrap(),
            AutoCompaction::Periodic(Duration::from_secs(3600))
        );
        assert!(c.clustering.enable_v2);
        assert!(!c.clustering.strict_reconfig_check);
        assert_eq!(c.logging.log_level, LogLevel::Debug);
        assert_eq!(c.logging.log_outputs, vec!["stderr"]);
        assert_eq!(c.security.cipher_suites.len(), 2);
        assert_eq!(c.member.grpc_keepalive_min_time, Duration::from_secs(3));
        assert_eq!(
            c.experimental.experimental_watch_progress_notify_interval,
            Duration::from_secs(7)
        );
        assert_eq!(
            (c.security.cert_file.as_str(), c.security.key_file.as_str()),
            ("/c.pem", "/k.pem")
        );
        assert!(c.security.client_cert_auth);
        assert_eq!(c.security.trusted_ca_file, "/ca.pem");
        assert_eq!(
            (
                c.security.peer_cert_file.as_str(),
                c.security.peer_key_file.as_str()
            ),
            ("/pc.pem", "/pk.pem")
        );
        assert!(c.security.peer_client_cert_auth);
        assert_eq!(c.security.peer_trusted_ca_file, "/pca.pem");
        assert_eq!(c.config_file.as_deref(), Some(Path::new(&path)));

        // Env-provided config file path works too, and a flag still wins.
        let c = load_env(&["--heartbeat-interval=10"], &[("ETCD_CONFIG_FILE", &path)]).unwrap();
        assert_eq!(c.member.name, "file-name");
        assert_eq!(c.member.heartbeat_interval, 10);

        // listen-client-urls from the file does not require advertise (etcd file mode).
        let g = yaml_file("listen-client-urls: http://127.0.0.1:4379\n");
        let c = load(&["--config-file", g.path().to_str().unwrap()]).unwrap();
        assert_eq!(c.clustering.advertise_client_urls, "http://localhost:2379");
        // advertise from the file satisfies a listen flag.
        let g = yaml_file("advertise-client-urls: http://10.1.1.1:2379\n");
        assert!(
            load(&[
                "--config-file",
                g.path().to_str().unwrap(),
                "--listen-client-urls=http://0.0.0.0:2379"
            ])
            .is_ok()
        );
    }

    #[test]
    fn config_file_errors() {
        let e = load(&["--config-file", "/nonexistent/oxcd.yaml"]).unwrap_err();
        assert!(matches!(e, ConfigError::ReadFile { .. }), "{e}");
        let f = yaml_file("name: [unterminated\n");
        let e = load(&["--config-file", f.path().to_str().unwrap()]).unwrap_err();
        assert!(matches!(e, ConfigError::ParseFile { .. }), "{e}");
        let f = yaml_file("heartbeat-interval: fast\n");
        let e = load(&["--config-file", f.path().to_str().unwrap()]).unwrap_err();
        assert!(matches!(e, ConfigError::ParseFile { .. }), "{e}");
        assert!(e.to_string().contains("heartbeat-interval"), "{e}");
        let f = yaml_file("");
        assert!(load(&["--config-file", f.path().to_str().unwrap()]).is_ok());
    }

    #[test]
    fn config_file_fills_flags_of_every_group() {
        let f = yaml_file(
            r#"
name: file-name
initial-cluster-token: file-token
peer-transport-security:
  allowed-cn: peer.example
auth-token-ttl: 600
log-level: warn
metrics: extensive
force-new-cluster: true
unsafe-no-fsync: on
experimental-corrupt-check-time: 90000000000
"#,
        );
        let c = load(&["--config-file", f.path().to_str().unwrap()]).unwrap();
        assert_eq!(c.member.name, "file-name");
        assert_eq!(c.clustering.initial_cluster_token, "file-token");
        assert_eq!(c.security.peer_cert_allowed_cn, "peer.example");
        assert_eq!(c.auth.auth_token_ttl, 600);
        assert_eq!(c.logging.log_level, LogLevel::Warn);
        assert_eq!(c.monitoring.metrics, MetricsLevel::Extensive);
        assert!(c.unsafe_features.force_new_cluster && c.unsafe_features.unsafe_no_fsync);
        assert_eq!(
            c.experimental.experimental_corrupt_check_time,
            Duration::from_secs(90)
        );
    }
}
