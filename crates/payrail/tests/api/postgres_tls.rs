//! PostgreSQL over TLS, against a throwaway cluster this test starts on a
//! free port with a certificate it makes: `sslmode` and `sslrootcert` from
//! the URL decide whether payrail connects. The shared server on 5432 is
//! not touched.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::helpers::text;

/// The newest `/usr/lib/postgresql/<version>/bin` with `initdb` and `pg_ctl`.
fn pg_bin() -> Result<PathBuf, String> {
    let versions = std::fs::read_dir("/usr/lib/postgresql").map_err(|e| format!("/usr/lib/postgresql: {e}"))?;
    let mut bins: Vec<(u32, PathBuf)> = versions
        .filter_map(Result::ok)
        .filter_map(|v| Some((v.file_name().to_str()?.parse().ok()?, v.path().join("bin"))))
        .filter(|(_, bin)| bin.join("initdb").exists() && bin.join("pg_ctl").exists())
        .collect();
    bins.sort();
    bins.pop().map(|(_, bin)| bin).ok_or_else(|| "no initdb and pg_ctl under /usr/lib/postgresql".to_owned())
}

/// A PostgreSQL cluster in a temporary directory, stopped on drop.
struct Cluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    as_root: bool,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.data();
        let _ = self.tool("pg_ctl").arg("-D").arg(&data).args(["-m", "immediate", "stop"]).output();
    }
}

impl Cluster {
    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A PostgreSQL tool, run as the `postgres` user when the test is root
    /// (initdb refuses root).
    fn tool(&self, name: &str) -> Command {
        let program = self.bin.join(name);
        if self.as_root {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    }

    fn url(&self, host: &str, params: &str) -> String {
        format!("postgres://payrail@{host}:{}/postgres?{params}", self.port)
    }
}

fn run(command: &mut Command, what: &str) -> Result<(), String> {
    let out = command.stdin(Stdio::null()).output().map_err(|e| format!("{what}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{what}: {}{}", text(&out.stdout), text(&out.stderr)))
    }
}

/// Whether initdb, pg_ctl and openssl (and runuser, as root) are installed.
fn tools_available() -> Result<(), String> {
    pg_bin()?;
    let works = |program: &str, arg: &str| {
        Command::new(program).arg(arg).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
    };
    if !works("openssl", "version") {
        return Err("openssl is not installed".into());
    }
    if !works("runuser", "--version") {
        return Err("runuser (to run initdb as a non-root user) is not installed".into());
    }
    Ok(())
}

/// Starts a cluster with ssl=on whose pg_hba.conf admits TLS connections only.
fn start_cluster() -> Result<Cluster, String> {
    let bin = pg_bin()?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let as_root = std::fs::metadata(dir.path()).map_err(|e| e.to_string())?.uid() == 0;
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| e.to_string())?;
    let cluster = Cluster { bin, dir, port: port.port(), as_root };
    let root = cluster.dir.path();
    make_certificates(root)?;
    if as_root {
        let postgres = Command::new("id").args(["-u", "postgres"]).output().map_err(|e| e.to_string())?;
        let uid: u32 = text(&postgres.stdout).trim().parse().map_err(|_| "no postgres user".to_owned())?;
        for entry in std::fs::read_dir(root).map_err(|e| e.to_string())? {
            let path = entry.map_err(|e| e.to_string())?.path();
            std::os::unix::fs::chown(&path, Some(uid), None).map_err(|e| e.to_string())?;
        }
        std::os::unix::fs::chown(root, Some(uid), None).map_err(|e| e.to_string())?;
    }
    let key = root.join("server.key");
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).map_err(|e| e.to_string())?;
    let data = cluster.data();
    run(cluster.tool("initdb").arg("-D").arg(&data).args(["-U", "payrail", "--auth=trust"]), "initdb")?;
    let conf = format!(
        "port = {}\nlisten_addresses = '127.0.0.1,127.0.0.2'\nunix_socket_directories = '{}'\nssl = on\n\
         ssl_cert_file = '{}'\nssl_key_file = '{}'\nfsync = off\n",
        cluster.port,
        root.display(),
        root.join("server.pem").display(),
        key.display()
    );
    append(&data.join("postgresql.conf"), &conf)?;
    std::fs::write(data.join("pg_hba.conf"), "local all all trust\nhostssl all all 127.0.0.0/8 trust\n")
        .map_err(|e| e.to_string())?;
    let log = root.join("server.log");
    run(cluster.tool("pg_ctl").arg("-D").arg(&data).arg("-l").arg(&log).args(["-w", "-t", "60", "start"]), "pg_ctl")?;
    Ok(cluster)
}

/// A CA, and a server certificate it signs for 127.0.0.1 and localhost;
/// subjects are given on the command line, so openssl asks nothing.
fn make_certificates(dir: &Path) -> Result<(), String> {
    let openssl = |args: &[&str], what: &str| run(Command::new("openssl").current_dir(dir).args(args), what);
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    let ca = ["-x509", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=payrail test CA"];
    let ca_ext = ["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign"];
    openssl(&[&["req"], &ec[..], &ca[..], &ca_ext[..]].concat(), "CA")?;
    let csr = ["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"];
    openssl(&[&["req", "-new"], &ec[..], &csr[..]].concat(), "CSR")?;
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .map_err(|e| e.to_string())?;
    let sign = ["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial"];
    openssl(&[&sign[..], &["-out", "server.pem", "-days", "2", "-extfile", "server.ext"]].concat(), "sign")
}

fn append(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write as _;
    let mut file = std::fs::OpenOptions::new().append(true).open(path).map_err(|e| e.to_string())?;
    file.write_all(text.as_bytes()).map_err(|e| e.to_string())
}

/// `payrail partner list` on the store at `url`: it connects and migrates.
fn connect(url: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_payrail"))
        .args(["--database-url", url, "partner", "list"])
        .env_remove("PAYRAIL_MASTER_KEY")
        .env_remove("PAYRAIL_MASTER_KEY_FILE")
        .env_remove("PAYRAIL_DATABASE_URL")
        .output()
        .unwrap_or_else(|e| panic!("run payrail: {e}"))
}

#[test]
fn postgres_sslmode_and_sslrootcert_from_the_url_decide_how_payrail_connects() {
    if let Err(why) = tools_available() {
        eprintln!("SKIPPED (PostgreSQL TLS): {why}; the TLS connection modes were not tested");
        return;
    }
    // With the tools there, a cluster that does not start is a failure, not a skip.
    let cluster = start_cluster().unwrap_or_else(|e| panic!("a throwaway TLS cluster: {e}"));
    let ca = cluster.dir.path().join("ca.pem");
    let ca = ca.to_str().expect("a UTF-8 path");
    let connects = |url: &str| {
        let out = connect(url);
        assert!(out.status.success(), "{url}: {}", text(&out.stderr));
    };
    let fails = |url: &str, expected: &str| {
        let out = connect(url);
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{url} connected");
        assert!(stderr.to_lowercase().contains(expected), "{url}: {stderr}");
        assert!(!stderr.contains("payrail@"), "the URL (and any password) stays out of errors: {stderr}");
    };

    connects(&cluster.url("127.0.0.1", &format!("sslmode=verify-full&sslrootcert={ca}")));
    connects(&cluster.url("localhost", &format!("sslmode=verify-full&sslrootcert={ca}")));
    fails(&cluster.url("127.0.0.1", "sslmode=verify-full"), "unknownissuer");
    fails(&cluster.url("127.0.0.1", "sslmode=verify-ca"), "unknownissuer");
    connects(&cluster.url("127.0.0.1", &format!("sslmode=verify-ca&sslrootcert={ca}")));
    // 127.0.0.2 is the same server, but the certificate does not name it:
    // verify-ca checks the chain only, verify-full the name too.
    connects(&cluster.url("127.0.0.2", &format!("sslmode=verify-ca&sslrootcert={ca}")));
    fails(&cluster.url("127.0.0.2", &format!("sslmode=verify-full&sslrootcert={ca}")), "not valid for name");
    connects(&cluster.url("127.0.0.1", "sslmode=require"));
    connects(&cluster.url("127.0.0.1", ""));
    fails(&cluster.url("127.0.0.1", "sslmode=disable"), "no encryption");
    fails(&cluster.url("127.0.0.1", "sslmode=verify-everything"), "sslmode");
}
