//! A process and those it forked, as `/proc` shows them now: where a `pid:` target's tree
//! starts; the kernel side adds the processes forked later.

use std::collections::{HashMap, VecDeque};

/// The pid of every process `/proc` lists now (processes, not threads).
pub fn pids() -> std::io::Result<impl Iterator<Item = u32>> {
    Ok(std::fs::read_dir("/proc")?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok()))
}

/// The pid of process `pid`'s parent, while it runs.
pub fn parent_of(pid: u32) -> Option<u32> {
    parent_pid(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// `root` and every process below it (children, grandchildren...), `root` first. Processes
/// that exit while `/proc` is read are left out.
pub fn with_descendants(root: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for pid in pids().into_iter().flatten() {
        if let Some(parent) = parent_of(pid) {
            children.entry(parent).or_default().push(pid);
        }
    }
    let mut tree = vec![root];
    let mut queue = VecDeque::from([root]);
    while let Some(pid) = queue.pop_front() {
        for &child in children.get(&pid).into_iter().flatten() {
            tree.push(child);
            queue.push_back(child);
        }
    }
    tree
}

/// The parent's pid in a `/proc/PID/stat` line: the field after the state, which follows the
/// command in parentheses (which may hold spaces and parentheses itself).
fn parent_pid(stat: &str) -> Option<u32> {
    let (_, after_command) = stat.rsplit_once(')')?;
    after_command.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_parent_after_any_command_name() {
        assert_eq!(parent_pid("42 (postgres) S 7 42 42 0 -1"), Some(7));
        assert_eq!(parent_pid("43 (a) b) (c) R 42 43 43 0 -1"), Some(42));
        assert_eq!(parent_pid("garbage"), None);
    }

    #[test]
    fn finds_this_process_and_its_children() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let me = std::process::id();
        let tree = with_descendants(me);
        assert_eq!(tree[0], me);
        assert!(tree.contains(&child.id()), "{tree:?}");
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(
            with_descendants(u32::MAX),
            [u32::MAX],
            "a root that is gone"
        );
    }
}
