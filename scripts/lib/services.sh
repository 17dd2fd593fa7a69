# Start and stop the real servers the tests use, all on 127.0.0.1, all under one temp folder.
# Sourced by scripts/test.sh; exports the ORCH_TEST_* variables the tests read.

SERVICES_DIR=${SERVICES_DIR:-$(mktemp -d /tmp/orch-test.XXXXXX)}

# A port the kernel picks as free on 127.0.0.1.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# A port for a server: the one asked for ($1) when nothing listens there, else a free one the kernel
# picks (another suite, or a server not yet gone, may hold the usual port).
port_for() {
  if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
    free_port
  else
    echo "$1"
  fi
}
PG_PORT=$(port_for "${PG_PORT:-55432}")
REGISTRY_PORT=$(port_for "${REGISTRY_PORT:-55000}")
MOTO_PORT=$(port_for "${MOTO_PORT:-55500}")

wait_port() { # host port what
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "error: $3 did not start on $1:$2" >&2
  return 1
}

start_postgres() {
  local bin
  bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  mkdir -p "$SERVICES_DIR/pg"
  chown postgres "$SERVICES_DIR/pg" 2>/dev/null || true
  chmod 755 "$SERVICES_DIR"
  local as_pg=(runuser -u postgres --)
  [ "$(id -u)" = 0 ] || as_pg=()
  "${as_pg[@]}" "$bin/initdb" -A trust -U postgres -D "$SERVICES_DIR/pg/data" >/dev/null
  # Members of the group `pwauth` must authenticate with a password (the credential-rotation tests in
  # app/tests/secret.rs create such roles); every other role stays trusted. First match wins.
  local hba="$SERVICES_DIR/pg/data/pg_hba.conf"
  { echo "host all +pwauth 127.0.0.1/32 scram-sha-256"; cat "$hba"; } >"$hba.new"
  cat "$hba.new" >"$hba" && rm -f "$hba.new"
  "${as_pg[@]}" "$bin/pg_ctl" -D "$SERVICES_DIR/pg/data" -l "$SERVICES_DIR/pg/log" -w \
    -o "-p $PG_PORT -k $SERVICES_DIR/pg -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
  psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -qc "CREATE ROLE orch LOGIN PASSWORD 'orch' CREATEDB" >/dev/null
  psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -qc "CREATE DATABASE orch OWNER orch" >/dev/null
  psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -qc "CREATE ROLE pwauth NOLOGIN" >/dev/null
  export ORCH_TEST_PG_URL="postgres://orch:orch@127.0.0.1:$PG_PORT/orch"
  # Superuser (trusted on 127.0.0.1): creates per-test roles and changes their passwords.
  export ORCH_TEST_PG_ADMIN_URL="postgres://postgres@127.0.0.1:$PG_PORT/orch"
  PG_STOP=("${as_pg[@]}" "$bin/pg_ctl" -D "$SERVICES_DIR/pg/data" -m immediate stop)
}

start_registry() {
  mkdir -p "$SERVICES_DIR/registry"
  cat > "$SERVICES_DIR/registry/config.yml" <<YAML
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $SERVICES_DIR/registry/data}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$REGISTRY_PORT}
YAML
  docker-registry serve "$SERVICES_DIR/registry/config.yml" >"$SERVICES_DIR/registry/log" 2>&1 &
  REGISTRY_PID=$!
  wait_port 127.0.0.1 "$REGISTRY_PORT" "docker-registry"
  export ORCH_TEST_REGISTRY="127.0.0.1:$REGISTRY_PORT"
}

start_moto() {
  MOTO_ACM_VALIDATION_WAIT=1 "$ORCH_MOTO_SERVER" -H 127.0.0.1 -p "$MOTO_PORT" >"$SERVICES_DIR/moto.log" 2>&1 &
  MOTO_PID=$!
  wait_port 127.0.0.1 "$MOTO_PORT" "moto_server"
  export ORCH_TEST_MOTO="http://127.0.0.1:$MOTO_PORT"
}

start_services() {
  start_postgres
  start_registry
  start_moto
  echo "services: postgres $ORCH_TEST_PG_URL, registry $ORCH_TEST_REGISTRY, moto $ORCH_TEST_MOTO (logs in $SERVICES_DIR)"
}

stop_services() {
  [ -n "${MOTO_PID:-}" ] && kill "$MOTO_PID" 2>/dev/null
  [ -n "${REGISTRY_PID:-}" ] && kill "$REGISTRY_PID" 2>/dev/null
  [ -n "${PG_STOP:-}" ] && "${PG_STOP[@]}" >/dev/null 2>&1
  true
}
