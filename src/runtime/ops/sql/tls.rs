//! TLS for database connections: the system's certificate authorities, loaded once.
//!
//! PostgreSQL gets a rustls configuration with the system's roots (`rustls-native-certs`: the
//! files `SSL_CERT_FILE`/`SSL_CERT_DIR` or the distribution's bundle name). The MySQL driver
//! builds its own configuration from Mozilla's roots and one extra file of roots, which is
//! the system's bundle found the same way ([`system_bundle`]). Both verify the certificate
//! and the host name; there is no way to turn that off.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use rustls::ClientConfig;

/// The rustls configuration for PostgreSQL, or why there is none (no system roots).
pub(super) fn client_config() -> Result<ClientConfig, String> {
    static CONFIG: OnceLock<Result<ClientConfig, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            let mut roots = rustls::RootCertStore::empty();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(format!(
                    "no certificate authorities found on this system{}: expected the \
                     ca-certificates package, or SSL_CERT_FILE naming a bundle",
                    found
                        .errors
                        .first()
                        .map(|e| format!(" ({e})"))
                        .unwrap_or_default()
                ));
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map(|builder| builder.with_root_certificates(roots).with_no_client_auth())
                .map_err(|e| format!("cannot set up TLS: {e}"))
        })
        .clone()
}

/// The system's bundle of certificate authorities as one file, if there is one.
pub(super) fn system_bundle() -> Option<PathBuf> {
    static BUNDLE: OnceLock<Option<PathBuf>> = OnceLock::new();
    BUNDLE
        .get_or_init(|| {
            let from_env = std::env::var_os("SSL_CERT_FILE").map(PathBuf::from);
            from_env
                .into_iter()
                .chain(
                    [
                        "/etc/ssl/certs/ca-certificates.crt",
                        "/etc/pki/tls/certs/ca-bundle.crt",
                        "/etc/ssl/ca-bundle.pem",
                        "/etc/ssl/cert.pem",
                    ]
                    .map(PathBuf::from),
                )
                .find(|path| path.is_file())
        })
        .clone()
}
