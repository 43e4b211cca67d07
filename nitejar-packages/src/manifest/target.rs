//! Target triples: which library of a per-target `entry` this server loads.

/// The Rust target triple of the running binary, as `rustc` spells it for the common targets
/// (`x86_64-unknown-linux-gnu`, `aarch64-apple-darwin`, `x86_64-pc-windows-msvc`,
/// `aarch64-unknown-linux-musl`, ...). This is the key looked up in a per-target `entry`.
///
/// It is assembled from the compile-time `cfg` values, because the standard library does not expose
/// the triple itself; exotic targets whose triple carries more than arch, vendor, OS, environment and
/// ABI may be spelt differently from `rustc`.
///
/// ```
/// let triple = nitejar_packages::manifest::current_target_triple();
/// assert!(triple.starts_with(std::env::consts::ARCH) || triple.starts_with("i686"));
/// ```
pub fn current_target_triple() -> String {
    let arch = match std::env::consts::ARCH {
        "x86" => "i686",
        "riscv64" => "riscv64gc",
        other => other,
    };
    let vendor = if cfg!(target_vendor = "apple") {
        "apple"
    } else if cfg!(target_vendor = "pc") {
        "pc"
    } else {
        "unknown"
    };
    let os = match std::env::consts::OS {
        "macos" => "darwin",
        other => other,
    };
    let env = if cfg!(target_env = "gnu") {
        "gnu"
    } else if cfg!(target_env = "musl") {
        "musl"
    } else if cfg!(target_env = "msvc") {
        "msvc"
    } else {
        ""
    };
    let abi = if cfg!(target_abi = "eabihf") {
        "eabihf"
    } else if cfg!(target_abi = "eabi") {
        "eabi"
    } else {
        ""
    };
    let mut triple = format!("{arch}-{vendor}-{os}");
    if !env.is_empty() || !abi.is_empty() {
        triple.push('-');
        triple.push_str(env);
        triple.push_str(abi);
    }
    triple
}

/// Whether `key` has the shape of a target triple: three or four `-`-separated parts of `a-z`, `0-9`
/// and `_` (`arch-vendor-os[-env]`). The same rule as the schema's `propertyNames` for `entry`.
pub(super) fn is_target_triple(key: &str) -> bool {
    let parts: Vec<&str> = key.split('-').collect();
    (3..=4).contains(&parts.len())
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_running_triple_has_the_shape_of_a_triple() {
        let triple = current_target_triple();
        assert!(is_target_triple(&triple), "{triple}");
        #[cfg(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu"))]
        assert_eq!(triple, "x86_64-unknown-linux-gnu");
    }

    #[test]
    fn triples_have_three_or_four_parts() {
        for ok in [
            "x86_64-unknown-linux-gnu",
            "aarch64-apple-darwin",
            "x86_64-pc-windows-msvc",
            "armv7-unknown-linux-gnueabihf",
            "wasm32-unknown-unknown",
        ] {
            assert!(is_target_triple(ok), "{ok}");
        }
        for bad in [
            "linux",
            "x86_64-linux",
            "X86_64-unknown-linux-gnu",
            "a-b-c-d-e",
            "a--b-c",
        ] {
            assert!(!is_target_triple(bad), "{bad}");
        }
    }
}
