#!/bin/sh
# Start this image's environment server: gymwire serve $GYMWIRE_ENV on $GYMWIRE_HOST:$GYMWIRE_PORT,
# each word of $GYMWIRE_OPTIONS as `-o key=value`, then any arguments given to the container.
# exec: gymwire becomes PID 1 and receives SIGTERM itself (it drains sessions for --grace seconds).
set -eu
set -f  # option values are words, never globs
: "${GYMWIRE_ENV:?GYMWIRE_ENV is not set}"
: "${GYMWIRE_PORT:?GYMWIRE_PORT is not set}"
for option in ${GYMWIRE_OPTIONS:-}; do
    set -- "$@" -o "$option"
done
exec gymwire serve "$GYMWIRE_ENV" --host "${GYMWIRE_HOST:-0.0.0.0}" --port "$GYMWIRE_PORT" "$@"
