//! The schema migrations (`app/migrations/*.sql`), embedded in the executable and handed to sqlx's
//! migrator at run time.
//!
//! sqlx's `migrate!` macro would embed them too, but it makes sqlx's macro crate compile the whole of
//! sqlx once more for the build machine (both drivers, rustls, tokio): about a minute of CPU in every
//! cold build of the app, the image builds among them. The migrations here are read the way sqlx
//! reads a folder (`sqlx_core::migrate::resolve_blocking`, which the macro uses too): the version
//! before the first `_`, the rest of the name without `.sql` and with `_` as spaces as the
//! description, the checksum over the file's text, `-- no-transaction` on the first line to run
//! without a transaction. A database migrated by an earlier build validates against these; a
//! unit test compares them with what sqlx resolves from the folder.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;

use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};

/// Every file of `app/migrations`, by name (`build.rs` rebuilds the app when one changes).
const FILES: &[(&str, &str)] =
    &[("20250101000000_init.sql", include_str!("../migrations/20250101000000_init.sql"))];

type Resolved = Result<Vec<Migration>, BoxDynError>;

/// The embedded migrations as a sqlx migration source.
#[derive(Debug, Clone, Copy)]
struct Embedded;

impl MigrationSource<'static> for Embedded {
    fn resolve(self) -> Pin<Box<dyn Future<Output = Resolved> + Send>> {
        Box::pin(async move { FILES.iter().map(|(name, sql)| migration(name, sql)).collect() })
    }
}

/// One migration from its file name and text, as sqlx reads a migrations folder.
fn migration(name: &str, sql: &'static str) -> Result<Migration, BoxDynError> {
    let Some((version, rest)) = name.split_once('_').filter(|(_, r)| r.ends_with(".sql")) else {
        return Err(format!("migration {name:?}: expected <VERSION>_<DESCRIPTION>.sql").into());
    };
    let version: i64 =
        version.parse().map_err(|_| format!("migration {name:?}: version is not an integer"))?;
    let kind = MigrationType::from_filename(rest);
    let description = rest.trim_end_matches(kind.suffix()).replace('_', " ");
    let no_tx = sql.starts_with("-- no-transaction");
    Ok(Migration::new(version, Cow::Owned(description), kind, Cow::Borrowed(sql), no_tx))
}

/// The app's migrator: the embedded migrations; applied migrations it does not know (another tool
/// sharing the database) are tolerated.
pub async fn migrator() -> Result<Migrator, sqlx::migrate::MigrateError> {
    let mut m = Migrator::new(Embedded).await?;
    m.set_ignore_missing(true);
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn embedded_migrations_are_what_sqlx_reads_from_the_folder() {
        let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let mut from_folder =
            Migrator::new(folder.as_path()).await.unwrap().iter().cloned().collect::<Vec<_>>();
        from_folder.sort_by_key(|m| m.version);
        let embedded = migrator().await.unwrap().iter().cloned().collect::<Vec<_>>();
        assert!(!embedded.is_empty());
        let key = |m: &Migration| {
            (m.version, m.description.to_string(), m.sql.to_string(), m.checksum.to_vec(), m.no_tx)
        };
        assert_eq!(
            embedded.iter().map(key).collect::<Vec<_>>(),
            from_folder.iter().map(key).collect::<Vec<_>>(),
            "every file of app/migrations is listed in FILES, unchanged"
        );
        assert!(embedded.iter().all(|m| m.migration_type == MigrationType::Simple));
        assert_eq!(embedded[0].description, "init");
    }

    #[test]
    fn a_misnamed_migration_is_refused_with_its_name() {
        let e = migration("init.sql", "SELECT 1").unwrap_err().to_string();
        assert!(e.contains("init.sql"), "{e}");
        let e = migration("v1_init.sql", "SELECT 1").unwrap_err().to_string();
        assert!(e.contains("not an integer"), "{e}");
        let m = migration("7_add_things.sql", "-- no-transaction\nSELECT 1").unwrap();
        assert_eq!((m.version, m.description.as_ref(), m.no_tx), (7, "add things", true));
    }
}
