//! The `payrail` binary under test: one installation (a store, a master key,
//! an operator token, a funded partner) and the server processes started on
//! it, each killed with SIGKILL.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::temp_database::TempDatabase;

/// The operator token every server of the test accepts.
pub const ADMIN_TOKEN: &str = "crash-test-admin-token";

/// What the partner's wallet is funded with, in rupees.
pub const FUNDING_RUPEES: i64 = 10_000_000;

/// The sandbox step (`--sandbox-step-secs`): scenarios settle within 3 steps.
const SANDBOX_STEP_SECS: &str = "1";

/// The poller asks every second, long enough to see a return at 3 steps even
/// across a restart or two.
const POLL_SCHEDULE: &str = "1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s";

/// Which store the installation runs on.
pub enum Engine {
    /// SQLite in the installation's data directory.
    Sqlite,
    /// A fresh database on the PostgreSQL server at this URL.
    Postgres(String),
}

/// The PostgreSQL server the test may use, if any.
pub fn postgres_url() -> Option<String> {
    std::env::var("PAYRAIL_TEST_DATABASE_URL").ok().filter(|u| !u.is_empty())
}

/// A partner made through the CLI, with its secret.
#[derive(Debug, Clone)]
pub struct Partner {
    pub id: String,
    pub secret: String,
}

/// One payrail installation: where its store lives and how to start it.
pub struct Installation {
    /// The SQLite data directory (unused on PostgreSQL) and the server logs.
    dir: tempfile::TempDir,
    database: Option<TempDatabase>,
    master_key_hex: String,
    sms_url: String,
    starts: usize,
}

/// A running `payrail serve`, killed with SIGKILL when dropped.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Where its log goes.
    pub log: PathBuf,
}

impl Installation {
    /// An empty installation on `engine` whose OTP texts go to `sms_url`.
    pub async fn new(engine: &Engine, sms_url: &str) -> Installation {
        let database = match engine {
            Engine::Sqlite => None,
            Engine::Postgres(base) => Some(TempDatabase::create(base, "payrail_crash").await),
        };
        Installation {
            dir: tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}")),
            database,
            master_key_hex: (0..32).map(|_| format!("{:02x}", rand::random::<u8>())).collect(),
            sms_url: sms_url.to_owned(),
            starts: 0,
        }
    }

    /// `payrail` with this installation's store and key, and nothing else from the test's environment.
    fn command(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_payrail"));
        command
            .env_clear()
            .env("PAYRAIL_DATA_DIR", self.dir.path().join("data"))
            .env("PAYRAIL_MASTER_KEY", &self.master_key_hex)
            .env("PAYRAIL_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("PAYRAIL_LOG", "info")
            .env("NO_COLOR", "1");
        if let Some(database) = &self.database {
            command.env("PAYRAIL_DATABASE_URL", &database.url);
        }
        command
    }

    /// Runs a `payrail` command to completion.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.command().args(args).output().unwrap_or_else(|e| panic!("run payrail {args:?}: {e}"))
    }

    /// Adds a token partner through the CLI and funds its wallet.
    pub fn add_funded_partner(&self) -> Partner {
        let added = self.cli(&["partner", "add", "--name", "Crash Test Fintech", "--json"]);
        assert!(added.status.success(), "partner add: {}", text(&added.stderr));
        let json: serde_json::Value = serde_json::from_slice(&added.stdout)
            .unwrap_or_else(|e| panic!("partner add --json ({e}): {}", text(&added.stdout)));
        let field = |name: &str| json[name].as_str().unwrap_or_else(|| panic!("no {name}: {json}")).to_owned();
        let partner = Partner { id: field("registration_id"), secret: field("secret") };
        let funded = self.cli(&["wallet", "topup", &partner.id, &FUNDING_RUPEES.to_string(), "--memo", "crash test"]);
        assert!(funded.status.success(), "wallet topup: {}", text(&funded.stderr));
        partner
    }

    /// Starts `payrail serve` on a free port with the sandbox upstream, and
    /// waits until it listens.
    pub async fn start(&mut self) -> Server {
        self.starts += 1;
        let log = self.dir.path().join(format!("server-{}.log", self.starts));
        let log_file = std::fs::File::create(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        let child = self
            .command()
            .args(["serve", "--listen", "127.0.0.1:0", "--provider", "sandbox"])
            .args(["--sandbox-step-secs", SANDBOX_STEP_SECS, "--poll-schedule", POLL_SCHEDULE])
            .args(["--rate-limit", "0", "--worker-tick-ms", "100", "--sms-gateway-url", &self.sms_url])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("start payrail serve: {e}"));
        let mut server = Server { child, base: String::new(), log };
        server.base = format!("http://{}", server.listening_address().await);
        server
    }
}

impl Server {
    /// Reads the address from the "payrail is listening" log line.
    async fn listening_address(&mut self) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            if let Some(addr) = log.lines().find(|l| l.contains("payrail is listening")).and_then(address_in) {
                return addr;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("payrail serve exited ({status}) before listening:\n{log}");
            }
            assert!(Instant::now() < deadline, "payrail serve did not listen within 60 s:\n{log}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL, and wait until the process is gone (its sockets and locks with it).
    pub fn kill(self) {
        drop(self);
    }

    /// The last lines of the server's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // `Child::kill` is SIGKILL on Unix: no shutdown code runs.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `127.0.0.1:PORT` from a log line such as `… payrail is listening addr=127.0.0.1:4242 engine="sqlite"`.
fn address_in(line: &str) -> Option<String> {
    let start = line.find("127.0.0.1:")?;
    let rest = &line[start + "127.0.0.1:".len()..];
    let port: String = rest.chars().take_while(char::is_ascii_digit).collect();
    (!port.is_empty()).then(|| format!("127.0.0.1:{port}"))
}

/// Bytes as text, for messages.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
