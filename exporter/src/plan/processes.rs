//! The processes a target is narrowed to: a `pid:` and what it forks, or the processes of a
//! container. Either is a tree the kernel side follows through forks, seeded at start with
//! its roots and their descendants as `/proc` shows them.

use std::{fmt, num::NonZeroU32, sync::Arc};

/// Where a target's processes are: the roots of a tree, and what named them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcessTree {
    /// `pid:`: one process.
    Pid(NonZeroU32),
    /// `container:`: the processes of the containers whose id starts so, found at start; the
    /// roots are those whose parent is outside them.
    Container {
        id: String,
        roots: Arc<[NonZeroU32]>,
    },
}

impl ProcessTree {
    /// The processes the tree starts from.
    pub fn roots(&self) -> &[NonZeroU32] {
        match self {
            Self::Pid(pid) => std::slice::from_ref(pid),
            Self::Container { roots, .. } => roots,
        }
    }
}

impl fmt::Display for ProcessTree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pid(pid) => write!(f, "pid {pid} and the processes it forks"),
            Self::Container { id, roots } => {
                let pids: Vec<String> = roots.iter().map(ToString::to_string).collect();
                write!(
                    f,
                    "the processes of container {id}… (from pids {}) and those they fork",
                    pids.join(", ")
                )
            }
        }
    }
}

/// The processes of some containers, as `/proc` shows them now.
#[derive(Debug, Default)]
pub struct ContainerProcesses {
    /// Every one of them, lowest pid first.
    pub pids: Vec<u32>,
    /// Those whose parent is not one of them: the roots of their trees.
    pub roots: Vec<NonZeroU32>,
}

/// The processes of the containers whose id starts with `prefix`.
pub fn container_processes(prefix: &str) -> ContainerProcesses {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return ContainerProcesses::default();
    };
    let mut members: Vec<(u32, Option<u32>)> = entries
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cgroup = std::fs::read_to_string(entry.path().join("cgroup")).ok()?;
            let id = crate::spans::container::container_id(&cgroup)?;
            id.starts_with(prefix).then(|| {
                let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
                (pid, crate::kernel::process_tree::parent_pid(&stat))
            })
        })
        .collect();
    members.sort_unstable();
    let is_member = |pid: Option<u32>| pid.is_some_and(|pid| members.iter().any(|m| m.0 == pid));
    ContainerProcesses {
        roots: members
            .iter()
            .filter(|(_, parent)| !is_member(*parent))
            .filter_map(|&(pid, _)| NonZeroU32::new(pid))
            .collect(),
        pids: members.iter().map(|&(pid, _)| pid).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_names_its_roots() {
        let pid = NonZeroU32::new(42).unwrap();
        assert_eq!(ProcessTree::Pid(pid).roots(), [pid]);
        assert_eq!(
            ProcessTree::Pid(pid).to_string(),
            "pid 42 and the processes it forks"
        );
        let container = ProcessTree::Container {
            id: "3f2a".to_owned(),
            roots: Arc::from([pid, NonZeroU32::new(50).unwrap()]),
        };
        assert_eq!(container.roots().len(), 2);
        assert_eq!(
            container.to_string(),
            "the processes of container 3f2a… (from pids 42, 50) and those they fork"
        );
    }

    #[test]
    fn no_container_has_an_id_that_is_not_hex() {
        let none = container_processes("not-an-id");
        assert!(none.pids.is_empty() && none.roots.is_empty());
    }
}
