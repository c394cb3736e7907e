//! A software authenticator for benchmarks: it answers Warden's WebAuthn options the way a
//! platform authenticator does (P-256 key, `none` attestation, user present and verified,
//! counter moving on), so the server's real verification runs without a browser. Tests of
//! the ceremonies themselves use Chromium's virtual authenticator instead.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// A vendor CA that issues attestation certificates to software authenticators, for tests
/// of the authenticator allow-list.
pub struct AttestationVendor {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

impl std::fmt::Debug for AttestationVendor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttestationVendor").finish_non_exhaustive()
    }
}

impl AttestationVendor {
    /// A new vendor root.
    pub fn new(name: &str) -> AttestationVendor {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let cert = params.self_signed(&key).expect("vendor CA");
        AttestationVendor { cert, key }
    }

    /// The root, PEM (what `[[identity.authenticator]] ca_file` names).
    pub fn pem(&self) -> String {
        self.cert.pem()
    }
}

/// An attestation certificate and its key, for `packed` attestation.
#[derive(Debug)]
struct Attestation {
    key: EcdsaKeyPair,
    cert_der: Vec<u8>,
    aaguid: [u8; 16],
}

/// One credential on a software authenticator.
#[derive(Debug)]
pub struct SoftPasskey {
    attestation: Option<Attestation>,
    key: EcdsaKeyPair,
    credential_id: Vec<u8>,
    rp_id: String,
    origin: String,
    counter: u32,
    verified: bool,
    rng: SystemRandom,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// CBOR: a major type and length (RFC 8949 §3).
fn cbor_head(out: &mut Vec<u8>, major: u8, len: u64) {
    let m = major << 5;
    match len {
        0..=23 => out.push(m | u8::try_from(len).unwrap_or_default()),
        24..=0xff => out.extend([m | 24, u8::try_from(len).unwrap_or_default()]),
        0x100..=0xffff => {
            out.push(m | 25);
            out.extend(u16::try_from(len).unwrap_or_default().to_be_bytes());
        }
        _ => {
            out.push(m | 26);
            out.extend(u32::try_from(len).unwrap_or_default().to_be_bytes());
        }
    }
}

fn cbor_int(out: &mut Vec<u8>, v: i64) {
    if v >= 0 {
        cbor_head(out, 0, v.unsigned_abs());
    } else {
        cbor_head(out, 1, (-1 - v).unsigned_abs());
    }
}

fn cbor_bytes(out: &mut Vec<u8>, b: &[u8]) {
    cbor_head(out, 2, b.len() as u64);
    out.extend_from_slice(b);
}

fn cbor_text(out: &mut Vec<u8>, s: &str) {
    cbor_head(out, 3, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

impl SoftPasskey {
    /// A new credential for the relying party `rp_id` at `origin` (`http://localhost:8080`).
    pub fn new(rp_id: &str, origin: &str) -> SoftPasskey {
        let rng = SystemRandom::new();
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).expect("key");
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .expect("key");
        let mut credential_id = vec![0u8; 32];
        ring::rand::SecureRandom::fill(&rng, &mut credential_id).expect("random");
        SoftPasskey {
            attestation: None,
            key,
            credential_id,
            rp_id: rp_id.to_owned(),
            origin: origin.to_owned(),
            counter: 0,
            verified: true,
            rng,
        }
    }

    /// Attests registrations (`packed`) with a certificate from `vendor` naming `aaguid`.
    pub fn attested_by(mut self, vendor: &AttestationVendor, aaguid: [u8; 16]) -> SoftPasskey {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &self.rng).expect("key");
        let key =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &self.rng)
                .expect("key");
        let leaf_key = rcgen::KeyPair::try_from(pkcs8.as_ref()).expect("key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CountryName, "US");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Warden Test");
        params.distinguished_name.push(
            rcgen::DnType::OrganizationalUnitName,
            "Authenticator Attestation",
        );
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Soft Authenticator");
        params.is_ca = rcgen::IsCa::ExplicitNoCa;
        // id-fido-gen-ce-aaguid: an OCTET STRING of the 16-byte AAGUID.
        let mut value = vec![0x04, 16];
        value.extend(aaguid);
        params
            .custom_extensions
            .push(rcgen::CustomExtension::from_oid_content(
                &[1, 3, 6, 1, 4, 1, 45724, 1, 1, 4],
                value,
            ));
        let cert = params
            .signed_by(&leaf_key, &vendor.cert, &vendor.key)
            .expect("attestation certificate");
        self.attestation = Some(Attestation {
            key,
            cert_der: cert.der().to_vec(),
            aaguid,
        });
        self
    }

    /// Whether the authenticator reports user verification (the UV flag); true by default.
    pub fn set_user_verified(&mut self, verified: bool) {
        self.verified = verified;
    }

    fn client_data(&self, kind: &str, options: &Value) -> Vec<u8> {
        let challenge = options
            .pointer("/publicKey/challenge")
            .and_then(Value::as_str)
            .expect("challenge");
        json!({ "type": kind, "challenge": challenge, "origin": self.origin, "crossOrigin": false })
            .to_string()
            .into_bytes()
    }

    fn auth_data(&mut self, attested: bool) -> Vec<u8> {
        self.counter += 1;
        let mut data = Sha256::digest(self.rp_id.as_bytes()).to_vec();
        // UP | UV (| AT).
        let uv = if self.verified { 0x04 } else { 0 };
        data.push(if attested { 0x41 | uv } else { 0x01 | uv });
        data.extend(self.counter.to_be_bytes());
        if attested {
            data.extend(self.attestation.as_ref().map_or([0u8; 16], |a| a.aaguid));
            data.extend(
                u16::try_from(self.credential_id.len())
                    .unwrap_or(u16::MAX)
                    .to_be_bytes(),
            );
            data.extend(&self.credential_id);
            let point = self.key.public_key().as_ref();
            let (x, y) = (
                point.get(1..33).expect("uncompressed point"),
                point.get(33..65).expect("uncompressed point"),
            );
            let mut cose = Vec::new();
            cbor_head(&mut cose, 5, 5);
            cbor_int(&mut cose, 1);
            cbor_int(&mut cose, 2);
            cbor_int(&mut cose, 3);
            cbor_int(&mut cose, -7);
            cbor_int(&mut cose, -1);
            cbor_int(&mut cose, 1);
            cbor_int(&mut cose, -2);
            cbor_bytes(&mut cose, x);
            cbor_int(&mut cose, -3);
            cbor_bytes(&mut cose, y);
            data.extend(cose);
        }
        data
    }

    /// Answers registration `options` (what `/webauthn/register/start` returns).
    pub fn register(&mut self, options: &Value) -> Value {
        let client_data = self.client_data("webauthn.create", options);
        let auth_data = self.auth_data(true);
        let mut attestation = Vec::new();
        cbor_head(&mut attestation, 5, 3);
        cbor_text(&mut attestation, "fmt");
        match &self.attestation {
            None => {
                cbor_text(&mut attestation, "none");
                cbor_text(&mut attestation, "attStmt");
                cbor_head(&mut attestation, 5, 0);
            }
            Some(att) => {
                let mut signed = auth_data.clone();
                signed.extend(Sha256::digest(&client_data));
                let sig = att.key.sign(&self.rng, &signed).expect("sign");
                cbor_text(&mut attestation, "packed");
                cbor_text(&mut attestation, "attStmt");
                cbor_head(&mut attestation, 5, 3);
                cbor_text(&mut attestation, "alg");
                cbor_int(&mut attestation, -7);
                cbor_text(&mut attestation, "sig");
                cbor_bytes(&mut attestation, sig.as_ref());
                cbor_text(&mut attestation, "x5c");
                cbor_head(&mut attestation, 4, 1);
                cbor_bytes(&mut attestation, &att.cert_der);
            }
        }
        cbor_text(&mut attestation, "authData");
        cbor_bytes(&mut attestation, &auth_data);
        json!({
            "id": b64(&self.credential_id),
            "rawId": b64(&self.credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64(&client_data),
                "attestationObject": b64(&attestation),
                "transports": ["internal"],
            },
            "extensions": {},
        })
    }

    /// Answers assertion `options` (what `/auth/passkey/start` returns).
    pub fn assert(&mut self, options: &Value) -> Value {
        let client_data = self.client_data("webauthn.get", options);
        let auth_data = self.auth_data(false);
        let mut signed = auth_data.clone();
        signed.extend(Sha256::digest(&client_data));
        let signature = self.key.sign(&self.rng, &signed).expect("sign");
        json!({
            "id": b64(&self.credential_id),
            "rawId": b64(&self.credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64(&client_data),
                "authenticatorData": b64(&auth_data),
                "signature": b64(signature.as_ref()),
                "userHandle": null,
            },
            "extensions": {},
        })
    }
}
