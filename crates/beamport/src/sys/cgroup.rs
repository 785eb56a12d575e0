//! cgroup v2 containment: the second tier of the no-orphan guarantee, used where PID
//! namespaces are refused. The launcher joins a fresh cgroup, so every child it starts (and
//! everything they start, `setsid` and double forks included) is a member, and one write to
//! `cgroup.kill` (Linux ≥ 5.14) ends them all.

use std::io;
use std::path::{Path, PathBuf};

/// The environment variable that hands the launcher its cgroup directory.
pub(crate) const CGROUP_ENV: &str = "BEAMPORT_CGROUP";

fn cgroup2_mount() -> io::Result<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")?;
    info.lines()
        .find_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            if right.split_whitespace().next()? == "cgroup2" {
                Some(PathBuf::from(left.split_whitespace().nth(4)?))
            } else {
                None
            }
        })
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no cgroup2 file system is mounted"))
}

/// Creates an empty cgroup below this process's own cgroup v2 group.
pub(crate) fn create() -> io::Result<PathBuf> {
    let mount = cgroup2_mount()?;
    let own = std::fs::read_to_string("/proc/self/cgroup")?
        .lines()
        .find_map(|l| l.strip_prefix("0::").map(str::to_owned))
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "this process has no cgroup v2 group"))?;
    let parent = mount.join(own.trim_start_matches('/'));
    remove_stale(&parent);
    let dir = parent.join(format!("beamport-{}", std::process::id()));
    std::fs::create_dir(&dir)?;
    if !dir.join("cgroup.kill").exists() {
        let _ = std::fs::remove_dir(&dir);
        return Err(io::Error::new(io::ErrorKind::Unsupported, "cgroup.kill is missing (Linux < 5.14)"));
    }
    Ok(dir)
}

/// Removes the empty groups of hosts that are gone. A host and its launcher killed together
/// (both by SIGKILL) leave their group behind, empty once the kernel has ended its members.
fn remove_stale(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else { return };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix("beamport-")).and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let host_gone = !Path::new(&format!("/proc/{pid}")).exists() || pid == std::process::id();
        if host_gone && !populated(&e.path()) {
            let _ = std::fs::remove_dir(e.path());
        }
    }
}

/// Moves the calling process into `dir`.
pub(crate) fn join(dir: &Path) -> io::Result<()> {
    std::fs::write(dir.join("cgroup.procs"), "0")
}

/// Kills every member of `dir` with SIGKILL.
pub(crate) fn kill(dir: &Path) -> io::Result<()> {
    std::fs::write(dir.join("cgroup.kill"), "1")
}

/// Whether any process is still a member of `dir` (or its descendants).
pub(crate) fn populated(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("cgroup.events")).map(|e| e.lines().any(|l| l == "populated 1")).unwrap_or(false)
}

/// Kills every member, waits (briefly) until the group is empty, and removes it.
pub(crate) fn kill_and_remove(dir: &Path) {
    let _ = kill(dir);
    for _ in 0..200 {
        if !populated(dir) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let _ = std::fs::remove_dir(dir);
}
