//! The lines sstpd logs at startup: where to connect, which certificate to
//! expect, and the demo credentials when they were generated.

use std::path::Path;

use crate::config::{Config, ConfigSource, DEMO_PASSWORD_ENV, DEMO_USER};

pub fn startup_banner(config: &Config, cert_path: &Path, cert_sha256: &[u8; 32]) -> Vec<String> {
    let mut lines = Vec::new();
    for l in config.server.listeners() {
        if l.proxy_protocol.is_on() {
            lines.push(format!(
                "listen: {} (SSTP over HTTPS, PROXY protocol {} from {})",
                l.address,
                l.proxy_protocol.as_str(),
                l.proxy_from
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        } else {
            lines.push(format!("listen: {} (SSTP over HTTPS)", l.address));
        }
    }
    lines.push(format!("certificate: {}", cert_path.display()));
    lines.push(format!(
        "certificate SHA-256 fingerprint: {}",
        crate::tls::colon_hex(cert_sha256)
    ));
    if let ConfigSource::Embedded {
        demo_password_generated,
    } = config.source
    {
        lines.push(format!(
            "no configuration file given: running with embedded defaults (pool {}, gateway {}, TUN {})",
            config.ipv4.pool, config.ipv4.gateway, config.tun.name
        ));
        if let Some(demo) = config.users.local.iter().find(|u| u.name == DEMO_USER) {
            if demo_password_generated {
                lines.push(format!(
                    "demo user: {DEMO_USER} / password: {} (set {DEMO_PASSWORD_ENV} to choose it)",
                    demo.password.0
                ));
            } else {
                lines.push(format!(
                    "demo user: {DEMO_USER} (password from {DEMO_PASSWORD_ENV})"
                ));
            }
        }
    }
    lines
}

// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn startup_banner_lines() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let config = Config::embedded_defaults_with(None, &mut rng);
        let password = config.users.local[0].password.0.clone();
        let mut digest = [0u8; 32];
        digest[0] = 0xab;
        digest[31] = 0x01;
        let lines = startup_banner(
            &config,
            Path::new("/var/lib/sstpd/self-signed-cert.pem"),
            &digest,
        );
        assert_eq!(lines[0], "listen: 127.0.0.1:4443 (SSTP over HTTPS)");
        assert_eq!(lines[1], "certificate: /var/lib/sstpd/self-signed-cert.pem");
        assert_eq!(
            lines[2],
            format!("certificate SHA-256 fingerprint: ab:{}01", "00:".repeat(30))
        );
        assert!(lines[3]
            .contains("embedded defaults (pool 10.99.0.0/24, gateway 10.99.0.1, TUN sstp0)"));
        assert_eq!(
            lines[4],
            format!(
                "demo user: demo / password: {password} (set SSTPD_DEMO_PASSWORD to choose it)"
            )
        );
        assert_eq!(lines.len(), 5);

        let from_env = Config::embedded_defaults_with(Some("secret".into()), &mut rng);
        let lines = startup_banner(&from_env, Path::new("c.pem"), &digest);
        assert_eq!(
            lines[4],
            "demo user: demo (password from SSTPD_DEMO_PASSWORD)"
        );
        assert!(lines.iter().all(|l| !l.contains("secret")));

        let file_config =
            Config::from_toml_str("[[users.local]]\nname = \"t\"\npassword = \"p\"\n").unwrap();
        assert_eq!(
            startup_banner(&file_config, Path::new("c.pem"), &digest).len(),
            3
        );
    }
}
