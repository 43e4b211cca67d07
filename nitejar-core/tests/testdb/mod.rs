//! Real databases for the store tests: a SQLite file in a temp dir, or a Postgres database of its own
//! on 127.0.0.1:5432 (`NITEJAR_TEST_POSTGRES_URL` overrides the maintenance URL), dropped afterwards —
//! also when the test panics.

#![allow(dead_code)] // each test binary uses a different part

use std::sync::Arc;

use nitejar_core::crypto::{Cipher, Key};
use nitejar_core::store::{self, Store};
use sqlx::{Connection, PgConnection, SqliteConnection};

/// The key every test store encrypts with (the key of the test vectors in `docs/design.md`).
pub const KEY_HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

pub fn cipher() -> Cipher {
    match Key::parse(KEY_HEX) {
        Ok(key) => Cipher::new(&key),
        Err(e) => panic!("test key: {e}"),
    }
}

fn postgres_admin_url() -> String {
    std::env::var("NITEJAR_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// `url` with its database name replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let (scheme, rest) = base.split_once("://").unwrap_or(("postgres", base));
    let authority = rest.split('/').next().unwrap_or(rest);
    format!("{scheme}://{authority}/{name}{query}")
}

pub enum TestDb {
    Sqlite {
        dir: tempfile::TempDir,
        url: String,
    },
    Postgres {
        admin_url: String,
        name: String,
        url: String,
    },
}

impl TestDb {
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = dir.path().join("nitejar.db").display().to_string();
        TestDb::Sqlite { dir, url }
    }

    pub async fn postgres() -> TestDb {
        let admin_url = postgres_admin_url();
        let name = format!(
            "nitejar_test_{}_{}",
            std::process::id(),
            uuid::Uuid::now_v7().simple()
        );
        let mut admin = PgConnection::connect(&admin_url).await.unwrap_or_else(|e| {
            panic!(
                "Postgres at {admin_url} is not reachable ({e}); start it with \
                 `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` or set \
                 NITEJAR_TEST_POSTGRES_URL"
            )
        });
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut admin)
            .await
            .expect("create test database");
        admin.close().await.ok();
        let url = with_database(&admin_url, &name);
        TestDb::Postgres {
            admin_url,
            name,
            url,
        }
    }

    pub fn url(&self) -> &str {
        match self {
            TestDb::Sqlite { url, .. } | TestDb::Postgres { url, .. } => url,
        }
    }

    /// Opens the store the way the server does.
    pub async fn open(&self) -> Arc<dyn Store> {
        match store::open(self.url(), cipher()).await {
            Ok(store) => store,
            Err(e) => panic!("open {}: {e}", self.url()),
        }
    }

    /// Runs raw SQL on a connection of its own (to break or inspect the database behind the store).
    pub async fn exec(&self, sql: &str) {
        match self {
            TestDb::Sqlite { url, .. } => {
                let mut c = SqliteConnection::connect(&format!("sqlite://{url}"))
                    .await
                    .expect("sqlite connect");
                sqlx::raw_sql(sql).execute(&mut c).await.expect(sql);
                c.close().await.ok();
            }
            TestDb::Postgres { url, .. } => {
                let mut c = PgConnection::connect(url).await.expect("pg connect");
                sqlx::raw_sql(sql).execute(&mut c).await.expect(sql);
                c.close().await.ok();
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let TestDb::Postgres {
            admin_url, name, ..
        } = self
        else {
            return; // the temp dir removes itself
        };
        let (admin_url, name) = (admin_url.clone(), name.clone());
        // Drop runs outside async (and maybe while unwinding): drop the database from a thread with a
        // runtime of its own.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                let mut admin = PgConnection::connect(&admin_url).await?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .execute(&mut admin)
                    .await?;
                admin.close().await
            })
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("could not drop test database: {e}");
        }
    }
}

/// Generates one `#[tokio::test]` per backend for each listed `async fn(TestDb)`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::testdb::TestDb::sqlite()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::testdb::TestDb::postgres().await).await;
                }
            )*
        }
    };
}
