//! The guest's reports: the records /init writes on the second serial port (ttyS1), read back
//! into each script's [`ScriptOutput`].
//!
//! Each record is a line, and a byte count in it is followed by exactly that many bytes and a
//! newline (`N` is the script's index):
//!
//! ```text
//! @@vm setup BYTES            /init's own messages
//! @@vm ready CENTISECONDS     the guest's uptime, once set up
//! @@vm N stdout BYTES
//! @@vm N stderr BYTES
//! @@vm N status STATUS CENTISECONDS TIMED_OUT(0|1)
//! @@vm done
//! ```

use std::{collections::HashMap, time::Duration};

use super::{Script, ScriptOutput};

/// What /init reported on the channel.
pub(super) struct Parsed {
    pub(super) setup: String,
    pub(super) ready_after: Duration,
    pub(super) outputs: Vec<ScriptOutput>,
}

/// Reads the channel's records, `bytes`, for the batch `scripts`; an error says what is
/// missing or malformed.
pub(super) fn parse(bytes: &[u8], scripts: &[Script]) -> Result<Parsed, String> {
    let mut rest = bytes;
    let mut setup = String::new();
    let mut ready_after = None;
    let mut streams: HashMap<(usize, String), String> = HashMap::new();
    let mut outputs: Vec<Option<ScriptOutput>> = vec![None; scripts.len()];
    loop {
        let Some(end) = rest.iter().position(|&b| b == b'\n') else {
            return Err(if rest.is_empty() {
                match outputs.iter().position(Option::is_none) {
                    Some(index) => format!(
                        "the guest stopped while script {index} ({:?}) ran (see the console)",
                        scripts[index].name
                    ),
                    None => "the guest stopped before its last script ended (see the console)"
                        .to_owned(),
                }
            } else {
                format!(
                    "the channel ends in a partial line {:?}",
                    String::from_utf8_lossy(rest)
                )
            });
        };
        let line = String::from_utf8_lossy(&rest[..end]).into_owned();
        rest = &rest[end + 1..];
        let fields: Vec<&str> = line.split(' ').collect();
        // Takes a record's BYTES bytes and the newline after them.
        let mut take = |count: &str| -> Result<String, String> {
            let count: usize = count
                .parse()
                .map_err(|_| format!("not a byte count in {line:?}"))?;
            if rest.len() < count + 1 || rest[count] != b'\n' {
                return Err(format!("the record {line:?} is cut short"));
            }
            let text = String::from_utf8_lossy(&rest[..count]).into_owned();
            rest = &rest[count + 1..];
            Ok(text)
        };
        match fields[..] {
            ["@@vm", "setup", count] => setup = take(count)?,
            ["@@vm", "ready", time] => ready_after = Some(centiseconds(time)?),
            ["@@vm", "done"] => break,
            ["@@vm", index, stream @ ("stdout" | "stderr"), count] => {
                let text = take(count)?;
                streams.insert((index_of(index, scripts)?, stream.to_owned()), text);
            }
            ["@@vm", index, "status", status, time, timed_out] => {
                let index = index_of(index, scripts)?;
                let mut stream = |name: &str| streams.remove(&(index, name.to_owned()));
                let (Some(stdout), Some(stderr)) = (stream("stdout"), stream("stderr")) else {
                    return Err(format!("script {index} has a status but no output"));
                };
                outputs[index] = Some(ScriptOutput {
                    name: scripts[index].name.clone(),
                    status: status
                        .parse()
                        .map_err(|_| format!("not a status in {line:?}"))?,
                    stdout,
                    stderr,
                    elapsed: centiseconds(time)?,
                    timed_out: timed_out == "1",
                });
            }
            _ => return Err(format!("unexpected line on the channel: {line:?}")),
        }
    }
    let outputs = outputs
        .into_iter()
        .enumerate()
        .map(|(index, output)| output.ok_or(format!("script {index} reported nothing")))
        .collect::<Result<_, _>>()?;
    Ok(Parsed {
        setup,
        ready_after: ready_after.ok_or("the guest never said it was ready")?,
        outputs,
    })
}

/// A time in hundredths of a second, as /init reads the guest's uptime.
fn centiseconds(text: &str) -> Result<Duration, String> {
    text.parse::<u64>()
        .map(|c| Duration::from_millis(c * 10))
        .map_err(|_| format!("not a time in hundredths: {text:?}"))
}

/// The script whose index is `text`, checked against the batch.
fn index_of(text: &str, scripts: &[Script]) -> Result<usize, String> {
    text.parse()
        .ok()
        .filter(|&index| index < scripts.len())
        .ok_or_else(|| format!("no script {text:?}"))
}
