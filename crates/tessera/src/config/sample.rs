//! The sample `deploy/tessera.toml`, every key at its default, generated from the options' own
//! definitions (as the tests beside it generate `docs/configuration.md`); it fails when stale.

use super::*;

/// A value for the sample of an option that has no default to show.
fn example(key: &str) -> Option<&'static str> {
    Some(match key {
        "issuer" => "\"https://auth.example.com\"",
        "tls_cert" => "\"/etc/tessera/tls/cert.pem\"",
        "tls_key" => "\"/etc/tessera/tls/key.pem\"",
        "trusted_proxies" => "[\"10.0.0.0/8\"]",
        "key_rotation_days" => "30",
        "dev" => "false",
        _ => return None,
    })
}

/// `[default: 7776000, 90 days]` → `7776000`; `[default: local]` → `"local"`.
fn default_of(help: &str) -> Option<String> {
    let text = help.split("[default: ").nth(1)?.split(']').next()?;
    let text = text.split([',', ';']).next()?.trim();
    if text.parse::<i64>().is_ok() {
        Some(text.to_string())
    } else if text.contains(' ') || text.contains('<') {
        None
    } else {
        Some(format!("{text:?}"))
    }
}

/// `deploy/tessera.toml`: every key of the `--config` file, commented out, with its help
/// and its default (or an example), written from the options' own definitions. Fails when
/// the file is stale (`TESSERA_WRITE_DOCS=1 cargo test -p tessera --bin tessera
/// configuration` rewrites it), and when the file with every line uncommented is not a
/// valid config file.
#[test]
fn the_sample_configuration_file_is_the_cli_s_own() {
    let serve = <ServeArgs as clap::Args>::augment_args(clap::Command::new("serve"));
    let mut sample = String::from(
        "# tessera serve --config tessera.toml: every option, commented out at its default\n\
         # (or an example where there is none). Flags and TESSERA_* variables win over this\n\
         # file. The master key is never read from here: see TESSERA_MASTER_KEY in\n\
         # docs/configuration.md. Generated from the options' definitions by a test.\n",
    );
    for arg in serve.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if long == "config" {
            continue;
        }
        let key = match long {
            "trusted-proxy" => "trusted_proxies".to_string(),
            other => other.replace('-', "_"),
        };
        let help = arg
            .get_long_help()
            .or(arg.get_help())
            .map(|h| h.to_string().replace('\n', " "))
            .unwrap_or_default();
        let value = example(&key)
            .map(str::to_string)
            .or_else(|| default_of(&help))
            .unwrap_or_else(|| panic!("{key}: no default and no example for the sample"));
        sample.push('\n');
        let mut line = String::from("#");
        for word in help.split_whitespace() {
            if line.len() + word.len() + 1 > 98 {
                sample.push_str(&line);
                sample.push('\n');
                line = String::from("#");
            }
            line.push(' ');
            line.push_str(word);
        }
        sample.push_str(&line);
        sample.push_str(&format!("\n# {key} = {value}\n"));
    }
    let uncommented: String = sample
        .lines()
        .filter_map(|l| l.strip_prefix("# ").filter(|l| l.contains(" = ")))
        .map(|l| format!("{l}\n"))
        .collect();
    let parsed: FileConfig = toml::from_str(&uncommented)
        .unwrap_or_else(|e| panic!("the sample, uncommented, is not a config file: {e}"));
    assert!(parsed.listen.is_some() && parsed.shutdown_grace.is_some());
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/tessera.toml");
    if std::env::var_os("TESSERA_WRITE_DOCS").is_some() {
        std::fs::write(path, &sample).unwrap();
    }
    let written = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        written == sample,
        "deploy/tessera.toml is stale: run TESSERA_WRITE_DOCS=1 cargo test -p tessera \
         --bin tessera configuration"
    );
}
