//! Distributor accounts, their API tokens and dashboard sessions, and restricted groups.
//!
//! Secrets (tokens, session ids, group invitations) are never stored: only their SHA-256,
//! which is also the key they are found by, so a stolen store grants no access.

use cyclepool_shared::distributor::{AccountId, DistributorKeyInfo, GroupId};
use cyclepool_shared::{KeyId, Sha256Digest, VolunteerId};
use serde::{Deserialize, Serialize};
use sled::Transactional;

use super::{Store, StoreError, decode, encode, tx_error};

/// A distributor account as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountRecord {
    pub id: AccountId,
    pub name: String,
    pub contact: String,
    pub organisation: String,
    pub purpose: String,
    pub created_ms: u64,
    #[serde(default)]
    pub suspended: bool,
    #[serde(default)]
    pub keys: Vec<DistributorKeyInfo>,
    /// The admin's setting: publish this account's jobs without review.
    #[serde(default)]
    pub trusted: bool,
    /// The version of the distributor terms the account accepted, and when.
    #[serde(default)]
    pub terms_accepted: Option<TermsAcceptance>,
}

/// A distributor's acceptance of one version of the terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TermsAcceptance {
    pub version: u32,
    pub at_ms: u64,
}

/// An API token as stored, under the SHA-256 of its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub token_id: u64,
    pub account: AccountId,
    pub label: String,
    pub created_ms: u64,
    #[serde(default)]
    pub revoked: bool,
}

/// A dashboard session as stored, under the SHA-256 of its cookie's secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub account: AccountId,
    pub created_ms: u64,
    pub expires_ms: u64,
}

/// A restricted group as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRecord {
    pub id: GroupId,
    pub owner: AccountId,
    pub name: String,
    pub created_ms: u64,
    pub invite_sha256: Sha256Digest,
}

impl Store {
    /// A new id from the database's counter (shared by every kind of record).
    pub fn new_id(&self) -> Result<u64, StoreError> {
        Ok(self.db.generate_id()?)
    }

    /// Creates an account together with its first token, atomically.
    pub fn create_account(
        &self,
        account: &AccountRecord,
        token_sha256: Sha256Digest,
        token: &TokenRecord,
    ) -> Result<(), StoreError> {
        let (encoded_account, encoded_token) = (encode(account), encode(token));
        (&self.accounts, &self.tokens)
            .transaction(|(accounts, tokens)| {
                accounts.insert(&account.id.0.to_be_bytes(), encoded_account.as_slice())?;
                tokens.insert(token_sha256.as_bytes(), encoded_token.as_slice())?;
                Ok(())
            })
            .map_err(tx_error)
    }

    /// An account, if it exists.
    pub fn account(&self, id: AccountId) -> Result<Option<AccountRecord>, StoreError> {
        self.accounts
            .get(id.0.to_be_bytes())?
            .map(|value| decode("accounts", &value))
            .transpose()
    }

    /// Every account, in creation order.
    pub fn accounts(&self) -> Result<Vec<AccountRecord>, StoreError> {
        self.accounts
            .iter()
            .values()
            .map(|value| decode("accounts", &value?))
            .collect()
    }

    /// Changes an account with `change`, atomically (concurrent changes retry). Returns the
    /// changed account, or `None` if there is no such account.
    pub fn update_account<T>(
        &self,
        id: AccountId,
        mut change: impl FnMut(&mut AccountRecord) -> T,
    ) -> Result<Option<(AccountRecord, T)>, StoreError> {
        let key = id.0.to_be_bytes();
        loop {
            let Some(old) = self.accounts.get(key)? else {
                return Ok(None);
            };
            let mut account: AccountRecord = decode("accounts", &old)?;
            let outcome = change(&mut account);
            let swapped =
                self.accounts
                    .compare_and_swap(key, Some(&old), Some(encode(&account)))?;
            if swapped.is_ok() {
                return Ok(Some((account, outcome)));
            }
        }
    }

    /// The account whose key has id `key`, with the key, if registered.
    pub fn key_owner(
        &self,
        key: KeyId,
    ) -> Result<Option<(AccountRecord, DistributorKeyInfo)>, StoreError> {
        for account in self.accounts()? {
            if let Some(info) = account.keys.iter().find(|info| info.key_id == key) {
                let info = info.clone();
                return Ok(Some((account, info)));
            }
        }
        Ok(None)
    }

    /// Stores a token under the SHA-256 of its secret.
    pub fn put_token(
        &self,
        secret_sha256: Sha256Digest,
        token: &TokenRecord,
    ) -> Result<(), StoreError> {
        self.tokens
            .insert(secret_sha256.as_bytes(), encode(token))?;
        Ok(())
    }

    /// The token whose secret hashes to `secret_sha256`.
    pub fn token(&self, secret_sha256: Sha256Digest) -> Result<Option<TokenRecord>, StoreError> {
        self.tokens
            .get(secret_sha256.as_bytes())?
            .map(|value| decode("tokens", &value))
            .transpose()
    }

    /// An account's tokens, oldest first.
    pub fn tokens_of(&self, account: AccountId) -> Result<Vec<TokenRecord>, StoreError> {
        let mut tokens = Vec::new();
        for value in self.tokens.iter().values() {
            let token: TokenRecord = decode("tokens", &value?)?;
            if token.account == account {
                tokens.push(token);
            }
        }
        tokens.sort_by_key(|token| token.token_id);
        Ok(tokens)
    }

    /// Revokes an account's token by id; returns it, or `None` if the account has no such
    /// token. Revoking twice is harmless.
    pub fn revoke_token(
        &self,
        account: AccountId,
        token_id: u64,
    ) -> Result<Option<TokenRecord>, StoreError> {
        for entry in self.tokens.iter() {
            let (key, value) = entry?;
            let mut token: TokenRecord = decode("tokens", &value)?;
            if token.account == account && token.token_id == token_id {
                token.revoked = true;
                self.tokens.insert(key, encode(&token))?;
                return Ok(Some(token));
            }
        }
        Ok(None)
    }

    /// Stores a session under the SHA-256 of its secret.
    pub fn put_session(
        &self,
        secret_sha256: Sha256Digest,
        session: &SessionRecord,
    ) -> Result<(), StoreError> {
        self.sessions
            .insert(secret_sha256.as_bytes(), encode(session))?;
        Ok(())
    }

    /// The session whose secret hashes to `secret_sha256`.
    pub fn session(
        &self,
        secret_sha256: Sha256Digest,
    ) -> Result<Option<SessionRecord>, StoreError> {
        self.sessions
            .get(secret_sha256.as_bytes())?
            .map(|value| decode("sessions", &value))
            .transpose()
    }

    /// Ends a session.
    pub fn delete_session(&self, secret_sha256: Sha256Digest) -> Result<(), StoreError> {
        self.sessions.remove(secret_sha256.as_bytes())?;
        Ok(())
    }

    /// Forgets sessions that expired before `now_ms`; returns how many.
    pub fn prune_sessions(&self, now_ms: u64) -> Result<usize, StoreError> {
        let mut pruned = 0;
        for entry in self.sessions.iter() {
            let (key, value) = entry?;
            let session: SessionRecord = decode("sessions", &value)?;
            if session.expires_ms < now_ms {
                self.sessions.remove(key)?;
                pruned += 1;
            }
        }
        Ok(pruned)
    }

    /// Creates a group; its invitation is found by its SHA-256.
    pub fn create_group(&self, group: &GroupRecord) -> Result<(), StoreError> {
        let encoded = encode(group);
        (&self.groups, &self.invites)
            .transaction(|(groups, invites)| {
                groups.insert(&group.id.0.to_be_bytes(), encoded.as_slice())?;
                invites.insert(group.invite_sha256.as_bytes(), &group.id.0.to_be_bytes())?;
                Ok(())
            })
            .map_err(tx_error)
    }

    /// A group, if it exists.
    pub fn group(&self, id: GroupId) -> Result<Option<GroupRecord>, StoreError> {
        self.groups
            .get(id.0.to_be_bytes())?
            .map(|value| decode("groups", &value))
            .transpose()
    }

    /// An account's groups, oldest first.
    pub fn groups_owned_by(&self, owner: AccountId) -> Result<Vec<GroupRecord>, StoreError> {
        let mut groups = Vec::new();
        for value in self.groups.iter().values() {
            let group: GroupRecord = decode("groups", &value?)?;
            if group.owner == owner {
                groups.push(group);
            }
        }
        Ok(groups)
    }

    /// The group an invitation (by its SHA-256) admits to.
    pub fn group_by_invite(
        &self,
        invite_sha256: Sha256Digest,
    ) -> Result<Option<GroupRecord>, StoreError> {
        let Some(id) = self.invites.get(invite_sha256.as_bytes())? else {
            return Ok(None);
        };
        let id = <[u8; 8]>::try_from(id.as_ref()).map_err(|_| StoreError::Corrupt {
            tree: "invites",
            reason: format!("value of {} bytes", id.len()),
        })?;
        self.group(GroupId(u64::from_be_bytes(id)))
    }

    /// Adds volunteers to a group (both indexes, atomically). Adding a member twice is harmless.
    pub fn add_members(
        &self,
        group: GroupId,
        volunteers: &[VolunteerId],
    ) -> Result<(), StoreError> {
        (&self.members, &self.memberships)
            .transaction(|(members, memberships)| {
                for volunteer in volunteers {
                    members.insert(&member_key(group, *volunteer)[..], &[])?;
                    memberships.insert(&membership_key(*volunteer, group)[..], &[])?;
                }
                Ok(())
            })
            .map_err(tx_error)
    }

    /// Removes a volunteer from a group.
    pub fn remove_member(&self, group: GroupId, volunteer: VolunteerId) -> Result<(), StoreError> {
        (&self.members, &self.memberships)
            .transaction(|(members, memberships)| {
                members.remove(&member_key(group, volunteer)[..])?;
                memberships.remove(&membership_key(volunteer, group)[..])?;
                Ok(())
            })
            .map_err(tx_error)
    }

    /// A group's members, in key order.
    pub fn members(&self, group: GroupId) -> Result<Vec<VolunteerId>, StoreError> {
        self.members
            .scan_prefix(group.0.to_be_bytes())
            .keys()
            .map(|key| {
                let key = key?;
                let id = <[u8; 32]>::try_from(&key[8..]).map_err(|_| StoreError::Corrupt {
                    tree: "members",
                    reason: format!("key of {} bytes", key.len()),
                })?;
                Ok(VolunteerId::from_bytes(id))
            })
            .collect()
    }

    /// The groups a volunteer belongs to.
    pub fn groups_of(&self, volunteer: VolunteerId) -> Result<Vec<GroupId>, StoreError> {
        self.memberships
            .scan_prefix(volunteer.as_bytes())
            .keys()
            .map(|key| {
                let key = key?;
                let id = <[u8; 8]>::try_from(&key[32..]).map_err(|_| StoreError::Corrupt {
                    tree: "memberships",
                    reason: format!("key of {} bytes", key.len()),
                })?;
                Ok(GroupId(u64::from_be_bytes(id)))
            })
            .collect()
    }
}

fn member_key(group: GroupId, volunteer: VolunteerId) -> [u8; 40] {
    let mut key = [0u8; 40];
    key[..8].copy_from_slice(&group.0.to_be_bytes());
    key[8..].copy_from_slice(volunteer.as_bytes());
    key
}

fn membership_key(volunteer: VolunteerId, group: GroupId) -> [u8; 40] {
    let mut key = [0u8; 40];
    key[..32].copy_from_slice(volunteer.as_bytes());
    key[32..].copy_from_slice(&group.0.to_be_bytes());
    key
}
