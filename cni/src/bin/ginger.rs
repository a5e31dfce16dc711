//! `ginger`: the CNI plugin binary that kubelet's runtime executes from /opt/cni/bin. It reads
//! the `CNI_*` environment and the network configuration on stdin, does the work through
//! `cni::plugin`, prints the result or error JSON on stdout (logs go to stderr or the log file)
//! and exits non-zero on error.

use std::io::{Read, Write};
use std::process::ExitCode;

use cni::error::{CniError, ErrorCode};
use cni::{CniEnv, CniVersion};

fn main() -> ExitCode {
    let mut stdin = Vec::new();
    let output = match std::io::stdin().read_to_end(&mut stdin) {
        Ok(_) => cni::plugin::run(CniEnv::from_process(), &stdin),
        Err(e) => {
            let err = CniError::new(
                ErrorCode::IoFailure,
                "cannot read the network configuration from stdin",
                e.to_string(),
            );
            cni::plugin::Output {
                stdout: err.to_json(CniVersion::LATEST.as_str()),
                exit_code: 1,
            }
        }
    };
    let mut out = std::io::stdout().lock();
    if !output.stdout.is_empty() {
        // Nothing better to do if stdout is gone: the exit code still tells the runtime.
        let _ = writeln!(out, "{}", output.stdout);
        let _ = out.flush();
    }
    ExitCode::from(output.exit_code)
}
