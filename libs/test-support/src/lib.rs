//! Fixtures for tests that talk to real infrastructure.
//!
//! - [`NatsServer`]: a private nats-server with JetStream on a free port and a temporary store,
//!   which a test can stop and start again with its store kept, and whose JetStream store can
//!   be given a size limit, so that it runs out of space.
//! - [`NatsCluster`]: a private three-node JetStream cluster, whose nodes a test can kill, stop
//!   and start again (with another nats-server release too), and which says which node leads a
//!   stream or the meta group.
//! - [`nats_server_binary`]: the pinned nats-server both run (scripts/lib/infra.sh), and
//!   [`debian_nats_server_binary`] the older release a rolling upgrade starts from.
//! - [`TestDb`]: a fresh PostgreSQL database named by a random UUID.
//! - [`eventually`]: polls for an expected state until a deadline, failing with what it last saw.

use std::future::Future;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context as _, bail};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Executor, PgPool};
use tokio::process::{Child, Command};

mod cluster;
pub use cluster::{CLUSTER_NAME, NatsCluster, ReplicaState, StreamPlacement};

/// A nats-server of the test's own. Killed and its store removed on drop.
pub struct NatsServer {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
    /// JetStream's `max_file_store`, when the server was started with one.
    store_limit: Option<u64>,
}

/// The nats-server the tests run: `NATS_SERVER_BIN` when set (scripts/test.sh sets it), else the
/// release scripts/lib/infra.sh pins, which it downloads and checks the first time. The version is
/// pinned there only.
pub fn nats_server_binary() -> anyhow::Result<PathBuf> {
    static PINNED: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    if let Some(path) = std::env::var_os("NATS_SERVER_BIN").filter(|p| !p.is_empty()) {
        return Ok(path.into());
    }
    PINNED
        .get_or_init(|| infra_binary("nats_server_bin"))
        .clone()
        .map_err(anyhow::Error::msg)
}

/// Debian 12's nats-server 2.9.10, the release the rolling-upgrade test upgrades from:
/// `NATS_SERVER_DEBIAN_BIN` when set (scripts/test.sh sets it), else what scripts/lib/infra.sh
/// finds or takes out of the Debian package.
pub fn debian_nats_server_binary() -> anyhow::Result<PathBuf> {
    static DEBIAN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    if let Some(path) = std::env::var_os("NATS_SERVER_DEBIAN_BIN").filter(|p| !p.is_empty()) {
        return Ok(path.into());
    }
    DEBIAN
        .get_or_init(|| infra_binary("nats_server_debian_bin"))
        .clone()
        .map_err(anyhow::Error::msg)
}

/// What a function of scripts/lib/infra.sh prints: the path of a binary it provides.
fn infra_binary(function: &str) -> Result<PathBuf, String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(r#"source scripts/lib/infra.sh && "$1""#)
        .arg("infra")
        .arg(function)
        .current_dir(&root)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running scripts/lib/infra.sh's {function}: {e}"))?;
    let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if out.status.success() && !path.is_empty() {
        Ok(path.into())
    } else {
        Err(format!(
            "scripts/lib/infra.sh's {function} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A TCP port nobody listens on right now, never handed out before by this process.
///
/// It is drawn from 20000 up to the start of the kernel's ephemeral range
/// (`ip_local_port_range`), where outgoing connections take their source ports. A port inside
/// that range, as the kernel hands out for port 0, can be taken by some connection while the
/// server it was picked for is stopped: a NATS node restarted on its ports then fails with
/// "address already in use". Only where that range leaves no room below it is the kernel asked.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let bindable = |port: u16| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok();
    let (lo, hi) = (20000u16, ephemeral_ports_start());
    let mut given = GIVEN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if hi > lo + 1000 {
        for _ in 0..1000 {
            let port = lo + (uuid::Uuid::new_v4().as_u128() % u128::from(hi - lo)) as u16;
            if !given.contains(&port) && bindable(port) {
                given.push(port);
                return port;
            }
        }
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0);
    given.push(port);
    port
}

/// The first port of the kernel's ephemeral range (32768 where it cannot be read), read once.
fn ephemeral_ports_start() -> u16 {
    static START: OnceLock<u16> = OnceLock::new();
    *START.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse().ok())
            .unwrap_or(32768)
    })
}

impl NatsServer {
    pub async fn start() -> anyhow::Result<NatsServer> {
        NatsServer::start_with(None).await
    }

    /// A server whose JetStream may store at most `bytes` on file (`max_file_store`): once its
    /// streams hold more, every publish to a stream is refused (insufficient resources) until
    /// space is freed, say by deleting a stream. [`NatsServer::set_store_limit`] changes it.
    pub async fn start_with_store_limit(bytes: u64) -> anyhow::Result<NatsServer> {
        NatsServer::start_with(Some(bytes)).await
    }

    async fn start_with(store_limit: Option<u64>) -> anyhow::Result<NatsServer> {
        let dir = std::env::temp_dir().join(format!("saga-nats-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir)?;
        let mut server = NatsServer {
            port: free_port(),
            dir,
            child: None,
            store_limit,
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

    fn config_path(&self) -> PathBuf {
        self.dir.join("server.conf")
    }

    /// The configuration file of a server with a store limit (the command line has no flag
    /// for it).
    fn write_config(&self) -> anyhow::Result<()> {
        let limit = self
            .store_limit
            .map(|bytes| format!("  max_file_store: {bytes}\n"))
            .unwrap_or_default();
        let config = format!(
            "jetstream {{\n  store_dir: \"{}\"\n{limit}}}\n",
            self.dir.join("store").display()
        );
        std::fs::write(self.config_path(), config).context("writing nats-server.conf")
    }

    async fn launch(&mut self) -> anyhow::Result<()> {
        let log = self.log_path();
        let _ = std::fs::remove_file(&log);
        let mut command = Command::new(nats_server_binary()?);
        command.args(["-a", "127.0.0.1", "-p", &self.port.to_string()]);
        if self.store_limit.is_some() {
            self.write_config()?;
            command.arg("-c").arg(self.config_path());
        } else {
            command.arg("-js").arg("-sd").arg(self.dir.join("store"));
        }
        let child = command
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

    /// Raises the store limit of a server started with one, while it runs: the configuration
    /// is written again and the server told to reload it (SIGHUP); returns once its log says it
    /// took the new limit. nats-server refuses to lower the limit on a reload.
    pub async fn set_store_limit(&mut self, bytes: u64) -> anyhow::Result<()> {
        match self.store_limit {
            None => bail!("nats-server was started without a store limit"),
            Some(now) if bytes < now => {
                bail!("nats-server cannot lower its store limit ({now}) while it runs")
            }
            Some(now) if bytes == now => return Ok(()),
            Some(_) => {}
        }
        let pid = self
            .child
            .as_ref()
            .and_then(Child::id)
            .context("nats-server is not running")?;
        self.store_limit = Some(bytes);
        self.write_config()?;
        let log = self.log_path();
        const TOOK: &str = "Reloaded: JetStream max_file_store";
        const REFUSED: &str = "config reload not supported";
        let count = |needle: &str| {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .matches(needle)
                .count()
        };
        let (took, refused) = (count(TOOK), count(REFUSED));
        let sent = Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .await
            .context("running kill -HUP")?;
        if !sent.success() {
            bail!("kill -HUP {pid} failed: {sent}");
        }
        let reloaded = eventually_ok(
            "nats-server took the new store limit",
            Duration::from_secs(15),
            || async {
                if count(REFUSED) > refused {
                    return Ok(false);
                }
                if count(TOOK) > took {
                    return Ok(true);
                }
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                Err(text.lines().last().unwrap_or("no log yet").to_owned())
            },
        )
        .await
        .map_err(anyhow::Error::msg)?;
        if !reloaded {
            bail!(
                "nats-server refused the store limit {bytes} (see {})",
                log.display()
            );
        }
        Ok(())
    }

    /// The store limit the server runs with, if any.
    pub fn store_limit(&self) -> Option<u64> {
        self.store_limit
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

/// Rows read per table of `pool`'s database (rows read by sequential scans plus rows fetched
/// through an index, and the rows it holds), once no other session is connected: a session
/// publishes its counts when it ends.
pub async fn rows_read_per_table(
    pool: &PgPool,
    within: Duration,
) -> Result<Vec<(String, i64, i64)>, String> {
    eventually_ok("no other session", within, || async {
        let others: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .fetch_one(pool)
        .await
        .map_err(|e| e.to_string())?;
        if others == 0 {
            Ok(())
        } else {
            Err(format!("{others} sessions"))
        }
    })
    .await?;
    sqlx::query_as(
        "SELECT relname::text, coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0), \
                n_live_tup FROM pg_stat_user_tables",
    )
    .fetch_all(pool)
    .await
    .map_err(|e| e.to_string())
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

/// A PostgreSQL server of the caller's own: its own data directory and port, started with
/// `pg_ctl`, crashable (`kill`: immediate shutdown, as a crash), stoppable as an operator stops it
/// (`stop`: fast shutdown) and restartable with its data.
/// Run as the `postgres` user when the caller is root.
pub struct PgServer {
    port: u16,
    dir: PathBuf,
    bin: PathBuf,
    running: bool,
}

fn postgres_bin_dir() -> anyhow::Result<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .context("PostgreSQL server binaries not found (apt-get install postgresql)")?
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("pg_ctl").exists())
        .collect();
    versions.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    versions
        .pop()
        .context("no PostgreSQL version with pg_ctl under /usr/lib/postgresql")
}

fn is_root() -> bool {
    std::env::var("USER").map(|u| u == "root").unwrap_or(false)
        || std::process::Command::new("id")
            .arg("-u")
            .output()
            .map(|o| o.stdout.starts_with(b"0"))
            .unwrap_or(false)
}

fn as_postgres(program: &std::path::Path) -> std::process::Command {
    if is_root() {
        let mut cmd = std::process::Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        std::process::Command::new(program)
    }
}

fn run(mut cmd: std::process::Command, what: &str) -> anyhow::Result<()> {
    let out = cmd.output().with_context(|| what.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        bail!(
            "{what}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }
}

impl PgServer {
    pub async fn start() -> anyhow::Result<PgServer> {
        let bin = postgres_bin_dir()?;
        let dir = std::env::temp_dir().join(format!("saga-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir)?;
        if is_root() {
            run(
                {
                    let mut c = std::process::Command::new("chown");
                    c.args(["-R", "postgres:postgres"]).arg(&dir);
                    c
                },
                "chown to postgres",
            )?;
        }
        let mut initdb = as_postgres(&bin.join("initdb"));
        initdb.arg("-D").arg(dir.join("data")).args([
            "-U",
            "saga",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        ]);
        run(initdb, "initdb")?;
        let mut server = PgServer {
            port: free_port(),
            dir,
            bin,
            running: false,
        };
        server.start_again().await?;
        Ok(server)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of database `name` on this server.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://saga@127.0.0.1:{}/{name}", self.port)
    }

    pub async fn create_database(&self, name: &str) -> anyhow::Result<()> {
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect(&self.url("postgres"))
            .await?;
        pool.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .await?;
        pool.close().await;
        Ok(())
    }

    /// Starts the server (again), keeping its data.
    pub async fn start_again(&mut self) -> anyhow::Result<()> {
        let mut cmd = as_postgres(&self.bin.join("pg_ctl"));
        cmd.arg("-D")
            .arg(self.dir.join("data"))
            .arg("-l")
            .arg(self.dir.join("server.log"))
            .args(["-w", "-t", "60", "-o"])
            .arg(format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off",
                self.port,
                self.dir.display()
            ))
            .arg("start");
        tokio::task::spawn_blocking(move || run(cmd, "pg_ctl start")).await??;
        self.running = true;
        Ok(())
    }

    /// Stops the server the way a crash would (immediate shutdown, no checkpoint).
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        let cmd = self.stop_command("immediate");
        tokio::task::spawn_blocking(move || run(cmd, "pg_ctl stop")).await??;
        self.running = false;
        Ok(())
    }

    /// Stops the server as an operator does (fast shutdown: every session is ended, the data
    /// checkpointed), and waits until it has.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        let cmd = self.stop_command("fast");
        tokio::task::spawn_blocking(move || run(cmd, "pg_ctl stop")).await??;
        self.running = false;
        Ok(())
    }

    fn stop_command(&self, mode: &str) -> std::process::Command {
        let mut cmd = as_postgres(&self.bin.join("pg_ctl"));
        cmd.arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", mode, "-w", "stop"]);
        cmd
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if self.running {
            let _ = self.stop_command("immediate").output();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::{ephemeral_ports_start, free_port};

    #[test]
    fn free_ports_are_distinct_bindable_and_below_the_ephemeral_range() {
        let ephemeral = ephemeral_ports_start();
        let ports: Vec<u16> = (0..200).map(|_| free_port()).collect();
        let mut distinct = ports.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), ports.len(), "a port handed out twice");
        for port in ports {
            if ephemeral > 21000 {
                assert!(
                    (20000..ephemeral).contains(&port),
                    "{port} not in 20000..{ephemeral}"
                );
            }
            std::net::TcpListener::bind(("127.0.0.1", port)).expect("bindable");
        }
    }
}
