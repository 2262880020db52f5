//! The CLI's files: the distributor's signing key, the credentials (API tokens per portal),
//! and what `log verify` trusts (each portal's pinned keys and the log head it verified), all
//! private to the user (mode 0600 in a 0700 directory on Unix).

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use cyclepool_shared::distributor::AccountId;
use cyclepool_shared::signing::{SecretKey, is_usable_key};
use cyclepool_shared::{PublicKey, hex};
use rand::TryRngCore as _;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The CLI's directory: `$XDG_CONFIG_HOME/cyclepool`, else `~/.config/cyclepool`.
pub fn config_dir() -> anyhow::Result<PathBuf> {
    // The XDG spec says a relative XDG_CONFIG_HOME is invalid and must be ignored.
    if let Some(dir) = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|dir| dir.is_absolute())
    {
        return Ok(dir.join("cyclepool"));
    }
    match std::env::var_os("HOME").filter(|home| !home.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".config").join("cyclepool")),
        None => bail!("cannot find a configuration directory: set XDG_CONFIG_HOME or HOME"),
    }
}

/// Where `keygen` writes the key and the other commands read it by default.
pub fn default_key_path() -> anyhow::Result<PathBuf> {
    Ok(config_dir()?.join("key.json"))
}

/// Where API tokens are kept, one per portal.
pub fn credentials_path() -> anyhow::Result<PathBuf> {
    Ok(config_dir()?.join("credentials.json"))
}

/// Where `log verify` pins each portal's keys (as a volunteer's browser does).
pub fn pinned_keys_path() -> anyhow::Result<PathBuf> {
    Ok(config_dir()?.join("portal-keys.json"))
}

/// Where `log verify` remembers the head of each portal's log it last verified.
pub fn log_heads_path() -> anyhow::Result<PathBuf> {
    Ok(config_dir()?.join("log-heads.json"))
}

/// A key file: the ed25519 seed and, to catch a damaged file, its public key.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    seed: String,
    public_key: PublicKey,
}

/// Makes a new signing key from the OS CSPRNG and writes it to `path`, which must not exist.
pub fn generate_key(path: &Path) -> anyhow::Result<SecretKey> {
    let mut seed = [0u8; 32];
    rand::rngs::OsRng
        .try_fill_bytes(&mut seed)
        .map_err(|err| anyhow::anyhow!("reading the OS random number generator: {err}"))?;
    let key = SecretKey::from_seed(&seed);
    let file = KeyFile {
        seed: hex::encode(&seed),
        public_key: key.public_key(),
    };
    let mut text = serde_json::to_string_pretty(&file).context("encoding the key file")?;
    text.push('\n');
    create_private_dir_for(path)?;
    let mut out = match open_private(path, OpenOptions::new().write(true).create_new(true)) {
        Ok(out) => out,
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => bail!(
            "{} already exists; refusing to overwrite a key (choose another path with --out)",
            path.display()
        ),
        Err(err) => {
            return Err(err).with_context(|| format!("creating the key file {}", path.display()));
        }
    };
    out.write_all(text.as_bytes())
        .and_then(|()| out.sync_all())
        .with_context(|| format!("writing the key file {}", path.display()))?;
    Ok(key)
}

/// Reads a key written by [`generate_key`], checking that its seed matches its public key.
pub fn load_key(path: &Path) -> anyhow::Result<SecretKey> {
    let text = fs::read_to_string(path).with_context(|| {
        format!(
            "reading the key file {} (make one with `cyclepool keygen`)",
            path.display()
        )
    })?;
    warn_if_readable_by_others(path);
    let file: KeyFile = serde_json::from_str(&text)
        .with_context(|| format!("the key file {} is not a Cyclepool key", path.display()))?;
    let seed: [u8; 32] = hex::decode_array(file.seed.trim()).with_context(|| {
        format!(
            "the key file {} has no valid seed (64 hex digits)",
            path.display()
        )
    })?;
    let key = SecretKey::from_seed(&seed);
    if key.public_key() != file.public_key || !is_usable_key(&file.public_key) {
        bail!(
            "the key file {} is damaged: its seed does not give its public key",
            path.display()
        );
    }
    Ok(key)
}

/// The credentials file: one entry per portal URL.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Credentials {
    #[serde(default)]
    pub portals: BTreeMap<String, PortalCredentials>,
    /// The portal admin's token per portal URL (`cyclepool admin login`), kept apart from the
    /// distributor's so that neither command ever sends the other's token.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub admin_tokens: BTreeMap<String, String>,
}

/// What the CLI keeps for one portal.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PortalCredentials {
    /// The API token's secret, sent as `Authorization: Bearer`.
    pub token: String,
    /// The token's id, to recognise it in `cyclepool token list`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<AccountId>,
}

impl Credentials {
    /// Reads the credentials file; an absent file is empty credentials.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        load_private_json(path, "credentials file")
    }

    /// Writes the credentials file atomically (see [`save_private_json`]), so an interrupted
    /// write never leaves a half-written file holding tokens.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        save_private_json(path, self)
    }
}

/// Reads a private JSON file of the CLI; an absent file is `T::default()`. `what` names the
/// file in the message when it does not parse.
pub fn load_private_json<T: DeserializeOwned + Default>(
    path: &Path,
    what: &str,
) -> anyhow::Result<T> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(T::default()),
        Err(err) => {
            return Err(err).with_context(|| format!("reading {}", path.display()));
        }
    };
    warn_if_readable_by_others(path);
    serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a Cyclepool {what}; fix or remove it",
            path.display()
        )
    })
}

/// Writes `value` as JSON to `path` atomically: a private (0600) temporary file, synced, then
/// renamed over `path`, so a reader sees the old file or the new one, never half of one.
pub fn save_private_json<T: Serialize>(path: &Path, value: &T) -> anyhow::Result<()> {
    let mut text = serde_json::to_string_pretty(value)
        .with_context(|| format!("encoding {}", path.display()))?;
    text.push('\n');
    create_private_dir_for(path)?;
    let temporary = path.with_extension("json.tmp");
    // A temporary file left by a crash may have any mode: start afresh.
    match fs::remove_file(&temporary) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => {
            return Err(err).with_context(|| format!("removing {}", temporary.display()));
        }
        _ => {}
    }
    let mut out = open_private(&temporary, OpenOptions::new().write(true).create_new(true))
        .with_context(|| format!("creating {}", temporary.display()))?;
    out.write_all(text.as_bytes())
        .and_then(|()| out.sync_all())
        .with_context(|| format!("writing {}", temporary.display()))?;
    fs::rename(&temporary, path).with_context(|| format!("replacing {}", path.display()))
}

/// Opens `path` with `options`, created with mode 0600 on Unix.
fn open_private(path: &Path, options: &mut OpenOptions) -> io::Result<File> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options.open(path)
}

/// Creates the directory that will hold `path` (mode 0700 on Unix) if it is missing.
fn create_private_dir_for(path: &Path) -> anyhow::Result<()> {
    let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) else {
        return Ok(());
    };
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .with_context(|| format!("creating the directory {}", dir.display()))
}

/// Warns (as ssh does) when a secret file can be read by other users.
fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = fs::metadata(path).map(|metadata| metadata.permissions().mode());
        if mode.is_ok_and(|mode| mode & 0o077 != 0) {
            eprintln!(
                "warning: {} can be read by other users; run `chmod 600 {}`",
                path.display(),
                path.display()
            );
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}
