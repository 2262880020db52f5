//! The portal's signing keys: created at first start, rotated and revoked from the CLI.
//!
//! Secret keys live in `<data>/keys/<key id>.secret` (hex seed, mode 0600, directory 0700);
//! the public key set, with validity periods, endorsements and revocations, lives in
//! `<data>/keys/keyring.json` and is served at `/.well-known/cyclepool-keys.json`. Each
//! rotation's new key is endorsed (signed) by the key it succeeds, so pinned clients follow
//! the rotation. Files are replaced atomically (write, fsync, rename).

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use cyclepool_shared::manifest::{PortalKey, PortalKeys, RevokedKey};
use cyclepool_shared::signing::SecretKey;
use cyclepool_shared::{KeyId, hex};
use rand::TryRngCore as _;

/// How long a new portal key is valid.
pub const KEY_VALIDITY_MS: u64 = 2 * 365 * 24 * 60 * 60 * 1_000;

/// A key file could not be read or written, or an operation makes no sense.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("corrupt key file {path}: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("no key {0} in the keyring")]
    UnknownKey(KeyId),
    #[error("key {0} is the only usable key; rotate first, then revoke it")]
    LastKey(KeyId),
    #[error("every key is revoked or expired; run `cyclepool-server keys rotate`")]
    NoUsableKey,
}

/// The portal's keys, loaded.
pub struct Keyring {
    public: PortalKeys,
    current: SecretKey,
}

impl Keyring {
    /// Loads the keyring from `data_dir`, creating the first key if there is none.
    pub fn open_or_create(data_dir: &Path, now_ms: u64) -> Result<Self, KeyError> {
        let dir = keys_dir(data_dir);
        if !dir.join(KEYRING_FILE).exists() {
            create_dir(&dir)?;
            let first = generate(&dir)?;
            let public = PortalKeys {
                keys: vec![describe(&first, now_ms, None)],
                revoked: Vec::new(),
            };
            write_keyring(&dir, &public)?;
            tracing::info!(key = %KeyId::of(&first.public_key()), "created the portal signing key");
        }
        Self::open(data_dir, now_ms)
    }

    /// Loads the keyring; the current key is the newest usable one.
    pub fn open(data_dir: &Path, now_ms: u64) -> Result<Self, KeyError> {
        let dir = keys_dir(data_dir);
        let public = read_keyring(&dir)?;
        let newest_usable = public
            .keys
            .iter()
            .filter(|key| !public.revoked.iter().any(|r| r.key_id == key.key_id))
            .filter(|key| key.not_before_ms <= now_ms && now_ms < key.not_after_ms)
            .max_by_key(|key| key.not_before_ms)
            .ok_or(KeyError::NoUsableKey)?;
        let current = read_secret(&dir, newest_usable.key_id)?;
        Ok(Self { public, current })
    }

    /// The published key set.
    pub fn public(&self) -> &PortalKeys {
        &self.public
    }

    /// The key that signs manifests now.
    pub fn current(&self) -> &SecretKey {
        &self.current
    }

    /// The published entry of the current key.
    pub fn current_entry(&self) -> Option<&PortalKey> {
        let id = KeyId::of(&self.current.public_key());
        self.public.keys.iter().find(|key| key.key_id == id)
    }
}

/// Creates a new key endorsed by the current one and makes it current. Takes effect when
/// the server (re)starts.
pub fn rotate(data_dir: &Path, now_ms: u64) -> Result<PortalKey, KeyError> {
    let keyring = Keyring::open_or_create(data_dir, now_ms)?;
    let dir = keys_dir(data_dir);
    let new = generate(&dir)?;
    let entry = describe(&new, now_ms, Some(&keyring.current));
    let mut public = keyring.public.clone();
    public.keys.push(entry.clone());
    write_keyring(&dir, &public)?;
    Ok(entry)
}

/// Revokes `key_id`: manifests signed with it are refused by clients from now on.
pub fn revoke(data_dir: &Path, key_id: KeyId, reason: &str, now_ms: u64) -> Result<(), KeyError> {
    let dir = keys_dir(data_dir);
    let mut public = read_keyring(&dir)?;
    if !public.keys.iter().any(|key| key.key_id == key_id) {
        return Err(KeyError::UnknownKey(key_id));
    }
    if public.revoked.iter().any(|r| r.key_id == key_id) {
        return Ok(());
    }
    let others_usable = public.keys.iter().any(|key| {
        key.key_id != key_id
            && !public.revoked.iter().any(|r| r.key_id == key.key_id)
            && key.not_before_ms <= now_ms
            && now_ms < key.not_after_ms
    });
    if !others_usable {
        return Err(KeyError::LastKey(key_id));
    }
    public.revoked.push(RevokedKey {
        key_id,
        revoked_ms: now_ms,
        reason: reason.to_owned(),
    });
    write_keyring(&dir, &public)
}

const KEYRING_FILE: &str = "keyring.json";

fn keys_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("keys")
}

fn describe(key: &SecretKey, now_ms: u64, endorser: Option<&SecretKey>) -> PortalKey {
    PortalKey::new(
        key,
        now_ms,
        now_ms.saturating_add(KEY_VALIDITY_MS),
        endorser,
    )
}

/// Generates a key from the OS CSPRNG and stores its seed, readable by the owner only.
fn generate(dir: &Path) -> Result<SecretKey, KeyError> {
    let mut seed = [0u8; 32];
    rand::rngs::OsRng
        .try_fill_bytes(&mut seed)
        .map_err(|err| KeyError::Io {
            action: "reading the OS random generator for",
            path: dir.to_path_buf(),
            source: std::io::Error::other(err.to_string()),
        })?;
    let key = SecretKey::from_seed(&seed);
    let path = dir.join(format!("{}.secret", KeyId::of(&key.public_key())));
    write_atomically(&path, hex::encode(&seed).as_bytes(), 0o600)?;
    Ok(key)
}

fn read_secret(dir: &Path, id: KeyId) -> Result<SecretKey, KeyError> {
    let path = dir.join(format!("{id}.secret"));
    let text = fs::read_to_string(&path).map_err(|source| KeyError::Io {
        action: "reading",
        path: path.clone(),
        source,
    })?;
    let seed: [u8; 32] = hex::decode_array(text.trim()).ok_or_else(|| KeyError::Corrupt {
        path: path.clone(),
        reason: "expected 64 hex digits".into(),
    })?;
    let key = SecretKey::from_seed(&seed);
    if KeyId::of(&key.public_key()) != id {
        return Err(KeyError::Corrupt {
            path,
            reason: "the secret does not match its key id".into(),
        });
    }
    Ok(key)
}

fn read_keyring(dir: &Path) -> Result<PortalKeys, KeyError> {
    let path = dir.join(KEYRING_FILE);
    let text = fs::read(&path).map_err(|source| KeyError::Io {
        action: "reading",
        path: path.clone(),
        source,
    })?;
    serde_json::from_slice(&text).map_err(|err| KeyError::Corrupt {
        path,
        reason: err.to_string(),
    })
}

fn write_keyring(dir: &Path, keys: &PortalKeys) -> Result<(), KeyError> {
    let text = serde_json::to_vec_pretty(keys).unwrap_or_default();
    write_atomically(&dir.join(KEYRING_FILE), &text, 0o644)
}

fn create_dir(dir: &Path) -> Result<(), KeyError> {
    let io = |source| KeyError::Io {
        action: "creating",
        path: dir.to_path_buf(),
        source,
    };
    fs::create_dir_all(dir).map_err(io)?;
    set_mode(dir, 0o700).map_err(io)
}

fn write_atomically(path: &Path, contents: &[u8], mode: u32) -> Result<(), KeyError> {
    let temporary = path.with_extension("tmp");
    let io = |action, source| KeyError::Io {
        action,
        path: path.to_path_buf(),
        source,
    };
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    let mut file = options.open(&temporary).map_err(|e| io("creating", e))?;
    // The mode given at creation is filtered by the umask; set it exactly.
    set_mode(&temporary, mode).map_err(|e| io("setting permissions of", e))?;
    file.write_all(contents).map_err(|e| io("writing", e))?;
    file.sync_all().map_err(|e| io("syncing", e))?;
    fs::rename(&temporary, path).map_err(|e| io("renaming into", e))?;
    if let Some(parent) = path.parent() {
        if let Ok(dir) = fs::File::open(parent) {
            let _ = dir.sync_all();
        }
    }
    Ok(())
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_start_creates_one_private_key() {
        let dir = tempfile::tempdir().unwrap();
        let keyring = Keyring::open_or_create(dir.path(), 1_000).unwrap();
        assert_eq!(keyring.public().keys.len(), 1);
        let again = Keyring::open_or_create(dir.path(), 2_000).unwrap();
        assert_eq!(again.public(), keyring.public());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let id = keyring.public().keys[0].key_id;
            let secret = dir.path().join(format!("keys/{id}.secret"));
            assert_eq!(
                fs::metadata(secret).unwrap().permissions().mode() & 0o777,
                0o600
            );
            let keys = dir.path().join("keys");
            assert_eq!(
                fs::metadata(keys).unwrap().permissions().mode() & 0o777,
                0o700
            );
        }
    }

    #[test]
    fn rotation_endorses_the_new_key_and_pinned_clients_follow() {
        let dir = tempfile::tempdir().unwrap();
        let first = Keyring::open_or_create(dir.path(), 1_000).unwrap();
        let pinned = PortalKeys::pin(&PortalKeys::default(), first.public()).unwrap();
        let new = rotate(dir.path(), 2_000).unwrap();
        let rotated = Keyring::open(dir.path(), 3_000).unwrap();
        assert_eq!(KeyId::of(&rotated.current().public_key()), new.key_id);
        let repinned = PortalKeys::pin(&pinned, rotated.public()).unwrap();
        assert_eq!(repinned.keys.len(), 2);
    }

    #[test]
    fn revoking_needs_another_usable_key() {
        let dir = tempfile::tempdir().unwrap();
        let first = Keyring::open_or_create(dir.path(), 1_000).unwrap();
        let first_id = first.public().keys[0].key_id;
        assert!(matches!(
            revoke(dir.path(), first_id, "test", 2_000),
            Err(KeyError::LastKey(_))
        ));
        let second = rotate(dir.path(), 2_000).unwrap();
        revoke(dir.path(), first_id, "leaked", 3_000).unwrap();
        let keyring = Keyring::open(dir.path(), 4_000).unwrap();
        assert_eq!(keyring.public().revoked.len(), 1);
        assert_eq!(KeyId::of(&keyring.current().public_key()), second.key_id);
        assert!(matches!(
            revoke(dir.path(), KeyId::from_bytes([0; 8]), "x", 5_000),
            Err(KeyError::UnknownKey(_))
        ));
    }
}
