//! CPU time of local processes, for `raft-kv bench`'s "CPU per operation": read from
//! `/proc/<pid>/stat` (Linux). Elsewhere every reading is `None` and the figure is omitted.

use std::path::Path;

/// Clock ticks per second of `/proc/<pid>/stat`'s times: `USER_HZ`, fixed at 100 by the
/// Linux ABI on every architecture we run on (it is not the kernel's `HZ`).
const TICKS_PER_SEC: u64 = 100;

/// CPU time (user + system) a process has used so far, in microseconds.
pub fn cpu_us(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat_cpu_us(&stat)
}

/// CPU time of this process so far, in microseconds.
pub fn own_cpu_us() -> Option<u64> {
    cpu_us(std::process::id())
}

/// Parses `utime` and `stime` (fields 14 and 15) out of a `/proc/<pid>/stat` line. The
/// command name (field 2) is in parentheses and may contain spaces, so fields are counted
/// after its closing parenthesis.
fn parse_stat_cpu_us(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace();
    // After the name: state is field 3, so utime (14) is the 12th field from here.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) * 1_000_000 / TICKS_PER_SEC)
}

/// Context switches (voluntary and involuntary) of every thread of a process so far, from
/// `/proc/<pid>/task/*/status`; threads that exited are not counted.
pub fn context_switches(pid: u32) -> Option<u64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut total = 0;
    for task in tasks.filter_map(Result::ok) {
        let status = std::fs::read_to_string(task.path().join("status")).ok()?;
        total += parse_status_switches(&status)?;
    }
    Some(total)
}

/// `voluntary_ctxt_switches` + `nonvoluntary_ctxt_switches` of one `/proc/.../status`.
fn parse_status_switches(status: &str) -> Option<u64> {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|value| value.trim().parse::<u64>().ok())
    };
    Some(field("voluntary_ctxt_switches")? + field("nonvoluntary_ctxt_switches")?)
}

/// Whether the local process `pid` is a `raft-kv serve` listening for HTTP on `endpoint`.
pub fn serves(pid: u32, endpoint: &str) -> bool {
    let Ok(authority) = crate::server::client::authority_of(endpoint) else {
        return false;
    };
    serves_one_of(&Path::new("/proc").join(pid.to_string()), &[authority])
}

/// The local `raft-kv serve` processes whose `--http-addr` is one of `endpoints`
/// (`http://host:port` or `host:port`), found through `/proc/*/cmdline`. A node configured
/// through the environment or a config file is not found this way: pass its pid instead.
pub fn find_local_nodes(endpoints: &[String]) -> Vec<u32> {
    let authorities: Vec<String> = endpoints
        .iter()
        .filter_map(|e| crate::server::client::authority_of(e).ok())
        .collect();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| serves_one_of(&Path::new("/proc").join(pid.to_string()), &authorities))
        .collect();
    pids.sort_unstable();
    pids
}

fn serves_one_of(process: &Path, authorities: &[String]) -> bool {
    let Ok(cmdline) = std::fs::read(process.join("cmdline")) else {
        return false;
    };
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let is_serve = args.iter().any(|a| *a == b"serve");
    let http_addr = args
        .windows(2)
        .find(|pair| pair[0] == b"--http-addr")
        .map(|pair| String::from_utf8_lossy(pair[1]).into_owned());
    is_serve && http_addr.is_some_and(|addr| authorities.contains(&addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: utime and stime are found even when the command name has spaces and
    /// parentheses, and converted from ticks to microseconds.
    #[test]
    fn parses_cpu_times_from_stat() {
        let stat = "1234 (raft kv (x)) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9";
        assert_eq!(parse_stat_cpu_us(stat), Some(3_000_000));
        assert_eq!(parse_stat_cpu_us("garbage"), None);
    }

    /// Goal: both kinds of context switch are added up, and a status without them is no
    /// reading rather than zero.
    #[test]
    fn parses_context_switches_from_status() {
        let status =
            "Name:\traft-kv\nvoluntary_ctxt_switches:\t120\nnonvoluntary_ctxt_switches:\t7\n";
        assert_eq!(parse_status_switches(status), Some(127));
        assert_eq!(parse_status_switches("Name:\traft-kv\n"), None);
    }
}
