//! A trial's shape, defined once: the flags `herd run` and every
//! `leaf-agent` of the trial take alike (agents, tasks, seed, the modes and
//! the workload), with their `HERD_*` environment fallbacks. herd parses
//! them, keeps them in its trial's configuration and hands them on to each
//! leaf with [`TrialSpec::to_args`], which reads the flag names from the
//! same clap definition and the values from the same serde one: a new knob
//! is one field here, and reaches every leaf without another edit. The
//! modes are parsed by their `FromStr` (`flag_value!`), whose refusal names
//! the values expected.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::wire::{CatchUp, HubKind, LandingStrategy, LeafMode};
use crate::workload::{Mode, WorkloadArgs};

/// The shape of a trial: what herd and every leaf-agent of it agree on.
#[derive(clap::Args, Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialSpec {
    /// Leaf-agent processes (slots). More than the machine holds (open
    /// files under the hard RLIMIT_NOFILE; MemAvailable at 4 MiB per
    /// sparse leaf or 10 MiB per full one, plus what the trial writes when
    /// its work directory is on tmpfs) is refused before anything starts;
    /// in shared mode the pool holds agents × tasks tasks.
    #[arg(long, env = "HERD_AGENTS", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub agents: u32,
    /// Tasks per agent.
    #[arg(long, env = "HERD_TASKS_PER_AGENT", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..))]
    pub tasks: u32,
    /// Workload seed; the same seed gives the same commits.
    #[arg(long, env = "HERD_SEED", default_value_t = 1)]
    pub seed: u64,
    /// The files, sizes, think times and hot files of each task.
    #[command(flatten)]
    #[serde(flatten)]
    pub workload: WorkloadArgs,
    /// `disjoint`: each slot its own tasks; `shared`: all slots race for one pool.
    #[arg(long, env = "HERD_MODE", default_value = "disjoint", value_parser = <Mode as FromStr>::from_str)]
    pub mode: Mode,
    /// The hub: `herd` (herd's hub: a linear trunk, tip broadcasts),
    /// `fossil` (a stock `fossil server` from PATH) or `git` (a stock git
    /// server), the last two for side-by-side measurements. With `fossil`
    /// each leaf pulls, commits on its trunk tip and pushes with Fossil's
    /// plain protocol; fossil accepts forks, so the verdict asks only that
    /// every task's check-in reached the server (hub commits == tasks) and
    /// reports forks (trunk leaves − 1) without failing on them. Hub
    /// requests/commit and hub memory are then n/a (null). `git`: a stock
    /// `git daemon` over a bare repository that refuses non-fast-forward
    /// pushes; each leaf drives the real `git` in its own clone (pull,
    /// commit, push; a rejected push is followed by `git pull --rebase` and
    /// another push, a fork retry). Landing and catch-up are then ignored;
    /// `--leaf full` pulls before each task.
    #[arg(long, env = "HERD_HUB_KIND", default_value = "herd", value_parser = <HubKind as FromStr>::from_str)]
    pub hub_kind: HubKind,
    /// Who lands a check-in whose parent went stale: `hub` (the default: a
    /// leaf asks the hub to write its check-in anew on the trunk tip,
    /// merging by lines a file that also changed on trunk since its parent,
    /// and refusing only lines both sides changed; many such landings share
    /// one transaction) or `leaf` (the predecessor's protocol: the push
    /// waits its turn, is refused with the new tip, and the leaf rebases
    /// and pushes again). Ignored with `--hub-kind fossil` and `git`.
    #[arg(long, env = "HERD_LANDING", default_value = "hub", value_parser = <LandingStrategy as FromStr>::from_str)]
    pub landing: LandingStrategy,
    /// What a leaf keeps: `full` (the default: every trunk artifact, and
    /// before each task its worktree is brought to the newest trunk tip it
    /// knows, with one pull for everything it missed) or `sparse` (other
    /// slots' manifests only, never their files: the landing path alone).
    /// Ignored with `--hub-kind fossil`; with `git`, sparse leaves do not
    /// pull before each task.
    #[arg(long, env = "HERD_LEAF", default_value = "full", value_parser = <LeafMode as FromStr>::from_str)]
    pub leaf: LeafMode,
    /// How a full leaf gets the check-ins it missed: `stream` (the
    /// default: the hub publishes each landed batch once, with its
    /// artifacts, on the JetStream tip stream and NATS fans it out; leaves
    /// apply it from the stream, and a gap costs one pull) or `pull` (each
    /// full leaf pulls from the hub before each task). Sparse leaves ignore
    /// it; so do --hub-kind fossil and git.
    #[arg(long, env = "HERD_CATCH_UP", default_value = "stream", value_parser = <CatchUp as FromStr>::from_str)]
    pub catch_up: CatchUp,
}

/// Where one leaf-agent runs and whom it talks to: the flags of a slot,
/// which herd gives each leaf besides the trial's [`TrialSpec`].
#[derive(clap::Args, Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeafPlace {
    /// The hub's sync URL, e.g. http://127.0.0.1:41234.
    #[arg(long)]
    pub hub: String,
    /// The NATS server (with JetStream), or several, comma separated: the
    /// client uses one and moves to another when it goes away. With a NATS
    /// cluster that has a JetStream domain, set $HERD_NATS_DOMAIN (and
    /// $HERD_NATS_REPLICAS) as herd does.
    #[arg(long, env = "HERD_NATS_URL")]
    pub nats_url: String,
    /// This leaf's slot index.
    #[arg(long)]
    pub slot: u32,
    /// The slot's directory (leaf.fossil and the worktree wt/).
    #[arg(long)]
    pub workdir: std::path::PathBuf,
}

impl TrialSpec {
    /// The spec as the command-line words that give it back (see
    /// [`args_of`]).
    pub fn to_args(&self) -> Vec<String> {
        args_of(self)
    }
}

impl LeafPlace {
    /// The slot's flags as command-line words (see [`args_of`]).
    pub fn to_args(&self) -> Vec<String> {
        args_of(self)
    }
}

/// `value` as the command-line words that give it back: `--flag value` for
/// every field (a switch only when on), flag names from its clap
/// definition, values as serde writes them. Every field is written, so a
/// child's own environment cannot change what it runs.
fn args_of<T: clap::Args + Serialize>(value: &T) -> Vec<String> {
    let values = serde_json::to_value(value).unwrap_or_default();
    let command = T::augment_args(clap::Command::new("args"));
    let mut args = Vec::new();
    for arg in command.get_arguments() {
        let (Some(long), Some(value)) = (arg.get_long(), values.get(arg.get_id().as_str())) else {
            continue;
        };
        match value {
            serde_json::Value::Bool(true) => args.push(format!("--{long}")),
            serde_json::Value::String(s) => args.extend([format!("--{long}"), s.clone()]),
            serde_json::Value::Number(n) => args.extend([format!("--{long}"), n.to_string()]),
            _ => {}
        }
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Parsed {
        #[command(flatten)]
        spec: TrialSpec,
    }

    #[derive(Parser)]
    struct Placed {
        #[command(flatten)]
        place: LeafPlace,
    }

    fn parse(args: &[String]) -> TrialSpec {
        Parsed::try_parse_from(std::iter::once("leaf".to_string()).chain(args.iter().cloned()))
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
            .spec
    }

    #[test]
    fn a_spec_survives_its_own_command_line() {
        let defaults = parse(&[]);
        let mut spec = defaults.clone();
        spec.agents = 7;
        spec.tasks = 11;
        spec.seed = 1 << 40;
        spec.mode = Mode::Shared;
        spec.hub_kind = HubKind::Fossil;
        spec.landing = LandingStrategy::Leaf;
        spec.leaf = LeafMode::Sparse;
        spec.catch_up = CatchUp::Pull;
        spec.workload.min_files = 2;
        spec.workload.max_think_ms = 0;
        spec.workload.overlap = 0.35;
        spec.workload.hot_append = 0.125;
        spec.workload.hold_hot = true;
        let args = spec.to_args();
        assert_eq!(parse(&args), spec, "{args:?}");
        assert_eq!(parse(&defaults.to_args()), defaults);
        assert_eq!(
            defaults.workload,
            WorkloadArgs::of(&crate::workload::WorkloadConfig::default()),
            "the flags' defaults are the workload's"
        );
        // Every field is on the line, each once.
        let flags: Vec<&String> = args.iter().filter(|a| a.starts_with("--")).collect();
        let unique: std::collections::BTreeSet<&&String> = flags.iter().collect();
        assert_eq!(unique.len(), flags.len(), "{flags:?}");
        for flag in [
            "--agents",
            "--seed",
            "--catch-up",
            "--hot-append",
            "--hold-hot",
        ] {
            assert!(args.iter().any(|a| a == flag), "{flag} in {args:?}");
        }
    }

    /// serde's name for `v` is its flag spelling.
    fn same_names<T: clap::ValueEnum + Serialize + std::fmt::Display>() {
        for v in T::value_variants() {
            let serde = serde_json::to_value(v).unwrap();
            assert_eq!(serde, serde_json::json!(v.to_string()));
        }
    }

    #[test]
    fn every_mode_has_one_spelling_in_flags_json_and_summaries() {
        same_names::<Mode>();
        same_names::<HubKind>();
        same_names::<LandingStrategy>();
        same_names::<LeafMode>();
        same_names::<CatchUp>();
        assert_eq!("shared".parse::<Mode>(), Ok(Mode::Shared));
        assert_eq!(
            "both".parse::<Mode>().unwrap_err(),
            "unknown mode \"both\" (expected disjoint or shared)"
        );
        assert_eq!(crate::flag::expected::<HubKind>(), "herd, fossil or git");
    }

    #[test]
    fn a_slot_s_place_survives_its_own_command_line() {
        let place = LeafPlace {
            hub: "http://10.213.7.2:41234".into(),
            nats_url: "nats://10.213.7.3:4222,nats://10.213.7.2:4222".into(),
            slot: 12,
            workdir: "/tmp/w/slot-12".into(),
        };
        let args = place.to_args();
        let parsed =
            Placed::try_parse_from(std::iter::once("leaf".to_string()).chain(args.clone()))
                .unwrap_or_else(|e| panic!("{args:?}: {e}"));
        assert_eq!(parsed.place, place);
    }
}
