# shellcheck shell=bash
# Shared by benches/run.sh and benches/scale.sh; sourced, not run.
#
# start_daemon: a `git daemon` on a free loopback port serving every bare repository under
# $srv, logging to $log. Sets $port and $daemon_pid; stop_daemon stops it. Needs `say`.

: "${srv:?benches/lib.sh: set srv before sourcing}" "${log:?benches/lib.sh: set log before sourcing}"
port=""
daemon_pid=""

start_daemon() {
  local try p i
  for try in 1 2 3 4 5 6 7 8 9 10; do
    p=$((20000 + (RANDOM * 7 + try * 131) % 30000))
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then continue; fi # in use
    "$(git --exec-path)/git-daemon" --reuseaddr --listen=127.0.0.1 --port="$p" \
      --base-path="$srv" --export-all --enable=receive-pack --informative-errors \
      >>"$log" 2>&1 &
    daemon_pid=$!
    for ((i = 0; i < 50; i++)); do
      if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
        port="$p"
        say "git daemon on 127.0.0.1:$port (pid $daemon_pid)"
        return 0
      fi
      kill -0 "$daemon_pid" 2>/dev/null || break
      sleep 0.1
    done
    stop_daemon
  done
  echo "$(basename "$0"): cannot start git daemon" >&2
  return 1
}

stop_daemon() {
  if [[ -n "$daemon_pid" ]]; then
    kill "$daemon_pid" 2>/dev/null || true
    wait "$daemon_pid" 2>/dev/null || true
    daemon_pid=""
  fi
}
