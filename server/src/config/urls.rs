//! URLs in flags: parsing and checking them with etcd's rules and messages, binding
//! addresses, `--initial-cluster`, and the one splitter of comma-separated URL lists.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use url::Url;

use super::Config;
use super::error::ConfigError;
use super::member::DEFAULT_NAME;

/// URL schemes accepted for client URLs.
pub const CLIENT_URL_SCHEMES: &[&str] = &["http", "https", "unix", "unixs"];
/// URL schemes accepted for peer URLs.
pub const PEER_URL_SCHEMES: &[&str] = &["http", "https"];

/// Split a comma-separated URL list into the strings members are recorded with: items
/// trimmed, empty items dropped and a trailing "/" removed, because member IDs hash these
/// strings and "http://a:2380/" must name the same member as "http://a:2380".
pub fn split_urls(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(|u| u.trim_end_matches('/').to_string())
        .collect()
}

impl Config {
    /// `--listen-client-urls`, parsed (schemes http/https/unix/unixs).
    pub fn listen_client_url_list(&self) -> Result<Vec<Url>, ConfigError> {
        parse_urls(
            "listen-client-urls",
            &self.member.listen_client_urls,
            CLIENT_URL_SCHEMES,
            true,
        )
    }

    /// `--advertise-client-urls`, parsed (schemes http/https/unix/unixs).
    pub fn advertise_client_url_list(&self) -> Result<Vec<Url>, ConfigError> {
        parse_urls(
            "advertise-client-urls",
            &self.clustering.advertise_client_urls,
            CLIENT_URL_SCHEMES,
            true,
        )
    }

    /// `--listen-peer-urls`, parsed (schemes http/https).
    pub fn listen_peer_url_list(&self) -> Result<Vec<Url>, ConfigError> {
        parse_urls(
            "listen-peer-urls",
            &self.member.listen_peer_urls,
            PEER_URL_SCHEMES,
            true,
        )
    }

    /// `--initial-advertise-peer-urls`, parsed (schemes http/https).
    pub fn initial_advertise_peer_url_list(&self) -> Result<Vec<Url>, ConfigError> {
        parse_urls(
            "initial-advertise-peer-urls",
            &self.clustering.initial_advertise_peer_urls,
            PEER_URL_SCHEMES,
            true,
        )
    }

    /// `--listen-metrics-urls`, parsed (empty list when unset).
    pub fn listen_metrics_url_list(&self) -> Result<Vec<Url>, ConfigError> {
        parse_urls(
            "listen-metrics-urls",
            &self.monitoring.listen_metrics_urls,
            PEER_URL_SCHEMES,
            false,
        )
    }

    /// Socket addresses for `--listen-client-urls` (TCP URLs only).
    pub fn listen_client_addrs(&self) -> Result<Vec<SocketAddr>, ConfigError> {
        socket_addrs(&self.listen_client_url_list()?)
    }

    /// Socket addresses for `--listen-metrics-urls` (none when unset).
    pub fn listen_metrics_addrs(&self) -> Result<Vec<SocketAddr>, ConfigError> {
        socket_addrs(&self.listen_metrics_url_list()?)
    }

    /// Socket addresses for `--listen-peer-urls`.
    pub fn listen_peer_addrs(&self) -> Result<Vec<SocketAddr>, ConfigError> {
        socket_addrs(&self.listen_peer_url_list()?)
    }

    /// `--initial-cluster`, parsed as `(name, peer URL)` pairs in order.
    pub fn initial_cluster_members(&self) -> Result<Vec<(String, Url)>, ConfigError> {
        parse_initial_cluster(&self.clustering.initial_cluster)
    }
}

/// Parse one URL with etcd's `types.NewURLs` rules.
pub(super) fn parse_one_url(flag: &str, raw: &str, schemes: &[&str]) -> Result<Url, ConfigError> {
    let invalid = |reason: String| ConfigError::InvalidFlag {
        flag: flag.into(),
        value: raw.into(),
        reason,
    };
    let u = Url::parse(raw).map_err(|e| invalid(format!("{e}: {raw}")))?;
    if !schemes.contains(&u.scheme()) {
        let list = match schemes.len() {
            1 => schemes[0].to_owned(),
            n => format!("{}, or {}", schemes[..n - 1].join(", "), schemes[n - 1]),
        };
        return Err(invalid(format!("URL scheme must be {list}: {raw}")));
    }
    if matches!(u.scheme(), "http" | "https") {
        let after = raw.split_once("://").map_or("", |(_, r)| r);
        let end = after.find(['/', '?', '#']).unwrap_or(after.len());
        let authority = &after[..end];
        let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let port = if hostport.starts_with('[') {
            hostport.split_once("]:").map(|(_, p)| p)
        } else {
            hostport.rsplit_once(':').map(|(_, p)| p)
        };
        if !port.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())) {
            return Err(invalid(format!(
                "URL address does not have the form \"host:port\": {raw}"
            )));
        }
        let path_end = after[end..]
            .find(['?', '#'])
            .map_or(after.len(), |i| end + i);
        if !after[end..path_end].is_empty() {
            return Err(invalid(format!("URL must not contain a path: {raw}")));
        }
        if u.host_str().is_none_or(str::is_empty) {
            return Err(invalid(format!("unexpected empty host ({raw})")));
        }
    }
    Ok(u)
}

/// Parse a comma-separated URL list for `flag` (used in error messages),
/// allowing only `schemes`. An empty list is an error when `required`.
pub fn parse_urls(
    flag: &str,
    value: &str,
    schemes: &[&str],
    required: bool,
) -> Result<Vec<Url>, ConfigError> {
    let items: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if items.is_empty() {
        return if required {
            Err(ConfigError::InvalidFlag {
                flag: flag.into(),
                value: value.into(),
                reason: "no valid URLs given".into(),
            })
        } else {
            Ok(Vec::new())
        };
    }
    items
        .into_iter()
        .map(|s| parse_one_url(flag, s, schemes))
        .collect()
}

/// Map TCP URLs to socket addresses: "localhost" is 127.0.0.1, IP literals are
/// used as they are; other host names are rejected like etcd does for bind
/// URLs ("expected IP in URL for binding"). unix/unixs URLs are rejected.
pub fn socket_addrs(urls: &[Url]) -> Result<Vec<SocketAddr>, ConfigError> {
    urls.iter()
        .map(|u| {
            if matches!(u.scheme(), "unix" | "unixs") {
                return Err(ConfigError::Invalid(format!(
                    "unix socket URL {} has no TCP socket address",
                    url_display(u)
                )));
            }
            let ip = match u.host() {
                Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
                Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
                Some(url::Host::Domain(d)) if d.eq_ignore_ascii_case("localhost") => {
                    IpAddr::V4(Ipv4Addr::LOCALHOST)
                }
                _ => {
                    return Err(ConfigError::Invalid(format!(
                        "expected IP in URL for binding ({})",
                        url_display(u)
                    )));
                }
            };
            let port = u.port_or_known_default().ok_or_else(|| {
                ConfigError::Invalid(format!("missing port in URL ({})", url_display(u)))
            })?;
            Ok(SocketAddr::new(ip, port))
        })
        .collect()
}

/// Bind URLs must be IP literals or localhost; unix sockets bind to a path instead.
pub(super) fn check_bind_urls(urls: &[Url]) -> Result<(), ConfigError> {
    let tcp: Vec<Url> = urls
        .iter()
        .filter(|u| !matches!(u.scheme(), "unix" | "unixs"))
        .cloned()
        .collect();
    socket_addrs(&tcp).map(|_| ())
}

/// Advertised http(s) URLs must name a host, since peers and clients dial it.
pub(super) fn check_host_urls(urls: &[Url]) -> Result<(), ConfigError> {
    for u in urls {
        if matches!(u.scheme(), "http" | "https") && u.host_str().is_none_or(str::is_empty) {
            return Err(ConfigError::Invalid(format!(
                "unexpected empty host ({})",
                url_display(u)
            )));
        }
    }
    Ok(())
}

/// Parse `--initial-cluster` ("n1=http://a:2380,n2=http://b:2380") into
/// `(name, URL)` pairs in order; a name may appear several times (one entry per
/// peer URL), like etcd's `types.NewURLsMap`.
pub fn parse_initial_cluster(s: &str) -> Result<Vec<(String, Url)>, ConfigError> {
    let mut out = Vec::new();
    for entry in s.split(',') {
        if entry.is_empty() {
            continue;
        }
        let Some((name, url)) = entry.split_once('=') else {
            return Err(ConfigError::InvalidFlag {
                flag: "initial-cluster".into(),
                value: s.into(),
                reason: format!("entry {entry:?} is not of the form name=peer-url"),
            });
        };
        let url = parse_one_url("initial-cluster", url.trim(), PEER_URL_SCHEMES)?;
        out.push((name.to_owned(), url));
    }
    Ok(out)
}

/// etcd's `InitialClusterFromName`: "<name>=<url>" for each advertise peer URL.
pub fn initial_cluster_from_name(name: &str, apurls: &str) -> String {
    let n = if name.is_empty() { DEFAULT_NAME } else { name };
    apurls
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|u| format!("{n}={u}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// A URL as etcd prints it (no trailing "/" for an empty path).
pub(super) fn url_display(u: &Url) -> String {
    let s = u.as_str();
    if u.path() == "/" && u.query().is_none() && u.fragment().is_none() {
        s.trim_end_matches('/').to_owned()
    } else {
        s.to_owned()
    }
}

/// etcd's `URLsMap.String()`: sorted "name=url" pairs.
pub(super) fn urls_map_string(members: &[(String, Url)]) -> String {
    let mut pairs: Vec<String> = members
        .iter()
        .map(|(n, u)| format!("{n}={}", url_display(u)))
        .collect();
    pairs.sort();
    pairs.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::{err, load};

    #[test]
    fn initial_cluster_parsing() {
        let m =
            parse_initial_cluster("n1=http://a:2380,n2=http://b:2380,n1=http://c:2381").unwrap();
        let names: Vec<&str> = m.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["n1", "n2", "n1"]);
        assert_eq!(m[0].1.host_str(), Some("a"));
        assert_eq!(m[2].1.port(), Some(2381));
        assert!(parse_initial_cluster("").unwrap().is_empty());
        assert!(parse_initial_cluster("n1").is_err());
        assert!(parse_initial_cluster("n1=unix://x:1").is_err());
        assert!(parse_initial_cluster("n1=http://a").is_err());
        assert!(parse_initial_cluster("n1=http://a:2380/path").is_err());
    }

    #[test]
    fn url_validation_and_socket_addrs() {
        let u = parse_urls(
            "x",
            "http://127.0.0.1:1, https://[::1]:2,unix://localhost:3",
            CLIENT_URL_SCHEMES,
            true,
        )
        .unwrap();
        assert_eq!(u.len(), 3);
        assert_eq!(
            socket_addrs(&u[..2]).unwrap(),
            vec!["127.0.0.1:1".parse().unwrap(), "[::1]:2".parse().unwrap()]
        );
        assert!(socket_addrs(&u[2..]).is_err());
        let e = parse_urls("listen-peer-urls", "unix://a:1", PEER_URL_SCHEMES, true).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid value \"unix://a:1\" for flag --listen-peer-urls: URL scheme must be http, or https: unix://a:1"
        );
        let e =
            parse_urls("listen-client-urls", "ftp://a:1", CLIENT_URL_SCHEMES, true).unwrap_err();
        assert!(
            e.to_string()
                .contains("URL scheme must be http, https, unix, or unixs"),
            "{e}"
        );
        assert!(
            parse_urls("x", "http://a", PEER_URL_SCHEMES, true)
                .unwrap_err()
                .to_string()
                .contains("does not have the form \"host:port\"")
        );
        assert!(parse_urls("x", "http://a:80", PEER_URL_SCHEMES, true).is_ok());
        assert!(parse_urls("x", "", PEER_URL_SCHEMES, true).is_err());
        let hosts = parse_urls("x", "http://example.com:1", PEER_URL_SCHEMES, true).unwrap();
        assert_eq!(
            socket_addrs(&hosts).unwrap_err().to_string(),
            "expected IP in URL for binding (http://example.com:1)"
        );
        assert_eq!(
            err(&[
                "--listen-client-urls=http://example.com:2379",
                "--advertise-client-urls=http://x:2379"
            ]),
            "expected IP in URL for binding (http://example.com:2379)"
        );
        assert_eq!(
            load(&[
                "--listen-client-urls=http://0.0.0.0:2379",
                "--advertise-client-urls=http://x:2379"
            ])
            .unwrap()
            .listen_client_addrs()
            .unwrap(),
            vec!["0.0.0.0:2379".parse().unwrap()]
        );
    }

    #[test]
    fn split_urls_trims_drops_empty_items_and_trailing_slashes() {
        assert_eq!(
            split_urls(" http://a:2380/, ,http://b:2380"),
            ["http://a:2380", "http://b:2380"]
        );
        assert!(split_urls("").is_empty());
    }
}
