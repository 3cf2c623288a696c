//! `dist/payrail.service`: the hardening the README promises is in it, and
//! `systemd-analyze verify` (through `dist/check-unit`, as CI runs it) finds
//! nothing wrong with it, run against this build's binary.

use std::process::Command;

use crate::helpers::text;

fn repo() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn the_service_unit_runs_payrail_with_its_config_as_its_own_confined_user() {
    let unit = std::fs::read_to_string(repo().join("dist/payrail.service")).unwrap_or_else(|e| panic!("{e}"));
    let lines: Vec<&str> = unit.lines().map(str::trim).collect();
    for wanted in [
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "StateDirectory=payrail",
        "PrivateTmp=yes",
        "ProtectHome=yes",
        "CapabilityBoundingSet=",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "SystemCallFilter=@system-service",
        "EnvironmentFile=-/etc/payrail/env",
        "Restart=on-failure",
        "ExecStart=/usr/local/bin/payrail --config /etc/payrail/payrail.toml --data-dir /var/lib/payrail serve",
    ] {
        assert!(lines.contains(&wanted), "dist/payrail.service has no line {wanted:?}");
    }
}

#[test]
fn the_service_unit_passes_systemd_analyze_verify() {
    let available = Command::new("systemd-analyze").arg("--version").output().is_ok_and(|o| o.status.success());
    if !available {
        eprintln!("SKIPPED: systemd-analyze is not installed here; .ci/run installs it and runs dist/check-unit");
        return;
    }
    let out = Command::new(repo().join("dist/check-unit"))
        .arg(env!("CARGO_BIN_EXE_payrail"))
        .output()
        .unwrap_or_else(|e| panic!("run dist/check-unit: {e}"));
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stdout).contains("verify is clean"), "{}", text(&out.stdout));
}
