//! `DATABASE_URL` forms: a path, a `sqlite:` URL, an in-memory database, a Postgres URL.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap in a test is a failed test

mod testdb;

use nitejar_core::store::{self, Backend, NewIntegration, StoreError};

#[test]
fn the_url_names_the_backend() {
    assert_eq!(Backend::of_url("postgres://u@h/db"), Backend::Postgres);
    assert_eq!(Backend::of_url("postgresql://u@h/db"), Backend::Postgres);
    assert_eq!(
        Backend::of_url("sqlite://./data/nitejar.db"),
        Backend::Sqlite
    );
    assert_eq!(Backend::of_url("/app/data/nitejar.db"), Backend::Sqlite);
}

#[tokio::test]
async fn a_sqlite_url_creates_the_file_and_its_directories() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("nested/data/nitejar.db");
    let url = format!("sqlite://{}", path.display());
    let store = store::open(&url, testdb::cipher()).await.expect("open");
    assert_eq!(store.backend(), Backend::Sqlite);
    assert!(path.exists());
    store
        .create_integration(
            NewIntegration::new("telegram", "bot", Default::default()),
            &[],
        )
        .await
        .expect("write");
    store.close().await.expect("close");
    let again = store::open(&path.display().to_string(), testdb::cipher())
        .await
        .expect("the plain path opens the same file");
    assert_eq!(again.list_integrations(None).await.expect("list").len(), 1);
}

#[tokio::test]
async fn an_in_memory_database_keeps_its_rows_across_calls() {
    let store = store::open("sqlite::memory:", testdb::cipher())
        .await
        .expect("open");
    store
        .create_integration(
            NewIntegration::new("telegram", "bot", Default::default()),
            &[],
        )
        .await
        .expect("write");
    assert_eq!(store.list_integrations(None).await.expect("list").len(), 1);
}

#[tokio::test]
async fn unusable_urls_say_why_without_the_password() {
    let err = store::open("", testdb::cipher())
        .await
        .err()
        .expect("empty");
    assert!(matches!(err, StoreError::BadUrl { .. }), "{err}");

    // A malformed port: refused before any connection, and the message masks the password.
    let err = store::open(
        "postgres://app:hunter2@127.0.0.1:port/nitejar",
        testdb::cipher(),
    )
    .await
    .err()
    .expect("bad port");
    let message = err.to_string();
    assert!(matches!(err, StoreError::BadUrl { .. }), "{message}");
    assert!(
        message.starts_with("DATABASE_URL postgres://app:***@127.0.0.1:port/nitejar is not usable"),
        "{message}"
    );
    assert!(!message.contains("hunter2"));
}
