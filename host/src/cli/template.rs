//! `koppel connector new <name>`: writes a ready-to-build connector crate from the template
//! in `host/templates/connector` (embedded in the binary), which speaks koppel's example API
//! and passes the conformance suite before it is changed.
//!
//! How the crate finds `koppel-sdk`: inside a koppel checkout (a parent folder holds
//! `connectors/sdk`), a path dependency, and the crate is meant to join the workspace; else
//! `--sdk-path DIR` for a local checkout, else the koppel git repository. Outside a checkout
//! the crate is its own workspace, with a size-optimised release profile.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use super::NewArgs;

/// The koppel repository, for crates made outside a checkout.
pub const SDK_GIT: &str = "https://github.com/koppel-dev/koppel";

/// (path in the new crate, template text).
const FILES: &[(&str, &str)] = &[
    (
        "Cargo.toml",
        include_str!("../../templates/connector/Cargo.toml.tmpl"),
    ),
    (
        "rust-toolchain.toml",
        include_str!("../../templates/connector/rust-toolchain.toml.tmpl"),
    ),
    (
        ".gitignore",
        include_str!("../../templates/connector/gitignore.tmpl"),
    ),
    (
        "README.md",
        include_str!("../../templates/connector/README.md.tmpl"),
    ),
    (
        "conformance.toml",
        include_str!("../../templates/connector/conformance.toml.tmpl"),
    ),
    (
        "src/lib.rs",
        include_str!("../../templates/connector/src/lib.rs.tmpl"),
    ),
    (
        "src/api.rs",
        include_str!("../../templates/connector/src/api.rs.tmpl"),
    ),
];

const STANDALONE: &str = "# Its own workspace, wherever it is put.
[workspace]

[profile.release]
# Small, fast components.
opt-level = \"s\"
lto = true
codegen-units = 1
strip = true
panic = \"abort\"
";

/// Where the SDK comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sdk {
    /// Inside a koppel checkout: the crate joins its workspace (`root`).
    Workspace { root: PathBuf, sdk: PathBuf },
    /// A local checkout's `connectors/sdk`, the crate standing alone.
    Path(PathBuf),
    /// The koppel git repository.
    Git,
}

/// What was written.
#[derive(Debug)]
pub struct Created {
    pub dir: PathBuf,
    pub package: String,
    pub wasm: String,
    pub sdk: Sdk,
}

/// A connector id: lower-case letters, digits and `-`, starting with a letter.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = name.len() <= 40
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "connector name {name:?} must be lower-case letters, digits and -, start with a letter and be at most 40 characters: `acme-erp`"
        ))
    }
}

/// The koppel checkout `dir` is in, if any: the nearest ancestor with `connectors/sdk`.
fn checkout_of(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .find(|a| {
            std::fs::read_to_string(a.join("connectors/sdk/Cargo.toml"))
                .is_ok_and(|m| m.contains("name = \"koppel-sdk\""))
                && a.join("wit/connector.wit").is_file()
        })
        .map(Path::to_owned)
}

/// `to` relative to `from` (both absolute), with `/` separators for Cargo.toml.
fn relative(from: &Path, to: &Path) -> String {
    let from: Vec<_> = from.components().collect();
    let to: Vec<_> = to.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> =
        std::iter::repeat_n("..".to_owned(), from.len() - common).collect();
    parts.extend(
        to[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    parts.join("/")
}

fn title_of(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `path` made absolute, without `.` parts (`koppel connector new x` prints `/here/x`).
fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("cannot make {} absolute", path.display()))
}

/// Writes the crate `name` into `parent/name`.
pub fn create(name: &str, parent: &Path, sdk_path: Option<&Path>) -> anyhow::Result<Created> {
    check_name(name).map_err(anyhow::Error::msg)?;
    let parent = absolute(parent)?;
    let dir = parent.join(name);
    if dir.exists() {
        bail!(
            "{} already exists: choose another name or --dir",
            dir.display()
        );
    }
    let sdk = match (sdk_path, checkout_of(&parent)) {
        (Some(path), _) => {
            let path = absolute(path)?;
            if !path.join("Cargo.toml").is_file() {
                bail!(
                    "--sdk-path {}: no Cargo.toml there; give the `connectors/sdk` folder of a koppel checkout",
                    path.display()
                );
            }
            Sdk::Path(path)
        }
        (None, Some(root)) => Sdk::Workspace {
            sdk: root.join("connectors/sdk"),
            root,
        },
        (None, None) => Sdk::Git,
    };
    let dependency = match &sdk {
        Sdk::Workspace { sdk, .. } => {
            format!("koppel-sdk = {{ path = \"{}\" }}", relative(&dir, sdk))
        }
        Sdk::Path(path) => format!(
            "koppel-sdk = {{ path = \"{}\" }}",
            path.display().to_string().replace('\\', "/")
        ),
        Sdk::Git => format!("koppel-sdk = {{ git = \"{SDK_GIT}\", branch = \"main\" }}"),
    };
    let standalone = match sdk {
        Sdk::Workspace { .. } => "",
        _ => STANDALONE,
    };
    let lib = format!("koppel_connector_{}", name.replace('-', "_"));
    let env = name.replace('-', "_").to_ascii_uppercase();
    let title = title_of(name);
    std::fs::create_dir_all(dir.join("src"))
        .with_context(|| format!("cannot create {}", dir.display()))?;
    for (path, text) in FILES {
        let text = text
            .replace("{{name}}", name)
            .replace("{{title}}", &title)
            .replace("{{lib}}", &lib)
            .replace("{{env}}", &env)
            .replace("{{sdk}}", &dependency)
            .replace("{{standalone}}", standalone);
        let file = dir.join(path);
        std::fs::write(&file, text).with_context(|| format!("cannot write {}", file.display()))?;
    }
    Ok(Created {
        wasm: format!("target/wasm32-wasip2/release/{lib}.wasm"),
        package: format!("koppel-connector-{name}"),
        dir,
        sdk,
    })
}

/// True when `dir` is a direct child of the checkout's `connectors/` (the workspace's
/// `connectors/*` member glob).
fn joins_by_glob(root: &Path, dir: &Path) -> bool {
    dir.parent() == Some(root.join("connectors").as_path())
}

pub(super) fn new(args: NewArgs) -> anyhow::Result<()> {
    let created = create(&args.name, &args.dir, args.sdk_path.as_deref())?;
    let shown = created.dir.display();
    println!(
        "Created {shown}: connector `{}` (crate {}).",
        args.name, created.package
    );
    match &created.sdk {
        Sdk::Workspace { root, .. } if joins_by_glob(root, &created.dir) => println!(
            "It is inside the koppel checkout {}: it joins the workspace through `connectors/*`, and koppel's build now builds it too.",
            root.display()
        ),
        Sdk::Workspace { root, .. } => println!(
            "It is inside the koppel checkout {}: add \"{}\" to `members` in its Cargo.toml now (cargo needs every crate of the checkout in the workspace).",
            root.display(),
            relative(root, &created.dir)
        ),
        Sdk::Path(path) => println!("It uses the SDK at {}.", path.display()),
        Sdk::Git => println!("It takes koppel-sdk from {SDK_GIT} (or --sdk-path DIR)."),
    }
    println!(
        "\nNext:\n  cd {shown}\n  cargo test\n  cargo build --target wasm32-wasip2 --release\n  koppel connector test {} --example-api",
        created.wasm
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_with_the_fix() {
        assert!(check_name("acme-erp").is_ok());
        for bad in ["Acme", "1x", "a_b", "", "x-"] {
            assert!(
                check_name(bad).expect_err(bad).contains("acme-erp"),
                "{bad}"
            );
        }
    }

    #[test]
    fn relative_paths_climb_and_descend() {
        assert_eq!(
            relative(
                Path::new("/r/connectors/acme"),
                Path::new("/r/connectors/sdk")
            ),
            "../sdk"
        );
        assert_eq!(relative(Path::new("/r"), Path::new("/r/c/x")), "c/x");
        assert_eq!(title_of("acme-erp"), "Acme Erp");
    }

    #[test]
    fn inside_a_checkout_the_sdk_is_a_path_and_no_workspace_is_declared() {
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(root.path().join("connectors/sdk")).expect("mkdir");
        std::fs::create_dir_all(root.path().join("wit")).expect("mkdir");
        std::fs::write(
            root.path().join("connectors/sdk/Cargo.toml"),
            "[package]\nname = \"koppel-sdk\"\n",
        )
        .expect("write");
        std::fs::write(root.path().join("wit/connector.wit"), "").expect("write");
        let created = create("acme", &root.path().join("connectors"), None).expect("created");
        let manifest = std::fs::read_to_string(created.dir.join("Cargo.toml")).expect("Cargo.toml");
        assert!(
            manifest.contains("koppel-sdk = { path = \"../sdk\" }"),
            "{manifest}"
        );
        assert!(!manifest.contains("[workspace]"), "{manifest}");
        assert!(manifest.contains("name = \"koppel-connector-acme\""));
        let lib = std::fs::read_to_string(created.dir.join("src/lib.rs")).expect("lib.rs");
        assert!(lib.contains("id: \"acme\".into()") && !lib.contains("{{"));
        let Sdk::Workspace { root: found, .. } = &created.sdk else {
            panic!("inside a checkout the SDK is the workspace's");
        };
        assert!(joins_by_glob(found, &created.dir), "connectors/acme");
        assert!(!joins_by_glob(found, &found.join("elsewhere/acme")));
        let again = create("acme", &root.path().join("connectors"), None).expect_err("exists");
        assert!(again.to_string().contains("already exists"));
    }

    #[test]
    fn outside_a_checkout_the_crate_stands_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let created = create("shop-x", dir.path(), None).expect("created");
        let manifest = std::fs::read_to_string(created.dir.join("Cargo.toml")).expect("Cargo.toml");
        assert!(manifest.contains(SDK_GIT) && manifest.contains("[workspace]"));
        assert!(created.dir.join("rust-toolchain.toml").is_file());
        assert_eq!(
            created.wasm,
            "target/wasm32-wasip2/release/koppel_connector_shop_x.wasm"
        );
    }
}
