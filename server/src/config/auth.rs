//! etcd's "Auth" flags: the auth token type and TTL, and the password hashing cost.

use clap::Args;

/// The flags etcd's `--help` lists under "Auth".
#[derive(Debug, Clone, Args)]
pub struct AuthFlags {
    /// Specify auth token specific options ('simple' or 'jwt,...').
    #[arg(long = "auth-token", env = "ETCD_AUTH_TOKEN", default_value = "simple")]
    pub auth_token: String,

    /// Specify bcrypt algorithm cost factor for auth password hashing.
    #[arg(long = "bcrypt-cost", env = "ETCD_BCRYPT_COST", default_value = "10")]
    pub bcrypt_cost: u32,

    /// The TTL (in seconds) of the simple auth token.
    #[arg(
        long = "auth-token-ttl",
        env = "ETCD_AUTH_TOKEN_TTL",
        default_value = "300"
    )]
    pub auth_token_ttl: u64,
}
