//! TLS set-up with native-tls and the one stream type every tunnel runs on (plain or TLS over TCP).
//! Loading PEM files and building the connector and acceptor happen at start-up, before any socket.

use crate::error::Error;
use native_tls::{Certificate, HandshakeError, Identity, TlsAcceptor, TlsConnector, TlsStream};
use std::io::{self, Read, Write};
use std::net::TcpStream;

/// A TCP connection, with or without TLS on it.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Stream {
    /// The TCP socket underneath, for timeouts, `poll` and shutdown.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => s.get_ref(),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

fn read_file(path: &str) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| Error::Usage(format!("read {path}: {e}")))
}

/// The client's connector: system roots, plus `--ca` files; `insecure` skips all verification.
pub fn connector(ca_files: &[String], insecure: bool) -> Result<TlsConnector, Error> {
    let mut b = TlsConnector::builder();
    for path in ca_files {
        let pem = read_file(path)?;
        let cert = Certificate::from_pem(&pem)
            .map_err(|e| Error::Usage(format!("{path}: not a PEM certificate: {e}")))?;
        b.add_root_certificate(cert);
    }
    b.danger_accept_invalid_certs(insecure)
        .danger_accept_invalid_hostnames(insecure);
    b.build().map_err(|e| Error::Tls(e.to_string()))
}

/// The server's acceptor from a PEM certificate chain and a PKCS#8 PEM key.
pub fn acceptor(cert_file: &str, key_file: &str) -> Result<TlsAcceptor, Error> {
    let (cert, key) = (read_file(cert_file)?, read_file(key_file)?);
    if !key.windows(17).any(|w| w == b"BEGIN PRIVATE KEY") {
        return Err(Error::Usage(format!(
            "{key_file}: the key must be PKCS#8 PEM (BEGIN PRIVATE KEY); convert it with \
             `openssl pkcs8 -topk8 -nocrypt -in OLD -out NEW`"
        )));
    }
    let id = Identity::from_pkcs8(&cert, &key)
        .map_err(|e| Error::Usage(format!("{cert_file} and {key_file}: {e}")))?;
    TlsAcceptor::new(id).map_err(|e| Error::Tls(e.to_string()))
}

/// Run the client side of the TLS handshake on a connected (blocking) socket.
pub fn connect(c: &TlsConnector, host: &str, tcp: TcpStream) -> Result<Stream, Error> {
    match c.connect(host, tcp) {
        Ok(s) => Ok(Stream::Tls(Box::new(s))),
        Err(HandshakeError::Failure(e)) => Err(Error::Tls(describe(host, &e.to_string()))),
        Err(HandshakeError::WouldBlock(_)) => {
            Err(Error::Tls(format!("handshake with {host} timed out")))
        }
    }
}

/// Turn OpenSSL's long error text into one line a user can act on.
fn describe(host: &str, msg: &str) -> String {
    if msg.contains("certificate verify failed") {
        let why = msg
            .rsplit_once('(')
            .map(|(_, w)| w.trim_end_matches(')'))
            .unwrap_or("");
        let hint = "(use --ca FILE to trust a private CA)";
        format!("certificate verify failed for {host}: {why} {hint}")
    } else {
        format!("handshake with {host} failed: {msg}")
    }
}

#[cfg(test)]
mod tests {
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
}
