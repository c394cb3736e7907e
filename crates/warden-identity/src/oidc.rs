//! An OpenID Connect relying party: discovery, the authorization code flow with PKCE (S256),
//! state and nonce, full id_token validation (issuer, audience, expiry, nonce, signature with
//! an algorithm allow-list), and userinfo for further claims.
//!
//! The flow's secrets (state, nonce, PKCE verifier) travel in a [`PendingLogin`] the caller
//! keeps sealed in the browser's cookie; nothing here touches the store.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreIdToken, CoreIdTokenVerifier, CoreJwsSigningAlgorithm,
    CoreProviderMetadata,
};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::RwLock;
use warden_model::SecretString;

/// How long discovered metadata and keys are reused before being fetched again.
const METADATA_TTL: Duration = Duration::from_secs(3600);

/// Who may sign in for the first time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provisioning {
    /// The first sign-in creates the user.
    JustInTime,
    /// Only users provisioned by SCIM may sign in.
    ScimOnly,
}

/// One `[[identity.oidc]]` provider.
#[derive(Debug, Clone)]
pub struct OidcConfig {
    /// Its name: in the redirect URI and in audit events.
    pub name: String,
    /// The issuer URL (discovery is at `{issuer}/.well-known/openid-configuration`).
    pub issuer: String,
    /// The client id registered at the provider.
    pub client_id: String,
    /// The client secret, if the client is confidential.
    pub client_secret: Option<SecretString>,
    /// Scopes to ask for (`openid` is always asked).
    pub scopes: Vec<String>,
    /// The claim (id_token or userinfo) that lists the person's groups.
    pub groups_claim: String,
    /// Email domains allowed to sign in; empty allows any.
    pub allowed_email_domains: Vec<String>,
    /// Just-in-time or SCIM-only.
    pub provisioning: Provisioning,
    /// id_token signature algorithms accepted (`RS256`, `ES256`, `PS256`, `EdDSA`…).
    pub algorithms: Vec<CoreJwsSigningAlgorithm>,
}

/// Why a sign-in through the provider failed. The message is safe to show and to audit: it
/// never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OidcError {
    /// The provider could not be reached or described itself wrongly.
    #[error("identity provider `{provider}` is unavailable: {detail}")]
    Unavailable {
        /// Which.
        provider: String,
        /// What failed.
        detail: String,
    },
    /// The provider refused the code (expired, replayed, wrong PKCE verifier…).
    #[error("the identity provider refused the sign-in: {0}")]
    Refused(String),
    /// The id_token failed validation.
    #[error("invalid id_token: {0}")]
    InvalidToken(String),
    /// The claims are valid but do not allow this person in.
    #[error("{0}")]
    NotAllowed(String),
}

/// The parts of a login in flight that come back at the callback. Secret: the caller seals it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingLogin {
    /// The provider's name.
    pub provider: String,
    /// The `state` sent to the provider.
    pub state: String,
    /// The `nonce` the id_token must carry.
    pub nonce: String,
    /// The PKCE verifier.
    pub pkce_verifier: String,
    /// Where to go after signing in (a path on this server).
    pub return_to: String,
    /// When this login stops being acceptable, milliseconds since the epoch.
    pub expires_at: i64,
}

/// A person the provider vouched for, with the claims Warden uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedPerson {
    /// `sub`.
    pub subject: String,
    /// `email`, when the provider says it is verified (or does not say).
    pub email: Option<String>,
    /// `preferred_username`.
    pub preferred_username: Option<String>,
    /// `name`.
    pub name: Option<String>,
    /// The groups claim, from the id_token or userinfo.
    pub groups: Vec<String>,
    /// `amr`.
    pub amr: Vec<String>,
    /// `acr`.
    pub acr: Option<String>,
}

/// Parses an algorithm name from the configuration.
pub fn parse_algorithm(name: &str) -> Option<CoreJwsSigningAlgorithm> {
    use CoreJwsSigningAlgorithm as A;
    Some(match name {
        "RS256" => A::RsaSsaPkcs1V15Sha256,
        "RS384" => A::RsaSsaPkcs1V15Sha384,
        "RS512" => A::RsaSsaPkcs1V15Sha512,
        "PS256" => A::RsaSsaPssSha256,
        "PS384" => A::RsaSsaPssSha384,
        "PS512" => A::RsaSsaPssSha512,
        "ES256" => A::EcdsaP256Sha256,
        "ES384" => A::EcdsaP384Sha384,
        "EdDSA" => A::EdDsa,
        _ => return None,
    })
}

/// A configured provider, with its discovered metadata cached.
#[derive(Debug)]
pub struct OidcProvider {
    config: OidcConfig,
    redirect: RedirectUrl,
    http: openidconnect::reqwest::Client,
    metadata: RwLock<Option<(CoreProviderMetadata, Instant)>>,
}

impl OidcProvider {
    /// A provider whose callback is `redirect_uri` (`{public_url}/auth/oidc/{name}/callback`).
    pub fn new(config: OidcConfig, redirect_uri: &str) -> Result<Self, String> {
        let redirect = RedirectUrl::new(redirect_uri.to_owned())
            .map_err(|e| format!("invalid redirect URI `{redirect_uri}`: {e}"))?;
        // No redirects: the provider's endpoints must answer themselves (SSRF safety).
        let http = openidconnect::reqwest::ClientBuilder::new()
            .redirect(openidconnect::reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(OidcProvider {
            config,
            redirect,
            http,
            metadata: RwLock::new(None),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &OidcConfig {
        &self.config
    }

    fn unavailable(&self, detail: impl std::fmt::Display) -> OidcError {
        OidcError::Unavailable {
            provider: self.config.name.clone(),
            detail: detail.to_string(),
        }
    }

    async fn metadata(&self, refresh: bool) -> Result<CoreProviderMetadata, OidcError> {
        if !refresh
            && let Some((metadata, at)) = &*self.metadata.read().await
            && at.elapsed() < METADATA_TTL
        {
            return Ok(metadata.clone());
        }
        let issuer = IssuerUrl::new(self.config.issuer.clone()).map_err(|e| self.unavailable(e))?;
        let metadata = CoreProviderMetadata::discover_async(issuer, &self.http)
            .await
            .map_err(|e| self.unavailable(format!("discovery failed: {}", chain(&e))))?;
        *self.metadata.write().await = Some((metadata.clone(), Instant::now()));
        Ok(metadata)
    }

    fn client(
        &self,
        metadata: CoreProviderMetadata,
    ) -> openidconnect::core::CoreClient<
        openidconnect::EndpointSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointMaybeSet,
        openidconnect::EndpointMaybeSet,
    > {
        CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.config.client_id.clone()),
            self.config
                .client_secret
                .as_ref()
                .map(|s| ClientSecret::new(s.expose().to_owned())),
        )
        .set_redirect_uri(self.redirect.clone())
    }

    /// Starts a sign-in: the URL to send the browser to, and what to keep for the callback.
    pub async fn begin(
        &self,
        return_to: String,
        expires_at: i64,
    ) -> Result<(String, PendingLogin), OidcError> {
        let client = self.client(self.metadata(false).await?);
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .set_pkce_challenge(challenge);
        for scope in &self.config.scopes {
            if scope != "openid" {
                request = request.add_scope(Scope::new(scope.clone()));
            }
        }
        let (url, state, nonce) = request.url();
        Ok((
            url.to_string(),
            PendingLogin {
                provider: self.config.name.clone(),
                state: state.secret().clone(),
                nonce: nonce.secret().clone(),
                pkce_verifier: verifier.secret().clone(),
                return_to,
                expires_at,
            },
        ))
    }

    /// Finishes a sign-in: exchanges `code` (with the PKCE verifier), validates the id_token,
    /// reads userinfo, and checks the email domain. Also returns how long the provider's own
    /// requests (token, userinfo) took, for `Server-Timing`.
    pub async fn finish(
        &self,
        code: &str,
        pending: &PendingLogin,
    ) -> Result<(VerifiedPerson, Duration), OidcError> {
        let metadata = self.metadata(false).await?;
        let started = Instant::now();
        let userinfo_url = metadata.userinfo_endpoint().map(|u| u.url().clone());
        let client = self.client(metadata);
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| self.unavailable(e))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier.clone()))
            .request_async(&self.http)
            .await
            .map_err(|e| OidcError::Refused(token_error(&e)))?;
        let mut provider_time = started.elapsed();
        let id_token = response
            .id_token()
            .ok_or_else(|| OidcError::InvalidToken("the token response has no id_token".into()))?;
        let verifier = client
            .id_token_verifier()
            .set_allowed_algs(self.config.algorithms.clone());
        let mut person = verify_id_token(
            id_token,
            &verifier,
            &Nonce::new(pending.nonce.clone()),
            &self.config.groups_claim,
        )?;
        if let Some(url) = userinfo_url {
            let asked = Instant::now();
            let info = self.userinfo(url, response.access_token().secret()).await?;
            provider_time += asked.elapsed();
            merge_userinfo(&mut person, &info, &self.config.groups_claim)?;
        }
        check_email_domain(&person, &self.config.allowed_email_domains)?;
        Ok((person, provider_time))
    }

    async fn userinfo(&self, url: url::Url, access_token: &str) -> Result<Value, OidcError> {
        let response = self
            .http
            .get(url)
            .bearer_auth(access_token)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| self.unavailable(format!("userinfo failed: {}", chain(&e))))?;
        if !response.status().is_success() {
            return Err(self.unavailable(format!("userinfo answered {}", response.status())));
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| self.unavailable(format!("userinfo failed: {}", chain(&e))))?;
        serde_json::from_slice(&body)
            .map_err(|e| self.unavailable(format!("userinfo is not JSON: {e}")))
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn token_error<E: std::error::Error>(e: &E) -> String {
    chain(e)
}

/// Validates an id_token (signature with an allowed algorithm, issuer, audience, expiry,
/// nonce) and reads the claims Warden uses, the groups claim included.
pub fn verify_id_token(
    id_token: &CoreIdToken,
    verifier: &CoreIdTokenVerifier<'_>,
    nonce: &Nonce,
    groups_claim: &str,
) -> Result<VerifiedPerson, OidcError> {
    let claims = id_token
        .claims(verifier, nonce)
        .map_err(|e| OidcError::InvalidToken(chain(&e)))?;
    // The signature is verified: the payload's other claims (groups) can be read from it.
    let payload = id_token
        .to_string()
        .split('.')
        .nth(1)
        .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
        .and_then(|p| serde_json::from_slice::<Value>(&p).ok())
        .unwrap_or(Value::Null);
    let email_verified = claims.email_verified().unwrap_or(true);
    Ok(VerifiedPerson {
        subject: claims.subject().as_str().to_owned(),
        email: claims
            .email()
            .filter(|_| email_verified)
            .map(|e| e.as_str().to_ascii_lowercase()),
        preferred_username: claims.preferred_username().map(|u| u.as_str().to_owned()),
        name: claims
            .name()
            .and_then(|n| n.get(None))
            .map(|n| n.as_str().to_owned()),
        groups: groups_of(payload.get(groups_claim))?,
        amr: claims
            .auth_method_refs()
            .map(|refs| refs.iter().map(|r| r.as_str().to_owned()).collect())
            .unwrap_or_default(),
        acr: claims.auth_context_ref().map(|a| a.as_str().to_owned()),
    })
}

fn groups_of(value: Option<&Value>) -> Result<Vec<String>, OidcError> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str().map(str::to_owned).ok_or_else(|| {
                    OidcError::InvalidToken("the groups claim holds a non-string".into())
                })
            })
            .collect(),
        Some(Value::String(one)) => Ok(vec![one.clone()]),
        Some(_) => Err(OidcError::InvalidToken(
            "the groups claim is not a list of strings".into(),
        )),
    }
}

/// Adds what userinfo says. Its `sub` must be the id_token's (OIDC Core 5.3.2).
pub fn merge_userinfo(
    person: &mut VerifiedPerson,
    info: &Value,
    groups_claim: &str,
) -> Result<(), OidcError> {
    if info.get("sub").and_then(Value::as_str) != Some(person.subject.as_str()) {
        return Err(OidcError::InvalidToken(
            "userinfo is for another subject than the id_token".into(),
        ));
    }
    if person.email.is_none() && info.get("email_verified").and_then(Value::as_bool) != Some(false)
    {
        person.email = info
            .get("email")
            .and_then(Value::as_str)
            .map(str::to_ascii_lowercase);
    }
    if person.preferred_username.is_none() {
        person.preferred_username = info
            .get("preferred_username")
            .and_then(Value::as_str)
            .map(str::to_owned);
    }
    if person.name.is_none() {
        person.name = info.get("name").and_then(Value::as_str).map(str::to_owned);
    }
    if person.groups.is_empty() {
        person.groups = groups_of(info.get(groups_claim))?;
    }
    Ok(())
}

/// Refuses an email outside the allowed domains (when any are configured).
pub fn check_email_domain(person: &VerifiedPerson, allowed: &[String]) -> Result<(), OidcError> {
    if allowed.is_empty() {
        return Ok(());
    }
    let Some(email) = &person.email else {
        return Err(OidcError::NotAllowed(
            "the identity provider gave no verified email, and allowed_email_domains is set".into(),
        ));
    };
    let domain = email.rsplit_once('@').map(|(_, d)| d).unwrap_or_default();
    if allowed.iter().any(|a| a.eq_ignore_ascii_case(domain)) {
        Ok(())
    } else {
        Err(OidcError::NotAllowed(format!(
            "email domain `{domain}` is not allowed"
        )))
    }
}

/// The login name for a person signing in for the first time: `preferred_username`, else the
/// email's local part, narrowed to Warden's name rule ([`warden_model::derive_name`]).
pub fn login_name(person: &VerifiedPerson) -> Result<warden_model::UserName, OidcError> {
    let candidates = [
        person.preferred_username.clone(),
        person
            .email
            .as_ref()
            .and_then(|e| e.split_once('@').map(|(local, _)| local.to_owned())),
    ];
    for candidate in candidates.into_iter().flatten() {
        if let Ok(name) = warden_model::UserName::new(warden_model::derive_name(&candidate)) {
            return Ok(name);
        }
    }
    Err(OidcError::NotAllowed(
        "cannot make a user name from the identity provider's claims (no preferred_username or email)".into(),
    ))
}
