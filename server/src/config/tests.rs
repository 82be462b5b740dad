//! Test helpers shared by the config modules' tests, and tests of the flag set as a whole.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::CommandFactory;

use super::*;

fn no_env(_: &str) -> Option<OsString> {
    None
}

pub(super) fn load(args: &[&str]) -> Result<Config, ConfigError> {
    let mut v = vec!["oxcd"];
    v.extend_from_slice(args);
    Config::load_with_env(v, no_env)
}

pub(super) fn load_env(args: &[&str], env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let mut v = vec!["oxcd"];
    v.extend_from_slice(args);
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::load_with_env(v, move |k| env.get(k).map(OsString::from))
}

pub(super) fn err(args: &[&str]) -> String {
    load(args).unwrap_err().to_string()
}

pub(super) fn yaml_file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

#[test]
fn defaults_match_etcd() {
    let c = load(&[]).unwrap();
    assert_eq!(c.member.name, "default");
    assert_eq!(c.member.data_dir, "default.etcd");
    assert_eq!(c.data_dir_path(), PathBuf::from("default.etcd"));
    assert_eq!(c.wal_dir_path(), None);
    assert_eq!(
        c.clustering.initial_cluster,
        "default=http://localhost:2380"
    );
    assert_eq!(c.clustering.initial_cluster_state, ClusterState::New);
    assert_eq!(c.clustering.initial_cluster_token, "etcd-cluster");
    assert_eq!(
        c.listen_client_addrs().unwrap(),
        vec!["127.0.0.1:2379".parse().unwrap()]
    );
    assert_eq!(
        c.listen_peer_addrs().unwrap(),
        vec!["127.0.0.1:2380".parse().unwrap()]
    );
    assert_eq!(
        c.advertise_client_url_list().unwrap()[0].as_str(),
        "http://localhost:2379/"
    );
    assert_eq!(c.member.max_request_bytes, 1_572_864);
    assert_eq!(c.member.quota_backend_bytes, 0);
    assert_eq!(c.backend_quota_bytes(), Some(2 * 1024 * 1024 * 1024));
    assert_eq!(
        c.clustering.auto_compaction_mode,
        AutoCompactionMode::Periodic
    );
    assert_eq!(c.auto_compaction().unwrap(), AutoCompaction::Disabled);
    assert_eq!(c.heartbeat(), Duration::from_millis(100));
    assert_eq!(c.election(), Duration::from_millis(1000));
    assert_eq!(c.member.snapshot_count, 100_000);
    assert_eq!(c.logging.log_level, LogLevel::Info);
    assert_eq!(c.logging.logger, "zap");
    assert_eq!(c.logging.log_outputs, vec!["default"]);
    assert_eq!(c.listen_metrics_url_list().unwrap(), vec![]);
    assert_eq!(c.member.max_txn_ops, 128);
    assert_eq!(c.member.grpc_keepalive_min_time, Duration::from_secs(5));
    assert_eq!(c.member.grpc_keepalive_interval, Duration::from_secs(7200));
    assert_eq!(c.member.grpc_keepalive_timeout, Duration::from_secs(20));
    assert!(
        !c.clustering.enable_v2
            && !c.security.auto_tls
            && !c.security.client_cert_auth
            && !c.unsafe_features.force_new_cluster
    );
    assert!(c.clustering.strict_reconfig_check && c.clustering.pre_vote);
    assert_eq!(c.monitoring.metrics, MetricsLevel::Basic);
    assert_eq!(
        c.experimental.experimental_watch_progress_notify_interval,
        Duration::from_secs(600)
    );
    assert_eq!((c.member.max_snapshots, c.member.max_wals), (5, 5));
    assert!(c.security.cipher_suites.is_empty());
    assert_eq!(c.config_file, None);
    let d = Config::default();
    assert_eq!(d.member.name, "default");
    assert_eq!(d.member.data_dir, "");
}

#[test]
fn env_names_follow_etcd() {
    for arg in Config::command().get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if long == "help" || long == "version" {
            continue;
        }
        let expected = format!("ETCD_{}", long.to_uppercase().replace('-', "_"));
        assert_eq!(
            arg.get_env().map(|e| e.to_string_lossy().into_owned()),
            Some(expected),
            "{long}"
        );
    }
}

#[test]
fn help_and_version_are_clap_errors() {
    let e = load(&["--help"]).unwrap_err();
    let ConfigError::Args(e) = e else { panic!() };
    assert_eq!(e.kind(), clap::error::ErrorKind::DisplayHelp);
    assert!(e.to_string().contains("--initial-cluster-state"));
    let ConfigError::Args(e) = load(&["-version"]).unwrap_err() else {
        panic!()
    };
    assert_eq!(e.kind(), clap::error::ErrorKind::DisplayVersion);
}

#[test]
fn arg_ids_and_long_names_are_unique_across_groups() {
    let cmd = Config::command();
    let ids: Vec<&str> = cmd.get_arguments().map(|a| a.get_id().as_str()).collect();
    let unique: std::collections::HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "{ids:?}");
    // Loading addresses flags by these ids; they are the field names, whatever the group.
    for (long, id) in [
        ("listen-client-urls", "listen_client_urls"),
        ("advertise-client-urls", "advertise_client_urls"),
        ("config-file", "config_file"),
    ] {
        let arg = cmd.get_arguments().find(|a| a.get_long() == Some(long));
        assert_eq!(arg.map(|a| a.get_id().as_str()), Some(id));
    }
}
