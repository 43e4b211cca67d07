//! Encrypted config: the test vectors of `docs/design.md`, every key form, the key file, redaction, placeholders.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap in a test is a failed test

use nitejar_core::crypto::{
    load_or_create_key, merge_placeholders, redact, Cipher, CryptoError, Key, KeyOrigin,
    KEY_FILE_NAME, REDACTED,
};
use serde_json::{json, Map, Value};

const KEY_HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
/// The same 32 bytes in base64 (44 characters).
const KEY_BASE64: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const IV: [u8; 16] = [
    0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf,
];
const VECTORS: [(&str, &str); 2] = [
    (
        "123456789:ABCdefGHI",
        "enc:oKGio6SlpqeoqaqrrK2ur5SknTCJX2r4PGRa1+nO2OwbkRCILfv6TvqkXvOucOj2xQ0K",
    ),
    ("", "enc:oKGio6SlpqeoqaqrrK2urwIvhBxwK2awvsgRH2feIh0="),
];

fn cipher(key: &str) -> Cipher {
    Cipher::new(&Key::parse(key).expect("key"))
}

#[test]
fn vectors_encrypt_and_decrypt_with_the_hex_and_base64_key() {
    for key in [KEY_HEX, KEY_BASE64] {
        let cipher = cipher(key);
        for (plain, stored) in VECTORS {
            assert_eq!(cipher.encrypt_with_iv(plain, IV).expect("encrypt"), stored);
            assert_eq!(cipher.decrypt(stored).expect("decrypt"), plain);
        }
    }
}

#[test]
fn a_raw_32_byte_key_is_its_bytes() {
    let raw = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";
    let as_hex = hex_of(raw.as_bytes());
    let stored = cipher(raw).encrypt("hello").expect("encrypt");
    assert_eq!(cipher(&as_hex).decrypt(&stored).expect("decrypt"), "hello");
    assert_eq!(
        Key::parse(raw).expect("raw").to_hex(),
        as_hex,
        "raw bytes, not decoded"
    );
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn random_ivs_differ_and_round_trip() {
    let cipher = cipher(KEY_HEX);
    let a = cipher.encrypt("same").expect("encrypt");
    let b = cipher.encrypt("same").expect("encrypt");
    assert_ne!(a, b);
    assert_eq!(cipher.decrypt(&a).expect("decrypt"), "same");
    assert_eq!(cipher.decrypt(&b).expect("decrypt"), "same");
    let unicode = "ключ 🔑";
    assert_eq!(
        cipher
            .decrypt(&cipher.encrypt(unicode).expect("encrypt"))
            .expect("decrypt"),
        unicode
    );
}

#[test]
fn plain_values_decrypt_to_themselves() {
    assert_eq!(
        cipher(KEY_HEX).decrypt("not secret").expect("plain"),
        "not secret"
    );
}

#[test]
fn a_wrong_key_or_an_altered_value_is_an_error() {
    let (_, stored) = VECTORS[0];
    let other = cipher(&"11".repeat(32));
    assert!(matches!(other.decrypt(stored), Err(CryptoError::Decrypt)));
    let mut altered = stored.to_owned();
    altered.replace_range(40..41, if &stored[40..41] == "A" { "B" } else { "A" });
    assert!(matches!(
        cipher(KEY_HEX).decrypt(&altered),
        Err(CryptoError::Decrypt)
    ));
    assert!(matches!(
        cipher(KEY_HEX).decrypt("enc:c2hvcnQ="),
        Err(CryptoError::MalformedCiphertext(_))
    ));
    assert!(matches!(
        cipher(KEY_HEX).decrypt("enc:%%%"),
        Err(CryptoError::MalformedCiphertext(_))
    ));
}

#[test]
fn malformed_keys_name_the_accepted_forms() {
    let forms = "accepted forms: 64 hex characters, 44 base64 characters, or 32 raw bytes";
    for bad in [
        "short",
        &"zz".repeat(32),                                 // 64 chars, not hex
        "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!",   // 44 chars, not base64
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8AAA", // 46 chars
    ] {
        let message = Key::parse(bad).expect_err(bad).to_string();
        assert!(message.contains(forms), "{message}");
        assert!(
            message.starts_with("ENCRYPTION_KEY is malformed"),
            "{message}"
        );
        assert!(!message.contains(bad), "never echo a key");
    }
    assert_eq!(
        Key::parse("short").expect_err("short").to_string(),
        "ENCRYPTION_KEY is malformed (it is 5 bytes long); accepted forms: 64 hex characters, 44 \
         base64 characters, or 32 raw bytes (generate one with `openssl rand -hex 32`)"
    );
    assert_eq!(
        format!("{:?}", Key::parse(KEY_HEX).expect("key")),
        "Key(..)"
    );
}

#[test]
fn a_missing_key_is_generated_into_the_data_dir_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let (key, origin) = load_or_create_key(None, &data).expect("generate");
    let path = data.join(KEY_FILE_NAME);
    assert_eq!(origin, KeyOrigin::Generated { path: path.clone() });
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert_eq!(
        std::fs::read_to_string(&path).expect("read").trim(),
        key.to_hex()
    );

    // Next start: the same key, from the file; an empty variable counts as unset.
    let (again, origin) = load_or_create_key(Some(""), &data).expect("read");
    assert_eq!(again, key);
    assert_eq!(origin, KeyOrigin::File { path });

    // The variable wins over the file; a malformed variable is an error, never a fallback.
    let (from_env, origin) = load_or_create_key(Some(KEY_HEX), &data).expect("env");
    assert_eq!(
        (from_env.to_hex().as_str(), origin),
        (KEY_HEX, KeyOrigin::Env)
    );
    assert!(matches!(
        load_or_create_key(Some("typo"), &data),
        Err(CryptoError::MalformedKey { .. })
    ));
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

#[test]
fn only_top_level_sensitive_strings_are_encrypted_once() {
    let cipher = cipher(KEY_HEX);
    let sensitive = vec!["token".to_owned(), "port".to_owned()];
    let mut config = object(json!({
        "token": "t0ken",
        "port": 8443,
        "name": "plain",
        "nested": {"token": "nested"},
    }));
    cipher
        .encrypt_config(&mut config, &sensitive)
        .expect("encrypt");
    let token = config["token"].as_str().expect("string").to_owned();
    assert!(token.starts_with("enc:"));
    assert_eq!(config["port"], 8443, "non-strings are left alone");
    assert_eq!(config["name"], "plain");
    assert_eq!(config["nested"]["token"], "nested");
    cipher
        .encrypt_config(&mut config, &sensitive)
        .expect("again");
    assert_eq!(config["token"], token, "never encrypted twice");
    let plain = cipher.decrypt_config(&config, &sensitive).expect("decrypt");
    assert_eq!(plain["token"], "t0ken");
}

#[test]
fn redaction_is_deep() {
    let sensitive = vec!["client_secret".to_owned(), "token".to_owned()];
    let shown = redact(
        &json!({
            "token": "enc:abc",
            "unset": null,
            "client_secret": null,
            "name": "visible",
            "oauth": {"client_secret": "plain but sensitive", "client_id": "id"},
            "list": [{"token": "x"}, "enc:inside-a-list", 3],
            "legacy": "enc:a secret under a name nobody listed",
        }),
        &sensitive,
    );
    assert_eq!(
        shown,
        json!({
            "token": REDACTED,
            "unset": null,
            "client_secret": null,
            "name": "visible",
            "oauth": {"client_secret": REDACTED, "client_id": "id"},
            "list": [{"token": REDACTED}, REDACTED, 3],
            "legacy": REDACTED,
        })
    );
}

#[test]
fn a_placeholder_keeps_the_stored_value() {
    let sensitive = vec!["token".to_owned(), "secret".to_owned()];
    let stored = object(json!({"token": "enc:stored", "name": "old"}));
    let mut incoming = object(json!({"token": REDACTED, "secret": REDACTED, "name": "new"}));
    merge_placeholders(&mut incoming, &stored, &sensitive);
    assert_eq!(
        Value::Object(incoming),
        json!({"token": "enc:stored", "name": "new"})
    );
}
