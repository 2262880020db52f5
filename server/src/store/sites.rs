//! Embedding sites: the web origins a distributor account registered for `embed.js`, and the
//! credit their visitors earned.
//!
//! Three trees: `sites` (site id → [`SiteRecord`]), `site_origins` (owner ‖ origin → site id,
//! so that one account cannot register an origin twice, checked in the transaction that
//! registers) and `site_credit` (site id → [`CreditRecord`], written only by the transaction
//! that accepts a result, `work.rs`).

use cyclepool_shared::distributor::{AccountId, SiteId};
use serde::{Deserialize, Serialize};
use sled::Transactional;

use super::{CreditRecord, Store, StoreError, decode, encode, get, tx_error};

/// A registered embedding site as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteRecord {
    pub id: SiteId,
    pub owner: AccountId,
    pub name: String,
    /// The origin allowed to frame the widget, as a browser serializes it.
    pub origin: String,
    pub created_ms: u64,
    /// Revoked: the widget is no longer served for it and leases naming it are refused. The
    /// record (and its credit) stays, so the id is never reused.
    #[serde(default)]
    pub revoked: bool,
}

/// What registering a site found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SiteRegistration {
    Registered,
    /// The account already has an unrevoked site with this origin.
    Duplicate(SiteId),
}

impl Store {
    /// Registers `site` unless its owner already has an unrevoked site with the same origin.
    pub fn register_site(&self, site: &SiteRecord) -> Result<SiteRegistration, StoreError> {
        let encoded = encode(site);
        let index = origin_key(site.owner, &site.origin);
        (&self.sites, &self.site_origins)
            .transaction(|(sites, origins)| {
                if let Some(existing) = origins.get(&index)? {
                    return Ok(SiteRegistration::Duplicate(site_id_from(&existing)?));
                }
                origins.insert(index.as_slice(), &site.id.0.to_be_bytes())?;
                sites.insert(&site.id.0.to_be_bytes(), encoded.as_slice())?;
                Ok(SiteRegistration::Registered)
            })
            .map_err(tx_error)
    }

    /// A site, revoked or not, if it was ever registered.
    pub fn site(&self, id: SiteId) -> Result<Option<SiteRecord>, StoreError> {
        self.sites
            .get(id.0.to_be_bytes())?
            .map(|value| decode("sites", &value))
            .transpose()
    }

    /// An account's sites, revoked ones included, oldest first.
    pub fn sites_owned_by(&self, owner: AccountId) -> Result<Vec<SiteRecord>, StoreError> {
        let mut sites = Vec::new();
        for value in self.sites.iter().values() {
            let site: SiteRecord = decode("sites", &value?)?;
            if site.owner == owner {
                sites.push(site);
            }
        }
        Ok(sites)
    }

    /// Revokes a site (its origin may then be registered again, under a new id). Returns the
    /// revoked record, or `None` if there is no such site. Revoking twice is harmless.
    pub fn revoke_site(&self, id: SiteId) -> Result<Option<SiteRecord>, StoreError> {
        (&self.sites, &self.site_origins)
            .transaction(|(sites, origins)| {
                let Some(mut site) = get::<SiteRecord>(sites, "sites", &id.0.to_be_bytes())? else {
                    return Ok(None);
                };
                if !site.revoked {
                    site.revoked = true;
                    sites.insert(&id.0.to_be_bytes(), encode(&site))?;
                    origins.remove(origin_key(site.owner, &site.origin))?;
                }
                Ok(Some(site))
            })
            .map_err(tx_error)
    }

    /// A site's credit: zeros for a site whose visitors have no validated result yet.
    pub fn site_credit(&self, id: SiteId) -> Result<CreditRecord, StoreError> {
        Ok(self
            .site_credit
            .get(id.0.to_be_bytes())?
            .map(|value| decode("site_credit", &value))
            .transpose()?
            .unwrap_or_default())
    }
}

/// The key of the origin index: the owner's id (8 bytes BE), then the origin's bytes.
fn origin_key(owner: AccountId, origin: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(8 + origin.len());
    key.extend_from_slice(&owner.0.to_be_bytes());
    key.extend_from_slice(origin.as_bytes());
    key
}

fn site_id_from(
    value: &[u8],
) -> Result<SiteId, sled::transaction::ConflictableTransactionError<StoreError>> {
    let bytes = <[u8; 8]>::try_from(value).map_err(|_| {
        sled::transaction::ConflictableTransactionError::Abort(StoreError::Corrupt {
            tree: "site_origins",
            reason: format!("value of {} bytes", value.len()),
        })
    })?;
    Ok(SiteId(u64::from_be_bytes(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(id: u64, owner: u64, origin: &str) -> SiteRecord {
        SiteRecord {
            id: SiteId(id),
            owner: AccountId(owner),
            name: "A blog".into(),
            origin: origin.into(),
            created_ms: 1,
            revoked: false,
        }
    }

    #[test]
    fn an_origin_is_registered_once_per_account_until_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let first = site(1, 7, "https://blog.example");
        assert_eq!(
            store.register_site(&first).unwrap(),
            SiteRegistration::Registered
        );
        assert_eq!(
            store
                .register_site(&site(2, 7, "https://blog.example"))
                .unwrap(),
            SiteRegistration::Duplicate(SiteId(1))
        );
        // Another account may name the same origin: only that origin's pages can frame it.
        assert_eq!(
            store
                .register_site(&site(3, 8, "https://blog.example"))
                .unwrap(),
            SiteRegistration::Registered
        );
        let revoked = store.revoke_site(SiteId(1)).unwrap().unwrap();
        assert!(revoked.revoked);
        assert!(store.site(SiteId(1)).unwrap().unwrap().revoked);
        assert!(store.revoke_site(SiteId(1)).unwrap().unwrap().revoked);
        assert_eq!(store.revoke_site(SiteId(99)).unwrap(), None);
        assert_eq!(
            store
                .register_site(&site(4, 7, "https://blog.example"))
                .unwrap(),
            SiteRegistration::Registered
        );
        let owned: Vec<u64> = store
            .sites_owned_by(AccountId(7))
            .unwrap()
            .iter()
            .map(|site| site.id.0)
            .collect();
        assert_eq!(owned, vec![1, 4]);
        assert_eq!(
            store.site_credit(SiteId(4)).unwrap(),
            CreditRecord::default()
        );
    }
}
