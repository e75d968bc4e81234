#!/bin/sh
# Entrypoint of the continuous-eval image (run under tini, see deploy/Dockerfile).
#
#   docker run IMAGE                   apply migrations, then `continuous-eval serve`
#   docker run IMAGE serve [OPTIONS]   the same, with options for serve
#   docker run IMAGE db upgrade        any other command runs as `continuous-eval ARGS...`
#   docker run IMAGE check-config      (validate the mounted suite file)
#
# CONTINUOUS_EVAL_MIGRATE_ON_START (default true) is read by this script only.
# Set it to false where migrations are a separate step: the Kubernetes manifests
# do, and run `continuous-eval db upgrade` once in a Job, so that replicas never
# migrate a shared Postgres on their own. `db upgrade` is a no-op at head and is
# serialised by a Postgres advisory lock (the SQLite write lock on SQLite), so
# migrating on every start is safe where it is used (docker run, compose).
set -eu

if [ "$#" -eq 0 ]; then
    set -- serve
fi

# The subcommand is the first argument that is not an option (`-v serve`).
subcommand=""
for arg in "$@"; do
    case "$arg" in
        -*) ;;
        *) subcommand="$arg"; break ;;
    esac
done

if [ "$subcommand" = "serve" ]; then
    case "${CONTINUOUS_EVAL_MIGRATE_ON_START:-true}" in
        true | 1 | yes)
            echo "docker-entrypoint: applying migrations (continuous-eval db upgrade)" >&2
            continuous-eval db upgrade
            ;;
        false | 0 | no) ;;
        *)
            echo "docker-entrypoint: CONTINUOUS_EVAL_MIGRATE_ON_START must be true or false" >&2
            exit 2
            ;;
    esac
fi

# exec: continuous-eval replaces this shell, so the SIGTERM of `docker stop` or
# the kubelet (forwarded by tini) reaches it directly and its exit code is the
# container's.
exec continuous-eval "$@"
