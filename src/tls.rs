//! TLS set-up and the one stream type every tunnel runs on (plain or TLS over TCP). The client
//! uses native-tls (the system's TLS and roots everywhere). The server uses OpenSSL directly
//! where native-tls would use it anyway (Unix but Apple), for TLS 1.3 and AES-GCM first; it falls
//! back to native-tls elsewhere. PEM files are loaded at start-up, before any socket. On Apple,
//! native-tls (Secure Transport) runs on `sendq::SendQ`, and `Stream::flush` drains that queue,
//! so that a flush that returns Ok has put every byte in the kernel there too.

use crate::error::Error;
use native_tls::{Certificate, HandshakeError, TlsConnector, TlsStream};
use std::io::{self, Read, Write};
use std::net::TcpStream;

/// What native-tls runs on: the socket itself, or on Apple the socket with a send queue of its
/// own (`sendq`), so that Secure Transport never keeps bytes back.
#[cfg(not(target_vendor = "apple"))]
type Under = TcpStream;
#[cfg(target_vendor = "apple")]
type Under = crate::sendq::SendQ;

#[cfg(not(target_vendor = "apple"))]
fn under(tcp: TcpStream) -> Under {
    tcp
}
#[cfg(target_vendor = "apple")]
fn under(tcp: TcpStream) -> Under {
    crate::sendq::SendQ::new(tcp)
}

/// The socket in `Under`.
fn socket(u: &Under) -> &TcpStream {
    #[cfg(target_vendor = "apple")]
    let u = u.tcp();
    u
}

/// After native-tls's flush: whatever `Under` still holds goes out, or `WouldBlock`.
fn drain(_u: &mut Under) -> io::Result<()> {
    #[cfg(target_vendor = "apple")]
    _u.drain()?;
    Ok(())
}

/// A TCP connection, with or without TLS on it.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<Under>>),
    /// The server's TLS, on OpenSSL platforms.
    #[cfg(all(unix, not(target_vendor = "apple")))]
    Ssl(Box<openssl::ssl::SslStream<TcpStream>>),
}

impl Stream {
    /// The TCP socket underneath, for timeouts, `poll` and shutdown.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => socket(s.get_ref()),
            #[cfg(all(unix, not(target_vendor = "apple")))]
            Stream::Ssl(s) => s.get_ref(),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
            #[cfg(all(unix, not(target_vendor = "apple")))]
            Stream::Ssl(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
            #[cfg(all(unix, not(target_vendor = "apple")))]
            Stream::Ssl(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => {
                s.flush()?;
                drain(s.get_mut())
            }
            #[cfg(all(unix, not(target_vendor = "apple")))]
            Stream::Ssl(s) => s.flush(),
        }
    }
}

fn read_file(path: &str) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| Error::Usage(format!("read {path}: {e}")))
}

/// The client's TLS: native-tls's connector, and on Windows the `--ca` roots that wssh checks
/// the server's certificate against itself (`wincert`), schannel's own check being off then.
#[derive(Clone, Debug)]
pub struct Connector {
    tls: TlsConnector,
    /// DER of each `--ca` certificate (empty: schannel's own check, or `--insecure`).
    #[cfg(windows)]
    roots: Vec<Vec<u8>>,
}

/// The client's connector: system roots, plus `--ca` files; `insecure` skips all verification;
/// `identity` (certificate chain, key) is presented to a server that asks for one.
/// `system_roots_named`: the user named the system's CA file or directory (`SSL_CERT_FILE`,
/// `SSL_CERT_DIR`), so `lazy_roots` leaves them alone (`roots_as_named`).
pub fn connector(
    ca_files: &[String],
    insecure: bool,
    identity: Option<(&str, &str)>,
    system_roots_named: bool,
) -> Result<Connector, Error> {
    match system_roots_named {
        true => roots_as_named(),
        false => lazy_roots(insecure),
    }
    let mut b = TlsConnector::builder();
    #[cfg(windows)]
    let mut roots = Vec::new();
    for path in ca_files {
        let pem = read_file(path)?;
        let cert = Certificate::from_pem(&pem)
            .map_err(|e| Error::Usage(format!("{path}: not a PEM certificate: {e}")))?;
        #[cfg(windows)]
        if !insecure {
            roots.push(cert.to_der().map_err(|e| Error::Tls(e.to_string()))?);
        }
        b.add_root_certificate(cert);
    }
    if let Some((cert_file, key_file)) = identity {
        let (cert, key) = (read_file(cert_file)?, pkcs8_key(key_file)?);
        let id = native_tls::Identity::from_pkcs8(&cert, &key)
            .map_err(|e| Error::Usage(format!("{cert_file} and {key_file}: {e}")))?;
        b.identity(id);
    }
    // With `--ca` on Windows, `wincert` checks the certificate once the handshake is done.
    #[cfg(windows)]
    let insecure = insecure || !roots.is_empty();
    b.danger_accept_invalid_certs(insecure)
        .danger_accept_invalid_hostnames(insecure);
    let tls = b.build().map_err(|e| Error::Tls(e.to_string()))?;
    Ok(Connector {
        tls,
        #[cfg(windows)]
        roots,
    })
}

/// Where native-tls runs on OpenSSL, it parses the whole system CA bundle (some 140 PEM
/// certificates: about 50 ms, more than the rest of a client's start) at every start, then adds
/// the system's certificate directories, where OpenSSL looks a CA up by its subject hash only
/// when a handshake needs it. When one of those directories is hashed (the links that
/// `update-ca-certificates` or `c_rehash` make) it holds the same CAs as the bundle: point the
/// bundle at /dev/null so that only the directory is used. With `--insecure` nothing is
/// verified, so no bundle is needed at all. Runs before the first connector reads the variable,
/// on the one thread that builds the configuration.
fn lazy_roots(insecure: bool) {
    #[cfg(all(unix, not(target_vendor = "apple")))]
    {
        const DIRS: &[&str] = &["/etc/ssl/certs", "/etc/pki/tls/certs"];
        let hashed = |dir: &&str| {
            std::fs::read_dir(dir).is_ok_and(|mut d| {
                d.any(|e| e.is_ok_and(|e| is_hash_name(&e.file_name().to_string_lossy())))
            })
        };
        if insecure || DIRS.iter().any(hashed) {
            std::env::set_var("SSL_CERT_FILE", "/dev/null");
        }
    }
    #[cfg(not(all(unix, not(target_vendor = "apple"))))]
    let _ = insecure;
}

/// `SSL_CERT_FILE` and `SSL_CERT_DIR` as the user set them: a path that does not exist gives no
/// CA, as it does to OpenSSL. native-tls's start (openssl-probe) would otherwise replace such a
/// path with the system's bundle and directories, trusting what the user did not name (a typo
/// in a private CA's path would trust the public CAs instead) and parsing the whole bundle
/// (about 5 ms of a start). /dev/null, which exists and holds nothing, says "none" to both.
fn roots_as_named() {
    #[cfg(all(unix, not(target_vendor = "apple")))]
    for var in ["SSL_CERT_FILE", "SSL_CERT_DIR"] {
        let Some(value) = std::env::var_os(var) else {
            continue;
        };
        // OpenSSL takes a list of directories.
        let exists = match var {
            "SSL_CERT_DIR" => std::env::split_paths(&value).any(|p| p.exists()),
            _ => std::path::Path::new(&value).exists(),
        };
        if !exists {
            log::debug!(
                "{var}={}: no such path, so no CA from it",
                value.to_string_lossy()
            );
            std::env::set_var(var, "/dev/null");
        }
    }
}

/// A name OpenSSL's directory lookup reads: the subject hash in 8 hex digits, a dot, a digit
/// (`5ad8a5d6.0`).
#[cfg_attr(not(all(unix, not(target_vendor = "apple"))), allow(dead_code))]
fn is_hash_name(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() == 10
        && b[..8].iter().all(u8::is_ascii_hexdigit)
        && b[8] == b'.'
        && b[9].is_ascii_digit()
}

/// A PEM key file, refused unless it is PKCS#8 (what native-tls takes), with the conversion.
fn pkcs8_key(key_file: &str) -> Result<Vec<u8>, Error> {
    let key = read_file(key_file)?;
    if !key.windows(17).any(|w| w == b"BEGIN PRIVATE KEY") {
        return Err(Error::Usage(format!(
            "{key_file}: the key must be PKCS#8 PEM (BEGIN PRIVATE KEY); convert it with \
             `openssl pkcs8 -topk8 -nocrypt -in OLD -out NEW`"
        )));
    }
    Ok(key)
}

/// The server's TLS acceptor type on this platform.
#[cfg(all(unix, not(target_vendor = "apple")))]
pub type Acceptor = openssl::ssl::SslAcceptor;
#[cfg(not(all(unix, not(target_vendor = "apple"))))]
pub type Acceptor = native_tls::TlsAcceptor;

/// What the server's TLS may offer beyond its defaults (TLS 1.2 and 1.3, Mozilla's list).
#[derive(Debug, Default, Clone)]
pub struct ServerTls {
    /// `--tls-min-version 1.3`: refuse TLS 1.2.
    pub tls13_only: bool,
    /// `--tls-ciphers`: an OpenSSL cipher list for TLS 1.2 (TLS 1.3's suites are not changed).
    pub ciphers: Option<String>,
}

/// Can this platform's server verify client certificates (`--verify-client`)?
pub const VERIFIES_CLIENTS: bool = cfg!(all(unix, not(target_vendor = "apple")));

/// The server's acceptor from a PEM certificate chain and a PKCS#8 PEM key (one file may hold
/// both: each is picked out of it); with `client_ca`, every client must present a certificate
/// signed by one of the PEM CAs in that file (only where `VERIFIES_CLIENTS`; `cli` refuses it
/// elsewhere).
pub fn acceptor(
    cert_file: &str,
    key_file: &str,
    client_ca: Option<&str>,
    opts: &ServerTls,
) -> Result<Acceptor, Error> {
    let (cert, key) = (read_file(cert_file)?, pkcs8_key(key_file)?);
    let bad = |e: &dyn std::fmt::Display| Error::Usage(format!("{cert_file} and {key_file}: {e}"));
    #[cfg(all(unix, not(target_vendor = "apple")))]
    {
        use openssl::ssl::{SslAcceptor, SslMethod};
        // Mozilla's intermediate v5: TLS 1.2 and 1.3, AES-GCM first; the chain in file order.
        let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).map_err(|e| bad(&e))?;
        let chain = openssl::x509::X509::stack_from_pem(&cert).map_err(|e| bad(&e))?;
        let (leaf, rest) = chain
            .split_first()
            .ok_or_else(|| bad(&"no certificate in the file"))?;
        b.set_certificate(leaf).map_err(|e| bad(&e))?;
        for c in rest {
            b.add_extra_chain_cert(c.clone()).map_err(|e| bad(&e))?;
        }
        let pkey = openssl::pkey::PKey::private_key_from_pem(&key).map_err(|e| bad(&e))?;
        b.set_private_key(&pkey).map_err(|e| bad(&e))?;
        b.check_private_key()
            .map_err(|_| bad(&"the key does not match the certificate"))?;
        if opts.tls13_only {
            b.set_min_proto_version(Some(openssl::ssl::SslVersion::TLS1_3))
                .map_err(|e| bad(&e))?;
        }
        if let Some(list) = &opts.ciphers {
            // OpenSSL takes a list if any one name in it is known; an unknown list is an error.
            b.set_cipher_list(list)
                .map_err(|_| Error::Usage("--tls-ciphers: no cipher OpenSSL knows".into()))?;
        }
        // Each wssh client is a new process and never resumes a session: keep no session state.
        b.set_session_cache_mode(openssl::ssl::SslSessionCacheMode::OFF);
        b.set_num_tickets(0).map_err(|e| bad(&e))?;
        // Read as much as is there in one system call, not a record's header and then its
        // body: 10 reads per 64 KiB frame become 5.
        b.set_read_ahead(true);
        if let Some(ca) = client_ca {
            verify_clients(&mut b, ca)?;
        }
        Ok(b.build())
    }
    #[cfg(not(all(unix, not(target_vendor = "apple"))))]
    {
        if opts.tls13_only || opts.ciphers.is_some() {
            return Err(Error::Usage(
                "--tls-min-version 1.3 and --tls-ciphers need OpenSSL (not on this platform)"
                    .into(),
            ));
        }
        if client_ca.is_some() {
            return Err(Error::Usage(
                "--verify-client is not available on this platform".into(),
            ));
        }
        let id = native_tls::Identity::from_pkcs8(&cert, &key).map_err(|e| bad(&e))?;
        native_tls::TlsAcceptor::new(id).map_err(|e| Error::Tls(e.to_string()))
    }
}

/// Require a client certificate that chains to a CA in `ca_file` (`--verify-client --cafile`),
/// and name those CAs to the client, so that it can pick its certificate.
#[cfg(all(unix, not(target_vendor = "apple")))]
fn verify_clients(b: &mut openssl::ssl::SslAcceptorBuilder, ca_file: &str) -> Result<(), Error> {
    use openssl::ssl::SslVerifyMode;
    let bad = |e: &dyn std::fmt::Display| Error::Usage(format!("--cafile {ca_file}: {e}"));
    let pem = read_file(ca_file)?;
    let cas = openssl::x509::X509::stack_from_pem(&pem).map_err(|e| bad(&e))?;
    if cas.is_empty() {
        return Err(bad(&"no PEM certificate in it"));
    }
    let store = b.cert_store_mut();
    for ca in &cas {
        store.add_cert(ca.clone()).map_err(|e| bad(&e))?;
    }
    let mut names = openssl::stack::Stack::new().map_err(|e| bad(&e))?;
    for ca in &cas {
        let name = ca.subject_name().to_owned().map_err(|e| bad(&e))?;
        names.push(name).map_err(|e| bad(&e))?;
    }
    b.set_client_ca_list(names);
    b.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
    b.set_session_id_context(b"wssh").map_err(|e| bad(&e))?;
    Ok(())
}

/// The subject CN of the client's verified certificate, when it has exactly one.
pub fn peer_cn(s: &Stream) -> Option<String> {
    match s {
        #[cfg(all(unix, not(target_vendor = "apple")))]
        Stream::Ssl(s) => {
            let cert = s.ssl().peer_certificate()?;
            let name = cert.subject_name();
            let mut cns = name.entries_by_nid(openssl::nid::Nid::COMMONNAME);
            let cn = cns.next()?.data().to_string().ok()?;
            cns.next().is_none().then_some(cn)
        }
        _ => None,
    }
}

/// Run the server side of the TLS handshake on an accepted (blocking) socket.
pub fn accept(a: &Acceptor, tcp: TcpStream) -> Result<Stream, Error> {
    #[cfg(all(unix, not(target_vendor = "apple")))]
    let r = match a.accept(tcp) {
        Ok(s) => Ok(Stream::Ssl(Box::new(s))),
        Err(openssl::ssl::HandshakeError::WouldBlock(_)) => Err("timed out".to_string()),
        Err(e) => {
            let why = e.to_string();
            if let openssl::ssl::HandshakeError::Failure(mid) = &e {
                linger(mid.get_ref());
            }
            Err(why)
        }
    };
    #[cfg(not(all(unix, not(target_vendor = "apple"))))]
    let r = match a.accept(under(tcp)) {
        Ok(s) => Ok(Stream::Tls(Box::new(s))),
        Err(HandshakeError::WouldBlock(_)) => Err("timed out".to_string()),
        Err(e) => Err(e.to_string()),
    };
    r.map_err(|e| Error::Tls(format!("handshake: {e}")))
}

/// After a failed handshake, before the socket closes. A TLS 1.3 client writes its request as
/// soon as its own side is done, before the server has checked its certificate; closing with
/// those bytes unread makes the kernel answer with a reset, which can overtake the alert that
/// says why (the client then reads only "connection reset"). So: FIN after the alert, then read
/// and drop what comes, for half a second or 64 KiB at most.
#[cfg(all(unix, not(target_vendor = "apple")))]
fn linger(tcp: &TcpStream) {
    use std::time::{Duration, Instant};
    let _ = tcp.shutdown(std::net::Shutdown::Write);
    let end = Instant::now() + Duration::from_millis(500);
    // On the heap: a 4 KiB array here would grow the frame of `accept`, which it is inlined
    // into, and every connection thread would keep that stack page (4 KiB per idle tunnel).
    let (mut buf, mut total) = (vec![0u8; 4096], 0);
    while total < 64 * 1024 {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() || tcp.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match (&mut &*tcp).read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => total += n,
        }
    }
}

/// Run the client side of the TLS handshake on a connected (blocking) socket.
pub fn connect(c: &Connector, host: &str, tcp: TcpStream) -> Result<Stream, Error> {
    match c.tls.connect(host, under(tcp)) {
        Ok(s) => {
            #[cfg(windows)]
            check_roots(c, host, &s)?;
            Ok(Stream::Tls(Box::new(s)))
        }
        Err(HandshakeError::Failure(e)) => Err(Error::Tls(describe(host, &e.to_string()))),
        Err(HandshakeError::WouldBlock(_)) => {
            Err(Error::Tls(format!("handshake with {host} timed out")))
        }
    }
}

/// With `--ca` on Windows: the server's certificate against those roots, before any byte goes.
#[cfg(windows)]
fn check_roots(c: &Connector, host: &str, s: &TlsStream<Under>) -> Result<(), Error> {
    if c.roots.is_empty() {
        return Ok(());
    }
    let failed = |why: &dyn std::fmt::Display| {
        Error::Tls(format!("certificate verify failed for {host}: {why}"))
    };
    let leaf = match s.peer_certificate() {
        Ok(Some(cert)) => cert.to_der().map_err(|e| failed(&e))?,
        Ok(None) => return Err(failed(&"the server sent no certificate")),
        Err(e) => return Err(failed(&e)),
    };
    crate::wincert::verify(&leaf, &c.roots, host).map_err(|e| failed(&e))
}

/// Turn OpenSSL's long error text (or schannel's number) into one line a user can act on.
fn describe(host: &str, msg: &str) -> String {
    let msg = &crate::error::words(msg);
    let hint = "(use --ca FILE to trust a private CA)";
    if let Some(m) = client_cert_alert(host, msg) {
        m
    } else if msg.contains("certificate verify failed") {
        let why = msg
            .rsplit_once('(')
            .map(|(_, w)| w.trim_end_matches(')'))
            .unwrap_or("");
        format!("certificate verify failed for {host}: {why} {hint}")
    } else if msg.contains("(os error 0x800B") || msg.contains("(os error 0x800920") {
        // schannel's verdict on the certificate (CERT_E_*, CRYPT_E_*), put in words; the hint
        // only where a CA is what is missing.
        let hint = if msg.contains("trusted root") || msg.contains("not trusted") {
            hint
        } else {
            ""
        };
        format!("certificate verify failed for {host}: {msg} {hint}")
            .trim_end()
            .to_string()
    } else {
        format!("handshake with {host} failed: {msg}")
    }
}

/// What a TLS alert from the server says about our client certificate, when it is about that.
/// A TLS 1.3 server checks it after the client's side of the handshake is done, so the alert
/// comes on the first read, not from `connect`: `client` asks here about that error too.
pub fn client_cert_alert(host: &str, msg: &str) -> Option<String> {
    const REFUSED: &[&str] = &[
        "unknown ca",
        "bad certificate",
        "certificate expired",
        "certificate revoked",
        "certificate unknown",
        "unsupported certificate",
        "access denied",
    ];
    if msg.contains("alert certificate required") {
        return Some(format!(
            "{host} requires a client certificate (give --cert FILE --key FILE)"
        ));
    }
    let why = REFUSED
        .iter()
        .find(|a| msg.contains(&format!("alert {a}")))?;
    Some(format!("{host} refused our client certificate ({why})"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn hash_names_are_what_openssl_looks_up() {
        let check = |name, expected| assert_eq!(super::is_hash_name(name), expected, "{name}");
        check("5ad8a5d6.0", true);
        check("002c0b4f.1", true);
        check("5AD8A5D6.0", true);
        check("ca-certificates.crt", false);
        check("5ad8a5d6.r0", false);
        check("5ad8a5d6.10", false);
        check("5ad8a5g6.0", false);
        check("GlobalSign_Root_R46.pem", false);
        check("", false);
    }

    #[test]
    fn verify_failure_is_one_clear_line() {
        let m = "error:0A000086:SSL routines:tls_post_process_server_certificate:certificate \
                 verify failed:ssl/statem/statem_clnt.c:2091: (self-signed certificate)";
        assert_eq!(
            super::describe("gw", m),
            "certificate verify failed for gw: self-signed certificate \
             (use --ca FILE to trust a private CA)"
        );
    }

    #[test]
    fn schannel_verify_failure_is_in_words() {
        let m = "OS Error -2146762481 (FormatMessageW() returned error 317) (os error \
                 -2146762481)";
        assert_eq!(
            super::describe("gw", m),
            "certificate verify failed for gw: the certificate is not for this host name \
             (os error 0x800B010F)"
        );
    }

    #[test]
    fn client_certificate_alerts_say_what_to_do() {
        let check = |msg: &str, expected: Option<&str>| {
            assert_eq!(
                super::client_cert_alert("gw:443", msg).as_deref(),
                expected,
                "{msg}"
            )
        };
        check(
            "error:0A00045C:SSL routines:ssl3_read_bytes:tlsv13 alert certificate required:\
             ssl/record/rec_layer_s3.c:1605:SSL alert number 116",
            Some("gw:443 requires a client certificate (give --cert FILE --key FILE)"),
        );
        check(
            "error:0A000418:SSL routines:ssl3_read_bytes:tlsv1 alert unknown ca:\
             ssl/record/rec_layer_s3.c:1605:SSL alert number 48",
            Some("gw:443 refused our client certificate (unknown ca)"),
        );
        check(
            "ssl3_read_bytes:sslv3 alert bad certificate",
            Some("gw:443 refused our client certificate (bad certificate)"),
        );
        check("ssl3_read_bytes:sslv3 alert handshake failure", None);
        check("Connection reset by peer (os error 104)", None);
    }
}
