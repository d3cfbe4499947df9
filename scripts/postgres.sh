# Sourced by scripts/test.sh and bench/store.sh: starts a throwaway PostgreSQL cluster on
# 127.0.0.1:$KURIER_TEST_PG_PORT (default 55432) in a temporary folder, exports
# KURIER_TEST_POSTGRES (a libpq connection string), and stops and removes it on exit.
start_postgres() {
  local bin port
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$bin" ]; then
    echo "PostgreSQL is not installed (Debian package postgresql)" >&2
    return 1
  fi
  port=${KURIER_TEST_PG_PORT:-55432}
  KURIER_PG_DIR=$(mktemp -d /tmp/kurier-pg.XXXXXX)
  KURIER_PG_AS=()
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres: "$KURIER_PG_DIR"
    KURIER_PG_AS=(runuser -u postgres --)
  fi
  KURIER_PG_BIN=$bin
  "${KURIER_PG_AS[@]}" "$bin/initdb" -D "$KURIER_PG_DIR/data" -A trust -U postgres --no-sync >"$KURIER_PG_DIR/initdb.log"
  "${KURIER_PG_AS[@]}" "$bin/pg_ctl" -D "$KURIER_PG_DIR/data" -l "$KURIER_PG_DIR/server.log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $KURIER_PG_DIR -c max_connections=400 -c shared_buffers=128MB" \
    start >/dev/null
  export KURIER_TEST_POSTGRES="host=127.0.0.1 port=$port user=postgres dbname=postgres"
  trap stop_postgres EXIT
}

stop_postgres() {
  "${KURIER_PG_AS[@]}" "$KURIER_PG_BIN/pg_ctl" -D "$KURIER_PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$KURIER_PG_DIR"
}
