//! Fixtures for tests that talk to real infrastructure.
//!
//! - [`NatsServer`]: a private nats-server with JetStream on a free port and a temporary store,
//!   which a test can stop and start again with its store kept.
//! - [`TestDb`]: a fresh PostgreSQL database named by a random UUID.
//! - [`eventually`]: polls for an expected state until a deadline, failing with what it last saw.

use std::future::Future;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Executor, PgPool};
use tokio::process::{Child, Command};

/// A nats-server of the test's own. Killed and its store removed on drop.
pub struct NatsServer {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

fn nats_server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("NATS_SERVER_BIN") {
        return path.into();
    }
    for candidate in [
        "/usr/sbin/nats-server",
        "/usr/bin/nats-server",
        "/usr/local/bin/nats-server",
    ] {
        if std::path::Path::new(candidate).exists() {
            return candidate.into();
        }
    }
    "nats-server".into()
}

/// A TCP port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

impl NatsServer {
    pub async fn start() -> anyhow::Result<NatsServer> {
        let dir = std::env::temp_dir().join(format!("saga-nats-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir)?;
        let mut server = NatsServer {
            port: free_port(),
            dir,
            child: None,
        };
        server.launch().await?;
        Ok(server)
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    async fn launch(&mut self) -> anyhow::Result<()> {
        let log = self.log_path();
        let _ = std::fs::remove_file(&log);
        let child = Command::new(nats_server_binary())
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string(), "-js"])
            .arg("-sd")
            .arg(self.dir.join("store"))
            .arg("-l")
            .arg(&log)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting nats-server (install it, or set NATS_SERVER_BIN)")?;
        self.child = Some(child);
        let ready = eventually_ok("nats-server ready", Duration::from_secs(15), || async {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("Server is ready") {
                Ok(())
            } else {
                Err(text.lines().last().unwrap_or("no log yet").to_owned())
            }
        })
        .await;
        ready.map_err(anyhow::Error::msg)
    }

    /// Kills the server at once (SIGKILL), keeping its store.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Starts the server again on the same port with the same store.
    pub async fn start_again(&mut self) -> anyhow::Result<()> {
        if self.child.is_some() {
            bail!("nats-server is still running");
        }
        self.launch().await
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A fresh database on the test PostgreSQL server (`TEST_DATABASE_URL`, by default
/// `postgres://saga:saga@127.0.0.1:5432/postgres`).
pub struct TestDb {
    pub name: String,
    pub url: String,
}

pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://saga:saga@127.0.0.1:5432/postgres".into())
}

impl TestDb {
    pub async fn create() -> anyhow::Result<TestDb> {
        let admin = admin_url();
        let name = format!("test_{}", uuid::Uuid::new_v4().simple());
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect(&admin)
            .await
            .with_context(|| {
                "connecting to the test PostgreSQL (see scripts/test.sh)".to_string()
            })?;
        pool.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .await?;
        pool.close().await;
        let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
        Ok(TestDb {
            url: format!("{base}/{name}"),
            name,
        })
    }

    pub async fn pool(&self, max_connections: u32) -> anyhow::Result<PgPool> {
        Ok(PgPoolOptions::new()
            .max_connections(max_connections)
            .connect(&self.url)
            .await?)
    }
}

/// Polls `probe` every 25 ms until it returns `Ok`, or the deadline passes: then the error says
/// what was last seen.
pub async fn eventually_ok<T, F, Fut>(
    what: &str,
    within: Duration,
    mut probe: F,
) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match probe().await {
            Ok(value) => return Ok(value),
            Err(seen) if tokio::time::Instant::now() >= deadline => {
                return Err(format!(
                    "{what}: not reached within {within:?}; last seen: {seen}"
                ));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(25)).await,
        }
    }
}

/// [`eventually_ok`] that panics (fails the test) at the deadline.
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    match eventually_ok(what, within, probe).await {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    }
}
