//! The embedded SQLite store (the default). One connection behind a mutex, used from
//! blocking threads; every single-use operation is one `IMMEDIATE` transaction.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::{PurgePolicy, Store, StoreError};
use crate::model::{
    ClientId, ClientRecord, CodeRecord, GrantId, GrantRecord, PendingAuthorization, Purged,
    RefreshRecord, RotateOutcome, SealedUpstream, SigningKeyRecord, Subject, TakeCode, UnixMillis,
    UpstreamLogin,
};

const SCHEMA: &str = r#"
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
PRAGMA foreign_keys = ON;
CREATE TABLE IF NOT EXISTS clients (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    data TEXT NOT NULL,
    last_used_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS pending_authorizations (
    id TEXT PRIMARY KEY,
    data TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS upstream_logins (
    state_hash TEXT PRIMARY KEY,
    data TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS grants (
    id TEXT PRIMARY KEY,
    subject TEXT NOT NULL,
    client_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    resource TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER,
    upstream BLOB NOT NULL,
    upstream_expires_at INTEGER NOT NULL,
    upstream_version INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS grants_client ON grants (client_id);
CREATE TABLE IF NOT EXISTS codes (
    hash TEXT PRIMARY KEY,
    grant_id TEXT NOT NULL,
    data TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER
);
CREATE TABLE IF NOT EXISTS refresh_tokens (
    hash TEXT PRIMARY KEY,
    grant_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    issued_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    rotated_at INTEGER
);
CREATE INDEX IF NOT EXISTS refresh_grant ON refresh_tokens (grant_id);
CREATE TABLE IF NOT EXISTS upstream_leases (
    grant_id TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS signing_keys (
    kid TEXT PRIMARY KEY,
    sealed_private BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    retired_at INTEGER
);
"#;

/// The SQLite store. Cheap to clone.
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteStore")
    }
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(backend)
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(backend)
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, with its parent directories.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| {
                StoreError::Backend(format!("cannot create {}: {e}", parent.display()))
            })?;
        }
        let conn = Connection::open(path)
            .map_err(|e| StoreError::Backend(format!("cannot open {}: {e}", path.display())))?;
        Self::init(conn)
    }

    /// A private in-memory database (tests).
    pub fn open_in_memory() -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory().map_err(backend)?)
    }

    fn init(conn: Connection) -> Result<Self, StoreError> {
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(backend)?;
        conn.execute_batch(SCHEMA).map_err(backend)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` with the connection on a blocking thread.
    async fn with<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            // A panic elsewhere while holding the lock leaves SQLite itself consistent.
            let mut guard = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(backend)?
    }

    /// Stores a single-use record (a pending authorization, an upstream login) as JSON:
    /// `insert` takes the key, the JSON and the expiry.
    async fn put_single_use(
        &self,
        insert: &'static str,
        key: String,
        data: String,
        expires_at: UnixMillis,
    ) -> Result<(), StoreError> {
        self.with(move |c| {
            c.execute(insert, params![key, data, expires_at])
                .map_err(backend)?;
            Ok(())
        })
        .await
    }

    /// Deletes and returns a single-use record, or nothing if it is unknown or expired:
    /// `delete` takes the key and returns the JSON and the expiry.
    async fn take_single_use<T>(
        &self,
        delete: &'static str,
        key: &str,
        now: UnixMillis,
    ) -> Result<Option<T>, StoreError>
    where
        T: serde::de::DeserializeOwned + Send + 'static,
    {
        let key = key.to_owned();
        self.with(move |c| {
            let data: Option<(String, i64)> = c
                .query_row(delete, params![key], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
                .map_err(backend)?;
            match data {
                Some((data, expires_at)) if expires_at > now => Ok(Some(from_json(&data)?)),
                _ => Ok(None),
            }
        })
        .await
    }
}

fn read_grant(row: &rusqlite::Row<'_>) -> rusqlite::Result<GrantRecord> {
    Ok(GrantRecord {
        id: GrantId::new(row.get::<_, String>(0)?),
        subject: Subject::new(row.get::<_, String>(1)?),
        client_id: ClientId::new(row.get::<_, String>(2)?),
        scope: row.get(3)?,
        resource: row.get(4)?,
        created_at: row.get(5)?,
        revoked_at: row.get(6)?,
        upstream: SealedUpstream {
            sealed: row.get(7)?,
            access_expires_at: row.get(8)?,
            version: row.get(9)?,
        },
    })
}

const GRANT_COLUMNS: &str = "id, subject, client_id, scope, resource, created_at, revoked_at, \
                             upstream, upstream_expires_at, upstream_version";

fn get_grant_tx(conn: &Connection, id: &str) -> Result<Option<GrantRecord>, StoreError> {
    conn.query_row(
        &format!("SELECT {GRANT_COLUMNS} FROM grants WHERE id = ?1"),
        params![id],
        read_grant,
    )
    .optional()
    .map_err(backend)
}

fn revoke_grant_tx(conn: &Connection, id: &str, now: UnixMillis) -> Result<bool, StoreError> {
    let changed = conn
        .execute(
            "UPDATE grants SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
            params![id, now],
        )
        .map_err(backend)?;
    // The grant's refresh tokens are useless now; dropping them keeps the table small.
    conn.execute(
        "DELETE FROM refresh_tokens WHERE grant_id = ?1",
        params![id],
    )
    .map_err(backend)?;
    Ok(changed > 0)
}

fn read_refresh(row: &rusqlite::Row<'_>) -> rusqlite::Result<RefreshRecord> {
    Ok(RefreshRecord {
        hash: row.get(0)?,
        grant_id: GrantId::new(row.get::<_, String>(1)?),
        client_id: ClientId::new(row.get::<_, String>(2)?),
        issued_at: row.get(3)?,
        expires_at: row.get(4)?,
        rotated_at: row.get(5)?,
    })
}

fn insert_refresh(conn: &Connection, t: &RefreshRecord) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO refresh_tokens (hash, grant_id, client_id, issued_at, expires_at, rotated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            t.hash,
            t.grant_id.as_str(),
            t.client_id.as_str(),
            t.issued_at,
            t.expires_at,
            t.rotated_at
        ],
    )
    .map_err(backend)?;
    Ok(())
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.with(|c| c.query_row("SELECT 1", [], |_| Ok(())).map_err(backend))
            .await
    }

    async fn put_client(&self, client: &ClientRecord) -> Result<(), StoreError> {
        let client = client.clone();
        self.with(move |c| {
            let kind = to_json(&client.kind)?;
            c.execute(
                "INSERT INTO clients (id, kind, data, last_used_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(id) DO UPDATE SET kind = ?2, data = ?3, last_used_at = ?4",
                params![
                    client.id.as_str(),
                    kind,
                    to_json(&client)?,
                    client.last_used_at
                ],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn get_client(&self, id: &ClientId) -> Result<Option<ClientRecord>, StoreError> {
        let id = id.clone();
        self.with(move |c| {
            let row: Option<(String, i64)> = c
                .query_row(
                    "SELECT data, last_used_at FROM clients WHERE id = ?1",
                    params![id.as_str()],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(backend)?;
            row.map(|(data, last_used)| {
                let mut client: ClientRecord = from_json(&data)?;
                client.last_used_at = last_used;
                Ok(client)
            })
            .transpose()
        })
        .await
    }

    async fn touch_client(&self, id: &ClientId, now: UnixMillis) -> Result<(), StoreError> {
        let id = id.clone();
        self.with(move |c| {
            c.execute(
                "UPDATE clients SET last_used_at = max(last_used_at, ?2) WHERE id = ?1",
                params![id.as_str(), now],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn put_pending(&self, pending: &PendingAuthorization) -> Result<(), StoreError> {
        self.put_single_use(
            "INSERT INTO pending_authorizations (id, data, expires_at) VALUES (?1, ?2, ?3)",
            pending.id.clone(),
            to_json(pending)?,
            pending.expires_at,
        )
        .await
    }

    async fn take_pending(
        &self,
        id: &str,
        now: UnixMillis,
    ) -> Result<Option<PendingAuthorization>, StoreError> {
        self.take_single_use(
            "DELETE FROM pending_authorizations WHERE id = ?1 RETURNING data, expires_at",
            id,
            now,
        )
        .await
    }

    async fn put_login(&self, login: &UpstreamLogin) -> Result<(), StoreError> {
        self.put_single_use(
            "INSERT INTO upstream_logins (state_hash, data, expires_at) VALUES (?1, ?2, ?3)",
            login.state_hash.clone(),
            to_json(login)?,
            login.expires_at,
        )
        .await
    }

    async fn take_login(
        &self,
        state_hash: &str,
        now: UnixMillis,
    ) -> Result<Option<UpstreamLogin>, StoreError> {
        self.take_single_use(
            "DELETE FROM upstream_logins WHERE state_hash = ?1 RETURNING data, expires_at",
            state_hash,
            now,
        )
        .await
    }

    async fn create_grant(&self, grant: &GrantRecord) -> Result<(), StoreError> {
        let g = grant.clone();
        self.with(move |c| {
            c.execute(
                &format!(
                    "INSERT INTO grants ({GRANT_COLUMNS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
                ),
                params![
                    g.id.as_str(),
                    g.subject.as_str(),
                    g.client_id.as_str(),
                    g.scope,
                    g.resource,
                    g.created_at,
                    g.revoked_at,
                    g.upstream.sealed,
                    g.upstream.access_expires_at,
                    g.upstream.version
                ],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn get_grant(&self, id: &GrantId) -> Result<Option<GrantRecord>, StoreError> {
        let id = id.clone();
        self.with(move |c| get_grant_tx(c, id.as_str())).await
    }

    async fn revoke_grant(&self, id: &GrantId, now: UnixMillis) -> Result<bool, StoreError> {
        let id = id.clone();
        self.with(move |c| {
            let tx = c.transaction().map_err(backend)?;
            let was_live = revoke_grant_tx(&tx, id.as_str(), now)?;
            tx.commit().map_err(backend)?;
            Ok(was_live)
        })
        .await
    }

    async fn swap_upstream(
        &self,
        id: &GrantId,
        expected_version: i64,
        upstream: &SealedUpstream,
    ) -> Result<bool, StoreError> {
        let id = id.clone();
        let up = upstream.clone();
        self.with(move |c| {
            let changed = c
                .execute(
                    "UPDATE grants SET upstream = ?3, upstream_expires_at = ?4, upstream_version = ?5
                     WHERE id = ?1 AND upstream_version = ?2 AND revoked_at IS NULL",
                    params![
                        id.as_str(),
                        expected_version,
                        up.sealed,
                        up.access_expires_at,
                        up.version
                    ],
                )
                .map_err(backend)?;
            Ok(changed > 0)
        })
        .await
    }

    async fn lease_upstream_refresh(
        &self,
        id: &GrantId,
        holder: &str,
        now: UnixMillis,
        ttl_ms: i64,
    ) -> Result<bool, StoreError> {
        let id = id.clone();
        let holder = holder.to_owned();
        self.with(move |c| {
            // Insert, or take over a lease that has run out; a live lease of another holder
            // makes the upsert's WHERE false and changes nothing.
            let changed = c
                .execute(
                    "INSERT INTO upstream_leases (grant_id, holder, expires_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT(grant_id) DO UPDATE SET holder = ?2, expires_at = ?3
                     WHERE upstream_leases.expires_at <= ?4 OR upstream_leases.holder = ?2",
                    params![id.as_str(), holder, now + ttl_ms, now],
                )
                .map_err(backend)?;
            Ok(changed > 0)
        })
        .await
    }

    async fn release_upstream_refresh(&self, id: &GrantId, holder: &str) -> Result<(), StoreError> {
        let id = id.clone();
        let holder = holder.to_owned();
        self.with(move |c| {
            c.execute(
                "DELETE FROM upstream_leases WHERE grant_id = ?1 AND holder = ?2",
                params![id.as_str(), holder],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn put_code(&self, code: &CodeRecord) -> Result<(), StoreError> {
        let code = code.clone();
        self.with(move |c| {
            c.execute(
                "INSERT INTO codes (hash, grant_id, data, expires_at, used_at)
                 VALUES (?1, ?2, ?3, ?4, NULL)",
                params![
                    code.hash,
                    code.grant_id.as_str(),
                    to_json(&code)?,
                    code.expires_at
                ],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn take_code(&self, hash: &str, now: UnixMillis) -> Result<TakeCode, StoreError> {
        let hash = hash.to_owned();
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            let row: Option<(String, String, i64, Option<i64>)> = tx
                .query_row(
                    "SELECT grant_id, data, expires_at, used_at FROM codes WHERE hash = ?1",
                    params![hash],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .optional()
                .map_err(backend)?;
            let outcome = match row {
                None => TakeCode::NotFound,
                Some((grant_id, _, _, Some(_))) => {
                    revoke_grant_tx(&tx, &grant_id, now)?;
                    TakeCode::Replayed(GrantId::new(grant_id))
                }
                Some((_, data, expires_at, None)) => {
                    tx.execute(
                        "UPDATE codes SET used_at = ?2 WHERE hash = ?1",
                        params![hash, now],
                    )
                    .map_err(backend)?;
                    let record: CodeRecord = from_json(&data)?;
                    if expires_at > now {
                        TakeCode::Fresh(record)
                    } else {
                        TakeCode::Expired(record)
                    }
                }
            };
            tx.commit().map_err(backend)?;
            Ok(outcome)
        })
        .await
    }

    async fn put_refresh(&self, token: &RefreshRecord) -> Result<(), StoreError> {
        let token = token.clone();
        self.with(move |c| insert_refresh(c, &token)).await
    }

    async fn get_refresh(&self, hash: &str) -> Result<Option<RefreshRecord>, StoreError> {
        let hash = hash.to_owned();
        self.with(move |c| {
            c.query_row(
                "SELECT hash, grant_id, client_id, issued_at, expires_at, rotated_at
                 FROM refresh_tokens WHERE hash = ?1",
                params![hash],
                read_refresh,
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn rotate_refresh(
        &self,
        old_hash: &str,
        client_id: &ClientId,
        new: &RefreshRecord,
        now: UnixMillis,
        grace_ms: i64,
    ) -> Result<RotateOutcome, StoreError> {
        let old_hash = old_hash.to_owned();
        let client_id = client_id.clone();
        let new = new.clone();
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            let old = tx
                .query_row(
                    "SELECT hash, grant_id, client_id, issued_at, expires_at, rotated_at
                     FROM refresh_tokens WHERE hash = ?1",
                    params![old_hash],
                    read_refresh,
                )
                .optional()
                .map_err(backend)?;
            let Some(old) = old else {
                return Ok(RotateOutcome::Invalid);
            };
            if old.client_id != client_id || old.expires_at <= now {
                return Ok(RotateOutcome::Invalid);
            }
            let Some(grant) = get_grant_tx(&tx, old.grant_id.as_str())? else {
                return Ok(RotateOutcome::Invalid);
            };
            if !grant.is_live() {
                return Ok(RotateOutcome::Invalid);
            }
            let successor = RefreshRecord {
                grant_id: old.grant_id.clone(),
                client_id: old.client_id.clone(),
                rotated_at: None,
                ..new
            };
            let outcome = match old.rotated_at {
                None => {
                    tx.execute(
                        "UPDATE refresh_tokens SET rotated_at = ?2 WHERE hash = ?1",
                        params![old_hash, now],
                    )
                    .map_err(backend)?;
                    insert_refresh(&tx, &successor)?;
                    RotateOutcome::Rotated(grant)
                }
                Some(rotated_at) if now - rotated_at <= grace_ms => {
                    insert_refresh(&tx, &successor)?;
                    RotateOutcome::WithinGrace(grant)
                }
                Some(_) => {
                    revoke_grant_tx(&tx, old.grant_id.as_str(), now)?;
                    RotateOutcome::Reused(old.grant_id)
                }
            };
            tx.commit().map_err(backend)?;
            Ok(outcome)
        })
        .await
    }

    async fn put_signing_key(&self, key: &SigningKeyRecord) -> Result<(), StoreError> {
        let key = key.clone();
        self.with(move |c| {
            c.execute(
                "INSERT INTO signing_keys (kid, sealed_private, created_at, retired_at)
                 VALUES (?1, ?2, ?3, ?4)",
                params![key.kid, key.sealed_private, key.created_at, key.retired_at],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError> {
        self.with(|c| {
            let mut stmt = c
                .prepare(
                    "SELECT kid, sealed_private, created_at, retired_at FROM signing_keys
                     ORDER BY created_at",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(SigningKeyRecord {
                        kid: r.get(0)?,
                        sealed_private: r.get(1)?,
                        created_at: r.get(2)?,
                        retired_at: r.get(3)?,
                    })
                })
                .map_err(backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(backend)
        })
        .await
    }

    async fn retire_signing_keys_except(
        &self,
        kid: &str,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        let kid = kid.to_owned();
        self.with(move |c| {
            c.execute(
                "UPDATE signing_keys SET retired_at = ?2 WHERE kid != ?1 AND retired_at IS NULL",
                params![kid, now],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn delete_signing_key(&self, kid: &str) -> Result<(), StoreError> {
        let kid = kid.to_owned();
        self.with(move |c| {
            c.execute("DELETE FROM signing_keys WHERE kid = ?1", params![kid])
                .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn purge(&self, policy: PurgePolicy) -> Result<Purged, StoreError> {
        self.with(move |c| {
            let tx = c.transaction().map_err(backend)?;
            let now = policy.now;
            let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
            let pending = tx
                .execute("DELETE FROM pending_authorizations WHERE expires_at <= ?1", params![now])
                .map_err(backend)?
                + tx.execute("DELETE FROM upstream_logins WHERE expires_at <= ?1", params![now])
                    .map_err(backend)?;
            // Spent codes stay a while after expiry, so a late replay is still recognised.
            let codes = tx
                .execute(
                    "DELETE FROM codes WHERE expires_at <= ?1",
                    params![policy.tombstones_before],
                )
                .map_err(backend)?;
            let refresh = tx
                .execute("DELETE FROM refresh_tokens WHERE expires_at <= ?1", params![now])
                .map_err(backend)?;
            tx.execute("DELETE FROM upstream_leases WHERE expires_at <= ?1", params![now])
                .map_err(backend)?;
            // A grant is gone once revoked long enough ago, or once none of its refresh
            // tokens can be used any more (and no code for it is waiting).
            let grants = tx
                .execute(
                    "DELETE FROM grants WHERE (revoked_at IS NOT NULL AND revoked_at <= ?1)
                     OR (created_at <= ?1
                         AND NOT EXISTS (SELECT 1 FROM refresh_tokens r WHERE r.grant_id = grants.id)
                         AND NOT EXISTS (SELECT 1 FROM codes k WHERE k.grant_id = grants.id))",
                    params![policy.tombstones_before],
                )
                .map_err(backend)?;
            let clients = tx
                .execute(
                    "DELETE FROM clients WHERE last_used_at <= ?1
                     AND NOT EXISTS (SELECT 1 FROM grants g
                                     WHERE g.client_id = clients.id AND g.revoked_at IS NULL)",
                    params![policy.clients_unused_since],
                )
                .map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(Purged {
                clients: count(clients),
                pending: count(pending),
                codes: count(codes),
                refresh_tokens: count(refresh),
                grants: count(grants),
            })
        })
        .await
    }
}
