//! The processes a target is narrowed to: a `pid:` and what it forks, or the processes of a
//! container. Either is a tree the kernel side follows through forks, seeded at start with
//! its roots and their descendants as `/proc` shows them.

use std::{collections::HashSet, fmt, num::NonZeroU32, sync::Arc};

use crate::kernel::process_tree;

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

/// Whether process `pid` is in a container whose id starts with `prefix`.
pub fn in_container(pid: u32, prefix: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .ok()
        .and_then(|cgroup| crate::spans::container::container_id(&cgroup))
        .is_some_and(|id| id.starts_with(prefix))
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
    let Ok(pids) = process_tree::pids() else {
        return ContainerProcesses::default();
    };
    let mut pids: Vec<u32> = pids.filter(|&pid| in_container(pid, prefix)).collect();
    pids.sort_unstable();
    let members: HashSet<u32> = pids.iter().copied().collect();
    ContainerProcesses {
        roots: pids
            .iter()
            .filter(|&&pid| !process_tree::parent_of(pid).is_some_and(|p| members.contains(&p)))
            .filter_map(|&pid| NonZeroU32::new(pid))
            .collect(),
        pids,
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
