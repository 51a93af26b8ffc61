use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Output};
use std::sync::mpsc;

/// Runs `command`, which must start and succeed; its stdout. The panic
/// names the command and carries its stderr, and `hint` (what provides the
/// program, or why it may fail) when the program cannot start.
pub fn run(command: &mut Command, hint: &str) -> Vec<u8> {
    let failure = format!("{command:?}");
    run_or(command, hint, &failure)
}

/// [`run`], its panic on failure saying `failure` (what it means) before
/// the command's stderr.
pub fn run_or(command: &mut Command, hint: &str, failure: &str) -> Vec<u8> {
    let out = output(command, hint);
    assert!(
        out.status.success(),
        "{failure}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Runs `command`, which must start; its output, success or not.
pub fn output(command: &mut Command, hint: &str) -> Output {
    command
        .output()
        .unwrap_or_else(|e| panic!("{command:?} does not start ({hint}): {e}"))
}

/// Runs `command`, which must succeed; its stdout as text. The panic on
/// failure carries what it printed to both.
pub fn stdout_of(command: &mut Command, hint: &str) -> String {
    let out = output(command, hint);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{command:?}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Runs `program args`, which must succeed; its stdout as text.
pub fn sh<S: AsRef<OsStr>>(program: &str, args: &[S]) -> String {
    let out = run(Command::new(program).args(args), "is it installed?");
    String::from_utf8_lossy(&out).into_owned()
}

/// Runs `program args`; whether it succeeded, and its stdout and stderr together.
pub fn try_sh<S: AsRef<OsStr>>(program: &str, args: &[S]) -> (bool, String) {
    let out = output(Command::new(program).args(args), "is it installed?");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Reads `output` (a child's stdout, say) line by line on a thread of its
/// own: each line arrives on the receiver, which ends with the output.
pub fn lines(output: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (send, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(output).lines().map_while(Result::ok) {
            if send.send(line).is_err() {
                break;
            }
        }
    });
    lines
}
