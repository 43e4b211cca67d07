//! The plugin lifecycle end to end, on SQLite and on Postgres: installs from every source, hostile
//! archives, trust modes and signatures, consent, upgrade → rollback → upgrade with hooks observed
//! switching version, boot with a tampered version, the boot marker, safe mode, the crash-loop guard,
//! plugin settings applied without a restart, trust settings changed by another process, doctor's
//! findings, and integration rows untouched by all of it.

#[path = "../nitejar-core/tests/testdb/mod.rs"]
mod testdb;

#[path = "lifecycle/support.rs"]
mod support;

#[path = "lifecycle/sources.rs"]
mod sources;

#[path = "lifecycle/hostile.rs"]
mod hostile;

#[path = "lifecycle/trust.rs"]
mod trust;

#[path = "lifecycle/versions.rs"]
mod versions;

#[path = "lifecycle/consent.rs"]
mod consent;

#[path = "lifecycle/boot.rs"]
mod boot;

#[path = "lifecycle/settings.rs"]
mod settings;

#[path = "lifecycle/doctor.rs"]
mod doctor;
