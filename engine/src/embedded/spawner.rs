//! Starting child processes from one long-lived thread, so that Linux's parent-death signal
//! (`PR_SET_PDEATHSIG`, delivered when the spawning *thread* exits) takes etcd members and their
//! helpers down with scen — and not when the step thread that restarted a member finishes.

use std::io;
use std::process::{Child, Command};
use std::sync::mpsc;
use std::sync::Mutex;

type Request = (Command, mpsc::Sender<io::Result<Child>>);

/// A thread that spawns commands with the parent-death signal set. It lives until dropped.
#[derive(Debug)]
pub struct Spawner {
    tx: Mutex<Option<mpsc::Sender<Request>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Spawner {
    /// Starts the spawning thread.
    pub fn new() -> io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Request>();
        let thread = std::thread::Builder::new()
            .name("scen-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    set_parent_death_signal(&mut cmd);
                    let _ = reply.send(cmd.spawn());
                }
            })?;
        Ok(Spawner {
            tx: Mutex::new(Some(tx)),
            thread: Some(thread),
        })
    }

    /// Spawns `cmd` from the spawning thread.
    pub fn spawn(&self, cmd: Command) -> io::Result<Child> {
        let (reply, answer) = mpsc::channel();
        self.tx
            .lock()
            .expect("spawner lock")
            .as_ref()
            .ok_or_else(|| io::Error::other("the spawner has stopped"))?
            .send((cmd, reply))
            .map_err(|_| io::Error::other("the spawner thread is gone"))?;
        answer
            .recv()
            .map_err(|_| io::Error::other("the spawner thread is gone"))?
    }
}

impl Drop for Spawner {
    fn drop(&mut self) {
        self.tx.lock().expect("spawner lock").take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(target_os = "linux")]
fn set_parent_death_signal(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec here.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn set_parent_death_signal(_cmd: &mut Command) {}
