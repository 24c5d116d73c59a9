//! `tessera health`: one `GET` of a node's `/readyz` (or any URL), exit 0 on `200` and 1
//! otherwise. The container image has no shell and no curl, so its `HEALTHCHECK` runs this.
//! By default it asks the node that `TESSERA_LISTEN` (and `TESSERA_TLS_CERT`) in its own
//! environment describe, so the image's check needs no arguments.
//!
//! Over HTTPS the certificate is not verified, as the kubelet's HTTPS probes do not: the check
//! asks whether the process on this address serves, which a name check cannot answer better
//! (the certificate names the public host, not `127.0.0.1`), and it sends nothing secret.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(clap::Args, Debug)]
pub struct HealthArgs {
    /// URL to GET [default: /readyz on TESSERA_LISTEN's port over loopback, https when
    /// TESSERA_TLS_CERT is set].
    #[arg(long)]
    pub url: Option<String>,
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 3)]
    pub timeout: u64,
}

pub async fn run(args: HealthArgs) -> anyhow::Result<()> {
    let url = match args.url {
        Some(url) => url,
        None => default_url(
            std::env::var("TESSERA_LISTEN").ok().as_deref(),
            std::env::var_os("TESSERA_TLS_CERT").is_some(),
        )?,
    };
    let url = url::Url::parse(&url).with_context(|| format!("{url:?} is not a URL"))?;
    let status = tokio::time::timeout(Duration::from_secs(args.timeout), get(&url))
        .await
        .map_err(|_| anyhow::anyhow!("{url}: no answer within {} s", args.timeout))??;
    anyhow::ensure!(status == 200, "{url}: {status}");
    println!("{url}: {status}");
    Ok(())
}

/// `/readyz` of the node this environment configures: its listen address with an unspecified
/// host (`0.0.0.0`, `[::]`) replaced by loopback.
fn default_url(listen: Option<&str>, tls: bool) -> anyhow::Result<String> {
    let listen: SocketAddr = listen
        .unwrap_or(crate::config::DEFAULT_LISTEN)
        .parse()
        .context("TESSERA_LISTEN is not an address (host:port)")?;
    let host = match listen.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".to_string(),
        ip if ip.is_unspecified() => "[::1]".to_string(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    let scheme = if tls { "https" } else { "http" };
    Ok(format!("{scheme}://{host}:{}/readyz", listen.port()))
}

async fn get(url: &url::Url) -> anyhow::Result<u16> {
    let host = url.host_str().context("the URL has no host")?;
    let port = url.port_or_known_default().context("the URL has no port")?;
    let tcp = TcpStream::connect((host.trim_matches(['[', ']']), port))
        .await
        .with_context(|| format!("cannot connect to {host}:{port}"))?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: tessera-health\r\nConnection: close\r\n\r\n",
        &url[url::Position::BeforePath..url::Position::AfterQuery]
    );
    match url.scheme() {
        "http" => status(tcp, &request).await,
        "https" => {
            let config = rustls::ClientConfig::builder()
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate::new()))
                .with_no_client_auth();
            let name = rustls::pki_types::ServerName::try_from(host.trim_matches(['[', ']']))
                .context("the URL's host is not a server name")?
                .to_owned();
            let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
                .connect(name, tcp)
                .await
                .context("TLS handshake failed")?;
            status(tls, &request).await
        }
        other => anyhow::bail!("{other}: only http and https URLs can be checked"),
    }
}

/// Send the request and read the status code from the first line of the answer.
async fn status<S: AsyncRead + AsyncWrite + Unpin>(
    mut io: S,
    request: &str,
) -> anyhow::Result<u16> {
    io.write_all(request.as_bytes()).await?;
    let mut head = Vec::with_capacity(64);
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n") && head.len() < 256 {
        if io.read(&mut byte).await? == 0 {
            break;
        }
        head.push(byte[0]);
    }
    let line = String::from_utf8_lossy(&head);
    line.split(' ')
        .nth(1)
        .filter(|_| line.starts_with("HTTP/1."))
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("not an HTTP answer: {:?}", line.trim_end()))
}

/// Accepts any certificate but still checks the handshake's signatures with it (see the module
/// comment for why no name or chain is checked).
#[derive(Debug)]
struct AnyCertificate(rustls::crypto::WebPkiSupportedAlgorithms);

impl AnyCertificate {
    fn new() -> Self {
        AnyCertificate(
            rustls::crypto::CryptoProvider::get_default()
                .map(|p| p.signature_verification_algorithms)
                .unwrap_or(
                    rustls::crypto::aws_lc_rs::default_provider().signature_verification_algorithms,
                ),
        )
    }
}

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_url_is_the_configured_port_over_loopback() {
        assert_eq!(
            default_url(Some("0.0.0.0:8080"), false).unwrap(),
            "http://127.0.0.1:8080/readyz"
        );
        assert_eq!(
            default_url(Some("[::]:9443"), true).unwrap(),
            "https://[::1]:9443/readyz"
        );
        assert_eq!(
            default_url(Some("10.1.2.3:80"), false).unwrap(),
            "http://10.1.2.3:80/readyz"
        );
        assert_eq!(
            default_url(None, false).unwrap(),
            "http://127.0.0.1:8080/readyz"
        );
        assert!(default_url(Some("localhost"), false).is_err());
    }
}
