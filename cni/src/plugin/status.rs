//! STATUS (CNI 1.1): is ginger-node ready to serve ADDs?
//!
//! Owns: asking the agent (`Status`) and mapping the answer: ready is success with no output;
//! not ready, a refusal or an unreachable agent is code 50 ("plugin not available"). Must not:
//! change anything.

use super::unexpected_reply;
use crate::client::AgentClient;
use crate::error::{CniError, ErrorCode};
use crate::protocol::{Reply, Request};

/// Runs STATUS.
pub fn status(agent: &AgentClient) -> Result<(), CniError> {
    let not_available = |msg: String| CniError::new(ErrorCode::PluginNotAvailable, msg, "");
    match agent.call(Request::Status) {
        Ok(Reply::Status { ready: true, .. }) => Ok(()),
        Ok(Reply::Status {
            ready: false,
            message,
        }) => Err(not_available(format!(
            "ginger-node is not ready: {message}"
        ))),
        Ok(Reply::Error { message, .. }) => Err(not_available(format!(
            "ginger-node refused the status request: {message}"
        ))),
        Ok(other) => Err(unexpected_reply("Status", &other)),
        Err(e) => Err(not_available(format!("{e}: is ginger-node running?"))),
    }
}
