//! Auth tokens, as etcd's `--auth-token` selects them:
//! - `simple`: a random string handed out by applying an Authenticate entry, so every member
//!   knows it; kept in memory only, valid for `--auth-token-ttl` seconds after its last use,
//!   dropped when its user is deleted or changes password, and all of them when auth is
//!   turned off (as etcd's simple tokens, they do not survive a restart);
//! - `jwt,pub-key=…,priv-key=…,sign-method=…,ttl=…`: a signed token carrying the user name and
//!   the auth revision it was issued at, checked by signature alone.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::Rng;
use rand::distr::Alphanumeric;

use super::AuthInfo;

/// etcd's default JWT lifetime.
const DEFAULT_JWT_TTL: Duration = Duration::from_secs(5 * 60);

/// The token type the server hands out.
pub enum TokenKind {
    Simple,
    Jwt(JwtKeys),
}

impl std::fmt::Debug for TokenKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenKind::Simple => f.write_str("simple"),
            TokenKind::Jwt(k) => write!(f, "jwt({:?}, ttl {:?})", k.algorithm, k.ttl),
        }
    }
}

pub struct JwtKeys {
    algorithm: Algorithm,
    /// Absent when only a public key was given: tokens are then checked but not issued.
    signing: Option<EncodingKey>,
    verifying: DecodingKey,
    ttl: Duration,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Claims {
    username: String,
    revision: u64,
    exp: u64,
}

impl TokenKind {
    /// Parses `--auth-token`. Key files are read here, so a bad one stops the start.
    pub fn parse(spec: &str) -> Result<TokenKind, String> {
        let mut parts = spec.split(',');
        match parts.next().unwrap_or_default() {
            "simple" => Ok(TokenKind::Simple),
            "jwt" => {
                let mut opts = HashMap::new();
                for p in parts {
                    let (k, v) = p
                        .split_once('=')
                        .ok_or_else(|| format!("invalid auth token option {p:?}"))?;
                    opts.insert(k, v);
                }
                JwtKeys::from_options(&opts).map(TokenKind::Jwt)
            }
            other => Err(format!("unknown token type: {other}")),
        }
    }
}

impl JwtKeys {
    fn from_options(opts: &HashMap<&str, &str>) -> Result<JwtKeys, String> {
        let method = opts
            .get("sign-method")
            .ok_or("auth: JWT sign-method is missing")?;
        let algorithm: Algorithm = method
            .parse()
            .map_err(|_| format!("auth: invalid JWT sign-method {method:?}"))?;
        let ttl = match opts.get("ttl") {
            Some(t) => crate::config::parse_go_duration(t)
                .map_err(|e| format!("auth: invalid JWT ttl {t:?}: {e}"))?,
            None => DEFAULT_JWT_TTL,
        };
        let read = |name: &str| -> Result<Option<Vec<u8>>, String> {
            opts.get(name)
                .map(|path| {
                    std::fs::read(path)
                        .map_err(|e| format!("auth: cannot read {name} {path:?}: {e}"))
                })
                .transpose()
        };
        let (public, private) = (read("pub-key")?, read("priv-key")?);
        use Algorithm::*;
        let bad = |e: jsonwebtoken::errors::Error| format!("auth: invalid JWT key: {e}");
        let (signing, verifying) = match algorithm {
            HS256 | HS384 | HS512 => {
                let secret = private.or(public).ok_or("auth: JWT key is missing")?;
                (
                    Some(EncodingKey::from_secret(&secret)),
                    DecodingKey::from_secret(&secret),
                )
            }
            RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => (
                private
                    .map(|k| EncodingKey::from_rsa_pem(&k))
                    .transpose()
                    .map_err(bad)?,
                DecodingKey::from_rsa_pem(&public.ok_or("auth: JWT pub-key is missing")?)
                    .map_err(bad)?,
            ),
            ES256 | ES384 => (
                private
                    .map(|k| EncodingKey::from_ec_pem(&k))
                    .transpose()
                    .map_err(bad)?,
                DecodingKey::from_ec_pem(&public.ok_or("auth: JWT pub-key is missing")?)
                    .map_err(bad)?,
            ),
            EdDSA => (
                private
                    .map(|k| EncodingKey::from_ed_pem(&k))
                    .transpose()
                    .map_err(bad)?,
                DecodingKey::from_ed_pem(&public.ok_or("auth: JWT pub-key is missing")?)
                    .map_err(bad)?,
            ),
        };
        Ok(JwtKeys {
            algorithm,
            signing,
            verifying,
            ttl,
        })
    }

    /// A token for `username` at auth revision `revision`; `None` without a private key.
    pub fn sign(&self, username: &str, revision: u64) -> Option<String> {
        let key = self.signing.as_ref()?;
        let exp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .saturating_add(self.ttl)
            .as_secs();
        let claims = Claims {
            username: username.to_string(),
            revision,
            exp,
        };
        jsonwebtoken::encode(&Header::new(self.algorithm), &claims, key).ok()
    }

    /// Who a token speaks for, if its signature and expiry check out.
    pub fn verify(&self, token: &str) -> Option<AuthInfo> {
        let mut validation = Validation::new(self.algorithm);
        validation.leeway = 0;
        validation.required_spec_claims = ["exp".to_string()].into();
        let data = jsonwebtoken::decode::<Claims>(token, &self.verifying, &validation).ok()?;
        Some(AuthInfo {
            username: data.claims.username,
            revision: data.claims.revision,
        })
    }
}

/// A new simple token: 16 random letters and digits, a dot, and a random number (etcd's
/// tokens end in the raft index instead; clients treat tokens as opaque).
pub fn new_simple_token() -> String {
    let mut rng = rand::rng();
    let prefix: String = (&mut rng)
        .sample_iter(&Alphanumeric)
        .take(16)
        .map(char::from)
        .collect();
    format!("{prefix}.{}", rng.random::<u32>())
}

/// The simple tokens this member knows, with when each expires.
#[derive(Debug)]
pub struct SimpleTokens {
    /// Milliseconds.
    ttl: AtomicU64,
    tokens: Mutex<HashMap<String, (String, Instant)>>,
}

impl Default for SimpleTokens {
    fn default() -> Self {
        SimpleTokens::new(Duration::from_secs(300))
    }
}

impl SimpleTokens {
    pub fn new(ttl: Duration) -> SimpleTokens {
        SimpleTokens {
            ttl: AtomicU64::new(ttl.as_millis() as u64),
            tokens: Mutex::default(),
        }
    }

    /// `--auth-token-ttl`.
    pub fn set_ttl(&self, ttl: Duration) {
        self.ttl.store(ttl.as_millis() as u64, Ordering::Relaxed);
    }

    fn ttl(&self) -> Duration {
        Duration::from_millis(self.ttl.load(Ordering::Relaxed))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, Instant)>> {
        self.tokens.lock().expect("token table poisoned")
    }

    pub fn assign(&self, token: String, username: String) {
        self.assign_at(token, username, Instant::now());
    }

    fn assign_at(&self, token: String, username: String, now: Instant) {
        let mut tokens = self.lock();
        tokens.retain(|_, (_, expiry)| *expiry > now);
        tokens.insert(token, (username, now + self.ttl()));
    }

    /// The user a live token belongs to; using it restarts its TTL, as in etcd.
    pub fn user(&self, token: &str) -> Option<String> {
        self.user_at(token, Instant::now())
    }

    /// [`SimpleTokens::user`] at the moment `now`.
    fn user_at(&self, token: &str, now: Instant) -> Option<String> {
        let mut tokens = self.lock();
        let (user, expiry) = tokens.get_mut(token)?;
        if *expiry <= now {
            tokens.remove(token);
            return None;
        }
        *expiry = now + self.ttl();
        Some(user.clone())
    }

    pub fn invalidate_user(&self, username: &str) {
        self.lock().retain(|_, (user, _)| user != username);
    }

    pub fn clear(&self) {
        self.lock().clear();
    }
}

/// What applying a command does to the simple tokens a member keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenChange {
    Assign { token: String, username: String },
    InvalidateUser(String),
    Clear,
}

impl SimpleTokens {
    pub fn apply(&self, change: TokenChange) {
        match change {
            TokenChange::Assign { token, username } => self.assign(token, username),
            TokenChange::InvalidateUser(name) => self.invalidate_user(&name),
            TokenChange::Clear => self.clear(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::SimpleTokens;

    #[test]
    fn a_simple_token_lives_its_ttl_after_its_last_use() {
        let tokens = SimpleTokens::new(Duration::from_secs(10));
        let t0 = Instant::now();
        let at = |secs| t0 + Duration::from_secs(secs);
        tokens.assign_at("t".into(), "alice".into(), t0);
        assert_eq!(tokens.user_at("t", at(9)).as_deref(), Some("alice"));
        // Used at 9 s, so alive until 19 s.
        assert_eq!(tokens.user_at("t", at(18)).as_deref(), Some("alice"));
        assert_eq!(tokens.user_at("t", at(29)), None);
        assert_eq!(tokens.user_at("t", at(1)), None, "an expired token is gone");
    }
}
