//! Access: who gets into a hub and a trial's nats-server. Real hub binaries
//! and the real `fossil` client against a hub that requires login, our own
//! client with and without a login card, and a real `herd run` whose
//! children must carry their secrets in the environment, never in argv.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use herd::coord::Secret;
use herd::hub::{Hub, HubConfig, HubUser};
use herd::repo::{CheckinSpec, FileChange, Repository};
use herd::xfer::login::shared_secret;
use herd::xfer::{Client, PushOutcome};
use tempfile::TempDir;

use crate::helpers::{children_named, fossil, fossil_ok, fossil_sql, HubProcess};

/// A `hub` binary started with a secret in its environment.
struct SecretHub {
    hub: HubProcess,
    http: String,
    project_code: String,
}

impl SecretHub {
    fn start(repo: &Path, secret: &str, args: &[&str]) -> SecretHub {
        let hub = HubProcess::start_with_env(repo, None, args, &[(herd::env::HUB_SECRET, secret)]);
        let (http, project_code) = (hub.ready.http.clone(), hub.ready.project_code.clone());
        SecretHub {
            hub,
            http,
            project_code,
        }
    }

    fn trunk_commits(&self) -> u64 {
        self.hub.stat("trunk_commits")
    }

    /// The sync URL with `userinfo@` spliced in.
    fn url_as(&self, userinfo: &str) -> String {
        let hostport = self.http.trim_start_matches("http://");
        if userinfo.is_empty() {
            format!("http://{hostport}/")
        } else {
            format!("http://{userinfo}@{hostport}/")
        }
    }
}

fn output_text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn a_non_loopback_hub_needs_a_user_or_allow_anonymous() {
    let tmp = TempDir::new().unwrap();
    let repo = tmp.path().join("hub.fossil");
    let run = |args: &[&str], secret: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hub"));
        cmd.arg("--repo")
            .arg(&repo)
            .args(args)
            .env_remove(herd::env::HUB_USER)
            .env_remove(herd::env::HUB_SECRET)
            .stdin(Stdio::null());
        if let Some(s) = secret {
            cmd.env(herd::env::HUB_SECRET, s);
        }
        cmd.output().expect("run the hub binary")
    };
    // Refused before anything binds or is created.
    let out = run(&["--listen", "0.0.0.0:0"], None);
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    let text = output_text(&out);
    assert!(text.contains("--allow-anonymous"), "{text}");
    assert_eq!(text.lines().count(), 1, "one clear line: {text}");
    assert!(!repo.exists(), "nothing is created for a refused start");
    // A user without a secret in the environment is a usage error too.
    let out = run(&["--user", "alice"], None);
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    assert!(output_text(&out).contains(herd::env::HUB_SECRET));
    // And so is a login that cannot log in.
    let out = run(&["--user", "nobody"], Some("x"));
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    assert!(output_text(&out).contains("cannot log in"));
}

#[test]
fn real_fossil_gets_in_only_with_the_right_login() {
    let tmp = TempDir::new().unwrap();
    let home = tmp.path();
    let hub_repo = tmp.path().join("hub.fossil");
    let hub = SecretHub::start(&hub_repo, "s3cret", &["--user", "alice", "--require-login"]);

    // Stored as fossil 2.21 stores it; the new repository's nobody has nothing.
    let pw = fossil_sql(home, &hub_repo, "SELECT pw FROM user WHERE login='alice'");
    assert_eq!(pw, shared_secret(&hub.project_code, "alice", "s3cret"));
    let caps = fossil_sql(home, &hub_repo, "SELECT cap FROM user WHERE login='alice'");
    assert_eq!(caps, "gio");
    let nobody = fossil_sql(home, &hub_repo, "SELECT cap FROM user WHERE login='nobody'");
    assert_eq!(nobody, "");

    // No login, wrong password: no clone.
    let anon = fossil(home, home, &["clone", &hub.url_as(""), "anon.fossil"]);
    let text = output_text(&anon);
    assert!(!anon.status.success(), "{text}");
    assert!(text.contains("not authorized to clone"), "{text}");
    let wrong = fossil(
        home,
        home,
        &["clone", &hub.url_as("alice:wrong"), "w.fossil"],
    );
    let text = output_text(&wrong);
    assert!(!wrong.status.success(), "{text}");
    assert!(text.contains("login failed"), "{text}");

    // The right login clones; a commit is then pushed three ways.
    let clone = tmp.path().join("c.fossil");
    fossil_ok(
        home,
        home,
        &[
            "clone",
            &hub.url_as("alice:s3cret"),
            clone.to_str().unwrap(),
        ],
    );
    let work = tmp.path().join("wt");
    std::fs::create_dir(&work).unwrap();
    fossil_ok(home, &work, &["open", clone.to_str().unwrap(), "--nosync"]);
    fossil_ok(home, &work, &["settings", "autosync", "off"]);
    std::fs::write(work.join("a.txt"), "hello\n").unwrap();
    fossil_ok(home, &work, &["add", "a.txt"]);
    fossil_ok(home, &work, &["commit", "-m", "by alice", "--no-warnings"]);
    let before = hub.trunk_commits();

    let text = fossil_ok(home, &work, &["push", &hub.url_as("")]);
    assert!(text.contains("not authorized to write"), "{text}");
    let text = fossil_ok(home, &work, &["push", &hub.url_as("alice:wrong")]);
    assert!(text.contains("login failed"), "{text}");
    assert_eq!(hub.trunk_commits(), before, "refused pushes land nothing");

    let text = fossil_ok(home, &work, &["push", &hub.url_as("alice:s3cret")]);
    assert!(!text.contains("Error"), "{text}");
    assert_eq!(hub.trunk_commits(), before + 1);
    let local_tip = fossil_sql(
        home,
        &clone,
        "SELECT uuid FROM blob JOIN event ON event.objid=blob.rid \
         WHERE event.type='ci' ORDER BY event.mtime DESC LIMIT 1",
    );
    let hub_tip = fossil_sql(
        home,
        &hub_repo,
        "SELECT uuid FROM blob JOIN event ON event.objid=blob.rid \
         WHERE event.type='ci' ORDER BY event.mtime DESC LIMIT 1",
    );
    assert_eq!(hub_tip, local_tip);
}

fn accepted(hub: &Hub) -> u64 {
    hub.counters()
        .pushes_accepted
        .load(std::sync::atomic::Ordering::Relaxed)
}

/// A hub in this process requiring login as alice/s3cret.
fn locked_hub(dir: &Path) -> Hub {
    let mut config = HubConfig::new(dir.join("hub.fossil"));
    config.threads = 2;
    config.require_login = true;
    config.users.push(HubUser {
        login: "alice".into(),
        password: Secret::new("s3cret"),
        caps: "gio".into(),
    });
    Hub::start(&config).expect("start the hub")
}

fn commit_on_tip(repo: &Repository, path: &str) -> herd::repo::ArtifactHash {
    let parent = repo.trunk_tip().unwrap().expect("a clone has a tip");
    repo.commit(&CheckinSpec {
        parent,
        changes: vec![FileChange {
            path: path.into(),
            content: Some(b"content\n".to_vec()),
        }],
        comment: "access test".into(),
        user: "alice".into(),
        time: SystemTime::now(),
    })
    .unwrap()
    .hash
}

#[test]
fn our_client_signs_every_request_and_anonymous_ones_are_refused() {
    let tmp = TempDir::new().unwrap();
    let hub = locked_hub(tmp.path());
    let url = format!("{}/", hub.ready().http);

    let err = Client::new(&url)
        .clone_into(&tmp.path().join("anon.fossil"))
        .expect_err("anonymous clone is refused");
    assert!(err.to_string().contains("not authorized to clone"), "{err}");
    let err = Client::new(&url)
        .with_login("alice", "wrong")
        .clone_into(&tmp.path().join("wrong.fossil"))
        .expect_err("a wrong password is refused");
    assert!(err.to_string().contains("login failed"), "{err}");

    let alice = Client::new(&url).with_login("alice", "s3cret");
    let repo = alice.clone_into(&tmp.path().join("c.fossil")).unwrap();
    let first = commit_on_tip(&repo, "a.txt");

    // The same check-in, pushed without a login, then with one.
    let anon = Client::new(&url);
    let refused = anon.push(&repo, std::slice::from_ref(&first));
    let text = match refused {
        Err(e) => e.to_string(),
        Ok(outcome) => panic!("anonymous push not refused: {outcome:?}"),
    };
    assert!(text.contains("not authorized to write"), "{text}");
    assert_eq!(accepted(&hub), 0);
    match alice.push(&repo, std::slice::from_ref(&first)).unwrap() {
        PushOutcome::Accepted { .. } => {}
        other => panic!("alice's push not accepted: {other:?}"),
    }
    // Pull and a second push, all signed.
    alice.pull(&repo).unwrap();
    let second = commit_on_tip(&repo, "b.txt");
    assert!(matches!(
        alice.push(&repo, &[second]).unwrap(),
        PushOutcome::Accepted { .. }
    ));
    assert_eq!(accepted(&hub), 2);
    hub.stop().unwrap();
}

/// `/proc/PID/cmdline` or `/proc/PID/environ` as its NUL-separated parts.
fn proc_parts(pid: u32, file: &str) -> Vec<String> {
    let raw = std::fs::read(format!("/proc/{pid}/{file}"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/{file}: {e}"));
    raw.split(|&b| b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect()
}

fn env_value(pid: u32, name: &str) -> Option<String> {
    let prefix = format!("{name}=");
    proc_parts(pid, "environ")
        .into_iter()
        .find_map(|kv| kv.strip_prefix(&prefix).map(str::to_string))
}

fn flag_value(cmdline: &[String], flag: &str) -> String {
    let i = cmdline
        .iter()
        .position(|a| a == flag)
        .unwrap_or_else(|| panic!("{flag} not in {cmdline:?}"));
    cmdline[i + 1].clone()
}

/// Waits (bounded) until `herd_pid` has `n` leaf-agents.
fn wait_for_leaves(herd_pid: u32, n: usize) -> Vec<u32> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let leaves = children_named(herd_pid, "leaf-agent");
        if leaves.len() >= n {
            return leaves;
        }
        assert!(Instant::now() < deadline, "herd did not start {n} leaves");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether a NATS client gets a working connection to `url` with `token`.
fn nats_accepts(url: &str, token: Option<&str>) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut options =
            async_nats::ConnectOptions::new().connection_timeout(Duration::from_secs(5));
        if let Some(t) = token {
            options = options.token(t.to_string());
        }
        let client = options.connect(url).await.map_err(|e| e.to_string())?;
        tokio::time::timeout(Duration::from_secs(5), client.flush())
            .await
            .map_err(|_| "no round trip within 5 s".to_string())?
            .map_err(|e| e.to_string())
    })
}

#[test]
fn herd_hands_secrets_to_children_in_the_environment_only() {
    let tmp = TempDir::new().unwrap();
    let workdir: PathBuf = tmp.path().join("trial");
    // herd_command clears the login variables (HERD_*): whatever the
    // children see, herd made.
    let child = crate::helpers::herd_command()
        .args(["run", "--agents", "2", "--tasks", "25", "--json"])
        .args(["--min-think-ms", "20", "--max-think-ms", "40"])
        .args(["--max-bytes", "300", "--timeout", "120"])
        .arg("--workdir")
        .arg(&workdir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start herd");
    let herd_pid = child.id();
    let leaves = wait_for_leaves(herd_pid, 2);
    let hubs = children_named(herd_pid, "hub");
    let nats = children_named(herd_pid, "nats-server");
    assert_eq!((hubs.len(), nats.len()), (1, 1), "hub and nats-server");

    let leaf = leaves[0];
    let secret = env_value(leaf, herd::env::HUB_SECRET).expect("the leaf has the hub secret");
    let token = env_value(leaf, herd::env::NATS_TOKEN).expect("the leaf has the nats token");
    assert_eq!(
        env_value(leaf, herd::env::HUB_USER).as_deref(),
        Some("herd")
    );
    assert!(secret.len() >= 32 && token.len() >= 32 && secret != token);
    assert_eq!(
        env_value(hubs[0], herd::env::HUB_SECRET),
        Some(secret.clone())
    );
    assert_eq!(
        env_value(hubs[0], herd::env::NATS_TOKEN),
        Some(token.clone())
    );
    for &pid in leaves.iter().chain(&hubs).chain(&nats) {
        let cmdline = proc_parts(pid, "cmdline").join(" ");
        assert!(
            !cmdline.contains(&secret) && !cmdline.contains(&token),
            "a secret in argv of {pid}: {cmdline}"
        );
    }
    let nats_cmdline = proc_parts(nats[0], "cmdline");
    assert_eq!(flag_value(&nats_cmdline, "-a"), "127.0.0.1");
    let conf = workdir.join("nats.conf");
    let mode = std::fs::metadata(&conf).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{}", conf.display());

    // The trial's doors: nats without the token, the hub without the login.
    let leaf_cmdline = proc_parts(leaf, "cmdline");
    let nats_url = flag_value(&leaf_cmdline, "--nats-url");
    let refused = nats_accepts(&nats_url, None).expect_err("nats without the token");
    assert!(
        refused.to_lowercase().contains("authorization"),
        "{refused}"
    );
    nats_accepts(&nats_url, Some(&token)).expect("nats with the token");
    nats_accepts(&nats_url, Some("not-the-token")).expect_err("nats with a wrong token");
    let hub_url = format!("{}/", flag_value(&leaf_cmdline, "--hub"));
    let err = Client::new(&hub_url)
        .clone_into(&tmp.path().join("intruder.fossil"))
        .expect_err("an anonymous clone of the trial's hub");
    assert!(err.to_string().contains("not authorized to clone"), "{err}");

    // The trial itself is untouched by all this.
    let out = child.wait_with_output().expect("wait for herd");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "herd failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).expect("--json report");
    assert_eq!(report["hub_commits"].as_u64(), Some(50), "{report}");
    assert_eq!(report["trunk_leaves"].as_u64(), Some(1), "{report}");
}
