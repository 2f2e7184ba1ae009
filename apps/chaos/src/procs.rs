//! The services as processes: started from a folder of binaries with an environment of their
//! own, stopped (gracefully or not) and started again, from the same or another folder.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use saga_client::Svc;
use tokio::process::{Child, Command};

pub const SERVICES: [(&str, Svc, &str); 4] = [
    ("order-service", Svc::Order, "orders"),
    ("payment-service", Svc::Payment, "payments"),
    ("inventory-service", Svc::Inventory, "inventory"),
    ("saga-coordinator", Svc::Saga, "sagas"),
];

/// One service process.
pub struct Proc {
    pub name: &'static str,
    pub svc: Svc,
    pub port: u16,
    pub env: Vec<(String, String)>,
    pub log: PathBuf,
    pub child: Option<Child>,
}

impl Proc {
    pub fn spawn(&mut self, bin_dir: &Path) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let child = Command::new(bin_dir.join(self.name))
            .envs(self.env.iter().cloned())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {} (build it first)", self.name))?;
        self.child = Some(child);
        Ok(())
    }

    pub async fn sigkill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Asks the process to stop (SIGTERM), as a deployment does, and waits until it has: it
    /// finishes what it is doing first. Killed if it has not stopped within `grace`.
    pub async fn stop(&mut self, grace: Duration) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        if let Some(pid) = child.id() {
            let sent = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await
                .context("running kill")?;
            if !sent.success() {
                bail!("kill -TERM {pid} failed: {sent}");
            }
        }
        match tokio::time::timeout(grace, child.wait()).await {
            Ok(status) => {
                status.context("waiting for the process")?;
            }
            Err(_) => {
                let _ = child.kill().await;
                bail!("{} did not stop within {grace:?} of SIGTERM", self.label());
            }
        }
        Ok(())
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `order-service-a`, ...: the name of its log.
    pub fn label(&self) -> String {
        self.log
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.name.to_owned())
    }
}

/// Waits until every service at `bases` answers `GET /health/ready` with success.
pub async fn wait_ready(http: &reqwest::Client, bases: Vec<String>) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    for base in bases {
        loop {
            let ready = http
                .get(format!("{base}/health/ready"))
                .send()
                .await
                .map(|r| r.status().is_success());
            if matches!(ready, Ok(true)) {
                break;
            }
            if Instant::now() > deadline {
                bail!("{base} not ready after 60s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}
