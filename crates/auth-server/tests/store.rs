//! The `Store` contract, run against both backends (SQLite in memory, and a private Redis
//! server), then what only Redis has: replicas racing on one Redis, TTLs, outages.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use auth_server::model::{
    AuthorizationRequest, ClientAuthMethod, ClientId, ClientKind, ClientRecord, CodeRecord,
    GrantId, GrantRecord, PendingAuthorization, RefreshRecord, RotateOutcome, SealedUpstream,
    SigningKeyRecord, Subject, TakeCode, UpstreamLogin, now_millis,
};
use auth_server::store::{PurgePolicy, RedisStore, SqliteStore, StoreError};
use auth_server::{Store, open_store};
use test_support::redis::RedisServer;

/// A store under test, and the Redis behind it (kept alive for the test).
struct Backend {
    store: Arc<dyn Store>,
    redis: Option<RedisServer>,
}

fn sqlite() -> Backend {
    Backend {
        store: Arc::new(SqliteStore::open_in_memory().unwrap()),
        redis: None,
    }
}

fn redis() -> Backend {
    let server = RedisServer::start();
    Backend {
        store: open_store(Some(&server.url()), std::path::Path::new(".")).unwrap(),
        redis: Some(server),
    }
}

/// Runs one contract case against each backend.
macro_rules! both_backends {
    ($($case:ident),* $(,)?) => {
        mod sqlite_store {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(super::sqlite()).await;
                }
            )*
        }
        mod redis_store {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(super::redis()).await;
                }
            )*
        }
    };
}

both_backends!(
    clients_are_stored_and_touched,
    pending_consents_and_logins_are_single_use_and_expire,
    a_code_is_taken_once_and_a_replay_revokes_its_grant,
    refresh_rotation_has_a_grace_window_and_reuse_after_it_revokes,
    rotation_refuses_other_clients_expired_tokens_and_dead_grants,
    revoking_a_grant_drops_its_refresh_tokens,
    layer_tokens_swap_only_from_the_expected_version,
    the_refresh_lease_has_one_holder_at_a_time,
    signing_keys_are_kept_retired_and_deleted,
    purge_removes_unused_clients_without_live_grants,
    ping_answers_when_the_store_is_there,
);

fn request(client: &ClientId) -> AuthorizationRequest {
    AuthorizationRequest {
        client_id: client.clone(),
        redirect_uri: "http://127.0.0.1:5555/cb".into(),
        state: "s".into(),
        code_challenge: "c".repeat(43),
        resource: "https://mcp.example.com/mcp".into(),
        scope: "layer".into(),
    }
}

fn client(id: &str, last_used_at: i64) -> ClientRecord {
    ClientRecord {
        id: ClientId::new(id),
        kind: ClientKind::Dynamic,
        secret_hash: None,
        auth_method: ClientAuthMethod::None,
        redirect_uris: vec!["http://127.0.0.1:5555/cb".into()],
        name: Some("Test".into()),
        client_uri: None,
        created_at: last_used_at,
        last_used_at,
        refresh_after: None,
    }
}

fn grant(id: &str, client: &str) -> GrantRecord {
    GrantRecord {
        id: GrantId::new(id),
        subject: Subject::new("auth0|alice"),
        client_id: ClientId::new(client),
        scope: "layer".into(),
        resource: "https://mcp.example.com/mcp".into(),
        created_at: now_millis(),
        revoked_at: None,
        upstream: SealedUpstream {
            // Binary, with bytes that are not UTF-8.
            sealed: vec![0, 159, 146, 150, 255, 1, 2],
            access_expires_at: now_millis() + 3_600_000,
            version: 0,
        },
    }
}

fn refresh(hash: &str, grant: &str, client: &str) -> RefreshRecord {
    let now = now_millis();
    RefreshRecord {
        hash: hash.into(),
        grant_id: GrantId::new(grant),
        client_id: ClientId::new(client),
        issued_at: now,
        expires_at: now + 3_600_000,
        rotated_at: None,
    }
}

/// The successor `rotate_refresh` is given (its grant id is taken from the old token).
fn successor(hash: &str, client: &str) -> RefreshRecord {
    refresh(hash, "", client)
}

async fn live(store: &dyn Store, grant: &str) -> bool {
    store
        .get_grant(&GrantId::new(grant))
        .await
        .unwrap()
        .is_some_and(|g| g.is_live())
}

async fn clients_are_stored_and_touched(b: Backend) {
    let s = b.store.as_ref();
    let now = now_millis();
    assert_eq!(
        s.get_client(&ClientId::new("lmc_none")).await.unwrap(),
        None
    );
    let c = client("lmc_1", now - 1000);
    s.put_client(&c).await.unwrap();
    assert_eq!(s.get_client(&c.id).await.unwrap(), Some(c.clone()));
    s.touch_client(&c.id, now).await.unwrap();
    assert_eq!(
        s.get_client(&c.id).await.unwrap().unwrap().last_used_at,
        now
    );
    // Never backwards.
    s.touch_client(&c.id, now - 5000).await.unwrap();
    assert_eq!(
        s.get_client(&c.id).await.unwrap().unwrap().last_used_at,
        now
    );
    // Touching an unknown client creates nothing.
    s.touch_client(&ClientId::new("lmc_ghost"), now)
        .await
        .unwrap();
    assert_eq!(
        s.get_client(&ClientId::new("lmc_ghost")).await.unwrap(),
        None
    );
    // A re-registration (metadata document refetched) replaces the record.
    let mut again = c.clone();
    again.name = Some("Renamed".into());
    again.last_used_at = now + 1;
    s.put_client(&again).await.unwrap();
    assert_eq!(s.get_client(&c.id).await.unwrap(), Some(again));
}

async fn pending_consents_and_logins_are_single_use_and_expire(b: Backend) {
    let s = b.store.as_ref();
    let now = now_millis();
    let c = ClientId::new("lmc_1");
    let pending = PendingAuthorization {
        id: "p1".into(),
        csrf_hash: "h".into(),
        browser_binding: "b".into(),
        request: request(&c),
        expires_at: now + 60_000,
    };
    s.put_pending(&pending).await.unwrap();
    assert_eq!(
        s.take_pending("p1", now).await.unwrap(),
        Some(pending.clone())
    );
    assert_eq!(s.take_pending("p1", now).await.unwrap(), None, "single use");
    // Past its expiry it is not returned (and it is gone).
    let short = PendingAuthorization {
        id: "p2".into(),
        expires_at: now + 60_000,
        ..pending.clone()
    };
    s.put_pending(&short).await.unwrap();
    assert_eq!(s.take_pending("p2", now + 60_001).await.unwrap(), None);
    assert_eq!(s.take_pending("p2", now).await.unwrap(), None);

    let login = UpstreamLogin {
        state_hash: "st1".into(),
        browser_binding: "b".into(),
        request: request(&c),
        sealed_secrets: vec![1, 2, 255],
        expires_at: now + 60_000,
    };
    s.put_login(&login).await.unwrap();
    assert_eq!(s.take_login("st1", now).await.unwrap(), Some(login.clone()));
    assert_eq!(s.take_login("st1", now).await.unwrap(), None, "single use");
    let old = UpstreamLogin {
        state_hash: "st2".into(),
        ..login
    };
    s.put_login(&old).await.unwrap();
    assert_eq!(s.take_login("st2", now + 60_001).await.unwrap(), None);
    assert_eq!(s.take_pending("unknown", now).await.unwrap(), None);
}

async fn a_code_is_taken_once_and_a_replay_revokes_its_grant(b: Backend) {
    let s = b.store.as_ref();
    let now = now_millis();
    let c = ClientId::new("lmc_1");
    s.create_grant(&grant("g1", "lmc_1")).await.unwrap();
    let code = CodeRecord {
        hash: "code1".into(),
        grant_id: GrantId::new("g1"),
        request: request(&c),
        expires_at: now + 60_000,
    };
    s.put_code(&code).await.unwrap();
    assert_eq!(
        s.take_code("code1", now).await.unwrap(),
        TakeCode::Fresh(code.clone())
    );
    assert!(live(s, "g1").await, "a first use revokes nothing");
    assert_eq!(
        s.take_code("code1", now + 1).await.unwrap(),
        TakeCode::Replayed(GrantId::new("g1"))
    );
    assert!(!live(s, "g1").await, "the replay revoked the grant");
    assert_eq!(s.take_code("nope", now).await.unwrap(), TakeCode::NotFound);

    // An expired code is spent too.
    s.create_grant(&grant("g2", "lmc_1")).await.unwrap();
    let expired = CodeRecord {
        hash: "code2".into(),
        grant_id: GrantId::new("g2"),
        ..code
    };
    s.put_code(&expired).await.unwrap();
    assert_eq!(
        s.take_code("code2", now + 60_001).await.unwrap(),
        TakeCode::Expired(expired)
    );
    assert_eq!(
        s.take_code("code2", now).await.unwrap(),
        TakeCode::Replayed(GrantId::new("g2"))
    );
}

async fn refresh_rotation_has_a_grace_window_and_reuse_after_it_revokes(b: Backend) {
    let s = b.store.as_ref();
    let c = ClientId::new("lmc_1");
    s.create_grant(&grant("g1", "lmc_1")).await.unwrap();
    s.put_refresh(&refresh("r0", "g1", "lmc_1")).await.unwrap();
    let now = now_millis();
    let grace = 30_000;
    let r1 = successor("r1", "lmc_1");
    match s.rotate_refresh("r0", &c, &r1, now, grace).await.unwrap() {
        RotateOutcome::Rotated(g) => {
            assert_eq!(g.id.as_str(), "g1");
            assert_eq!(g.upstream.sealed, grant("g1", "lmc_1").upstream.sealed);
        }
        other => panic!("{other:?}"),
    }
    let stored = s.get_refresh("r1").await.unwrap().unwrap();
    assert_eq!(
        stored.grant_id.as_str(),
        "g1",
        "the successor joins the grant"
    );
    assert_eq!(stored.rotated_at, None);
    assert_eq!(
        s.get_refresh("r0").await.unwrap().unwrap().rotated_at,
        Some(now)
    );
    // The same old token again within the grace window: a second successor.
    let r1b = successor("r1b", "lmc_1");
    assert!(matches!(
        s.rotate_refresh("r0", &c, &r1b, now + grace, grace).await.unwrap(),
        RotateOutcome::WithinGrace(g) if g.id.as_str() == "g1"
    ));
    assert!(s.get_refresh("r1b").await.unwrap().is_some());
    // Rotation goes on from a successor.
    assert!(matches!(
        s.rotate_refresh("r1", &c, &successor("r2", "lmc_1"), now + 1, grace)
            .await
            .unwrap(),
        RotateOutcome::Rotated(_)
    ));
    // After the window, the old token is a reuse: the grant and all its tokens end.
    assert_eq!(
        s.rotate_refresh("r0", &c, &successor("r9", "lmc_1"), now + grace + 1, grace)
            .await
            .unwrap(),
        RotateOutcome::Reused(GrantId::new("g1"))
    );
    assert!(!live(s, "g1").await);
    assert_eq!(
        s.get_refresh("r9").await.unwrap(),
        None,
        "no successor stored"
    );
    for t in ["r0", "r1", "r1b", "r2"] {
        assert_eq!(s.get_refresh(t).await.unwrap(), None, "{t} dropped");
    }
    assert_eq!(
        s.rotate_refresh("r2", &c, &successor("r3", "lmc_1"), now + 2, grace)
            .await
            .unwrap(),
        RotateOutcome::Invalid
    );
}

async fn rotation_refuses_other_clients_expired_tokens_and_dead_grants(b: Backend) {
    let s = b.store.as_ref();
    let c = ClientId::new("lmc_1");
    let now = now_millis();
    s.create_grant(&grant("g1", "lmc_1")).await.unwrap();
    let r0 = refresh("r0", "g1", "lmc_1");
    let expires_at = r0.expires_at;
    s.put_refresh(&r0).await.unwrap();
    let other = ClientId::new("lmc_other");
    assert_eq!(
        s.rotate_refresh("r0", &other, &successor("x1", "lmc_other"), now, 0)
            .await
            .unwrap(),
        RotateOutcome::Invalid
    );
    assert_eq!(
        s.rotate_refresh("r0", &c, &successor("x2", "lmc_1"), expires_at, 0)
            .await
            .unwrap(),
        RotateOutcome::Invalid,
        "expired"
    );
    assert_eq!(
        s.rotate_refresh("unknown", &c, &successor("x3", "lmc_1"), now, 0)
            .await
            .unwrap(),
        RotateOutcome::Invalid
    );
    for t in ["x1", "x2", "x3"] {
        assert_eq!(s.get_refresh(t).await.unwrap(), None, "nothing changed");
    }
    assert_eq!(s.get_refresh("r0").await.unwrap().unwrap().rotated_at, None);
    // A token whose grant is revoked (stored after the revocation).
    s.revoke_grant(&GrantId::new("g1"), now).await.unwrap();
    s.put_refresh(&refresh("late", "g1", "lmc_1"))
        .await
        .unwrap();
    assert_eq!(
        s.rotate_refresh("late", &c, &successor("x4", "lmc_1"), now, 0)
            .await
            .unwrap(),
        RotateOutcome::Invalid
    );
}

async fn revoking_a_grant_drops_its_refresh_tokens(b: Backend) {
    let s = b.store.as_ref();
    let now = now_millis();
    s.create_grant(&grant("g1", "lmc_1")).await.unwrap();
    s.create_grant(&grant("g2", "lmc_1")).await.unwrap();
    s.put_refresh(&refresh("a", "g1", "lmc_1")).await.unwrap();
    s.put_refresh(&refresh("b", "g2", "lmc_1")).await.unwrap();
    assert!(s.revoke_grant(&GrantId::new("g1"), now).await.unwrap());
    assert!(
        !s.revoke_grant(&GrantId::new("g1"), now).await.unwrap(),
        "once"
    );
    assert!(!s.revoke_grant(&GrantId::new("nope"), now).await.unwrap());
    let g = s.get_grant(&GrantId::new("g1")).await.unwrap().unwrap();
    assert_eq!(g.revoked_at, Some(now), "kept as a tombstone");
    assert_eq!(s.get_refresh("a").await.unwrap(), None);
    assert!(
        s.get_refresh("b").await.unwrap().is_some(),
        "other grants untouched"
    );
    assert!(live(s, "g2").await);
}

async fn layer_tokens_swap_only_from_the_expected_version(b: Backend) {
    let s = b.store.as_ref();
    let id = GrantId::new("g1");
    s.create_grant(&grant("g1", "lmc_1")).await.unwrap();
    let v1 = SealedUpstream {
        sealed: vec![9, 9, 255],
        access_expires_at: 42,
        version: 1,
    };
    assert!(s.swap_upstream(&id, 0, &v1).await.unwrap());
    let stale = SealedUpstream {
        sealed: vec![7],
        access_expires_at: 7,
        version: 1,
    };
    assert!(
        !s.swap_upstream(&id, 0, &stale).await.unwrap(),
        "lost the race"
    );
    assert_eq!(s.get_grant(&id).await.unwrap().unwrap().upstream, v1);
    s.revoke_grant(&id, now_millis()).await.unwrap();
    let v2 = SealedUpstream { version: 2, ..v1 };
    assert!(!s.swap_upstream(&id, 1, &v2).await.unwrap(), "revoked");
    assert!(
        !s.swap_upstream(&GrantId::new("nope"), 0, &v2)
            .await
            .unwrap()
    );
}

async fn the_refresh_lease_has_one_holder_at_a_time(b: Backend) {
    let s = b.store.as_ref();
    let g = GrantId::new("g1");
    let now = now_millis();
    assert!(s.lease_upstream_refresh(&g, "a", now, 300).await.unwrap());
    assert!(!s.lease_upstream_refresh(&g, "b", now, 300).await.unwrap());
    assert!(
        s.lease_upstream_refresh(&g, "a", now, 300).await.unwrap(),
        "the holder renews"
    );
    s.release_upstream_refresh(&g, "b").await.unwrap();
    assert!(
        !s.lease_upstream_refresh(&g, "b", now, 300).await.unwrap(),
        "only the holder releases"
    );
    s.release_upstream_refresh(&g, "a").await.unwrap();
    assert!(s.lease_upstream_refresh(&g, "b", now, 300).await.unwrap());
    // A holder that never gives it back loses it when it runs out.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        s.lease_upstream_refresh(&g, "c", now_millis(), 300)
            .await
            .unwrap()
    );
    // Leases are per grant.
    assert!(
        s.lease_upstream_refresh(&GrantId::new("g2"), "a", now_millis(), 300)
            .await
            .unwrap()
    );
}

async fn signing_keys_are_kept_retired_and_deleted(b: Backend) {
    let s = b.store.as_ref();
    let k = |kid: &str, at: i64| SigningKeyRecord {
        kid: kid.into(),
        sealed_private: vec![0, 1, 255, 128],
        created_at: at,
        retired_at: None,
    };
    assert!(s.signing_keys().await.unwrap().is_empty());
    s.put_signing_key(&k("k2", 2000)).await.unwrap();
    s.put_signing_key(&k("k1", 1000)).await.unwrap();
    s.put_signing_key(&k("k3", 3000)).await.unwrap();
    assert!(
        s.put_signing_key(&k("k3", 3000)).await.is_err(),
        "a kid is unique"
    );
    let keys = s.signing_keys().await.unwrap();
    assert_eq!(
        keys.iter().map(|k| k.kid.as_str()).collect::<Vec<_>>(),
        ["k1", "k2", "k3"],
        "oldest first"
    );
    assert_eq!(keys[0], k("k1", 1000));
    s.retire_signing_keys_except("k3", 5000).await.unwrap();
    let keys = s.signing_keys().await.unwrap();
    assert_eq!(keys[0].retired_at, Some(5000));
    assert_eq!(keys[1].retired_at, Some(5000));
    assert_eq!(keys[2].retired_at, None);
    // Already retired keys keep their first retirement.
    s.retire_signing_keys_except("k2", 9000).await.unwrap();
    assert_eq!(s.signing_keys().await.unwrap()[0].retired_at, Some(5000));
    s.delete_signing_key("k1").await.unwrap();
    assert_eq!(s.signing_keys().await.unwrap().len(), 2);
}

async fn purge_removes_unused_clients_without_live_grants(b: Backend) {
    let s = b.store.as_ref();
    let now = now_millis();
    let day = 24 * 3600 * 1000;
    s.put_client(&client("old_unused", now - 40 * day))
        .await
        .unwrap();
    s.put_client(&client("old_with_grant", now - 40 * day))
        .await
        .unwrap();
    s.put_client(&client("old_revoked", now - 40 * day))
        .await
        .unwrap();
    s.put_client(&client("recent", now - day)).await.unwrap();
    s.create_grant(&grant("g_live", "old_with_grant"))
        .await
        .unwrap();
    s.put_refresh(&refresh("r", "g_live", "old_with_grant"))
        .await
        .unwrap();
    s.create_grant(&grant("g_dead", "old_revoked"))
        .await
        .unwrap();
    s.revoke_grant(&GrantId::new("g_dead"), now).await.unwrap();
    // Touched recently although registered long ago.
    s.put_client(&client("touched", now - 40 * day))
        .await
        .unwrap();
    s.touch_client(&ClientId::new("touched"), now)
        .await
        .unwrap();
    let purged = s
        .purge(PurgePolicy {
            now,
            clients_unused_since: now - 30 * day,
            tombstones_before: now - day,
        })
        .await
        .unwrap();
    assert_eq!(purged.clients, 2, "{purged:?}");
    for (id, kept) in [
        ("old_unused", false),
        ("old_revoked", false),
        ("old_with_grant", true),
        ("recent", true),
        ("touched", true),
    ] {
        assert_eq!(
            s.get_client(&ClientId::new(id)).await.unwrap().is_some(),
            kept,
            "{id}"
        );
    }
    assert!(live(s, "g_live").await, "live grants are never purged");
}

async fn ping_answers_when_the_store_is_there(b: Backend) {
    b.store.ping().await.unwrap();
    let expected = if b.redis.is_some() { "redis" } else { "sqlite" };
    assert_eq!(b.store.kind(), expected);
}

// ---- Redis only: replicas racing on one Redis ----

/// Two replicas' stores on one Redis.
fn two_replicas(server: &RedisServer) -> (Arc<dyn Store>, Arc<dyn Store>) {
    let a: Arc<dyn Store> = Arc::new(RedisStore::connect(&server.url()).unwrap());
    let b: Arc<dyn Store> = Arc::new(RedisStore::connect(&server.url()).unwrap());
    (a, b)
}

/// Runs `op` sixteen times at once, alternating between the two replicas; the answers.
async fn race<T, F, Fut>(a: &Arc<dyn Store>, b: &Arc<dyn Store>, op: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(usize, Arc<dyn Store>) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    let tasks: Vec<_> = (0..16_usize)
        .map(|i| {
            let replica = if i.is_multiple_of(2) { a } else { b };
            tokio::spawn(op(i, replica.clone()))
        })
        .collect();
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    answers
}

#[tokio::test]
async fn racing_replicas_take_a_code_once() {
    let server = RedisServer::start();
    let (a, b) = two_replicas(&server);
    a.create_grant(&grant("g1", "lmc_1")).await.unwrap();
    a.put_code(&CodeRecord {
        hash: "code".into(),
        grant_id: GrantId::new("g1"),
        request: request(&ClientId::new("lmc_1")),
        expires_at: now_millis() + 60_000,
    })
    .await
    .unwrap();
    let answers = race(&a, &b, |_, s| async move {
        s.take_code("code", now_millis()).await.unwrap()
    })
    .await;
    let mut fresh = 0;
    for answer in answers {
        match answer {
            TakeCode::Fresh(_) => fresh += 1,
            TakeCode::Replayed(g) => assert_eq!(g.as_str(), "g1"),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(fresh, 1, "exactly one replica wins the code");
}

#[tokio::test]
async fn racing_replicas_rotate_a_refresh_token_once() {
    let server = RedisServer::start();
    let (a, b) = two_replicas(&server);
    a.create_grant(&grant("g1", "lmc_1")).await.unwrap();
    a.put_refresh(&refresh("r0", "g1", "lmc_1")).await.unwrap();
    let answers = race(&a, &b, |i, s| async move {
        let new = successor(&format!("r1-{i}"), "lmc_1");
        s.rotate_refresh("r0", &ClientId::new("lmc_1"), &new, now_millis(), 30_000)
            .await
            .unwrap()
    })
    .await;
    let mut rotated = 0;
    for answer in answers {
        match answer {
            RotateOutcome::Rotated(_) => rotated += 1,
            RotateOutcome::WithinGrace(_) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        rotated, 1,
        "one rotation; the others are within the grace window"
    );
    for i in 0..16 {
        let t = a.get_refresh(&format!("r1-{i}")).await.unwrap().unwrap();
        assert_eq!(t.grant_id.as_str(), "g1");
    }
}

#[tokio::test]
async fn racing_replicas_get_one_refresh_lease() {
    let server = RedisServer::start();
    let (a, b) = two_replicas(&server);
    let answers = race(&a, &b, |i, s| async move {
        s.lease_upstream_refresh(&GrantId::new("g1"), &format!("h{i}"), now_millis(), 5000)
            .await
            .unwrap()
    })
    .await;
    let holders = answers.into_iter().filter(|&held| held).count();
    assert_eq!(holders, 1);
}

#[tokio::test]
async fn short_lived_state_expires_in_redis_by_itself() {
    let server = RedisServer::start();
    let store = RedisStore::connect(&server.url()).unwrap();
    let now = now_millis();
    let c = ClientId::new("lmc_1");
    store
        .put_pending(&PendingAuthorization {
            id: "p".into(),
            csrf_hash: "h".into(),
            browser_binding: "b".into(),
            request: request(&c),
            expires_at: now + 300,
        })
        .await
        .unwrap();
    store
        .put_login(&UpstreamLogin {
            state_hash: "l".into(),
            browser_binding: "b".into(),
            request: request(&c),
            sealed_secrets: vec![1],
            expires_at: now + 300,
        })
        .await
        .unwrap();
    store.create_grant(&grant("g1", "lmc_1")).await.unwrap();
    store
        .put_code(&CodeRecord {
            hash: "code".into(),
            grant_id: GrantId::new("g1"),
            request: request(&c),
            expires_at: now + 60_000,
        })
        .await
        .unwrap();
    store
        .put_refresh(&refresh("r", "g1", "lmc_1"))
        .await
        .unwrap();
    store
        .lease_upstream_refresh(&GrantId::new("g1"), "a", now, 10_000)
        .await
        .unwrap();
    let conn = server.inspect().await;
    let ttl = |key: &str| {
        let key = format!("layer-mcp:oauth:{key}");
        let mut conn = conn.clone();
        async move {
            redis::cmd("PTTL")
                .arg(&key)
                .query_async::<i64>(&mut conn)
                .await
                .unwrap()
        }
    };
    for (key, at_most) in [
        ("code:code", 60_000 + 24 * 3600 * 1000),
        ("refresh:r", 3_600_000),
        ("grant-refresh:g1", 3_600_000),
        ("lease:g1", 10_000),
        ("grant:g1", 3_600_000 + 24 * 3600 * 1000),
    ] {
        let t = ttl(key).await;
        assert!(t > 0 && t <= at_most, "{key}: ttl {t}");
    }
    // Every key this store writes is under the prefix.
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut conn.clone())
        .await
        .unwrap();
    assert!(
        keys.iter().all(|k| k.starts_with("layer-mcp:oauth:")),
        "{keys:?}"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(ttl("pending:p").await, -2, "the pending consent is gone");
    assert_eq!(ttl("login:l").await, -2, "the upstream login is gone");
}

#[tokio::test]
async fn an_outage_fails_fast_and_the_store_recovers_by_itself() {
    let mut server = RedisServer::start();
    let store = RedisStore::connect(&server.url()).unwrap();
    store.create_grant(&grant("g1", "lmc_1")).await.unwrap();
    server.kill();
    for _ in 0..3 {
        let started = Instant::now();
        let e = store.get_grant(&GrantId::new("g1")).await.unwrap_err();
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "failed in {:?}",
            started.elapsed()
        );
        let StoreError::Backend(text) = &e else {
            panic!("{e:?}")
        };
        assert!(!text.contains("127.0.0.1"), "no address in {text}");
        let started = Instant::now();
        assert!(store.ping().await.is_err());
        assert!(store.take_code("code", now_millis()).await.is_err());
        assert!(started.elapsed() < Duration::from_millis(3000));
    }
    server.restart();
    // The same store object: at most the first call after the restart may still fail.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match store.ping().await {
            Ok(()) => break,
            Err(e) => assert!(Instant::now() < deadline, "not back: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The restarted Redis kept nothing (no persistence in tests); writes work again.
    store.create_grant(&grant("g2", "lmc_1")).await.unwrap();
    assert!(live(&store, "g2").await);
}

#[tokio::test]
async fn a_hung_redis_times_out_instead_of_hanging() {
    let server = RedisServer::start();
    let store = RedisStore::connect(&server.url()).unwrap();
    store.ping().await.unwrap();
    server.pause();
    let started = Instant::now();
    assert!(store.get_grant(&GrantId::new("g1")).await.is_err());
    assert!(
        store
            .lease_upstream_refresh(&GrantId::new("g1"), "a", now_millis(), 1000)
            .await
            .is_err()
    );
    assert!(
        started.elapsed() < Duration::from_millis(5000),
        "{:?}",
        started.elapsed()
    );
    server.resume();
    let deadline = Instant::now() + Duration::from_secs(5);
    while store.ping().await.is_err() {
        assert!(Instant::now() < deadline, "not back after SIGCONT");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
