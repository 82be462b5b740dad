//! A TCP proxy for one directed peer link: member A dials member B through it, so the
//! harness can pass, drop, blackhole or delay what A sends B on its connections.
//!
//! A member's connection to a peer carries its requests and the peer's answers, so cutting
//! the link A→B silences A's RPCs to B (and their answers) while B's own connections to A,
//! through the proxy of the link B→A, keep working: a one-way partition.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// What a link does with the bytes sent over it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkMode {
    /// Forward everything at once.
    Pass,
    /// Refuse: new connections are closed at once and open ones are closed.
    Drop,
    /// Accept and swallow: nothing arrives and nothing is answered, like a network that
    /// loses every packet. Connections that lost bytes are closed when the link heals,
    /// since their streams are broken.
    Blackhole,
    /// Forward every chunk this long after it was sent.
    Delay(Duration),
}

/// The proxy of one directed link, listening on a loopback port of its own.
pub struct LinkProxy {
    addr: SocketAddr,
    mode: watch::Sender<LinkMode>,
    accept: JoinHandle<()>,
}

impl LinkProxy {
    /// Starts a proxy forwarding to `target`, in `LinkMode::Pass`.
    pub async fn start(target: SocketAddr) -> std::io::Result<LinkProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (mode, watching) = watch::channel(LinkMode::Pass);
        let accept = tokio::spawn(accept_loop(listener, target, watching));
        Ok(LinkProxy { addr, mode, accept })
    }

    /// The URL a member dials instead of the peer's.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn mode(&self) -> LinkMode {
        *self.mode.borrow()
    }

    pub fn set(&self, mode: LinkMode) {
        self.mode.send_replace(mode);
    }
}

impl Drop for LinkProxy {
    // Open connections end too: they see the mode sender gone.
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn accept_loop(listener: TcpListener, target: SocketAddr, mode: watch::Receiver<LinkMode>) {
    while let Ok((inbound, _)) = listener.accept().await {
        let _ = inbound.set_nodelay(true);
        tokio::spawn(serve(inbound, target, mode.clone()));
    }
}

/// One proxied connection, for as long as the link lets it live.
async fn serve(inbound: TcpStream, target: SocketAddr, mut mode: watch::Receiver<LinkMode>) {
    let initial = *mode.borrow_and_update();
    match initial {
        LinkMode::Drop => return,
        LinkMode::Blackhole => {
            swallow(inbound, mode).await;
            return;
        }
        LinkMode::Pass | LinkMode::Delay(_) => {}
    }
    let Ok(outbound) = TcpStream::connect(target).await else {
        return;
    };
    let _ = outbound.set_nodelay(true);
    let (from_client, to_client) = inbound.into_split();
    let (from_peer, to_peer) = outbound.into_split();
    tokio::select! {
        () = pump(from_client, to_peer, mode.clone()) => {}
        () = pump(from_peer, to_client, mode.clone()) => {}
        () = until_cut(mode) => {}
    }
}

/// Reads and discards everything until the link leaves `Blackhole`, then closes.
async fn swallow(mut inbound: TcpStream, mut mode: watch::Receiver<LinkMode>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            read = inbound.read(&mut buf) => {
                if matches!(read, Ok(0) | Err(_)) {
                    return;
                }
            }
            changed = mode.changed() => {
                if changed.is_err() || *mode.borrow_and_update() != LinkMode::Blackhole {
                    return;
                }
            }
        }
    }
}

/// Completes when the connection must close: the link drops, heals after swallowing
/// bytes, or the proxy is gone.
async fn until_cut(mut mode: watch::Receiver<LinkMode>) {
    let mut swallowed = false;
    while mode.changed().await.is_ok() {
        match *mode.borrow_and_update() {
            LinkMode::Drop => return,
            LinkMode::Blackhole => swallowed = true,
            LinkMode::Pass | LinkMode::Delay(_) if swallowed => return,
            LinkMode::Pass | LinkMode::Delay(_) => {}
        }
    }
}

/// Copies one direction, holding each chunk back as the link's delay says. Chunks leave in
/// the order they came, whatever the delay was when each arrived.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mode: watch::Receiver<LinkMode>) {
    let (queue, mut due) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let read = async move {
        // Owned by the body, so that the writer drains and stops once reading ends.
        let queue = queue;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let at = match *mode.borrow() {
                LinkMode::Pass => Instant::now(),
                LinkMode::Delay(delay) => Instant::now() + delay,
                LinkMode::Blackhole => continue,
                LinkMode::Drop => return,
            };
            if queue.send((at, buf[..n].to_vec())).is_err() {
                return;
            }
        }
    };
    let write = async move {
        while let Some((at, bytes)) = due.recv().await {
            tokio::time::sleep_until(at).await;
            if to.write_all(&bytes).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::pin!(write);
    tokio::select! {
        () = read => write.await,
        () = &mut write => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = socket.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    async fn round_trip(stream: &mut TcpStream, within: Duration) -> Option<Duration> {
        let start = Instant::now();
        stream.write_all(b"ping").await.ok()?;
        let mut buf = [0u8; 4];
        match tokio::time::timeout(within, stream.read_exact(&mut buf)).await {
            Ok(Ok(_)) if &buf == b"ping" => Some(start.elapsed()),
            _ => None,
        }
    }

    fn addr_of(proxy: &LinkProxy) -> SocketAddr {
        proxy.addr
    }

    #[tokio::test]
    async fn modes_pass_delay_blackhole_and_drop() {
        let proxy = LinkProxy::start(echo_server().await).await.unwrap();
        let mut stream = TcpStream::connect(addr_of(&proxy)).await.unwrap();
        let fast = round_trip(&mut stream, Duration::from_secs(2))
            .await
            .unwrap();
        assert!(fast < Duration::from_millis(200), "{fast:?}");

        proxy.set(LinkMode::Delay(Duration::from_millis(150)));
        let slow = round_trip(&mut stream, Duration::from_secs(2))
            .await
            .unwrap();
        assert!(
            slow >= Duration::from_millis(300),
            "both directions delayed: {slow:?}"
        );

        proxy.set(LinkMode::Blackhole);
        assert!(
            round_trip(&mut stream, Duration::from_millis(300))
                .await
                .is_none()
        );
        let mut fresh = TcpStream::connect(addr_of(&proxy)).await.unwrap();
        assert!(
            round_trip(&mut fresh, Duration::from_millis(300))
                .await
                .is_none()
        );

        // Healing closes the connections that lost bytes; new ones work.
        proxy.set(LinkMode::Pass);
        let mut buf = [0u8; 4];
        let closed = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf)).await;
        assert!(matches!(closed, Ok(Ok(0) | Err(_))), "{closed:?}");
        let mut healed = TcpStream::connect(addr_of(&proxy)).await.unwrap();
        assert!(
            round_trip(&mut healed, Duration::from_secs(2))
                .await
                .is_some()
        );

        proxy.set(LinkMode::Drop);
        let closed = tokio::time::timeout(Duration::from_secs(2), healed.read(&mut buf)).await;
        assert!(matches!(closed, Ok(Ok(0) | Err(_))), "{closed:?}");
        let mut refused = TcpStream::connect(addr_of(&proxy)).await.unwrap();
        assert!(
            round_trip(&mut refused, Duration::from_millis(300))
                .await
                .is_none()
        );
    }
}
