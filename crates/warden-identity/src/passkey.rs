//! WebAuthn ceremonies with webauthn-rs: passkey registration and assertion, always with user
//! verification. Ceremony state is returned as
//! JSON for the caller to keep sealed until the browser answers.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use webauthn_rs::prelude::{
    AttestationCaListBuilder, AttestedPasskeyRegistration, CredentialID, Passkey,
    PasskeyAuthentication, PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential,
    Url, Uuid, Webauthn, WebauthnBuilder, WebauthnError,
};

/// Why a ceremony failed. Messages are safe to show and to audit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasskeyError {
    /// The browser's answer is malformed.
    #[error("malformed WebAuthn response: {0}")]
    Malformed(String),
    /// The answer does not verify (signature, challenge, origin, user verification…).
    #[error("the passkey did not verify: {0}")]
    Rejected(String),
    /// The credential is not one of this user's.
    #[error("unknown credential")]
    UnknownCredential,
    /// The authenticator's sign count went backwards: it may have been cloned.
    #[error("the sign count went backwards: the authenticator may have been cloned")]
    PossibleClone(String),
    /// Internal state could not be handled.
    #[error("passkey state error: {0}")]
    State(String),
}

/// The base64url form of a credential id, as stored.
pub fn credential_id(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn rejected(e: WebauthnError) -> PasskeyError {
    PasskeyError::Rejected(e.to_string())
}

fn state_err(e: impl std::fmt::Display) -> PasskeyError {
    PasskeyError::State(e.to_string())
}

/// A registered credential as the caller stores it: base64url id and the library's JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// Credential id, base64url.
    pub id: String,
    /// The credential (public key, counter), JSON.
    pub json: String,
    /// Whether the authenticator verified the user (PIN, biometrics) in this ceremony.
    /// Warden's ceremonies require it, so a credential returned here always has it; it is
    /// carried so that the audit log records it.
    pub user_verified: bool,
}

fn passkey_of(json: &str) -> Result<Passkey, PasskeyError> {
    serde_json::from_str(json).map_err(state_err)
}

fn to_credential(passkey: &Passkey) -> Result<Credential, PasskeyError> {
    Ok(Credential {
        id: credential_id(passkey.cred_id().as_ref()),
        json: serde_json::to_string(passkey).map_err(state_err)?,
        // Registration and authentication both require user verification.
        user_verified: true,
    })
}

/// An authenticator model allowed to register: its AAGUID and the vendor CA its attestation
/// certificates chain to.
#[derive(Debug, Clone)]
pub struct AllowedAuthenticator {
    /// What people call it (`YubiKey 5`).
    pub name: String,
    /// Its AAGUID, 32 hex digits (dashes allowed).
    pub aaguid: String,
    /// The vendor's attestation root, PEM.
    pub ca_pem: Vec<u8>,
}

/// The relying party: this server's public URL (its host is the RP id).
#[derive(Debug)]
pub struct Passkeys {
    webauthn: Webauthn,
    allowed: Vec<AllowedAuthenticator>,
}

/// Registration state, with whether attestation is being checked.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
enum RegistrationState {
    Plain(PasskeyRegistration),
    Attested(AttestedPasskeyRegistration),
}

impl Passkeys {
    /// The relying party for `public_url`. With `allowed` authenticators, registration asks
    /// for attestation and accepts only those models (AAGUID, chained to the vendor's CA);
    /// without, attestation is not asked for (`none`).
    pub fn new(public_url: &Url, allowed: Vec<AllowedAuthenticator>) -> Result<Self, String> {
        for a in &allowed {
            Uuid::parse_str(&a.aaguid).map_err(|_| {
                format!(
                    "invalid AAGUID `{}` for authenticator `{}`",
                    a.aaguid, a.name
                )
            })?;
            let mut builder = AttestationCaListBuilder::new();
            builder
                .insert_device_pem(&a.ca_pem, Uuid::nil(), a.name.clone(), Default::default())
                .map_err(|_| {
                    format!(
                        "the CA of authenticator `{}` is not a PEM certificate",
                        a.name
                    )
                })?;
        }
        let rp_id = public_url
            .host_str()
            .ok_or_else(|| format!("public_url `{public_url}` has no host for WebAuthn"))?;
        let webauthn = WebauthnBuilder::new(rp_id, public_url)
            .and_then(|b| b.rp_name("Warden").build())
            .map_err(|e| format!("cannot use `{public_url}` as the WebAuthn origin: {e}"))?;
        Ok(Passkeys { webauthn, allowed })
    }

    /// Starts registering a passkey for the user with id `user_id` (32 hex digits). Returns
    /// the options for `navigator.credentials.create` and the state to keep.
    pub fn start_registration(
        &self,
        user_id: &str,
        name: &str,
        display_name: &str,
        existing: &[String],
    ) -> Result<(Value, String), PasskeyError> {
        let uuid = Uuid::parse_str(user_id).map_err(state_err)?;
        let exclude: Vec<CredentialID> = existing
            .iter()
            .filter_map(|json| passkey_of(json).ok())
            .map(|p| p.cred_id().clone())
            .collect();
        let (options, state) = if self.allowed.is_empty() {
            let (options, state) = self
                .webauthn
                .start_passkey_registration(uuid, name, display_name, Some(exclude))
                .map_err(rejected)?;
            (options, RegistrationState::Plain(state))
        } else {
            let mut builder = AttestationCaListBuilder::new();
            for a in &self.allowed {
                let aaguid = Uuid::parse_str(&a.aaguid).map_err(state_err)?;
                builder
                    .insert_device_pem(&a.ca_pem, aaguid, a.name.clone(), Default::default())
                    .map_err(state_err)?;
            }
            let (options, state) = self
                .webauthn
                .start_attested_passkey_registration(
                    uuid,
                    name,
                    display_name,
                    Some(exclude),
                    builder.build(),
                    None,
                )
                .map_err(rejected)?;
            (options, RegistrationState::Attested(state))
        };
        Ok((
            serde_json::to_value(options).map_err(state_err)?,
            serde_json::to_string(&state).map_err(state_err)?,
        ))
    }

    /// Checks the browser's answer to a registration.
    pub fn finish_registration(
        &self,
        response: &[u8],
        state: &str,
    ) -> Result<Credential, PasskeyError> {
        let response: RegisterPublicKeyCredential =
            serde_json::from_slice(response).map_err(|e| PasskeyError::Malformed(e.to_string()))?;
        let state: RegistrationState = serde_json::from_str(state).map_err(state_err)?;
        let passkey = match state {
            RegistrationState::Plain(state) => self
                .webauthn
                .finish_passkey_registration(&response, &state)
                .map_err(rejected)?,
            RegistrationState::Attested(state) => self
                .webauthn
                .finish_attested_passkey_registration(&response, &state)
                .map(Passkey::from)
                .map_err(|e| {
                    PasskeyError::Rejected(format!(
                        "this authenticator is not an allowed model ({e})"
                    ))
                })?,
        };
        to_credential(&passkey)
    }

    /// Starts an assertion with one of `credentials` (the user's, as JSON).
    pub fn start_authentication(
        &self,
        credentials: &[String],
    ) -> Result<(Value, String), PasskeyError> {
        let passkeys = credentials
            .iter()
            .map(|json| passkey_of(json))
            .collect::<Result<Vec<_>, _>>()?;
        let (options, state) = self
            .webauthn
            .start_passkey_authentication(&passkeys)
            .map_err(rejected)?;
        Ok((
            serde_json::to_value(options).map_err(state_err)?,
            serde_json::to_string(&state).map_err(state_err)?,
        ))
    }

    /// Checks an assertion; returns the credential with its counter moved on.
    pub fn finish_authentication(
        &self,
        response: &[u8],
        state: &str,
        credentials: &[String],
    ) -> Result<Credential, PasskeyError> {
        let response: PublicKeyCredential =
            serde_json::from_slice(response).map_err(|e| PasskeyError::Malformed(e.to_string()))?;
        let used = credential_id(response.get_credential_id());
        let state: PasskeyAuthentication = serde_json::from_str(state).map_err(state_err)?;
        let result = match self
            .webauthn
            .finish_passkey_authentication(&response, &state)
        {
            Ok(r) => r,
            Err(WebauthnError::CredentialPossibleCompromise) => {
                return Err(PasskeyError::PossibleClone(used));
            }
            Err(e) => return Err(rejected(e)),
        };
        let mut passkey = credentials
            .iter()
            .filter_map(|json| passkey_of(json).ok())
            .find(|p| credential_id(p.cred_id().as_ref()) == used)
            .ok_or(PasskeyError::UnknownCredential)?;
        passkey.update_credential(&result);
        let mut credential = to_credential(&passkey)?;
        credential.user_verified = result.user_verified();
        Ok(credential)
    }
}
