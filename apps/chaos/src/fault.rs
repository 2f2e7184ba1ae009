//! The faults `saga-chaos` injects: one enum, so that a fault it does not know is refused when
//! the command line is read, and every `match` on a fault names them all.

use clap::ValueEnum;

/// One fault, as `--faults` names it (`kill-order-service`, `nats-down`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, ValueEnum)]
pub enum Fault {
    /// SIGKILL of one instance of order-service, started again at once.
    KillOrderService,
    /// SIGKILL of one instance of payment-service, started again at once.
    KillPaymentService,
    /// SIGKILL of one instance of inventory-service, started again at once.
    KillInventoryService,
    /// SIGKILL of one instance of saga-coordinator, started again at once.
    KillSagaCoordinator,
    /// SIGKILL of the second instance of every service at once, started again at once.
    KillOneOfEachPair,
    /// The nats-server SIGKILLed and started again at once, its store kept (one server only).
    RestartNatsServer,
    /// Every PostgreSQL server crashes (immediate shutdown, no checkpoint) and starts again.
    RestartPostgresql,
    /// Every PostgreSQL server is restarted as an operator restarts it (fast shutdown: sessions
    /// ended, a checkpoint), and starts again.
    RestartPostgresqlCleanly,
    /// payment-service's own PostgreSQL stopped (fast shutdown) for the hold time under load,
    /// while its HTTP API is probed: every answer must be quick, and a 503 where it needs the
    /// database.
    PaymentDbDown,
    /// The one nats-server SIGKILLed and kept down for the hold time, then started again with its
    /// store (one server only).
    NatsDown,
    /// JetStream's store filled up to its limit by a stream of the harness's own, so that every
    /// publish is refused, for the hold time; then that stream is deleted (one server only).
    StoreFull,
    /// payment-service's gateway answers after 2 s (`PUT /admin/simulation {"latencyMs": 2000}`)
    /// for the hold time under load, then at once again.
    SlowPayment,
    /// Orders placed and cancelled while both instances of payment-service and
    /// inventory-service are down.
    CancelBeforeCreate,
    /// Bad JSON and a version-99 envelope on every subject.
    Poison,
    /// SIGKILL of the node that leads `ORDERS`, `PAYMENTS`, `INVENTORY`, `SAGAS` in turn (cluster).
    KillStreamLeader,
    /// SIGKILL of the node that leads JetStream's meta group (cluster).
    KillMetaLeader,
    /// SIGKILL of any node (cluster).
    KillNode,
    /// SIGTERM of any node, kept down for three saga deadlines (cluster).
    StopNodePastDeadline,
    /// Each node stopped and started again in turn (cluster).
    RollingRestart,
}

/// Where a fault can be injected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Needs {
    /// One nats-server or a cluster.
    Either,
    /// One nats-server.
    Single,
    /// A three-node cluster (`--cluster`).
    Cluster,
}

impl Fault {
    /// The faults with one nats-server, in the order they are injected, round after round:
    /// every fault that needs no cluster.
    pub const SCHEDULE: [Fault; 14] = [
        Fault::KillOrderService,
        Fault::KillPaymentService,
        Fault::KillInventoryService,
        Fault::KillSagaCoordinator,
        Fault::KillOneOfEachPair,
        Fault::RestartNatsServer,
        Fault::RestartPostgresql,
        Fault::CancelBeforeCreate,
        Fault::Poison,
        Fault::RestartPostgresqlCleanly,
        Fault::SlowPayment,
        Fault::StoreFull,
        Fault::PaymentDbDown,
        Fault::NatsDown,
    ];

    /// The faults with NATS as a cluster: the node faults in place of the one server's, spread
    /// among the others.
    pub const CLUSTER_SCHEDULE: [Fault; 16] = [
        Fault::KillOrderService,
        Fault::KillStreamLeader,
        Fault::KillPaymentService,
        Fault::KillMetaLeader,
        Fault::KillInventoryService,
        Fault::KillNode,
        Fault::KillSagaCoordinator,
        Fault::StopNodePastDeadline,
        Fault::KillOneOfEachPair,
        Fault::RollingRestart,
        Fault::RestartPostgresql,
        Fault::CancelBeforeCreate,
        Fault::Poison,
        Fault::RestartPostgresqlCleanly,
        Fault::SlowPayment,
        Fault::PaymentDbDown,
    ];

    /// What the report calls it (the keys of `recoveryByKind`).
    pub fn label(self) -> &'static str {
        match self {
            Fault::KillOrderService => "kill order-service",
            Fault::KillPaymentService => "kill payment-service",
            Fault::KillInventoryService => "kill inventory-service",
            Fault::KillSagaCoordinator => "kill saga-coordinator",
            Fault::KillOneOfEachPair => "kill one of each pair",
            Fault::RestartNatsServer => "restart nats-server",
            Fault::RestartPostgresql => "restart postgresql",
            Fault::RestartPostgresqlCleanly => "restart postgresql cleanly",
            Fault::PaymentDbDown => "payment-service's postgresql down",
            Fault::NatsDown => "nats-server down",
            Fault::StoreFull => "jetstream store full",
            Fault::SlowPayment => "payment-service slow",
            Fault::CancelBeforeCreate => "cancel before create",
            Fault::Poison => "poison",
            Fault::KillStreamLeader => "kill a stream leader",
            Fault::KillMetaLeader => "kill the meta leader",
            Fault::KillNode => "kill a node",
            Fault::StopNodePastDeadline => "stop a node past the deadline",
            Fault::RollingRestart => "rolling restart",
        }
    }

    /// The name `--faults` takes.
    pub fn name(self) -> String {
        self.to_possible_value()
            .map(|v| v.get_name().to_owned())
            .unwrap_or_default()
    }

    /// The service a `kill-*-service` fault kills.
    pub fn service_killed(self) -> Option<&'static str> {
        match self {
            Fault::KillOrderService => Some("order-service"),
            Fault::KillPaymentService => Some("payment-service"),
            Fault::KillInventoryService => Some("inventory-service"),
            Fault::KillSagaCoordinator => Some("saga-coordinator"),
            Fault::KillOneOfEachPair
            | Fault::RestartNatsServer
            | Fault::RestartPostgresql
            | Fault::RestartPostgresqlCleanly
            | Fault::PaymentDbDown
            | Fault::NatsDown
            | Fault::StoreFull
            | Fault::SlowPayment
            | Fault::CancelBeforeCreate
            | Fault::Poison
            | Fault::KillStreamLeader
            | Fault::KillMetaLeader
            | Fault::KillNode
            | Fault::StopNodePastDeadline
            | Fault::RollingRestart => None,
        }
    }

    /// Whether it lasts the hold time (`--hold-seconds`): its recovery counts from its end.
    pub fn lasts(self) -> bool {
        match self {
            Fault::PaymentDbDown | Fault::NatsDown | Fault::StoreFull | Fault::SlowPayment => true,
            Fault::KillOrderService
            | Fault::KillPaymentService
            | Fault::KillInventoryService
            | Fault::KillSagaCoordinator
            | Fault::KillOneOfEachPair
            | Fault::RestartNatsServer
            | Fault::RestartPostgresql
            | Fault::RestartPostgresqlCleanly
            | Fault::CancelBeforeCreate
            | Fault::Poison
            | Fault::KillStreamLeader
            | Fault::KillMetaLeader
            | Fault::KillNode
            | Fault::StopNodePastDeadline
            | Fault::RollingRestart => false,
        }
    }

    pub fn needs(self) -> Needs {
        match self {
            Fault::KillOrderService
            | Fault::KillPaymentService
            | Fault::KillInventoryService
            | Fault::KillSagaCoordinator
            | Fault::KillOneOfEachPair
            | Fault::RestartPostgresql
            | Fault::RestartPostgresqlCleanly
            | Fault::PaymentDbDown
            | Fault::SlowPayment
            | Fault::CancelBeforeCreate
            | Fault::Poison => Needs::Either,
            // A cluster has a fault of its own for each: a node down, stream leaders killed.
            Fault::RestartNatsServer | Fault::NatsDown | Fault::StoreFull => Needs::Single,
            Fault::KillStreamLeader
            | Fault::KillMetaLeader
            | Fault::KillNode
            | Fault::StopNodePastDeadline
            | Fault::RollingRestart => Needs::Cluster,
        }
    }

    /// The schedule of a mode.
    pub fn schedule(cluster: bool) -> &'static [Fault] {
        if cluster {
            &Fault::CLUSTER_SCHEDULE
        } else {
            &Fault::SCHEDULE
        }
    }
}

/// The faults given, checked against the mode: a cluster fault without `--cluster`, or a
/// one-server fault with it, is refused with the faults the mode takes.
pub fn check_schedule(faults: &[Fault], cluster: bool) -> Result<(), String> {
    let wrong: Vec<String> = faults
        .iter()
        .filter(|f| match f.needs() {
            Needs::Either => false,
            Needs::Single => cluster,
            Needs::Cluster => !cluster,
        })
        .map(|f| f.name())
        .collect();
    if wrong.is_empty() {
        return Ok(());
    }
    let mode = if cluster {
        "with --cluster"
    } else {
        "without --cluster"
    };
    let takes: Vec<String> = Fault::schedule(cluster).iter().map(|f| f.name()).collect();
    Err(format!(
        "{} cannot be injected {mode}; the faults {mode}: {}",
        wrong.join(", "),
        takes.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fault_is_in_a_schedule_it_can_run_in() {
        for fault in Fault::value_variants() {
            let single = Fault::SCHEDULE.contains(fault);
            let cluster = Fault::CLUSTER_SCHEDULE.contains(fault);
            assert!(single || cluster, "{fault:?} is in no schedule");
            assert_eq!(single, fault.needs() != Needs::Cluster, "{fault:?}");
            assert_eq!(cluster, fault.needs() != Needs::Single, "{fault:?}");
        }
        assert!(check_schedule(&Fault::SCHEDULE, false).is_ok());
        assert!(check_schedule(&Fault::CLUSTER_SCHEDULE, true).is_ok());
    }

    #[test]
    fn a_fault_is_parsed_by_its_name_and_a_misspelt_one_is_refused() {
        assert_eq!(
            Fault::from_str("kill-order-service", false),
            Ok(Fault::KillOrderService)
        );
        assert_eq!(Fault::from_str("nats-down", false), Ok(Fault::NatsDown));
        assert!(Fault::from_str("kill-order-servce", false).is_err());
        assert!(Fault::from_str("kill order-service", false).is_err());
        for fault in Fault::value_variants() {
            assert_eq!(Fault::from_str(&fault.name(), false), Ok(*fault));
        }
    }

    #[test]
    fn a_fault_of_the_other_mode_is_refused_naming_it() {
        let e = check_schedule(&[Fault::Poison, Fault::KillNode], false).unwrap_err();
        assert!(
            e.starts_with("kill-node cannot be injected without --cluster"),
            "{e}"
        );
        let e = check_schedule(&[Fault::StoreFull], true).unwrap_err();
        assert!(
            e.starts_with("store-full cannot be injected with --cluster"),
            "{e}"
        );
    }

    #[test]
    fn labels_are_distinct() {
        let labels: std::collections::BTreeSet<&str> =
            Fault::value_variants().iter().map(|f| f.label()).collect();
        assert_eq!(labels.len(), Fault::value_variants().len());
    }
}
