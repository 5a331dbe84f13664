#!/usr/bin/env bash
# Starts the compose stack in the background and waits until it serves: every container running,
# and healthy where it has a healthcheck (Redis; the chat replicas through the image's
# HEALTHCHECK on /readyz), except one-shot services (restart "no", such as the Redis Cluster's
# init), which must have exited 0. Exits 0 then, or 1 naming the containers that did not make
# it, with their last log lines: a stack that failed to start is never left running unnoticed.
#
#   deploy/compose/up.sh                                   # the README's stack
#   deploy/compose/up.sh --scale chat=5                    # options go to `up -d`
#   COMPOSE_PROFILES=monitoring deploy/compose/up.sh       # with Prometheus
#   COMPOSE_PROJECT_NAME=… CHAT_UP_TIMEOUT=180 deploy/compose/up.sh
#   COMPOSE_FILE=docker-compose.redis-cluster.yml COMPOSE_PROJECT_NAME=chatline-cluster deploy/compose/up.sh
#
# Works with Compose v2 (`docker compose`, whose `up -d --wait` does much the same) and v1
# (`docker-compose` 1.29, which has no --wait).
set -euo pipefail
cd "$(dirname "$0")/../.."

if docker compose version >/dev/null 2>&1; then compose=(docker compose); else compose=(docker-compose); fi
timeout=${CHAT_UP_TIMEOUT:-120}

# A taken port fails here, before anything else starts: HAProxy, which publishes the ports,
# starts first and everything else depends on it (docker-compose.yml).
# A one-shot that fails (the cluster init) fails `up` too, with its dependents never created:
# then look once at what is there, without waiting, so its log is shown.
up_failed=0
"${compose[@]}" up -d "$@" || up_failed=1

deadline=$((SECONDS + timeout))
while :; do
  failed=() waiting=()
  for id in $("${compose[@]}" ps -a -q); do
    # A container removed since `ps` (a scale-down) is no concern.
    info=$(docker inspect -f \
      '{{.Name}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}} {{.RestartCount}} {{.State.ExitCode}} {{or .HostConfig.RestartPolicy.Name "no"}}' "$id" 2>/dev/null) || continue
    read -r name status health restarts exit_code restart_policy <<<"$info"
    name=${name#/}
    if [[ $status == running && ($health == healthy || $health == none) && $restarts == 0 ]]; then
      continue
    elif [[ $status == exited && $exit_code == 0 && $restart_policy == no ]]; then
      continue  # a one-shot that did its job
    elif [[ $status == exited || $status == dead || $status == restarting || $health == unhealthy || $restarts != 0 ]]; then
      failed+=("$name ($status, health: $health, restarts: $restarts)")
    else
      waiting+=("$name ($status, health: $health)")
    fi
  done
  if ((${#failed[@]} == 0 && ${#waiting[@]} == 0 && !up_failed)); then
    echo "chatline: every container is up and healthy" >&2
    exit 0
  fi
  if ((${#failed[@]} > 0 || up_failed)) || ((SECONDS >= deadline)); then
    echo "chatline: the stack did not come up:" >&2
    printf '  %s\n' "${failed[@]}" "${waiting[@]}" >&2
    for entry in "${failed[@]}" "${waiting[@]}"; do
      echo "--- last log lines of ${entry%% *}:" >&2
      docker logs --tail 10 "${entry%% *}" 2>&1 | sed 's/^/  /' >&2
    done
    echo "chatline: it is still there for a look (\`${compose[*]} ps\`, \`${compose[*]} logs\`); remove it with \`${compose[*]} down\`" >&2
    exit 1
  fi
  sleep 1
done
