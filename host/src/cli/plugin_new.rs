//! `leasehold plugin new NAME`: a plugin crate of its own, ready to test.
//!
//! The templates live in `templates/` at the repository's root and are compiled
//! into the binary, so a new plugin can be started with nothing but `leasehold`.
//! Each is a standalone crate (its own `[workspace]`) depending on the SDK, with a
//! provider, a small local service written on Python's standard library, and
//! harness tests that pass as generated against that service.

use std::path::{Path, PathBuf};

/// One file of a template: where it goes in the new crate, and its text.
struct TemplateFile {
    path: &'static str,
    text: &'static str,
    executable: bool,
}

macro_rules! template_file {
    ($template:literal, $path:literal, $out:literal) => {
        template_file!($template, $path, $out, false)
    };
    ($template:literal, $path:literal, $out:literal, $executable:literal) => {
        TemplateFile {
            path: $out,
            text: include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../templates/",
                $template,
                "/",
                $path
            )),
            executable: $executable,
        }
    };
}

/// The kind of target a template talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Template {
    /// An in-house service with an HTTP user API (the plugin uses the SDK's HTTP
    /// client and is granted the service's origin).
    Http,
    /// A service with its own protocol over TCP (the plugin opens a socket and is
    /// granted the service's host and port).
    Tcp,
}

impl Template {
    fn files(self) -> Vec<TemplateFile> {
        match self {
            Template::Http => vec![
                template_file!("http", "Cargo.toml.tmpl", "Cargo.toml"),
                template_file!("http", "README.md.tmpl", "README.md"),
                template_file!("http", "src/lib.rs", "src/lib.rs"),
                template_file!("http", "tests/plugin.rs", "tests/plugin.rs"),
                template_file!("http", "service/inventory.py", "service/inventory.py", true),
            ],
            Template::Tcp => vec![
                template_file!("tcp", "Cargo.toml.tmpl", "Cargo.toml"),
                template_file!("tcp", "README.md.tmpl", "README.md"),
                template_file!("tcp", "src/lib.rs", "src/lib.rs"),
                template_file!("tcp", "tests/plugin.rs", "tests/plugin.rs"),
                template_file!("tcp", "service/keyserver.py", "service/keyserver.py", true),
            ],
        }
    }
}

/// The lock file the broker was built with: the new crate starts from the
/// versions this SDK was tested with (cargo drops what the crate does not use).
const LOCK_FILE: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock"));

/// Where the SDK of the source tree this binary was built from is, if it is still
/// there.
fn built_with_sdk() -> Option<PathBuf> {
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk");
    sdk.join("Cargo.toml")
        .is_file()
        .then(|| sdk.canonicalize().ok())
        .flatten()
}

/// Whether `name` can be a plugin's and a crate's name: lowercase ASCII letters,
/// digits and dashes, starting with a letter, at most 64 characters.
fn valid_name(name: &str) -> bool {
    name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-')
}

/// Writes the crate for plugin `name` into `dir` (which must not exist, or be
/// empty) and returns what to tell the author.
pub fn create(
    name: &str,
    template: Template,
    dir: &Path,
    sdk: Option<&Path>,
) -> Result<String, String> {
    if !valid_name(name) {
        return Err(format!(
            "`{name}` is not a plugin name: use lowercase letters, digits and dashes, starting with a letter"
        ));
    }
    let sdk = match sdk {
        Some(sdk) => sdk
            .canonicalize()
            .map_err(|err| format!("the SDK at {}: {err}", sdk.display()))?,
        None => built_with_sdk()
            .ok_or("this binary's source tree is gone: give the SDK's directory with --sdk PATH")?,
    };
    if !sdk.join("Cargo.toml").is_file() {
        return Err(format!(
            "{} holds no Cargo.toml: it is not the SDK",
            sdk.display()
        ));
    }
    if dir.exists()
        && std::fs::read_dir(dir)
            .map_err(|err| format!("{}: {err}", dir.display()))?
            .next()
            .is_some()
    {
        return Err(format!("{} exists and is not empty", dir.display()));
    }

    let sdk_path = toml_string(&sdk.to_string_lossy());
    let fill = |text: &str| {
        text.replace("{{name}}", name)
            .replace("{{crate}}", &name.replace('-', "_"))
            .replace("{{sdk}}", &format!("{{ path = {sdk_path} }}"))
            .replace(
                "{{sdk_testing}}",
                &format!("{{ path = {sdk_path}, features = [\"testing\"] }}"),
            )
    };
    for file in template.files() {
        let path = dir.join(file.path);
        write(&path, fill(file.text).as_bytes(), file.executable)?;
    }
    write(&dir.join("Cargo.lock"), LOCK_FILE.as_bytes(), false)?;
    write(&dir.join(".gitignore"), b"/target\n", false)?;

    let wasm = format!(
        "target/wasm32-wasip2/release/{}.wasm",
        name.replace('-', "_")
    );
    Ok(format!(
        "Created plugin `{name}` in {dir}.\n\
         \n\
         Test it (builds the component, then runs it in the sandbox against service/):\n\
         \x20 cd {dir} && cargo test\n\
         Build it:\n\
         \x20 cargo build --release --target wasm32-wasip2\n\
         Register it with a running broker:\n\
         \x20 leasehold plugin register {wasm}\n",
        dir = dir.display()
    ))
}

/// `value` as a TOML basic string.
fn toml_string(value: &str) -> String {
    let mut quoted = String::from("\"");
    for c in value.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            c if c.is_control() => quoted.push_str(&format!("\\u{:04X}", c as u32)),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

fn write(path: &Path, bytes: &[u8], executable: bool) -> Result<(), String> {
    let fail = |err: std::io::Error| format!("writing {}: {err}", path.display());
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(fail)?;
    }
    std::fs::write(path, bytes).map_err(fail)?;
    if executable {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).map_err(fail)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_crate_and_plugin_names() {
        for good in ["inventory", "user-api", "db2"] {
            assert!(valid_name(good), "{good}");
        }
        for bad in [
            "",
            "Inventory",
            "2fa",
            "a_b",
            "a/b",
            "../x",
            "trailing-",
            &"a".repeat(65),
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn a_new_crate_is_written_once_and_never_over_another() {
        let dir = tempfile::tempdir().unwrap();
        let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk");
        let out = dir.path().join("inventory");
        create("inventory", Template::Http, &out, Some(&sdk)).unwrap();
        let manifest = std::fs::read_to_string(out.join("Cargo.toml")).unwrap();
        assert!(manifest.contains("name = \"inventory\""), "{manifest}");
        assert!(!manifest.contains("{{"), "{manifest}");
        let code = std::fs::read_to_string(out.join("src/lib.rs")).unwrap();
        assert!(code.contains("const NAME: &'static str = \"inventory\""));
        assert!(out.join("Cargo.lock").is_file());

        let again = create("inventory", Template::Tcp, &out, Some(&sdk)).unwrap_err();
        assert!(again.contains("not empty"), "{again}");
        assert_eq!(
            std::fs::read_to_string(out.join("Cargo.toml")).unwrap(),
            manifest
        );
    }
}
