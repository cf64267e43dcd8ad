//! Applying `migrations/*.sql` in order, each in its own transaction, versions recorded in
//! `hookd_migrations`. Several processes may start at once: an advisory lock lets one migrate
//! while the others wait and then find nothing to do.

use deadpool_postgres::GenericClient;

use super::{Store, StoreError};

/// One migration file, embedded at build time.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every migration, in order. A test checks this list against the `migrations/` directory.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "0001_core.sql",
        sql: include_str!("../../../migrations/0001_core.sql"),
    },
    Migration {
        version: 2,
        name: "0002_resources.sql",
        sql: include_str!("../../../migrations/0002_resources.sql"),
    },
    Migration {
        version: 3,
        name: "0003_queries.sql",
        sql: include_str!("../../../migrations/0003_queries.sql"),
    },
    Migration {
        version: 4,
        name: "0004_secret_rotation.sql",
        sql: include_str!("../../../migrations/0004_secret_rotation.sql"),
    },
    Migration {
        version: 5,
        name: "0005_queue_autovacuum.sql",
        sql: include_str!("../../../migrations/0005_queue_autovacuum.sql"),
    },
    Migration {
        version: 6,
        name: "0006_retention.sql",
        sql: include_str!("../../../migrations/0006_retention.sql"),
    },
    Migration {
        version: 7,
        name: "0007_circuit_breaker.sql",
        sql: include_str!("../../../migrations/0007_circuit_breaker.sql"),
    },
    Migration {
        version: 8,
        name: "0008_ordered_delivery.sql",
        sql: include_str!("../../../migrations/0008_ordered_delivery.sql"),
    },
    Migration {
        version: 9,
        name: "0009_endpoint_limits.sql",
        sql: include_str!("../../../migrations/0009_endpoint_limits.sql"),
    },
    Migration {
        version: 10,
        name: "0010_fair_queue.sql",
        sql: include_str!("../../../migrations/0010_fair_queue.sql"),
    },
    Migration {
        version: 11,
        name: "0011_delivery_queue.sql",
        sql: include_str!("../../../migrations/0011_delivery_queue.sql"),
    },
    Migration {
        version: 12,
        name: "0012_lease_at_publish.sql",
        sql: include_str!("../../../migrations/0012_lease_at_publish.sql"),
    },
    Migration {
        version: 13,
        name: "0013_lighter_inserts.sql",
        sql: include_str!("../../../migrations/0013_lighter_inserts.sql"),
    },
    Migration {
        version: 14,
        name: "0014_claim_floor.sql",
        sql: include_str!("../../../migrations/0014_claim_floor.sql"),
    },
    Migration {
        version: 15,
        name: "0015_deliveries_fillfactor.sql",
        sql: include_str!("../../../migrations/0015_deliveries_fillfactor.sql"),
    },
];

/// The version the code expects the database to be at.
pub fn latest_version() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// Any integer: it only has to be the same in every hookd process.
const MIGRATION_LOCK_KEY: i64 = 0x686f_6f6b_645f_6d69;

/// Creates the table that records applied versions.
async fn migrations_table_create(client: &impl GenericClient) -> Result<(), StoreError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS hookd_migrations (
                 version    bigint PRIMARY KEY,
                 name       text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now()
             )",
        )
        .await?;
    Ok(())
}

/// Takes the session-level lock that serializes migrators.
async fn migration_lock_acquire(client: &impl GenericClient) -> Result<(), StoreError> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK_KEY])
        .await?;
    Ok(())
}

/// Releases the migrators' lock.
async fn migration_lock_release(client: &impl GenericClient) -> Result<(), StoreError> {
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK_KEY])
        .await?;
    Ok(())
}

/// The highest applied version, or 0; `None` when the migrations table does not exist yet.
pub async fn migration_current_version(store: &Store) -> Result<Option<i64>, StoreError> {
    let client = store.client().await?;
    let row = client
        .query_one(
            "SELECT coalesce(max(version), 0) FROM hookd_migrations",
            &[],
        )
        .await;
    match row {
        Ok(row) => Ok(Some(row.try_get(0)?)),
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Records one applied migration.
async fn migration_record(
    client: &impl GenericClient,
    migration: &Migration,
) -> Result<(), StoreError> {
    client
        .execute(
            "INSERT INTO hookd_migrations (version, name) VALUES ($1, $2)",
            &[&migration.version, &migration.name],
        )
        .await?;
    Ok(())
}

/// The versions already applied.
async fn migrations_applied(client: &impl GenericClient) -> Result<Vec<i64>, StoreError> {
    let rows = client
        .query("SELECT version FROM hookd_migrations ORDER BY version", &[])
        .await?;
    rows.iter()
        .map(|r| r.try_get(0).map_err(StoreError::from))
        .collect()
}

/// Applies every migration not yet applied; returns the names of those it applied.
pub async fn migrate(store: &Store) -> Result<Vec<&'static str>, StoreError> {
    let mut client = store.client().await?;
    migrations_table_create(&client).await?;
    migration_lock_acquire(&client).await?;
    let result = apply_pending(&mut client).await;
    let unlocked = migration_lock_release(&client).await;
    let applied = result?;
    unlocked?;
    Ok(applied)
}

async fn apply_pending(
    client: &mut deadpool_postgres::Object,
) -> Result<Vec<&'static str>, StoreError> {
    let done = migrations_applied(&*client).await?;
    let mut applied = Vec::new();
    for migration in MIGRATIONS.iter().filter(|m| !done.contains(&m.version)) {
        let tx = client.transaction().await?;
        tx.batch_execute(migration.sql).await?;
        migration_record(&tx, migration).await?;
        tx.commit().await?;
        applied.push(migration.name);
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_in_migrations_is_embedded_in_order() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".sql"))
            .collect();
        files.sort();
        let embedded: Vec<&str> = MIGRATIONS.iter().map(|m| m.name).collect();
        assert_eq!(files, embedded);
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i64 + 1);
            assert!(m.name.starts_with(&format!("{:04}_", m.version)));
        }
    }
}
