//! The data directory is the server's alone: it is made private (0700) with a private database
//! (0600, with its -wal and -shm), and a second server on it refuses to start, naming the first.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap in a test is a failed test
#![cfg(unix)]

mod support;

use std::os::unix::fs::PermissionsExt as _;

use support::admin::*;
use support::*;

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn the_data_directory_and_database_are_private_and_held_by_one_server() {
    let data = DataDir::new();
    std::fs::set_permissions(&data.path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let server = start_admin(&data, &[]);
    assert_eq!(mode(&data.path), 0o700, "the data directory");
    let db = data.path.join("nitejar.db");
    assert_eq!(mode(&db), 0o600, "a new database");
    drop(server);

    // An existing database left readable by others (an earlier release created it 0644).
    for file in ["nitejar.db", "nitejar.db-wal", "nitejar.db-shm"] {
        let path = data.path.join(file);
        if path.exists() {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        }
    }
    std::fs::set_permissions(&data.path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let server = start_admin(&data, &[]);
    assert_eq!(mode(&data.path), 0o700);
    for file in ["nitejar.db", "nitejar.db-wal", "nitejar.db-shm"] {
        let path = data.path.join(file);
        if path.exists() {
            assert_eq!(mode(&path), 0o600, "{file}");
        }
    }
    assert!(server.log().contains("narrowed"), "{}", server.log());

    // A second server on the same data directory refuses to start and says which process has it.
    let second = std::process::Command::new(env!("CARGO_BIN_EXE_nitejar"))
        .arg("serve")
        .env_clear()
        .env("PORT", free_port().to_string())
        .env("NITEJAR_BIND", "127.0.0.1")
        .env("NITEJAR_DATA_DIR", &data.path)
        .env("ENCRYPTION_KEY", KEY_HEX)
        .env("NITEJAR_ADMIN_TOKEN", ADMIN_TOKEN)
        .output()
        .expect("run a second server");
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("another nitejar server is running on the data directory")
            && stderr.contains(&format!("pid {}", server.pid())),
        "{stderr}"
    );
}

/// A data directory the server cannot write (a host directory mounted into the container, owned by
/// another user) stops it at start with the uid it runs as and the fix — not a bare "Permission
/// denied" from somewhere later.
#[test]
fn a_data_directory_of_another_user_is_named_with_the_fix() {
    use std::os::unix::fs::MetadataExt as _;
    let data = DataDir::new();
    let mine = std::fs::metadata("/proc/self").expect("/proc/self").uid();
    let mut cmd = if mine == 0 {
        // Root writes anywhere: run the server as `nobody` against a directory root keeps.
        let mut c = std::process::Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_nitejar"));
        c
    } else {
        std::fs::set_permissions(&data.path, std::fs::Permissions::from_mode(0o500))
            .expect("chmod");
        std::process::Command::new(env!("CARGO_BIN_EXE_nitejar"))
    };
    let out = cmd
        .arg("serve")
        .env_clear()
        .env("PORT", free_port().to_string())
        .env("NITEJAR_BIND", "127.0.0.1")
        .env("NITEJAR_DATA_DIR", &data.path)
        .env("ENCRYPTION_KEY", KEY_HEX)
        .output()
        .expect("run the server");
    std::fs::set_permissions(&data.path, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let uid = if mine == 0 { 65534 } else { mine };
    assert!(
        stderr.contains(&format!(
            "this server runs as uid {uid} and cannot write in"
        )) && stderr.contains(&format!("chown -R {uid}")),
        "{stderr}"
    );
}
