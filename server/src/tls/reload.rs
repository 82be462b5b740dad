//! The configurations a port uses now, rebuilt when its certificate, key, CA or CRL files
//! change on disk, so certificates are renewed and CAs rotated without a restart. New
//! connections take the new configuration; open ones keep the session they have.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::{ClientConfig, ServerConfig};

use super::build::{self, Files};
use super::settings::TlsSettings;
use crate::error::Result;

/// How often the files are read and compared. Reading a few small files each second costs
/// nothing next to a missed renewal; mtimes alone would miss a same-second replacement.
const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// One port's TLS, current as of the last successful read of its files.
#[derive(Debug)]
pub struct PortTls {
    settings: TlsSettings,
    /// A std lock: held only to clone or replace an `Arc`, never across an await.
    current: RwLock<Current>,
}

#[derive(Debug)]
struct Current {
    files: Files,
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
}

impl PortTls {
    /// Reads and checks the files now: a start with unusable files fails, as etcd's does.
    pub fn load(settings: TlsSettings) -> Result<Arc<PortTls>> {
        let files = Files::read(&settings)?;
        let current = build_current(&settings, files)?;
        Ok(Arc::new(PortTls {
            settings,
            current: RwLock::new(current),
        }))
    }

    pub fn settings(&self) -> &TlsSettings {
        &self.settings
    }

    /// What new connections are accepted with.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.current.read().expect("TLS lock").server.clone()
    }

    /// What new connections to other members are dialed with.
    pub fn client_config(&self) -> Arc<ClientConfig> {
        self.current.read().expect("TLS lock").client.clone()
    }

    /// Re-reads the files; rebuilds when they differ from the last good read. Files that
    /// do not make a configuration (a half-written renewal, a key that does not match)
    /// leave the last good one in use; a later poll picks up the finished files.
    /// Returns whether a new configuration was taken.
    pub fn reload(&self) -> Result<bool> {
        let files = Files::read(&self.settings)?;
        if files == self.current.read().expect("TLS lock").files {
            return Ok(false);
        }
        let next = build_current(&self.settings, files)?;
        *self.current.write().expect("TLS lock") = next;
        Ok(true)
    }

    /// Polls the files until the process ends.
    pub fn spawn_watch(self: &Arc<Self>, port: &'static str) {
        let tls = self.clone();
        tokio::spawn(async move {
            let mut warned = false;
            loop {
                tokio::time::sleep(POLL_INTERVAL).await;
                let tls = tls.clone();
                match tokio::task::spawn_blocking(move || tls.reload()).await {
                    Ok(Ok(true)) => {
                        warned = false;
                        tracing::info!(port, "TLS files changed: new connections use them");
                    }
                    Ok(Ok(false)) => warned = false,
                    Ok(Err(e)) if !warned => {
                        warned = true;
                        tracing::warn!(
                            port,
                            "TLS files changed but are not usable, keeping the previous ones: {e}"
                        );
                    }
                    Ok(Err(_)) => {}
                    Err(e) => tracing::warn!(port, "TLS reload task failed: {e}"),
                }
            }
        });
    }
}

fn build_current(settings: &TlsSettings, files: Files) -> Result<Current> {
    let server = Arc::new(build::server_config(settings, &files)?);
    let client = Arc::new(build::client_config(settings, &files)?);
    Ok(Current {
        files,
        server,
        client,
    })
}
