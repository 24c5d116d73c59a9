//! The deployment artifacts in `deploy/` against their own tools (issue 19): the systemd unit
//! passes `systemd-analyze verify` and its `security` exposure is at most 2.0 ("OK"). These
//! need `systemd-analyze` (Debian's `systemd` package; `.ci/run` installs it).

use std::path::PathBuf;
use std::process::Command;

fn deploy(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy")
        .join(path)
}

fn analyze(args: &[&str]) -> std::process::Output {
    Command::new("systemd-analyze")
        .args(args)
        .output()
        .expect("systemd-analyze is needed: apt-get install systemd (.ci/run does)")
}

#[test]
fn the_systemd_unit_verifies_and_is_rated_ok() {
    let unit = std::fs::read_to_string(deploy("systemd/tessera.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/tessera serve"));
    // verify checks that the binary exists: point it at the one this suite built.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tessera.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/tessera", env!("CARGO_BIN_EXE_tessera")),
    )
    .unwrap();
    let path = path.to_str().unwrap();

    let out = analyze(&["verify", path]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && said.trim().is_empty(), "{said}");

    let out = analyze(&["security", "--offline=true", "--threshold=20", path]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "exposure above 2.0: {said}");
    let exposure: f64 = said
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for tessera.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure in {said}"));
    assert!(exposure <= 2.0, "{exposure}");
}

#[test]
fn the_environment_file_names_only_options_serve_has() {
    let env = std::fs::read_to_string(deploy("systemd/tessera.env")).unwrap();
    let help = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for line in env.lines() {
        let line = line.trim_start_matches('#');
        if let Some((name, _)) = line.split_once('=')
            && name.starts_with("TESSERA_")
            && !name.contains(' ')
        {
            assert!(
                help.contains(name) || name == "TESSERA_MASTER_KEY",
                "{name} is not an option of serve"
            );
        }
    }
}
