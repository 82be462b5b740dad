//! etcd's "Security" flags: client and peer TLS, cipher suites, and the HTTP origin checks
//! (CORS, host whitelist).

use clap::{ArgAction, Args};

use super::go_syntax::parse_go_bool;

/// The flags etcd's `--help` lists under "Security".
#[derive(Debug, Clone, Args)]
pub struct SecurityFlags {
    /// Comma-separated white list of origins for CORS, or cross-origin resource sharing.
    #[arg(long = "cors", env = "ETCD_CORS", default_value = "")]
    pub cors: String,

    /// Comma-separated acceptable hostnames from HTTP client requests, if server is not secure.
    #[arg(
        long = "host-whitelist",
        env = "ETCD_HOST_WHITELIST",
        default_value = "*"
    )]
    pub host_whitelist: String,

    /// Path to the client server TLS cert file.
    #[arg(long = "cert-file", env = "ETCD_CERT_FILE", default_value = "")]
    pub cert_file: String,

    /// Path to the client server TLS key file.
    #[arg(long = "key-file", env = "ETCD_KEY_FILE", default_value = "")]
    pub key_file: String,

    /// Enable client cert authentication.
    #[arg(long = "client-cert-auth", env = "ETCD_CLIENT_CERT_AUTH", default_value = "false",
          num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set,
          value_parser = parse_go_bool)]
    pub client_cert_auth: bool,

    /// Path to the client certificate revocation list file.
    #[arg(
        long = "client-crl-file",
        env = "ETCD_CLIENT_CRL_FILE",
        default_value = ""
    )]
    pub client_crl_file: String,

    /// Path to the client server TLS trusted CA cert file.
    #[arg(
        long = "trusted-ca-file",
        env = "ETCD_TRUSTED_CA_FILE",
        default_value = ""
    )]
    pub trusted_ca_file: String,

    /// Client TLS using generated certificates.
    #[arg(long = "auto-tls", env = "ETCD_AUTO_TLS", default_value = "false",
          num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set,
          value_parser = parse_go_bool)]
    pub auto_tls: bool,

    /// Path to the peer server TLS cert file.
    #[arg(
        long = "peer-cert-file",
        env = "ETCD_PEER_CERT_FILE",
        default_value = ""
    )]
    pub peer_cert_file: String,

    /// Path to the peer server TLS key file.
    #[arg(long = "peer-key-file", env = "ETCD_PEER_KEY_FILE", default_value = "")]
    pub peer_key_file: String,

    /// Enable peer client cert authentication.
    #[arg(long = "peer-client-cert-auth", env = "ETCD_PEER_CLIENT_CERT_AUTH", default_value = "false",
          num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set,
          value_parser = parse_go_bool)]
    pub peer_client_cert_auth: bool,

    /// Path to the peer server TLS trusted CA file.
    #[arg(
        long = "peer-trusted-ca-file",
        env = "ETCD_PEER_TRUSTED_CA_FILE",
        default_value = ""
    )]
    pub peer_trusted_ca_file: String,

    /// Allowed CN for inter peer authentication.
    #[arg(
        long = "peer-cert-allowed-cn",
        env = "ETCD_PEER_CERT_ALLOWED_CN",
        default_value = ""
    )]
    pub peer_cert_allowed_cn: String,

    /// Allowed TLS hostname for inter peer authentication.
    #[arg(
        long = "peer-cert-allowed-hostname",
        env = "ETCD_PEER_CERT_ALLOWED_HOSTNAME",
        default_value = ""
    )]
    pub peer_cert_allowed_hostname: String,

    /// Path to the peer certificate revocation list file.
    #[arg(long = "peer-crl-file", env = "ETCD_PEER_CRL_FILE", default_value = "")]
    pub peer_crl_file: String,

    /// Peer TLS using self-generated certificates if --peer-key-file and --peer-cert-file are not provided.
    #[arg(long = "peer-auto-tls", env = "ETCD_PEER_AUTO_TLS", default_value = "false",
          num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set,
          value_parser = parse_go_bool)]
    pub peer_auto_tls: bool,

    /// The validity period of the client and peer certificates, unit is year.
    #[arg(
        long = "self-signed-cert-validity",
        env = "ETCD_SELF_SIGNED_CERT_VALIDITY",
        default_value_t = 1
    )]
    pub self_signed_cert_validity: u32,

    /// Comma-separated list of supported TLS cipher suites between client/server and peers (empty will be auto-populated by Go).
    #[arg(
        long = "cipher-suites",
        env = "ETCD_CIPHER_SUITES",
        value_delimiter = ','
    )]
    pub cipher_suites: Vec<String>,

    /// Minimum TLS version supported by etcd (TLS1.2 or TLS1.3).
    #[arg(long = "tls-min-version", env = "ETCD_TLS_MIN_VERSION", default_value = "TLS1.2",
          value_parser = ["TLS1.2", "TLS1.3"])]
    pub tls_min_version: String,

    /// Maximum TLS version supported by etcd (TLS1.2 or TLS1.3; empty: the newest).
    #[arg(long = "tls-max-version", env = "ETCD_TLS_MAX_VERSION", default_value = "",
          value_parser = ["", "TLS1.2", "TLS1.3"])]
    pub tls_max_version: String,
}
