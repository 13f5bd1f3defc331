//! CPU time spent by this process's threads, split into the load generator's and the
//! server's, so a figure can be read apart from what else the machine was running.

use std::time::Duration;

/// Threads of the client runtime carry this name; every other thread is the server's.
pub const CLIENT_THREAD: &str = "bench-client";

/// The kernel's clock tick for `/proc/*/stat` times (`getconf CLK_TCK`, 100 on Linux).
const TICK: Duration = Duration::from_millis(10);

#[derive(Clone, Copy, Default)]
pub struct Cpu {
    pub server: Duration,
    pub client: Duration,
}

impl Cpu {
    /// User + system time of every live thread, from `/proc/self/task/*/stat`.
    pub fn now() -> anyhow::Result<Cpu> {
        let mut cpu = Cpu::default();
        for task in std::fs::read_dir("/proc/self/task")? {
            // A thread can exit between listing and reading: skip it.
            let Ok(stat) = std::fs::read_to_string(task?.path().join("stat")) else {
                continue;
            };
            let Some((name, ticks)) = parse_stat(&stat) else {
                continue;
            };
            let time = TICK * ticks;
            if name.starts_with(CLIENT_THREAD) {
                cpu.client += time;
            } else {
                cpu.server += time;
            }
        }
        Ok(cpu)
    }

    pub fn since(self, before: Cpu) -> Cpu {
        Cpu {
            server: self.server.saturating_sub(before.server),
            client: self.client.saturating_sub(before.client),
        }
    }
}

/// The thread name and utime + stime ticks of a `stat` line; the name is in parentheses and
/// may itself hold spaces or parentheses, so fields are counted after the last `)`.
fn parse_stat(stat: &str) -> Option<(&str, u32)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?;
    let mut fields = stat.get(close + 1..)?.split_whitespace();
    // After the name: state is field 3, utime field 14, stime field 15.
    let utime: u32 = fields.nth(11)?.parse().ok()?;
    let stime: u32 = fields.next()?.parse().ok()?;
    Some((name, utime + stime))
}
