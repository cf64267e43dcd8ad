//! Which app an API key belongs to, remembered for a moment: a publish would otherwise pay a
//! query for its key on every request (a tenth of PostgreSQL's time under single-event ingest).
//!
//! What it promises: a key revoked, or an app deleted, through this process fails from its next
//! request on (the caller forgets the app's keys here); through another process, it fails within
//! [`KEY_CACHE_TTL`]. Unknown and revoked keys are never remembered, so a key created anywhere
//! works at once and a wrong key always costs its query. Managing keys goes to the database
//! every time (the API's `app_of_uncached`), so that a key revoked elsewhere cannot mint a
//! lasting one in its last second.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::ids::AppId;
use crate::secret::ApiKey;
use crate::store::{Store, StoreError, apps};

/// How long a found key is taken on trust. Long enough that a busy client's requests share one
/// lookup a second, short enough to be the whole of a revocation's delay on other nodes.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(1);

/// Keys remembered at most; past it, the expired ones go, and all of them if none has expired
/// (a flood of distinct valid keys then costs a query each, as it would without the cache).
const KEY_CACHE_CAPACITY: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Found {
    app_id: AppId,
    /// When the lookup that found it began: expiry counts from before the database answered.
    found_at: Instant,
}

/// Found keys by the SHA-256 of the key, as `api_keys` stores it.
#[derive(Debug, Default)]
pub struct KeyCache {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    found: HashMap<[u8; 32], Found>,
    /// Counts [`KeyCache::forget_app`] calls: a lookup that began before one may have read the
    /// key before its revocation committed, and must not put it back.
    forgets: u64,
}

impl KeyCache {
    /// The app whose live key this is, from memory when found within the last
    /// [`KEY_CACHE_TTL`], else from the database.
    pub async fn app_of(&self, store: &Store, key: &ApiKey) -> Result<Option<AppId>, StoreError> {
        let hash = key.hash();
        let now = Instant::now();
        let forgets = {
            let state = self.lock_state();
            if let Some(found) = state.found.get(&hash)
                && now.duration_since(found.found_at) < KEY_CACHE_TTL
            {
                return Ok(Some(found.app_id));
            }
            state.forgets
        };
        let app_id = apps::api_key_find_app(store, key).await?;
        let mut state = self.lock_state();
        match app_id {
            Some(app_id) if state.forgets == forgets => {
                if state.found.len() >= KEY_CACHE_CAPACITY {
                    state
                        .found
                        .retain(|_, f| now.duration_since(f.found_at) < KEY_CACHE_TTL);
                    if state.found.len() >= KEY_CACHE_CAPACITY {
                        state.found.clear();
                    }
                }
                state.found.insert(
                    hash,
                    Found {
                        app_id,
                        found_at: now,
                    },
                );
            }
            Some(_) => {}
            None => {
                state.found.remove(&hash);
            }
        }
        Ok(app_id)
    }

    /// Forgets the app's keys when the returned guard drops. Take it before revoking a key or
    /// deleting the app and hold it across: the keys are forgotten after the statement however
    /// it ends, even when its answer is lost or the request is dropped while it runs.
    pub fn forget_app_after(&self, app_id: AppId) -> ForgetApp<'_> {
        ForgetApp {
            cache: self,
            app_id,
        }
    }

    /// Forgets every key of the app, after one of them was revoked or the app was deleted: the
    /// cache knows keys by hash only, so it cannot tell which went.
    pub fn forget_app(&self, app_id: AppId) {
        let mut state = self.lock_state();
        state.forgets += 1;
        state.found.retain(|_, f| f.app_id != app_id);
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, State> {
        // Nothing that holds the lock can leave the map half-changed.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Forgets an app's keys when dropped (see [`KeyCache::forget_app_after`]).
#[derive(Debug)]
#[must_use = "the keys are forgotten when this drops: hold it across the statement"]
pub struct ForgetApp<'a> {
    cache: &'a KeyCache,
    app_id: AppId,
}

impl Drop for ForgetApp<'_> {
    fn drop(&mut self) {
        self.cache.forget_app(self.app_id);
    }
}
