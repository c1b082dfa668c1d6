//! What a component may import: the koppel host interface, and the WASI interfaces the Rust
//! standard library links, which the runtime grants empty (no variables, no preopened
//! directories, stdio to the log). Anything else (sockets, `wasi:http`, a foreign package) is
//! outside the contract, and the component is refused before it is instantiated, naming the
//! import. `docs/connector-contract.md`, section 7, lists the same table.

/// Interfaces a connector may import, by `package/interface` without the version. The
/// koppel ones must have the contract's version; WASI ones any 0.2 release.
const ALLOWED: &[(&str, &str)] = &[
    // The contract.
    ("koppel:connector", "host"),
    ("koppel:connector", "types"),
    ("koppel:connector", "manifest-types"),
    // Linked by Rust's std on wasm32-wasip2; the runtime gives an empty environment, no
    // arguments, no stdin, and stdout/stderr that go to the log.
    ("wasi:cli", "environment"),
    ("wasi:cli", "exit"),
    ("wasi:cli", "stdin"),
    ("wasi:cli", "stdout"),
    ("wasi:cli", "stderr"),
    ("wasi:cli", "terminal-input"),
    ("wasi:cli", "terminal-output"),
    ("wasi:cli", "terminal-stdin"),
    ("wasi:cli", "terminal-stdout"),
    ("wasi:cli", "terminal-stderr"),
    ("wasi:io", "error"),
    ("wasi:io", "poll"),
    ("wasi:io", "streams"),
    ("wasi:clocks", "wall-clock"),
    ("wasi:clocks", "monotonic-clock"),
    ("wasi:random", "random"),
    ("wasi:random", "insecure"),
    ("wasi:random", "insecure-seed"),
    // Linked by std as soon as any `std::fs` call is compiled in. No directory is preopened,
    // so every path is refused at run time; the import itself is harmless.
    ("wasi:filesystem", "types"),
    ("wasi:filesystem", "preopens"),
];

/// The version of the koppel contract this host implements.
pub const CONTRACT_VERSION: &str = "0.1.1";

/// The contract versions a component may be built against: 0.1.1 added `config-types` and
/// changed nothing else, so a 0.1.0 component's imports are satisfied by 0.1.1's (wasmtime
/// matches `@0.1.0` to `@0.1.1` by semver).
pub const CONTRACT_VERSIONS: &[&str] = &["0.1.0", "0.1.1"];

/// Why one import is outside the contract, for the error message.
fn refusal(name: &str) -> Option<String> {
    let (path, version) = match name.split_once('@') {
        Some((path, version)) => (path, Some(version)),
        None => (name, None),
    };
    let Some((package, interface)) = path.split_once('/') else {
        return Some(format!(
            "`{name}`: a bare import, not an interface of the koppel contract"
        ));
    };
    if !ALLOWED.contains(&(package, interface)) {
        let why = match package {
            "wasi:sockets" => {
                "sockets are not available: the network is reached only through koppel:connector/host's http-send"
            }
            "wasi:http" => {
                "wasi:http is not available: use koppel:connector/host's http-send, which applies the allow-list"
            }
            p if p.starts_with("wasi:") => "this WASI interface is not provided to connectors",
            _ => "a foreign interface the host does not provide",
        };
        return Some(format!("`{name}`: {why}"));
    }
    match (package, version) {
        ("koppel:connector", Some(v)) if CONTRACT_VERSIONS.contains(&v) => None,
        ("koppel:connector", v) => Some(format!(
            "`{name}`: built for contract version {}, this host implements {CONTRACT_VERSION} (and loads {})",
            v.unwrap_or("(none)"),
            CONTRACT_VERSIONS.join(", ")
        )),
        (_, Some(v)) if v.starts_with("0.2.") => None,
        _ => Some(format!(
            "`{name}`: only WASI 0.2 (preview 2) interfaces are provided"
        )),
    }
}

/// Checks a component's import names; the error lists every import outside the contract.
pub fn check<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<(), String> {
    let refused: Vec<String> = names.into_iter().filter_map(refusal).collect();
    if refused.is_empty() {
        return Ok(());
    }
    Err(format!(
        "it imports {} outside the koppel contract (docs/connector-contract.md, rule 7.1): {}",
        if refused.len() == 1 {
            "an interface"
        } else {
            "interfaces"
        },
        refused.join("; ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_contract_and_std_wasi_pass() {
        assert!(
            check([
                "koppel:connector/host@0.1.0",
                "koppel:connector/types@0.1.0",
                "koppel:connector/host@0.1.1",
                "koppel:connector/types@0.1.1",
                "wasi:cli/environment@0.2.0",
                "wasi:io/streams@0.2.6",
                "wasi:filesystem/preopens@0.2.6",
                "wasi:random/insecure-seed@0.2.4",
            ])
            .is_ok()
        );
    }

    #[test]
    fn sockets_http_and_foreign_imports_are_named() {
        let error = check([
            "koppel:connector/host@0.1.0",
            "wasi:sockets/tcp@0.2.6",
            "wasi:http/outgoing-handler@0.2.6",
            "acme:evil/thing",
        ])
        .expect_err("refused");
        for name in [
            "wasi:sockets/tcp@0.2.6",
            "wasi:http/outgoing-handler@0.2.6",
            "acme:evil/thing",
        ] {
            assert!(error.contains(name), "{error}");
        }
        assert!(error.contains("rule 7.1"), "{error}");
    }

    #[test]
    fn another_contract_version_or_wasi_generation_is_refused() {
        assert!(
            check(["koppel:connector/host@0.2.0"])
                .expect_err("version")
                .contains("contract version 0.2.0")
        );
        assert!(
            check(["koppel:connector/host@0.1.2"])
                .expect_err("a later 0.1 release may need what this host lacks")
                .contains("this host implements 0.1.1 (and loads 0.1.0, 0.1.1)")
        );
        assert!(check(["wasi:cli/stdout@0.3.0"]).is_err());
        assert!(check(["bare-function"]).is_err());
    }
}
