//! The recording host: every command is remembered, none is run; answers
//! come from a script, else an empty success.

use std::collections::VecDeque;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::command::{CommandError, HostCommands, Output, command_line};
use crate::locks::locked;

/// Records every command; answers with scripted outputs, else empty success.
#[derive(Debug, Default)]
pub struct FakeHost {
    calls: Mutex<Vec<Vec<String>>>,
    stdins: Mutex<Vec<String>>,
    answers: Mutex<VecDeque<(String, Result<Output, String>)>>,
}

impl FakeHost {
    /// A fake with no scripted answers.
    pub fn new() -> Self {
        Self::default()
    }

    /// The next call of `program` answers `answer` (an `Err` becomes a
    /// failed command with that stderr).
    pub fn answer(&self, program: &str, answer: Result<&str, &str>) {
        let answer = answer
            .map(|out| Output {
                stdout: out.to_owned(),
                stderr: String::new(),
            })
            .map_err(str::to_owned);
        locked(&self.answers).push_back((program.to_owned(), answer));
    }

    /// Every command run so far, program first.
    pub fn calls(&self) -> Vec<Vec<String>> {
        locked(&self.calls).clone()
    }

    /// Every command run so far as one line each (`ip link set x up`).
    pub fn command_lines(&self) -> Vec<String> {
        self.calls().iter().map(|c| c.join(" ")).collect()
    }

    /// What was fed to commands' stdin, in order.
    pub fn stdins(&self) -> Vec<String> {
        locked(&self.stdins).clone()
    }
}

#[async_trait]
impl HostCommands for FakeHost {
    async fn run(
        &self,
        program: &str,
        args: &[&str],
        stdin: Option<&[u8]>,
    ) -> Result<Output, CommandError> {
        let mut call = vec![program.to_owned()];
        call.extend(args.iter().map(|a| (*a).to_owned()));
        locked(&self.calls).push(call);
        if let Some(input) = stdin {
            locked(&self.stdins).push(String::from_utf8_lossy(input).into_owned());
        }
        let mut answers = locked(&self.answers);
        let next = answers.iter().position(|(p, _)| p == program);
        match next.and_then(|i| answers.remove(i)) {
            Some((_, Ok(out))) => Ok(out),
            Some((_, Err(stderr))) => {
                Err(CommandError::failed(command_line(program, args), stderr))
            }
            None => Ok(Output::default()),
        }
    }

    fn netns(&self) -> Option<&str> {
        None
    }
}
