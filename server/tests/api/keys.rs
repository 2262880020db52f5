//! `/.well-known/cyclepool-keys.json` through a key's life: one key at first start; after a
//! rotation and a restart, a second key endorsed by the first that pinned clients follow and
//! that signs manifests; after a revocation and a restart, the old key's manifests are refused.

use cyclepool_server::keys::{self, KEY_VALIDITY_MS};
use cyclepool_shared::manifest::{ManifestError, PortalKeys};

use crate::helpers::{START_MS, spawn_app};

#[tokio::test]
async fn a_new_server_publishes_one_key_valid_from_its_first_start() {
    let app = spawn_app(1).await;
    let published = app.keys().await;
    assert_eq!(published.keys.len(), 1, "{published:?}");
    assert!(published.revoked.is_empty());
    let key = &published.keys[0];
    assert_eq!(key.not_before_ms, START_MS);
    assert_eq!(key.not_after_ms, START_MS + KEY_VALIDITY_MS);
    assert!(key.endorsement.is_none(), "the first key has no endorser");
    let manifest = app.manifest(app.job_id()).await;
    assert_eq!(manifest.key_id, key.key_id);
    manifest.open(&published, app.clock.now_ms()).unwrap();

    // The key set is the same after a restart: nothing is generated twice.
    let app = app.restart().await;
    assert_eq!(app.keys().await, published);
    assert_eq!(app.manifest(app.job_id()).await, manifest);
}

#[tokio::test]
async fn rotation_then_revocation_moves_signing_to_the_new_key() {
    let app = spawn_app(2).await;
    let job = app.job_id();
    let first_keys = app.keys().await;
    let old_id = first_keys.keys[0].key_id;
    let pinned = PortalKeys::pin(&PortalKeys::default(), &first_keys).unwrap();
    let old_manifest = app.manifest(job).await;
    assert_eq!(old_manifest.key_id, old_id);

    // Rotate a second later (so that the new key is strictly newer), then restart to apply.
    app.clock.advance(1_000);
    let new = keys::rotate(app.data_dir.path(), app.clock.now_ms()).unwrap();
    let app = app.restart().await;
    let now = app.clock.now_ms();
    let rotated = app.keys().await;
    assert_eq!(rotated.keys.len(), 2, "{rotated:?}");
    let published_new = rotated
        .keys
        .iter()
        .find(|key| key.key_id == new.key_id)
        .expect("the new key is published");
    assert_eq!(published_new, &new);
    assert_eq!(
        new.endorsement
            .as_ref()
            .map(|endorsement| endorsement.key_id),
        Some(old_id),
        "the new key is endorsed by the old one"
    );
    assert_eq!(
        (new.not_before_ms, new.not_after_ms),
        (now, now + KEY_VALIDITY_MS)
    );
    let repinned = PortalKeys::pin(&pinned, &rotated).expect("pinned clients follow");
    assert_eq!(repinned.keys.len(), 2);

    // Manifests are now signed by the new key, and open for a client that followed.
    let new_manifest = app.manifest(job).await;
    assert_eq!(new_manifest.key_id, new.key_id);
    assert_ne!(new_manifest, old_manifest);
    let opened = new_manifest.open(&repinned, now).unwrap();
    assert_eq!(opened.job_id, job);
    assert!(opened.issued_ms >= new.not_before_ms);
    new_manifest.open(&rotated, now).unwrap();
    // A client that never learnt the new key refuses what it signs.
    assert_eq!(
        new_manifest.open(&pinned, now),
        Err(ManifestError::UnknownKey(new.key_id))
    );
    // Until revoked, the old key's manifests still open.
    old_manifest.open(&rotated, now).unwrap();

    // Revoke the old key and restart to publish it.
    app.clock.advance(1_000);
    keys::revoke(
        app.data_dir.path(),
        old_id,
        "leaked in a test",
        app.clock.now_ms(),
    )
    .unwrap();
    let app = app.restart().await;
    let now = app.clock.now_ms();
    let revoked = app.keys().await;
    assert_eq!(revoked.revoked.len(), 1, "{revoked:?}");
    assert_eq!(revoked.revoked[0].key_id, old_id);
    assert_eq!(revoked.revoked[0].reason, "leaked in a test");
    assert!(matches!(
        old_manifest.open(&revoked, now),
        Err(ManifestError::RevokedKey { key, .. }) if key == old_id
    ));
    // A pinned client learns the revocation too, and still trusts the new key.
    let repinned = PortalKeys::pin(&repinned, &revoked).unwrap();
    assert!(matches!(
        old_manifest.open(&repinned, now),
        Err(ManifestError::RevokedKey { .. })
    ));
    let current = app.manifest(job).await;
    assert_eq!(current.key_id, new.key_id);
    current.open(&repinned, now).unwrap();
    current.open(&revoked, now).unwrap();
}
