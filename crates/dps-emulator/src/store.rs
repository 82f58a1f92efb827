//! The durable store of the service API: individual enrollments, enrollment groups and device registration
//! states, each the JSON of its `dps_wire` type as the API answers with it (the whole record, fields the
//! emulator does not model included).
//!
//! SQLite (bundled) in WAL mode with `synchronous=FULL`: every write is a transaction that is on disk before
//! the API answers, so a crash (kill -9, power loss) keeps every acknowledged write and never a half one;
//! concurrent requests are serialised on one connection. Without a state directory the database lives in
//! memory (tests, throwaway runs). The hub keys that TPM registrations' assignments activated are kept too
//! (table `hub_keys`): the emulator's IoT Hub checks those devices' SAS tokens with them.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use dps_wire::service::DeviceRegistrationState;
use rusqlite::{Connection, OptionalExtension, params};
use zeroize::Zeroizing;

use crate::records::{Kind, Record};

use crate::Error;

/// The database file inside the state directory.
pub const STATE_FILE: &str = "dps-emulator.sqlite3";

/// A failed database operation (shown in a 500 answer; names the operation).
#[derive(Debug)]
pub(crate) struct StoreError(pub(crate) String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn failed(op: &str) -> impl FnOnce(rusqlite::Error) -> StoreError + '_ {
    move |e| StoreError(format!("the state store failed {op}: {e}"))
}

pub(crate) struct Store {
    conn: Mutex<Connection>,
}

impl Store {
    /// Open (creating if needed) the store in `dir`, or an in-memory one.
    pub(crate) fn open(dir: Option<&Path>) -> Result<Store, Error> {
        let path = dir.map(|d| d.join(STATE_FILE));
        let store_error = |path: &Option<PathBuf>, reason: String| Error::Store {
            path: path.clone().unwrap_or_else(|| PathBuf::from(":memory:")),
            reason,
        };
        if let (Some(d), Some(p)) = (dir, &path) {
            private_files(d, p).map_err(|e| store_error(&path, e))?;
        }
        let conn = match &path {
            Some(p) => Connection::open(p),
            None => Connection::open_in_memory(),
        }
        .map_err(|e| store_error(&path, e.to_string()))?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             CREATE TABLE IF NOT EXISTS records (
                 kind TEXT NOT NULL, id TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (kind, id)
             ) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS registrations (
                 id TEXT PRIMARY KEY NOT NULL, group_id TEXT, body TEXT NOT NULL
             ) WITHOUT ROWID;
             CREATE INDEX IF NOT EXISTS registrations_by_group ON registrations (group_id, id);
             CREATE TABLE IF NOT EXISTS hub_keys (
                 id TEXT PRIMARY KEY NOT NULL, key TEXT NOT NULL
             ) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS seeds (
                 kind TEXT NOT NULL, id TEXT NOT NULL, digest TEXT NOT NULL, PRIMARY KEY (kind, id)
             ) WITHOUT ROWID;",
        )
        .map_err(|e| store_error(&path, format!("cannot set up the schema: {e}")))?;
        // SQLite gives -wal and -shm the database file's mode; files left by an older version are fixed here.
        if let Some(p) = &path {
            for suffix in ["-wal", "-shm"] {
                let mut side = p.clone().into_os_string();
                side.push(suffix);
                restrict(Path::new(&side), 0o600).map_err(|e| store_error(&path, e))?;
            }
        }
        Ok(Store { conn: Mutex::new(conn) })
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Run `f` in one transaction, committed (and on disk) when it returns `Ok`, rolled back otherwise.
    pub(crate) fn write<R, E: From<StoreError>>(&self, f: impl FnOnce(&Tx<'_>) -> Result<R, E>) -> Result<R, E> {
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(failed("to start a transaction"))?;
        let r = f(&Tx(&tx))?;
        tx.commit().map_err(failed("to commit"))?;
        Ok(r)
    }

    /// Read with the same helpers as a write, without a transaction of its own.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&Tx<'_>) -> R) -> R {
        let conn = self.lock();
        f(&Tx(&conn))
    }
}

/// The store holds enrollment keys and service policy keys: its directory is 0700 and its files 0600 (an
/// existing directory or file with wider rights is narrowed).
fn private_files(dir: &Path, file: &Path) -> Result<(), String> {
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("cannot create the state directory: {e}"))?;
    restrict(dir, 0o700)?;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(file)
        .map_err(|e| format!("cannot create the state file: {e}"))?;
    restrict(file, 0o600)
}

/// Set `path`'s mode to `mode` when it exists and has other bits.
fn restrict(path: &Path, mode: u32) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt as _;
    let current = match std::fs::metadata(path) {
        Ok(m) => m.permissions().mode() & 0o777,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("cannot read the mode of {}: {e}", path.display())),
    };
    if current != mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| format!("cannot set the mode of {} to {mode:o}: {e}", path.display()))?;
    }
    Ok(())
}

/// The operations available inside [`Store::write`] and [`Store::read`].
pub(crate) struct Tx<'a>(&'a Connection);

fn parse_record(kind: Kind) -> impl Fn(String) -> Result<Record, StoreError> {
    move |body| {
        serde_json::from_str(&body)
            .map_err(|e| e.to_string())
            .and_then(|v| Record::from_value(kind, v).map_err(|e| e.to_string()))
            .map_err(|e| StoreError(format!("a stored {} record does not read: {e}", kind.tag())))
    }
}

fn parse_state(body: String) -> Result<DeviceRegistrationState, StoreError> {
    serde_json::from_str(&body).map_err(|e| StoreError(format!("a stored registration state does not read: {e}")))
}

fn to_text(what: &str, value: &impl serde::Serialize) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError(format!("cannot write {what} as JSON: {e}")))
}

impl Tx<'_> {
    pub(crate) fn get(&self, kind: Kind, id: &str) -> Result<Option<Record>, StoreError> {
        self.0
            .query_row(
                "SELECT body FROM records WHERE kind = ?1 AND id = ?2",
                params![kind.tag(), id],
                |r| r.get::<_, String>(0),
            )
            .optional()
            .map_err(failed("to read a record"))?
            .map(parse_record(kind))
            .transpose()
    }

    /// Store `record` under its kind and id.
    pub(crate) fn put(&self, record: &Record) -> Result<(), StoreError> {
        let body = to_text("a record", record)?;
        self.0
            .execute(
                "INSERT OR REPLACE INTO records (kind, id, body) VALUES (?1, ?2, ?3)",
                params![record.kind().tag(), record.id(), body],
            )
            .map_err(failed("to write a record"))?;
        Ok(())
    }

    /// Delete a record; `false` when there was none.
    pub(crate) fn delete(&self, kind: Kind, id: &str) -> Result<bool, StoreError> {
        let n = self
            .0
            .execute(
                "DELETE FROM records WHERE kind = ?1 AND id = ?2",
                params![kind.tag(), id],
            )
            .map_err(failed("to delete a record"))?;
        Ok(n > 0)
    }

    /// Up to `limit` records with ids after `after`, in id order.
    pub(crate) fn page(&self, kind: Kind, after: Option<&str>, limit: usize) -> Result<Vec<Record>, StoreError> {
        let mut stmt = self
            .0
            .prepare_cached("SELECT body FROM records WHERE kind = ?1 AND id > ?2 ORDER BY id LIMIT ?3")
            .map_err(failed("to query records"))?;
        let rows = stmt
            .query_map(
                params![
                    kind.tag(),
                    after.unwrap_or(""),
                    i64::try_from(limit).unwrap_or(i64::MAX)
                ],
                |r| r.get::<_, String>(0),
            )
            .map_err(failed("to query records"))?;
        let mut out = Vec::new();
        for row in rows {
            out.push(parse_record(kind)(row.map_err(failed("to query records"))?)?);
        }
        Ok(out)
    }

    /// Every record of a kind (to build the trust store).
    pub(crate) fn all(&self, kind: Kind) -> Result<Vec<Record>, StoreError> {
        self.page(kind, None, usize::MAX)
    }

    /// The digest of the configuration file's enrollment `id` when it was last copied into the store: the
    /// same digest at the next start means the file did not change it (so one deleted or changed through
    /// the API stays so).
    pub(crate) fn seeded_digest(&self, kind: Kind, id: &str) -> Result<Option<String>, StoreError> {
        self.0
            .query_row(
                "SELECT digest FROM seeds WHERE kind = ?1 AND id = ?2",
                params![kind.tag(), id],
                |r| r.get::<_, String>(0),
            )
            .optional()
            .map_err(failed("to read the seed list"))
    }

    pub(crate) fn mark_seeded(&self, kind: Kind, id: &str, digest: &str) -> Result<(), StoreError> {
        self.0
            .execute(
                "INSERT OR REPLACE INTO seeds (kind, id, digest) VALUES (?1, ?2, ?3)",
                params![kind.tag(), id, digest],
            )
            .map_err(failed("to write the seed list"))?;
        Ok(())
    }

    pub(crate) fn registration(&self, id: &str) -> Result<Option<DeviceRegistrationState>, StoreError> {
        self.0
            .query_row("SELECT body FROM registrations WHERE id = ?1", params![id], |r| {
                r.get::<_, String>(0)
            })
            .optional()
            .map_err(failed("to read a registration state"))?
            .map(parse_state)
            .transpose()
    }

    /// The registration id and state of the registration whose assignment gave it device id `device_id`
    /// (the latest, should several).
    pub(crate) fn registration_of_device(
        &self,
        device_id: &str,
    ) -> Result<Option<(String, DeviceRegistrationState)>, StoreError> {
        self.0
            .query_row(
                "SELECT id, body FROM registrations WHERE json_extract(body, '$.deviceId') = ?1 \
                 ORDER BY json_extract(body, '$.lastUpdatedDateTimeUtc') DESC LIMIT 1",
                params![device_id],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
            )
            .optional()
            .map_err(failed("to find the registration of a device id"))?
            .map(|(id, body)| parse_state(body).map(|state| (id, state)))
            .transpose()
    }

    pub(crate) fn put_registration(
        &self,
        id: &str,
        group: Option<&str>,
        state: &DeviceRegistrationState,
    ) -> Result<(), StoreError> {
        let body = to_text("a registration state", state)?;
        self.0
            .execute(
                "INSERT OR REPLACE INTO registrations (id, group_id, body) VALUES (?1, ?2, ?3)",
                params![id, group, body],
            )
            .map_err(failed("to write a registration state"))?;
        Ok(())
    }

    pub(crate) fn delete_registration(&self, id: &str) -> Result<bool, StoreError> {
        let n = self
            .0
            .execute("DELETE FROM registrations WHERE id = ?1", params![id])
            .map_err(failed("to delete a registration state"))?;
        self.put_hub_key(id, None)?;
        Ok(n > 0)
    }

    /// Record (or with `None` forget) the hub key a TPM registration's assignment activated: the key its
    /// device signs hub SAS tokens with (kept base64, beside the enrollment keys the store already holds).
    pub(crate) fn put_hub_key(&self, id: &str, key: Option<&[u8]>) -> Result<(), StoreError> {
        match key {
            Some(key) => {
                let text = Zeroizing::new(B64.encode(key));
                self.0
                    .execute(
                        "INSERT OR REPLACE INTO hub_keys (id, key) VALUES (?1, ?2)",
                        params![id, text.as_str()],
                    )
                    .map_err(failed("to write a hub key"))?;
            }
            None => {
                self.0
                    .execute("DELETE FROM hub_keys WHERE id = ?1", params![id])
                    .map_err(failed("to delete a hub key"))?;
            }
        }
        Ok(())
    }

    /// The hub key the last assignment of TPM registration `id` activated, if any.
    pub(crate) fn hub_key(&self, id: &str) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        let text = self
            .0
            .query_row("SELECT key FROM hub_keys WHERE id = ?1", params![id], |r| {
                r.get::<_, String>(0)
            })
            .optional()
            .map_err(failed("to read a hub key"))?;
        let Some(text) = text.map(Zeroizing::new) else {
            return Ok(None);
        };
        B64.decode(text.as_str())
            .map(|k| Some(Zeroizing::new(k)))
            .map_err(|e| StoreError(format!("the stored hub key of '{id}' is not base64: {e}")))
    }

    /// Up to `limit` registration states of devices admitted by group `group`, ids after `after`.
    pub(crate) fn registrations_of(
        &self,
        group: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<DeviceRegistrationState>, StoreError> {
        let mut stmt = self
            .0
            .prepare_cached("SELECT body FROM registrations WHERE group_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3")
            .map_err(failed("to query registration states"))?;
        let rows = stmt
            .query_map(
                params![group, after.unwrap_or(""), i64::try_from(limit).unwrap_or(i64::MAX)],
                |r| r.get::<_, String>(0),
            )
            .map_err(failed("to query registration states"))?;
        let mut out = Vec::new();
        for row in rows {
            out.push(parse_state(row.map_err(failed("to query registration states"))?)?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hub_key_is_kept_replaced_and_deleted_with_its_registration() {
        let store = Store::open(None).unwrap();
        let key = |store: &Store| store.read(|tx| tx.hub_key("r")).unwrap().map(|k| k.to_vec());
        store.write(|tx| tx.put_hub_key("r", Some(b"first"))).unwrap();
        store.write(|tx| tx.put_hub_key("r", Some(b"second"))).unwrap();
        assert_eq!(key(&store), Some(b"second".to_vec()));
        assert_eq!(store.read(|tx| tx.hub_key("other")).unwrap(), None);
        store.write(|tx| tx.delete_registration("r")).unwrap();
        assert_eq!(key(&store), None, "deleting the registration state deletes its hub key");
    }
}
