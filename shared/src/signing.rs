//! ed25519 signatures with domain separation.
//!
//! Every signature covers a fixed context string followed by the message, so a signature
//! made for one purpose (a manifest) can never be replayed as another (a key endorsement,
//! later a volunteer's result). Verification is strict (rejects malleable signatures and
//! small-order keys).

use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};

use crate::ids::{LeaseId, Nonce, PublicKey, Sha256Digest, Signature};

/// What a signature is for. Each purpose has its own context bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A job manifest, signed by the portal (or a distributor's registered key).
    Manifest,
    /// A new portal key, signed by the key it succeeds.
    KeyEndorsement,
    /// A volunteer's result, signed over [`result_message`].
    Result,
    /// A distributor's job declaration (see `distributor::job_declaration_message`).
    JobDeclaration,
    /// A volunteer's proof that it holds its key when it asks for work (see
    /// [`lease_proof_message`]).
    LeaseProof,
    /// A volunteer joining a restricted group (see `distributor::join_message`).
    JoinGroup,
    /// An entry of the public transparency log, signed by the portal (see
    /// `transparency::entry_message`).
    LogEntry,
}

impl Purpose {
    fn context(self) -> &'static [u8] {
        match self {
            Purpose::Manifest => b"cyclepool/manifest/v1\0",
            Purpose::KeyEndorsement => b"cyclepool/key-endorsement/v1\0",
            Purpose::Result => b"cyclepool/result/v1\0",
            Purpose::JobDeclaration => b"cyclepool/job-declaration/v1\0",
            Purpose::LeaseProof => b"cyclepool/lease-proof/v1\0",
            Purpose::JoinGroup => b"cyclepool/join-group/v1\0",
            Purpose::LogEntry => b"cyclepool/log-entry/v1\0",
        }
    }
}

/// A signature did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the public key is not a valid ed25519 key")]
    BadKey,
    #[error("the signature does not match the signed bytes and key")]
    Mismatch,
}

/// A secret signing key (the 32-byte ed25519 seed).
pub struct SecretKey(SigningKey);

impl SecretKey {
    /// Builds a key from a 32-byte seed, which must come from a CSPRNG.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self(SigningKey::from_bytes(seed))
    }

    /// The seed, for storing the key.
    pub fn seed(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey::from_bytes(self.0.verifying_key().to_bytes())
    }

    /// Signs `message` for `purpose`.
    pub fn sign(&self, purpose: Purpose, message: &[u8]) -> Signature {
        Signature::from_bytes(self.0.sign(&framed(purpose, message)).to_bytes())
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey(public {})", self.public_key())
    }
}

/// Whether `key` can sign at all: a valid curve point and not a weak (small-order) key.
pub fn is_usable_key(key: &PublicKey) -> bool {
    VerifyingKey::from_bytes(key.as_bytes()).is_ok_and(|key| !key.is_weak())
}

/// Checks that `signature` is `key`'s signature of `message` for `purpose`.
pub fn verify(
    key: &PublicKey,
    purpose: Purpose,
    message: &[u8],
    signature: &Signature,
) -> Result<(), SignatureError> {
    let key = VerifyingKey::from_bytes(key.as_bytes()).map_err(|_| SignatureError::BadKey)?;
    let signature = ed25519_dalek::Signature::from_bytes(signature.as_bytes());
    key.verify_strict(&framed(purpose, message), &signature)
        .map_err(|_| SignatureError::Mismatch)
}

/// What a volunteer signs for a result: the lease, its nonce and the output's digest, so a
/// signature cannot be moved to another lease (replay) or another output (tampering).
pub fn result_message(lease: &LeaseId, nonce: &Nonce, output_sha256: &Sha256Digest) -> [u8; 64] {
    let mut message = [0u8; 64];
    message[..16].copy_from_slice(lease.as_bytes());
    message[16..32].copy_from_slice(nonce.as_bytes());
    message[32..].copy_from_slice(output_sha256.as_bytes());
    message
}

/// What a volunteer signs when it asks for work: its key and the time. Restricted jobs go
/// only to requests carrying this proof, so knowing a member's public key is not enough to
/// read a restricted job's inputs.
pub fn lease_proof_message(volunteer: &crate::ids::VolunteerId, at_ms: u64) -> [u8; 40] {
    let mut message = [0u8; 40];
    message[..32].copy_from_slice(volunteer.as_bytes());
    message[32..].copy_from_slice(&at_ms.to_be_bytes());
    message
}

fn framed(purpose: Purpose, message: &[u8]) -> Vec<u8> {
    let context = purpose.context();
    let mut framed = Vec::with_capacity(context.len() + message.len());
    framed.extend_from_slice(context);
    framed.extend_from_slice(message);
    framed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_verifies_with_domain_separation() {
        let key = SecretKey::from_seed(&[9; 32]);
        let public = key.public_key();
        let signature = key.sign(Purpose::Manifest, b"hello");
        assert_eq!(
            verify(&public, Purpose::Manifest, b"hello", &signature),
            Ok(())
        );
        assert_eq!(
            verify(&public, Purpose::Manifest, b"hellp", &signature),
            Err(SignatureError::Mismatch)
        );
        // The same bytes signed for another purpose do not verify.
        assert_eq!(
            verify(&public, Purpose::KeyEndorsement, b"hello", &signature),
            Err(SignatureError::Mismatch)
        );
        let other = SecretKey::from_seed(&[10; 32]).public_key();
        assert_eq!(
            verify(&other, Purpose::Manifest, b"hello", &signature),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a_result_signature_binds_lease_nonce_and_output() {
        let key = SecretKey::from_seed(&[5; 32]);
        let (lease, nonce) = (LeaseId::from_bytes([1; 16]), Nonce::from_bytes([2; 16]));
        let digest = Sha256Digest::of(b"output");
        let signature = key.sign(Purpose::Result, &result_message(&lease, &nonce, &digest));
        let public = key.public_key();
        let check = |lease, nonce, digest| {
            verify(
                &public,
                Purpose::Result,
                &result_message(&lease, &nonce, &digest),
                &signature,
            )
        };
        assert_eq!(check(lease, nonce, digest), Ok(()));
        assert!(check(LeaseId::from_bytes([9; 16]), nonce, digest).is_err());
        assert!(check(lease, Nonce::from_bytes([9; 16]), digest).is_err());
        assert!(check(lease, nonce, Sha256Digest::of(b"other")).is_err());
    }

    #[test]
    fn the_seed_round_trips() {
        let key = SecretKey::from_seed(&[3; 32]);
        assert_eq!(
            SecretKey::from_seed(&key.seed()).public_key(),
            key.public_key()
        );
    }
}
