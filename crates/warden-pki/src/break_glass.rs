//! Break-glass credentials (HIPAA's emergency access procedure): an SSH key and a certificate
//! for the break-glass principal, signed by a CA made for this credential alone and thrown
//! away at once, so nobody can mint another. The key and certificate are sealed under a random
//! data key (AES-256-GCM, bound to the credential's id), and the data key is split N-of-M with
//! Shamir's scheme (`blahaj`, the fork of `sharks` that fixed RUSTSEC-2024-0398). Each share
//! is a text file that carries the sealed credential too, so any N of them open it with no
//! server: Warden may be the thing that is down.
//!
//! Threat model: a share file may be lost, copied or edited. Fewer than N shares reveal
//! nothing of the data key; an edited share or sealed blob fails authentication; shares of two
//! credentials do not mix. Parsing never panics and names the first bad line.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::{CryptoRng, RngCore};
use ssh_key::{Algorithm, LineEnding, PrivateKey};
use zeroize::Zeroizing;

use crate::ssh::{CertRequest, Kind, SshCa};

/// The first line of every share file.
const MAGIC: &str = "warden break-glass share v1";

/// The most shares a credential is split into.
pub const MAX_SHARES: u8 = 16;

/// Why minting or opening a credential failed: one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BreakGlassError(pub String);

fn err(text: impl Into<String>) -> BreakGlassError {
    BreakGlassError(text.into())
}

/// What to mint.
#[derive(Debug, Clone)]
pub struct Mint<'a> {
    /// The credential's id (its certificate's key id is `break-glass:ID`).
    pub id: &'a str,
    /// The principal sshd accepts it for.
    pub principal: &'a str,
    /// Valid from, seconds since the epoch.
    pub valid_after: u64,
    /// Valid until.
    pub valid_before: u64,
    /// How many shares.
    pub shares: u8,
    /// How many open it.
    pub threshold: u8,
}

/// A minted credential: the CA's public key for the hosts, and the share files to hand out.
/// The private key exists only inside the shares.
#[derive(Debug)]
pub struct Minted {
    /// The throwaway CA's public key line, for `TrustedUserCAKeys` while a host is cut off.
    pub ca_public_key: String,
    /// The certified key's SHA-256 fingerprint.
    pub fingerprint: String,
    /// The share files' text, share 1 first.
    pub shares: Vec<Zeroizing<String>>,
}

/// An opened credential.
#[derive(Debug)]
pub struct Opened {
    /// Its id.
    pub id: String,
    /// The private key, OpenSSH format: write it with mode 0600.
    pub private_key: Zeroizing<String>,
    /// The certificate line (`…-cert.pub`).
    pub certificate: String,
    /// When it stops working, RFC 3339, as the share says.
    pub expires: String,
}

fn aad(id: &str) -> Vec<u8> {
    format!("warden break-glass v1 {id}").into_bytes()
}

/// Mints a credential: a new key, its certificate from a new CA (then dropped), sealed and
/// split. `expires` is written into each share for the people holding them.
pub fn mint(
    m: &Mint<'_>,
    expires: &str,
    rng: &mut (impl CryptoRng + RngCore),
) -> Result<Minted, BreakGlassError> {
    if m.shares == 0 || m.shares > MAX_SHARES {
        return Err(err(format!(
            "shares must be 1 to {MAX_SHARES}, not {}",
            m.shares
        )));
    }
    if m.threshold == 0 || m.threshold > m.shares {
        return Err(err(format!(
            "the threshold must be 1 to the number of shares ({}), not {}",
            m.shares, m.threshold
        )));
    }
    let ca = SshCa::generate(rng).map_err(|e| err(e.to_string()))?;
    let key = PrivateKey::random(rng, Algorithm::Ed25519).map_err(|e| err(e.to_string()))?;
    let cert = ca
        .issue(
            &CertRequest {
                public_key: key.public_key().clone(),
                kind: Kind::User,
                key_id: format!("break-glass:{}", m.id),
                serial: 1,
                principals: vec![m.principal.to_owned()],
                valid_after: m.valid_after,
                valid_before: m.valid_before,
                extensions: vec!["permit-pty".to_owned()],
            },
            rng,
        )
        .map_err(|e| err(e.to_string()))?;
    let cert_line = cert.to_openssh().map_err(|e| err(e.to_string()))?;
    let private = key
        .to_openssh(LineEnding::LF)
        .map_err(|e| err(e.to_string()))?;
    let payload = Zeroizing::new(format!("{}\n{cert_line}\n", private.trim_end()));
    let mut data_key = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(data_key.as_mut());
    let mut nonce = [0u8; 12];
    rng.fill_bytes(&mut nonce);
    let cipher = Aes256Gcm::new_from_slice(data_key.as_ref()).map_err(|e| err(e.to_string()))?;
    let sealed = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: payload.as_bytes(),
                aad: &aad(m.id),
            },
        )
        .map_err(|_| err("sealing the credential failed"))?;
    let mut blob = nonce.to_vec();
    blob.extend_from_slice(&sealed);
    let blob = STANDARD.encode(blob);
    let sharks = blahaj::Sharks(m.threshold);
    let shares = sharks
        .dealer_rng(data_key.as_ref(), rng)
        .take(usize::from(m.shares))
        .enumerate()
        .map(|(i, share)| {
            let bytes = Zeroizing::new(Vec::<u8>::from(&share));
            Zeroizing::new(format!(
                "{MAGIC}\nid: {}\nshare: {} of {}\nthreshold: {}\nexpires: {expires}\nshare-data: {}\nsealed: {blob}\n",
                m.id,
                i + 1,
                m.shares,
                m.threshold,
                STANDARD.encode(bytes.as_slice()),
            ))
        })
        .collect();
    Ok(Minted {
        ca_public_key: ca.public_key_openssh(),
        fingerprint: key
            .public_key()
            .fingerprint(ssh_key::HashAlg::Sha256)
            .to_string(),
        shares,
    })
}

/// One share file, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    /// The credential's id.
    pub id: String,
    /// This share's number.
    pub number: u8,
    /// How many there are.
    pub of: u8,
    /// How many open the credential.
    pub threshold: u8,
    /// When it expires, as written.
    pub expires: String,
    data: Vec<u8>,
    sealed: String,
}

impl Share {
    /// Reads a share file; the error names the line.
    pub fn parse(text: &str) -> Result<Share, BreakGlassError> {
        let mut lines = text.lines();
        if lines.next().map(str::trim) != Some(MAGIC) {
            return Err(err(format!(
                "not a Warden break-glass share: the first line is not `{MAGIC}`"
            )));
        }
        let mut field = |n: usize, name: &str| -> Result<String, BreakGlassError> {
            let line = lines.next().unwrap_or_default();
            line.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix(": "))
                .map(|v| v.trim().to_owned())
                .ok_or_else(|| err(format!("line {n}: expected `{name}: …`")))
        };
        let id = field(2, "id")?;
        let share = field(3, "share")?;
        let threshold = field(4, "threshold")?;
        let expires = field(5, "expires")?;
        let data = field(6, "share-data")?;
        let sealed = field(7, "sealed")?;
        let (number, of) = share
            .split_once(" of ")
            .and_then(|(a, b)| Some((a.parse::<u8>().ok()?, b.parse::<u8>().ok()?)))
            .filter(|(a, b)| *a >= 1 && a <= b && *b <= MAX_SHARES)
            .ok_or_else(|| err("line 3: expected `share: K of M`"))?;
        let threshold = threshold
            .parse::<u8>()
            .ok()
            .filter(|t| *t >= 1 && *t <= of)
            .ok_or_else(|| err("line 4: expected a threshold from 1 to the number of shares"))?;
        let data = STANDARD
            .decode(&data)
            .ok()
            .filter(|d| d.len() == 33)
            .ok_or_else(|| err("line 6: the share data is not 33 bytes of base64"))?;
        if id.is_empty() || id.len() > 64 {
            return Err(err("line 2: the id is empty or too long"));
        }
        Ok(Share {
            id,
            number,
            of,
            threshold,
            expires,
            data,
            sealed,
        })
    }
}

/// Opens a credential from its shares: at least its threshold, all of one credential.
pub fn open(shares: &[Share]) -> Result<Opened, BreakGlassError> {
    let first = shares
        .first()
        .ok_or_else(|| err("no share given: name the share files"))?;
    for s in shares {
        if s.id != first.id {
            return Err(err(format!(
                "share {} is of credential `{}`, not `{}`",
                s.number, s.id, first.id
            )));
        }
        if s.sealed != first.sealed || s.threshold != first.threshold {
            return Err(err(format!(
                "share {} is of another credential named `{}`",
                s.number, s.id
            )));
        }
    }
    let mut numbers: Vec<u8> = shares.iter().map(|s| s.number).collect();
    numbers.sort_unstable();
    numbers.dedup();
    if numbers.len() < usize::from(first.threshold) {
        return Err(err(format!(
            "{} different share{} given; credential `{}` needs {} of its {}",
            numbers.len(),
            if numbers.len() == 1 { "" } else { "s" },
            first.id,
            first.threshold,
            first.of
        )));
    }
    let parsed = shares
        .iter()
        .map(|s| blahaj::Share::try_from(s.data.as_slice()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(format!("a share's data is malformed: {e}")))?;
    let data_key = Zeroizing::new(
        blahaj::Sharks(first.threshold)
            .recover(&parsed)
            .map_err(|e| err(format!("the shares do not combine: {e}")))?,
    );
    let blob = STANDARD
        .decode(&first.sealed)
        .map_err(|_| err("line 7: the sealed credential is not base64"))?;
    let (nonce, sealed) = blob
        .split_at_checked(12)
        .ok_or_else(|| err("line 7: the sealed credential is too short"))?;
    let cipher = Aes256Gcm::new_from_slice(data_key.as_slice())
        .map_err(|_| err("the shares do not combine"))?;
    let payload = Zeroizing::new(
        cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: &aad(&first.id),
                },
            )
            .map_err(|_| {
                err("the shares do not open the credential: a share was changed, or belongs to another")
            })?,
    );
    let text = std::str::from_utf8(&payload).map_err(|_| err("the credential is not text"))?;
    let end = "-----END OPENSSH PRIVATE KEY-----";
    let split = text
        .find(end)
        .map(|i| i + end.len())
        .ok_or_else(|| err("the credential holds no private key"))?;
    let (key, cert) = text.split_at(split);
    Ok(Opened {
        id: first.id.clone(),
        private_key: Zeroizing::new(format!("{key}\n")),
        certificate: format!("{}\n", cert.trim()),
        expires: first.expires.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn minted(shares: u8, threshold: u8) -> Minted {
        mint(
            &Mint {
                id: "bg1",
                principal: "warden-break-glass:emergency",
                valid_after: 1_800_000_000,
                valid_before: 1_800_086_400,
                shares,
                threshold,
            },
            "2027-01-15T00:00:00.000Z",
            &mut rand::rngs::OsRng,
        )
        .unwrap()
    }

    fn parse_all(m: &Minted, which: &[usize]) -> Vec<Share> {
        which
            .iter()
            .map(|i| Share::parse(&m.shares[*i]).unwrap())
            .collect()
    }

    #[test]
    fn any_threshold_of_shares_opens_it_and_fewer_do_not() {
        let m = minted(5, 3);
        let opened = open(&parse_all(&m, &[4, 0, 2])).unwrap();
        let cert = ssh_key::Certificate::from_openssh(opened.certificate.trim()).unwrap();
        assert_eq!(cert.key_id(), "break-glass:bg1");
        assert_eq!(cert.valid_principals(), ["warden-break-glass:emergency"]);
        let ca = ssh_key::PublicKey::from_openssh(&m.ca_public_key).unwrap();
        assert_eq!(cert.signature_key(), ca.key_data());
        let key = PrivateKey::from_openssh(opened.private_key.as_str()).unwrap();
        assert_eq!(key.public_key().key_data(), cert.public_key());
        assert_eq!(
            open(&parse_all(&m, &[1, 3])).unwrap_err().0,
            "2 different shares given; credential `bg1` needs 3 of its 5"
        );
        assert_eq!(
            open(&parse_all(&m, &[1, 1, 1])).unwrap_err().0,
            "1 different share given; credential `bg1` needs 3 of its 5"
        );
        // One of one: the share alone opens it.
        let one = minted(1, 1);
        assert!(open(&parse_all(&one, &[0])).is_ok());
        // Shares of two credentials do not mix.
        let mut mixed = parse_all(&m, &[0, 1]);
        mixed.extend(parse_all(&minted(5, 3), &[2]));
        assert_eq!(
            open(&mixed).unwrap_err().0,
            "share 3 is of another credential named `bg1`"
        );
    }

    #[test]
    fn an_edited_share_is_refused() {
        let m = minted(3, 2);
        let mut shares = parse_all(&m, &[0, 1]);
        shares[1].data[5] ^= 1;
        assert_eq!(
            open(&shares).unwrap_err().0,
            "the shares do not open the credential: a share was changed, or belongs to another"
        );
        for (text, want) in [
            (
                "hello",
                "not a Warden break-glass share: the first line is not `warden break-glass share v1`",
            ),
            (
                "warden break-glass share v1\nname: x",
                "line 2: expected `id: …`",
            ),
            (
                "warden break-glass share v1\nid: a\nshare: 3 of 2\nthreshold: 1\nexpires: x\nshare-data: AA==\nsealed: x",
                "line 3: expected `share: K of M`",
            ),
            (
                "warden break-glass share v1\nid: a\nshare: 1 of 2\nthreshold: 3\nexpires: x\nshare-data: AA==\nsealed: x",
                "line 4: expected a threshold from 1 to the number of shares",
            ),
            (
                "warden break-glass share v1\nid: a\nshare: 1 of 2\nthreshold: 2\nexpires: x\nshare-data: AA==\nsealed: x",
                "line 6: the share data is not 33 bytes of base64",
            ),
        ] {
            assert_eq!(Share::parse(text).unwrap_err().0, want);
        }
        for (shares, threshold, want) in [
            (0, 1, "shares must be 1 to 16, not 0"),
            (17, 1, "shares must be 1 to 16, not 17"),
            (
                3,
                4,
                "the threshold must be 1 to the number of shares (3), not 4",
            ),
            (
                3,
                0,
                "the threshold must be 1 to the number of shares (3), not 0",
            ),
        ] {
            let e = mint(
                &Mint {
                    id: "x",
                    principal: "p:q",
                    valid_after: 1,
                    valid_before: 2,
                    shares,
                    threshold,
                },
                "-",
                &mut rand::rngs::OsRng,
            )
            .unwrap_err();
            assert_eq!(e.0, want);
        }
    }

    proptest! {
        /// Share files are outside input: any text parses or is refused, never a panic.
        #[test]
        fn any_text_parses_or_is_refused(text in ".{0,400}") {
            let _ = Share::parse(&text);
        }

        /// Any line of a real share, changed, is refused or fails to open; never a panic.
        #[test]
        fn a_changed_share_never_opens_wrongly(line in 0usize..8, junk in "[ -~]{0,60}") {
            let m = minted(2, 2);
            let mut lines: Vec<String> = m.shares[0].lines().map(str::to_owned).collect();
            if let Some(l) = lines.get_mut(line) {
                *l = junk;
            }
            let edited = lines.join("\n");
            if let (Ok(a), Ok(b)) = (Share::parse(&edited), Share::parse(&m.shares[1]))
                && let Ok(opened) = open(&[a, b])
            {
                // Only a change that left the credential intact (the expiry note) opens.
                prop_assert!(opened.certificate.contains("-cert-v01@openssh.com"));
            }
        }
    }
}
