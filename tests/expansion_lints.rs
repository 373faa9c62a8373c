//! Compiles a small crate that uses `#[differentiable]` and `#[derive(Differentiable)]`
//! the way a user would, under `#![deny(warnings)]` and `cargo clippy -- -D warnings`,
//! to show that the generated code is free of warnings.
//!
//! The crate is `tests/expansion_lints/program.rs`, copied into a cargo project under
//! `target/expansion-check/`. It shares this build's target directory so the
//! dependencies are not compiled again, and it runs cargo with `--offline`, so the
//! registry index must already hold every dependency (it does once this test binary
//! itself has been built).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const PROGRAM: &str = include_str!("expansion_lints/program.rs");

/// Returns the workspace root, the folder of this package's manifest.
fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Returns the target directory of the build that compiled this test.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace_root().join("target"), PathBuf::from)
}

/// Writes the check project and returns its folder.
fn write_project() -> PathBuf {
    let folder = target_dir().join("expansion-check");
    fs::create_dir_all(folder.join("src")).expect("create the check project's `src` folder");
    let root = workspace_root().display().to_string().replace('\\', "/");
    let manifest = format!(
        r#"[package]
name = "expansion-check"
version = "0.0.0"
edition = "2024"
publish = false

[dependencies]
stagegrad = {{ path = "{root}" }}
ndarray = "0.16"
num-traits = "0.2"

# Its own workspace, so cargo does not look for one in the folders above.
[workspace]
"#
    );
    fs::write(folder.join("Cargo.toml"), manifest).expect("write the check project's `Cargo.toml`");
    fs::write(folder.join("src/main.rs"), PROGRAM)
        .expect("write the check project's `src/main.rs`");
    // The workspace's lock file pins the same versions, so the built dependencies are
    // reused and `--offline` resolves.
    fs::copy(
        workspace_root().join("Cargo.lock"),
        folder.join("Cargo.lock"),
    )
    .expect("copy the workspace's `Cargo.lock` into the check project");
    folder
}

/// Runs `cargo` with `args` in `project` and panics with its output when it fails.
fn run_cargo(project: &Path, args: &[&str]) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args(args)
        .current_dir(project)
        .env("CARGO_TARGET_DIR", target_dir())
        .output()
        .unwrap_or_else(|error| panic!("failed to start `cargo {}`: {error}", args.join(" ")));
    assert!(
        output.status.success(),
        "`cargo {}` failed in {} with {}\n--- stderr ---\n{}\n--- stdout ---\n{}",
        args.join(" "),
        project.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout),
    );
}

#[test]
fn generated_code_is_lint_free() {
    let project = write_project();
    run_cargo(
        &project,
        &[
            "clippy",
            "--all-targets",
            "--offline",
            "--",
            "-D",
            "warnings",
        ],
    );
    run_cargo(&project, &["build", "--offline"]);
}
