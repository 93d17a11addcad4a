#!/usr/bin/env bash
# Start or stop a Docker engine for the tests when none answers.
#
#   scripts/docker-engine.sh start   install Debian's docker.io if needed, start dockerd
#                                    (unless an engine already answers), wait for it
#   scripts/docker-engine.sh stop    stop the dockerd this script started, by its PID
#
# The PID of a dockerd started here is kept in .cache/dockerd.pid; an engine this script
# did not start is never stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .cache
PIDFILE=.cache/dockerd.pid

engine_answers() { docker info >/dev/null 2>&1; }

case "${1:-}" in
start)
    if ! command -v dockerd >/dev/null 2>&1; then
        echo "Installing Debian's Docker engine (docker.io)"
        scripts/apt-install.sh docker.io
    fi
    if engine_answers; then
        echo "Docker engine: already running"
        exit 0
    fi
    echo "Starting dockerd (log: .cache/dockerd.log)"
    setsid dockerd >.cache/dockerd.log 2>&1 </dev/null &
    echo $! >"$PIDFILE"
    for _ in $(seq 1 60); do
        if engine_answers; then
            echo "Docker engine: $(docker version --format '{{.Server.Version}}')"
            exit 0
        fi
        sleep 0.5
    done
    echo "Error: dockerd did not answer within 30 s; see .cache/dockerd.log" >&2
    tail -20 .cache/dockerd.log >&2
    exit 1
    ;;
stop)
    if [ -f "$PIDFILE" ]; then
        pid=$(cat "$PIDFILE")
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid"
            for _ in $(seq 1 60); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.5
            done
        fi
        rm -f "$PIDFILE"
    fi
    ;;
*)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
