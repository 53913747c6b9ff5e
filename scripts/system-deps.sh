#!/usr/bin/env bash
# What the test suite needs from outside Python: a Docker engine (Debian's docker.io), debootstrap (to
# build the stand-in base image offline), hey (the HTTP load generator of the reliability tests and the
# bench), h2load (nghttp2-client: the bench's gRPC load generator) and Chromium (the browser tests drive
# Debian's build through Playwright; nothing downloads a browser), kubectl (renders deploy/ offline),
# HAProxy (the balancer of scripts/fleet.py and its tests) and promtool (Debian's prometheus: checks and
# unit-tests the alert rules of deploy/monitoring).
# Installs them when running as root with apt; starts dockerd when it is not running. Without them,
# the tests that need them skip and say why.
set -uo pipefail

need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v hey >/dev/null || need+=(hey)
command -v h2load >/dev/null || need+=(nghttp2-client)
command -v chromium >/dev/null || need+=(chromium)
command -v kubectl >/dev/null || need+=(kubectl)
command -v haproxy >/dev/null || test -x /usr/sbin/haproxy || need+=(haproxy)
command -v promtool >/dev/null || need+=(prometheus)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing ${need[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null \
      || echo "could not install ${need[*]}; the tests that need them will skip"
  else
    echo "missing ${need[*]} and not root with apt; the tests that need them will skip"
  fi
fi

# Debian's client talks to Debian's engine; a newer client earlier on the PATH wants a buildx plugin.
if command -v dockerd >/dev/null && ! /usr/bin/docker info >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    echo "starting dockerd"
    nohup dockerd >/tmp/dockerd.log 2>&1 &
    for _ in $(seq 1 30); do /usr/bin/docker info >/dev/null 2>&1 && break; sleep 1; done
    /usr/bin/docker info >/dev/null 2>&1 || echo "dockerd did not start (see /tmp/dockerd.log); the Docker test will skip"
  fi
fi
exit 0
