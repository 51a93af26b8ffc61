//! The `stratus` binary as operators run it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use stratus_rpc::clients::ComputeClient;
use stratus_rpc::transport::amqp::AmqpTransport;
use stratus_rpc::wire::compute::InstanceRef;
use stratus_rpc::wire::ids::InstanceId;
use stratus_rpc::{RequestContext, RpcClient, Transport};
use stratus_test_support::broker::{self, amqp_url};
use stratus_test_support::command;
use stratus_test_support::workspace::stratus_bin;

/// Kills the child if the test fails before stopping it.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status()
        .expect("kill runs");
    assert!(status.success());
}

/// Sends `signal`; the child must exit within 10 s, successfully.
fn stop_cleanly(child: &mut Child, name: &str) {
    signal(child, name);
    let status = wait_exit(child, Duration::from_secs(10));
    assert!(status.success(), "exit status {status}");
}

/// Waits for the child to exit, at most `within`.
fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "did not exit within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn help_lists_every_service() {
    let out = Command::new(stratus_bin())
        .arg("--help")
        .output()
        .expect("run");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for command in [
        "api",
        "scheduler",
        "compute",
        "network",
        "all-in-one",
        "bench",
    ] {
        assert!(
            help.contains(&format!("  {command} ")),
            "--help lacks {command}:\n{help}"
        );
    }
}

#[test]
fn a_missing_config_file_is_a_config_error_with_its_path() {
    let out = Command::new(stratus_bin())
        .args(["--config", "/nonexistent/stratus.toml", "compute"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/nonexistent/stratus.toml"), "{stderr}");
}

/// `stratus --config path config show`, run to its end.
fn config_show(path: &std::path::Path) -> std::process::Output {
    Command::new(stratus_bin())
        .arg("--config")
        .arg(path)
        .args(["config", "show"])
        .output()
        .expect("run")
}

#[test]
fn an_unknown_key_is_refused_by_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("stratus.toml");
    std::fs::write(&path, "[rpc]\nexchnage = \"typo\"\n").expect("write");
    let out = config_show(&path);
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("exchnage"));
}

#[test]
fn scheduler_settings_that_cannot_work_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("stratus.toml");
    for (text, says) in [
        (
            "[scheduler]\nmax_attempts = 0\n",
            "max_attempts must be at least 1",
        ),
        (
            "[scheduler]\nram_allocation_ratio = -1.0\n",
            "ram_allocation_ratio",
        ),
        (
            "[scheduler]\nfilters = [\"NoSuchFilter\"]\n",
            "NoSuchFilter",
        ),
        ("[scheduler]\ndriver = \"best\"\n", "best"),
    ] {
        std::fs::write(&path, text).expect("write");
        let out = config_show(&path);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(78), "{text}: {stderr}");
        assert!(stderr.contains(says), "{text}: {stderr}");
    }
}

#[test]
fn an_unreachable_broker_fails_fast_with_a_message() {
    let out = Command::new(stratus_bin())
        .arg("compute")
        .env("STRATUS_RPC__URL", "amqp://guest:hunter2@127.0.0.1:1/%2f")
        .env("STRATUS_NODE__HOST", "testhost")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("127.0.0.1:1"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "password printed: {stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compute_serves_its_host_queue_over_rabbitmq_and_stops_on_sigterm() {
    let exchange = format!("stratus-test-{}", uuid::Uuid::new_v4().simple());
    let state = tempfile::tempdir().expect("tempdir");
    let child = Command::new(stratus_bin())
        .arg("compute")
        .env("STRATUS_RPC__URL", amqp_url())
        .env("STRATUS_RPC__EXCHANGE", &exchange)
        .env("STRATUS_RPC__QUEUE_EXPIRY_MS", "60000")
        .env("STRATUS_NODE__HOST", "testhost")
        .env("STRATUS_NODE__STATE_DIR", state.path())
        .env("STRATUS_COMPUTE__DRIVER", "fake")
        .stderr(Stdio::null())
        .spawn()
        .expect("start stratus compute");
    let mut child = Running(child);

    let config = broker::rpc_config(exchange, Duration::from_secs(60));
    let transport = Arc::new(
        AmqpTransport::connect(&config, "cli-test")
            .await
            .expect("RabbitMQ is needed (deploy/dev-setup starts it)"),
    );
    let compute = ComputeClient::new(RpcClient::new(transport.clone(), Duration::from_secs(20)));
    // The call waits in the host's queue until the worker consumes it.
    let err = compute
        .get_console_output(
            &RequestContext::system(),
            &"testhost".parse().expect("host"),
            InstanceRef {
                instance_id: InstanceId::new(),
            },
        )
        .await
        .expect_err("no such instance on this host");
    assert_eq!(
        err.remote().map(|r| r.kind.as_str()),
        Some("InstanceNotFound"),
        "{err}"
    );
    transport.close().await;

    stop_cleanly(&mut child.0, "TERM");
}

/// `stratus all-in-one` serving only, on the host network: no namespace,
/// no demo guest (the main-job test boots one), the fake driver, state in
/// `dir`; its log lines in `format` on stderr too when `verbose` (`-v`).
/// No public range: on the host network its interface would be the host's,
/// shared by tests running in parallel (the main-job test has the public side).
fn spawn_all_in_one(dir: &std::path::Path, format: &str, verbose: bool) -> Running {
    let mut command = Command::new(stratus_bin());
    command.args(["all-in-one", "--host-network", "--no-demo"]);
    if verbose {
        command.arg("-v");
    }
    let child = command
        .env("STRATUS_NODE__HOST", "aio")
        .env("STRATUS_API__METADATA_LISTEN", "127.0.0.1:0")
        .env("STRATUS_API__LISTEN", "127.0.0.1:0")
        .env("STRATUS_COMPUTE__DRIVER", "fake")
        .env("STRATUS_NETWORK__PUBLIC_RANGE", "")
        .env("STRATUS_NODE__STATE_DIR", dir)
        .env("STRATUS_LOG__FORMAT", format)
        .env("HOME", dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start all-in-one");
    Running(child)
}

#[test]
fn all_in_one_serves_every_topic_and_stops_on_ctrl_c() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = spawn_all_in_one(dir.path(), "json", true);
    let stderr = child.0.stderr.take().expect("stderr");
    let mut serving = Vec::new();
    for line in BufReader::new(stderr).lines() {
        let line = line.expect("log line");
        let event: serde_json::Value = serde_json::from_str(&line).expect("JSON log line");
        let message = event["fields"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if message.starts_with("serving ") {
            serving.push(message);
        } else if message.starts_with("ready") {
            break;
        }
    }
    for topic in [
        "serving network",
        "serving scheduler",
        "serving compute, compute.aio",
        "serving conductor",
    ] {
        assert!(
            serving.iter().any(|m| m.starts_with(topic)),
            "{topic:?} not in {serving:?}"
        );
    }
    // The embedded mode wrote an AWS CLI profile that reaches its API.
    let credentials =
        std::fs::read_to_string(dir.path().join(".aws/credentials")).expect("credentials file");
    assert!(
        credentials.contains("[stratus]\naws_access_key_id = AKIA"),
        "{credentials}"
    );
    let stdout = command::stdout_of(
        Command::new("/var/lib/stratus-dev/venv/bin/aws")
            .args(["--profile", "stratus", "ec2", "describe-availability-zones"])
            .env("HOME", dir.path())
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY"),
        "the AWS CLI (deploy/dev-setup installs it in the venv)",
    );
    assert!(stdout.contains("\"ZoneName\": \"nova\""), "{stdout}");
    stop_cleanly(&mut child.0, "INT");
}

#[test]
fn operators_create_credentials_and_import_images_on_the_control_host() {
    let dir = tempfile::tempdir().expect("tempdir");
    let stratus = |args: &[&str]| {
        let mut command = Command::new(stratus_bin());
        command
            .args(args)
            .env("STRATUS_NODE__STATE_DIR", dir.path())
            .env("STRATUS_LOG__FILTER", "warn")
            .env("HOME", dir.path());
        command
    };
    let run = |args: &[&str]| stratus(args).output().expect("run");
    // Must succeed; its stdout.
    let ok = |args: &[&str]| command::stdout_of(&mut stratus(args), "stratus");
    let stdout = ok(&[
        "credentials",
        "create",
        "--project",
        "acme",
        "--user",
        "ann",
        "--profile",
        "acme",
    ]);
    assert!(stdout.contains("aws_access_key_id = AKIA"), "{stdout}");
    assert!(stdout.contains("aws_secret_access_key = "), "{stdout}");
    let config = std::fs::read_to_string(dir.path().join(".aws/config")).expect("config");
    assert!(
        config.contains("[profile acme]\nregion = nova\nendpoint_url = http://127.0.0.1:8773/"),
        "{config}"
    );

    let out = run(&[
        "credentials",
        "create",
        "--project",
        "bad project!",
        "--user",
        "ann",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad project!"));

    for name in ["disk.qcow2", "vmlinuz", "initrd"] {
        std::fs::write(dir.path().join(name), b"bytes").expect("file");
    }
    let path = |name: &str| dir.path().join(name).display().to_string();
    let stdout = ok(&[
        "image",
        "import",
        &path("disk.qcow2"),
        "--kernel",
        &path("vmlinuz"),
        "--ramdisk",
        &path("initrd"),
        "--name",
        "tiny",
    ]);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(
        lines[0].starts_with("ami-") && lines[0].ends_with("\ttiny"),
        "{stdout}"
    );
    assert!(
        lines[1].starts_with("aki-") && lines[2].starts_with("ari-"),
        "{stdout}"
    );

    let out = run(&["image", "import", "/nonexistent/disk.img"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/disk.img"));
}

#[test]
fn bench_scale_runs_every_service_as_a_process_and_prints_its_figures() {
    let stdout = command::stdout_of(
        Command::new(stratus_bin())
            .args(["bench", "scale", "--workers", "4", "--instances", "20"])
            .args(["--workers-per-process", "2", "--timeout-secs", "30"])
            .env("STRATUS_RPC__URL", amqp_url()),
        "stratus",
    );
    for line in [
        "scale: 4 compute workers (fake driver) over RabbitMQ, 20 RunInstances",
        "  instance folders on ",
        "time to running: p50 ",
        "peak RSS: api ",
        "compute worker ",
    ] {
        assert!(stdout.contains(line), "no {line:?} in {stdout}");
    }
    let last = stdout.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("20 instances running in ") && last.ends_with(" instances/s"),
        "{stdout}"
    );
}

/// The `stratus` processes whose parent is `pid`, from `/proc`.
fn stratus_children(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|child| {
            let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
            // `pid (comm) state ppid …`; comm may hold spaces, so read after ')'.
            let after = stat.rsplit_once(')').map(|(_, a)| a).unwrap_or_default();
            let ppid = after.split_whitespace().nth(1);
            stat.contains("(stratus)") && ppid == Some(pid.to_string().as_str())
        })
        .collect()
}

/// Whether `pid` is gone or a zombie (dead, waiting for whoever reaps it).
fn dead(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, a)| a.split_whitespace().next())
            .is_some_and(|state| state == "Z" || state == "X"),
    }
}

#[test]
fn a_bench_killed_with_sigkill_takes_its_services_with_it() {
    // SIGKILL runs none of the bench's clean-up: only the parent-death
    // signal its children armed can end them.
    let scratch = tempfile::tempdir().expect("tempdir");
    let bench = Command::new(stratus_bin())
        .args(["bench", "scale", "--workers", "4", "--instances", "100000"])
        .args(["--workers-per-process", "2", "--timeout-secs", "300"])
        .env("STRATUS_RPC__URL", amqp_url())
        // Its scratch folder, which nothing removes after a SIGKILL.
        .env("TMPDIR", scratch.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the bench");
    let mut bench = Running(bench);
    let pid = bench.0.id();
    // network, scheduler, api, the measured compute worker and two processes
    // of fake workers.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let children = loop {
        let children = stratus_children(pid);
        if children.len() == 6 {
            break children;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the bench started {} of its 6 services",
            children.len()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    signal(&bench.0, "KILL");
    wait_exit(&mut bench.0, Duration::from_secs(10));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let alive: Vec<u32> = children.iter().copied().filter(|c| !dead(*c)).collect();
        if alive.is_empty() {
            break;
        }
        if std::time::Instant::now() >= deadline {
            for pid in &alive {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
            panic!("services outlived the killed bench: {alive:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn log_lines_written_to_a_pipe_carry_no_colour_codes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = spawn_all_in_one(dir.path(), "human", true);
    let stderr = child.0.stderr.take().expect("stderr");
    let mut lines = Vec::new();
    for line in BufReader::new(stderr).lines() {
        let line = line.expect("log line");
        let ready = line.contains("ready");
        lines.push(line);
        if ready {
            break;
        }
    }
    assert!(lines.len() > 1, "no log lines: {lines:?}");
    let coloured: Vec<&String> = lines.iter().filter(|l| l.contains('\x1b')).collect();
    assert!(coloured.is_empty(), "ANSI codes in a pipe: {coloured:?}");
    stop_cleanly(&mut child.0, "INT");
}

#[test]
fn the_all_in_one_terminal_shows_its_own_lines_and_the_services_log_to_a_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = spawn_all_in_one(dir.path(), "human", false);
    let stdout = child.0.stdout.take().expect("stdout");
    let mut printed = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("a line");
        let serving = line.starts_with("stratus: serving");
        printed.push(line);
        if serving {
            break;
        }
    }
    let log = dir.path().join("logs/all-in-one.log");
    assert_eq!(
        printed.first().map(String::as_str),
        Some(
            format!(
                "stratus: service logs go to {} (-v shows them here too)",
                log.display()
            )
            .as_str()
        ),
        "{printed:?}"
    );
    assert!(
        printed.iter().all(|l| l.starts_with("stratus: ")),
        "{printed:?}"
    );
    stop_cleanly(&mut child.0, "INT");
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.0.stderr.take().expect("stderr"), &mut stderr)
        .expect("stderr");
    assert!(stderr.is_empty(), "log lines on the terminal: {stderr}");
    let logged = std::fs::read_to_string(&log).expect("the log file");
    for line in [" INFO ", "serving conductor", "ready; Ctrl-C", "stopping"] {
        assert!(logged.contains(line), "no {line:?} in {logged}");
    }
    assert!(!logged.contains('\x1b'), "ANSI codes in the file: {logged}");
}
