//! `beamport doctor`: the active no-orphan tier, with what was tried and why it failed.

/// Arguments of `beamport doctor`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Prints the report; exit code 0, or 2 if the launcher cannot start.
pub fn run(_args: Args) -> i32 {
    match beamport::doctor::report() {
        Ok(r) => {
            println!("launcher pid:   {}", r.launcher_pid);
            println!("active tier:    {}", r.tier);
            println!("guarantee:      {}", r.guarantee);
            for (tier, why) in &r.refused {
                println!("refused tier:   {tier}: {why}");
            }
            println!("RLIMIT_NOFILE:  {}", r.nofile_limit);
            let namespace = r.tier.contains("namespace");
            match &r.own_proc {
                Ok(()) if namespace => {
                    println!("/proc:          the PID namespace's own: a program sees itself, the launcher (pid 1) and the other port programs, not the host's processes")
                }
                Ok(()) => println!("/proc:          the host's, as are the programs' pids"),
                Err(why) => {
                    println!("/proc:          the host's, where a program's own pid names another process ({why})")
                }
            }
            match &r.opener_forks {
                Ok(()) => {
                    println!("spawning:       by the opening thread, into the launcher's PID namespace");
                    println!("                (the host's children: a waitpid(-1) of its own takes their status; set_spawning(Spawning::Launcher) or BEAMPORT_SPAWNING=launcher leaves them to the launcher)");
                }
                Err(why) => println!("spawning:       by the launcher ({why})"),
            }
            0
        }
        Err(e) => {
            eprintln!("beamport doctor: the launcher could not start: {e}");
            2
        }
    }
}
