//! An X.509 CA for mutual TLS: an ECDSA P-256 root that signs one issuing CA, which signs
//! short-lived workload certificates naming a SPIFFE id (`spiffe://TRUST_DOMAIN/path`) in a
//! URI SAN, usable for both TLS clients and servers.
//!
//! Requesters send a PKCS#10 CSR: its signature is checked (proof that the requester holds the
//! key) and only its public key is used; names, lifetime and usages come from the caller, never
//! from the CSR.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, CertificateSigningRequestParams,
    DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256, PublicKeyData, SanType, SerialNumber,
};
use zeroize::Zeroizing;

/// Why an X.509 key, request or certificate could not be made or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum X509Error {
    /// The CSR is not a PEM `CERTIFICATE REQUEST` with a valid self-signature.
    #[error("invalid CSR: {0}")]
    BadCsr(String),
    /// The SPIFFE id is malformed.
    #[error("invalid SPIFFE id `{id}`: {reason}")]
    BadSpiffeId {
        /// The id as given (shortened).
        id: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The validity window is empty or out of range.
    #[error("invalid validity: {0}")]
    BadValidity(&'static str),
    /// Key or certificate material could not be encoded, decoded or signed.
    #[error("X.509 error: {0}")]
    Key(String),
}

fn key_err(e: impl fmt::Display) -> X509Error {
    X509Error::Key(e.to_string())
}

/// A SPIFFE id: `spiffe://` + trust domain + a path of one or more segments.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SpiffeId {
    trust_domain: String,
    path: String,
}

impl SpiffeId {
    /// The id in `trust_domain` with `path` (which starts with `/`).
    pub fn new(trust_domain: &str, path: &str) -> Result<Self, X509Error> {
        format!("spiffe://{trust_domain}{path}").parse()
    }

    /// The trust domain (`example.org`).
    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// The path, starting with `/`.
    pub fn path(&self) -> &str {
        &self.path
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "spiffe://{}{}", self.trust_domain, self.path)
    }
}

/// Checks a trust domain name: lowercase letters, digits, `.`, `-` and `_` (SPIFFE-ID §2.1).
pub fn valid_trust_domain(td: &str) -> bool {
    !td.is_empty()
        && td.len() <= 255
        && td.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
        })
}

impl FromStr for SpiffeId {
    type Err = X509Error;

    /// Parses per the SPIFFE-ID standard: lowercase scheme and trust domain, path segments of
    /// letters, digits, `.`, `-` and `_`, no empty, `.` or `..` segments, no trailing `/`,
    /// no query or fragment, at most 2048 bytes.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason| X509Error::BadSpiffeId {
            id: s.chars().take(80).collect(),
            reason,
        };
        if s.len() > 2048 {
            return Err(bad("longer than 2048 bytes"));
        }
        let rest = s
            .strip_prefix("spiffe://")
            .ok_or_else(|| bad("must start with spiffe://"))?;
        let (td, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if td.is_empty() {
            return Err(bad("the trust domain is missing"));
        }
        if !valid_trust_domain(td) {
            return Err(bad(
                "the trust domain may hold only lowercase letters, digits, '.', '-' and '_'",
            ));
        }
        if path.is_empty() {
            return Err(bad("a workload id needs a path after the trust domain"));
        }
        for segment in path.split('/').skip(1) {
            match segment {
                "" => return Err(bad("empty path segment (or trailing '/')")),
                "." | ".." => return Err(bad("'.' and '..' segments are not allowed")),
                _ if !segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')) =>
                {
                    return Err(bad(
                        "path segments may hold only letters, digits, '.', '-' and '_'",
                    ));
                }
                _ => {}
            }
        }
        Ok(SpiffeId {
            trust_domain: td.to_owned(),
            path: path.to_owned(),
        })
    }
}

/// A public key proven by a CSR's self-signature.
#[derive(Debug)]
pub struct RequestKey(rcgen::PublicKey);

impl RequestKey {
    /// The raw public key bits (the SubjectPublicKeyInfo's BIT STRING).
    pub fn public_key_bytes(&self) -> &[u8] {
        self.0.der_bytes()
    }
}

/// Parses a PEM CSR and checks its self-signature; returns the public key it proves.
pub fn parse_csr(pem_text: &str) -> Result<RequestKey, X509Error> {
    let block = pem::parse(pem_text.trim()).map_err(|_| {
        X509Error::BadCsr("not PEM (expected -----BEGIN CERTIFICATE REQUEST-----)".into())
    })?;
    if block.tag() != "CERTIFICATE REQUEST" && block.tag() != "NEW CERTIFICATE REQUEST" {
        return Err(X509Error::BadCsr(format!(
            "PEM block is `{}`, expected `CERTIFICATE REQUEST`",
            block.tag().chars().take(40).collect::<String>()
        )));
    }
    let der = rustls_pki_types::CertificateSigningRequestDer::from(block.contents());
    let params = CertificateSigningRequestParams::from_der(&der).map_err(|e| {
        X509Error::BadCsr(match e {
            rcgen::Error::RingUnspecified => "its signature does not verify".to_owned(),
            rcgen::Error::UnsupportedExtension => {
                "it requests an extension Warden does not accept (only subjectAltName, keyUsage and extendedKeyUsage)"
                    .to_owned()
            }
            rcgen::Error::UnsupportedSignatureAlgorithm => {
                "its signature algorithm is not supported (use ECDSA P-256/P-384, Ed25519 or RSA)"
                    .to_owned()
            }
            other => format!("cannot parse it ({other})"),
        })
    })?;
    Ok(RequestKey(params.public_key))
}

/// What a workload certificate says. Times are seconds since the Unix epoch.
#[derive(Debug, Clone)]
pub struct WorkloadRequest {
    /// The URI SAN.
    pub spiffe_id: SpiffeId,
    /// Extra DNS SANs (for a TLS server).
    pub dns_names: Vec<String>,
    /// Extra IP SANs (for a TLS server).
    pub ip_addresses: Vec<IpAddr>,
    /// Unique per CA.
    pub serial: u64,
    /// Not before.
    pub not_before: u64,
    /// Not after.
    pub not_after: u64,
}

/// Which kind of key a certificate holds.
#[derive(Debug)]
pub enum SubjectKey<'a> {
    /// A key proven by a CSR.
    Request(&'a RequestKey),
    /// A key pair held here (the server's own listener).
    Local(&'a LocalKey),
}

/// An ECDSA P-256 key pair made here. `Debug` never shows the private key.
pub struct LocalKey(KeyPair);

impl fmt::Debug for LocalKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LocalKey(<redacted>)")
    }
}

impl LocalKey {
    /// A new random P-256 key.
    pub fn generate() -> Result<Self, X509Error> {
        KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
            .map(LocalKey)
            .map_err(key_err)
    }

    /// From a PKCS#8 PEM.
    pub fn from_pem(text: &str) -> Result<Self, X509Error> {
        KeyPair::from_pem(text).map(LocalKey).map_err(key_err)
    }

    /// The private key as PKCS#8 PEM. Handle as a secret.
    pub fn to_pem(&self) -> Zeroizing<String> {
        Zeroizing::new(self.0.serialize_pem())
    }

    /// The private key as PKCS#8 DER. Handle as a secret.
    pub fn to_der(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(self.0.serialize_der())
    }

    /// A CSR for this key (its subject is not used by Warden).
    pub fn csr_pem(&self) -> Result<String, X509Error> {
        CertificateParams::default()
            .serialize_request(&self.0)
            .and_then(|csr| csr.pem())
            .map_err(key_err)
    }
}

fn time(secs: u64) -> Result<time::OffsetDateTime, X509Error> {
    i64::try_from(secs)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .ok_or(X509Error::BadValidity("time out of range"))
}

fn dn(common_name: &str, organization: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, organization);
    dn.push(DnType::CommonName, common_name);
    dn
}

/// Years of life for a root (10) and an issuing CA (5), in seconds.
pub const ROOT_LIFETIME: u64 = 10 * 365 * 86_400;
/// See [`ROOT_LIFETIME`].
pub const ISSUING_LIFETIME: u64 = 5 * 365 * 86_400;

/// A new root and issuing CA, the sealed-at-rest parts of an [`X509Ca`].
#[derive(Debug)]
pub struct NewCa {
    /// The root certificate, PEM.
    pub root_pem: String,
    /// The root's private key.
    pub root_key: LocalKey,
    /// The issuing CA's certificate, PEM.
    pub issuing_pem: String,
    /// The issuing CA's private key.
    pub issuing_key: LocalKey,
}

/// Makes a root (valid 10 years from `now`) and an issuing CA under it (5 years).
pub fn generate(trust_domain: &str, now: u64, serial: u64) -> Result<NewCa, X509Error> {
    let root_key = LocalKey::generate()?;
    let mut root = CertificateParams::default();
    root.distinguished_name = dn(&format!("Warden root CA {serial:x}"), trust_domain);
    root.is_ca = IsCa::Ca(BasicConstraints::Constrained(1));
    root.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    root.serial_number = Some(SerialNumber::from(serial));
    root.not_before = time(now.saturating_sub(60))?;
    root.not_after = time(now.saturating_add(ROOT_LIFETIME))?;
    let root = root.self_signed(&root_key.0).map_err(key_err)?;

    let issuing_key = LocalKey::generate()?;
    let mut issuing = CertificateParams::default();
    issuing.distinguished_name = dn(&format!("Warden issuing CA {serial:x}"), trust_domain);
    issuing.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    issuing.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    issuing.serial_number = Some(SerialNumber::from(serial.wrapping_add(1)));
    issuing.not_before = time(now.saturating_sub(60))?;
    issuing.not_after = time(now.saturating_add(ISSUING_LIFETIME))?;
    issuing.use_authority_key_identifier_extension = true;
    let issuing = issuing
        .signed_by(&issuing_key.0, &root, &root_key.0)
        .map_err(key_err)?;
    Ok(NewCa {
        root_pem: root.pem(),
        root_key,
        issuing_pem: issuing.pem(),
        issuing_key,
    })
}

/// An issuing CA ready to sign, with the root it chains to.
pub struct X509Ca {
    issuer: Certificate,
    key: LocalKey,
    issuing_pem: String,
    root_pem: String,
}

impl fmt::Debug for X509Ca {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("X509Ca").finish_non_exhaustive()
    }
}

impl X509Ca {
    /// The CA from its certificates and the issuing key.
    pub fn new(
        root_pem: &str,
        issuing_pem: &str,
        issuing_key: LocalKey,
    ) -> Result<Self, X509Error> {
        // rcgen signs with an issuer `Certificate`; rebuilding one from the stored certificate
        // keeps its subject and key identifier, which is all a signature uses.
        let issuer = CertificateParams::from_ca_cert_pem(issuing_pem)
            .and_then(|params| params.self_signed(&issuing_key.0))
            .map_err(key_err)?;
        Ok(X509Ca {
            issuer,
            key: issuing_key,
            issuing_pem: issuing_pem.to_owned(),
            root_pem: root_pem.to_owned(),
        })
    }

    /// The issuing CA's certificate, PEM: the chain a workload presents with its own.
    pub fn chain_pem(&self) -> &str {
        &self.issuing_pem
    }

    /// The root certificate, PEM.
    pub fn root_pem(&self) -> &str {
        &self.root_pem
    }

    /// Signs a workload certificate for `key`, usable for TLS client and server auth.
    pub fn issue(&self, key: SubjectKey<'_>, req: &WorkloadRequest) -> Result<String, X509Error> {
        if req.not_after <= req.not_before {
            return Err(X509Error::BadValidity("not_after must be after not_before"));
        }
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(req.spiffe_id.path(), req.spiffe_id.trust_domain());
        params.subject_alt_names = std::iter::once(&req.spiffe_id.to_string())
            .map(|uri| uri.clone().try_into().map(SanType::URI))
            .chain(
                req.dns_names
                    .iter()
                    .map(|n| n.clone().try_into().map(SanType::DnsName)),
            )
            .collect::<Result<Vec<_>, _>>()
            .map_err(key_err)?;
        params
            .subject_alt_names
            .extend(req.ip_addresses.iter().map(|ip| SanType::IpAddress(*ip)));
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.serial_number = Some(SerialNumber::from(req.serial));
        params.not_before = time(req.not_before)?;
        params.not_after = time(req.not_after)?;
        params.use_authority_key_identifier_extension = true;
        let cert = match key {
            SubjectKey::Request(k) => params.signed_by(&k.0, &self.issuer, &self.key.0),
            SubjectKey::Local(k) => params.signed_by(&k.0, &self.issuer, &self.key.0),
        }
        .map_err(key_err)?;
        Ok(cert.pem())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn spiffe_ids() {
        let id: SpiffeId = "spiffe://example.org/ns/prod/sa/api".parse().unwrap();
        assert_eq!(id.trust_domain(), "example.org");
        assert_eq!(id.path(), "/ns/prod/sa/api");
        assert_eq!(id.to_string(), "spiffe://example.org/ns/prod/sa/api");
        for (bad, reason) in [
            ("https://example.org/a", "must start with spiffe://"),
            ("spiffe:///a", "the trust domain is missing"),
            (
                "spiffe://Example.org/a",
                "the trust domain may hold only lowercase letters, digits, '.', '-' and '_'",
            ),
            (
                "spiffe://example.org",
                "a workload id needs a path after the trust domain",
            ),
            (
                "spiffe://example.org/",
                "empty path segment (or trailing '/')",
            ),
            (
                "spiffe://example.org/a//b",
                "empty path segment (or trailing '/')",
            ),
            (
                "spiffe://example.org/a/../b",
                "'.' and '..' segments are not allowed",
            ),
            (
                "spiffe://example.org/a?b",
                "path segments may hold only letters, digits, '.', '-' and '_'",
            ),
            (
                "spiffe://user@example.org/a",
                "the trust domain may hold only lowercase letters, digits, '.', '-' and '_'",
            ),
        ] {
            match bad.parse::<SpiffeId>() {
                Err(X509Error::BadSpiffeId { reason: r, .. }) => assert_eq!(r, reason, "{bad}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    proptest! {
        #[test]
        fn spiffe_parse_never_panics_and_round_trips(s in "\\PC{0,80}") {
            if let Ok(id) = s.parse::<SpiffeId>() {
                prop_assert_eq!(id.to_string(), s);
            }
        }

        #[test]
        fn spiffe_valid_ids_round_trip(td in "[a-z0-9][a-z0-9.-]{0,20}", segs in prop::collection::vec("[A-Za-z0-9_-][A-Za-z0-9._-]{0,10}", 1..5)) {
            let text = format!("spiffe://{td}/{}", segs.join("/"));
            let id: SpiffeId = text.parse().unwrap();
            prop_assert_eq!(id.to_string(), text);
        }

        #[test]
        fn csr_parse_never_panics(s in "\\PC{0,200}") {
            let _ = parse_csr(&s);
            let _ = parse_csr(&format!("-----BEGIN CERTIFICATE REQUEST-----\n{s}\n-----END CERTIFICATE REQUEST-----\n"));
        }
    }

    #[test]
    fn issues_from_a_csr_and_refuses_bad_ones() {
        let ca = generate("example.org", 1_700_000_000, 1).unwrap();
        let ca = X509Ca::new(&ca.root_pem, &ca.issuing_pem, ca.issuing_key).unwrap();
        let key = LocalKey::generate().unwrap();
        let csr = parse_csr(&key.csr_pem().unwrap()).unwrap();
        let req = WorkloadRequest {
            spiffe_id: "spiffe://example.org/svc/api".parse().unwrap(),
            dns_names: vec![],
            ip_addresses: vec![],
            serial: 7,
            not_before: 1_700_000_000,
            not_after: 1_700_086_400,
        };
        let pem = ca.issue(SubjectKey::Request(&csr), &req).unwrap();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(matches!(
            parse_csr("hello"),
            Err(X509Error::BadCsr(m)) if m.starts_with("not PEM")
        ));
        let wrong = pem.replace("CERTIFICATE", "CERTIFICATE REQUEST");
        assert!(matches!(parse_csr(&wrong), Err(X509Error::BadCsr(_))));
    }
}
