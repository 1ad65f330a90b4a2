//! The guest's /init, written for each batch: it sets the guest up, runs the scripts one after
//! the other and reports each on the channel that [`channel`](super::channel) reads, then
//! powers off.

use std::path::Path;

use super::{
    Script,
    guest::{ADDRESS, OTLP_HOST},
};
use crate::support::spanprobe;

/// The guest's /init for `scripts`, with busybox at `busybox`: mounts, modules, network, then
/// each script, then power off.
pub(super) fn script(busybox: &Path, scripts: &[Script]) -> String {
    // The kernel splits a #! line at blanks: no quoting helps there.
    let busybox = busybox.display();
    let spanprobe = shell_quote(spanprobe());
    let mut init = format!(
        r#"#!{busybox} sh
# /init of a spanprobe test guest, written by tests/support/vm/init.rs for one batch of scripts.
# Applet links go where the host has no file of its own (host files win).
{busybox} --install -s
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
{{
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
# / is already a tmpfs: /tmp is writable without a mount of its own, which would hide the
# files placed under it.
mount -t tracefs tracefs /sys/kernel/tracing
mount -t debugfs debugfs /sys/kernel/debug
mount -t bpf bpf /sys/fs/bpf
mount -t cgroup2 cgroup2 /sys/fs/cgroup
for module in $(cat /vm/modules.order); do
  insmod /vm/modules/$module || echo "vm: insmod $module failed"
done
ip link set lo up
ip addr add {ADDRESS} dev eth0 && ip link set eth0 up && ip route add default via {OTLP_HOST} || echo "vm: no network"
}} >/vm/setup.log 2>&1
ulimit -l unlimited
export OTLP_HOST={OTLP_HOST} SPANPROBE={spanprobe}
cd /
# Raw: bytes go out as they are (no CR before each LF).
stty -F /dev/ttyS1 raw -echo
# emit NAME FILE: a record of FILE's bytes; each redirection's close waits until they are sent.
emit() {{
  printf '@@vm %s %s\n' "$1" "$(($(wc -c <"$2")))"
  cat "$2"
  printf '\n'
}}
hundredths() {{
  read -r up rest </proc/uptime
  echo "${{up%.*}}${{up#*.}}"
}}
# run INDEX SECONDS: the script in its own session (so its process group can be killed as a
# whole), killed at its time limit, then whatever it left running.
run() {{
  start=$(hundredths)
  setsid sh /vm/scripts/$1.sh </dev/null >/vm/out/$1.stdout 2>/vm/out/$1.stderr &
  pid=$!
  (sleep $2; echo >/vm/out/$1.timeout; kill -KILL -$pid) 2>/dev/null &
  watchdog=$!
  wait $pid
  status=$?
  kill -KILL -$pid 2>/dev/null
  kill $watchdog 2>/dev/null
  end=$(hundredths)
  timed_out=0
  [ -e /vm/out/$1.timeout ] && timed_out=1
  {{
    emit "$1 stdout" /vm/out/$1.stdout
    emit "$1 stderr" /vm/out/$1.stderr
    printf '@@vm %s status %s %s %s\n' "$1" "$status" "$((end - start))" "$timed_out"
  }} >/dev/ttyS1
}}
{{
  emit setup /vm/setup.log
  printf '@@vm ready %s\n' "$(hundredths)"
}} >/dev/ttyS1
"#
    );
    for (index, script) in scripts.iter().enumerate() {
        // Whole seconds for busybox's sleep, and never 0, which would kill at once.
        let seconds = script.time_limit.as_secs_f64().ceil().max(1.0) as u64;
        init.push_str(&format!("run {index} {seconds}\n"));
    }
    init.push_str("printf '@@vm done\\n' >/dev/ttyS1\npoweroff -f\n");
    init
}

/// `text` as one word for the shell, whatever it holds.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}
