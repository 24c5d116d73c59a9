# Sourced by build and smoke: picks podman (preferred) or docker as $engine.
if command -v podman >/dev/null 2>&1; then
  engine=podman
  if [ -z "${TESSERA_PODMAN_DEFAULTS:-}" ] && [ -z "${CONTAINERS_CONF:-}" ]; then
    export CONTAINERS_CONF
    CONTAINERS_CONF="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/containers.conf"
  fi
elif command -v docker >/dev/null 2>&1; then
  engine=docker
else
  echo "neither podman nor docker is installed (Debian: apt-get install podman runc)" >&2
  exit 1
fi
