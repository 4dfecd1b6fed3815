#!/usr/bin/env bash
# The whole default test suite, from a fresh clone on a fresh Debian 12 machine:
# installs the dependencies, builds (release preset, build/), starts a throwaway PostgreSQL and
# runs every test except the `bench` and `long` labels; then the same with the daemon, unit and pg
# tests built on the asan-ubsan preset;
# then each libFuzzer target for 30 s. CI (.ci/run) runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
cmake --preset release
cmake --build --preset release -j "$(nproc)"

# -LE excludes the benchmark and long-soak labels; --no-tests=error turns "ran nothing" into a failure.
bash scripts/pg_tmp.sh -- \
  ctest --test-dir build --output-on-failure --no-tests=error -j 2 -LE '^(bench|long)$' "$@"

# Then the same suite with the daemon built on the asan-ubsan preset (build-asan/). That tree builds
# only the daemon and the unit and pg tests (MAILTRAIL_TEST_LABELS=unit;pg, no simulator), which run
# there sanitized; the e2e tests are build/'s drivers and simulator driving build-asan/mailtrail
# (MAILTRAIL_TEST_DAEMON), since the daemon is what they test (building the drivers a second time,
# sanitized, was a third of the run). Left out of the sanitized e2e run: three soaks (the 1000-order
# world, the kill -9 loop and SIGTERM rounds, the API fault storms with a 2-minute outage): their
# simulators run at hours per second and outpace a sanitized daemon, and their minutes of waiting
# would push the run past half an hour while exercising code the other e2e tests run sanitized. So
# is the replicas polling-split test: its window of two daemons' GETs was tuned for release-speed
# daemons (sanitized ones failed its former data guard). And ClientAgainstSimulator: it runs the
# client in-process, unsanitized here (the client's unit tests run sanitized). deb_package_check is
# left out too: outside build/'s /usr prefix it rebuilds the daemon from scratch (4 minutes
# sanitized) to check packaging, which the release pass already did. MAILTRAIL_TEST_ASAN=0 skips
# this pass (a quicker local run; CI always runs it).
if [ "${MAILTRAIL_TEST_ASAN:-1}" != "0" ]; then
  cmake --preset asan-ubsan -DMAILTRAIL_TEST_LABELS='unit;pg' -DMAILTRAIL_BUILD_SIMULATOR=OFF
  cmake --build --preset asan-ubsan -j "$(nproc)"
  export LSAN_OPTIONS="suppressions=$PWD/sanitizers/lsan.supp"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
  bash scripts/pg_tmp.sh -- \
    ctest --test-dir build-asan --output-on-failure --no-tests=error -j 2 -L '^(unit|pg)$' \
      -E '^deb_package_check$' "$@"
  MAILTRAIL_TEST_DAEMON="$PWD/build-asan/mailtrail" bash scripts/pg_tmp.sh -- \
    ctest --test-dir build --output-on-failure --no-tests=error -j 2 -L '^e2e$' -LE '^(bench|long)$' \
      -E '^((WorldE2eTest|CrashE2eTest|ApiFaultsE2eTest|ClientAgainstSimulator)\.|ReplicasE2eTest\.TwoReplicasSplit)' \
      "$@"
  unset LSAN_OPTIONS UBSAN_OPTIONS
fi

# Finally every libFuzzer target for MAILTRAIL_TEST_FUZZ_SECONDS (default 30) each, after replaying
# fuzz/regressions/. MAILTRAIL_TEST_FUZZ_SECONDS=0 only replays the seeds and regressions.
bash scripts/fuzz "${MAILTRAIL_TEST_FUZZ_SECONDS:-30}"
