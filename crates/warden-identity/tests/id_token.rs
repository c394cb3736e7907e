//! id_token validation against forged and broken tokens: wrong audience, wrong issuer,
//! expired, nonce mismatch, `alg: none`, HMAC signed with the client secret on an RSA
//! provider, and a key the provider does not have. Keys are made by the real `openssl`.
#![expect(clippy::unwrap_used, clippy::expect_used, reason = "test helpers")]

use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{Duration, Utc};
use openidconnect::core::{
    CoreHmacKey, CoreIdToken, CoreIdTokenClaims, CoreIdTokenVerifier, CoreJsonWebKeySet,
    CoreJwsSigningAlgorithm, CoreRsaPrivateSigningKey,
};
use openidconnect::{
    Audience, ClientId, ClientSecret, EmptyAdditionalClaims, IssuerUrl, JsonWebKeyId, Nonce,
    PrivateSigningKey, StandardClaims, SubjectIdentifier,
};
use warden_identity::oidc::{OidcError, verify_id_token};

const ISSUER: &str = "https://idp.example.com";
const CLIENT: &str = "warden";
const SECRET: &str = "s3cret-s3cret-s3cret-s3cret-s3cret";

fn rsa_key(kid: &str) -> CoreRsaPrivateSigningKey {
    let out = Command::new("openssl")
        .args(["genrsa", "-traditional", "2048"])
        .output()
        .expect("openssl (./scripts/test.sh installs it)");
    assert!(out.status.success());
    CoreRsaPrivateSigningKey::from_pem(
        std::str::from_utf8(&out.stdout).unwrap(),
        Some(JsonWebKeyId::new(kid.to_owned())),
    )
    .unwrap()
}

fn claims(issuer: &str, audience: &str, expires_in: Duration, nonce: &str) -> CoreIdTokenClaims {
    CoreIdTokenClaims::new(
        IssuerUrl::new(issuer.to_owned()).unwrap(),
        vec![Audience::new(audience.to_owned())],
        Utc::now() + expires_in,
        Utc::now(),
        StandardClaims::new(SubjectIdentifier::new("alice".to_owned())),
        EmptyAdditionalClaims {},
    )
    .set_nonce(Some(Nonce::new(nonce.to_owned())))
}

fn verifier(jwks: CoreJsonWebKeySet) -> CoreIdTokenVerifier<'static> {
    CoreIdTokenVerifier::new_confidential_client(
        ClientId::new(CLIENT.to_owned()),
        ClientSecret::new(SECRET.to_owned()),
        IssuerUrl::new(ISSUER.to_owned()).unwrap(),
        jwks,
    )
    .set_allowed_algs([CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256])
}

fn check(token: &CoreIdToken, verifier: &CoreIdTokenVerifier<'_>) -> Result<String, String> {
    verify_id_token(token, verifier, &Nonce::new("n-1".to_owned()), "groups")
        .map(|p| p.subject)
        .map_err(|e| match e {
            OidcError::InvalidToken(m) => m,
            other => format!("unexpected {other:?}"),
        })
}

#[test]
fn forged_and_broken_id_tokens_are_refused() {
    let key = rsa_key("k1");
    let jwks = CoreJsonWebKeySet::new(vec![key.as_verification_key()]);
    let v = verifier(jwks);
    let rs256 = CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256;
    let sign = |c: CoreIdTokenClaims| CoreIdToken::new(c, &key, rs256.clone(), None, None).unwrap();

    let good = sign(claims(ISSUER, CLIENT, Duration::minutes(5), "n-1"));
    assert_eq!(check(&good, &v), Ok("alice".to_owned()));

    let cases: Vec<(CoreIdToken, &str)> = vec![
        (
            sign(claims(ISSUER, "someone-else", Duration::minutes(5), "n-1")),
            "Invalid audiences",
        ),
        (
            sign(claims(
                "https://evil.example.com",
                CLIENT,
                Duration::minutes(5),
                "n-1",
            )),
            "Invalid issuer",
        ),
        (
            sign(claims(ISSUER, CLIENT, Duration::minutes(-5), "n-1")),
            "ID token expired",
        ),
        (
            sign(claims(ISSUER, CLIENT, Duration::minutes(5), "n-2")),
            "Invalid nonce",
        ),
        // Signed by a key the provider does not publish (same key id).
        (
            CoreIdToken::new(
                claims(ISSUER, CLIENT, Duration::minutes(5), "n-1"),
                &rsa_key("k1"),
                rs256.clone(),
                None,
                None,
            )
            .unwrap(),
            "Signature verification failed",
        ),
        // HMAC with the client secret: a naive verifier accepts it; the allow-list does not.
        (
            CoreIdToken::new(
                claims(ISSUER, CLIENT, Duration::minutes(5), "n-1"),
                &CoreHmacKey::new(SECRET),
                CoreJwsSigningAlgorithm::HmacSha256,
                None,
                None,
            )
            .unwrap(),
            "HS256",
        ),
    ];
    for (token, expected) in cases {
        let err = check(&token, &v).unwrap_err();
        assert!(err.contains(expected), "expected `{expected}` in `{err}`");
    }

    // alg: none, built by hand from the good token's payload: refused at parsing or checking.
    let payload = good.to_string().split('.').nth(1).unwrap().to_owned();
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
    let unsigned: Result<CoreIdToken, _> = format!("{header}.{payload}.").parse();
    if let Ok(token) = unsigned {
        assert!(check(&token, &v).is_err(), "an unsigned token was accepted");
    }
}
