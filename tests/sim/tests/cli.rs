//! The `koppel-sim` command: help, and a clear refusal of an unknown Shopware version.

use std::process::Command;

#[test]
fn help_lists_both_simulators_and_bad_versions_are_refused() {
    let output = Command::new(env!("CARGO_BIN_EXE_koppel-sim"))
        .arg("--help")
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success());
    assert!(
        text.contains("mplus") && text.contains("shopware"),
        "{text}"
    );

    let output = Command::new(env!("CARGO_BIN_EXE_koppel-sim"))
        .args(["shopware", "--version", "5.9"])
        .output()
        .expect("run");
    assert!(!output.status.success());
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(
        text.contains("unknown Shopware version \"5.9\"; use 6.4, 6.5, 6.6 or 6.7"),
        "{text}"
    );
}
