//! The enrollments as every service sees them: the store (enrollments, groups, registration states), seeded
//! from the configuration, and the trust store that devices are checked against, rebuilt from the store after
//! a change through the service API.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, RwLock};

use crate::config::EmulatorConfig;
use crate::device_auth::{Admitted, Trust};
use crate::records::{self, Kind};
use crate::store::{Store, StoreError};

/// The enrollments as devices are checked against them now: rebuilt from the store after a change.
pub(crate) struct Live {
    pub(crate) trust: Trust,
    disabled_individual: HashSet<String>,
    disabled_groups: HashSet<String>,
}

impl Live {
    /// Whether the enrollment that admitted `registration_id` is disabled.
    pub(crate) fn is_disabled(&self, registration_id: &str, admitted: &Admitted) -> bool {
        match admitted {
            Admitted::X509Group(g) | Admitted::SymmetricGroup(g) => self.disabled_groups.contains(g),
            _ => self.disabled_individual.contains(registration_id),
        }
    }
}

pub(crate) struct Enrollments {
    pub(crate) id_scope: String,
    pub(crate) assigned_hub: String,
    /// Enrollments, groups and registration states.
    pub(crate) store: Store,
    /// The current trust store (`None` after a change: rebuilt at the next device request).
    live: RwLock<Option<Arc<Live>>>,
    /// The trust store replaced last (its TPM challenges go to the next one).
    previous: Mutex<Option<Arc<Live>>>,
}

impl Enrollments {
    /// The enrollments of `store`, seeded with the configuration's: each is copied in when it is new in the
    /// file or changed there since the last copy; otherwise the store's version stands (one deleted or
    /// changed through the API stays so).
    pub(crate) fn new(config: &EmulatorConfig, store: Store) -> Result<Self, crate::Error> {
        // The configuration is checked as before (names the key of a bad enrollment).
        Trust::new(config)?;
        let seed_error = |reason: String| crate::Error::Store {
            path: "(seeding from the configuration)".into(),
            reason,
        };
        store
            .write(|tx| {
                for e in &config.enrollments {
                    let seed = records::from_enrollment(e);
                    let (kind, id) = (seed.kind(), seed.id().to_string());
                    let digest = records::seed_digest(&seed);
                    if tx.seeded_digest(kind, &id)?.as_deref() == Some(digest.as_str()) {
                        continue;
                    }
                    // New in the file, or changed there since it was copied: the file's version wins.
                    let previous = tx.get(kind, &id)?;
                    let record = records::complete(seed, previous.as_ref())
                        .map_err(|m| StoreError(format!("{}: {m}", e.describe())))?;
                    tx.put(&record)?;
                    tx.mark_seeded(kind, &id, &digest)?;
                }
                Ok::<_, StoreError>(())
            })
            .map_err(|e| seed_error(e.0))?;
        let enrollments = Enrollments {
            id_scope: config.id_scope.clone(),
            assigned_hub: config.assigned_hub.clone(),
            store,
            live: RwLock::new(None),
            previous: Mutex::new(None),
        };
        enrollments.build_live(None).map_err(seed_error)?;
        Ok(enrollments)
    }

    /// Forget the trust store after an enrollment change; the next device request rebuilds it.
    pub(crate) fn changed(&self) {
        let mut live = self.live.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(old) = live.take() {
            // Kept for its TPM challenges: the rebuilt store takes them over.
            *lock(&self.previous) = Some(old);
        }
    }

    /// The trust store for device requests (rebuilt from the store after a change).
    pub(crate) fn live(&self) -> Result<Arc<Live>, String> {
        if let Some(live) = self
            .live
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
        {
            return Ok(live.clone());
        }
        let previous = lock(&self.previous).clone();
        self.build_live(previous.as_deref()).inspect_err(|message| {
            tracing::error!(%message, "cannot rebuild the enrollments from the store");
        })
    }

    fn build_live(&self, previous: Option<&Live>) -> Result<Arc<Live>, String> {
        let mut live = self.live.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(l) = live.as_ref() {
            return Ok(l.clone());
        }
        let (individual, groups) = self
            .store
            .read(|tx| Ok::<_, StoreError>((tx.all(Kind::Enrollment)?, tx.all(Kind::Group)?)))
            .map_err(|e| e.0)?;
        let mut config = EmulatorConfig {
            id_scope: self.id_scope.clone(),
            assigned_hub: self.assigned_hub.clone(),
            enrollments: Vec::with_capacity(individual.len() + groups.len()),
        };
        let mut disabled_individual = HashSet::new();
        let mut disabled_groups = HashSet::new();
        for records in [&individual, &groups] {
            for record in records {
                let enrollment = records::to_enrollment(record)?;
                if records::is_disabled(record) {
                    let id = record.id().to_string();
                    match record.kind() {
                        Kind::Enrollment => disabled_individual.insert(id),
                        Kind::Group => disabled_groups.insert(id),
                    };
                }
                config.enrollments.push(enrollment);
            }
        }
        let mut trust = Trust::new(&config).map_err(|e| e.to_string())?;
        if let Some(p) = previous {
            trust.tpm.share_issued(&p.trust.tpm);
        }
        let built = Arc::new(Live {
            trust,
            disabled_individual,
            disabled_groups,
        });
        *live = Some(built.clone());
        Ok(built)
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
