//! A JetStream cluster of the caller's own: three nats-server nodes (or any number) on free
//! ports, each with a fresh store, routed to each other. Nodes can be SIGKILLed, stopped and
//! started again with their store, or with another nats-server binary (a rolling upgrade); the
//! cluster says which node leads a stream and which leads the meta group (JetStream's own
//! cluster-wide state), by node index.
//!
//! Each node runs in its own process group, so a signal sent to the caller's group does not
//! reach it, and is killed when the fixture is dropped.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::Value;
use tokio::process::{Child, Command};

use crate::{eventually_ok, free_port};

/// The cluster name every node is started with.
pub const CLUSTER_NAME: &str = "saga-test";

struct Node {
    /// The server name: stable for the node's store, since JetStream derives the node's peer id
    /// from it.
    name: String,
    port: u16,
    route_port: u16,
    monitor_port: u16,
    dir: PathBuf,
    /// The nats-server binary the node runs, and runs again when started again.
    bin: PathBuf,
    child: Option<Child>,
}

impl Node {
    fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }
}

/// A stream's replicas as its leader reports them.
#[derive(Clone, Debug)]
pub struct StreamPlacement {
    /// Replicas the stream is configured with (`num_replicas`).
    pub configured_replicas: usize,
    /// The node that leads the stream.
    pub leader: usize,
    /// The other replicas: node, whether it is current, and how many operations it lags.
    pub followers: Vec<(usize, bool, u64)>,
}

impl StreamPlacement {
    /// Every node that holds the stream, the leader first.
    pub fn nodes(&self) -> Vec<usize> {
        std::iter::once(self.leader)
            .chain(self.followers.iter().map(|(n, _, _)| *n))
            .collect()
    }

    /// Whether every follower is current.
    pub fn all_current(&self) -> bool {
        self.followers.iter().all(|(_, current, _)| *current)
    }
}

/// What one node holds of a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplicaState {
    pub node: usize,
    pub messages: u64,
    pub first_seq: u64,
    pub last_seq: u64,
}

impl ReplicaState {
    /// The same messages at the same sequences, whichever node holds them.
    pub fn same_as(&self, other: &ReplicaState) -> bool {
        (self.messages, self.first_seq, self.last_seq)
            == (other.messages, other.first_seq, other.last_seq)
    }
}

/// A JetStream cluster of nats-server processes. Killed and its stores removed on drop.
pub struct NatsCluster {
    dir: PathBuf,
    nodes: Vec<Node>,
}

/// `n` distinct free ports.
fn free_ports(n: usize) -> Vec<u16> {
    let mut ports: Vec<u16> = Vec::with_capacity(n);
    while ports.len() < n {
        let p = free_port();
        if p != 0 && !ports.contains(&p) {
            ports.push(p);
        }
    }
    ports
}

impl NatsCluster {
    /// Three nodes, ready (see [`NatsCluster::wait_ready`]).
    pub async fn start() -> anyhow::Result<NatsCluster> {
        NatsCluster::start_nodes(3).await
    }

    /// `count` nodes, ready.
    pub async fn start_nodes(count: usize) -> anyhow::Result<NatsCluster> {
        NatsCluster::start_nodes_on(count, &crate::nats_server_binary()?).await
    }

    /// Three nodes that run `bin` (another release than the pinned one), ready.
    pub async fn start_on(bin: &Path) -> anyhow::Result<NatsCluster> {
        NatsCluster::start_nodes_on(3, bin).await
    }

    async fn start_nodes_on(count: usize, bin: &Path) -> anyhow::Result<NatsCluster> {
        if count == 0 {
            bail!("a cluster needs at least one node");
        }
        let dir = std::env::temp_dir().join(format!("saga-nats-cluster-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir)?;
        let ports = free_ports(count * 3);
        let nodes = (0..count)
            .map(|i| Node {
                name: format!("n{i}"),
                port: ports[i * 3],
                route_port: ports[i * 3 + 1],
                monitor_port: ports[i * 3 + 2],
                dir: dir.join(format!("n{i}")),
                bin: bin.to_path_buf(),
                child: None,
            })
            .collect();
        let mut cluster = NatsCluster { dir, nodes };
        for i in 0..count {
            cluster.spawn(i)?;
        }
        for i in 0..count {
            cluster.wait_listening(i).await?;
        }
        cluster.wait_ready(Duration::from_secs(30)).await?;
        Ok(cluster)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Every node's client URL, comma-separated: the `NATS_URL` of a service.
    pub fn urls(&self) -> String {
        (0..self.nodes.len())
            .map(|i| self.url(i))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// One node's client URL.
    pub fn url(&self, node: usize) -> String {
        format!("nats://127.0.0.1:{}", self.nodes[node].port)
    }

    pub fn port(&self, node: usize) -> u16 {
        self.nodes[node].port
    }

    /// One node's monitoring endpoint (`/jsz`, `/healthz`, `/varz`, ...).
    pub fn monitor_url(&self, node: usize) -> String {
        format!("http://127.0.0.1:{}", self.nodes[node].monitor_port)
    }

    /// The server name of a node (`n0`, `n1`, ...).
    pub fn name(&self, node: usize) -> &str {
        &self.nodes[node].name
    }

    /// The node with this server name.
    pub fn node_named(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }

    /// The process id of a running node.
    pub fn pid(&self, node: usize) -> Option<u32> {
        self.nodes[node].child.as_ref().and_then(Child::id)
    }

    pub fn is_running(&self, node: usize) -> bool {
        self.nodes[node].child.is_some()
    }

    /// The nodes that run now.
    pub fn running(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|i| self.is_running(*i))
            .collect()
    }

    /// A node's log file.
    pub fn log_path(&self, node: usize) -> PathBuf {
        self.nodes[node].log_path()
    }

    /// The nats-server binary a node runs.
    pub fn binary(&self, node: usize) -> &Path {
        &self.nodes[node].bin
    }

    /// The nats-server version a running node reports (`/varz`), such as `2.14.6`.
    pub async fn version(&self, node: usize) -> anyhow::Result<String> {
        let body: Value = reqwest::Client::new()
            .get(format!("{}/varz", self.monitor_url(node)))
            .timeout(Duration::from_secs(2))
            .send()
            .await?
            .json()
            .await?;
        body["version"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("{}: no version in /varz", self.name(node)))
    }

    fn spawn(&mut self, i: usize) -> anyhow::Result<()> {
        let routes = self
            .nodes
            .iter()
            .map(|n| format!("nats://127.0.0.1:{}", n.route_port))
            .collect::<Vec<_>>()
            .join(",");
        let node = &mut self.nodes[i];
        std::fs::create_dir_all(&node.dir)?;
        let log = node.log_path();
        let _ = std::fs::remove_file(&log);
        let child = Command::new(&node.bin)
            .args(["-a", "127.0.0.1", "-p", &node.port.to_string()])
            .args(["-n", &node.name, "-js", "--cluster_name", CLUSTER_NAME])
            .arg("-sd")
            .arg(&node.dir)
            .arg("--cluster")
            .arg(format!("nats://127.0.0.1:{}", node.route_port))
            .arg("--routes")
            .arg(&routes)
            .arg("-m")
            .arg(node.monitor_port.to_string())
            .arg("-l")
            .arg(&log)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .context("starting nats-server (install it, or set NATS_SERVER_BIN)")?;
        node.child = Some(child);
        Ok(())
    }

    /// Until the node's log says it accepts clients.
    async fn wait_listening(&mut self, i: usize) -> anyhow::Result<()> {
        let log = self.nodes[i].log_path();
        let name = self.nodes[i].name.clone();
        let ready = eventually_ok(
            &format!("nats-server {name} listening"),
            Duration::from_secs(15),
            || async {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                if text.contains("Server is ready") {
                    Ok(())
                } else {
                    Err(text.lines().last().unwrap_or("no log yet").to_owned())
                }
            },
        )
        .await;
        if let Err(e) = ready {
            if let Some(child) = self.nodes[i].child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.nodes[i].child = None;
                bail!("{e} (it exited: {status})");
            }
            bail!(e);
        }
        Ok(())
    }

    /// Kills a node at once (SIGKILL), keeping its store.
    pub async fn kill(&mut self, node: usize) {
        if let Some(mut child) = self.nodes[node].child.take() {
            let _ = child.kill().await;
        }
    }

    /// Stops a node as an operator would (SIGTERM), and waits until it has exited (SIGKILL after
    /// 30 s). Its store is kept.
    pub async fn stop(&mut self, node: usize) -> anyhow::Result<()> {
        let Some(mut child) = self.nodes[node].child.take() else {
            return Ok(());
        };
        if let Some(pid) = child.id() {
            let status = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await
                .context("sending SIGTERM")?;
            if !status.success() {
                bail!("kill -TERM {pid} failed");
            }
        }
        if tokio::time::timeout(Duration::from_secs(30), child.wait())
            .await
            .is_err()
        {
            let _ = child.kill().await;
        }
        Ok(())
    }

    /// Starts a stopped or killed node again, with its ports, name and store, and waits until it
    /// accepts clients and sees a meta leader.
    pub async fn start_again(&mut self, node: usize) -> anyhow::Result<()> {
        if self.is_running(node) {
            bail!("node {} is still running", self.name(node));
        }
        self.spawn(node)?;
        self.wait_listening(node).await?;
        let monitor = self.monitor_url(node);
        eventually_ok(
            &format!("{} sees a meta leader", self.name(node)),
            Duration::from_secs(30),
            || async { meta_leader_seen(&monitor).await },
        )
        .await
        .map_err(anyhow::Error::msg)?;
        Ok(())
    }

    /// Stops a node (SIGTERM, as [`NatsCluster::stop`]) and starts it again with `bin`: same name,
    /// ports, routes and store, another nats-server release. Waits until it accepts clients and
    /// sees a meta leader; whether its replicas have caught up is for the caller to wait for
    /// ([`NatsCluster::wait_stream_current`], [`NatsCluster::wait_healthy`]).
    pub async fn restart_with(&mut self, node: usize, bin: &Path) -> anyhow::Result<()> {
        self.stop(node).await?;
        self.nodes[node].bin = bin.to_path_buf();
        self.start_again(node).await
    }

    /// Waits until a node's `/healthz` answers 200: JetStream is up on it and every stream and
    /// consumer replica it holds is current.
    pub async fn wait_healthy(&self, node: usize, within: Duration) -> anyhow::Result<()> {
        let url = format!("{}/healthz", self.monitor_url(node));
        eventually_ok(&format!("{} healthy", self.name(node)), within, || async {
            let response = reqwest::Client::new()
                .get(&url)
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            if status.is_success() {
                Ok(())
            } else {
                Err(format!("{status}: {body}"))
            }
        })
        .await
        .map_err(anyhow::Error::msg)
    }

    /// Waits until every running node sees a meta leader and answers JetStream API calls: what a
    /// client needs before it can create streams.
    pub async fn wait_ready(&self, within: Duration) -> anyhow::Result<()> {
        for node in self.running() {
            let monitor = self.monitor_url(node);
            let url = self.url(node);
            eventually_ok(
                &format!("{} ready for JetStream", self.name(node)),
                within,
                || async {
                    meta_leader_seen(&monitor).await?;
                    api_request(&url, "$JS.API.INFO").await.map(|_| ())
                },
            )
            .await
            .map_err(anyhow::Error::msg)?;
        }
        Ok(())
    }

    /// The node that leads the meta group now: the one whose own monitor says it is the leader.
    pub async fn meta_leader(&self) -> anyhow::Result<usize> {
        let mut seen = Vec::new();
        for node in self.running() {
            match meta_leader_seen(&self.monitor_url(node)).await {
                Ok(leader) if leader == self.name(node) => return Ok(node),
                Ok(leader) => seen.push(format!("{} sees {leader}", self.name(node))),
                Err(e) => seen.push(format!("{}: {e}", self.name(node))),
            }
        }
        bail!("no running node leads the meta group ({})", seen.join("; "))
    }

    /// Waits until some running node leads the meta group.
    pub async fn wait_meta_leader(&self, within: Duration) -> anyhow::Result<usize> {
        eventually_ok("a meta leader", within, || async {
            self.meta_leader().await.map_err(|e| e.to_string())
        })
        .await
        .map_err(anyhow::Error::msg)
    }

    /// The stream's info as its leader answers it (`$JS.API.STREAM.INFO.<stream>`).
    pub async fn stream_info(&self, stream: &str) -> anyhow::Result<Value> {
        self.api(&format!("$JS.API.STREAM.INFO.{stream}")).await
    }

    /// A JetStream API request to whichever running node answers.
    async fn api(&self, subject: &str) -> anyhow::Result<Value> {
        let urls = self
            .running()
            .into_iter()
            .map(|n| self.url(n))
            .collect::<Vec<_>>()
            .join(",");
        if urls.is_empty() {
            bail!("no node is running");
        }
        api_request(&urls, subject)
            .await
            .map_err(anyhow::Error::msg)
    }

    /// Where the stream's replicas are, and which node leads it.
    pub async fn stream_placement(&self, stream: &str) -> anyhow::Result<StreamPlacement> {
        let info = self.stream_info(stream).await?;
        let node = |name: &str| {
            self.node_named(name)
                .with_context(|| format!("{stream}: unknown server {name}"))
        };
        let leader = info["cluster"]["leader"]
            .as_str()
            .filter(|l| !l.is_empty())
            .with_context(|| format!("{stream} has no leader: {}", info["cluster"]))?;
        let mut followers = Vec::new();
        for replica in info["cluster"]["replicas"].as_array().into_iter().flatten() {
            followers.push((
                node(replica["name"].as_str().unwrap_or_default())?,
                replica["current"].as_bool().unwrap_or(false),
                replica["lag"].as_u64().unwrap_or(0),
            ));
        }
        Ok(StreamPlacement {
            configured_replicas: usize::try_from(
                info["config"]["num_replicas"].as_u64().unwrap_or(1),
            )
            .unwrap_or(1),
            leader: node(leader)?,
            followers,
        })
    }

    /// The node that leads the stream now.
    pub async fn stream_leader(&self, stream: &str) -> anyhow::Result<usize> {
        Ok(self.stream_placement(stream).await?.leader)
    }

    /// Waits until the stream has a leader other than `not` (a node just killed), and returns it.
    pub async fn wait_stream_leader(
        &self,
        stream: &str,
        not: Option<usize>,
        within: Duration,
    ) -> anyhow::Result<usize> {
        eventually_ok(&format!("a leader of {stream}"), within, || async {
            match self.stream_leader(stream).await {
                Ok(leader) if Some(leader) != not => Ok(leader),
                Ok(leader) => Err(format!("still led by {}", self.name(leader))),
                Err(e) => Err(e.to_string()),
            }
        })
        .await
        .map_err(anyhow::Error::msg)
    }

    /// Asks the stream's leader to step down (`$JS.API.STREAM.LEADER.STEPDOWN.<stream>`): the
    /// replicas elect a new one.
    pub async fn step_down_stream(&self, stream: &str) -> anyhow::Result<()> {
        self.api(&format!("$JS.API.STREAM.LEADER.STEPDOWN.{stream}"))
            .await?;
        Ok(())
    }

    /// What each running node holds of the stream, by its own account (its monitoring endpoint,
    /// `/jsz`): messages, first and last sequence. Replicas that agree hold the same.
    pub async fn replica_states(&self, stream: &str) -> anyhow::Result<Vec<ReplicaState>> {
        let mut states = Vec::new();
        for node in self.running() {
            let body: Value = reqwest::Client::new()
                .get(format!(
                    "{}/jsz?accounts=true&streams=true",
                    self.monitor_url(node)
                ))
                .timeout(Duration::from_secs(5))
                .send()
                .await?
                .json()
                .await?;
            let found = body["account_details"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|a| a["stream_detail"].as_array().into_iter().flatten())
                .find(|s| s["name"] == stream);
            if let Some(detail) = found {
                let state = &detail["state"];
                states.push(ReplicaState {
                    node,
                    messages: state["messages"].as_u64().unwrap_or(0),
                    first_seq: state["first_seq"].as_u64().unwrap_or(0),
                    last_seq: state["last_seq"].as_u64().unwrap_or(0),
                });
            }
        }
        Ok(states)
    }

    /// Waits until every replica of the stream is current (a restarted node has caught up).
    pub async fn wait_stream_current(&self, stream: &str, within: Duration) -> anyhow::Result<()> {
        eventually_ok(
            &format!("every replica of {stream} current"),
            within,
            || async {
                let placement = self
                    .stream_placement(stream)
                    .await
                    .map_err(|e| e.to_string())?;
                if placement.all_current()
                    && placement.followers.len() + 1 >= placement.configured_replicas
                {
                    Ok(())
                } else {
                    Err(format!("{placement:?}"))
                }
            },
        )
        .await
        .map_err(anyhow::Error::msg)
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(child) = node.child.as_mut() {
                let _ = child.start_kill();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The meta leader a node's monitor reports (`/jsz`, `meta_cluster.leader`).
async fn meta_leader_seen(monitor: &str) -> Result<String, String> {
    let body: Value = reqwest::Client::new()
        .get(format!("{monitor}/jsz"))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    match body["meta_cluster"]["leader"].as_str() {
        Some(leader) if !leader.is_empty() => Ok(leader.to_owned()),
        _ => Err(format!("no meta leader: {}", body["meta_cluster"])),
    }
}

/// A JetStream API request with an empty body, over a connection to `urls`; an error answer
/// (`{"error": ...}`) is an error.
async fn api_request(urls: &str, subject: &str) -> Result<Value, String> {
    let servers: Vec<&str> = urls.split(',').collect();
    let client = async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(2))
        .request_timeout(Some(Duration::from_secs(3)))
        .connect(servers)
        .await
        .map_err(|e| format!("connecting to {urls}: {e}"))?;
    let answer = client
        .request(subject.to_owned(), bytes::Bytes::new())
        .await
        .map_err(|e| format!("{subject}: {e}"));
    drop(client);
    let body: Value = serde_json::from_slice(&answer?.payload).map_err(|e| e.to_string())?;
    if body.get("error").is_some() {
        return Err(format!("{subject}: {}", body["error"]));
    }
    Ok(body)
}
