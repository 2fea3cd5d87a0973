//! The egress proxy: the only way out of a container whose project sets
//! `security.allowedDomains`.
//!
//! The Docker runner puts such a container on an `--internal` Docker network
//! of its own (no route beyond the worker's host) and starts one proxy per
//! run, listening on that network's gateway address; the container gets
//! `HTTP_PROXY`/`HTTPS_PROXY` pointing at it. The proxy speaks the two forms
//! clients use:
//!
//! * `CONNECT host:port` (HTTPS and any TLS): the tunnel opens only when
//!   `host` is allowed; the bytes inside are not looked at;
//! * plain HTTP in absolute form (`GET http://host/path`): forwarded in
//!   origin form with `Connection: close`, one request per connection.
//!
//! A host is allowed when it is a listed domain or one of its subdomains
//! (`github.com` admits `api.github.com`); `*.example.com` admits the
//! subdomains only. Names are resolved by the worker: first the operator's
//! `--docker-add-host` entries (the container sees the same ones), then DNS.
//! Anything else gets `403 Forbidden`, and the refusal becomes a note on the
//! execution's log (through the run's output channel, [`Stream::Note`]).
//! Connections from outside the run's own network are dropped: every
//! container can reach every gateway address of the host, so without that
//! check one run could borrow another's allow-list.
//!
//! Produced and consumed by [`super::docker::DockerRunner`] within one run;
//! stopped (and with it every open tunnel) when the run ends. If the worker
//! dies, the proxy dies with it and the container is left with no way out
//! until the orphan sweep removes it.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixListener};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{OutputLine, Stream};

/// The largest request head read (request line and headers).
const MAX_HEAD: usize = 16 * 1024;
/// How long a client may take to send its request head, and the proxy to
/// connect upstream.
const IO_TIMEOUT: Duration = Duration::from_secs(15);
/// Refusals noted on one run's log; later ones are only counted.
const MAX_NOTES: usize = 50;

/// The operator's egress settings, the same for every run of a worker.
#[derive(Debug, Clone, Default)]
pub struct EgressSettings {
    /// Always reachable (`--model-api-host`): the model's API host.
    pub model_hosts: Vec<String>,
    /// Names resolved without DNS (`--docker-add-host`).
    pub hosts: HashMap<String, IpAddr>,
    /// Non-public networks runs may reach (`--egress-allow-cidr`).
    pub allow_cidrs: Vec<ipnet::IpNet>,
}

impl EgressSettings {
    /// The policy of a run whose project allows `allowed`.
    pub fn policy(&self, allowed: &[String]) -> EgressPolicy {
        EgressPolicy::new(allowed, self.hosts.clone())
            .with_trusted(&self.model_hosts)
            .with_allowed_cidrs(&self.allow_cidrs)
    }
}

/// Which hosts a run may reach.
#[derive(Debug, Clone, Default)]
pub struct EgressPolicy {
    /// Domains with their subdomains (`github.com`).
    domains: Vec<String>,
    /// Subdomains only (`*.example.com` → `example.com`).
    subdomains_of: Vec<String>,
    /// Names resolved without DNS (the operator's extra hosts).
    hosts: HashMap<String, IpAddr>,
    /// Names the operator allows for every run (the model's API host):
    /// admitted whatever the project lists and, like the names of `hosts`
    /// (which still need the project's allow-list), exempt from the address
    /// check: the operator named them.
    trusted: Vec<String>,
    /// Non-public networks the operator lets runs reach
    /// (`--egress-allow-cidr`).
    allow_cidrs: Vec<ipnet::IpNet>,
}

impl EgressPolicy {
    /// A policy admitting `allowed` (the project's `allowedDomains`), with
    /// `hosts` resolved locally.
    pub fn new(allowed: &[String], hosts: HashMap<String, IpAddr>) -> Self {
        let mut policy = Self {
            hosts: hosts
                .into_iter()
                .map(|(name, ip)| (normalize(&name), ip))
                .collect(),
            ..Self::default()
        };
        for pattern in allowed {
            match pattern.strip_prefix("*.") {
                Some(parent) => policy.subdomains_of.push(normalize(parent)),
                None => policy.domains.push(normalize(pattern)),
            }
        }
        policy
    }

    /// Also admits `names` (host names, `host:port` accepted) for every
    /// run, whatever their addresses: the operator's model API host.
    pub fn with_trusted(mut self, names: &[String]) -> Self {
        self.trusted.extend(names.iter().map(|n| {
            let host = split_host_port(n, 0).map_or_else(|| n.clone(), |(h, _)| h);
            normalize(&host)
        }));
        self
    }

    /// Lets names resolve to addresses in `nets` even when they are not
    /// public (loopback, private, link-local, …).
    pub fn with_allowed_cidrs(mut self, nets: &[ipnet::IpNet]) -> Self {
        self.allow_cidrs.extend_from_slice(nets);
        self
    }

    /// The operator's model host: admitted for every run.
    fn is_trusted(&self, host: &str) -> bool {
        self.trusted.contains(&normalize(host))
    }

    /// Named by the operator (model host, extra hosts): whatever address it
    /// has may be used.
    fn operator_named(&self, host: &str) -> bool {
        self.is_trusted(host) || self.hosts.contains_key(&normalize(host))
    }

    /// Whether `host` may be reached.
    pub fn allows(&self, host: &str) -> bool {
        if self.is_trusted(host) {
            return true;
        }
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if bare.parse::<IpAddr>().is_ok() {
            // An address names no domain: only a trusted one passes.
            return false;
        }
        let host = normalize(host);
        let under = |parent: &String| {
            host.len() > parent.len() + 1
                && host.ends_with(parent.as_str())
                && host.as_bytes()[host.len() - parent.len() - 1] == b'.'
        };
        self.domains.iter().any(|d| host == *d || under(d)) || self.subdomains_of.iter().any(under)
    }

    async fn resolve(&self, host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
        if let Some(ip) = self.hosts.get(&normalize(host)) {
            return Ok(vec![SocketAddr::new(*ip, port)]);
        }
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        Ok(tokio::net::lookup_host((host, port)).await?.collect())
    }

    /// The addresses of `host` a run may connect to: all of them for a
    /// trusted name; otherwise the public ones and those in the operator's
    /// CIDR allow-list. Empty when `host` resolves only to addresses a run
    /// must not reach (loopback, private, link-local, metadata, …).
    async fn reachable(&self, host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
        let addrs = self.resolve(host, port).await?;
        if self.operator_named(host) {
            return Ok(addrs);
        }
        Ok(addrs
            .into_iter()
            .filter(|a| is_public(a.ip()) || self.allow_cidrs.iter().any(|n| n.contains(&a.ip())))
            .collect())
    }
}

/// Whether `ip` is an address of the public internet: not loopback,
/// unspecified, private (RFC 1918, unique-local), link-local (which holds
/// the cloud metadata address 169.254.169.254), carrier-grade NAT,
/// multicast, broadcast, documentation or benchmarking space.
pub fn is_public(ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, _, _] = v4.octets();
            !(v4.is_loopback()
                || v4.is_unspecified()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (b == 18 || b == 19))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || first == 0x2001 && v6.segments()[1] == 0x0db8
                || first == 0x0064 && v6.segments()[1] == 0xff9b)
        }
    }
}

fn normalize(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// An IPv4 or IPv6 network, `addr/prefix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    addr: IpAddr,
    prefix: u8,
}

impl Subnet {
    /// Parses `172.18.0.0/16`.
    pub fn parse(text: &str) -> Option<Self> {
        let (addr, prefix) = text.split_once('/')?;
        let addr: IpAddr = addr.parse().ok()?;
        let prefix: u8 = prefix.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then_some(Self { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// A running proxy; stops when dropped or [`EgressProxy::stop`]ped.
#[derive(Debug)]
pub struct EgressProxy {
    addr: SocketAddr,
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl EgressProxy {
    /// Starts a proxy on `bind` (port 0: any free port) admitting clients
    /// from `clients` (any when `None`) to the hosts `policy` allows.
    /// Refusals are sent to `notes`.
    ///
    /// # Errors
    ///
    /// The address cannot be bound.
    pub async fn start(
        bind: SocketAddr,
        clients: Option<Subnet>,
        policy: EgressPolicy,
        notes: mpsc::Sender<OutputLine>,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let stop = CancellationToken::new();
        let shared = Arc::new(Shared {
            policy,
            notes,
            refusals: AtomicUsize::new(0),
        });
        let task = tokio::spawn(accept_loop(listener, clients, shared, stop.clone()));
        Ok(Self {
            addr,
            stop,
            task: Some(task),
        })
    }

    /// Starts a proxy on the Unix socket `path` (the process runner binds
    /// it into the run's sandbox; whoever can open the socket is the run).
    ///
    /// # Errors
    ///
    /// The socket cannot be bound.
    pub async fn start_unix(
        path: &std::path::Path,
        policy: EgressPolicy,
        notes: mpsc::Sender<OutputLine>,
    ) -> std::io::Result<Self> {
        let listener = UnixListener::bind(path)?;
        let stop = CancellationToken::new();
        let shared = Arc::new(Shared {
            policy,
            notes,
            refusals: AtomicUsize::new(0),
        });
        let task = tokio::spawn(unix_accept_loop(listener, shared, stop.clone()));
        Ok(Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            stop,
            task: Some(task),
        })
    }

    /// Where the proxy listens (the URL host and port of `HTTP_PROXY`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting and closes every open connection.
    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for EgressProxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

struct Shared {
    policy: EgressPolicy,
    notes: mpsc::Sender<OutputLine>,
    refusals: AtomicUsize,
}

impl Shared {
    async fn refused(&self, what: &str, why: &str) {
        let n = self.refusals.fetch_add(1, Ordering::Relaxed);
        let text = match n {
            _ if n < MAX_NOTES => format!("egress refused: {what} ({why})"),
            _ if n == MAX_NOTES => {
                "egress refused: further refusals of this run are not logged".to_owned()
            }
            _ => return,
        };
        let _ = self
            .notes
            .send(OutputLine {
                stream: Stream::Note,
                text,
            })
            .await;
    }
}

async fn accept_loop(
    listener: TcpListener,
    clients: Option<Subnet>,
    shared: Arc<Shared>,
    stop: CancellationToken,
) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
            // Reap finished connections as we go.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let Ok((conn, peer)) = accepted else {
            // EMFILE and the like: back off a little rather than spin.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        if clients.is_some_and(|net| !net.contains(peer.ip())) {
            tracing::warn!(%peer, "egress proxy: connection from outside the run's network dropped");
            continue;
        }
        let shared = shared.clone();
        connections.spawn(async move {
            let _ = handle(conn, &shared).await;
        });
    }
    connections.shutdown().await;
}

async fn unix_accept_loop(listener: UnixListener, shared: Arc<Shared>, stop: CancellationToken) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let Ok((conn, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let shared = shared.clone();
        connections.spawn(async move {
            let _ = handle(conn, &shared).await;
        });
    }
    connections.shutdown().await;
}

/// A parsed request head.
#[derive(Debug, PartialEq, Eq)]
struct Head {
    method: String,
    /// `host:port` for CONNECT, the absolute URL otherwise.
    target: String,
    version: String,
    /// Header lines, as sent.
    headers: Vec<String>,
}

fn parse_head(head: &str) -> Option<Head> {
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, target, version) = (first.next()?, first.next()?, first.next()?);
    if first.next().is_some() || !version.starts_with("HTTP/1.") {
        return None;
    }
    Some(Head {
        method: method.to_owned(),
        target: target.to_owned(),
        version: version.to_owned(),
        headers: lines.filter(|l| !l.is_empty()).map(str::to_owned).collect(),
    })
}

/// `host:port` split; `[v6]:port` too.
fn split_host_port(authority: &str, default_port: u16) -> Option<(String, u16)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => default_port,
            None => return None,
        };
        return Some((host.to_owned(), port));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => Some((host.to_owned(), port.parse().ok()?)),
        None => Some((authority.to_owned(), default_port)),
    }
    .filter(|(host, _)| !host.is_empty())
}

/// Reads the request head; returns it and any bytes read past it.
async fn read_head<C: AsyncRead + Unpin>(conn: &mut C) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::with_capacity(2048);
    let mut chunk = [0u8; 4096];
    loop {
        let n = conn.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            buf.truncate(end);
            return Some((String::from_utf8(buf).ok()?, rest));
        }
        if buf.len() > MAX_HEAD {
            return None;
        }
    }
}

async fn respond<C: AsyncWrite + Unpin>(
    conn: &mut C,
    status: &str,
    body: &str,
) -> std::io::Result<()> {
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(response.as_bytes()).await?;
    conn.shutdown().await
}

async fn handle<C: AsyncRead + AsyncWrite + Unpin>(
    mut conn: C,
    shared: &Shared,
) -> std::io::Result<()> {
    let Ok(Some((head, rest))) = tokio::time::timeout(IO_TIMEOUT, read_head(&mut conn)).await
    else {
        return respond(
            &mut conn,
            "400 Bad Request",
            "ccs egress proxy: bad request\n",
        )
        .await;
    };
    let Some(head) = parse_head(&head) else {
        return respond(
            &mut conn,
            "400 Bad Request",
            "ccs egress proxy: bad request\n",
        )
        .await;
    };
    let connect = head.method.eq_ignore_ascii_case("CONNECT");
    let (host, port, path) = if connect {
        match split_host_port(&head.target, 443) {
            Some((host, port)) => (host, port, String::new()),
            None => {
                return respond(
                    &mut conn,
                    "400 Bad Request",
                    "ccs egress proxy: bad target\n",
                )
                .await;
            }
        }
    } else {
        let Some(rest) = head.target.strip_prefix("http://") else {
            return respond(
                &mut conn,
                "400 Bad Request",
                "ccs egress proxy: only CONNECT and absolute http:// requests are proxied\n",
            )
            .await;
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        match split_host_port(authority, 80) {
            Some((host, port)) => (host, port, path.to_owned()),
            None => {
                return respond(
                    &mut conn,
                    "400 Bad Request",
                    "ccs egress proxy: bad target\n",
                )
                .await;
            }
        }
    };
    let what = if connect {
        format!("CONNECT {host}:{port}")
    } else {
        format!("{} http://{host}:{port}", head.method)
    };
    if !shared.policy.allows(&host) {
        shared
            .refused(&what, "not in security.allowedDomains")
            .await;
        return respond(
            &mut conn,
            "403 Forbidden",
            &format!("ccs egress proxy: {host} is not in this project's security.allowedDomains\n"),
        )
        .await;
    }
    let addrs = match tokio::time::timeout(IO_TIMEOUT, shared.policy.reachable(&host, port)).await {
        Ok(Ok(addrs)) if !addrs.is_empty() => addrs,
        Ok(Ok(_)) => {
            shared
                .refused(&what, "resolves to a non-public address")
                .await;
            return respond(
                &mut conn,
                "403 Forbidden",
                &format!("ccs egress proxy: {host} resolves to an address runs may not reach\n"),
            )
            .await;
        }
        Ok(Err(e)) => {
            return respond(
                &mut conn,
                "502 Bad Gateway",
                &format!("ccs egress proxy: cannot resolve {host}: {e}\n"),
            )
            .await;
        }
        Err(_) => {
            return respond(
                &mut conn,
                "504 Gateway Timeout",
                &format!("ccs egress proxy: {host} did not resolve in time\n"),
            )
            .await;
        }
    };
    let upstream = async {
        let mut last = std::io::Error::other("no address");
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(stream) => return Ok(stream),
                Err(e) => last = e,
            }
        }
        Err(last)
    };
    let mut upstream = match tokio::time::timeout(IO_TIMEOUT, upstream).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            return respond(
                &mut conn,
                "502 Bad Gateway",
                &format!("ccs egress proxy: cannot reach {host}:{port}: {e}\n"),
            )
            .await;
        }
        Err(_) => {
            return respond(
                &mut conn,
                "504 Gateway Timeout",
                &format!("ccs egress proxy: {host}:{port} did not answer\n"),
            )
            .await;
        }
    };
    if connect {
        conn.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .await?;
    } else {
        let mut out = format!("{} {path} {}\r\n", head.method, head.version);
        for header in &head.headers {
            let name = header.split(':').next().unwrap_or_default().trim();
            if [
                "connection",
                "proxy-connection",
                "proxy-authorization",
                "keep-alive",
            ]
            .iter()
            .any(|h| name.eq_ignore_ascii_case(h))
            {
                continue;
            }
            out.push_str(header);
            out.push_str("\r\n");
        }
        out.push_str("Connection: close\r\n\r\n");
        upstream.write_all(out.as_bytes()).await?;
    }
    if !rest.is_empty() {
        upstream.write_all(&rest).await?;
    }
    tokio::io::copy_bidirectional(&mut conn, &mut upstream).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allowed: &[&str]) -> EgressPolicy {
        let allowed: Vec<String> = allowed.iter().map(|s| (*s).to_owned()).collect();
        EgressPolicy::new(&allowed, HashMap::new())
    }

    #[test]
    fn domains_and_subdomains() {
        let p = policy(&["github.com", "*.example.org", "Api.Linear.App."]);
        assert!(p.allows("github.com"));
        assert!(p.allows("api.github.com"));
        assert!(p.allows("GITHUB.COM."));
        assert!(!p.allows("evilgithub.com"));
        assert!(!p.allows("github.com.evil.net"));
        assert!(p.allows("a.example.org"));
        assert!(!p.allows("example.org"));
        assert!(p.allows("api.linear.app"));
        assert!(!p.allows("linear.app"));
        assert!(!policy(&[]).allows("github.com"));
    }

    #[test]
    fn subnets() {
        let net = Subnet::parse("172.18.0.0/16").unwrap();
        assert!(net.contains("172.18.3.4".parse().unwrap()));
        assert!(!net.contains("172.19.0.1".parse().unwrap()));
        assert!(net.contains("::ffff:172.18.0.2".parse().unwrap()));
        let v6 = Subnet::parse("fd00::/64").unwrap();
        assert!(v6.contains("fd00::5".parse().unwrap()));
        assert!(!v6.contains("fd01::5".parse().unwrap()));
        assert!(Subnet::parse("10.0.0.0/33").is_none());
        assert!(Subnet::parse("nonsense").is_none());
        assert!(
            Subnet::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
    }

    #[test]
    fn heads_and_authorities() {
        let head = parse_head("CONNECT github.com:443 HTTP/1.1\r\nHost: github.com:443").unwrap();
        assert_eq!(head.method, "CONNECT");
        assert_eq!(head.target, "github.com:443");
        assert_eq!(head.headers, ["Host: github.com:443"]);
        assert!(parse_head("GET / HTTP/2").is_none());
        assert!(parse_head("garbage").is_none());
        assert_eq!(
            split_host_port("a.test:8080", 80),
            Some(("a.test".into(), 8080))
        );
        assert_eq!(split_host_port("a.test", 80), Some(("a.test".into(), 80)));
        assert_eq!(split_host_port("[::1]:443", 80), Some(("::1".into(), 443)));
        assert_eq!(split_host_port(":443", 80), None);
        assert_eq!(split_host_port("a:b", 80), None);
    }

    /// A one-shot origin server answering `200 hello <request line>`.
    async fn origin() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let Some((head, _)) = read_head(&mut conn).await else {
                        return;
                    };
                    let first = head.lines().next().unwrap_or_default().to_owned();
                    let closes = head.contains("Connection: close");
                    let body = format!("hello {first} close={closes}");
                    let _ = respond(&mut conn, "200 OK", &body).await;
                });
            }
        });
        addr
    }

    async fn exchange(proxy: SocketAddr, request: &str) -> String {
        let mut conn = TcpStream::connect(proxy).await.unwrap();
        conn.write_all(request.as_bytes()).await.unwrap();
        let mut out = String::new();
        conn.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn proxies_allowed_hosts_and_refuses_others() {
        let origin = origin().await;
        let hosts = HashMap::from([
            ("allowed.test".to_owned(), origin.ip()),
            ("blocked.test".to_owned(), origin.ip()),
        ]);
        let (tx, mut rx) = mpsc::channel(16);
        let proxy = EgressProxy::start(
            "127.0.0.1:0".parse().unwrap(),
            Some(Subnet::parse("127.0.0.0/8").unwrap()),
            EgressPolicy::new(&["allowed.test".to_owned()], hosts),
            tx,
        )
        .await
        .unwrap();
        let port = origin.port();

        // Plain HTTP: forwarded in origin form, with Connection: close.
        let out = exchange(
            proxy.addr(),
            &format!(
                "GET http://allowed.test:{port}/x?y HTTP/1.1\r\nHost: allowed.test\r\nProxy-Connection: keep-alive\r\n\r\n"
            ),
        )
        .await;
        assert!(out.starts_with("HTTP/1.1 200 OK"), "{out}");
        assert!(out.ends_with("hello GET /x?y HTTP/1.1 close=true"), "{out}");

        // CONNECT: a tunnel, then whatever goes through it.
        let mut conn = TcpStream::connect(proxy.addr()).await.unwrap();
        conn.write_all(
            format!("CONNECT allowed.test:{port} HTTP/1.1\r\nHost: allowed.test\r\n\r\nGET /tunnel HTTP/1.1\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
        let mut out = String::new();
        conn.read_to_string(&mut out).await.unwrap();
        assert!(
            out.starts_with("HTTP/1.1 200 Connection established\r\n\r\nHTTP/1.1 200 OK"),
            "{out}"
        );
        assert!(
            out.ends_with("hello GET /tunnel HTTP/1.1 close=false"),
            "{out}"
        );

        // Refused: 403, and a note for the execution's log.
        for request in [
            format!("CONNECT blocked.test:{port} HTTP/1.1\r\n\r\n"),
            format!("GET http://blocked.test:{port}/ HTTP/1.1\r\n\r\n"),
        ] {
            let out = exchange(proxy.addr(), &request).await;
            assert!(out.starts_with("HTTP/1.1 403 Forbidden"), "{out}");
            assert!(out.contains("blocked.test is not in"), "{out}");
        }
        let note = rx.recv().await.unwrap();
        assert_eq!(note.stream, Stream::Note);
        assert_eq!(
            note.text,
            format!("egress refused: CONNECT blocked.test:{port} (not in security.allowedDomains)")
        );
        assert_eq!(
            rx.recv().await.unwrap().text,
            format!(
                "egress refused: GET http://blocked.test:{port} (not in security.allowedDomains)"
            )
        );

        // Not a proxy request.
        let out = exchange(proxy.addr(), "GET /direct HTTP/1.1\r\n\r\n").await;
        assert!(out.starts_with("HTTP/1.1 400"), "{out}");
        proxy.stop().await;
    }

    #[test]
    fn literals_and_non_public_addresses() {
        let p = policy(&["github.com"]).with_trusted(&["api.anthropic.com:443".to_owned()]);
        assert!(p.allows("api.anthropic.com"));
        assert!(!p.allows("127.0.0.1"));
        assert!(!p.allows("[::1]"));
        assert!(!p.allows("169.254.169.254"));
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["140.82.112.3", "8.8.8.8", "2606:4700::1111"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn allowed_names_resolving_to_private_addresses_are_refused() {
        let p = policy(&["localhost"]);
        assert!(p.allows("localhost"));
        assert!(p.reachable("localhost", 80).await.unwrap().is_empty());
        let cidr: ipnet::IpNet = "127.0.0.0/8".parse().unwrap();
        let p = policy(&["localhost"]).with_allowed_cidrs(&[cidr]);
        assert!(!p.reachable("localhost", 80).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn clients_outside_the_network_are_dropped() {
        let (tx, _rx) = mpsc::channel(1);
        let proxy = EgressProxy::start(
            "127.0.0.1:0".parse().unwrap(),
            Some(Subnet::parse("10.99.0.0/16").unwrap()),
            EgressPolicy::new(&["allowed.test".to_owned()], HashMap::new()),
            tx,
        )
        .await
        .unwrap();
        let mut conn = TcpStream::connect(proxy.addr()).await.unwrap();
        // The proxy may close before or after reading the request.
        let _ = conn
            .write_all(b"CONNECT allowed.test:443 HTTP/1.1\r\n\r\n")
            .await;
        let mut out = String::new();
        // Closed (EOF) or reset: either way, no answer.
        let _ = conn.read_to_string(&mut out).await;
        assert_eq!(out, "");
        proxy.stop().await;
    }
}
